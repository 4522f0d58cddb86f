"""Special tokens, merges, "add BOS/EOS" flags and the chat template, as llama.cpp's converter finds them.

A port of ``gguf.SpecialVocab`` from the gguf-py vendored with the pinned llama.cpp (MIT, the ggml
authors): the gguf on PyPI is older and decides ``add_bos_token`` differently for byte-level
tokenizers, which changes how llama.cpp starts every prompt. Inputs are files from the internet, so
every value is type-checked before use; anything malformed is skipped, as the original skips it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gguf

from desktop_app.core.convert.hparams import read_json_object

SPECIAL_TYPES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
MAX_TOKENIZER_BYTES = 256 * 1024 * 1024


class SpecialVocab:
    def __init__(self, folder: Path, *, load_merges: bool = False, n_vocab: int | None = None,
                 special_token_types: Iterable[str] | None = None) -> None:  # fmt: skip
        self.special_token_ids: dict[str, int] = {}
        self.add_special_token: dict[str, bool] = {}
        self.n_vocab = n_vocab
        self.load_merges = load_merges
        self.merges: list[str] = []
        self.chat_template: Any = None
        self.normalizer: dict[str, bool] = {}
        self.types: tuple[str, ...] = tuple(special_token_types or SPECIAL_TYPES)
        tokenizer = _optional_json(folder / "tokenizer.json", MAX_TOKENIZER_BYTES)
        config = _optional_json(folder / "tokenizer_config.json")
        self._from_tokenizer_json(folder, tokenizer, config)
        self._from_config_json(folder)
        if load_merges and not self.merges:
            self._merges_txt(folder / "merges.txt")

    def add_to_gguf(self, gw: gguf.GGUFWriter) -> None:
        if self.merges:
            gw.add_token_merges(self.merges)
        for typ, tokid in self.special_token_ids.items():
            handler = getattr(gw, f"add_{typ}_token_id", None)
            if handler is not None:
                handler(tokid)
        for typ, value in self.add_special_token.items():
            add_handler = getattr(gw, f"add_add_{typ}_token", None)
            if add_handler is not None:
                add_handler(value)
        if self.chat_template is not None:
            gw.add_chat_template(self.chat_template)
        for name, value in self.normalizer.items():
            gw.add_bool(f"tokenizer.ggml.normalizer.{name}", value)

    def set_special_token(self, typ: str, tid: Any) -> None:
        if isinstance(tid, bool) or not isinstance(tid, int) or tid < 0:
            return
        if (self.n_vocab is None or tid < self.n_vocab) and typ not in self.special_token_ids:
            self.special_token_ids[typ] = tid

    def _merges_txt(self, path: Path) -> None:
        if not path.is_file() or path.stat().st_size > MAX_TOKENIZER_BYTES:
            return
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines and lines[0].strip().startswith("#"):
            lines = lines[1:]
        merges = []
        for line in lines:
            parts = line.strip().split(None, 3)
            if len(parts) == 2:
                merges.append(f"{parts[0]} {parts[1]}")
        self.merges = merges

    def _tokenizer_merges(self, tokenizer: dict[str, Any]) -> None:
        model = tokenizer.get("model")
        merges = model.get("merges") if isinstance(model, dict) else None
        if not isinstance(merges, list) or not merges:
            return
        if all(isinstance(m, str) for m in merges):
            self.merges = list(merges)
        elif all(isinstance(m, list) and len(m) == 2 and all(isinstance(s, str) for s in m) for m in merges):
            # transformers >= 4.45 writes pairs, so that a space can be part of a merge
            self.merges = [" ".join("".join(chr(ord(c) + 256) if c == " " else c for c in part) for part in pair)
                           for pair in merges]  # fmt: skip

    def _parse_normalizer(self, normalizer: Any, depth: int = 0) -> None:
        if not isinstance(normalizer, dict) or depth > 16:
            return
        kind = normalizer.get("type")
        if kind == "Lowercase":
            self.normalizer["lowercase"] = True
        elif kind == "StripAccents":
            self.normalizer["strip_accents"] = True
        elif kind == "BertNormalizer":
            for key, name in (("lowercase", "lowercase"), ("strip_accents", "strip_accents")):
                if isinstance(normalizer.get(key), bool):
                    self.normalizer[name] = normalizer[key]
        elif kind == "Sequence" and isinstance(normalizer.get("normalizers"), list):
            for inner in normalizer["normalizers"]:
                self._parse_normalizer(inner, depth + 1)

    def _from_tokenizer_json(self, folder: Path, tokenizer: dict[str, Any] | None,
                             config: dict[str, Any] | None) -> None:  # fmt: skip
        added: list[Any] = []
        if tokenizer is not None:
            if self.load_merges:
                self._tokenizer_merges(tokenizer)
            self._parse_normalizer(tokenizer.get("normalizer"))
            added = tokenizer.get("added_tokens") or []
            added = added if isinstance(added, list) else []
            post = tokenizer.get("post_processor")
            if isinstance(post, dict):
                processors = post.get("processors", [post])
                for processor in processors if isinstance(processors, list) else []:
                    if isinstance(processor, dict):
                        _PostProcessor(self, config).apply(processor)
        if not config:
            return
        self._chat_template(folder, config)
        for typ in self.types:
            add_entry = config.get(f"add_{typ}_token")
            if isinstance(add_entry, bool) and typ not in self.add_special_token:
                self.add_special_token[typ] = add_entry
            entry = config.get(f"{typ}_token")
            content = entry.get("content") if isinstance(entry, dict) else entry
            if not isinstance(content, str):
                continue
            tid = next((a.get("id") for a in added if isinstance(a, dict) and a.get("content") == content), None)
            self.set_special_token(typ, tid)

    def _chat_template(self, folder: Path, config: dict[str, Any]) -> None:
        alt: Any = None
        jinja = folder / "chat_template.jinja"
        if jinja.is_file() and jinja.stat().st_size < MAX_TOKENIZER_BYTES:
            alt = jinja.read_text(encoding="utf-8", errors="replace")
            extra = sorted((folder / "additional_chat_templates").glob("*.jinja"))
            if extra:
                alt = [{"name": "default", "template": alt}]
                alt += [{"name": p.stem, "template": p.read_text(encoding="utf-8", errors="replace")} for p in extra]
        elif (folder / "chat_template.json").is_file():
            alt = (_optional_json(folder / "chat_template.json") or {}).get("chat_template")
        template = config.get("chat_template", alt)
        named = isinstance(template, list) and all(isinstance(t, dict) for t in template)
        if template is None or isinstance(template, str) or named:
            self.chat_template = template

    def _from_config_json(self, folder: Path) -> None:
        config = _optional_json(folder / "config.json")
        if config is None:
            return
        text = config.get("text_config")
        for typ in self.types:
            tid = config.get(f"{typ}_token_id")
            if tid is None and isinstance(text, dict):
                tid = text.get(f"{typ}_token_id")
            self.set_special_token(typ, tid)


class _PostProcessor:
    """tokenizer.json's post_processor, read for which special tokens wrap a sequence (the original's
    "crude parsing of TemplateProcessing", kept exactly, including where it guesses)."""

    def __init__(self, vocab: SpecialVocab, config: dict[str, Any] | None) -> None:
        self.vocab = vocab
        self.config = config
        c = config or {}
        self.bos, self.cls, self.eos, self.sep = (c.get("bos_token"), c.get("cls_token"), c.get("eos_token"),
                                                  c.get("sep_token"))  # fmt: skip
        if not self.bos and self.cls and config:
            config["bos_token"] = self.bos = self.cls
        if not self.eos and self.sep and config:
            config["eos_token"] = self.eos = self.sep

    def apply(self, processor: dict[str, Any]) -> None:
        kind = processor.get("type")
        add = self.vocab.add_special_token
        if kind == "ByteLevel":
            add.setdefault("bos", False)
            add.setdefault("eos", False)
        elif kind == "RobertaProcessing":
            add.update(bos=True, eos=True, sep=True)
            if not self.cls and self.config:
                self.config["cls_token"] = self.cls = _first(processor.get("cls"), self.bos)
            if not self.sep and self.config:
                self.config["sep_token"] = self.sep = _first(processor.get("sep"), self.eos)
        elif kind == "TemplateProcessing":
            single, pair = processor.get("single"), processor.get("pair")
            single = single if isinstance(single, list) else []
            pair = pair if isinstance(pair, list) else []
            first, last = self._single(single)
            self._pair(pair, first, last)

    def _single(self, single: list[Any]) -> tuple[Any, Any]:
        first = last = None
        if len(single) <= 1:
            return first, last
        config, add = self.config, self.vocab.add_special_token
        if first := _special_id(single[0]):
            if not config:
                self.bos = first
            elif first not in (self.bos, self.cls):
                if not self.bos:
                    config["bos_token"] = self.bos = first
                if not self.cls:
                    config["cls_token"] = self.cls = first
            add["bos"] = first in (self.bos, self.cls)
        if last := _special_id(single[-1]):
            if not config:
                self.eos = last
            elif last != self.eos:
                if "eot" not in self.vocab.types:
                    self.vocab.types += ("eot",)
                    config["eot_token"] = self.eos
                elif "eom" not in self.vocab.types:
                    self.vocab.types += ("eom",)
                    config["eom_token"] = self.eos
                config["eos_token"] = self.eos = last
            add["eos"] = last == self.eos
        return first, last

    def _pair(self, pair: list[Any], first: Any, last: Any) -> None:
        if not pair:
            return
        start = 1 if first and _special_id(pair[0]) == first else 0
        stop = -1 if last and _special_id(pair[-1]) == last else None
        pair = pair[slice(start, stop)]
        if not pair:
            return
        seq_a, seq_b = _sequence_id(pair[0]), _sequence_id(pair[-1])
        if not (seq_a == "A" and seq_b == "B" and (pair := pair[1:-1])):
            return
        add_sep = False
        entry = _special_id(pair[0])
        if entry and entry in (self.sep, self.eos) and not last:
            add_sep = True
        if len(pair) == 2 and (entry := _special_id(pair[1])) and entry in (self.sep, self.eos):
            add_sep = True
        self.vocab.add_special_token["sep"] = add_sep
        if add_sep and not self.sep and self.config:
            self.config["sep_token"] = self.eos


def _special_id(item: Any) -> Any:
    special = item.get("SpecialToken") if isinstance(item, dict) else None
    return special.get("id") if isinstance(special, dict) else None


def _sequence_id(item: Any) -> Any:
    seq = item.get("Sequence") if isinstance(item, dict) else None
    return seq.get("id") if isinstance(seq, dict) else None


def _first(value: Any, default: Any) -> Any:
    return value[0] if isinstance(value, list) and value else default


def _optional_json(path: Path, limit: int = 16 * 1024 * 1024) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return read_json_object(path, path.name, limit=limit)
