"""The engine's child process: llama.cpp (through llama-cpp-python) behind a pipe.

Requests arrive on stdin as JSON lines ``[kind, payload]``; answers go back the same way on the
original stdout (fd 1 is pointed at stderr, so nothing llama.cpp prints can corrupt them). It is
started with ``python -m`` rather than multiprocessing so no parent ``__main__`` is re-run. A
reader thread takes
"stop" at once (so a long answer stops at the next token) and queues everything else. If
llama.cpp aborts or the OS kills this process, the app sees the pipe close and says so.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from typing import Any

from desktop_app.core.gguf.quant_names import KV_TYPE_IDS
from desktop_app.core.runtime.llama_setup import LlamaLoadError

# Tokens streamed within this long of the last message go out together: on a small machine every
# message wakes the app's process, which then competes with llama.cpp's threads for the cores.
# The window draws at most every 50 ms (chat page RENDER_INTERVAL_MS), so more often buys nothing:
# 15 ms cost the window's answers about 3 % of their speed on 2 cores (tests/benchmarks/test_bench_chat.py).
# The first piece still goes out at once.
TOKEN_FLUSH_S = 0.05
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed")


def run() -> None:
    """Entry point of the child process."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # stray prints (from llama.cpp or Python) go to stderr, not into the protocol
    stop = threading.Event()
    inbox: queue.Queue = queue.Queue()
    send_lock = threading.Lock()

    def send(kind: str, payload: dict[str, Any]) -> None:
        line = json.dumps([kind, payload])
        with send_lock:
            out.write(line + "\n")
            out.flush()

    def reader() -> None:
        for line in sys.stdin:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg[0] == "stop":
                stop.set()
            else:
                inbox.put(msg)
        os._exit(0)  # the app went away: nothing left to do

    threading.Thread(target=reader, name="engine-reader", daemon=True).start()
    state: dict[str, Any] = {"llm": None, "log": []}
    send("ready", {"pid": os.getpid()})
    while True:
        kind, payload = inbox.get()
        try:
            if kind == "load":
                _load(state, payload, send)
            elif kind == "unload":
                _unload(state)
                send("unloaded", {})
            elif kind == "chat":
                stop.clear()
                _chat(state, payload, send, stop)
            elif kind == "tokenize":
                llm = state["llm"]
                send(
                    "tokens", {"id": payload["id"], "count": len(llm.tokenize(payload["text"].encode(), special=True))}
                )
            elif kind == "exit":
                _unload(state)
                send("bye", {})
                return
        except LlamaLoadError as exc:
            send("error", {"id": payload.get("id"), "request": kind, "message": str(exc)})
        except Exception as exc:  # report and keep serving; the app decides what to do
            send("error", {"id": payload.get("id"), "request": kind, "message": f"{type(exc).__name__}: {exc}"})


def _unload(state: dict) -> None:
    llm = state.get("llm")
    if llm is not None:
        llm.close()
    state["llm"] = None


def _load(state: dict, p: dict, send) -> None:

    from desktop_app.core.runtime.llama_setup import llama_threads, load_llama, setup_llama

    config = setup_llama()
    _unload(state)
    lines: list[str] = []

    t0 = time.perf_counter()
    kv = KV_TYPE_IDS.get(p.get("kv_type", "f16"), 1)
    fa = {"auto": -1, "off": 0, "on": 1}[p.get("flash_attn", "auto")]
    kwargs = dict(
        model_path=p["path"],
        n_ctx=p["n_ctx"],
        n_gpu_layers=p.get("n_gpu_layers", 0),
        n_batch=p.get("n_batch", 2048),
        n_ubatch=p.get("n_ubatch", 512),
        use_mmap=p.get("mmap", True),
        seed=p.get("seed", 0xFFFFFFFF),
        type_k=kv,
        type_v=kv,
        swa_full=False,
        verbose=False,
    )
    kwargs.update(llama_threads(config, p.get("n_threads")))
    # Llama() takes a bool; "auto" resolves to on, as llama.cpp's own probe does on CPU/CUDA/Metal/Vulkan
    kwargs["flash_attn"] = fa != 0
    if not p.get("has_template", True):
        kwargs["chat_format"] = "chatml"  # no template in the file: a common, documented fallback
    llm = load_llama(lines, **kwargs)
    state["llm"] = llm
    send(
        "loaded",
        {
            "path": p["path"],
            "n_ctx": llm.n_ctx(),
            "chat_format": llm.chat_format or "",
            "load_s": time.perf_counter() - t0,
            "log": "".join(lines),
            "n_threads": kwargs["n_threads"],
            "n_threads_batch": kwargs["n_threads_batch"],
            "runtime": config.name,
        },
    )


def _chat(state: dict, p: dict, send, stop: threading.Event) -> None:
    from desktop_app.core.engine.generate import Progress, chat_request, stream_answer

    llm = state["llm"]
    rid = p["id"]
    if llm is None:
        send("error", {"id": rid, "request": "chat", "message": "No model is loaded."})
        return
    sampling = {k: p[k] for k in SAMPLING_KEYS if p.get(k) is not None}
    t0 = time.perf_counter()
    request = chat_request(llm, p["messages"], **sampling)
    reserve = p.get("reserve")
    if request is not None and reserve and len(request["prompt"]) + reserve > llm.n_ctx():
        # counted by the model's tokenizer on the prompt its template built: the answer would not fit
        room = {"prompt_tokens": len(request["prompt"]), "reserve": reserve, "n_ctx": llm.n_ctx()}
        send("error", {"id": rid, "request": "chat", "context_full": room,
                       "message": f"Requested tokens ({room['prompt_tokens']} + {reserve}) exceed context window "
                                  f"of {room['n_ctx']}"})  # fmt: skip
        return
    progress = Progress()
    if request is not None:
        pieces = stream_answer(llm, request, progress)
    else:
        pieces = _completion_pieces(llm, p["messages"], sampling, progress)
    first = None
    stopped = False
    pending: list[str] = []
    last_sent = 0.0
    try:
        for piece in pieces:
            now = time.perf_counter()
            if first is None:
                first = now
            pending.append(piece)
            if now - last_sent >= TOKEN_FLUSH_S:  # the first piece at once, then a few per message
                send("token", {"id": rid, "text": "".join(pending), "pieces": pending})
                pending = []
                last_sent = now
            if stop.is_set():
                stopped = True
                break
    finally:
        pieces.close()
        if pending:
            send("token", {"id": rid, "text": "".join(pending), "pieces": pending})
    end = time.perf_counter()
    n = progress.completion_tokens
    gen_s = end - (first or end)
    send(
        "done",
        {
            "id": rid,
            "prompt_tokens": progress.prompt_tokens,
            "completion_tokens": n,
            "ttft_s": (first or end) - t0,
            "tokens_per_s": (n - 1) / gen_s if n > 1 and gen_s > 0 else 0.0,
            "total_s": end - t0,
            "stopped": stopped,
            "finish_reason": "stopped" if stopped else progress.reason,
        },
    )


def _completion_pieces(llm, messages, sampling, progress):
    """The answer through create_chat_completion, for chat handlers that are not plain formatters."""
    stream = llm.create_chat_completion(messages=messages, stream=True, **sampling)
    try:
        for chunk in stream:
            choice = chunk["choices"][0]
            text = choice["delta"].get("content")
            if text:
                progress.completion_tokens += 1
                progress.prompt_tokens = max(llm.n_tokens - progress.completion_tokens, 0)
                yield text
            if choice.get("finish_reason"):
                progress.reason = choice["finish_reason"]
    finally:
        stream.close()


if __name__ == "__main__":
    run()
