"""One job from a source to a quant in the library: download (a Hub repo), convert, importance matrix,
quantize. What the Discover page's "Download and convert", the Models page's "Convert / Quantize…"
and ``quantdesk convert`` all run.

The source is a checkpoint folder, a GGUF file (F16/BF16/F32: quantize only) or ``owner/repo`` on the
Hub. Disk space is planned before anything starts (:func:`disk_plan`) and every step leaves nothing
behind when it fails or is cancelled; the intermediate F16 is deleted unless the user keeps it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from desktop_app.core.convert.converter import ConvertProgress, convert, plan
from desktop_app.core.convert.hparams import read_json_object
from desktop_app.core.convert.hub_checkpoint import checkpoint_files, download_checkpoint, fetch_small
from desktop_app.core.errors import Cancelled, CheckpointError, QuantDeskError
from desktop_app.core.gguf.reader import read_gguf_header
from desktop_app.core.hub.download import DownloadProgress
from desktop_app.core.hub.source import is_hub_reference
from desktop_app.core.quantize import QuantizeProgress, predicted_bytes, quantize
from desktop_app.core.units import format_bytes

FLOAT_FILE_TYPES = {0: "f32", 1: "f16", 32: "bf16"}  # general.file_type of GGUFs worth quantizing from
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class JobProgress:
    phase: str  # "download" | "convert" | "imatrix" | "quantize"
    done: int  # bytes (download, convert) or steps (imatrix chunks, quantize tensors)
    total: int
    detail: str  # the file or tensor being worked on

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


@dataclass(frozen=True)
class ConvertRequest:
    source: str  # a checkpoint folder, a float GGUF, or "owner/repo" on the Hub
    outdir: str
    outtype: str = "f16"  # the float GGUF converted to ("f16", "bf16", "q8_0"); the final file without quant
    quant: str | None = None  # "Q4_K_M" etc.; None stops at the converted file
    imatrix: str | None = None  # an importance matrix file (GGUF or legacy .dat)
    calibration: str | None = None  # text to compute one from, when no file is given
    keep_intermediate: bool = False  # keep the converted float GGUF beside the quant
    name: str | None = None  # the output file's base name; default from the source
    outfile: str | None = None  # the final file exactly (else outdir/<name>-<QUANT or OUTTYPE>.gguf)


@dataclass(frozen=True)
class DiskPlan:
    download_bytes: int  # what a Hub source still has to fetch (0 for local sources)
    intermediate_bytes: int  # the float GGUF (deleted at the end unless kept)
    final_bytes: int
    free_bytes: int  # in outdir
    shared_disk: bool = False  # the download lands on the output's disk (the HF cache is there too)

    @property
    def peak_bytes(self) -> int:
        """On the output disk at the worst moment: the float GGUF and the quant side by side, and the
        downloaded checkpoint when it sits on the same disk."""
        return self.intermediate_bytes + self.final_bytes + (self.download_bytes if self.shared_disk else 0)

    @property
    def ok(self) -> bool:
        return self.peak_bytes <= self.free_bytes

    def describe(self) -> str:
        parts = []
        if self.download_bytes:
            where = " to the Hugging Face cache on the same disk" if self.shared_disk else ""
            parts.append(f"downloads {format_bytes(self.download_bytes)}{where}")
        parts.append(f"needs {format_bytes(self.peak_bytes)} free while working, {format_bytes(self.final_bytes)} "
                     f"at the end; {format_bytes(self.free_bytes)} is free")  # fmt: skip
        return "This " + ", ".join(parts) + "."


@dataclass(frozen=True)
class JobResult:
    path: str
    bytes: int
    sha256: str
    outtype: str
    quant: str | None
    seconds: float
    intermediate: str | None  # the float GGUF, when kept


def default_output_dir() -> Path:
    """Where converted models go unless the user says otherwise (the library scans it)."""
    from desktop_app.core.paths import app_paths

    return app_paths().data_dir / "converted"


def source_kind(source: str) -> str:
    """ "folder", "gguf" or "hub"; a CheckpointError when it is none of them."""
    path = Path(source).expanduser()
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "gguf"
    if is_hub_reference(source) and not os.path.exists(source):
        return "hub"
    raise CheckpointError(f"{source} is not a folder, a GGUF file or a Hugging Face repo (owner/name).")


def base_name(req: ConvertRequest) -> str:
    raw = req.name or (req.source.rstrip("/").split("/")[-1] if source_kind(req.source) == "hub" else
                       Path(req.source).expanduser().resolve().name)  # fmt: skip
    raw = raw[:-5] if raw.lower().endswith(".gguf") else raw
    return _SAFE_NAME.sub("-", raw).strip("-.")[:120] or "model"


def _float_type_of(gguf_path: str) -> str:
    header = read_gguf_header(gguf_path)
    file_type = header.metadata.get("general.file_type")
    if file_type not in FLOAT_FILE_TYPES:
        raise CheckpointError(f"{Path(gguf_path).name} is already quantized; quantize from its F16, BF16 or F32 "
                              "GGUF (or the original checkpoint) instead.")  # fmt: skip
    return FLOAT_FILE_TYPES[file_type]


def disk_plan(req: ConvertRequest) -> DiskPlan:
    """What the job will write, from headers alone (a Hub source from its config and file list)."""
    out = Path(req.outfile).expanduser().parent if req.outfile else Path(req.outdir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out).free
    kind = source_kind(req.source)
    if kind == "gguf":
        _float_type_of(req.source)
        final = predicted_bytes(req.source, req.quant) if req.quant else 0
        return DiskPlan(0, 0, final, free)
    if kind == "hub":
        download = sum(size for _n, size in checkpoint_files(req.source))
        folder = fetch_small(req.source, "config.json").parent
        if req.quant and not (folder / "model.safetensors.index.json").exists():
            with contextlib.suppress(QuantDeskError):
                fetch_small(req.source, "model.safetensors.index.json")
        floating = _float_bytes(folder, req.outtype, download)
        shared = _same_disk(folder, out)
    else:
        download, folder, shared = 0, Path(req.source), False
        floating = plan(folder, req.outtype).output_bytes
    if not req.quant:
        return DiskPlan(download, 0, floating, free, shared)
    return DiskPlan(download, floating, _quant_bytes(folder, req.quant, floating), free, shared)


def _same_disk(a: Path, b: Path) -> bool:
    try:
        return a.resolve().stat().st_dev == b.resolve().stat().st_dev
    except OSError:
        return True  # cannot tell: count the download, the safer side


def _float_bytes(folder: Path, outtype: str, weights: int) -> int:
    """The converted file before the weights are here: F16/BF16 are the weights' size when they are
    16-bit (most checkpoints), Q8_0 a little over half."""
    return weights if outtype in ("f16", "bf16") else weights * 17 // 32


def _quant_bytes(folder: Path, quant: str, float_bytes: int) -> int:
    """The quant's size as llama.cpp's quantizer will make it, planned from config.json (the same
    plan Discover shows); when the config is one the planner does not know, a bits-per-weight guess."""
    from desktop_app.core.memory.hf_config import shape_from_hf_config
    from desktop_app.core.memory.quant_plan import shape_for_quant

    try:
        config = read_json_object(folder / "config.json", "config.json")
        index = folder / "model.safetensors.index.json"
        weight_map = read_json_object(index, "index").get("weight_map") if index.is_file() else None
        f16, header = shape_from_hf_config(config, weight_map)
        return shape_for_quant(f16, quant.upper(), header_bytes=header)[0].file_bytes
    except (ValueError, KeyError, TypeError, QuantDeskError):
        bits = {"Q8_0": 8.5, "Q6_K": 6.6, "Q5_K_M": 5.7, "Q5_K_S": 5.5, "Q4_K_M": 4.9, "Q4_K_S": 4.6}
        return int(float_bytes * bits.get(quant.upper(), 8.5) / 16) + (1 << 20)


def run(req: ConvertRequest, *, progress: Callable[[JobProgress], None] | None = None,
        cancel: threading.Event | None = None) -> JobResult:  # fmt: skip
    """Do the whole job. Raises CheckpointError, QuantizeError, ImatrixError, HubError (with messages
    for the user) or a Cancelled subclass; what was half-made is deleted."""
    started = time.monotonic()
    report = progress or (lambda _p: None)
    stop = cancel or threading.Event()
    space = disk_plan(req)
    if not space.ok:
        raise CheckpointError(f"Not enough disk space in {req.outdir}. {space.describe()}")
    outdir = Path(req.outdir).expanduser()
    name = base_name(req)
    final_path = Path(req.outfile).expanduser() if req.outfile else None
    kind = source_kind(req.source)
    source, model_name = req.source, None
    if kind == "hub":
        source = str(download_checkpoint(req.source, progress=lambda p: report(_from_download(p)), cancel=stop))
        kind, model_name = "folder", req.source.rstrip("/").split("/")[-1]  # not the snapshot's commit hash
    if kind == "folder":
        float_path = outdir / f"{name}-{req.outtype.upper()}.gguf"
        if final_path is not None:
            float_path = final_path if not req.quant else final_path.with_name(f"{final_path.stem}.{req.outtype}.gguf")
        done = convert(source, float_path, req.outtype, progress=lambda p: report(_from_convert(p)), cancel=stop,
                       name=model_name)  # fmt: skip
        outtype = req.outtype
        if not req.quant:  # convert() hashed it while it was fresh: no second read of the file
            return JobResult(done.path, done.bytes, done.sha256, outtype, None, time.monotonic() - started, None)
    else:
        float_path, outtype = Path(source), _float_type_of(source)
    if not req.quant:
        return _result(float_path, outtype, None, started, None)
    try:
        target = final_path or outdir / f"{name}-{req.quant.upper()}.gguf"
        final = _quantize(req, float_path, target, report, stop)
    finally:
        if kind == "folder" and not req.keep_intermediate:
            float_path.unlink(missing_ok=True)
    kept = str(float_path) if kind == "folder" and req.keep_intermediate else None
    return _result(final, outtype, req.quant.upper(), started, kept)


def _quantize(req: ConvertRequest, float_path: Path, out: Path, report: Callable[[JobProgress], None],
              stop: threading.Event) -> Path:  # fmt: skip
    imatrix = req.imatrix
    computed: Path | None = None
    if imatrix is None and req.calibration:
        from desktop_app.core.imatrix import compute_imatrix

        computed = out.with_name(out.stem + ".imatrix.gguf")
        compute_imatrix(str(float_path), req.calibration, str(computed), cancel=stop,
                        progress=lambda p: report(JobProgress("imatrix", p.done, p.total, "")))  # fmt: skip
        imatrix = str(computed)
    try:
        quantize(str(float_path), str(out), req.quant or "", imatrix=imatrix, cancel=stop,
                 progress=lambda p: report(_from_quantize(p)))  # fmt: skip
    finally:
        if computed is not None:
            computed.unlink(missing_ok=True)
    return out


def _from_download(p: DownloadProgress) -> JobProgress:
    return JobProgress("download", p.bytes_done, p.bytes_total, p.filename)


def _from_convert(p: ConvertProgress) -> JobProgress:
    return JobProgress("convert", p.done_bytes, p.total_bytes, p.tensor)


def _from_quantize(p: QuantizeProgress) -> JobProgress:
    return JobProgress("quantize", p.done, p.total, p.tensor)


def _result(path: Path, outtype: str, quant: str | None, started: float, kept: str | None) -> JobResult:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return JobResult(str(path), path.stat().st_size, digest.hexdigest(), outtype, quant,
                     time.monotonic() - started, kept)  # fmt: skip


__all__ = ["Cancelled", "ConvertRequest", "DiskPlan", "JobProgress", "JobResult", "disk_plan", "run"]
