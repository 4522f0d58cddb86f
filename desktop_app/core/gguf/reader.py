"""Read a GGUF file's header (metadata and tensor infos) without touching tensor data.

The parser works on any buffer (an ``mmap`` of a local file, or the first bytes of a remote one):
when the buffer ends before the header does and the file is known to be longer, it raises
:class:`NeedMoreBytes` so a caller can fetch more and try again.

Long arrays (a 150k-token vocabulary, its merges and scores) are skipped, not decoded: only their
element type and length are kept. Every count and length is checked against the bytes that are
really there, so a damaged file gives a clear :class:`~desktop_app.core.errors.GGUFError` instead
of a hang or a multi-gigabyte allocation.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from desktop_app.core.errors import (
    CorruptGGUFError,
    NotAGGUFError,
    TruncatedGGUFError,
    UnsupportedGGUFError,
)
from desktop_app.core.gguf.ggml_types import GGML_TYPES, ggml_type_name
from desktop_app.core.gguf.split import part_names

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
KEEP_STRING_ITEMS = 64  # string arrays up to this length are decoded, longer ones only counted
KEEP_NUMBER_ITEMS = 4096  # per-layer arrays (head counts, window patterns) stay readable
ABSURD_COUNT = 1 << 32  # more items than any real model has: the header is damaged
MAX_NAME_BYTES = 63  # GGML_MAX_NAME - 1: llama.cpp refuses longer tensor names
MAX_STRING_BYTES = 1 << 30  # GGUF_MAX_STRING_LENGTH
MAX_ARRAY_ITEMS = 1 << 30  # GGUF_MAX_ARRAY_ELEMENTS
_INT64_MAX = (1 << 63) - 1

# GGUF value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL = range(8)
T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = 8, 9, 10, 11, 12
_SCALAR_FORMATS = {
    T_UINT8: "B",
    T_INT8: "b",
    T_UINT16: "H",
    T_INT16: "h",
    T_UINT32: "I",
    T_INT32: "i",
    T_FLOAT32: "f",
    T_BOOL: "?",
    T_UINT64: "Q",
    T_INT64: "q",
    T_FLOAT64: "d",
}
VALUE_TYPE_NAMES = {
    T_UINT8: "uint8",
    T_INT8: "int8",
    T_UINT16: "uint16",
    T_INT16: "int16",
    T_UINT32: "uint32",
    T_INT32: "int32",
    T_FLOAT32: "float32",
    T_BOOL: "bool",
    T_STRING: "string",
    T_ARRAY: "array",
    T_UINT64: "uint64",
    T_INT64: "int64",
    T_FLOAT64: "float64",
}

Buffer = bytes | bytearray | memoryview | mmap.mmap


class NeedMoreBytes(Exception):
    """The buffer ends inside the header.

    ``needed`` is a lower bound on the bytes required; ``estimate`` (when known) is a guess at
    where the header ends, from the sizes of the items read so far, so a remote reader can fetch
    the rest in one request instead of doubling blindly.
    """

    def __init__(self, needed: int, estimate: int = 0) -> None:
        super().__init__(f"need at least {needed} bytes")
        self.needed = needed
        self.estimate = max(estimate, needed)


@dataclass(frozen=True)
class GGUFArray:
    """A metadata array too long to keep: its element type and length only."""

    item_type: str
    count: int

    def __str__(self) -> str:
        return f"[{self.count:,} × {self.item_type}]"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int  # relative to the start of the data section

    @property
    def type_name(self) -> str:
        return ggml_type_name(self.type_id)

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        t = GGML_TYPES[self.type_id]
        return self.n_elements // t.block_size * t.type_size


@dataclass
class GGUFHeader:
    """Everything in a GGUF file except the tensor data."""

    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    alignment: int
    header_bytes: int  # where the tensor data section starts (after alignment padding)
    file_bytes: int
    value_types: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)


class _Parser:
    def __init__(self, buf: Buffer, file_bytes: int, what: str) -> None:
        self.buf = buf
        self.avail = len(buf)
        self.file_bytes = file_bytes
        self.pos = 0
        self.what = what  # the file's name, for messages
        self.n_tensors = 0
        self.last_len = 0  # bytes of the last string read (names are measured in bytes, as llama.cpp does)
        self.want_key = ""  # a string array to keep whole, as raw bytes (see read_string_array)
        self.wanted: list[bytes] | None = None

    # -- low level -----------------------------------------------------------------------------
    def _short(self, end: int, item: str) -> Exception:
        if end <= self.file_bytes and self.avail < self.file_bytes:
            return NeedMoreBytes(end)
        return TruncatedGGUFError(
            self.what,
            f"The file ends at byte {self.file_bytes:,} while reading {item}: it is truncated "
            "(an interrupted download or copy). Download or copy it again.",
        )

    def take(self, fmt: struct.Struct, item: str) -> Any:
        end = self.pos + fmt.size
        if end > self.avail:
            raise self._short(end, item)
        value = fmt.unpack_from(self.buf, self.pos)
        self.pos = end
        return value[0] if len(value) == 1 else value

    def string(self, item: str) -> str:
        n = self.take(_U64, item)
        end = self.pos + n
        if n > MAX_STRING_BYTES or end > self.avail:
            if n >= ABSURD_COUNT or n > MAX_STRING_BYTES:
                raise CorruptGGUFError(
                    self.what,
                    f"The header gives {item} a length of {n:,} bytes, which no real model has: "
                    "the file is damaged or not a model.",
                )
            raise self._short(end, item)
        s = bytes(self.buf[self.pos : end]).decode("utf-8", errors="replace")
        self.pos = end
        self.last_len = n
        return s

    def check_count(self, count: int, min_item_bytes: int, item: str, limit: int = ABSURD_COUNT) -> None:
        """Refuse counts that cannot fit in the rest of the file."""
        if count * min_item_bytes <= self.file_bytes - self.pos and count <= limit:
            return
        if count >= ABSURD_COUNT or count > limit:
            raise CorruptGGUFError(
                self.what,
                f"The header claims {count:,} {item}, which no real model has: the file is damaged or not a model.",
            )
        raise TruncatedGGUFError(
            self.what,
            f"The header lists {count:,} {item}, but the file is only {self.file_bytes:,} bytes: "
            "it is truncated (an interrupted download or copy). Download or copy it again.",
        )

    # -- values --------------------------------------------------------------------------------
    def value(self, vtype: int, key: str) -> Any:
        if vtype == T_STRING:
            return self.string(f"the value of {key}")
        if vtype == T_ARRAY:
            return self.array(key)
        fmt = _SCALARS.get(vtype)
        if fmt is None:
            raise CorruptGGUFError(
                self.what, f"Metadata key {key!r} has value type {vtype}, which GGUF does not define."
            )
        return self.take(fmt, f"the value of {key}")

    def array(self, key: str) -> Any:
        item_type, count = self.take(_ARRAY_HEAD, f"the array {key}")
        item = f"items in {key}"
        if item_type == T_STRING:
            self.check_count(count, 8, item, MAX_ARRAY_ITEMS)
            if key == self.want_key:
                start = self.pos
                self.skip_strings(count, item)  # bounds-checked first; then the items are sliced out
                self.wanted = _string_items(self.buf, start, count)
                return GGUFArray("string", count)
            if count <= KEEP_STRING_ITEMS:
                return [self.string(item) for _ in range(count)]
            self.skip_strings(count, item)
            return GGUFArray("string", count)
        if item_type == T_ARRAY:
            # llama.cpp refuses the whole file ("invalid GGUF type 9"); refusing here also means no
            # recursion, however deep a hostile file nests them.
            raise CorruptGGUFError(
                self.what,
                f"Metadata key {key!r} is an array of arrays, which GGUF does not allow and llama.cpp refuses: "
                "the file is damaged or was written by a broken tool.",
            )
        fmt = _SCALARS.get(item_type)
        if fmt is None:
            raise CorruptGGUFError(self.what, f"Array {key!r} has item type {item_type}, which GGUF does not define.")
        self.check_count(count, fmt.size, item, MAX_ARRAY_ITEMS)
        end = self.pos + count * fmt.size
        if end > self.avail:
            raise self._short(end, item)
        values: list[Any] | GGUFArray
        if count <= KEEP_NUMBER_ITEMS:
            values = list(struct.unpack_from(f"<{count}{fmt.format[-1]}", self.buf, self.pos))
        else:
            values = GGUFArray(VALUE_TYPE_NAMES[item_type], count)
        self.pos = end
        return values

    def skip_strings(self, count: int, item: str) -> None:
        # The hot loop of the whole scan: a 150k-token vocabulary is 150k length prefixes.
        unpack = _U64.unpack_from
        buf = self.buf
        pos = self.pos
        try:
            for _ in repeat(None, count):
                pos += unpack(buf, pos)[0] + 8
        except (struct.error, OverflowError):  # past the end; OverflowError: a length near 2**64
            raise self._short_in_array(count, item) from None
        if pos > self.avail:
            raise self._short_in_array(count, item)
        self.pos = pos

    def _short_in_array(self, count: int, item: str) -> Exception:
        """Out of bytes inside a string array: estimate its end from the strings seen so far."""
        err = self._short(self.avail + 1, item)
        if not isinstance(err, NeedMoreBytes):
            return err
        pos, seen = self.pos, 0
        while seen < count and pos + 8 <= self.avail:
            n = _U64.unpack_from(self.buf, pos)[0]
            if pos + 8 + n > self.avail or n > MAX_STRING_BYTES:
                break
            pos += 8 + n
            seen += 1
        avg = (pos - self.pos) / seen if seen else 16
        # the rest of this array, plus room for the tensor infos that follow the metadata
        err.estimate = int(pos + (count - seen) * avg * 1.02) + self.n_tensors * 80 + 16 * 1024
        return err

    # -- whole header --------------------------------------------------------------------------
    def header(self) -> GGUFHeader:
        if self.avail < 4 and self.file_bytes >= 4:
            raise NeedMoreBytes(24)
        magic = bytes(self.buf[:4])
        if magic != GGUF_MAGIC:
            raise NotAGGUFError(self.what, _not_gguf_reason(bytes(self.buf[:16]), self.file_bytes))
        self.pos = 4
        version = self.version()
        n_tensors, n_kv = self.take(_COUNTS, "the tensor and metadata counts")
        self.n_tensors = min(n_tensors, 1 << 20)
        self.check_count(n_kv, 13, "metadata entries")
        self.check_count(n_tensors, 24, "tensors")
        metadata, value_types = self.metadata(n_kv)
        alignment = self.alignment(metadata, value_types)
        tensors = self.tensor_infos(n_tensors)
        data_start = -(-self.pos // alignment) * alignment
        header = GGUFHeader(
            version=version,
            metadata=metadata,
            tensors=tensors,
            alignment=alignment,
            header_bytes=data_start,
            file_bytes=self.file_bytes,
            value_types=value_types,
        )
        self.check_tensor_data(header)
        return header

    def version(self) -> int:
        version = self.take(_U32, "the GGUF version")
        if version & 0xFFFF == 0 and version >> 16:
            raise UnsupportedGGUFError(
                self.what,
                "This is a big-endian GGUF (made for IBM mainframes); llama.cpp on this computer "
                "cannot load it. Get the little-endian file instead.",
            )
        if version == 1:
            raise UnsupportedGGUFError(
                self.what,
                "This is a GGUF version 1 file (2023), which llama.cpp no longer loads. "
                "Download a current conversion of the model.",
            )
        if version not in (2, 3):
            raise UnsupportedGGUFError(
                self.what,
                f"GGUF version {version} is newer than this app understands. Update QuantDesk.",
            )
        return int(version)

    def metadata(self, n_kv: int) -> tuple[dict[str, Any], dict[str, str]]:
        """The key-value pairs, and each value's GGUF type name."""
        metadata: dict[str, Any] = {}
        value_types: dict[str, str] = {}
        for i in range(n_kv):
            key = self.string("a metadata key")
            if not key:
                raise CorruptGGUFError(self.what, f"Metadata entry {i} has an empty name, which llama.cpp refuses.")
            if key in metadata:
                raise CorruptGGUFError(
                    self.what, f"Metadata key {key!r} appears twice, which llama.cpp refuses: the file is damaged."
                )
            vtype = self.take(_U32, f"the type of {key}")
            metadata[key] = self.value(vtype, key)
            value_types[key] = VALUE_TYPE_NAMES.get(vtype, "?")
        return metadata, value_types

    def alignment(self, metadata: dict[str, Any], value_types: dict[str, str]) -> int:
        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if "general.alignment" in metadata and value_types["general.alignment"] != "uint32":
            raise CorruptGGUFError(
                self.what,
                f"general.alignment is a {value_types['general.alignment']}; GGUF requires a uint32 "
                "and llama.cpp refuses the file.",
            )
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise CorruptGGUFError(self.what, f"general.alignment is {alignment!r}, not a power of two.")
        return alignment

    def tensor_infos(self, n_tensors: int) -> list[TensorInfo]:
        """Every tensor's name, shape, type and offset; a short read says how much more to read."""
        tensors_start = self.pos
        tensors = []
        names: set[str] = set()
        for i in range(n_tensors):
            try:
                ti = self.tensor_info(i)
            except NeedMoreBytes as more:
                avg = (self.pos - tensors_start) / i if i else 96
                more.estimate = max(more.estimate, int(self.pos + (n_tensors - i) * avg * 1.05) + 4096)
                raise
            if ti.name in names:
                raise CorruptGGUFError(
                    self.what, f"Tensor {ti.name!r} appears twice, which llama.cpp refuses: the file is damaged."
                )
            names.add(ti.name)
            tensors.append(ti)
        return tensors

    def tensor_info(self, index: int) -> TensorInfo:
        name = self.string(f"the name of tensor {index}")
        if self.last_len > MAX_NAME_BYTES:
            raise CorruptGGUFError(
                self.what,
                f"Tensor {index} has a name of {self.last_len:,} bytes; llama.cpp allows at most "
                f"{MAX_NAME_BYTES} and refuses the file.",
            )
        n_dims = self.take(_U32, f"the shape of {name}")
        if n_dims > MAX_DIMS:
            raise CorruptGGUFError(
                self.what, f"Tensor {name!r} claims {n_dims} dimensions; ggml allows at most {MAX_DIMS}."
            )
        shape = self.take(_DIMS[n_dims], f"the shape of {name}") if n_dims else ()
        if isinstance(shape, int):
            shape = (shape,)
        type_id, offset = self.take(_TENSOR_TAIL, f"the type of {name}")
        t = GGML_TYPES.get(type_id)
        if t is None:
            raise UnsupportedGGUFError(
                self.what,
                f"Tensor {name!r} uses ggml type {type_id}, which this version does not know. "
                "Update QuantDesk (and llama-cpp-python) to use this file.",
            )
        if any(d == 0 or d > _INT64_MAX for d in shape):
            # llama.cpp reads the header but then divides by the zero (SIGFPE) or overflows
            raise CorruptGGUFError(
                self.what,
                f"Tensor {name!r} has the shape {_shape_text(shape)}: a dimension of "
                f"{'0' if 0 in shape else 'more than 2^63'} weights, which llama.cpp cannot load "
                "(some versions crash on it). The file is damaged.",
            )
        n = 1
        for d in shape:
            n *= d
        if n >= 1 << 50:
            raise CorruptGGUFError(self.what, f"Tensor {name!r} claims {n:,} weights: the header is damaged.")
        if shape and shape[0] % t.block_size:
            raise CorruptGGUFError(
                self.what,
                f"Tensor {name!r} has rows of {shape[0]} weights, not a multiple of the "
                f"{t.block_size}-weight blocks of {t.name}: the header is damaged.",
            )
        return TensorInfo(name, tuple(shape), type_id, offset)

    def check_tensor_data(self, header: GGUFHeader) -> None:
        """Tensors must follow one another in the data section, each padded to the alignment:
        llama.cpp refuses any other layout (overlapping, misaligned or with gaps)."""
        if not header.tensors:
            return
        expected = 0
        for ti in header.tensors:
            if ti.offset != expected:
                raise CorruptGGUFError(
                    self.what,
                    f"Tensor {ti.name!r} starts at byte {ti.offset:,} of the data, but llama.cpp expects it at "
                    f"{expected:,} (right after the tensor before it) and refuses the file: it is damaged.",
                )
            expected += -(-ti.n_bytes // header.alignment) * header.alignment
        last = header.tensors[-1]
        end = header.header_bytes + last.offset + last.n_bytes
        if end > self.file_bytes:
            raise TruncatedGGUFError(
                self.what,
                f"The file is {self.file_bytes:,} bytes but its tensors need {end:,} "
                f"({_fmt_mb(end - self.file_bytes)} missing): it is truncated (an interrupted "
                "download or copy). Download or copy it again.",
            )


def _string_items(buf: Buffer, pos: int, count: int) -> list[bytes]:
    items = []
    unpack = _U64.unpack_from
    for _ in repeat(None, count):
        n = unpack(buf, pos)[0]
        items.append(bytes(buf[pos + 8 : pos + 8 + n]))
        pos += 8 + n
    return items


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(f"{d:,}" for d in shape) + ")"


def _fmt_mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e5 else f"{n:,} bytes"


def _not_gguf_reason(head: bytes, size: int) -> str:
    magic = head[:4]
    if size == 0:
        return "The file is empty (0 bytes). Download or copy it again."
    if size < 4:
        return f"The file is only {size} bytes long: it is not a GGUF model."
    if magic == b"ggjt" or magic == b"tjgg" or magic in (b"ggml", b"lmgg", b"ggmf", b"fmgg"):
        return (
            "This is an old GGML-format model (before August 2023); llama.cpp now reads only GGUF. "
            "Download a GGUF conversion of the model."
        )
    if magic[:2] == b"PK":
        return "This is a ZIP archive (a PyTorch checkpoint?), not a GGUF model."
    if head[8:9] == b"{" and struct.unpack_from("<Q", head)[0] < size:
        return "This is a safetensors checkpoint, not a GGUF model. Convert it to GGUF first."
    if magic.lstrip()[:1] in (b"<", b"{", b"#"):
        return "This is a text file (perhaps an HTML error page saved by a failed download), not a GGUF model."
    return f"The file does not start with 'GGUF' (it starts with {magic!r}): it is not a GGUF model."


_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_COUNTS = struct.Struct("<QQ")
_ARRAY_HEAD = struct.Struct("<IQ")
_TENSOR_TAIL = struct.Struct("<IQ")
_DIMS = {n: struct.Struct(f"<{n}Q") for n in range(1, MAX_DIMS + 1)}
_SCALARS = {k: struct.Struct("<" + v) for k, v in _SCALAR_FORMATS.items()}


def parse_gguf_header(buf: Buffer, *, file_bytes: int | None = None, name: str = "file") -> GGUFHeader:
    """Parse a GGUF header from ``buf`` (the file's first bytes, or all of it).

    Args:
        buf: the bytes from the start of the file.
        file_bytes: the whole file's size; defaults to ``len(buf)``.
        name: how messages name the file.

    Raises:
        NeedMoreBytes: ``buf`` ends inside the header of a longer file.
        NotAGGUFError, TruncatedGGUFError, CorruptGGUFError, UnsupportedGGUFError.
    """
    size = len(buf) if file_bytes is None else file_bytes
    return _Parser(buf, size, name).header()


def read_gguf_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Read the header of a local GGUF file through ``mmap``; tensor data is never paged in.

    Raises:
        OSError: the file cannot be opened.
        NotAGGUFError, TruncatedGGUFError, CorruptGGUFError, UnsupportedGGUFError.
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    # O_NONBLOCK: opening a FIFO named *.gguf must not wait for a writer; it is refused below.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotAGGUFError(
                path, "This is not a regular file (a pipe, socket or device named .gguf), so it is not a model."
            )
        size = st.st_size
        if size == 0:
            raise NotAGGUFError(path, _not_gguf_reason(b"", 0))
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            try:
                return _Parser(mm, size, name).header()
            except NeedMoreBytes:  # pragma: no cover - the whole file is mapped
                raise TruncatedGGUFError(path, "The file ends inside its header.") from None


def read_model_headers(path: str | os.PathLike[str]) -> list[GGUFHeader]:
    """The headers of every part of a model: one file, or all parts of a split GGUF.

    Raises:
        FileNotFoundError: a part is missing (the message names it).
        NotAGGUFError, TruncatedGGUFError, CorruptGGUFError, UnsupportedGGUFError.
    """
    parts = part_names(os.fspath(path))
    for p in parts:
        if os.path.exists(p):
            continue
        if len(parts) == 1:
            raise FileNotFoundError(
                f"{os.path.basename(p)} is no longer in {os.path.dirname(p) or '.'}: it was moved or deleted. "
                "Press Rescan on the Models page, or add the folder it is in now."
            )
        raise FileNotFoundError(f"Part {os.path.basename(p)} of this split model is missing.")
    return [read_gguf_header(p) for p in parts]


def read_string_array(path: str | os.PathLike[str], key: str) -> list[bytes] | None:
    """Every item of the string array ``key`` (e.g. the vocabulary), as raw bytes; None when the
    file has no such array. The library scan only counts long arrays; this reads one whole, for
    checks before a load.

    Raises:
        OSError, NotAGGUFError, TruncatedGGUFError, CorruptGGUFError, UnsupportedGGUFError.
    """
    path = os.fspath(path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        parser = _Parser(mm, len(mm), os.path.basename(path))
        parser.want_key = key
        parser.header()
        return parser.wanted
