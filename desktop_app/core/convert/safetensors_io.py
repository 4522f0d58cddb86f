"""A Hugging Face checkpoint's safetensors weights, read one tensor at a time, trusting nothing.

Every byte of ``model.safetensors`` (or the shards ``model.safetensors.index.json`` lists) is hostile
until checked: header lengths, offsets, shapes, data types and the index's file names decide what
is opened, allocated and read, so each is checked before use, and safetensors' own reader then
cross-checks each file. ``load_tensor`` reads one tensor's bytes and nothing else, so converting
needs little more memory than the biggest tensor.

Format: 8 bytes little-endian header length N, N bytes of JSON ({name: {dtype, shape, data_offsets:
[begin, end]}, "__metadata__": {str: str}}), then the data, which the offsets cover exactly.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from safetensors import safe_open

from desktop_app.core.errors import CheckpointError

INDEX_NAME = "model.safetensors.index.json"
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
MAX_INDEX_BYTES = 64 * 1024 * 1024  # the index of a trillion-parameter model is a few MB
MAX_DIMS = 8
MAX_DIM = 1 << 48  # no real dimension comes near; a bigger one is a lie, not a tensor
MAX_NAME_CHARS = 512
_READ_CHUNK = 64 * 1024 * 1024  # one read() call stays under every OS's per-call limit

# The data types a checkpoint may hold: floats are converted, integer/bool buffers (position ids,
# rotary tables) are listed so the converter can skip them by name, and load_tensor refuses them.
ITEMSIZE: dict[str, int] = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_DISK_DTYPE = {"F32": "<f4", "F16": "<f2", "BF16": "<u2"}
# Real safetensors types this converter cannot use: refused as unsupported, not called damage.
_UNSUPPORTED = frozenset(
    {"F64", "U16", "U32", "U64", "C64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "E8M0"}
)
_SHARD_RE = re.compile(r"^(.*)-(\d{5})-of-(\d{5})\.safetensors$")
_CHOOSE_FLOAT = "Choose a version of this model in float16, bfloat16 or float32."


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as its file's checked header describes it: the converter plans with these."""

    name: str
    dtype: str  # safetensors' data type name: "F32", "F16", "BF16", or an integer/bool type
    shape: tuple[int, ...]
    file: Path  # the shard holding it
    nbytes: int
    offset: int = -1  # where its bytes start in `file`, header included; -1: looked up when loaded


class _Span(NamedTuple):
    begin: int
    end: int
    name: str
    dtype: str
    shape: tuple[int, ...]


def list_tensors(folder: str | os.PathLike[str]) -> dict[str, TensorEntry]:
    """Every tensor of the checkpoint, in file order (shard order, then data-offset order).

    Everything is checked up front, so a bad file stops the conversion before any output is written.

    Raises:
        CheckpointError: no weights, a missing or unsafe shard, a damaged or truncated file, a data
            type the converter cannot use, or a tensor named twice.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CheckpointError(f"{root} is not a folder. Choose the folder that holds the model's .safetensors files.")
    index = root / INDEX_NAME
    if index.exists() or index.is_symlink():
        shards, wanted = _shards_from_index(root, index)
    else:
        shards, wanted = _shards_in_folder(root), {}
    found: dict[str, TensorEntry] = {}
    for shard in shards:
        for entry in _read_shard(shard):
            if entry.name in found:
                raise CheckpointError(
                    f"The tensor {entry.name} is in both {found[entry.name].file.name} and {shard.name}: "
                    "the checkpoint is inconsistent. Download it again."
                )
            found[entry.name] = entry
    for name, shard_name in wanted.items():
        if name not in found or found[name].file.name != shard_name:
            raise CheckpointError(
                f"The checkpoint is incomplete: {shard_name} does not hold {name}, which {INDEX_NAME} lists. "
                "Download the model again."
            )
    if not found:
        raise CheckpointError(f"The weights in {root} hold no tensors. Download the model again.")
    return found


def load_tensor(entry: TensorEntry) -> npt.NDArray[Any]:
    """The tensor as numpy: F32 as float32, F16 as float16, BF16 widened exactly to float32.

    Raises:
        CheckpointError: an integer/bool tensor, or the file changed since it was listed.
    """
    return load_rows(entry, 0, entry.shape[0] if entry.shape else 1)


def load_rows(entry: TensorEntry, start: int, stop: int) -> npt.NDArray[Any]:
    """Rows ``start:stop`` of the tensor's first dimension (all of a scalar), as ``load_tensor`` gives them.

    Only those bytes are read (plain reads, no memory map: a file cut short under a map would crash
    the app instead of raising), so memory use is that slice alone (1.5x it for BF16).
    """
    disk = _DISK_DTYPE.get(entry.dtype)
    if disk is None:
        raise CheckpointError(
            f"{entry.name} in {entry.file.name} is stored as {entry.dtype}, not as floating-point weights, "
            f"so QuantDesk cannot convert it. {_CHOOSE_FLOAT}"
        )
    rows, row_items = (entry.shape[0], math.prod(entry.shape[1:])) if entry.shape else (1, 1)
    if not 0 <= start <= stop <= rows or rows * row_items * ITEMSIZE[entry.dtype] != entry.nbytes:
        raise CheckpointError(f"Rows {start} to {stop} of {entry.name} do not fit its shape {list(entry.shape)}.")
    offset = entry.offset if entry.offset >= 0 else _find_offset(entry)
    raw = np.empty((stop - start) * row_items, dtype=np.dtype(disk))
    _read_exact(entry, offset + start * row_items * ITEMSIZE[entry.dtype], raw.view(np.uint8))
    shape = (stop - start, *entry.shape[1:]) if entry.shape else ()
    if entry.dtype == "BF16":  # bfloat16 is the top half of a float32: shift it back into place
        wide = raw.astype(np.uint32)
        wide <<= 16
        return wide.view(np.float32).reshape(shape)
    return raw.astype(np.float32 if entry.dtype == "F32" else np.float16, copy=False).reshape(shape)


def tensor_bytes_total(tensors: dict[str, TensorEntry]) -> int:
    """The bytes all tensors take on disk: what a conversion reads, for progress and disk checks."""
    return sum(entry.nbytes for entry in tensors.values())


# -- which files


def _shards_from_index(root: Path, index: Path) -> tuple[list[Path], dict[str, str]]:
    """The shards the index names, sorted, and which shard each tensor must be in."""
    _check_inside(root, index)
    try:
        if index.stat().st_size > MAX_INDEX_BYTES:  # it is read whole
            raise _damaged(index, f"it is over {MAX_INDEX_BYTES // 2**20} MB, far more than any real index")
        data = _parse_json(index.read_bytes(), index, "it")
    except OSError as exc:
        raise _unreadable(index, exc) from exc
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise _damaged(index, "it has no weight_map listing the weight files")
    for name, shard in weight_map.items():
        _check_name(name, index)
        if not isinstance(shard, str):
            raise _damaged(index, f"the file named for {name} is not a file name")
    paths = [(shard, _shard_path(root, shard)) for shard in sorted(set(weight_map.values()))]
    missing = [shard for shard, path in paths if path is None]
    if missing:
        raise _incomplete(missing)
    return [path for _, path in paths if path is not None], dict(weight_map)


def _shards_in_folder(root: Path) -> list[Path]:
    """Every .safetensors file directly in the folder, sorted (macOS "._" sidecar files skipped)."""
    names = sorted(p.name for p in root.iterdir() if p.name.endswith(".safetensors") and not p.name.startswith("."))
    if not names:
        raise CheckpointError(
            f"No .safetensors weights in {root}. Choose the folder of a Hugging Face model that has "
            ".safetensors files (.bin and .pt weights are not supported)."
        )
    sharded = [m for m in map(_SHARD_RE.match, names) if m]  # shards without their index: all must be here
    expected = {f"{m[1]}-{i:05d}-of-{m[3]}.safetensors" for m in sharded for i in range(1, int(m[3]) + 1)}
    missing = sorted(expected - set(names)) + [n for n in names if not (root / n).exists()]  # dead links
    if missing:
        raise _incomplete(missing)
    for name in names:
        _check_inside(root, root / name)
    return [root / name for name in names]


def _shard_path(root: Path, name: str) -> Path | None:
    """The path of a weight file the index names, None if it is missing. The index is as hostile as
    the weights: only a plain name in the folder is opened, never a path out of it, direct or linked."""
    if not 0 < len(name) <= 255 or name in (".", "..") or not name.isprintable() or set("/\\:") & set(name):
        raise CheckpointError(
            f"{INDEX_NAME} names the weight file {_show(name)}, which is not a plain file name in the model "
            "folder: refusing to open it. Download the model from a source you trust."
        )
    path = root / name
    if not path.exists():
        return None
    _check_inside(root, path)
    return path


def _check_inside(root: Path, path: Path) -> None:
    """A regular file whose real place is the folder, or the Hugging Face cache's blobs/ for that
    folder (snapshots/<commit>/x links to ../../blobs/<hash>), and nowhere else."""
    try:
        real, home = path.resolve(strict=True), root.resolve(strict=True)
        regular = stat.S_ISREG(real.stat().st_mode)
    except RuntimeError as exc:  # a link loop, on older Pythons (newer ones raise OSError)
        raise CheckpointError(f"{path.name} is a link that leads to itself. Download the model again.") from exc
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    homes = [home, home.parent.parent / "blobs"] if home.parent.name == "snapshots" else [home]
    if not any(real.parent == h or h in real.parents for h in homes):
        raise CheckpointError(
            f"{path.name} is a link to {real}, outside the model folder: refusing to open it. "
            "Copy the real file into the folder if you trust it."
        )
    if not regular:
        raise CheckpointError(f"{path.name} is not a regular file. Download the model again.")


# -- one file's header


def _read_shard(path: Path) -> list[TensorEntry]:
    """The checked tensors of one file, in data-offset order, cross-checked by safetensors itself."""
    header, data_start, data_size = _read_header(path)
    meta = header.pop("__metadata__", None)
    if meta is not None and not (
        isinstance(meta, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    ):
        raise _damaged(path, "its __metadata__ is not a table of texts")
    spans = []
    for name, info in header.items():
        _check_name(name, path)
        spans.append(_check_entry(path, name, info, data_size))
    spans.sort()
    expected = 0
    for span in spans:
        if span.begin < expected:
            raise _damaged(path, f"the data of {span.name} overlaps the tensor before it")
        if span.begin > expected:
            raise _damaged(path, f"there is a gap of {span.begin - expected} bytes before the data of {span.name}")
        expected = span.end
    if expected < data_size:
        raise _damaged(path, f"it has {data_size - expected} bytes after its last tensor")
    entries = [TensorEntry(s.name, s.dtype, s.shape, path, s.end - s.begin, data_start + s.begin) for s in spans]
    _cross_check(path, entries)
    return entries


def _read_header(path: Path) -> tuple[dict[str, Any], int, int]:
    """The header as JSON, where the data section starts, and how long it is."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise _damaged(path, f"it is only {size} bytes long, too short for a safetensors file")
            (length,) = struct.unpack("<Q", f.read(8))
            if length > MAX_HEADER_BYTES:
                raise _damaged(path, f"its header claims {length} bytes, more than safetensors allows (100 MB)")
            if length > size - 8:
                raise _damaged(path, f"its header claims {length} bytes but the whole file has {size} (truncated?)")
            raw = f.read(length)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if len(raw) != length:
        raise _truncated(path, length - len(raw))
    header = _parse_json(raw, path, "its header")
    if not isinstance(header, dict):
        raise _damaged(path, "its header is not a table of tensors")
    return header, 8 + length, size - 8 - length


def _check_entry(path: Path, name: str, info: object, data_size: int) -> _Span:
    """One tensor's description: a known type, a possible shape, offsets that fit that shape and the file."""
    if not isinstance(info, dict):
        raise _damaged(path, f"the entry for {name} is not a tensor description")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if isinstance(dtype, str) and dtype in _UNSUPPORTED:
        raise CheckpointError(
            f"{name} in {path.name} is stored as {dtype}, which QuantDesk cannot convert. {_CHOOSE_FLOAT}"
        )
    if not isinstance(dtype, str) or dtype not in ITEMSIZE:
        raise _damaged(path, f"{name} has an unknown data type {_show(dtype)}")
    dims = shape if isinstance(shape, list) and len(shape) <= MAX_DIMS else [-1]  # type(d) is int: not true/false
    if not all(type(d) is int and 0 <= d <= MAX_DIM for d in dims):
        raise _damaged(path, f"{name} has an impossible shape {_show(shape)}")
    begin, end = offsets if isinstance(offsets, list) and len(offsets) == 2 else (-1, -1)
    if not (type(begin) is int and type(end) is int and 0 <= begin <= end):
        raise _damaged(path, f"{name} has impossible data offsets {_show(offsets)}")
    nbytes = math.prod(dims) * ITEMSIZE[dtype]
    if end - begin != nbytes:
        raise _damaged(
            path, f"{name} spans {end - begin} bytes, which does not match its shape {_show(shape)} of {dtype}"
        )
    if end > data_size:
        raise _truncated(path, end - data_size)
    return _Span(begin, end, name, dtype, tuple(dims))


def _cross_check(path: Path, entries: list[TensorEntry]) -> None:
    """Let safetensors' own reader parse the file too: what it refuses, the converter must not use."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            slices = {name: f.get_slice(name) for name in list(f.keys())}
            seen = {name: (s.get_dtype(), tuple(s.get_shape())) for name, s in slices.items()}
    except Exception as exc:  # SafetensorError, or whatever else its reader raises on a bad file
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise _damaged(path, f"safetensors cannot read it ({reason})") from exc
    if seen != {e.name: (e.dtype, e.shape) for e in entries}:
        raise _damaged(path, "safetensors reads different tensors in it than its header lists")


def _check_name(name: object, path: Path) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS or not name.isprintable():
        raise _damaged(path, f"it holds a tensor named {_show(name)}, which no real model has")


# -- reading one tensor


def _find_offset(entry: TensorEntry) -> int:
    """Where a tensor built without an offset starts: its file's header is read and checked again."""
    header, data_start, data_size = _read_header(entry.file)
    info = header.get(entry.name)
    span = _check_entry(entry.file, entry.name, info, data_size) if info is not None else None
    if span is None or (span.dtype, span.shape) != (entry.dtype, entry.shape):
        raise CheckpointError(
            f"{entry.file.name} no longer holds {entry.name} as it did: the file changed. List the checkpoint again."
        )
    return data_start + span.begin


def _read_exact(entry: TensorEntry, offset: int, buf: npt.NDArray[np.uint8]) -> None:
    """Fill ``buf`` from ``offset``: a short read means the file changed since it was checked."""
    try:
        with open(entry.file, "rb", buffering=0) as f:
            f.seek(offset)
            view, pos = buf.data, 0
            while pos < len(view):
                got = f.readinto(view[pos : pos + _READ_CHUNK])
                if not got:
                    raise CheckpointError(
                        f"{entry.file.name} ends before the data of {entry.name}: it changed or was cut short "
                        "since it was checked. Download it again."
                    )
                pos += got
    except OSError as exc:
        raise _unreadable(entry.file, exc) from exc


# -- messages


def _show(value: object) -> str:
    """A value from a hostile file, quoted and cut short enough for a message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_json(raw: bytes, path: Path, what: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        table: dict[str, Any] = {}
        for key, value in pairs:
            if key in table:
                raise _damaged(path, f"{what} names {_show(key)} twice")
            table[key] = value
        return table

    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise _damaged(path, f"{what} is not valid JSON") from exc


def _damaged(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path.name} is damaged: {what}. Download it again.")


def _truncated(path: Path, short_by: int) -> CheckpointError:
    return CheckpointError(
        f"{path.name} is truncated (an interrupted download?): it ends {short_by} bytes too early. Download it again."
    )


def _incomplete(missing: list[str]) -> CheckpointError:
    named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    verb = "is" if len(missing) == 1 else "are"
    return CheckpointError(f"The checkpoint is incomplete: {named} {verb} missing. Download the model again.")


def _unreadable(path: Path, exc: OSError) -> CheckpointError:
    return CheckpointError(f"Could not read {path.name} ({exc.strerror or exc}). Check that it is there and readable.")
