"""Predict the tensor types and file size of a quant that does not exist yet.

A port of the pinned llama.cpp's ``llama_tensor_get_type`` (src/llama-quant.cpp) for the legacy and
k-quant mixes: which tensors are quantized at all, the per-category upgrades (attention V, FFN down,
output, tied embeddings) with their ``use_more_bits`` layer pattern, and the fallback when a row
length is not a multiple of the block size (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, …). Importance
-matrix quants (IQ*) are not planned: their mix depends on the imatrix.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from desktop_app.core.gguf.ggml_types import GGML_TYPES
from desktop_app.core.memory.shape import ModelShape, WeightTensor

T = {t.name: tid for tid, t in GGML_TYPES.items()}
ALIGN = 32
# ftype name -> default tensor type
DEFAULT_TYPE = {
    "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1",
    "Q2_K": "Q2_K", "Q2_K_S": "Q2_K", "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K",
}  # fmt: skip
PLANNABLE = tuple(DEFAULT_TYPE)
FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0", "Q2_0": "Q4_0"}
QUANTIZED = {name for name in T if name not in ("F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64")}


@dataclass
class QuantPlan:
    quant: str
    tensors: list[WeightTensor]
    file_bytes: int
    n_fallback: int  # tensors whose row length forced another type

    @property
    def mix(self) -> Counter[str]:
        return Counter(GGML_TYPES[t.type_id].name for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)


def _category(name: str) -> str:
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for key, cat in (
        ("attn_qkv.weight", "attn_qkv"),
        ("attn_kv_b.weight", "attn_kv_b"),
        ("attn_v.weight", "attn_v"),
        ("attn_k.weight", "attn_k"),
        ("attn_q.weight", "attn_q"),
        ("attn_output.weight", "attn_output"),
        ("ffn_up", "ffn_up"),
        ("ffn_gate", "ffn_gate"),
        ("ffn_down", "ffn_down"),
    ):
        if key in name:
            return cat
    return "other"


def _quantizable(t: WeightTensor) -> bool:
    n = t.name
    return (
        len(t.shape) >= 2
        and n.endswith("weight")
        and "_norm.weight" not in n
        and "ffn_gate_inp.weight" not in n
        and "ffn_gate_tid2eid.weight" not in n
        and "altup" not in n
        and "laurel" not in n
        and "per_layer_model_proj" not in n
        and n not in ("position_embd.weight", "token_types.weight")
        and "ssm_conv1d" not in n
        and "shortconv.conv.weight" not in n
        and "time_mix_" not in n
        and "attn_rel_b.weight" not in n
    )


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _nbytes(shape: tuple[int, ...], type_name: str) -> int:
    t = GGML_TYPES[T[type_name]]
    n = 1
    for d in shape:
        n *= d
    return n // t.block_size * t.type_size


QUANT_VERSION_KV_BYTES = 64  # general.quantization_version, which the quantizer adds (padded)


def _attn_v_type(ftype: str, new: str, n_gqa: int, i_wv: int, n_wv: int, is_70b: bool, n_expert: int) -> str:
    """llama_tensor_get_type for the attention's V (or fused QKV) weights."""
    if ftype == "Q2_K":
        new = "Q4_K" if n_gqa >= 4 else "Q3_K"
    elif ftype == "Q2_K_S" and n_gqa >= 4:
        new = "Q4_K"
    elif ftype == "Q3_K_M":
        new = "Q5_K" if i_wv < 2 else "Q4_K"
    elif ftype == "Q3_K_L":
        new = "Q5_K"
    elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i_wv, n_wv):
        new = "Q6_K"
    elif ftype == "Q4_K_S" and i_wv < 4:
        new = "Q5_K"
    if is_70b and new in ("Q3_K", "Q4_K"):
        new = "Q5_K"
    if n_expert == 8:
        new = "Q8_0"
    return new


def _ffn_down_type(ftype: str, new: str, i_layer: int, n_layer: int) -> str:
    """llama_tensor_get_type for the feed-forward's down projection."""
    if ftype == "Q2_K":
        new = "Q3_K"
    elif ftype == "Q2_K_S":
        if i_layer < n_layer // 8:
            new = "Q4_K"
    elif ftype == "Q3_K_M":
        new = "Q5_K" if i_layer < n_layer // 16 else "Q4_K"  # non-Falcon
    elif ftype == "Q3_K_L":
        new = "Q5_K"
    elif ftype == "Q4_K_M":
        if _use_more_bits(i_layer, n_layer):
            new = "Q6_K"
    elif ftype == "Q5_K_M" and _use_more_bits(i_layer, n_layer):
        new = "Q6_K"
    elif ftype == "Q4_K_S" and i_layer < n_layer // 8:
        new = "Q5_K"
    return new


def _attn_output_type(ftype: str, new: str, n_expert: int) -> str:
    """llama_tensor_get_type for the attention's output projection."""
    if n_expert == 8:
        if ftype in ("Q2_K", "Q3_K_S", "Q3_K_M", "Q4_K_S", "Q4_K_M"):
            new = "Q5_K"
    elif ftype == "Q2_K":
        new = "Q3_K"
    elif ftype == "Q3_K_M":
        new = "Q4_K"
    elif ftype == "Q3_K_L":
        new = "Q5_K"
    return new


def _fit_rows(new: str, nx: int) -> str:
    """The type itself when its blocks tile a row of ``nx`` values, else llama.cpp's fallback."""
    block = GGML_TYPES[T[new]].block_size
    if nx % block == 0:
        return new
    fb = FALLBACK.get(new, new if block <= 32 else "F16")
    if nx % GGML_TYPES[T[fb]].block_size != 0:
        fb = "F16"
    return fb


def plan_quant(shape: ModelShape, quant: str, *, header_bytes: int, has_quant_version: bool = False) -> QuantPlan:
    """The tensors of ``shape`` (an F16/BF16/F32 model, or any GGUF) quantized to ``quant``.

    Raises:
        ValueError: ``quant`` is not one llama.cpp chooses types for without an importance matrix.
    """
    if quant not in DEFAULT_TYPE:
        raise ValueError(f"Cannot plan {quant}: choose one of {', '.join(PLANNABLE)}.")
    ftype, default = quant, DEFAULT_TYPE[quant]
    names = {t.name for t in shape.tensors}
    tied = "output.weight" not in names
    n_head = max(shape.n_head) if shape.n_head else 1
    n_head_kv = max(shape.n_head_kv) if shape.n_head_kv else 1
    n_gqa = n_head // max(n_head_kv, 1)
    n_expert = shape.n_expert
    is_70b = shape.architecture == "llama" and shape.n_layer == 80
    n_attention_wv = sum(1 for t in shape.tensors if _category(t.name) in ("attn_v", "attn_qkv", "attn_kv_b"))
    n_layer = shape.n_layer
    i_wv = i_down = 0
    out: list[WeightTensor] = []
    n_fallback = 0

    for t in shape.tensors:
        if not _quantizable(t):
            out.append(t)
            continue
        new = default
        cat = _category(t.name)
        if default in QUANTIZED:
            nx = t.shape[0]
            if cat == "output" or (tied and cat == "token_embd"):
                if nx % GGML_TYPES[T[new]].block_size != 0:
                    new = "Q8_0"
                elif new != "Q8_0":
                    new = "Q6_K"
            elif cat == "token_embd":
                pass
            elif cat in ("attn_v", "attn_qkv", "attn_kv_b"):
                new = _attn_v_type(ftype, new, n_gqa, i_wv, n_attention_wv, is_70b, n_expert)
                i_wv += 1
            elif cat == "attn_k":
                if n_expert == 8:
                    new = "Q8_0"
            elif cat == "ffn_down":
                i_layer = t.layer if (n_expert > 1 and t.layer is not None) else i_down
                new = _ffn_down_type(ftype, new, i_layer, n_layer)
                i_down += 1
            elif cat == "attn_output":
                new = _attn_output_type(ftype, new, n_expert)
            fitted = _fit_rows(new, t.shape[0])
            n_fallback += fitted != new
            new = fitted
        out.append(WeightTensor(t.name, t.layer, T[new], t.shape, _nbytes(t.shape, new)))

    data = sum(-(-t.n_bytes // ALIGN) * ALIGN for t in out)
    header = header_bytes + (0 if has_quant_version or default not in QUANTIZED else QUANT_VERSION_KV_BYTES)
    return QuantPlan(quant, out, header + data, n_fallback)


def shape_for_quant(
    shape: ModelShape, quant: str, *, header_bytes: int, has_quant_version: bool = False
) -> tuple[ModelShape, QuantPlan]:
    """The ModelShape the planned quant would have, for predicting its memory before it exists."""
    plan = plan_quant(shape, quant, header_bytes=header_bytes, has_quant_version=has_quant_version)
    return replace(shape, tensors=plan.tensors, file_bytes=plan.file_bytes, file_type=quant), plan


def plan_for_headers(headers: list, quant: str) -> QuantPlan:
    """Plan ``quant`` from a model's GGUF header(s) (normally its F16 or BF16 file)."""
    from desktop_app.core.memory.shape import model_shape

    return plan_quant(
        model_shape(headers),
        quant,
        header_bytes=sum(h.header_bytes for h in headers),
        has_quant_version="general.quantization_version" in headers[0].metadata,
    )
