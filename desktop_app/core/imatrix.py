"""Importance matrices: read the two formats llama-quantize reads, write and compute llama-imatrix's.

An importance matrix holds, per weight matrix, the mean square of each input column over some
calibration text; the low-bit quantizers spend their precision where it is large.
:func:`read_imatrix` returns exactly the values llama-quantize hands ``llama_model_quantize``
(tools/quantize/quantize.cpp ``load_imatrix``): the sums divided by their counts, per expert for
3D weights, or the legacy file's values divided by its call count. Files come from anywhere, so
every count and length is checked against the file's size before anything is read.
:func:`compute_imatrix` does what ``llama-imatrix`` does, in a child process (llama.cpp can abort).
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from desktop_app.core.errors import GGUFError, ImatrixCancelled, ImatrixError

MAX_NAME = 512
MAX_VALUES = 1 << 28
MAX_DATASET = 4096
KV_DATASETS, KV_CHUNK_COUNT, KV_CHUNK_SIZE = "imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"
SUMS, COUNTS = ".in_sum2", ".counts"
CHILD = "desktop_app.core._imatrix_child"
_I32 = struct.Struct("<i")


@dataclass
class Imatrix:
    entries: dict[str, np.ndarray] = field(default_factory=dict)  # float32, what llama-quantize passes on
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0  # 0 in the legacy format


@dataclass(frozen=True)
class ImatrixProgress:
    done: int  # chunks of n_ctx tokens evaluated
    total: int


def read_imatrix(path: str) -> dict[str, np.ndarray]:
    """Per weight name (``blk.0.attn_q.weight``), the float32 importance of each input column (per
    expert, one after the other, for 3D weights), as llama-quantize passes them to the quantizer.

    Raises:
        ImatrixError: unreadable, not an importance matrix, or damaged (the message says how).
    """
    return load_imatrix(path).entries


def load_imatrix(path: str) -> Imatrix:
    """:func:`read_imatrix` with the file's datasets and chunk count (llama-quantize records them)."""
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if f.read(4) != b"GGUF":
                f.seek(0)
                return _read_legacy(f, size, name)
    except OSError as exc:
        raise ImatrixError(f"Cannot read the importance matrix {name}: {exc.strerror or exc}.") from None
    return _read_gguf(path, name)


def _bad(name: str, why: str) -> ImatrixError:
    return ImatrixError(f"{name} is not a usable importance matrix: {why}.")


def _check_name(raw: bytes, name: str, index: int) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if not text or not text.isprintable():
        raise _bad(name, f"entry {index + 1} has an unreadable name")
    return text


def _i32(f: BinaryIO, name: str, what: str) -> int:
    raw = f.read(4)
    if len(raw) < 4:
        raise _bad(name, f"it ends inside {what} (truncated)")
    return int(_I32.unpack(raw)[0])


def _finite(values: np.ndarray, name: str, entry: str) -> np.ndarray:
    if not np.isfinite(values).all():
        raise _bad(name, f"{entry} holds values that are not numbers (NaN or infinite)")
    return values


def _read_legacy(f: BinaryIO, size: int, name: str) -> Imatrix:
    """The .dat format: int32 n; n × (int32 len, name, int32 ncall, int32 nval, float32[nval]);
    then, optionally, int32 chunk count and int32 len + dataset name."""
    n_entries = _i32(f, name, "the entry count")
    if n_entries < 1 or n_entries * 17 > size:  # 17: the smallest entry
        raise _bad(name, f"it claims {n_entries:,} entries in {size:,} bytes")
    out = Imatrix()
    for i in range(n_entries):
        length = _i32(f, name, f"entry {i + 1}")
        if not 0 < length <= MAX_NAME:
            raise _bad(name, f"entry {i + 1} has a name of {length:,} bytes")
        raw = f.read(length)
        if len(raw) < length:
            raise _bad(name, f"it ends inside entry {i + 1} (truncated)")
        key = _check_name(raw, name, i)
        ncall, nval = _i32(f, name, f"entry {i + 1}"), _i32(f, name, f"entry {i + 1}")
        if not 0 < nval <= MAX_VALUES or nval * 4 > size - f.tell():
            raise _bad(name, f"entry {key} claims {nval:,} values, more than the file holds")
        sums = np.frombuffer(f.read(nval * 4), dtype="<f4").astype(np.float32)
        values = sums / np.float32(ncall) if ncall > 0 else sums  # llama-quantize: float / (float)ncall
        out.entries[key] = _finite(values, name, key)
    _legacy_tail(f, size, out)
    return out


def _legacy_tail(f: BinaryIO, size: int, out: Imatrix) -> None:
    """The optional chunk count and dataset name; a cut or odd tail is ignored, as llama.cpp does."""
    raw = f.read(8)
    if len(raw) >= 4:
        out.chunk_count = max(0, _I32.unpack_from(raw)[0])
    if len(raw) == 8:
        length = _I32.unpack_from(raw, 4)[0]
        if 0 < length <= min(MAX_DATASET, size - f.tell()):
            text = f.read(length).split(b"\0")[0].decode("utf-8", "replace")
            out.datasets.append(text)


def _read_gguf(path: str, name: str) -> Imatrix:
    from desktop_app.core.gguf.reader import read_gguf_header

    try:
        header = read_gguf_header(path)
    except GGUFError as exc:
        raise _bad(name, exc.reason.rstrip(".")) from None
    except OSError as exc:
        raise ImatrixError(f"Cannot read the importance matrix {name}: {exc.strerror or exc}.") from None
    meta = header.metadata
    if not header.tensors:
        raise _bad(name, "it holds no data")
    if not all(k in meta for k in (KV_DATASETS, KV_CHUNK_COUNT, KV_CHUNK_SIZE)):
        raise _bad(name, "it lacks llama-imatrix's metadata (a model file, not an importance matrix?)")
    for key in (KV_CHUNK_COUNT, KV_CHUNK_SIZE):
        if header.value_types.get(key) != "uint32":
            raise _bad(name, f"{key} is not a count")
    datasets = meta[KV_DATASETS]
    out = Imatrix(datasets=[d for d in datasets if isinstance(d, str)] if isinstance(datasets, list) else [],
                  chunk_count=meta[KV_CHUNK_COUNT], chunk_size=meta[KV_CHUNK_SIZE])  # fmt: skip
    pairs: dict[str, dict[str, Any]] = {}
    for t in header.tensors:
        for suffix in (SUMS, COUNTS):
            if t.name.endswith(suffix) and len(t.name) > len(suffix):
                pairs.setdefault(t.name[: -len(suffix)], {})[suffix] = t
    with open(path, "rb") as f:
        for key, pair in sorted(pairs.items()):
            out.entries[key] = _gguf_entry(f, header.header_bytes, pair, key, name)
    return out


def _gguf_entry(f: BinaryIO, data_start: int, pair: dict[str, Any], key: str, name: str) -> np.ndarray:
    """llama-quantize's normalization: each expert's sums divided by its count (rounded as
    ``std::lround``); an expert that saw no token gets ones."""
    if SUMS not in pair or COUNTS not in pair:
        raise _bad(name, f"{key} has sums without counts or counts without sums")
    sums_t, counts_t = pair[SUMS], pair[COUNTS]
    if sums_t.type_id != 0 or counts_t.type_id != 0:
        raise _bad(name, f"{key} is not stored as F32")
    nval, ncounts = sums_t.n_elements, counts_t.n_elements
    if not (0 < ncounts <= nval <= MAX_VALUES) or nval % ncounts:
        raise _bad(name, f"{key} has {nval:,} sums for {ncounts:,} counts")
    _check_name(key.encode(), name, 0)
    sums = _finite(_f32(f, data_start + sums_t.offset, nval), name, key).reshape(ncounts, -1)
    counts = _finite(_f32(f, data_start + counts_t.offset, ncounts), name, key)
    rounded = np.where(counts < 0, -np.floor(-counts + 0.5), np.floor(counts + 0.5)).astype(np.float32)
    safe = np.where(rounded > 0, rounded, np.float32(1))[:, None]
    values = np.where(rounded[:, None] > 0, sums / safe, np.float32(1)).astype(np.float32)
    return _finite(values.reshape(-1), name, key)


def _f32(f: BinaryIO, offset: int, count: int) -> np.ndarray:
    f.seek(offset)
    return np.frombuffer(f.read(count * 4), dtype="<f4", count=count).astype(np.float32)


# -- writing, as llama-imatrix's save_imatrix does (gguf_write_to_file)


def _gguf_str(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def write_imatrix_gguf(path: str, sums: dict[str, np.ndarray], counts: dict[str, np.ndarray], *,
                       datasets: list[str], chunk_count: int, chunk_size: int) -> None:  # fmt: skip
    """llama-imatrix's GGUF: ``general.type``, the datasets, chunk count and size, then per weight (in
    name order) ``<weight>.in_sum2`` (n_mat × n_cols raw sums of squares) and ``<weight>.counts``."""
    kv = _gguf_str("general.type") + struct.pack("<I", 8) + _gguf_str("imatrix")
    kv += _gguf_str(KV_DATASETS) + struct.pack("<IIQ", 9, 8, len(datasets)) + b"".join(map(_gguf_str, datasets))
    kv += _gguf_str(KV_CHUNK_COUNT) + struct.pack("<II", 4, chunk_count)
    kv += _gguf_str(KV_CHUNK_SIZE) + struct.pack("<II", 4, chunk_size)
    infos, blobs, offset = b"", [], 0
    for key in sorted(sums):
        s = np.ascontiguousarray(sums[key], dtype="<f4").reshape(len(counts[key]), -1)
        c = np.ascontiguousarray(counts[key], dtype="<f4").reshape(-1, 1)
        for suffix, arr in ((SUMS, s), (COUNTS, c)):
            ne = [arr.shape[1], arr.shape[0]]
            n_dims = 2 if ne[1] > 1 else 1  # ggml_n_dims
            infos += _gguf_str(key + suffix) + struct.pack(f"<I{n_dims}QIQ", n_dims, *ne[:n_dims], 0, offset)
            blob = arr.tobytes()
            blobs.append(blob + b"\0" * (-len(blob) % 32))
            offset += len(blobs[-1])
    head = b"GGUF" + struct.pack("<IQQ", 3, 2 * len(sums), 4) + kv + infos
    with open(path, "wb") as f:
        f.write(head + b"\0" * (-len(head) % 32))
        for blob in blobs:
            f.write(blob)


# -- computing one, in a child


def compute_imatrix(
    model: str,
    text: str,
    out: str,
    *,
    n_ctx: int = 512,
    threads: int = 0,
    dataset: str = "",
    progress: Callable[[ImatrixProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Write ``out``: the importance matrix of ``model`` over ``text``, as ``llama-imatrix -c n_ctx``
    computes it (chunks of ``n_ctx`` tokens, each starting with BOS; every ``blk.*`` matrix
    multiplication of 16 tokens or more), in llama-imatrix's GGUF format. ``dataset`` names the text
    in the file (llama-imatrix records its file name).

    Raises:
        ImatrixError: the model cannot be used, the text is shorter than two chunks, or llama.cpp failed.
        ImatrixCancelled: ``cancel`` was set; nothing is left behind.
    """
    from desktop_app.core.llama_child import run_llama_child

    if not 16 <= n_ctx <= 1 << 20:
        raise ImatrixError(f"A chunk of {n_ctx} tokens is not usable: choose 16 or more.")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ImatrixError(f"Cannot write {os.path.basename(out)}: the folder {folder} does not exist.")
    _check_model(model)
    part = out + ".part"
    fd, text_path = tempfile.mkstemp(suffix=".txt", prefix="quantdesk-imatrix-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)

    def on_message(kind: str, payload: Any) -> None:
        if kind == "progress" and progress is not None and _progress_ok(payload):
            progress(ImatrixProgress(payload[0], payload[1]))

    try:
        run = run_llama_child(CHILD, [model, text_path, part, str(n_ctx), str(threads), dataset],
                              on_message=on_message, cancel=cancel)  # fmt: skip
    finally:
        os.remove(text_path)
    _finish(run, part, out)


def _progress_ok(payload: Any) -> bool:
    return (isinstance(payload, list) and len(payload) == 2 and all(type(v) is int for v in payload)
            and 0 < payload[0] <= payload[1] <= 1 << 30)  # fmt: skip


def _check_model(model: str) -> None:
    from desktop_app.core.gguf.reader import read_model_headers

    try:
        read_model_headers(model)
    except GGUFError as exc:
        raise ImatrixError(f"Cannot use {os.path.basename(model)}: {exc.reason}") from None
    except OSError as exc:
        raise ImatrixError(f"Cannot read {os.path.basename(model)}: {exc.strerror or exc}.") from None


def _finish(run: Any, part: str, out: str) -> None:
    if run.returncode == 0 and not run.cancelled and os.path.exists(part):
        os.replace(part, out)
        return
    with contextlib.suppress(FileNotFoundError):
        os.remove(part)
    if run.cancelled:
        raise ImatrixCancelled("Computing the importance matrix was cancelled.")
    for kind, payload in run.messages:
        if kind == "error" and isinstance(payload, str):
            raise ImatrixError(payload[:400])
    from desktop_app.core.child import describe_exit

    last = next((line.strip() for line in reversed(run.tail) if line.strip()), "")
    raise ImatrixError(f"llama.cpp {describe_exit(run.returncode)} computing the importance matrix. {last[-300:]}")
