"""Generate real GGUF files with gguf.GGUFWriter, small and fast, plus damaged variants."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType

Q = GGMLQuantizationType
# bytes per block for the raw quantized tensors we write
_BLOCK = {Q.Q4_K: (256, 144), Q.Q6_K: (256, 210), Q.Q8_0: (32, 34), Q.Q4_0: (32, 18)}


def _add(w: GGUFWriter, name: str, rows: int, cols: int, qtype: Q) -> None:
    if qtype == Q.F16:
        w.add_tensor(name, np.zeros((rows, cols), dtype=np.float16))
    else:
        w.add_tensor(name, _raw(rows, cols, qtype), raw_dtype=qtype)


def _raw(rows: int, cols: int, qtype: Q) -> np.ndarray:
    if qtype == Q.F16:
        return np.zeros((rows, cols), dtype=np.float16)
    block, size = _BLOCK[qtype]
    return np.zeros((rows, cols // block * size), dtype=np.uint8)


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    n_layers: int = 2,
    n_embd: int = 256,
    n_ff: int = 512,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_vocab: int = 512,
    ctx: int = 4096,
    quant: Q = Q.Q4_K,
    file_type: int | None = LlamaFileType.MOSTLY_Q4_K_M,
    name: str | None = "Test Model",
    merges: bool = False,
    chat_template: str | None = "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    extra_kv: dict | None = None,
    split: tuple[int, int] | None = None,  # (index from 0, count): writes split.* keys
    tensors: bool = True,
    tied: bool = False,
) -> Path:
    """A llama-shaped model: token embeddings Q8_0, matrices ``quant``, norms F32, output Q6_K."""
    path = Path(path)
    w = GGUFWriter(str(path), arch)
    if name:
        w.add_name(name)
    w.add_block_count(n_layers)
    w.add_context_length(ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    if file_type is not None:
        w.add_file_type(int(file_type))
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}".encode() for i in range(n_vocab)])
    w.add_token_types([TokenType.NORMAL] * n_vocab)
    if merges:
        w.add_token_merges([f"t o{i}" for i in range(n_vocab - 256)])
    if chat_template:
        w.add_chat_template(chat_template)
    if split is not None:
        w.add_uint16("split.no", split[0])
        w.add_uint16("split.count", split[1])
    for key, value in (extra_kv or {}).items():
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        elif isinstance(value, str):
            w.add_string(key, value)
        else:
            w.add_array(key, value)
    if tensors:
        _add(w, "token_embd.weight", n_vocab, n_embd, Q.F16 if quant == Q.F16 else Q.Q8_0)
        for i in range(n_layers):
            w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
            head_dim = n_embd // n_head
            for t, rows in (
                ("attn_q", n_embd),
                ("attn_k", head_dim * n_head_kv),
                ("attn_v", head_dim * n_head_kv),
                ("attn_output", n_embd),
            ):
                _add(w, f"blk.{i}.{t}.weight", rows, n_embd, quant)
            w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
            _add(w, f"blk.{i}.ffn_gate.weight", n_ff, n_embd, quant)
            _add(w, f"blk.{i}.ffn_up.weight", n_ff, n_embd, quant)
            _add(w, f"blk.{i}.ffn_down.weight", n_embd, n_ff, quant)
        w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
        if not tied:
            _add(w, "output.weight", n_vocab, n_embd, Q.F16 if quant == Q.F16 else Q.Q6_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_split(folder: Path, stem: str, parts: int = 3, **kw) -> list[Path]:
    """A split model: the first part carries metadata and tensors, the others tensors only."""
    paths = []
    for i in range(parts):
        p = folder / f"{stem}-{i + 1:05d}-of-{parts:05d}.gguf"
        write_gguf(p, split=(i, parts), **kw)
        paths.append(p)
    return paths


def patch_u64(path: Path, offset: int, value: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack("<Q", value))


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def _ti(w: GGUFWriter, name: str, ne: tuple[int, ...], qtype: Q) -> None:
    """Add a tensor info only (no data); ``ne`` in ggml order (row length first)."""
    block, size = GGML_QUANT_SIZES[qtype]
    n = 1
    for d in ne:
        n *= d
    nbytes = n // block * size
    w.add_tensor_info(name, tuple(reversed(ne)), np.dtype(np.float32), nbytes, raw_dtype=qtype)


def write_model_header(
    path: Path,
    *,
    arch: str = "llama",
    n_layers: int = 4,
    n_embd: int = 2048,
    n_ff: int = 5632,
    n_head: int = 32,
    n_head_kv: int = 8,
    head_dim: int | None = None,
    n_vocab: int = 32000,
    ctx: int = 131072,
    quant: Q = Q.Q4_K,
    tied: bool = False,
    n_expert: int = 0,
    n_expert_used: int = 0,
    sliding_window: int = 0,
) -> Path:
    """A full-size model header with a sparse data section: llama.cpp can load it with no_alloc.

    Supports llama (dense or MoE) and gemma3 (sliding-window attention, tied embeddings).
    """
    path = Path(path)
    head_dim = head_dim or n_embd // n_head
    w = GGUFWriter(str(path), arch)
    w.add_block_count(n_layers)
    w.add_context_length(ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    if sliding_window:
        w.add_sliding_window(sliding_window)
    if n_expert:
        w.add_expert_count(n_expert)
        w.add_expert_used_count(n_expert_used)
    w.add_file_type(int(LlamaFileType.MOSTLY_Q4_K_M))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([f"t{i}".encode() for i in range(n_vocab)])
    w.add_token_types([TokenType.NORMAL] * n_vocab)
    w.add_token_merges(["t 0"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    _ti(w, "token_embd.weight", (n_embd, n_vocab), Q.Q8_0)
    q_dim, kv_dim = n_head * head_dim, n_head_kv * head_dim
    for i in range(n_layers):
        _ti(w, f"blk.{i}.attn_norm.weight", (n_embd,), Q.F32)
        _ti(w, f"blk.{i}.attn_q.weight", (n_embd, q_dim), quant)
        _ti(w, f"blk.{i}.attn_k.weight", (n_embd, kv_dim), quant)
        _ti(w, f"blk.{i}.attn_v.weight", (n_embd, kv_dim), quant)
        _ti(w, f"blk.{i}.attn_output.weight", (q_dim, n_embd), quant)
        _ti(w, f"blk.{i}.ffn_norm.weight", (n_embd,), Q.F32)
        if arch == "gemma3":
            _ti(w, f"blk.{i}.attn_q_norm.weight", (head_dim,), Q.F32)
            _ti(w, f"blk.{i}.attn_k_norm.weight", (head_dim,), Q.F32)
            _ti(w, f"blk.{i}.post_attention_norm.weight", (n_embd,), Q.F32)
            _ti(w, f"blk.{i}.post_ffw_norm.weight", (n_embd,), Q.F32)
        if n_expert:
            _ti(w, f"blk.{i}.ffn_gate_inp.weight", (n_embd, n_expert), Q.F32)
            _ti(w, f"blk.{i}.ffn_gate_exps.weight", (n_embd, n_ff, n_expert), quant)
            _ti(w, f"blk.{i}.ffn_up_exps.weight", (n_embd, n_ff, n_expert), quant)
            _ti(w, f"blk.{i}.ffn_down_exps.weight", (n_ff, n_embd, n_expert), quant)
        else:
            _ti(w, f"blk.{i}.ffn_gate.weight", (n_embd, n_ff), quant)
            _ti(w, f"blk.{i}.ffn_up.weight", (n_embd, n_ff), quant)
            _ti(w, f"blk.{i}.ffn_down.weight", (n_ff, n_embd), quant)
    _ti(w, "output_norm.weight", (n_embd,), Q.F32)
    if not tied:
        _ti(w, "output.weight", (n_embd, n_vocab), Q.Q6_K if n_embd % 256 == 0 else Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    # the tensor data is a hole: a sparse file takes no disk space and llama.cpp never reads it
    from desktop_app.core.gguf import parse_gguf_header

    h = parse_gguf_header(path.read_bytes(), file_bytes=1 << 60)
    last = max(h.tensors, key=lambda t: t.offset + t.n_bytes)
    with open(path, "r+b") as f:
        f.truncate(h.header_bytes + last.offset + last.n_bytes)
    return path
