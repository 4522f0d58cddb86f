"""What a person wants to know about a GGUF model, distilled from its header(s).

A split model (``name-00001-of-00003.gguf``) is one :class:`ModelInfo` built from every shard: the
metadata comes from the first shard, the tensors from all of them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from desktop_app.core.gguf.ggml_types import ggml_type_name
from desktop_app.core.gguf.quant_names import header_quant
from desktop_app.core.gguf.reader import GGUFArray, GGUFHeader
from desktop_app.core.gguf.split import model_stem
from desktop_app.core.kinds import ModelKind

MAX_SHOWN_VALUE = 400  # characters of a metadata value kept for display
MAX_SHOWN_KEYS = 1000  # metadata rows kept for display (real models have 20 to 60)
MAX_SHOWN_TEMPLATE = 256 * 1024  # characters of the chat template kept (the largest real ones are ~40 KB)
MAX_SHOWN_NAME = 200  # characters of names and labels


@dataclass
class TensorTypeShare:
    type_name: str
    count: int
    n_elements: int
    n_bytes: int

    @property
    def bits_per_weight(self) -> float:
        return self.n_bytes * 8 / self.n_elements if self.n_elements else 0.0


@dataclass
class MetadataItem:
    key: str
    type: str
    value: str


@dataclass
class ModelInfo:
    name: str
    architecture: str
    kind: ModelKind
    n_params: int
    quant: str  # Q4_K_M, Q8_0, F16, … (from general.file_type, else the dominant tensor type)
    quant_guessed: bool
    file_bytes: int
    n_shards: int
    gguf_version: int
    title: str | None = None  # general.name
    context_length: int | None = None
    n_layers: int | None = None
    n_heads: int | list[int] | None = None
    n_kv_heads: int | list[int] | None = None
    n_embd: int | None = None
    n_ff: int | list[int] | None = None
    vocab_size: int | None = None
    tokenizer: str | None = None
    n_experts: int | None = None
    n_experts_used: int | None = None
    sliding_window: int | None = None
    rope: dict[str, Any] = field(default_factory=dict)
    size_label: str | None = None
    chat_template: str | None = None
    tensor_mix: list[TensorTypeShare] = field(default_factory=list)
    metadata: list[MetadataItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensor_mix)

    @property
    def bits_per_weight(self) -> float:
        n = sum(t.n_elements for t in self.tensor_mix)
        return self.tensor_bytes * 8 / n if n else 0.0

    def mix_text(self) -> str:
        """E.g. '193 × Q4_K, 33 × Q6_K, 66 × F32'."""
        return ", ".join(f"{t.count} × {t.type_name}" for t in self.tensor_mix)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        data = dict(data)
        data["tensor_mix"] = [TensorTypeShare(**t) for t in data.get("tensor_mix", [])]
        data["metadata"] = [MetadataItem(**m) for m in data.get("metadata", [])]
        data["kind"] = ModelKind(data.get("kind", "model"))
        return cls(**data)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _per_layer(value: Any) -> int | list[int] | None:
    """Head counts are a number, or one number per layer (OpenELM, Gemma 3n, …)."""
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return value[0] if len(set(value)) == 1 else value
    return _int(value)


def _display(value: Any) -> str:
    if isinstance(value, GGUFArray):
        return str(value)
    if isinstance(value, list):
        text = "[" + ", ".join(_display(v) for v in value[:16]) + (", …" if len(value) > 16 else "") + "]"
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    if len(text) > MAX_SHOWN_VALUE:
        text = text[:MAX_SHOWN_VALUE] + f"… ({len(text):,} characters)"
    return text


def _short(value: Any, limit: int = MAX_SHOWN_NAME) -> str | None:
    """A string from the header, cut to what the app shows (the library cache keeps only this)."""
    if not isinstance(value, str):
        return None
    return value if len(value) <= limit else value[:limit] + "…"


def _array_len(value: Any) -> int | None:
    if isinstance(value, GGUFArray):
        return value.count
    if isinstance(value, list):
        return len(value)
    return None


def _tensor_mix(headers: list[GGUFHeader]) -> tuple[list[TensorTypeShare], int]:
    """The weight types by share of the bytes, largest first; and the parameter count."""
    counts: Counter[int] = Counter()
    elements: Counter[int] = Counter()
    nbytes: Counter[int] = Counter()
    for h in headers:
        for t in h.tensors:
            counts[t.type_id] += 1
            elements[t.type_id] += t.n_elements
            nbytes[t.type_id] += t.n_bytes
    mix = [
        TensorTypeShare(ggml_type_name(tid), counts[tid], elements[tid], nbytes[tid])
        for tid in sorted(counts, key=lambda k: (-nbytes[k], k))
    ]
    return mix, sum(elements.values())


def _kind(arch: str, headers: list[GGUFHeader], warnings: list[str]) -> ModelKind:
    """A model that chats, or a part that works beside one (said in ``warnings``)."""
    md = headers[0].metadata
    gtype = _short(md.get("general.type")) or "model"
    if arch == "clip" or gtype == "mmproj":
        warnings.append(
            "This is a multimodal projector (mmproj), used beside a language model; it cannot chat on its own."
        )
        return ModelKind.PROJECTOR
    if gtype == "adapter" or "adapter.type" in md:
        warnings.append("This is a LoRA adapter, applied on top of a base model; it cannot chat on its own.")
        return ModelKind.ADAPTER
    if not any(h.tensors for h in headers):
        warnings.append("This file holds only a tokenizer vocabulary, no weights.")
        return ModelKind.VOCAB
    return ModelKind.MODEL


_ROPE_KEYS = ("dimension_count", "freq_base", "scaling.type", "scaling.factor", "scaling.original_context_length")


def _shown_template(md: dict, warnings: list[str]) -> str | None:
    template = md.get("tokenizer.chat_template")
    if not isinstance(template, str):
        return None
    if len(template) > MAX_SHOWN_TEMPLATE:
        warnings.append(
            f"The chat template is {len(template):,} characters long (real ones are under 50,000); only the "
            "start is shown, and chat may refuse it."
        )
        template = template[:MAX_SHOWN_TEMPLATE]
    return template


def _shown_metadata(first: GGUFHeader) -> list[MetadataItem]:
    md = first.metadata
    metadata = [
        MetadataItem(_short(k) or "", first.value_types.get(k, ""), _display(v))
        for k, v in list(md.items())[:MAX_SHOWN_KEYS]
        if k != "tokenizer.chat_template"
    ]
    if len(md) > MAX_SHOWN_KEYS:
        metadata.append(MetadataItem("…", "", f"{len(md) - MAX_SHOWN_KEYS:,} more entries not shown"))
    return metadata


def model_info_from_headers(headers: list[GGUFHeader], *, file_name: str) -> ModelInfo:
    """Build the summary of one model from its shards' headers, first shard first."""
    first = headers[0]
    md = first.metadata
    arch_raw = md.get("general.architecture")
    arch = _short(arch_raw) or "unknown"
    a = f"{arch_raw}." if isinstance(arch_raw, str) else "unknown."
    mix, n_params = _tensor_mix(headers)
    quant, guessed = header_quant(md, (t for h in headers for t in h.tensors))
    warnings: list[str] = []
    kind = _kind(arch, headers, warnings)
    vocab = _array_len(md.get("tokenizer.ggml.tokens")) or _int(md.get(a + "vocab_size"))
    rope = {k: md[a + "rope." + k] for k in _ROPE_KEYS
            if a + "rope." + k in md and not isinstance(md[a + "rope." + k], GGUFArray)}  # fmt: skip
    template = _shown_template(md, warnings)
    # People recognise the file name (it carries the quant); general.name is often a training tag.
    name = model_stem(file_name)
    title = md.get("general.name")
    size_label = md.get("general.size_label")
    return ModelInfo(
        name=name,
        title=_short(title.strip()) if isinstance(title, str) and title.strip() else None,
        architecture=arch,
        kind=kind,
        n_params=n_params,
        quant=quant,
        quant_guessed=guessed,
        file_bytes=sum(h.file_bytes for h in headers),
        n_shards=len(headers),
        gguf_version=first.version,
        context_length=_int(md.get(a + "context_length")),
        n_layers=_int(md.get(a + "block_count")),
        n_heads=_per_layer(md.get(a + "attention.head_count")),
        n_kv_heads=_per_layer(md.get(a + "attention.head_count_kv")),
        n_embd=_int(md.get(a + "embedding_length")),
        n_ff=_per_layer(md.get(a + "feed_forward_length")),
        vocab_size=vocab,
        tokenizer=_short(md.get("tokenizer.ggml.model")),
        n_experts=_int(md.get(a + "expert_count")),
        n_experts_used=_int(md.get(a + "expert_used_count")),
        sliding_window=_int(md.get(a + "attention.sliding_window")),
        rope=rope,
        size_label=_short(size_label),
        chat_template=template,
        tensor_mix=mix,
        metadata=_shown_metadata(first),
        warnings=warnings,
    )
