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


def test_greedy_answer_equals_plain_llama_cpp_python(engine, starter_path, plain_llama):
    text, done = _answer(engine, ASK, GREEDY)
    plain = plain_llama(starter_path, n_ctx=1024, seed=1, verbose=False, flash_attn=True)
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


def test_an_answer_that_would_not_fit_is_refused_by_token_count(engine):
    """reserve_answer: the prompt, counted by the model's tokenizer after its template, plus
    max_tokens must fit in the context; otherwise nothing is decoded and the counts come back."""
    from desktop_app.core.kinds import EventKind

    question = [{"role": "user", "content": "word " * 400}]  # 2,000 characters (a len // 3 guess: 666 tokens)
    rid = engine.engine.chat(question, Sampling(temperature=0.0, max_tokens=700), reserve_answer=True)
    ev = engine.events.get(timeout=60)
    assert ev.kind == EventKind.ERROR and ev.request_id == rid
    room = ev.data["context_full"]
    assert room["reserve"] == 700 and room["n_ctx"] == 1024 and 400 < room["prompt_tokens"] < 500
    assert room["prompt_tokens"] + 700 > 1024
    _, done = _answer(engine, question, Sampling(temperature=0.0, max_tokens=500))  # without: it answers
    assert done["prompt_tokens"] == room["prompt_tokens"]


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


# -- the answer loop against llama-cpp-python's own create_chat_completion -----------------------
MODES = {
    "greedy": dict(temperature=0.0, max_tokens=48),
    "sampled": dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, seed=7, max_tokens=48),
    "repeat penalty": dict(temperature=0.7, repeat_penalty=1.1, seed=3, max_tokens=48),
}
PROMPTS = ["Name three colors.", "Écris une phrase en français avec des accents, puis trois émojis.", "Count to 30."]


@pytest.fixture(scope="module")
def plain(starter_path, plain_llama):
    llm = plain_llama(starter_path, n_ctx=1024, seed=1, verbose=False, flash_attn=True)
    yield llm
    llm.close()


def _reference(llm, messages, **sampling):
    out = llm.create_chat_completion(messages=messages, **sampling)
    return (
        out["choices"][0]["message"]["content"],
        out["usage"]["completion_tokens"],
        out["choices"][0]["finish_reason"],
    )


@pytest.mark.parametrize("mode", list(MODES))
def test_answers_equal_create_chat_completion_in_every_mode(engine, plain, mode):
    for prompt in PROMPTS:
        ask = [{"role": "user", "content": prompt}]
        ref, ref_n, ref_finish = _reference(plain, ask, **MODES[mode])
        text, done = _answer(engine, ask, Sampling(**{**Sampling().__dict__, **MODES[mode]}))
        assert text == ref, (mode, prompt)
        assert done["completion_tokens"] == ref_n and done["finish_reason"] == ref_finish


def test_a_model_without_a_template_answers_as_chatml(starter_path, plain, plain_llama):
    chatml = plain_llama(starter_path, n_ctx=1024, seed=1, verbose=False, flash_attn=True, chat_format="chatml")
    try:
        ref, _, _ = _reference(chatml, ASK, temperature=0.0, max_tokens=32)
    finally:
        chatml.close()
    with SyncEngine() as se:
        se.load(starter_path, n_ctx=1024, seed=1, has_template=False)
        text, _ = _answer(se, ASK, Sampling(temperature=0.0, max_tokens=32))
    assert text == ref


def test_stop_strings_cut_the_answer_where_llama_cpp_python_does(plain):
    from desktop_app.core.engine.generate import Progress, chat_request, stream_answer

    ask = [{"role": "user", "content": "Count to 30."}]
    full, _, _ = _reference(plain, ask, temperature=0.0, max_tokens=60)
    stop = full[len(full) // 2 : len(full) // 2 + 3]  # a stop string in the middle of the answer
    ref, ref_n, _ = _reference(plain, ask, temperature=0.0, max_tokens=60, stop=[stop])
    progress = Progress()
    pieces = list(stream_answer(plain, chat_request(plain, ask, temperature=0.0, max_tokens=60, stop=[stop]), progress))
    assert "".join(pieces) == ref and stop not in "".join(pieces) and len(ref) < len(full)
    assert progress.completion_tokens == ref_n and progress.reason == "stop"


def test_each_token_is_detokenized_once_however_long_the_answer(plain, monkeypatch):
    """llama-cpp-python re-detokenizes the whole answer for each token: quadratic, minutes for 10,000."""
    from desktop_app.core.engine.generate import Progress, chat_request, stream_answer

    lengths = []
    real = plain.detokenize
    monkeypatch.setattr(
        plain, "detokenize", lambda tokens, *a, **k: lengths.append(len(tokens)) or real(tokens, *a, **k)
    )
    progress = Progress()
    ask = [{"role": "user", "content": "Write a long story about a dragon."}]
    text = "".join(stream_answer(plain, chat_request(plain, ask, temperature=0.0, max_tokens=200), progress))
    assert text and progress.completion_tokens > 50
    assert set(lengths) == {1} and len(lengths) == progress.completion_tokens


def test_a_follow_up_reuses_the_answer_already_decoded_and_still_equals_llama_cpp_python(engine, plain):
    """Our token loop keeps llama-cpp-python's record of what is in the KV cache (the answer's
    tokens included): the next turn starts from that prefix and must answer as a fresh model does."""
    ask = [{"role": "user", "content": "Name three colors."}]
    first, _ = _answer(engine, ask, Sampling(temperature=0.0, max_tokens=40))
    follow = [*ask, {"role": "assistant", "content": first}, {"role": "user", "content": "And three animals?"}]
    text, done = _answer(engine, follow, Sampling(temperature=0.0, max_tokens=40))
    plain.reset()
    ref, ref_n, _ = _reference(plain, follow, temperature=0.0, max_tokens=40)
    assert text == ref and done["completion_tokens"] == ref_n


def test_the_kv_record_after_an_answer_is_the_prompt_and_the_answer(plain):
    """What the next turn's prefix reuse compares against: every token decoded, in order."""
    from desktop_app.core.engine.generate import Progress, chat_request, stream_answer

    request = chat_request(plain, ASK, temperature=0.0, max_tokens=20)
    progress = Progress()
    text = "".join(stream_answer(plain, request, progress))
    prompt = list(request["prompt"])
    record = [int(t) for t in plain.input_ids[: plain.n_tokens]]
    assert record[: len(prompt)] == prompt
    answer = record[len(prompt) :]  # the token sampled last (here the end-of-turn token) is not decoded
    assert progress.reason == "stop" and len(answer) == progress.completion_tokens
    assert plain.detokenize(answer).decode("utf-8") == text and text


@pytest.mark.parametrize("mode", list(MODES))
def test_plain_greedy_picks_by_argmax_and_equals_the_sampler_chain(plain, monkeypatch, mode):
    """Greedy without penalties skips the chain's whole-vocabulary candidate array after the first
    token; every other mode samples through the chain. Both give create_chat_completion's text."""
    import llama_cpp

    from desktop_app.core.engine.generate import Progress, chat_request, stream_answer

    ask = [{"role": "user", "content": "Count to 30."}]
    plain.reset()
    ref, ref_n, _ = _reference(plain, ask, **MODES[mode])
    calls = []
    real = llama_cpp.llama_sampler_sample
    monkeypatch.setattr(llama_cpp, "llama_sampler_sample", lambda *a: calls.append(1) or real(*a))
    progress = Progress()
    plain.reset()
    text = "".join(stream_answer(plain, chat_request(plain, ask, **MODES[mode]), progress))
    assert text == ref and progress.completion_tokens == ref_n
    # (generate samples the first token through its own module's binding: not counted here)
    assert len(calls) == 0 if mode == "greedy" else len(calls) >= ref_n - 1
