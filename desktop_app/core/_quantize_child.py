"""Child process for :mod:`desktop_app.core.quantize`: src out ftype threads imatrix(or "") run|dry.

llama.cpp's log goes to stderr as it comes (the parent reads its per-tensor lines as progress);
errors of our own go to stdout as ``["error", message]``.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any

# llama-quantize's keys for the imatrix it used (tools/quantize/quantize.cpp)
KV_FILE = b"quantize.imatrix.file"
KV_DATASET = b"quantize.imatrix.dataset"
KV_ENTRIES = b"quantize.imatrix.entries_count"
KV_CHUNKS = b"quantize.imatrix.chunks_count"
_callbacks: list[Any] = []  # ctypes callbacks must outlive every call llama.cpp makes to them


def log_to_stderr(errors: list[str] | None = None) -> None:
    """llama.cpp's log, every level, written to stderr unbuffered as it comes: a tensor's line is
    logged in pieces and the parent must see it the moment its last piece is written. Error lines
    also go to ``errors``, for :func:`~desktop_app.core.runtime.llama_setup.load_failure_reason`."""
    import llama_cpp

    from desktop_app.core.runtime.llama_setup import GGML_LOG_LEVEL_ERROR

    err = sys.stderr.buffer

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        err.write(text)
        if b"\n" in text:
            err.flush()
        if errors is not None and level == GGML_LOG_LEVEL_ERROR:
            errors.append(text.decode("utf-8", "replace"))

    _callbacks.append(on_log)
    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))


def _kv(key: bytes, value: int | str) -> Any:
    import llama_cpp

    kv = llama_cpp.llama_model_kv_override()
    kv.key = key
    union: Any = kv.value
    if isinstance(value, int):
        kv.tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT
        union.val_i64 = value
    else:
        kv.tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR
        union.val_str = value.encode("utf-8", "replace")[:127]
    return kv


def attach_imatrix(params: Any, path: str) -> list[Any]:
    """Point ``params.imatrix`` at the matrix in ``path`` as llama-quantize does: one entry per
    weight, ended by a NULL name, and the same ``quantize.imatrix.*`` keys in the output. Returns
    what must stay alive until the quantizer has run."""
    import llama_cpp
    import numpy as np

    from desktop_app.core.imatrix import load_imatrix

    matrix = load_imatrix(path)
    keep: list[Any] = []
    entries = (llama_cpp.llama_model_imatrix_data * (len(matrix.entries) + 1))()
    for i, (name, values) in enumerate(matrix.entries.items()):
        data = np.ascontiguousarray(values, dtype=np.float32)
        raw = name.encode()
        keep += [data, raw]
        entries[i].name = raw
        entries[i].data = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[i].size = data.size
    entries[len(matrix.entries)].name = None
    kvs = [_kv(KV_FILE, os.path.basename(path))]  # the name only: a path would publish the user's folders
    if matrix.datasets:
        kvs.append(_kv(KV_DATASET, matrix.datasets[0]))
    kvs.append(_kv(KV_ENTRIES, len(matrix.entries)))
    if matrix.chunk_count > 0:
        kvs.append(_kv(KV_CHUNKS, matrix.chunk_count))
    overrides = (llama_cpp.llama_model_kv_override * (len(kvs) + 1))(*kvs)  # zeroed last: key[0] == 0
    params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    params.kv_overrides = ctypes.cast(overrides, ctypes.POINTER(llama_cpp.llama_model_kv_override))
    return [*keep, entries, overrides]


def main() -> int:
    src, out, ftype, threads, imatrix, mode = sys.argv[1:7]
    import llama_cpp

    from desktop_app.core.errors import ImatrixError
    from desktop_app.core.runtime.llama_setup import llama_threads, setup_llama

    config = setup_llama()
    log_to_stderr()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(ftype)
    params.allow_requantize = True
    params.nthread = int(threads) or llama_threads(config)["n_threads"]
    params.dry_run = mode == "dry"
    try:
        keep = attach_imatrix(params, imatrix) if imatrix else []
    except ImatrixError as exc:
        print(json.dumps(["error", str(exc)]), flush=True)
        return 2
    rc = llama_cpp.llama_model_quantize(src.encode(), out.encode(), ctypes.byref(params))
    del keep
    sys.stderr.flush()
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())
