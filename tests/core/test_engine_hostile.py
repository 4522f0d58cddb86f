"""What the engine does with files and templates llama.cpp refuses or that attack it: the user reads
llama.cpp's own reason, and a chat template that loops or grows without end is stopped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from desktop_app.core.engine import EngineError, Sampling, SyncEngine
from desktop_app.core.runtime.llama_setup import load_failure_reason

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gguf_hostile import duplicate_token, kv_str, named_cases, tiny_llama  # noqa: E402


def test_load_failure_reason_is_llama_cpps_own_line():
    lines = [
        "gguf_init_from_file_impl: tensor 'a' has offset 64, expected 0\n",
        "gguf_init_from_file_impl: failed to read tensor data\n",
        "llama_model_load: error loading model: llama_model_loader: failed to load model from /x.gguf\n",
        "llama_model_load_from_file_impl: failed to load model\n",
    ]
    assert load_failure_reason(lines) == "tensor 'a' has offset 64, expected 0"
    assert load_failure_reason(lines[-1:]) == ""


def test_the_engine_passes_on_why_llama_cpp_refused_a_model(tmp_path):
    """A file our reader accepts but llama.cpp does not: the user reads llama.cpp's reason."""
    case = next(c for c in named_cases() if c.name == "block-count-minus-1")
    path = tmp_path / "wrong-type.gguf"
    path.write_bytes(case.data)
    with SyncEngine() as se, pytest.raises(EngineError) as err:
        se.load(str(path), n_ctx=256)
    assert "llama.block_count has wrong type i32 but expected type u32" in str(err.value)
    assert "Failed to load model from file" not in str(err.value)


def test_a_file_llama_cpp_would_abort_on_is_refused_before_the_load(tmp_path):
    path = tmp_path / "duplicate-token.gguf"
    path.write_bytes(duplicate_token())
    with SyncEngine() as se:
        with pytest.raises(EngineError, match="lists the token 't2' twice"):
            se.load(str(path), n_ctx=256)
        assert se.engine.alive  # no abort: the engine is still there


@pytest.mark.parametrize(
    "template, words",
    [
        ("{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx{% endfor %}{% endfor %}", "characters"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
            "MB of memory",
        ),
    ],
    ids=["endless-output", "doubling-string"],
)
def test_a_hostile_chat_template_is_stopped_and_the_engine_keeps_serving(tmp_path, template, words):
    path = tmp_path / "template.gguf"
    path.write_bytes(tiny_llama(extra=[kv_str("tokenizer.chat_template", template)]).to_bytes())
    with SyncEngine() as se:
        se.load(str(path), n_ctx=256)
        with pytest.raises(EngineError, match=words):
            list(se.stream([{"role": "user", "content": "hi"}], Sampling(max_tokens=4)))
        assert se.engine.alive  # still serving: the next request is answered
        assert se.load(str(path), n_ctx=256)["n_ctx"] == 256


def test_a_template_that_only_loops_is_stopped_by_the_clock():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from desktop_app.core.engine.template_guard import TemplateRenderError, bounded_rendering

    looping = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    template = ImmutableSandboxedEnvironment().from_string(looping)
    with pytest.raises(TemplateRenderError, match="still running after 0.5 s"), bounded_rendering(max_s=0.5):
        template.render(messages=[])
    with bounded_rendering(max_s=0.5):  # and the next render is not disturbed
        assert ImmutableSandboxedEnvironment().from_string("{{ 1 + 1 }}").render() == "2"
