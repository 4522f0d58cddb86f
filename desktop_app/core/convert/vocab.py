"""The tokenizer part of the GGUF: byte-level BPE (tokenizer.json) or SentencePiece (tokenizer.model).

Follows llama.cpp's converter: ``get_vocab_base`` / ``_set_vocab_gpt2`` for BPE, identifying the
pre-tokenizer by the hash of how the tokenizer splits a fixed text; ``_create_vocab_sentencepiece``
for SentencePiece. The ``tokenizers`` library stands in for transformers' fast tokenizer (they are
the same Rust code), so the hash, the vocabulary and the added tokens come out the same.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import gguf

from desktop_app.core.convert.hparams import read_json_object
from desktop_app.core.convert.pre_tokenizers import CHECK_TEXT, PRE_TOKENIZERS
from desktop_app.core.convert.special_vocab import MAX_TOKENIZER_BYTES
from desktop_app.core.errors import CheckpointError


class SPType(IntEnum):
    """SentencePiece token types, numbered as llama.cpp's converter numbers them."""

    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


@dataclass
class Vocab:
    model: str  # tokenizer.ggml.model: "gpt2" or "llama"
    pre: str  # tokenizer.ggml.pre
    tokens: list[Any]  # str (BPE) or bytes (SentencePiece)
    types: list[int]
    scores: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add_to_gguf(self, gw: gguf.GGUFWriter) -> None:
        gw.add_tokenizer_model(self.model)
        gw.add_tokenizer_pre(self.pre)
        gw.add_token_list(self.tokens)
        if self.scores is not None:
            gw.add_token_scores(self.scores)
        gw.add_token_types(self.types)


def looks_special(token: str) -> bool:
    """Added tokens some models forget to mark special (llama.cpp's ``does_token_look_special``)."""
    return (
        token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (token.startswith("<|") and token.endswith("|>"))
        or (token.startswith("<｜") and token.endswith("｜>"))
        or (token.startswith("<unused") and token.endswith(">"))
    )


def tokenizer_kind(folder: Path) -> str:
    """ "sentencepiece", "bpe", "llama-hf" (a SentencePiece-style tokenizer.json) or "" (none)."""
    if (folder / "tokenizer.model").is_file():
        return "sentencepiece"
    if not (folder / "tokenizer.json").is_file():
        return ""
    tokenizer = read_json_object(folder / "tokenizer.json", "tokenizer.json", limit=MAX_TOKENIZER_BYTES)
    model, decoder = tokenizer.get("model"), tokenizer.get("decoder")
    if (isinstance(model, dict) and model.get("type") == "BPE" and model.get("byte_fallback") is True
            and isinstance(decoder, dict) and decoder.get("type") == "Sequence"):  # fmt: skip
        return "llama-hf"
    return "bpe"


def _load_fast(folder: Path) -> Any:
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if path.stat().st_size > MAX_TOKENIZER_BYTES:
        raise CheckpointError("tokenizer.json is far larger than any real tokenizer; it is not usable.")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust parser's errors come as plain Exceptions
        raise CheckpointError(f"tokenizer.json could not be read ({str(e)[:200]}); download it again.") from e


def pre_tokenizer_name(tokenizer: Any) -> str:
    """llama.cpp's name for this tokenizer's pre-tokenizer, or a CheckpointError naming the hash."""
    ids = tokenizer.encode(CHECK_TEXT).ids
    digest = hashlib.sha256(str(ids).encode()).hexdigest()
    if digest not in PRE_TOKENIZERS:
        raise CheckpointError(
            "This model's tokenizer splits text in a way llama.cpp does not know yet (pre-tokenizer hash "
            f"{digest[:16]}…), so its GGUF would tokenize wrongly. A newer QuantDesk may support it."
        )
    return PRE_TOKENIZERS[digest]


def _cleanup(text: str) -> str:
    """transformers' ``clean_up_tokenization`` (applied by its decode when the config asks for it)."""
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                 (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):  # fmt: skip
        text = text.replace(a, b)
    return text


def bpe_vocab(folder: Path, vocab_size: int | None) -> Vocab:
    """``get_vocab_base``: the token list with the added tokens typed as llama.cpp types them."""
    tokenizer = _load_fast(folder)
    config = _tokenizer_config(folder)
    vocab: dict[str, int] = tokenizer.get_vocab(with_added_tokens=True)
    size = vocab_size if vocab_size is not None else len(vocab)
    if vocab and max(vocab.values()) >= size:
        raise CheckpointError(f"tokenizer.json has token ids up to {max(vocab.values())}, but the model has {size}.")
    pre = pre_tokenizer_name(tokenizer)
    reverse = {i: t for t, i in vocab.items()}
    added = tokenizer.get_added_tokens_decoder()
    cleanup = bool(config.get("clean_up_tokenization_spaces", False))
    tokens: list[str] = []
    types: list[int] = []
    for i in range(size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        token = reverse[i]
        if i in added:
            if not added[i].normalized:
                ids = tokenizer.encode(token, add_special_tokens=False).ids
                text = tokenizer.decode(ids, skip_special_tokens=False)
                token = _cleanup(text) if cleanup else text
            if added[i].special or looks_special(token):
                types.append(gguf.TokenType.CONTROL)
            else:
                token = token.replace("\u2581", " ")
                types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    return Vocab("gpt2", pre, tokens, types)


def _tokenizer_config(folder: Path) -> dict[str, Any]:
    path = folder / "tokenizer_config.json"
    return read_json_object(path, "tokenizer_config.json", limit=MAX_TOKENIZER_BYTES) if path.is_file() else {}


def _load_sentencepiece(folder: Path) -> Any:
    from sentencepiece import SentencePieceProcessor

    path = folder / "tokenizer.model"
    if path.stat().st_size > MAX_TOKENIZER_BYTES:
        raise CheckpointError("tokenizer.model is far larger than any real tokenizer; it is not usable.")
    processor = SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(path.read_bytes())
    except Exception as e:  # sentencepiece raises RuntimeError/OSError for a bad protobuf
        raise CheckpointError(f"tokenizer.model could not be read ({str(e)[:200]}); download it again.") from e
    return processor


def _sp_type(sp: Any, i: int) -> int:
    if sp.IsUnknown(i):
        return SPType.UNKNOWN
    if sp.IsControl(i):
        return SPType.CONTROL
    if sp.IsUnused(i):
        return SPType.UNUSED
    if sp.IsByte(i):
        return SPType.BYTE
    return SPType.NORMAL


def _sentencepiece_base(
    folder: Path, vocab_size: int | None, *, strict: bool
) -> tuple[list[Any], list[float], list[int]]:
    """The pieces of tokenizer.model padded to the model's vocabulary, then added_tokens.json over
    them. ``strict``: more pieces than the model has is an error (Phi-3), else the rest is dropped."""
    sp = _load_sentencepiece(folder)
    size = vocab_size or sp.vocab_size()
    if strict and sp.vocab_size() > size:
        raise CheckpointError(f"tokenizer.model has {sp.vocab_size()} pieces, more than the model's {size}.")
    tokens: list[Any] = [f"[PAD{i}]".encode() for i in range(size)]
    scores = [-10000.0] * size
    types: list[int] = [SPType.UNUSED] * size
    for i in range(min(sp.vocab_size(), size)):
        tokens[i], scores[i], types[i] = sp.IdToPiece(i).encode("utf-8"), sp.GetScore(i), _sp_type(sp, i)
    added_file = folder / "added_tokens.json"
    if added_file.is_file():
        for key, tid in read_json_object(added_file, "added_tokens.json").items():
            if isinstance(tid, int) and 0 <= tid < size:
                tokens[tid], scores[tid], types[tid] = key.encode("utf-8"), -1000.0, SPType.USER_DEFINED
    return tokens, scores, types


def sentencepiece_vocab(folder: Path, vocab_size: int | None) -> Vocab:
    """``_create_vocab_sentencepiece``: pieces, scores and types, then added tokens over them."""
    tokens, scores, types = _sentencepiece_base(folder, vocab_size, strict=False)
    size = len(tokens)
    decoder = _tokenizer_config(folder).get("added_tokens_decoder", {})
    for key, data in decoder.items() if isinstance(decoder, dict) else []:
        tid = int(key) if str(key).isdecimal() else -1
        if not 0 <= tid < size or not isinstance(data, dict) or not isinstance(data.get("content"), str):
            continue
        token = data["content"]
        if data.get("special") or looks_special(token):
            types[tid] = SPType.CONTROL
        else:
            token = token.replace("\u2581", " ")
            types[tid] = SPType.USER_DEFINED
        scores[tid], tokens[tid] = -1000.0, token.encode("utf-8")
    return Vocab("llama", "default", tokens, types, scores)


def phi3_vocab(folder: Path, vocab_size: int | None) -> Vocab:
    """Phi-3's own SentencePiece reading: added tokens from tokenizer_config.json and tokenizer.json,
    typed by their "special" flag only, and no pre-normalized spaces (``Phi3MiniModel.set_vocab``)."""
    tokens, scores, types = _sentencepiece_base(folder, vocab_size, strict=True)
    size = len(tokens)
    decoder = _tokenizer_config(folder).get("added_tokens_decoder", {})
    entries = [(int(k), v) for k, v in decoder.items() if str(k).isdecimal()] if isinstance(decoder, dict) else []
    if (folder / "tokenizer.json").is_file():
        added = read_json_object(folder / "tokenizer.json", "tokenizer.json", limit=MAX_TOKENIZER_BYTES)
        added_list = added.get("added_tokens") or []
        entries += [(a["id"], a) for a in added_list if isinstance(a, dict) and isinstance(a.get("id"), int)]
    for tid, data in entries:
        if not 0 <= tid < size or not isinstance(data, dict) or not isinstance(data.get("content"), str):
            raise CheckpointError(f"An added token (id {tid}) lies outside the model's {size} tokens.")
        tokens[tid], scores[tid] = data["content"].encode("utf-8"), -1000.0
        types[tid] = SPType.CONTROL if data.get("special") else SPType.USER_DEFINED
    return Vocab("llama", "default", tokens, types, scores)


_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# transformers' LlamaTokenizer(Fast) fills these in when the config leaves them out
_LLAMA_DEFAULTS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def _special_tokens(folder: Path) -> set[str]:
    """transformers' ``all_special_tokens``: the named special tokens and the additional ones, from
    tokenizer_config.json and special_tokens_map.json."""
    config = _tokenizer_config(folder)
    found: set[str] = set()
    sources = [config]
    if (folder / "special_tokens_map.json").is_file():
        sources.append(read_json_object(folder / "special_tokens_map.json", "special_tokens_map.json"))
    if str(config.get("tokenizer_class", "")).startswith("LlamaTokenizer"):
        sources.append(_LLAMA_DEFAULTS)
    for source in sources:
        for key in _SPECIAL_KEYS:
            value = source.get(key)
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str):
                found.add(value)
        extra = source.get("additional_special_tokens")
        for value in extra if isinstance(extra, list) else []:
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str):
                found.add(value)
    return found


def llama_hf_vocab(folder: Path) -> Vocab:
    """gguf-py's ``LlamaHfVocab``: a SentencePiece-style BPE tokenizer.json (byte fallback) written as a
    "llama" vocabulary, every score -1000, byte pieces typed BYTE, special tokens CONTROL."""
    tokenizer = _load_fast(folder)
    base = tokenizer.get_vocab_size(with_added_tokens=False)
    vocab: dict[str, int] = tokenizer.get_vocab(with_added_tokens=True)
    reverse = {i: t for t, i in vocab.items()}
    added = sorted((i, t.content) for i, t in tokenizer.get_added_tokens_decoder().items() if i >= base)
    missing = [t for t in _special_tokens(folder) if t not in vocab]
    if missing:
        raise CheckpointError(f"tokenizer_config.json names special tokens the vocabulary lacks: {missing[:3]}.")
    special_ids = {vocab[t] for t in _special_tokens(folder)}
    tokens: list[Any] = []
    types: list[int] = []
    for i in range(base):
        if i not in reverse:
            raise CheckpointError(f"tokenizer.json has no token with id {i}; it is damaged.")
        text = reverse[i].encode("utf-8")
        is_byte = re.fullmatch(rb"<0x[0-9A-Fa-f]{2}>", text) is not None
        tokens.append(text)
        types.append(
            gguf.TokenType.BYTE if is_byte else gguf.TokenType.CONTROL if i in special_ids else gguf.TokenType.NORMAL
        )
    for _i, content in added:
        tokens.append(content.encode("utf-8"))
        types.append(gguf.TokenType.CONTROL if vocab[content] in special_ids else gguf.TokenType.USER_DEFINED)
    return Vocab("llama", "default", tokens, types, [-1000.0] * len(tokens))
