"""Compare candidates against a reference: one model in memory at a time, each in a child process.

The reference pass writes llama.cpp's kl-divergence-base file once (kept in the cache, keyed by
model, text and context, so a second comparison reuses it); each candidate then runs alone against
that file. RAM is bounded by one model plus one chunk of logits, whatever the text length.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from desktop_app.core.child import child_command
from desktop_app.core.errors import CompareCancelled, CompareError, QuantDeskError  # noqa: F401 (re-exported)
from desktop_app.core.kinds import Verdict
from desktop_app.core.memory.history import model_fingerprint
from desktop_app.core.paths import app_paths
from desktop_app.core.runtime import llama_child_env
from desktop_app.resources import resource_path

DEFAULT_N_CTX = 512
DEFAULT_TEXT = "compare/fidelity-text.txt"


@dataclass
class CompareProgress:
    model: str  # path
    role: str  # reference | candidate
    index: int  # 0 for the reference, 1.. for candidates
    n_models: int
    chunk: int
    chunks: int
    running: dict = field(default_factory=dict)  # ppl, kld_mean… so far

    @property
    def fraction(self) -> float:
        return (self.index + (self.chunk / self.chunks if self.chunks else 0)) / self.n_models


@dataclass
class ModelResult:
    path: str
    role: str
    file_bytes: int
    stats: dict = field(default_factory=dict)  # everything the child measured
    error: str = ""
    partial: bool = False  # cancelled or failed part-way: the numbers cover the chunks done

    def to_dict(self) -> dict:
        return {"path": self.path, "role": self.role, "file_bytes": self.file_bytes, "error": self.error,
                "partial": self.partial, **self.stats}  # fmt: skip


@dataclass
class Comparison:
    reference: ModelResult
    candidates: list[ModelResult]
    n_ctx: int
    text: str
    base_file: str
    reference_quantized: bool = False
    cancelled: bool = False

    @property
    def chunks(self) -> int:
        return int(self.reference.stats.get("chunks", 0))


def _base_file_path(reference: str, text_path: str, n_ctx: int, chunks: int | None) -> Path:
    h = hashlib.sha256()
    h.update(model_fingerprint(reference).encode())
    h.update(Path(text_path).read_bytes())
    h.update(f"{n_ctx}:{chunks}".encode())
    folder = app_paths().cache_dir / "kld-base"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{h.hexdigest()[:24]}.kld"


def check_same_vocabulary(reference: str, candidates: list[str]) -> None:
    """Refuse models whose vocabularies differ: their probabilities are over different tokens."""
    from desktop_app.core.gguf import read_gguf_header

    def vocab_id(path: str) -> tuple[int, str]:
        md = read_gguf_header(path).metadata
        tokens = md.get("tokenizer.ggml.tokens")
        n = len(tokens) if isinstance(tokens, list) else int(getattr(tokens, "count", 0) or 0)
        return n, str(md.get("tokenizer.ggml.model", "?"))

    ref = vocab_id(reference)
    for c in candidates:
        other = vocab_id(c)
        if other != ref:
            raise CompareError(
                f"{Path(c).name} has a different vocabulary ({other[0]:,} tokens, {other[1]}) from the reference "
                f"{Path(reference).name} ({ref[0]:,} tokens, {ref[1]}): compare quants of the same model."
            )


def run_comparison(
    reference: str,
    candidates: list[str],
    *,
    text_path: str | None = None,
    n_ctx: int = DEFAULT_N_CTX,
    chunks: int | None = None,
    n_threads: int | None = None,
    progress: Callable[[CompareProgress], None] | None = None,
    cancel: threading.Event | None = None,
    machine=None,
) -> Comparison:
    """Run the reference pass (or reuse its file), then each candidate. Raises CompareError early
    for bad input; a cancel or a failing candidate leaves labelled partial results instead."""
    text_path = str(text_path or resource_path(DEFAULT_TEXT))
    for p in [reference, *candidates]:
        if not Path(p).is_file():
            raise CompareError(f"{p}: no such file.")
    check_same_vocabulary(reference, candidates)
    predicted = {p: predict_memory(p, n_ctx, machine) for p in dict.fromkeys([reference, *candidates])}
    ref_pred = predicted[reference]
    if ref_pred is not None and ref_pred.verdict == Verdict.TOO_LARGE:
        raise CompareError(
            f"The reference {Path(reference).name} needs about {_gb(ref_pred.ram.total_bytes)} and does not fit in "
            "this computer's memory. Pick a smaller reference (Q8_0 is close to F16 for this purpose)."
        )
    cancel = cancel or threading.Event()
    # n_threads None: the children use the runtime's threads (llama.cpp's default here, or the setting)
    base = _base_file_path(reference, text_path, n_ctx, chunks)
    n_models = 1 + len(candidates)
    comparison = Comparison(
        ModelResult(reference, "reference", os.path.getsize(reference)), [], n_ctx, text_path, str(base),
        reference_quantized=model_quant(reference) not in REFERENCE_GRADE,
    )  # fmt: skip
    ref_job = {"mode": "reference", "model": reference, "text": text_path, "n_ctx": n_ctx, "chunks": chunks,
               "base": str(base), "n_threads": n_threads}  # fmt: skip
    comparison.reference.stats = _reference_pass(ref_job, base, n_models, progress, cancel)
    comparison.reference.stats["predicted_ram_bytes"] = ref_pred.ram.total_bytes if ref_pred else None
    for i, cand in enumerate(candidates, start=1):
        result = ModelResult(cand, "candidate", os.path.getsize(cand))
        comparison.candidates.append(result)
        job = {"mode": "candidate", "model": cand, "n_ctx": n_ctx, "base": str(base), "n_threads": n_threads}
        try:
            result.stats = _run_child(job, i, n_models, "candidate", progress, cancel, partial=result)
            pred = predicted[cand]
            result.stats["predicted_ram_bytes"] = pred.ram.total_bytes if pred else None
        except CompareCancelled:
            result.partial = True
            result.error = "Cancelled: the numbers cover the chunks done."
            comparison.cancelled = True
            break
        except CompareError as exc:
            result.error = str(exc)
            result.partial = bool(result.stats)
    return comparison


def _reference_pass(job: dict, base: Path, n_models: int, progress, cancel: threading.Event) -> dict:
    """The reference's figures; its kl-divergence-base file is kept beside its figures and reused
    by the next comparison with the same reference, text and context (a cancelled pass leaves none)."""
    cached = base.with_suffix(".json")
    if base.exists() and cached.exists():
        return json.loads(cached.read_text())
    tmp = base.with_suffix(".partial")
    try:
        stats = _run_child({**job, "base": str(tmp)}, 0, n_models, "reference", progress, cancel)
    except (CompareCancelled, CompareError):
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, base)
    cached.write_text(json.dumps(stats))
    return stats


REFERENCE_GRADE = ("F32", "F16", "BF16")


def model_quant(path: str) -> str:
    from desktop_app.core.gguf import read_gguf_header
    from desktop_app.core.gguf.model_info import model_info_from_headers

    return model_info_from_headers([read_gguf_header(path)], file_name=Path(path).name).quant


def predict_memory(path: str, n_ctx: int, machine=None):
    """What loading the model for the comparison takes on this machine (None when unknown)."""
    from desktop_app.core.hub.source import load_model_shape
    from desktop_app.core.memory import Machine, Predictor, RunSettings

    try:
        if machine is None:
            from desktop_app.core.hardware import detect_hardware

            machine = Machine.from_hardware(detect_hardware())
        shape, _name = load_model_shape(path)
        return Predictor(shape, machine).predict(RunSettings(n_ctx=n_ctx))
    except Exception:  # a prediction is a help, not a gate, when the header is unusual
        return None


def _gb(n: int) -> str:
    from desktop_app.core.units import format_bytes

    return format_bytes(n)


def _run_child(job: dict, index: int, n_models: int, role: str, progress, cancel: threading.Event,
               partial: ModelResult | None = None) -> dict:  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(job, f)
        job_path = f.name
    proc = subprocess.Popen(
        child_command("desktop_app.core.compare._fidelity_child", job_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=llama_child_env(),
    )  # fmt: skip
    out, err = proc.stdout, proc.stderr
    assert out is not None and err is not None  # Popen made them pipes
    stderr_tail: list[str] = []

    def drain() -> None:
        for line in err:
            stderr_tail.append(line)
            del stderr_tail[:-40]

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()

    def watch() -> None:  # kill the child on cancel; ends with the child
        while proc.poll() is None:
            if cancel.wait(0.2):
                proc.kill()
                return

    threading.Thread(target=watch, daemon=True).start()
    result: dict | None = None
    error = ""
    try:
        for line in out:
            try:
                kind, payload = json.loads(line)
            except ValueError:
                continue
            if kind == "progress":
                if partial is not None:
                    partial.stats = {**payload, "chunks": payload["chunk"]}
                if progress:
                    progress(CompareProgress(job["model"], role, index, n_models, payload["chunk"], payload["of"],
                                             payload))  # fmt: skip
            elif kind == "result":
                result = payload
            elif kind == "error":
                error = payload["message"]
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drainer.join(timeout=5)
        out.close()
        err.close()
        os.unlink(job_path)
    if cancel.is_set() and result is None:
        raise CompareCancelled(f"Cancelled while running {Path(job['model']).name}.")
    if result is not None:
        return result
    name = Path(job["model"]).name
    if error:
        raise CompareError(f"{name}: {error}")
    tail = "".join(stderr_tail[-5:]).strip()
    raise CompareError(f"{name}: llama.cpp stopped (exit code {proc.returncode}). {tail[-400:]}")
