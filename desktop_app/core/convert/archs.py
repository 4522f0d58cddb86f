"""What each supported architecture writes: its GGUF keys, its tokenizer and its tensor fix-ups.

Each class mirrors one model class of llama.cpp's converter (conversion/llama.py, qwen.py, gemma.py,
phi.py in the pinned sources): ``params`` is its ``set_gguf_parameters``, ``vocab`` its
``set_vocab``, ``keep`` its ``filter_tensors``, ``transform`` its ``modify_tensors`` and
``extra_tensors`` its ``generate_extra_tensors``. Tensors are numpy arrays in Hugging Face layout.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from desktop_app.core.convert import vocab as vocabs
from desktop_app.core.convert.hparams import find, rope_parameters
from desktop_app.core.convert.rope import llama3_rope_factors, permute
from desktop_app.core.convert.special_vocab import SpecialVocab
from desktop_app.core.errors import CheckpointError

_MULTIMODAL_PREFIXES = ("mlp", "vit.", "vpm.", "siglip2.", "conformer.", "merger.", "resampler.", "sound_encoder.",
                        "sound_projection.", "speech_embeddings.")  # fmt: skip
_MULTIMODAL_PARTS = ("visual.", "vision.", "audio.", "talker.", "vision_", "audio_", "token2wav.", "code2wav.",
                     "projector.", "pre_mm_projector_norm", "image_newline", "view_seperator", "patch_embed",
                     "patch_embedding", "patch_merger.", "patch_merge_mlp.", "model.connector.")  # fmt: skip


class TextArch:
    """The converter's ``TextModel``: the keys every text model writes."""

    gguf_arch: gguf.MODEL_ARCH

    def __init__(self, folder: Path, hparams: dict[str, Any], hf_arch: str) -> None:
        self.folder = folder
        self.hp = hparams
        self.hf_arch = hf_arch
        self.rope = rope_parameters(hparams)
        self.block_count: int = find(hparams, ("n_layers", "num_hidden_layers", "n_layer", "num_layers"))
        self.tensor_map = gguf.get_tensor_name_map(self.gguf_arch, self.block_count)
        if find(hparams, ("num_local_experts", "num_experts", "n_routed_experts"), optional=True):
            raise CheckpointError(f"{hf_arch} with experts (mixture of experts) cannot be converted yet.")

    # -- tensors
    def keep(self, name: str) -> str | None:
        if name.startswith(_MULTIMODAL_PREFIXES) or any(p in name for p in _MULTIMODAL_PARTS):
            return None
        return name.replace("language_model.", "")

    def gguf_name(self, name: str) -> str:
        new = self.tensor_map.get_name(key=name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise CheckpointError(f"The tensor {name[:120]!r} has no place in a {self.hf_arch} GGUF; the "
                                  "checkpoint is not the architecture its config.json names.")  # fmt: skip
        return new

    def transform(self, name: str, data: np.ndarray) -> np.ndarray:
        """Applied to whole tensors only (see whole_tensor); others stream in row chunks untouched,
        beyond keeping the first ``out_shape`` rows."""
        return data

    def whole_tensor(self, name: str) -> bool:
        return False

    def out_shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape

    def extra_tensors(self) -> list[tuple[str, np.ndarray]]:
        return []

    def tensor_name(self, key: gguf.MODEL_TENSOR) -> str:
        return gguf.TENSOR_NAMES[key] + ".weight"

    # -- metadata
    def params(self, gw: gguf.GGUFWriter) -> None:
        hp = self.hp
        gw.add_block_count(self.block_count)
        for keys, add in (
            (("max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length",
              "model_max_length"), gw.add_context_length),
            (("hidden_size", "n_embd", "dim"), gw.add_embedding_length),
            (("prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner",
              "hidden_dim"), gw.add_feed_forward_length),
            (("num_attention_heads", "n_head", "n_heads"), gw.add_head_count),
            (("num_key_value_heads", "n_kv_heads"), gw.add_head_count_kv),
        ):  # fmt: skip
            if (value := find(hp, keys, optional=True)) is not None:
                add(value)
        if hp.get("is_causal") is False:
            gw.add_causal_attention(False)
        self._rope_params(gw)
        if (eps := find(hp, ("rms_norm_eps", "norm_eps"), optional=True)) is not None:
            gw.add_layer_norm_rms_eps(eps)
        if (eps := find(hp, ("layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"), optional=True)) is not None:
            gw.add_layer_norm_eps(eps)
        if (head_dim := hp.get("head_dim")) is not None:
            gw.add_key_length(head_dim)
            gw.add_value_length(head_dim)

    def _rope_params(self, gw: gguf.GGUFWriter) -> None:
        rope = self.rope.get("full_attention", self.rope)
        rope_type, factor = rope.get("rope_type"), rope.get("factor")
        if rope_type == "linear" and factor is not None:
            gw.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            gw.add_rope_scaling_factor(factor)
        elif rope_type == "yarn" and factor is not None:
            gw.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            gw.add_rope_scaling_factor(factor)
            gw.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
            for key, add in (("extrapolation_factor", gw.add_rope_scaling_yarn_ext_factor),
                             ("beta_fast", gw.add_rope_scaling_yarn_beta_fast),
                             ("beta_slow", gw.add_rope_scaling_yarn_beta_slow)):  # fmt: skip
                if rope.get(key) is not None:
                    add(rope[key])
            if (attn := rope.get("attention_factor", rope.get("attn_factor"))) is not None:
                gw.add_rope_scaling_yarn_attn_factor(attn)
        elif rope_type in ("su", "longrope"):
            gw.add_rope_scaling_type(gguf.RopeScalingType.LONGROPE)
        if (theta := rope.get("rope_theta")) is not None:
            gw.add_rope_freq_base(theta)
        if (local := self.rope.get("sliding_attention", {}).get("rope_theta")) is not None:
            gw.add_rope_freq_base_swa(local)

    def vocab(self, gw: gguf.GGUFWriter) -> None:
        kind = vocabs.tokenizer_kind(self.folder)
        if kind == "sentencepiece":
            self.sentencepiece(gw)
        elif kind == "bpe":
            self.bpe(gw)
        else:
            raise CheckpointError(self.missing_tokenizer(kind))

    def missing_tokenizer(self, kind: str) -> str:
        if kind == "llama-hf":
            return (
                "This checkpoint's tokenizer is a SentencePiece-style tokenizer.json without tokenizer.model; "
                "QuantDesk cannot convert that kind yet. Download tokenizer.model too if the repo has one."
            )
        return "The checkpoint has no tokenizer (tokenizer.json or tokenizer.model): download it with the weights."

    def bpe(self, gw: gguf.GGUFWriter) -> None:
        vocabs.bpe_vocab(self.folder, self.hp.get("vocab_size")).add_to_gguf(gw)
        SpecialVocab(self.folder, load_merges=True).add_to_gguf(gw)

    def sentencepiece(self, gw: gguf.GGUFWriter) -> None:
        size = find(self.hp, ("vocab_size_per_layer_input", "vocab_size"), optional=True)
        self.write_vocab(gw, vocabs.sentencepiece_vocab(self.folder, size))

    def write_vocab(self, gw: gguf.GGUFWriter, v: vocabs.Vocab) -> None:
        """A "llama" (SentencePiece-like) vocabulary and its special tokens, bounded by its size."""
        v.add_to_gguf(gw)
        SpecialVocab(self.folder, n_vocab=len(v.tokens)).add_to_gguf(gw)


class LlamaArch(TextArch):
    """``LlamaModel``: Llama 2/3.x, Mistral, SmolLM, TinyLlama. Q and K are permuted back to GGML's
    RoPE layout."""

    gguf_arch = gguf.MODEL_ARCH.LLAMA

    def keep(self, name: str) -> str | None:
        return super().keep(name.replace("text_model.", ""))

    def vocab(self, gw: gguf.GGUFWriter) -> None:
        config_path = self.folder / "tokenizer_config.json"
        if config_path.is_file():
            config = vocabs.read_json_object(config_path, "tokenizer_config.json", limit=1 << 28)
            if isinstance(config.get("add_prefix_space"), bool):
                gw.add_add_space_prefix(config["add_prefix_space"])
        if vocabs.tokenizer_kind(self.folder) == "llama-hf":
            self.write_vocab(gw, vocabs.llama_hf_vocab(self.folder))
        else:
            super().vocab(gw)
        if self.hp.get("vocab_size", 32000) == 49152:  # granite small models (and SmolLM, which shares the size)
            gw.add_add_bos_token(False)

    def params(self, gw: gguf.GGUFWriter) -> None:
        super().params(gw)
        gw.add_vocab_size(self.hp["vocab_size"])
        rope_dim = self.hp.get("head_dim") or self.hp["hidden_size"] // self.hp["num_attention_heads"]
        gw.add_rope_dimension_count(rope_dim)

    def whole_tensor(self, name: str) -> bool:
        return name.endswith(("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias"))

    def transform(self, name: str, data: np.ndarray) -> np.ndarray:
        n_head = find(self.hp, ("n_heads", "num_attention_heads"))
        n_kv = find(self.hp, ("n_kv_heads", "num_key_value_heads"))
        if name.endswith(("q_proj.weight", "q_proj.bias")):
            return permute(data, n_head, n_head)
        if name.endswith(("k_proj.weight", "k_proj.bias")):
            return permute(data, n_head, n_kv)
        return data

    def extra_tensors(self) -> list[tuple[str, np.ndarray]]:
        rope = self.rope.get("full_attention", self.rope)
        if not rope or str(rope.get("rope_type", "")).lower() != "llama3":
            return []
        return [(self.tensor_name(gguf.MODEL_TENSOR.ROPE_FREQS), llama3_rope_factors(rope, self.hp))]


class Qwen2Arch(TextArch):
    gguf_arch = gguf.MODEL_ARCH.QWEN2


class Qwen3Arch(TextArch):
    gguf_arch = gguf.MODEL_ARCH.QWEN3


class _GemmaNorms(TextArch):
    """Gemma's RMSNorm multiplies by (1 + w): llama.cpp's multiplies by w, so the converter adds 1,
    in the tensor's own precision."""

    def whole_tensor(self, name: str) -> bool:
        return name.endswith("norm.weight")

    def transform(self, name: str, data: np.ndarray) -> np.ndarray:
        return data + data.dtype.type(1) if name.endswith("norm.weight") else data


class Gemma2Arch(_GemmaNorms):
    """``Gemma2Model``: soft-capping keys, norms stored as (1 + w), no lm_head (tied)."""

    gguf_arch = gguf.MODEL_ARCH.GEMMA2

    def keep(self, name: str) -> str | None:
        return None if name == "lm_head.weight" else super().keep(name)

    def vocab(self, gw: gguf.GGUFWriter) -> None:
        if vocabs.tokenizer_kind(self.folder) != "sentencepiece":
            raise CheckpointError("Gemma 2 needs its tokenizer.model (SentencePiece); download it with the weights.")
        self.sentencepiece(gw)
        gw.add_add_space_prefix(False)

    def params(self, gw: gguf.GGUFWriter) -> None:
        hp = self.hp
        gw.add_context_length(hp["max_position_embeddings"])
        gw.add_embedding_length(hp["hidden_size"])
        gw.add_block_count(self.block_count)
        gw.add_feed_forward_length(hp["intermediate_size"])
        gw.add_head_count(hp["num_attention_heads"])
        gw.add_head_count_kv(hp.get("num_key_value_heads", hp["num_attention_heads"]))
        gw.add_layer_norm_rms_eps(hp["rms_norm_eps"])
        gw.add_key_length(hp["head_dim"])
        gw.add_value_length(hp["head_dim"])
        gw.add_attn_logit_softcapping(hp["attn_logit_softcapping"])
        gw.add_final_logit_softcapping(hp["final_logit_softcapping"])
        gw.add_sliding_window(hp["sliding_window"])


class Gemma3Arch(_GemmaNorms):
    """``Gemma3Model`` (text): norms stored as (1 + w), embedding rows beyond the tokenizer dropped."""

    gguf_arch = gguf.MODEL_ARCH.GEMMA3

    def vocab(self, gw: gguf.GGUFWriter) -> None:
        if vocabs.tokenizer_kind(self.folder) == "sentencepiece":
            self.sentencepiece(gw)
            gw.add_add_space_prefix(False)
        else:
            super().vocab(gw)

    def params(self, gw: gguf.GGUFWriter) -> None:
        super().params(gw)
        hp = self.hp
        gw.add_context_length(hp.get("max_position_embeddings", 131072))
        gw.add_head_count(hp.get("num_attention_heads", 8))
        gw.add_layer_norm_rms_eps(hp.get("rms_norm_eps", 1e-6))
        gw.add_key_length(hp.get("head_dim", 256))
        gw.add_value_length(hp.get("head_dim", 256))
        gw.add_rope_freq_base(self.rope.get("full_attention", self.rope).get("rope_theta", 1_000_000.0))
        if final := hp.get("final_logit_softcapping"):
            gw.add_final_logit_softcapping(final)
        if hp.get("sliding_window_pattern") != 1:
            gw.add_sliding_window(hp["sliding_window"])
        gw.add_head_count_kv(hp.get("num_key_value_heads", 4))

    def _real_vocab(self) -> int:
        if vocabs.tokenizer_kind(self.folder) == "sentencepiece":
            size = find(self.hp, ("vocab_size_per_layer_input", "vocab_size"), optional=True)
            return len(vocabs.sentencepiece_vocab(self.folder, size).tokens)
        tok = vocabs.read_json_object(self.folder / "tokenizer.json", "tokenizer.json", limit=1 << 28)
        model, added = tok.get("model"), tok.get("added_tokens")
        return len(model.get("vocab") or {} if isinstance(model, dict) else {}) + len(added or [])

    def out_shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        if "embed_tokens.weight" in name:
            if not hasattr(self, "_n_vocab"):
                self._n_vocab = self._real_vocab()
            return (min(self._n_vocab, shape[0]), *shape[1:])
        return shape


class Phi3Arch(TextArch):
    """``Phi3MiniModel``: fused QKV and gate/up, LongRoPE factors as tensors."""

    gguf_arch = gguf.MODEL_ARCH.PHI3

    def vocab(self, gw: gguf.GGUFWriter) -> None:
        config_path = self.folder / "tokenizer_config.json"
        if config_path.is_file():
            config = vocabs.read_json_object(config_path, "tokenizer_config.json", limit=1 << 28)
            if config.get("tokenizer_class") == "GPT2Tokenizer":
                return self.bpe(gw)
        if vocabs.tokenizer_kind(self.folder) != "sentencepiece":
            raise CheckpointError("Phi-3 needs its tokenizer.model (SentencePiece); download it with the weights.")
        self.write_vocab(gw, vocabs.phi3_vocab(self.folder, self.hp.get("vocab_size")))

    def _rope_dims(self) -> int:
        n_embd, n_head = find(self.hp, ("hidden_size", "n_embd")), find(self.hp, ("num_attention_heads", "n_head"))
        return int(self.rope.get("partial_rotary_factor", 1.0) * n_embd) // n_head

    def _orig_ctx(self) -> int:
        if "original_max_position_embeddings" not in self.rope:
            raise CheckpointError("config.json lacks original_max_position_embeddings, which Phi-3 needs.")
        return int(self.rope["original_max_position_embeddings"])

    def params(self, gw: gguf.GGUFWriter) -> None:
        hp = self.hp
        gw.add_context_length(find(hp, ("n_positions", "max_position_embeddings")))
        gw.add_rope_scaling_orig_ctx_len(self._orig_ctx())
        gw.add_embedding_length(find(hp, ("hidden_size", "n_embd")))
        gw.add_feed_forward_length(find(hp, ("intermediate_size",)))
        gw.add_block_count(self.block_count)
        gw.add_head_count(find(hp, ("num_attention_heads", "n_head")))
        gw.add_head_count_kv(find(hp, ("num_key_value_heads", "n_head_kv")))
        gw.add_layer_norm_rms_eps(find(hp, ("rms_norm_eps",)))
        gw.add_rope_dimension_count(self._rope_dims())
        gw.add_rope_freq_base(self.rope.get("full_attention", self.rope)["rope_theta"])
        gw.add_sliding_window(hp.get("sliding_window") or 0)
        self._long_rope_attn_factor(gw)

    def _long_rope_attn_factor(self, gw: gguf.GGUFWriter) -> None:
        if not self.rope.get("long_factor"):
            return
        scale = find(self.hp, ("n_positions", "max_position_embeddings")) / self._orig_ctx()
        kind = str(self.rope.get("rope_type", "")).lower()
        if kind in ("su", "longrope"):
            attn = math.sqrt(1 + math.log(scale) / math.log(self._orig_ctx())) if scale > 1.0 else 1.0
        elif kind == "yarn":
            attn = 0.1 * math.log(scale) + 1.0 if scale > 1.0 else 1.0
        else:
            raise CheckpointError(f"Phi-3 with RoPE scaling {kind!r} cannot be converted yet.")
        gw.add_rope_scaling_attn_factors(attn)

    def extra_tensors(self) -> list[tuple[str, np.ndarray]]:
        long, short = self.rope.get("long_factor"), self.rope.get("short_factor")
        if not long:
            return []
        half = self._rope_dims() / 2
        if not isinstance(long, list) or not isinstance(short, list) or not len(long) == len(short) == half:
            raise CheckpointError(f"Phi-3's rope long/short factors must each have {self._rope_dims() // 2} values.")
        return [
            (self.tensor_name(gguf.MODEL_TENSOR.ROPE_FACTORS_LONG), np.array(long, dtype=np.float32)),
            (self.tensor_name(gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT), np.array(short, dtype=np.float32)),
        ]


ARCHITECTURES: dict[str, type[TextArch]] = {
    "LlamaForCausalLM": LlamaArch,
    "LLaMAForCausalLM": LlamaArch,
    "MistralForCausalLM": LlamaArch,
    "Qwen2ForCausalLM": Qwen2Arch,
    "Qwen3ForCausalLM": Qwen3Arch,
    "Gemma2ForCausalLM": Gemma2Arch,
    "Gemma3ForCausalLM": Gemma3Arch,
    "Gemma3ForConditionalGeneration": Gemma3Arch,
    "Phi3ForCausalLM": Phi3Arch,
}
