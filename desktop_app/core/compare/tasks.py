"""Task metrics: each model summarizes the shipped passages; ROUGE through an `evaluate` module.

The metric module ships in resources/metrics/rouge_lite and is loaded by path, with the Hub
switched off for the call, so scoring works offline. Each candidate is scored against the
reference model's summaries (how far quantization moved the output) and against the summaries
written by hand (how good the output is).
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from desktop_app.core.compare.runner import CompareError
from desktop_app.core.compare.side_by_side import answer_prompts
from desktop_app.resources import resource_path

SUMMARY_SET = "compare/summarize.json"
METRIC = "metrics/rouge_lite"


@dataclass
class TaskResult:
    model: str
    role: str
    summaries: list[str]
    vs_written: dict = field(default_factory=dict)  # rouge1/rouge2/rougeL against the hand-written summaries
    vs_reference: dict = field(default_factory=dict)  # … against the reference model's summaries


def load_summary_set(name: str | None = None) -> dict:
    path = Path(name or resource_path(SUMMARY_SET))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = [(str(i["text"]), str(i["summary"])) for i in data["items"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CompareError(f"{path.name} is not a summarization set: {exc}") from exc
    if not items:
        raise CompareError(f"{path.name} has no items.")
    return {"instruction": data.get("instruction", "Summarize the following text in one sentence."), "items": items}


def rouge(predictions: list[str], references: list[str]) -> dict:
    """ROUGE-1/2/L F1 by the shipped evaluate module (no network)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
    try:
        import evaluate
    except ImportError as exc:
        raise CompareError("The 'evaluate' package is missing: pip install evaluate") from exc
    metric = evaluate.load(str(resource_path(METRIC)))
    return metric.compute(predictions=predictions, references=references)


def summarize_and_score(
    reference: str,
    candidates: list[str],
    *,
    summary_set: str | None = None,
    max_tokens: int = 96,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[TaskResult]:
    data = load_summary_set(summary_set)
    prompts = [f"{data['instruction']}\n\n{text}" for text, _ in data["items"]]
    written = [summary for _, summary in data["items"]]
    results = []
    for role, model in [("reference", reference)] + [("candidate", c) for c in candidates]:
        answers = answer_prompts(model, prompts, max_tokens=max_tokens, cancel=cancel,
                                 progress=functools.partial(progress, model) if progress else None)  # fmt: skip
        summaries = [a.text.strip() for a in answers]
        results.append(TaskResult(model, role, summaries, vs_written=rouge(summaries, written)))
    ref = results[0].summaries
    for r in results[1:]:
        r.vs_reference = rouge(r.summaries, ref)
    return results
