"""Quantize a GGUF with llama.cpp's own quantizer, in a child process.

``llama_model_quantize`` has no cancel and aborts the whole process on some errors, so it never
runs inside the app's process.
"""

from __future__ import annotations

import subprocess

from desktop_app.core.child import child_command
from desktop_app.core.errors import (
    QuantizeError,  # noqa: F401 (re-exported)
)
from desktop_app.core.gguf.ggml_types import FILE_TYPES
from desktop_app.core.runtime import llama_child_env

FTYPE_BY_NAME = {name: num for num, name in FILE_TYPES.items()}
QUANTIZE_TIMEOUT_S = 3600


def quantize(src: str, dst: str, quant: str, *, threads: int = 0) -> None:
    """Write ``dst``: ``src`` quantized to ``quant`` (e.g. "Q4_K_M"), requantizing if need be.

    Raises:
        QuantizeError: unknown quant name, or llama.cpp failed (its last log line says why).
    """
    if quant not in FTYPE_BY_NAME:
        raise QuantizeError(f"Unknown quant {quant!r}; choose one of {', '.join(sorted(FTYPE_BY_NAME))}.")
    cmd = child_command("desktop_app.core._quantize_child", src, dst, str(FTYPE_BY_NAME[quant]), str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=QUANTIZE_TIMEOUT_S, env=llama_child_env())
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        how = f"crashed (signal {-proc.returncode})" if proc.returncode < 0 else "failed"
        raise QuantizeError(f"llama.cpp's quantizer {how} writing {quant}: {last}")
