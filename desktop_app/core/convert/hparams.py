"""A checkpoint's config.json, read as llama.cpp's converter reads it, and checked before it drives anything.

llama.cpp's converter loads the config through transformers' ``AutoConfig``, which fills in the
defaults of the architecture's config class; the GGUF keys it writes depend on those defaults (a
Llama config without ``head_dim`` still gets ``attention.key_length``). :data:`CONFIG_DEFAULTS`
holds the defaults of the config classes of the architectures QuantDesk converts, so the same keys
come out without transformers.

Every number that sizes a loop or an allocation (layers, heads, vocabulary) is bounded here: a
config.json is a file from the internet.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from desktop_app.core.errors import CheckpointError

MAX_CONFIG_BYTES = 4 * 1024 * 1024
# name: (smallest, largest) for the integers that size loops and tensors
BOUNDS = {
    "num_hidden_layers": (1, 1024),
    "hidden_size": (1, 1 << 20),
    "intermediate_size": (1, 1 << 22),
    "num_attention_heads": (1, 4096),
    "num_key_value_heads": (1, 4096),
    "vocab_size": (1, 1 << 22),
    "head_dim": (1, 1 << 16),
    "max_position_embeddings": (1, 1 << 30),
}

# What transformers' config classes (4.57, the converter's requirement) put in ``to_dict()`` when
# config.json leaves a key out, for the keys llama.cpp's converter reads. HEADS: the attention head
# count; DERIVED: hidden_size // num_attention_heads. Read off AutoConfig.for_model(...).to_dict().
HEADS, DERIVED = "=heads", "=hidden/heads"
CONFIG_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
              "num_key_value_heads": HEADS, "head_dim": DERIVED, "rope_scaling": None},
    "mistral": {"max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                "num_key_value_heads": 8, "head_dim": None, "sliding_window": 4096},
    "qwen2": {"max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
              "num_key_value_heads": 32, "rope_scaling": None},
    "qwen3": {"max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
              "num_key_value_heads": 32, "head_dim": 128, "rope_scaling": None},
    "gemma2": {"max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
               "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 4096,
               "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
    "gemma3_text": {"max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0,
                    "rope_local_base_freq": 10_000.0, "num_key_value_heads": 4, "head_dim": 256,
                    "sliding_window": 4096, "attn_logit_softcapping": None, "final_logit_softcapping": None,
                    "rope_scaling": None},
    "phi3": {"max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
             "partial_rotary_factor": 1.0, "original_max_position_embeddings": 4096,
             "num_key_value_heads": HEADS, "sliding_window": None, "rope_scaling": None},
}  # fmt: skip
# transformers drops the window where the model does not use it
_WINDOW_ONLY_WHEN_USED = ("qwen2", "qwen3")


def read_json_object(path: Path, what: str, *, limit: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    """A JSON object from ``path``, or a CheckpointError that names the file and what to do."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CheckpointError(f"{what} is missing from {path.parent}: download the checkpoint again.") from e
    if size > limit:
        raise CheckpointError(f"{path.name} is {size:,} bytes, far more than a real {what} holds; it is not usable.")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path.name} is not valid JSON ({e}); download the checkpoint again.") from e
    if not isinstance(value, dict):
        raise CheckpointError(f"{path.name} does not hold a JSON object; it is not a Hugging Face {what}.")
    return value


def architecture_of(config: dict[str, Any]) -> str:
    """The Hugging Face class name the checkpoint was saved from ("LlamaForCausalLM")."""
    arches = config.get("architectures")
    text = config.get("text_config")
    if isinstance(text, dict) and isinstance(text.get("architectures"), list) and text["architectures"]:
        arches = text["architectures"]
    if not isinstance(arches, list) or not arches or not isinstance(arches[0], str):
        raise CheckpointError('config.json names no architecture ("architectures"); it cannot be converted.')
    return arches[0][:200]


def load_hparams(folder: Path) -> dict[str, Any]:
    """config.json with its text_config folded in and transformers' defaults filled, as the converter sees it."""
    config = read_json_object(folder / "config.json", "config.json")
    hparams = dict(config)
    text = config.get("text_config")
    if isinstance(text, dict):
        hparams = {**hparams, **text}
    model_type = hparams.get("model_type")
    model_type = model_type if isinstance(model_type, str) else ""
    _check_bounds(hparams, ("hidden_size", "num_attention_heads"))
    for key, value in CONFIG_DEFAULTS.get(model_type, {}).items():
        if key in hparams and not (key in ("num_key_value_heads", "head_dim") and hparams[key] is None):
            continue
        if value == HEADS:
            value = hparams.get("num_attention_heads")
        elif value == DERIVED:
            heads = hparams.get("num_attention_heads")
            value = hparams["hidden_size"] // heads if heads and "hidden_size" in hparams else None
        hparams[key] = value
    if model_type in _WINDOW_ONLY_WHEN_USED and not hparams.get("use_sliding_window", False):
        hparams["sliding_window"] = None
    _check_bounds(hparams, tuple(BOUNDS))
    return hparams


def _check_bounds(hparams: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if key not in hparams:
            continue
        value = hparams[key]
        if value is None and key in ("head_dim", "num_key_value_heads"):
            continue  # left to the architecture's default
        low, high = BOUNDS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise CheckpointError(f"config.json: {key} is {value!r}, which no real model has ({low} to {high}).")


def find(hparams: dict[str, Any], keys: tuple[str, ...], *, optional: bool = False) -> Any:
    """The first of ``keys`` present in the config (as the converter's ``find_hparam``)."""
    for key in keys:
        if key in hparams:
            return hparams[key]
    if optional:
        return None
    raise CheckpointError(f"config.json lacks {keys[0]}; the checkpoint is incomplete or not a text model.")


def rope_parameters(hparams: dict[str, Any]) -> dict[str, Any]:
    """The RoPE settings in one dict, mirrored from the global keys the way the converter does."""
    raw = hparams.get("rope_parameters", hparams.get("rope_scaling")) or {}
    params: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    theta = find(hparams, ("global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta",
                           "rotary_emb_base"), optional=True)  # fmt: skip
    local = find(hparams, ("local_rope_theta", "rope_local_theta", "rope_theta_local", "swa_rope_theta",
                           "rope_local_base_freq"), optional=True)  # fmt: skip
    partial = find(hparams, ("partial_rotary_factor", "rope_pct", "rope_percent"), optional=True)
    orig = find(hparams, ("original_max_position_embeddings",), optional=True)
    if "full_attention" not in params and "sliding_attention" not in params:
        if local is not None:
            params["sliding_attention"] = {"rope_theta": local}
        if "rope_theta" not in params and theta is not None:
            params["rope_theta"] = theta
        if "rope_type" not in params and params.get("type") is not None:
            params["rope_type"] = params["type"]
        if "partial_rotary_factor" not in params and partial is not None:
            params["partial_rotary_factor"] = partial
        if "original_max_position_embeddings" not in params and orig is not None:
            params["original_max_position_embeddings"] = orig
    return params


def finite_number(value: Any, what: str) -> float:
    """A float from the config that is a real, finite number, or a CheckpointError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CheckpointError(f"config.json: {what} is {value!r}, not a number.")
    return float(value)
