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

    if job["mode"] == "reference":
        text = Path(job["text"]).read_text(encoding="utf-8")
        tokens = np.array(llm.tokenize(text.encode("utf-8"), add_bos=True, special=False), dtype=np.int32)
        if len(tokens) < 2 * n_ctx:
            raise ValueError(
                f"The text is {len(tokens):,} tokens long; at a context of {n_ctx} it needs at least "
                f"{2 * n_ctx:,} (two chunks). Use a longer text or a smaller context."
            )
        n_chunk = len(tokens) // n_ctx
        if job.get("chunks"):
            n_chunk = min(n_chunk, int(job["chunks"]))
        base_out = open(job["base"], "wb")  # noqa: SIM115 (closed in the finally below)
        write_header(base_out, n_ctx, n_vocab, n_chunk, tokens)
        base_chunks = None
    else:
        header = read_header(job["base"])
        if header.n_vocab != n_vocab:
            raise ValueError(
                f"This model's vocabulary has {n_vocab:,} tokens and the reference's {header.n_vocab:,}: "
                "they are not the same model family, and their probabilities cannot be compared."
            )
        if header.n_ctx != n_ctx:
            raise ValueError(f"The reference was computed at context {header.n_ctx}, not {n_ctx}.")
        tokens, n_chunk = header.tokens, header.n_chunk
        base_chunks = iter_chunks(job["base"], header)
        base_out = None

    batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)
    stats = FidelityStats()
    nll_sum = nll2_sum = 0.0
    t_eval = 0.0
    t_start = time.perf_counter()
    try:
        for c in range(n_chunk):
            chunk = tokens[c * n_ctx : (c + 1) * n_ctx].copy()
            if add_bos:
                chunk[0] = bos
            batch.n_tokens = n_ctx
            for k in range(n_ctx):
                batch.token[k] = int(chunk[k])
                batch.pos[k] = k
                batch.n_seq_id[k] = 1
                batch.seq_id[k][0] = 0
                batch.logits[k] = 1 if k >= first else 0
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            t0 = time.perf_counter()
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError(f"llama.cpp failed to evaluate chunk {c + 1}.")
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(n_ctx - first, n_vocab))[:rows]
            t_eval += time.perf_counter() - t0
            targets = tokens[c * n_ctx + first + 1 : (c + 1) * n_ctx]
            if base_out is not None:
                q, nll = quantize_rows(logits, targets)
                base_out.write(q.tobytes())
                nll_sum += float(nll.sum())
                nll2_sum += float((nll * nll).sum())
                done = {"ppl": float(np.exp(nll_sum / ((c + 1) * rows)))}
            else:
                assert base_chunks is not None
                stats.add_chunk(logits, next(base_chunks), targets)
                s = stats.summary()
                done = {"ppl": s["ppl"], "kld_mean": s["kld_mean"], "same_top_p": s["same_top_p"]}
            send("progress", {"chunk": c + 1, "of": n_chunk, "elapsed_s": time.perf_counter() - t_start, **done})
    finally:
        llama_cpp.llama_batch_free(batch)
        if base_out is not None:
            base_out.close()
    fidelity_s = time.perf_counter() - t_start
    n_prompt = min(SPEED_PROMPT_TOKENS, n_ctx // 2)
    speed = _speed(llm, tokens[1 : 1 + n_prompt], min(SPEED_GEN_TOKENS, n_ctx - n_prompt - 1))
    result = {
        "mode": job["mode"],
        "n_ctx": n_ctx,
        "n_vocab": n_vocab,
        "chunks": n_chunk,
        "load_s": load_s,
        "fidelity_s": fidelity_s,
        "eval_s": t_eval,
        "peak_rss_bytes": _peak_rss(),
        **speed,
    }
    if base_out is not None:
        n = n_chunk * rows
        mean = nll_sum / n
        var = nll2_sum / n - mean * mean
        unc = (var / (n - 1)) ** 0.5 if var > 0 and n > 10 else 0.0
        result.update({"tokens_scored": n, "ppl": float(np.exp(mean)), "ppl_unc": float(np.exp(mean) * unc)})
    else:
        result.update(stats.summary())
        result["kld_histogram"] = stats.kld_histogram()
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
