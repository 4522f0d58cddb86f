"""Child process: one model's pass over the text, the llama-perplexity way, then its speed.

    python -m desktop_app.core.compare._fidelity_child JOB.json

The job says ``mode`` "reference" (tokenize the text, write the kl-divergence-base file) or
"candidate" (read that file, score against it). Events go to stdout as JSON lines:
``["progress", {...}]``, ``["result", {...}]`` or ``["error", {"message": ...}]``. It runs apart
from the app because llama.cpp aborts the process on some bad input.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from desktop_app.core.compare.kld_file import (
    iter_chunks,
    quantize_rows,
    read_header,
    rows_per_chunk,
    write_header,
)
from desktop_app.core.compare.stats import FidelityStats

SPEED_PROMPT_TOKENS = 256
SPEED_GEN_TOKENS = 64


def main(job_path: str) -> int:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # llama.cpp's own prints must not mix into the protocol

    def send(kind: str, payload: dict[str, Any]) -> None:
        out.write(json.dumps([kind, payload]) + "\n")

    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    try:
        result = run(job, send)
    except Exception as exc:  # reported, not lost
        send("error", {"message": str(exc), "type": type(exc).__name__})
        return 1
    send("result", result)
    return 0


def _load(job: dict):

    from desktop_app.core.runtime.llama_setup import llama_threads, load_llama, setup_llama

    config = setup_llama()
    threads: dict[str, Any] = llama_threads(config, job.get("n_threads"))
    n_ctx = int(job["n_ctx"])
    t0 = time.perf_counter()
    llm = load_llama(
        model_path=job["model"], n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=min(512, n_ctx), **threads,
        n_gpu_layers=int(job.get("n_gpu_layers", 0)), verbose=False, seed=1,
        flash_attn=True,  # what llama-perplexity's "auto" picks on CPU: the numbers then match it to 1e-5
    )  # fmt: skip
    return llm, time.perf_counter() - t0


class _Reference:
    """The reference pass: tokenizes the text, writes each chunk's logits to the kl-divergence-base
    file, and sums the negative log-likelihoods for its perplexity."""

    def __init__(self, job: dict, llm, n_ctx: int, n_vocab: int) -> None:
        text = Path(job["text"]).read_text(encoding="utf-8")
        tokens = np.array(llm.tokenize(text.encode("utf-8"), add_bos=True, special=False), dtype=np.int32)
        if len(tokens) < 2 * n_ctx:
            raise ValueError(
                f"The text is {len(tokens):,} tokens long; at a context of {n_ctx} it needs at least "
                f"{2 * n_ctx:,} (two chunks). Use a longer text or a smaller context."
            )
        self.tokens = tokens
        self.n_chunk = len(tokens) // n_ctx
        if job.get("chunks"):
            self.n_chunk = min(self.n_chunk, int(job["chunks"]))
        self.rows = rows_per_chunk(n_ctx)
        self._out = open(job["base"], "wb")  # noqa: SIM115 (closed by close())
        write_header(self._out, n_ctx, n_vocab, self.n_chunk, tokens)
        self._nll_sum = self._nll2_sum = 0.0
        self._chunks = 0

    def add(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        q, nll = quantize_rows(logits, targets)
        self._out.write(q.tobytes())
        self._nll_sum += float(nll.sum())
        self._nll2_sum += float((nll * nll).sum())
        self._chunks += 1
        return {"ppl": float(np.exp(self._nll_sum / (self._chunks * self.rows)))}

    def summary(self) -> dict[str, Any]:
        n = self.n_chunk * self.rows
        mean = self._nll_sum / n
        var = self._nll2_sum / n - mean * mean
        unc = (var / (n - 1)) ** 0.5 if var > 0 and n > 10 else 0.0
        return {"tokens_scored": n, "ppl": float(np.exp(mean)), "ppl_unc": float(np.exp(mean) * unc)}

    def close(self) -> None:
        self._out.close()


class _Candidate:
    """A candidate's pass: the reference's tokens, each chunk scored against the reference's logits."""

    def __init__(self, job: dict, n_ctx: int, n_vocab: int) -> None:
        header = read_header(job["base"])
        if header.n_vocab != n_vocab:
            raise ValueError(
                f"This model's vocabulary has {n_vocab:,} tokens and the reference's {header.n_vocab:,}: "
                "they are not the same model family, and their probabilities cannot be compared."
            )
        if header.n_ctx != n_ctx:
            raise ValueError(f"The reference was computed at context {header.n_ctx}, not {n_ctx}.")
        self.tokens, self.n_chunk = header.tokens, header.n_chunk
        self._base = iter_chunks(job["base"], header)
        self._stats = FidelityStats()

    def add(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        self._stats.add_chunk(logits, next(self._base), targets)
        s = self._stats.summary()
        return {"ppl": s["ppl"], "kld_mean": s["kld_mean"], "same_top_p": s["same_top_p"]}

    def summary(self) -> dict[str, Any]:
        return {**self._stats.summary(), "kld_histogram": self._stats.kld_histogram()}

    def close(self) -> None:
        pass


def _fill_batch(batch, chunk: np.ndarray, first: int) -> None:
    """One chunk, one sequence, logits for its second half only (as llama-perplexity asks)."""
    batch.n_tokens = len(chunk)
    for k in range(len(chunk)):
        batch.token[k] = int(chunk[k])
        batch.pos[k] = k
        batch.n_seq_id[k] = 1
        batch.seq_id[k][0] = 0
        batch.logits[k] = 1 if k >= first else 0


def run(job: dict, send) -> dict:
    import llama_cpp

    llm, load_s = _load(job)
    n_ctx = int(job["n_ctx"])
    ctx = llm.ctx
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llm.n_vocab()
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
    bos = llama_cpp.llama_vocab_bos(vocab)
    first = n_ctx // 2
    rows = rows_per_chunk(n_ctx)
    scorer = _Reference(job, llm, n_ctx, n_vocab) if job["mode"] == "reference" else _Candidate(job, n_ctx, n_vocab)
    tokens, n_chunk = scorer.tokens, scorer.n_chunk
    batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)
    t_eval = 0.0
    t_start = time.perf_counter()
    try:
        for c in range(n_chunk):
            chunk = tokens[c * n_ctx : (c + 1) * n_ctx].copy()
            if add_bos:
                chunk[0] = bos
            _fill_batch(batch, chunk, first)
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            t0 = time.perf_counter()
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError(f"llama.cpp failed to evaluate chunk {c + 1}.")
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(n_ctx - first, n_vocab))[:rows]
            t_eval += time.perf_counter() - t0
            done = scorer.add(logits, tokens[c * n_ctx + first + 1 : (c + 1) * n_ctx])
            send("progress", {"chunk": c + 1, "of": n_chunk, "elapsed_s": time.perf_counter() - t_start, **done})
    finally:
        llama_cpp.llama_batch_free(batch)
        scorer.close()
    fidelity_s = time.perf_counter() - t_start
    n_prompt = min(SPEED_PROMPT_TOKENS, n_ctx // 2)
    speed = _speed(llm, tokens[1 : 1 + n_prompt], min(SPEED_GEN_TOKENS, n_ctx - n_prompt - 1))
    result = {
        "mode": job["mode"], "n_ctx": n_ctx, "n_vocab": n_vocab, "chunks": n_chunk, "load_s": load_s,
        "fidelity_s": fidelity_s, "eval_s": t_eval, "peak_rss_bytes": _peak_rss(), **speed, **scorer.summary(),
    }  # fmt: skip
    llm.close()
    return result


def _peak_rss() -> int:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    except ImportError:  # Windows
        import psutil

        return int(getattr(psutil.Process().memory_info(), "peak_wset", 0))


def _speed(llm, prompt: np.ndarray, n_gen: int) -> dict:
    """Prompt processing and generation speed, and time to first token, greedy."""
    llm.reset()
    t0 = time.perf_counter()
    llm.eval([int(t) for t in prompt])
    t_prompt = time.perf_counter() - t0
    token = llm.sample(temp=0.0)
    ttft = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 0
    for _ in range(n_gen):
        llm.eval([token])
        token = llm.sample(temp=0.0)
        n += 1
    t_gen = time.perf_counter() - t1
    return {
        "prompt_tokens": len(prompt),
        "prompt_tokens_per_s": len(prompt) / t_prompt if t_prompt else None,
        "gen_tokens": n,
        "gen_tokens_per_s": n / t_gen if t_gen else None,
        "ttft_s": ttft,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
