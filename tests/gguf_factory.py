"""Generate real GGUF files with gguf.GGUFWriter, small and fast, plus damaged variants."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType

Q = GGMLQuantizationType
# bytes per block for the raw quantized tensors we write
_BLOCK = {Q.Q4_K: (256, 144), Q.Q6_K: (256, 210), Q.Q8_0: (32, 34), Q.Q4_0: (32, 18)}


def _raw(rows: int, cols: int, qtype: Q) -> np.ndarray:
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
        w.add_tensor("token_embd.weight", _raw(n_vocab, n_embd, Q.Q8_0), raw_dtype=Q.Q8_0)
        for i in range(n_layers):
            w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
            head_dim = n_embd // n_head
            for t, rows in (
                ("attn_q", n_embd),
                ("attn_k", head_dim * n_head_kv),
                ("attn_v", head_dim * n_head_kv),
                ("attn_output", n_embd),
            ):
                w.add_tensor(f"blk.{i}.{t}.weight", _raw(rows, n_embd, quant), raw_dtype=quant)
            w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
            w.add_tensor(f"blk.{i}.ffn_gate.weight", _raw(n_ff, n_embd, quant), raw_dtype=quant)
            w.add_tensor(f"blk.{i}.ffn_up.weight", _raw(n_ff, n_embd, quant), raw_dtype=quant)
            w.add_tensor(f"blk.{i}.ffn_down.weight", _raw(n_embd, n_ff, quant), raw_dtype=quant)
        w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor("output.weight", _raw(n_vocab, n_embd, Q.Q6_K), raw_dtype=Q.Q6_K)
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
