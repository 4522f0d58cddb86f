"""Child process of the runtime check: load models with one configuration, decode, time it.

    python -m desktop_app.core.runtime._check_child N_PROMPT N_GEN MODEL [MODEL...]

The configuration comes in the environment (see ``config.RUNTIME_ENV``). For each model,
generation is timed first, one token per decode as ``llama-bench``'s tg test does, then one prompt
batch as its pp test does: a CPU that faults only on larger batches (AMX) has then already
reported its generation speed. The models load on the CPU alone, even where llama.cpp sees a GPU: with a
GPU in its device list llama.cpp keeps weights in the GPU's host buffer instead of repacking them and
sends large batches to the GPU, so the CPU kernels that fault would go untested, and a result found
that way would crash the day the GPU is gone (unplugged, hidden by CUDA_VISIBLE_DEVICES). Each step
goes to stdout as a JSON line the moment it is done, so a crash loses nothing measured; the parent
reads the speeds of the first model.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import re
import sys
import time

_BUFFER_RE = re.compile(r"\b([A-Za-z0-9_]+) model buffer size")


def main(argv: list[str]) -> int:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # llama.cpp's own prints must not mix into the protocol

    def send(kind: str, payload) -> None:
        out.write(json.dumps([kind, payload]) + "\n")
        out.flush()

    n_prompt, n_gen, models = int(argv[0]), int(argv[1]), argv[2:]

    import llama_cpp

    from desktop_app.core.runtime.backends import backend_dirs, backend_files, variant_scores
    from desktop_app.core.runtime.llama_setup import lib_dir, llama_threads, setup_llama

    folder = lib_dir()
    if folder:
        scores = variant_scores(backend_files(backend_dirs(folder)))
        if scores:
            send("variants", scores)
    config = setup_llama()
    threads = llama_threads(config)
    log: list[str] = []

    @llama_cpp.llama_log_callback
    def on_log(level, text, user_data):
        log.append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(on_log, None)
    for index, path in enumerate(models):
        log.clear()
        error = _run_one(llama_cpp, path, index, n_prompt, n_gen, threads, log, send)
        if error:
            send("error", {"model": index, "message": error})
            return 2
    send("ok", {})
    return 0


def _run_one(llama_cpp, path: str, index: int, n_prompt: int, n_gen: int, threads: dict, log: list[str],
             send) -> str:  # fmt: skip
    t0 = time.perf_counter()
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = 0
    no_gpus = (ctypes.c_void_p * 1)()  # a device list holding only its NULL end: the CPU alone
    mp.devices = ctypes.addressof(no_gpus)
    model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
    if not model:
        return f"llama.cpp could not load {os.path.basename(path)}: {_reason(log)}"
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = n_prompt + n_gen + 16
    cp.n_batch = cp.n_ubatch = max(n_prompt, 1)
    cp.n_seq_max = 1
    cp.n_threads = threads["n_threads"]
    cp.n_threads_batch = threads["n_threads_batch"]
    ctx = llama_cpp.llama_init_from_model(model, cp)
    if not ctx:
        llama_cpp.llama_model_free(model)
        return f"llama.cpp could not create a context: {_reason(log)}"
    buffers = sorted(set(_BUFFER_RE.findall("".join(log))))
    send("loaded", {"model": index, "load_s": time.perf_counter() - t0, "weight_buffers": buffers, **threads})
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    rng = random.Random(1)

    def decode(tokens: list[int]) -> None:
        arr = (llama_cpp.llama_token * len(tokens))(*tokens)
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(tokens))) != 0:
            raise RuntimeError(f"llama_decode failed: {_reason(log)}")

    try:
        decode([llama_cpp.llama_vocab_bos(vocab)])  # warm-up, as llama-bench does
        t0 = time.perf_counter()
        for _ in range(n_gen):
            decode([rng.randrange(n_vocab)])
        gen_s = time.perf_counter() - t0
        send("gen", {"model": index, "tokens": n_gen, "tokens_per_s": n_gen / gen_s if gen_s > 0 else 0.0})
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        prompt = [rng.randrange(n_vocab) for _ in range(n_prompt)]
        t0 = time.perf_counter()
        decode(prompt)
        prompt_s = time.perf_counter() - t0
        send("prompt", {"model": index, "tokens": n_prompt,
                        "tokens_per_s": n_prompt / prompt_s if prompt_s > 0 else 0.0})  # fmt: skip
        decode([rng.randrange(n_vocab)])  # and a token after a long batch, as a chat's first answer token
    except RuntimeError as exc:
        return str(exc)
    finally:
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)
    return ""


def _reason(log: list[str]) -> str:
    """llama.cpp's own words for a failure: its first error line, else its last line."""
    lines = [ln.strip() for ln in "".join(log).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    return (errors[0] if errors else lines[-1] if lines else "no message")[:500]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
