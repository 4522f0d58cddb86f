"""The SmolLM2 quants the accuracy benchmarks use: F16 made from the starter Q4_1, then the rest
quantized from F16 by llama.cpp. Cached between runs in ~/.cache/quantdesk-bench."""

from __future__ import annotations

import os
from pathlib import Path

from desktop_app.core.quantize import quantize
from desktop_app.core.starter import find_starter_model

CACHE = Path(os.environ.get("QUANTDESK_BENCH_CACHE", Path.home() / ".cache" / "quantdesk-bench"))
QUANTS = ["Q4_1", "F16", "Q8_0", "Q4_K_M", "Q4_K_S"]
PLANNED = ["Q4_K_S", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"]


def smollm2_quants(names: list[str] | None = None) -> dict[str, str]:
    CACHE.mkdir(parents=True, exist_ok=True)
    starter = find_starter_model().path
    assert starter, "the starter model is needed"
    out = {"Q4_1": starter}
    f16 = CACHE / "SmolLM2-135M-Instruct-F16.gguf"
    if not f16.exists():
        quantize(starter, str(f16), "F16")
    out["F16"] = str(f16)
    for q in names or QUANTS:
        if q in out:
            continue
        path = CACHE / f"SmolLM2-135M-Instruct-{q}.gguf"
        if not path.exists():
            quantize(str(f16), str(path), q)
        out[q] = str(path)
    return out
