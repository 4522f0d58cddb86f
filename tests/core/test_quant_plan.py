"""Predicted quants against files llama.cpp's quantizer really writes."""

from __future__ import annotations

import os

import pytest

from desktop_app.core.gguf import read_gguf_header
from desktop_app.core.gguf.ggml_types import GGML_TYPES
from desktop_app.core.memory import model_shape
from desktop_app.core.memory.hf_config import shape_from_hf_config
from desktop_app.core.memory.quant_plan import plan_for_headers, plan_quant, shape_for_quant
from desktop_app.core.quantize import QuantizeError, quantize
from tests.gguf_factory import Q, write_gguf

QUANTS = ["Q4_K_S", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"]


def _types(tensors) -> dict[str, str]:
    return {t.name: GGML_TYPES[t.type_id].name for t in tensors}


def _check(src: str, folder, quants) -> list[tuple[str, int, int]]:
    h = read_gguf_header(src)
    rows = []
    for q in quants:
        dst = str(folder / f"{q}.gguf")
        quantize(src, dst, q)
        real = read_gguf_header(dst)
        plan = plan_for_headers([h], q)
        assert _types(plan.tensors) == {t.name: t.type_name for t in real.tensors}, q
        rows.append((q, plan.file_bytes, os.path.getsize(dst)))
    return rows


@pytest.fixture(scope="module")
def smollm2_f16(tmp_path_factory, starter_path):
    path = tmp_path_factory.mktemp("f16") / "smollm2-f16.gguf"
    quantize(starter_path, str(path), "F16")  # dequantizes Q4_1 (allow_requantize)
    return str(path)


def test_smollm2_quants_match_the_quantizer(smollm2_f16, tmp_path):
    # n_embd 576 is not a multiple of 256, so most k-quant tensors take the fallback types
    for q, predicted, real in _check(smollm2_f16, tmp_path, QUANTS):
        assert abs(predicted - real) <= 0.001 * real, q
        assert predicted == real, q  # to the byte


def test_regular_shapes_match_the_quantizer(tmp_path):
    src = write_gguf(tmp_path / "f16.gguf", quant=Q.F16, file_type=1, n_layers=16, n_embd=512, n_ff=1536,
                     n_head=8, n_head_kv=2, n_vocab=1024)  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    for q, predicted, real in _check(str(src), out, [*QUANTS, "Q3_K_M", "Q2_K"]):
        assert abs(predicted - real) <= 0.001 * real, q


def test_q4_k_m_upgrades_follow_use_more_bits(tmp_path):
    src = write_gguf(tmp_path / "f16.gguf", quant=Q.F16, file_type=1, n_layers=16, n_embd=512, n_ff=1536,
                     n_head=8, n_head_kv=2, n_vocab=1024)  # fmt: skip
    h = read_gguf_header(src)
    plan = _types(plan_quant(model_shape([h]), "Q4_K_M", header_bytes=h.header_bytes).tensors)
    q6 = [i for i in range(16) if plan[f"blk.{i}.ffn_down.weight"] == "Q6_K"]
    assert q6 == [0, 1, 4, 7, 10, 13, 14, 15]  # first and last eighths, then every third layer
    assert plan["output.weight"] == "Q6_K" and plan["blk.0.attn_norm.weight"] == "F32"


def test_config_json_gives_the_same_tensors_as_the_real_conversion(smollm2_f16):
    config = {"architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
              "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
              "tie_word_embeddings": True, "max_position_embeddings": 8192}  # fmt: skip
    shape, header = shape_from_hf_config(config)
    real_h = read_gguf_header(smollm2_f16)
    real = model_shape([real_h])
    assert sorted((t.name, t.type_id, t.shape) for t in shape.tensors) == sorted(
        (t.name, t.type_id, t.shape) for t in real.tensors
    )
    predicted = plan_quant(shape, "Q4_K_M", header_bytes=header).file_bytes
    actual = plan_quant(real, "Q4_K_M", header_bytes=real_h.header_bytes).file_bytes
    assert abs(predicted - actual) < 0.01 * actual  # only the tokenizer's share of the header is estimated
    assert shape.approximate
    with pytest.raises(ValueError, match="not supported yet"):
        shape_from_hf_config({"architectures": ["WeirdForCausalLM"]})


def test_planned_shape_feeds_the_predictor(smollm2_f16):
    h = read_gguf_header(smollm2_f16)
    planned, plan = shape_for_quant(model_shape([h]), "Q8_0", header_bytes=h.header_bytes)
    assert planned.file_type == "Q8_0" and planned.file_bytes == plan.file_bytes
    assert plan.mix["Q8_0"] == 211 and plan.mix["F32"] == 61


def test_unknown_quant_names_are_refused(smollm2_f16):
    with pytest.raises(ValueError, match="Cannot plan IQ2_XS"):
        plan_quant(model_shape([read_gguf_header(smollm2_f16)]), "IQ2_XS", header_bytes=0)
    with pytest.raises(QuantizeError, match="Unknown quant"):
        quantize(smollm2_f16, "/nonexistent/x.gguf", "Q9_Z")


def test_tensor_index_settles_tied_embeddings():
    config = {
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 512, "intermediate_size": 1536,
        "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 1000,
    }  # fmt: skip
    untied, _ = shape_from_hf_config(config, {"lm_head.weight": "model.safetensors"})
    tied, _ = shape_from_hf_config(config, {"model.embed_tokens.weight": "model.safetensors"})
    assert not untied.tied_embeddings and any(t.name == "output.weight" for t in untied.tensors)
    assert tied.tied_embeddings and not any(t.name == "output.weight" for t in tied.tensors)
