"""The GGUF a safetensors checkpoint would become, from its config.json alone.

For repos without GGUF files: the tensors convert_hf_to_gguf.py writes for the common
decoder-only architectures (Llama, Mistral, Qwen2/3 and their relatives), in F16 with 1-D norms in
F32, so :mod:`quant_plan` can predict the quants conversion would produce and the predictor their
memory. Other architectures raise ValueError rather than guess.
"""

from __future__ import annotations

from desktop_app.core.gguf.ggml_types import GGML_TYPES
from desktop_app.core.memory.shape import ModelShape, WeightTensor

F16, F32 = 1, 0
ARCHS = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Olmo2ForCausalLM": "olmo2",
    "GraniteForCausalLM": "granite",
}
HEADER_BYTES_PER_TOKEN = 36  # token string + length + type + a BPE merge, as in real GGUFs (SmolLM2: 36.3)


def _t(name: str, ne: tuple[int, ...], layer: int | None) -> WeightTensor:
    type_id = F16 if len(ne) >= 2 else F32
    t = GGML_TYPES[type_id]
    n = 1
    for d in ne:
        n *= d
    return WeightTensor(name, layer, type_id, ne, n // t.block_size * t.type_size)


def shape_from_hf_config(config: dict, weight_map: dict | None = None) -> tuple[ModelShape, int]:
    """(F16 ModelShape, estimated GGUF header bytes) for a transformers config.

    ``weight_map`` (from model.safetensors.index.json) settles whether the output matrix is tied
    to the embeddings when the config does not say.

    Raises:
        ValueError: an architecture this does not know how to lay out.
    """
    archs = config.get("architectures") or []
    arch = next((ARCHS[a] for a in archs if a in ARCHS), None)
    if arch is None:
        raise ValueError(
            f"Predicting GGUF sizes from {', '.join(archs) or 'this config'} is not supported yet; "
            "convert the model to see its size."
        )
    e = int(config["hidden_size"])
    ff = int(config["intermediate_size"])
    n_layer = int(config["num_hidden_layers"])
    h = int(config["num_attention_heads"])
    h_kv = int(config.get("num_key_value_heads") or h)
    hd = int(config.get("head_dim") or e // h)
    vocab = int(config["vocab_size"])
    tied = bool(config.get("tie_word_embeddings", False))
    if weight_map is not None:
        tied = "lm_head.weight" not in weight_map
    tensors = [_t("token_embd.weight", (e, vocab), None)]
    for i in range(n_layer):
        b = f"blk.{i}."
        tensors += [
            _t(b + "attn_norm.weight", (e,), i),
            _t(b + "attn_q.weight", (e, h * hd), i),
            _t(b + "attn_k.weight", (e, h_kv * hd), i),
            _t(b + "attn_v.weight", (e, h_kv * hd), i),
            _t(b + "attn_output.weight", (h * hd, e), i),
        ]
        if arch == "qwen3":
            tensors += [_t(b + "attn_q_norm.weight", (hd,), i), _t(b + "attn_k_norm.weight", (hd,), i)]
        tensors += [
            _t(b + "ffn_norm.weight", (e,), i),
            _t(b + "ffn_gate.weight", (e, ff), i),
            _t(b + "ffn_up.weight", (e, ff), i),
            _t(b + "ffn_down.weight", (ff, e), i),
        ]
    tensors.append(_t("output_norm.weight", (e,), None))
    if not tied:
        tensors.append(_t("output.weight", (e, vocab), None))
    header = vocab * HEADER_BYTES_PER_TOKEN + len(tensors) * 48 + 16 * 1024
    ctx = int(config.get("max_position_embeddings") or 4096)
    shape = ModelShape(
        architecture=arch,
        n_layer=n_layer,
        n_embd=e,
        n_vocab=vocab,
        n_ctx_train=ctx,
        n_head=[h] * n_layer,
        n_head_kv=[h_kv] * n_layer,
        head_dim_k=hd,
        head_dim_v=hd,
        n_ff=ff,
        n_expert=0,
        n_expert_used=0,
        n_swa=int(config.get("sliding_window") or 0) if config.get("use_sliding_window") else 0,
        swa_layers=[bool(config.get("use_sliding_window"))] * n_layer,
        tensors=tensors,
        tied_embeddings=tied,
        file_bytes=header + sum(-(-t.n_bytes // 32) * 32 for t in tensors),
        file_type="F16",
        n_params=sum(_n(t.shape) for t in tensors),
        approximate_reasons=["predicted from config.json: the GGUF does not exist yet"],
    )
    return shape, header


def _n(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
