"""A tiny llama-shaped GGUF with real quantized weights, for the runtime check when the starter is absent.

Its matrices are Q4_0 and Q8_0, the types llama.cpp's CPU backend repacks (CPU_REPACK, AMX) on
AVX2, AVX-512 and ARM: the kernels that fault on some CPUs run on it as they would on a real model.
About 2 MB, written once into the cache folder.
"""

from __future__ import annotations

import os
from pathlib import Path

NAME = "runtime-check-v2.gguf"
N_EMBD, N_FF, N_LAYER, N_HEAD, N_HEAD_KV, N_VOCAB = 256, 512, 2, 4, 2, 512


def write_check_model(folder: Path) -> str:
    """The path of the check model in ``folder``, written there first if need be.

    Raises:
        OSError: the folder cannot be written (full disk, permissions).
    """
    path = Path(folder) / NAME
    if path.is_file() and path.stat().st_size > 0:
        return str(path)
    import numpy as np
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFWriter, LlamaFileType, TokenType
    from gguf.quants import quantize

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{NAME}.{os.getpid()}.tmp")
    rng = np.random.default_rng(1)

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)

    w = GGUFWriter(str(tmp), "llama")
    w.add_name("QuantDesk runtime check")
    w.add_block_count(N_LAYER)
    w.add_context_length(256)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(int(LlamaFileType.MOSTLY_Q4_0))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([bytes([i]) if i < 256 else f"t{i}".encode() for i in range(N_VOCAB)])
    w.add_token_types([TokenType.NORMAL] * N_VOCAB)
    w.add_token_merges(["a b", "c d"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def add(name: str, rows: int, cols: int, qtype) -> None:
        w.add_tensor(name, quantize(matrix(rows, cols), qtype), raw_dtype=qtype)

    add("token_embd.weight", N_VOCAB, N_EMBD, Q.Q8_0)
    head_dim = N_EMBD // N_HEAD
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        add(p + "attn_q.weight", N_EMBD, N_EMBD, Q.Q4_0)
        add(p + "attn_k.weight", N_HEAD_KV * head_dim, N_EMBD, Q.Q4_0)
        add(p + "attn_v.weight", N_HEAD_KV * head_dim, N_EMBD, Q.Q8_0)
        add(p + "attn_output.weight", N_EMBD, N_EMBD, Q.Q4_0)
        w.add_tensor(p + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        add(p + "ffn_gate.weight", N_FF, N_EMBD, Q.Q4_0)
        add(p + "ffn_up.weight", N_FF, N_EMBD, Q.Q4_0)
        add(p + "ffn_down.weight", N_EMBD, N_FF, Q.Q8_0)
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    add("output.weight", N_VOCAB, N_EMBD, Q.Q8_0)
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, path)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    return str(path)
