"""RoPE in the converter: the Q/K row order llama.cpp expects, and Llama 3.1's frequency factors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from desktop_app.core.errors import CheckpointError


def permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """Undo Hugging Face's Q/K row order (rotate-half RoPE) into GGML's interleaved order."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    if weights.shape[0] % (n_head * 2):
        raise CheckpointError(f"A query/key matrix has {weights.shape[0]} rows, not a multiple of 2 × {n_head} heads.")
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))  # fmt: skip


def llama3_rope_factors(rope: dict[str, Any], hp: dict[str, Any]) -> np.ndarray:
    """Llama 3.1's frequency-dependent RoPE scaling, in float32 as the converter computes it."""
    base = rope.get("rope_theta", 10000.0)
    dim = hp.get("head_dim") or hp["hidden_size"] // hp["num_attention_heads"]
    freqs = np.float32(1.0) / (np.float32(base) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for freq in freqs:
        wavelen = np.float32(2 * math.pi) / freq
        if wavelen < high_wavelen:
            out.append(np.float32(1))
        elif wavelen > low_wavelen:
            out.append(np.float32(factor))
        else:
            smooth = (np.float32(old) / wavelen - np.float32(low)) / np.float32(high - low)
            out.append(np.float32(1) / ((np.float32(1) - smooth) / np.float32(factor) + smooth))
    return np.array(out, dtype=np.float32)
