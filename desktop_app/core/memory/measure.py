"""Measure what llama.cpp really allocates for a model and settings, in a child process."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

from desktop_app.core.child import child_command
from desktop_app.core.errors import (
    MeasureError,  # noqa: F401 (re-exported)
)
from desktop_app.core.memory.llama_log import MeasuredBuffers, parse_llama_log
from desktop_app.core.runtime import llama_child_env

MEASURE_TIMEOUT_S = 300


@dataclass
class Measurement:
    buffers: MeasuredBuffers
    flash_attn: bool
    n_ctx: int
    log: str


def measure_allocations(
    path: str,
    *,
    n_ctx: int,
    n_ubatch: int = 512,
    n_batch: int = 2048,
    kv_type: str = "f16",
    flash_attn: str = "auto",
    n_gpu_layers: int = 0,
    no_alloc: bool = False,
    no_mmap: bool = False,
    swa_full: bool = False,
) -> Measurement:
    """Load ``path`` in llama.cpp (in a child process) and return the buffers it logs.

    Raises:
        MeasureError: llama.cpp refused the file or the settings, or crashed.
    """
    cmd = child_command(
        "desktop_app.core.memory._measure_child", path,
        "--ctx", str(n_ctx), "--ubatch", str(n_ubatch), "--batch", str(max(n_batch, n_ubatch)),
        "--kv-type", kv_type, "--flash-attn", flash_attn, "--gpu-layers", str(n_gpu_layers),
    )  # fmt: skip
    if no_alloc:
        cmd.append("--no-alloc")
    if no_mmap:
        cmd.append("--no-mmap")
    if swa_full:
        cmd.append("--swa-full")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=MEASURE_TIMEOUT_S, env=llama_child_env())
    except subprocess.TimeoutExpired:
        raise MeasureError(f"llama.cpp took over {MEASURE_TIMEOUT_S} s to load {path}.") from None
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    except ValueError:
        data = {}
    if proc.returncode != 0 or "log" not in data or "error" in data:
        why = data.get("error") or (proc.stderr.strip().splitlines() or ["no message"])[-1]
        if proc.returncode < 0:
            why = f"llama.cpp crashed (signal {-proc.returncode}): {why}"
        raise MeasureError(f"Could not measure {path}: {why}")
    log = data["log"]
    resolved = re.search(r"Flash Attention (enabled|disabled)", log)
    fa = resolved or re.search(r"flash_attn\s*=\s*(\w+)", log)
    return Measurement(
        buffers=parse_llama_log(log),
        flash_attn=bool(fa and fa.group(1) in ("enabled", "1", "true")),
        n_ctx=n_ctx,
        log=log,
    )
