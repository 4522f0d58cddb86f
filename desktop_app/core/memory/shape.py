"""The facts about a model that decide its memory, read once from its GGUF header(s).

Everything the predictor needs per layer is summed here, so a new prediction (the context slider
moving) is arithmetic on a few lists, not another pass over hundreds of tensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from desktop_app.core.errors import CorruptGGUFError
from desktop_app.core.gguf import GGUFArray, GGUFHeader
from desktop_app.core.gguf.quant_names import header_quant

_LAYER_RE = re.compile(r"^blk\.(\d+)\.")
# Architectures llama.cpp gives sliding-window layers by default: (period, dense_first)
SWA_PATTERNS = {
    "gemma2": (2, False),
    "gemma3": (6, False),
    "gemma3n": (5, False),
    "gemma-embedding": (6, False),
    "cohere2": (4, False),
    "cohere2moe": (4, True),
    "llama4": (4, False),
    "exaone4": (4, False),
    "exaone-moe": (4, False),
    "olmo2": (4, False),
    "openai-moe": (2, False),
    "gpt-oss": (2, False),
    "plamo3": (8, False),
    "afmoe": (4, False),
    "smallthinker": (4, True),
}
# Architectures whose memory llama.cpp lays out in ways this model does not follow yet.
RECURRENT_ARCHS = {"mamba", "mamba2", "rwkv6", "rwkv7", "rwkv6qwen2", "rwkv7qwen3", "jamba", "falcon-h1",
                   "granitehybrid", "lfm2", "plamo2", "nemotron_h", "qwen3next"}  # fmt: skip
# Architectures whose graphs the compute model was checked against (tests/benchmarks); others get a
# best-effort estimate marked approximate.
CHECKED_ARCHS = {
    "llama", "gemma3", "qwen2", "qwen3", "mistral3", "granite", "phi3", "olmo2", "qwen2moe",
    "qwen3moe", "gemma2", "gemma", "starcoder2", "internlm2", "cohere2", "command-r", "stablelm",
}  # fmt: skip
MLA_ARCHS = {"deepseek2", "deepseek3", "kimi-k2", "glm4moe-lite"}
# What a real model can have. A header outside these bounds is damaged (or hostile): every per-layer
# list and every figure below is sized by these, so they bound the work and memory of a prediction.
LIMITS = {
    "block_count": (1, 4096),  # the deepest published models have ~200 layers
    "embedding_length": (1, 1 << 20),
    "attention.head_count": (0, 1 << 16),
    "attention.head_count_kv": (0, 1 << 16),
    "attention.key_length": (0, 1 << 16),
    "attention.value_length": (0, 1 << 16),
    "feed_forward_length": (0, 1 << 24),
    "expert_feed_forward_length": (0, 1 << 24),
    "expert_count": (0, 1 << 16),
    "expert_used_count": (0, 1 << 16),
    "attention.sliding_window": (0, 1 << 31),
    "context_length": (0, 1 << 31),
    "vocab_size": (0, 1 << 31),
}


@dataclass(frozen=True)
class WeightTensor:
    name: str
    layer: int | None  # None: not inside a repeating block
    type_id: int
    shape: tuple[int, ...]
    n_bytes: int

    @property
    def is_matmul_weight(self) -> bool:
        """Used by a matrix multiplication (so a CPU repack can apply)."""
        return (
            len(self.shape) >= 2
            and self.name.endswith(".weight")
            and not self.name.startswith("token_embd")
            and "norm" not in self.name
            and "gate_inp" not in self.name
        )


@dataclass
class ModelShape:
    architecture: str
    n_layer: int
    n_embd: int
    n_vocab: int
    n_ctx_train: int
    n_head: list[int]  # per layer
    n_head_kv: list[int]  # per layer
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    n_expert: int
    n_expert_used: int
    n_swa: int
    swa_layers: list[bool]
    tensors: list[WeightTensor]
    tied_embeddings: bool
    file_bytes: int
    file_type: str | None
    n_params: int
    missing: list[str] = field(default_factory=list)  # metadata we had to guess
    approximate_reasons: list[str] = field(default_factory=list)

    @property
    def approximate(self) -> bool:
        return bool(self.approximate_reasons)

    @property
    def token_embd(self) -> WeightTensor | None:
        return next((t for t in self.tensors if t.name == "token_embd.weight"), None)


def _int(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _per_layer(value, n_layer: int, default: int) -> list[int]:
    if isinstance(value, list) and value and all(isinstance(x, int) for x in value):
        return [value[i] if i < len(value) else value[-1] for i in range(n_layer)]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value] * n_layer
    return [default] * n_layer


def _swa_layers(md: dict, arch: str, n_layer: int, n_swa: int) -> list[bool]:
    if not n_swa:
        return [False] * n_layer
    pattern = md.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list) and pattern:
        return [bool(pattern[i]) if i < len(pattern) else False for i in range(n_layer)]
    period, dense_first = SWA_PATTERNS.get(arch, (0, False))
    if isinstance(pattern, int) and not isinstance(pattern, bool):
        period = pattern
    if period == 0:
        return [True] * n_layer  # every layer slides (e.g. Mistral's original window)
    if dense_first:
        return [il % period != 0 for il in range(n_layer)]
    return [il % period < period - 1 for il in range(n_layer)]


def _check_limits(md: dict, a: str) -> None:
    for key, (lo, hi) in LIMITS.items():
        raw = md.get(a + key)
        values = raw if isinstance(raw, list) else [raw]
        bad = next((v for v in map(_int, values) if v is not None and not lo <= v <= hi), None)
        if bad is not None:
            raise CorruptGGUFError(
                "",
                f"The header says {a + key} is {bad:,}; a real model has {lo:,} to {hi:,}. "
                "The file is damaged or not a real model.",
            )


def model_shape(headers: list[GGUFHeader]) -> ModelShape:
    """Read the memory-relevant facts from a model's header(s) (first shard first).

    Raises:
        CorruptGGUFError: a size or count outside what any real model has (``LIMITS``).
    """
    md = headers[0].metadata
    arch = str(md.get("general.architecture") or "unknown")[:64]
    a = arch + "."
    _check_limits(md, a)
    missing: list[str] = []

    def need(key: str, default: int) -> int:
        v = _int(md.get(a + key))
        if v is None:
            missing.append(a + key)
            return default
        return v

    n_layer = need("block_count", 1)
    n_embd = need("embedding_length", 4096)
    head_raw = md.get(a + "attention.head_count")
    if head_raw is None:
        missing.append(a + "attention.head_count")
    n_head = _per_layer(head_raw, n_layer, 32)
    kv_raw = md.get(a + "attention.head_count_kv")
    n_head_kv = _per_layer(kv_raw, n_layer, n_head[0]) if kv_raw is not None else list(n_head)
    first_head = next((h for h in n_head if h), 1)
    head_dim_k = _int(md.get(a + "attention.key_length")) or n_embd // first_head
    head_dim_v = _int(md.get(a + "attention.value_length")) or n_embd // first_head
    n_vocab = _vocab_size(md, a)
    if not n_vocab:
        missing.append("tokenizer.ggml.tokens")
    n_ff_raw = md.get(a + "feed_forward_length")
    n_ff = max(_per_layer(n_ff_raw, n_layer, 4 * n_embd)) if n_ff_raw is not None else 4 * n_embd
    n_expert = _int(md.get(a + "expert_count")) or 0
    n_expert_used = _int(md.get(a + "expert_used_count")) or 0
    if n_expert:
        n_ff = _int(md.get(a + "expert_feed_forward_length")) or n_ff
    n_swa = _int(md.get(a + "attention.sliding_window")) or 0
    n_ctx_train = _int(md.get(a + "context_length")) or 0
    if not n_ctx_train:
        missing.append(a + "context_length")
        n_ctx_train = 4096

    tensors = [
        WeightTensor(t.name, int(m.group(1)) if (m := _LAYER_RE.match(t.name)) else None, t.type_id, t.shape, t.n_bytes)
        for h in headers
        for t in h.tensors
    ]
    names = {t.name for t in tensors}
    tied = "output.weight" not in names and "token_embd.weight" in names
    approx = _approximations(arch, missing)
    quant = header_quant(md, tensors)[0] if tensors else None
    return ModelShape(
        architecture=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_vocab=n_vocab,
        n_ctx_train=n_ctx_train,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_dim_k,
        head_dim_v=head_dim_v,
        n_ff=n_ff,
        n_expert=n_expert,
        n_expert_used=n_expert_used,
        n_swa=n_swa,
        swa_layers=_swa_layers(md, arch, n_layer, n_swa),
        tensors=tensors,
        tied_embeddings=tied,
        file_bytes=sum(h.file_bytes for h in headers),
        file_type=quant,
        n_params=sum(_elements(t.shape) for t in tensors),
        missing=missing,
        approximate_reasons=approx,
    )


def _vocab_size(md: dict, a: str) -> int:
    tokens = md.get("tokenizer.ggml.tokens")
    counted = tokens.count if isinstance(tokens, GGUFArray) else len(tokens) if isinstance(tokens, list) else 0
    return counted or _int(md.get(a + "vocab_size")) or 0


def _approximations(arch: str, missing: list[str]) -> list[str]:
    """Why the prediction for this model is an estimate rather than llama.cpp's exact figure."""
    approx = []
    if arch not in CHECKED_ARCHS and arch not in RECURRENT_ARCHS and arch not in MLA_ARCHS:
        approx.append(f"the {arch} architecture has not been checked against llama.cpp's allocations")
    if arch in RECURRENT_ARCHS:
        approx.append(f"{arch} keeps a recurrent state that this estimate does not model yet")
    if arch in MLA_ARCHS:
        approx.append(f"{arch} compresses its KV cache (MLA); the KV figure is an upper bound")
    if missing:
        approx.append("missing metadata: " + ", ".join(missing))
    return approx


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
