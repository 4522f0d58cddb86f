"""Hugging Face checkpoints written by the tests: nothing can be downloaded here.

- :func:`starter_checkpoint` rebuilds the starter model (SmolLM2-135M-Instruct) as the checkpoint it
  was converted from: its F16 weights under Hugging Face names, with the converter's Q/K permutation
  undone, its config.json, and a tokenizer.json rebuilt from its vocabulary and merges (it hashes to
  llama.cpp's "smollm" pre-tokenizer, as the real one does).
- :func:`random_checkpoint` writes a small random model of each supported architecture, with either
  that byte-level BPE tokenizer or a SentencePiece tokenizer.model trained here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader
from safetensors.numpy import save_file

SMOLLM_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
    "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
    "rms_norm_eps": 1e-05, "rope_theta": 100000, "max_position_embeddings": 8192, "tie_word_embeddings": True,
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2, "head_dim": 64, "hidden_act": "silu",
    "torch_dtype": "float16",
}  # fmt: skip
_HF_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}  # fmt: skip


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of the converter's Q/K permutation: GGML's RoPE row order back to Hugging Face's."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def smollm_tokenizer(folder: Path, gguf_path: str) -> None:
    """tokenizer.json + tokenizer_config.json from the starter's vocabulary, merges and template."""
    r = GGUFReader(gguf_path)
    merges = r.fields["tokenizer.ggml.merges"].contents()
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, (t, kind) in enumerate(zip(tokens, types, strict=True)) if kind == 3]  # fmt: skip
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence",
                          "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]},
        "post_processor": {**byte_level, "add_prefix_space": True, "trim_offsets": False},
        "decoder": {**byte_level, "add_prefix_space": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges},
    }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    config = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>",
              "pad_token": "<|im_end|>", "add_prefix_space": False, "model_max_length": 8192,
              "tokenizer_class": "GPT2Tokenizer", "clean_up_tokenization_spaces": False,
              "chat_template": r.fields["tokenizer.chat_template"].contents(),
              "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]}  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")


def starter_checkpoint(folder: Path, f16_gguf: str, *, shards: int = 1) -> Path:
    """The starter as a Hugging Face checkpoint (``shards`` > 1 writes an index, as big repos do)."""
    r = GGUFReader(f16_gguf)
    heads, kv_heads = SMOLLM_CONFIG["num_attention_heads"], SMOLLM_CONFIG["num_key_value_heads"]
    weights: dict[str, np.ndarray] = {}
    for t in r.tensors:
        data = np.array(t.data)
        if t.name == "token_embd.weight":
            weights["model.embed_tokens.weight"] = data
        elif t.name == "output_norm.weight":
            weights["model.norm.weight"] = data
        else:
            _, block, kind, _ = t.name.split(".")
            if kind in ("attn_q", "attn_k"):
                data = unpermute(data, heads if kind == "attn_q" else kv_heads)
            weights[f"model.layers.{block}.{_HF_NAMES[kind]}.weight"] = data
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(SMOLLM_CONFIG, indent=1), encoding="utf-8")
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    save_weights(folder, weights, shards=shards)
    smollm_tokenizer(folder, f16_gguf)
    return folder


def save_weights(folder: Path, weights: dict[str, np.ndarray], *, shards: int = 1) -> None:
    names = list(weights)
    if shards == 1:
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map = {}
    for i in range(shards):
        part = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        chunk = {n: weights[n] for n in names[i::shards]}
        save_file(chunk, str(folder / part), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(chunk, part))
    index = {"metadata": {"total_size": sum(w.nbytes for w in weights.values())}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))


_SP_TEXT = ("The quick brown fox jumps over the lazy dog. Quantized models run on laptops. "
            "A small model answers quickly; a large one answers well. Hello world! 12345 ") * 40  # fmt: skip


def sentencepiece_tokenizer(folder: Path, *, vocab_size: int = 400, template: str | None = None) -> int:
    """A SentencePiece tokenizer.model trained here (byte fallback, <unk> <s> </s>), with its config."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "sp_train.txt"
    text.write_text(_SP_TEXT.replace(". ", ".\n"), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(folder / "tokenizer"), vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
        hard_vocab_limit=False, user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
    )  # fmt: skip
    text.unlink()
    (folder / "tokenizer.vocab").unlink()
    config: dict[str, Any] = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
                              "add_eos_token": False, "tokenizer_class": "LlamaTokenizer"}  # fmt: skip
    if template:
        config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    return int(sp.vocab_size())


def llama_hf_tokenizer(folder: Path) -> int:
    """A Llama-2-style tokenizer.json with no tokenizer.model (Metaspace, byte-fallback BPE, a Sequence
    decoder), trained here: what gguf-py's LlamaHfVocab converts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])  # fmt: skip
    specials = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    tok.train_from_iterator(_SP_TEXT.split(". "), trainers.BpeTrainer(vocab_size=320, special_tokens=specials))
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizerFast",
              "chat_template": "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"}  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return int(tok.get_vocab_size())


ARCH_CONFIGS: dict[str, dict[str, Any]] = {
    "llama": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_key_value_heads": 2,
              "tie_word_embeddings": False},
    "mistral": {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "num_key_value_heads": 2,
                "sliding_window": None},
    "qwen2": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_key_value_heads": 2},
    "qwen3": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "num_key_value_heads": 2, "head_dim": 16},
    "gemma2": {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "num_key_value_heads": 2,
               "head_dim": 16, "sliding_window": 64, "query_pre_attn_scalar": 16},
    "gemma3": {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "num_key_value_heads": 2,
               "head_dim": 16, "sliding_window": 64, "query_pre_attn_scalar": 16},
    "phi3": {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "num_key_value_heads": 4,
             "original_max_position_embeddings": 4096},
}  # fmt: skip


def _layer_weights(arch: str, i: int, hidden: int, ff: int, q_dim: int, kv_dim: int, w: Any) -> dict[str, Any]:
    p = f"model.layers.{i}."
    out = {p + "self_attn.o_proj.weight": w(hidden, q_dim), p + "mlp.down_proj.weight": w(hidden, ff),
           p + "input_layernorm.weight": w(hidden, norm=True),
           p + "post_attention_layernorm.weight": w(hidden, norm=True)}  # fmt: skip
    if arch == "phi3":
        out[p + "self_attn.qkv_proj.weight"] = w(q_dim + 2 * kv_dim, hidden)
        out[p + "mlp.gate_up_proj.weight"] = w(2 * ff, hidden)
        return out
    out |= {p + "self_attn.q_proj.weight": w(q_dim, hidden), p + "self_attn.k_proj.weight": w(kv_dim, hidden),
            p + "self_attn.v_proj.weight": w(kv_dim, hidden), p + "mlp.gate_proj.weight": w(ff, hidden),
            p + "mlp.up_proj.weight": w(ff, hidden)}  # fmt: skip
    if arch == "qwen2":
        for k, n in (("q", q_dim), ("k", kv_dim), ("v", kv_dim)):
            out[p + f"self_attn.{k}_proj.bias"] = w(n, norm=True)
    if arch in ("qwen3", "gemma3"):
        out[p + "self_attn.q_norm.weight"] = w(q_dim // 4, norm=True)
        out[p + "self_attn.k_norm.weight"] = w(kv_dim // 2, norm=True)
    if arch in ("gemma2", "gemma3"):
        out[p + "pre_feedforward_layernorm.weight"] = w(hidden, norm=True)
        out[p + "post_feedforward_layernorm.weight"] = w(hidden, norm=True)
    return out


def random_checkpoint(folder: Path, arch: str, *, tokenizer: str = "sentencepiece", bpe_from: str | None = None,
                      dtype: str = "float16", layers: int = 2, seed: int = 0) -> Path:  # fmt: skip
    """A small random ``arch`` model: hidden 64, 4 heads, ``layers`` layers, F16, BF16 or F32 weights."""
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer == "bpe":
        assert bpe_from is not None, "the byte-level BPE tokenizer is the starter's"
        smollm_tokenizer(folder, bpe_from)
        vocab = 49152
    elif tokenizer == "llama-hf":
        vocab = llama_hf_tokenizer(folder)
    else:
        vocab = sentencepiece_tokenizer(folder) + 8  # a few unused rows, as real models pad their vocab
    hidden, ff, heads = 64, 128, 4
    config = {"hidden_size": hidden, "intermediate_size": ff, "num_hidden_layers": layers,
              "num_attention_heads": heads, "vocab_size": vocab, "rms_norm_eps": 1e-6,
              "max_position_embeddings": 4096, "bos_token_id": 1, "eos_token_id": 2, **ARCH_CONFIGS[arch]}  # fmt: skip
    head_dim = config.get("head_dim", hidden // heads)
    q_dim, kv_dim = heads * head_dim, config["num_key_value_heads"] * head_dim
    rng = np.random.default_rng(seed)

    def w(*shape: int, norm: bool = False) -> np.ndarray:
        values = (1.0 + 0.1 * rng.standard_normal(shape)) if norm else 0.05 * rng.standard_normal(shape)
        if dtype == "bfloat16":  # numpy has no bfloat16: safetensors gets the raw top halves
            return values.astype(np.float32)
        return values.astype(dtype)

    weights = {"model.embed_tokens.weight": w(vocab, hidden), "model.norm.weight": w(hidden, norm=True)}
    for i in range(layers):
        weights |= _layer_weights(arch, i, hidden, ff, q_dim, kv_dim, w)
    if arch not in ("gemma2", "gemma3"):
        weights["lm_head.weight"] = w(vocab, hidden)
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    if dtype == "bfloat16":
        save_bf16(folder / "model.safetensors", weights)
    else:
        save_weights(folder, weights)
    return folder


def save_bf16(path: Path, weights: dict[str, np.ndarray]) -> None:
    """A safetensors file of BF16 tensors (the top 16 bits of each float32, rounded to nearest even)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, values in weights.items():
        bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        blob = rounded.tobytes()
        header[name] = {"dtype": "BF16", "shape": list(values.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little") + head)
        for blob in blobs:
            f.write(blob)
