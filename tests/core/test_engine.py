"""The engine child process with the real starter model: answers, stop, death, bad input."""

from __future__ import annotations

import time

import pytest

from desktop_app.core.engine import EngineError, Sampling, SyncEngine
from desktop_app.core.memory.llama_log import parse_llama_log

GREEDY = Sampling(temperature=0.0, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0, max_tokens=24, seed=1)
ASK = [{"role": "user", "content": "Name three colors."}]


@pytest.fixture(scope="module")
def engine(starter_path):
    with SyncEngine() as se:
        se.load(starter_path, n_ctx=1024, seed=1)
        yield se


def _answer(se, messages, sampling):
    text, done = "", None
    for ev in se.stream(messages, sampling):
        if ev.kind == "token":
            text += ev.data["text"]
        else:
            done = ev.data
    return text, done


def test_greedy_answer_equals_plain_llama_cpp_python(engine, starter_path):
    import llama_cpp

    text, done = _answer(engine, ASK, GREEDY)
    plain = llama_cpp.Llama(starter_path, n_ctx=1024, seed=1, verbose=False, flash_attn=True)
    try:
        ref = plain.create_chat_completion(messages=ASK, temperature=0.0, top_p=0.95, top_k=40, min_p=0.05,
                                           repeat_penalty=1.0, max_tokens=24, seed=1)  # fmt: skip
    finally:
        plain.close()
    assert text == ref["choices"][0]["message"]["content"]
    assert done["completion_tokens"] == ref["usage"]["completion_tokens"]
    assert done["prompt_tokens"] == ref["usage"]["prompt_tokens"]
    assert done["ttft_s"] > 0 and done["tokens_per_s"] > 0 and not done["stopped"]


def test_load_reports_llama_cpp_buffers(engine):
    buffers = parse_llama_log(engine.engine.loaded["log"])
    assert buffers.kv_cache_bytes == 1024 * 30 * 192 * 2 * 2
    assert buffers.weights_bytes > 90 * 1024 * 1024


def test_stop_ends_an_answer_quickly(engine):
    rid = engine.engine.chat([{"role": "user", "content": "Tell a very long story about a dragon."}],
                             Sampling(max_tokens=400, seed=3))  # fmt: skip
    tokens = 0
    while True:
        ev = engine.events.get(timeout=30)
        if ev.kind == "token" and ev.request_id == rid:
            tokens += 1
            if tokens == 3:
                t0 = time.perf_counter()
                engine.engine.stop()
        if ev.kind == "done" and ev.request_id == rid:
            latency = time.perf_counter() - t0
            break
    assert ev.data["stopped"] and ev.data["finish_reason"] == "stopped"
    assert latency < 0.1


def test_prompt_longer_than_the_context_is_a_clear_error(engine):
    with pytest.raises(EngineError, match="exceed context window"):
        _answer(engine, [{"role": "user", "content": "word " * 3000}], GREEDY)
    text, _ = _answer(engine, ASK, GREEDY)  # the engine keeps serving
    assert text


def test_killed_engine_is_reported_and_can_restart(starter_path):
    with SyncEngine() as se:
        se.load(starter_path, n_ctx=512)
        se.engine.kill()
        ev = se.events.get(timeout=10)
        assert ev.kind == "died" and "SIGKILL" in ev.data["message"]
        assert not se.engine.alive
        se.load(starter_path, n_ctx=512)  # a new child
        text, _ = _answer(se, ASK, GREEDY)
        assert text


def test_unloadable_file_is_an_error_not_a_crash(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with SyncEngine() as se, pytest.raises(EngineError):
        se.load(str(bad), n_ctx=512)
