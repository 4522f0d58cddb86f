"""Tensor-by-tensor and key-by-key differences between two GGUF files, for comparing our
converter's output with llama.cpp's own ``convert_hf_to_gguf.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGUFReader, GGUFValueType, ReaderField, ReaderTensor

_BOOKKEEPING = ("GGUF.",)  # version, tensor_count, kv_count: the reader's own fields
_WIDTH = 80


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _WIDTH else text[: _WIDTH - 3] + "..."


def _raw(field: ReaderField) -> list[bytes]:
    """The field's value(s) as bytes, one item per array element (one for a scalar)."""
    return [field.parts[i].tobytes() for i in field.data]


def _shown(field: ReaderField, index: int) -> Any:
    part = field.parts[field.data[index]]
    if field.types[-1] == GGUFValueType.STRING:
        return part.tobytes().decode("utf-8", errors="replace")
    return part.tolist()[0]


def _type_name(field: ReaderField) -> str:
    return "[" + ",".join(t.name for t in field.types) + "]"


def _field_differences(key: str, a: ReaderField, b: ReaderField) -> list[str]:
    if a.types != b.types:
        return [f"key {key}: type {_type_name(a)} != {_type_name(b)}"]
    ra, rb = _raw(a), _raw(b)
    if ra == rb:
        return []
    is_array = a.types[0] == GGUFValueType.ARRAY
    first = next((i for i, (x, y) in enumerate(zip(ra, rb, strict=False)) if x != y), min(len(ra), len(rb)))
    if not is_array:
        return [f"key {key}: {_short(_shown(a, 0))} != {_short(_shown(b, 0))}"]
    va = _short(_shown(a, first)) if first < len(ra) else "<end>"
    vb = _short(_shown(b, first)) if first < len(rb) else "<end>"
    sizes = f" (length {len(ra)} != {len(rb)})" if len(ra) != len(rb) else ""
    return [f"key {key}: first difference at [{first}]: {va} != {vb}{sizes}"]


def _metadata_differences(a: GGUFReader, b: GGUFReader, ignore_prefixes: tuple[str, ...]) -> list[str]:
    skip = tuple(ignore_prefixes) + _BOOKKEEPING
    fa = {k: f for k, f in a.fields.items() if not k.startswith(skip)}
    fb = {k: f for k, f in b.fields.items() if not k.startswith(skip)}
    out = [f"key {k}: only in a" for k in fa if k not in fb]
    out += [f"key {k}: only in b" for k in fb if k not in fa]
    for key in fa.keys() & fb.keys():
        out += _field_differences(key, fa[key], fb[key])
    return sorted(out)


def _bytes(tensor: ReaderTensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.data).reshape(-1).view(np.uint8)


def _tensor_differences(name: str, a: ReaderTensor, b: ReaderTensor) -> list[str]:
    if a.tensor_type != b.tensor_type:
        return [f"tensor {name}: type {a.tensor_type.name} != {b.tensor_type.name}"]
    sa, sb = [int(n) for n in a.shape], [int(n) for n in b.shape]
    if sa != sb:
        return [f"tensor {name}: shape {sa} != {sb}"]
    xa, xb = _bytes(a), _bytes(b)
    if xa.size != xb.size:
        return [f"tensor {name}: {xa.size} bytes != {xb.size}"]
    differ = xa != xb
    if not differ.any():
        return []
    block, size = GGML_QUANT_SIZES[a.tensor_type]
    unit = "elements" if block == 1 else "blocks"
    count = int(differ.reshape(-1, size).any(axis=1).sum()) if xa.size % size == 0 else int(differ.sum())
    first = int(np.flatnonzero(differ)[0])
    return [f"tensor {name}: bytes differ from offset {first}; {count} of {xa.size // size} {unit} differ"]


def _tensors_differences(a: GGUFReader, b: GGUFReader) -> list[str]:
    ta = {t.name: t for t in a.tensors}
    tb = {t.name: t for t in b.tensors}
    out = [f"tensor {n}: only in a" for n in ta if n not in tb]
    out += [f"tensor {n}: only in b" for n in tb if n not in ta]
    if not out and list(ta) != list(tb):
        at = next(i for i, (x, y) in enumerate(zip(ta, tb, strict=True)) if x != y)
        out.append(f"tensor order differs from index {at}: {list(ta)[at]} != {list(tb)[at]}")
    for name in ta:
        if name in tb:
            out += _tensor_differences(name, ta[name], tb[name])
    return out


def gguf_differences(a: Path, b: Path, ignore_prefixes: tuple[str, ...] = ("general.",)) -> list[str]:
    """Every difference between GGUF files ``a`` and ``b``, one line each; [] when identical
    (keys starting with ``ignore_prefixes`` and the reader's GGUF.* bookkeeping aside)."""
    ra, rb = GGUFReader(a), GGUFReader(b)
    return _metadata_differences(ra, rb, ignore_prefixes) + _tensors_differences(ra, rb)
