"""Comparing quant levels: fidelity the llama-perplexity way, speed, memory."""

from desktop_app.core.compare.runner import (
    CompareCancelled,
    CompareError,
    CompareProgress,
    Comparison,
    ModelResult,
    run_comparison,
)

__all__ = ["CompareCancelled", "CompareError", "CompareProgress", "Comparison", "ModelResult", "run_comparison"]
