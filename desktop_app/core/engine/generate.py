"""The engine's answer loop (runs in the engine's child process): llama-cpp-python's chat formatting,
our own token loop.

``Llama.create_chat_completion`` re-detokenizes the whole answer for every new token (twice when
streaming): at token 1,000 of an answer that costs ~7 ms per token, at 5,000 ~35 ms, so a long
answer slows to a crawl and a 10,000-token one spends minutes on it. Here the model's chat handler
still builds the prompt exactly as ``create_chat_completion`` does (the GGUF's template or a named
format, its stop strings and stop tokens), by talking to a stand-in whose ``create_completion``
only records what it was asked; the answer starts with ``Llama.generate`` (its sampler chain, seed
and KV-prefix reuse) and goes on with llama.cpp's decode and that chain called directly, each
token's piece decoded once and stop strings matched on a bounded tail. The text is the same, token
for token (tests hold it against create_chat_completion).
"""

from __future__ import annotations

import codecs
import inspect
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass

from desktop_app.core.engine.template_guard import bounded_rendering


@dataclass
class Progress:
    """Kept up to date while an answer streams, so a stopped answer still has its counts."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reason: str = "stop"  # stop | length


class _Recorder:
    """What the chat handler sees as ``llama``: everything is the model's, but a completion is only noted."""

    def __init__(self, llm) -> None:
        self._llm = llm
        self.request: dict | None = None

    def __getattr__(self, name: str):
        return getattr(self._llm, name)

    def create_completion(self, **kwargs):
        self.request = kwargs
        return iter(())


def chat_request(llm, messages: list[dict], **sampling) -> dict | None:
    """What ``create_chat_completion(messages, stream=True, **sampling)`` would ask of the model:
    the prompt's tokens, stop strings, stopping criteria and sampling. None when the model's chat
    handler is not a plain formatter (then the caller uses create_chat_completion itself)."""
    from llama_cpp import llama_chat_format

    handler = (
        llm.chat_handler
        or llm._chat_handlers.get(llm.chat_format)
        or llama_chat_format.get_chat_completion_handler(llm.chat_format)
    )
    recorder = _Recorder(llm)
    with bounded_rendering():  # the template is the file's code: bounded in time, output and memory
        # the recorder stands in for the model (duck-typed), so the handler's annotation does not fit it
        handler(llama=recorder, messages=messages, stream=True,  # type: ignore[arg-type]
                **{**_chat_defaults(type(llm)), **sampling})  # fmt: skip
    request = recorder.request
    return request if request is not None and isinstance(request.get("prompt"), list) else None


_PASSED = ("temperature", "top_p", "top_k", "min_p", "typical_p", "stop", "seed", "max_tokens", "presence_penalty",
           "frequency_penalty", "repeat_penalty", "tfs_z", "mirostat_mode", "mirostat_tau", "mirostat_eta")  # fmt: skip


# Llama.generate's argument -> (the key create_completion was called with, the default when absent)
_GENERATE = {
    "top_k": ("top_k", 40), "top_p": ("top_p", 0.95), "min_p": ("min_p", 0.05), "typical_p": ("typical_p", 1.0),
    "temp": ("temperature", 0.8), "tfs_z": ("tfs_z", 1.0), "mirostat_mode": ("mirostat_mode", 0),
    "mirostat_tau": ("mirostat_tau", 5.0), "mirostat_eta": ("mirostat_eta", 0.1),
    "frequency_penalty": ("frequency_penalty", 0.0), "presence_penalty": ("presence_penalty", 0.0),
    "repeat_penalty": ("repeat_penalty", 1.0), "stopping_criteria": ("stopping_criteria", None),
    "logits_processor": ("logits_processor", None), "grammar": ("grammar", None),
}  # fmt: skip


def _chat_defaults(cls) -> dict:
    """create_chat_completion's own defaults, which it always passes on (the handler's differ: its
    repeat_penalty is 1.1)."""
    params = inspect.signature(cls.create_chat_completion).parameters
    return {k: params[k].default for k in _PASSED if k in params and params[k].default is not inspect.Parameter.empty}


def stream_answer(llm, request: dict, progress: Progress) -> Generator[str, None, None]:
    """Text pieces of the answer as they are decided; counts and the finish reason go to ``progress``.

    Raises:
        ValueError: the prompt does not fit in the context (llama-cpp-python's own message).
    """
    import llama_cpp

    prompt: list[int] = list(request["prompt"])
    n_ctx = llm.n_ctx()
    if len(prompt) >= n_ctx:
        raise ValueError(f"Requested tokens ({len(prompt)}) exceed context window of {n_ctx}")
    max_tokens = request.get("max_tokens")
    if max_tokens is None or max_tokens <= 0:
        max_tokens = n_ctx - len(prompt)
    max_tokens = min(max_tokens, n_ctx - len(prompt))
    progress.prompt_tokens = len(prompt)
    stop = request.get("stop") or []
    stops = [s.encode("utf-8") for s in ([stop] if isinstance(stop, str) else stop) if s]
    longest_stop = max((len(s) for s in stops), default=0)
    seed = request.get("seed")
    llm.set_seed(seed if seed is not None else random.Random(llm._seed).randint(0, 2**32))
    vocab = llm._model.vocab
    decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
    answer = bytearray()
    emitted = 0  # bytes of ``answer`` already given out
    progress.reason = "stop"  # generate() ends by itself only when a stopping criterion (a stop token) fires
    tokens = _generate(llm, prompt, {arg: request.get(key, default) for arg, (key, default) in _GENERATE.items()})
    try:
        for token in tokens:
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            progress.completion_tokens += 1
            answer += llm.detokenize([token])
            if stops:
                start = max(0, emitted - longest_stop)
                hits = [i for i in (answer.find(s, start) for s in stops) if i >= 0]
                if hits:
                    text = decoder.decode(bytes(answer[emitted : min(hits)]), final=True)
                    if text:
                        yield text
                    return
            end = len(answer) - _held_back(answer, stops, longest_stop)
            if end > emitted:
                text = decoder.decode(bytes(answer[emitted:end]))
                emitted = end
                if text:
                    yield text
            if progress.completion_tokens >= max_tokens:
                progress.reason = "length"
                break
    finally:
        tokens.close()
    text = decoder.decode(bytes(answer[emitted:]), final=True)
    if text:
        yield text


def _generate(llm, prompt: list[int], kwargs: dict) -> Generator[int, None, None]:
    """The tokens ``llm.generate(prompt, **kwargs)`` gives, with each token after the first costing
    only llama.cpp's decode and the sampler chain.

    ``Llama.generate`` itself does the first token: the KV-prefix reuse, the prompt's decode and
    the sampler chain it builds from ``kwargs`` (left in ``llm._sampler``, having accepted that
    token). After it, each token is one ``llama_decode`` of a one-token batch and one
    ``llama_sampler_sample`` on the same chain, with ``llm.input_ids``/``n_tokens`` kept as
    ``generate`` keeps them (the next turn reuses the prefix) and its stopping criteria checked as
    it checks them. ``generate`` spends ~0.6 ms of Python per token beside the decode (a batch
    refill loop, a KV-range removal, numpy views, keyword-argument plumbing through ``sample``):
    with it the app generated 0.92x llama-bench's tg128 on the starter model, without it 0.98x
    (tests/benchmarks/test_bench_runtime.py). What is left per token: ~0.1 ms of our own loop,
    and the sampler: ~0.14 ms for the chain (it fills a candidate array of the whole vocabulary),
    except for plain greedy decoding, where the same pick is an argmax over the logits (~0.02 ms).
    """
    import llama_cpp

    stopping = kwargs.get("stopping_criteria")
    first = llm.generate(prompt, **kwargs)
    try:
        token = next(first)
    except StopIteration:
        return
    finally:
        first.close()
    sampler, ctx, batch = llm._sampler.sampler, llm._ctx.ctx, llm._batch.batch
    pick = _greedy_pick(llm) if _plain_greedy(kwargs) else lambda: llama_cpp.llama_sampler_sample(sampler, ctx, -1)
    while True:
        yield token
        n = llm.n_tokens
        batch.n_tokens = 1
        batch.token[0] = token
        batch.pos[0] = n
        batch.seq_id[0][0] = 0
        batch.n_seq_id[0] = 1
        batch.logits[0] = True
        code = llama_cpp.llama_decode(ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        llm.input_ids[n] = token
        llm.n_tokens = n + 1
        token = pick()
        if stopping is not None and stopping(llm.input_ids[: n + 1], llm.scores[0, :]):
            return


def _plain_greedy(kwargs: dict) -> bool:
    """Whether ``generate``'s chain for these arguments picks the most likely token and nothing
    else: temperature 0 (its greedy sampler) behind a penalty sampler that is off (llama.cpp's
    ``is_disabled``), with no grammar and no logits processor."""
    return (
        kwargs.get("temp") == 0.0
        and kwargs.get("repeat_penalty") == 1.0
        and kwargs.get("frequency_penalty") == 0.0
        and kwargs.get("presence_penalty") == 0.0
        and kwargs.get("grammar") is None
        and kwargs.get("logits_processor") is None
    )


def _greedy_pick(llm) -> Callable[[], int]:
    """The token llama.cpp's greedy sampler would pick from the last logits: the first of the
    highest (its ``>`` scan; numpy's argmax also returns the first), read in place."""
    import ctypes

    import llama_cpp
    import numpy as np

    ctx, n_vocab = llm._ctx.ctx, llm.n_vocab()
    views: dict[int, np.ndarray] = {}  # the logits buffer moves only when llama.cpp reallocates it

    def pick() -> int:
        address = ctypes.addressof(llama_cpp.llama_get_logits_ith(ctx, -1).contents)
        view = views.get(address)
        if view is None:
            view = views[address] = np.frombuffer((ctypes.c_float * n_vocab).from_address(address), np.float32)
        return int(view.argmax())

    return pick


def _held_back(answer: bytearray, stops: list[bytes], longest: int) -> int:
    """How many bytes at the end of the answer could be the start of a stop string (not given out yet)."""
    for k in range(min(longest, len(answer)), 0, -1):
        tail = bytes(answer[-k:])
        if any(s.startswith(tail) for s in stops):
            return k
    return 0
