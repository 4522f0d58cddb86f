"""Hugging Face checkpoint folder → GGUF (F16, BF16 or Q8_0), tensor by tensor, as llama.cpp's converter.

Two passes, like the converter's lazy tensors: the plan (every output tensor's name, type and shape,
from the safetensors headers alone, so an unsupported checkpoint is refused before anything is
written), then the data, streamed: a tensor is read, fixed up, converted and written in row chunks,
so memory stays near one chunk, not one model. The output is written to ``<out>.part`` and renamed
only when complete; a failure, a full disk or a cancel deletes it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from desktop_app.core.convert.archs import ARCHITECTURES, TextArch
from desktop_app.core.convert.hparams import architecture_of, load_hparams, read_json_object
from desktop_app.core.convert.safetensors_io import TensorEntry, list_tensors, load_rows
from desktop_app.core.errors import Cancelled, CheckpointError
from desktop_app.core.units import format_bytes as human_bytes

OUTTYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}  # fmt: skip
_QTYPE = {"f16": gguf.GGMLQuantizationType.F16, "bf16": gguf.GGMLQuantizationType.BF16,
          "q8_0": gguf.GGMLQuantizationType.Q8_0}  # fmt: skip
_SKIP_SUFFIXES = (".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")
# Tensors llama.cpp keeps in F32 whatever the output type (the converter's prepare_tensors list)
_F32_KEYS = ("FFN_GATE_INP", "FFN_GATE_INP_SHEXP", "POS_EMBD", "TOKEN_TYPES", "SSM_CONV1D", "SHORTCONV_CONV",
             "TIME_MIX_FIRST", "TIME_MIX_W1", "TIME_MIX_W2", "TIME_MIX_DECAY_W1", "TIME_MIX_DECAY_W2",
             "TIME_MIX_LERP_FUSED", "POSNET_NORM1", "POSNET_NORM2", "V_ENC_EMBD_POS", "A_ENC_EMBD_POS",
             "ALTUP_CORRECT_COEF", "ALTUP_PREDICT_COEF", "SSM_CONV1D_Q", "SSM_CONV1D_K", "SSM_CONV1D_V",
             "INDEXER_PROJ")  # fmt: skip
CHUNK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class ConvertProgress:
    done_bytes: int  # source bytes converted so far
    total_bytes: int
    tensor: str  # the GGUF name of the tensor being written


@dataclass(frozen=True)
class ConvertResult:
    path: str
    bytes: int
    sha256: str
    outtype: str
    seconds: float


@dataclass(frozen=True)
class PlannedTensor:
    name: str  # GGUF name
    source: str  # checkpoint name ("" for a generated tensor)
    shape: tuple[int, ...]  # numpy order (rows first)
    qtype: gguf.GGMLQuantizationType
    nbytes: int
    array: np.ndarray | None = None  # generated tensors are computed while planning


@dataclass
class Plan:
    folder: Path
    hf_arch: str
    arch: TextArch
    outtype: str
    entries: dict[str, TensorEntry]
    tensors: list[PlannedTensor]
    name: str = ""  # general.name; "" is the folder's name, as llama.cpp's converter writes

    @property
    def output_bytes(self) -> int:
        """Tensor data plus a generous allowance for the header (vocabulary, merges, template)."""
        vocab = sum(p.stat().st_size for p in self.folder.glob("tokenizer*") if p.is_file())
        return sum(t.nbytes + 32 for t in self.tensors) + vocab + (1 << 20)

    @property
    def source_bytes(self) -> int:
        return sum(self.entries[t.source].nbytes for t in self.tensors if t.source)


def supported_architectures() -> list[str]:
    return sorted(ARCHITECTURES)


def plan(folder: str | Path, outtype: str = "f16") -> Plan:
    """Everything the conversion will write, checked; raises CheckpointError before any output exists."""
    root = Path(folder)
    if outtype not in OUTTYPES:
        raise CheckpointError(f"Unknown output type {outtype!r}; choose one of {', '.join(OUTTYPES)}.")
    if not root.is_dir():
        raise CheckpointError(f"{root} is not a folder; point at the folder that holds config.json.")
    hf_arch = architecture_of(read_json_object(root / "config.json", "config.json"))
    if hf_arch not in ARCHITECTURES:
        raise CheckpointError(f"{hf_arch} models cannot be converted yet; QuantDesk converts "
                              f"{', '.join(sorted(set(ARCHITECTURES) - {'LLaMAForCausalLM'}))}.")  # fmt: skip
    arch = ARCHITECTURES[hf_arch](root, load_hparams(root), hf_arch)
    entries = list_tensors(root)
    tensors = [_planned(arch, name, array.shape, outtype, array=array) for name, array in arch.extra_tensors()]
    for entry in _in_converter_order(entries):
        if entry.name.endswith(_SKIP_SUFFIXES) or (kept := arch.keep(entry.name)) is None:
            continue
        if entry.dtype not in ("F32", "F16", "BF16"):
            raise CheckpointError(f"The tensor {entry.name[:120]!r} holds {entry.dtype} values; only float "
                                  "checkpoints (F32, F16, BF16) can be converted.")  # fmt: skip
        tensors.append(_planned(arch, kept, arch.out_shape(kept, entry.shape), outtype, source=entry.name))
    if not tensors:
        raise CheckpointError("The checkpoint holds no tensors of a text model.")
    _check_unique(tensors)
    return Plan(root, hf_arch, arch, outtype, entries, tensors)


def _in_converter_order(entries: dict[str, TensorEntry]) -> list[TensorEntry]:
    """Shard by shard, and by name within a shard, as the converter walks them (the order decides
    where each tensor sits in the file)."""
    shards: dict[Path, list[TensorEntry]] = {}
    for entry in entries.values():
        shards.setdefault(entry.file, []).append(entry)
    return [e for shard in sorted(shards, key=lambda p: p.name) for e in sorted(shards[shard], key=lambda e: e.name)]


def _planned(arch: TextArch, name: str, shape: tuple[int, ...], outtype: str, *, source: str = "",
             array: np.ndarray | None = None) -> PlannedTensor:  # fmt: skip
    new_name = arch.gguf_name(name) if source else name
    qtype = choose_type(arch, new_name, shape, outtype)
    return PlannedTensor(new_name, source, tuple(shape), qtype, tensor_nbytes(shape, qtype), array)


def choose_type(arch: TextArch, name: str, shape: tuple[int, ...], outtype: str) -> gguf.GGMLQuantizationType:
    """The converter's per-tensor type: F32 for vectors, norms and a few kinds, else the output type,
    falling back to F16 where Q8_0's 32-value blocks do not divide the rows."""
    if len(shape) <= 1 or name.endswith("_norm.weight") or name[-7:] not in (".weight", ".lora_a", ".lora_b"):
        return gguf.GGMLQuantizationType.F32
    if _always_f32(arch).match(name):
        return gguf.GGMLQuantizationType.F32
    qtype = _QTYPE[outtype]
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if shape[-1] % block:
        return gguf.GGMLQuantizationType.F16
    return qtype


def _always_f32(arch: TextArch) -> re.Pattern[str]:
    known = gguf.MODEL_TENSORS.get(arch.gguf_arch, [])
    keys = [getattr(gguf.MODEL_TENSOR, k) for k in _F32_KEYS if hasattr(gguf.MODEL_TENSOR, k)]
    names = [re.escape(gguf.TENSOR_NAMES[k]).replace(re.escape("{bid}"), r"\d+") for k in keys if k in known]
    return re.compile(rf"^(?:{'|'.join(names)})\.weight$" if names else r"(?!)")


def tensor_nbytes(shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    return count // block * size


def _check_unique(tensors: list[PlannedTensor]) -> None:
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise CheckpointError(f"Two checkpoint tensors map to {t.name}; the checkpoint is not a plain "
                                  "text model of its architecture.")  # fmt: skip
        seen.add(t.name)


def convert(folder: str | Path, outfile: str | Path, outtype: str = "f16", *,
            progress: Callable[[ConvertProgress], None] | None = None,
            cancel: threading.Event | None = None, name: str | None = None) -> ConvertResult:  # fmt: skip
    """Write ``outfile``: the checkpoint in ``folder`` as a GGUF of ``outtype``, named ``name`` (default:
    the folder's name; a Hub download's folder is a commit hash in the HF cache).

    Raises:
        CheckpointError: the checkpoint cannot be converted (the message says why), or the disk is full.
        Cancelled: ``cancel`` was set; nothing is left behind.
    """
    started = time.monotonic()
    p = plan(folder, outtype)
    if name:
        p = replace(p, name=name)
    out = Path(outfile)
    out.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out.parent).free
    if free < p.output_bytes:
        raise CheckpointError(f"Not enough disk space in {out.parent}: converting needs about "
                              f"{human_bytes(p.output_bytes)}, {human_bytes(free)} is free.")  # fmt: skip
    part = out.with_name(out.name + ".part")
    try:
        _write(p, part, progress or (lambda _p: None), cancel or threading.Event())
        part.replace(out)
    except OSError as e:
        part.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise CheckpointError(f"The disk filled up while writing {out.name}; free "
                                  f"{human_bytes(p.output_bytes)} and convert again.") from e  # fmt: skip
        raise CheckpointError(f"Could not write {out}: {e.strerror or e}.") from e
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return ConvertResult(str(out), out.stat().st_size, _sha256(out), outtype, time.monotonic() - started)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _write(p: Plan, part: Path, progress: Callable[[ConvertProgress], None], cancel: threading.Event) -> None:
    # the architectures overwrite some of the generic keys on purpose, as the converter does
    logging.getLogger("gguf.gguf_writer").setLevel(logging.ERROR)
    gw = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[p.arch.gguf_arch])
    try:
        for t in p.tensors:
            gw.add_tensor_info(t.name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)
        _metadata(p, gw)
        gw.write_header_to_file(path=part)
        gw.write_kv_data_to_file()
        gw.write_ti_data_to_file()
        assert gw.fout is not None
        fout = gw.fout[0]
        done, total = 0, p.source_bytes
        for t in p.tensors:
            if cancel.is_set():
                raise Cancelled("Conversion cancelled; the partial file was deleted.")
            gw.tensors[0].pop(t.name)
            gw.write_padding(fout, fout.tell())
            written = _write_tensor(p, t, fout, cancel)
            if written != t.nbytes:
                raise CheckpointError(f"{t.name} came out as {written} bytes instead of {t.nbytes}.")
            gw.write_padding(fout, t.nbytes)
            done += p.entries[t.source].nbytes if t.source else 0
            progress(ConvertProgress(done, total, t.name))
        fout.flush()
    finally:
        gw.close()


def _write_tensor(p: Plan, t: PlannedTensor, fout: Any, cancel: threading.Event) -> int:
    if t.array is not None:
        return _emit(_converted(t.array, t.qtype), fout)
    entry = p.entries[t.source]
    rows = entry.shape[0] if entry.shape else 1
    if p.arch.whole_tensor(t.source) or len(entry.shape) < 2:
        data = p.arch.transform(t.source, _as_compute(load_rows(entry, 0, rows)))
        return _emit(_converted(data, t.qtype), fout)
    step = max(1, CHUNK_BYTES // max(1, entry.nbytes // rows))
    written = 0
    for start in range(0, t.shape[0], step):
        if cancel.is_set():
            raise Cancelled("Conversion cancelled; the partial file was deleted.")
        chunk = _as_compute(load_rows(entry, start, min(start + step, t.shape[0])))
        written += _emit(_converted(chunk, t.qtype), fout)
    return written


def _as_compute(data: np.ndarray) -> np.ndarray:
    """The converter hands float16 and float32 through and widens everything else to float32."""
    return data if data.dtype in (np.float16, np.float32) else data.astype(np.float32)


def _converted(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    return gguf.quants.quantize(data, qtype)


def _emit(data: np.ndarray, fout: Any) -> int:
    data = np.ascontiguousarray(data)
    fout.write(data.data)
    return int(data.nbytes)


def _metadata(p: Plan, gw: gguf.GGUFWriter) -> None:
    """In the converter's order: general, model parameters, quantization version, tokenizer."""
    gw.add_type(gguf.GGUFType.MODEL)
    gw.add_name(p.name or p.folder.name)
    params = sum(int(np.prod(t.shape)) for t in p.tensors)
    gw.add_size_label(gguf.size_label(params, 0, 0, 0))
    p.arch.params(gw)
    gw.add_file_type(OUTTYPES[p.outtype])
    gw.add_quantization_version(gguf.GGML_QUANT_VERSION)
    p.arch.vocab(gw)
