"""Quant names, in one place: what a file's name or header says a model is quantized to, the
standard quants QuantDesk suggests and predicts, and the KV cache types.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from desktop_app.core.gguf.ggml_types import file_type_name, ggml_type_name

QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])(IQ[1-4]_(?:XXS|XS|S|M|NL)|Q[2-8]_K(?:_[SML]|_XL)?|Q[4-8]_[01]|Q2_K_S|TQ[12]_0|MXFP4|BF16|F16|F32)"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)

# The quants people pick from, largest first: what "a smaller quant that fits" walks down, what the
# fit panel's what-if table and the conversion plan show.
STANDARD_QUANTS = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "Q3_K_M", "Q2_K")
# KV cache types offered (name -> ggml type id); llama.cpp takes a few more (see KV_TYPE_IDS).
KV_CACHE_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}
KV_TYPE_IDS = {**KV_CACHE_TYPES, "f32": 0, "bf16": 30, "q4_1": 3, "q5_0": 6, "q5_1": 7}
KV_CACHE_NOTES = {"f16": "full precision", "q8_0": "half the memory", "q4_0": "a quarter, some quality loss"}


def quant_from_filename(name: str) -> str | None:
    """The quant a file's name carries ("…-Q4_K_M.gguf" -> "Q4_K_M"), or None."""
    m = QUANT_RE.search(os.path.basename(name))
    return m.group(1).upper() if m else None


def strip_quant(stem: str) -> str:
    """A file stem without its quant suffix ("SmolLM2-135M-Instruct.Q4_1" -> "SmolLM2-135M-Instruct")."""
    quant = quant_from_filename(stem + ".gguf")
    if quant is None:
        return stem
    return re.sub(rf"[.\-_]?{re.escape(quant)}$", "", stem, flags=re.IGNORECASE)


def header_quant(metadata: Mapping[str, Any], tensors: Iterable[Any]) -> tuple[str, bool]:
    """The quant a header says (``general.file_type``), else the type holding the most weights among
    its matrices; and whether it was guessed. "—" for a file with no matrices."""
    ft = metadata.get("general.file_type")
    named = file_type_name(ft if isinstance(ft, int) and not isinstance(ft, bool) else None)
    if named is not None:
        return named, False
    by_type: Counter[int] = Counter()
    for t in tensors:
        if len(t.shape) >= 2:
            n = 1
            for d in t.shape:
                n *= d
            by_type[t.type_id] += n
    return (ggml_type_name(by_type.most_common(1)[0][0]) if by_type else "—"), True
