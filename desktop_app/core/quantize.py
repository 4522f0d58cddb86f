"""Quantize a GGUF with llama.cpp's own quantizer, in a child process.

``llama_model_quantize`` has no cancel and aborts the whole process on some errors, so it never
runs inside the app's process. The child runs in a process group of its own (a cancel kills all of
it), writes ``dst + ".part"`` and the part is renamed into place only when llama.cpp succeeded, so
a cancelled, failed or crashed job never leaves a file that looks like a model. Progress is the line
llama.cpp logs per tensor, which the child forwards to its stderr.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass

from desktop_app.core.child import describe_exit
from desktop_app.core.errors import GGUFError, QuantizeCancelled, QuantizeError
from desktop_app.core.gguf.ggml_types import FILE_TYPES, GGML_TYPES
from desktop_app.core.gguf.reader import GGUFHeader, read_model_headers
from desktop_app.core.llama_child import ChildRun, run_llama_child

__all__ = ["FTYPE_BY_NAME", "QuantizeError", "QuantizeCancelled", "QuantizeProgress", "predicted_bytes", "quantize"]

FTYPE_BY_NAME = {name: num for num, name in FILE_TYPES.items()}
CHILD = "desktop_app.core._quantize_child"
ALIGN = 32  # GGUF_DEFAULT_ALIGNMENT: llama-quant pads every tensor to it, whatever the source used
HEADER_SLACK = 4096  # the keys the quantizer adds (quantization version, imatrix facts) and padding
DISK_FULL_FREE = 16 << 20  # after a failed write, less free than this means the disk filled up
MAX_TENSORS = 1 << 24
_TYPE_BY_NAME = {t.name: t for t in GGML_TYPES.values()}


@dataclass(frozen=True)
class QuantizeProgress:
    done: int  # tensors finished
    total: int  # tensors in the model
    tensor: str  # name of the tensor just finished


@dataclass(frozen=True)
class TensorLine:
    """One tensor as llama.cpp's quantizer logged it: ``new_type`` is None when it was copied."""

    index: int
    total: int
    name: str
    shape: tuple[int, ...]
    type: str
    new_type: str | None


# "[  12/ 272]   blk.0.attn_q.weight - [  576,   576,     1,     1], type =    f16, " (llama-quant.cpp)
_HEAD = re.compile(
    r"\[\s*(\d{1,9})/\s*(\d{1,9})\]\s+(\S.{0,255}?)\s+-\s+\[([\d,\s]{1,120})\],\s+type\s+=\s+(\w{1,20}),"
)
# then "converting to q4_K .. size = …" (a run) or "size = 0.63 MiB -> 0.18 MiB (q4_K)" (a dry run)
_NEW_TYPE = re.compile(r"converting to (\w{1,20})|->\s+[\d.]{1,20} MiB \((\w{1,20})\)")


class TensorLog:
    """llama.cpp's per-tensor lines put back together. A tensor's line is written in pieces, and a
    warning ("did not find weights for …") can land between them, so a tensor counts as finished
    at the first "size =" after its header. Lines come from a child: anything odd is ignored."""

    def __init__(self) -> None:
        self.done = 0
        self.total = 0
        self.tensors: list[TensorLine] = []
        self._pending: tuple[int, int, str, tuple[int, ...], str] | None = None

    def feed(self, line: str) -> TensorLine | None:
        rest = line
        head = _HEAD.search(line)
        if head:
            self._pending = self._header(head)
            rest = line[head.end() :]
        if self._pending is None or "size =" not in rest:
            return None
        new = _NEW_TYPE.search(rest)
        index, total, name, shape, cur = self._pending
        self._pending = None
        record = TensorLine(index, total, name, shape, cur, (new[1] or new[2]) if new else None)
        self.done, self.total = index, total
        self.tensors.append(record)
        return record

    def _header(self, m: re.Match[str]) -> tuple[int, int, str, tuple[int, ...], str] | None:
        index, total = int(m[1]), int(m[2])
        dims = [d.strip() for d in m[4].split(",")]
        if not all(d.isdigit() and len(d) <= 12 for d in dims) or not 1 <= len(dims) <= 4:
            return None
        if not (self.done < index <= total <= MAX_TENSORS and self.total in (0, total)):
            return None
        return index, total, m[3].strip(), tuple(int(d) for d in dims), m[5]


def _check_quant(quant: str) -> int:
    if quant not in FTYPE_BY_NAME:
        raise QuantizeError(f"Unknown quant {quant!r}; choose one of {', '.join(sorted(FTYPE_BY_NAME))}.")
    return FTYPE_BY_NAME[quant]


def _read_src(src: str) -> list[GGUFHeader]:
    """The source's headers, or why llama.cpp could not quantize it, in words, before any child starts."""
    name = os.path.basename(src)
    try:
        return read_model_headers(src)
    except GGUFError as exc:
        raise QuantizeError(f"Cannot quantize {name}: {exc.reason}") from None
    except OSError as exc:
        raise QuantizeError(f"Cannot read {name}: {exc.strerror or exc}.") from None


def _tensor_bytes(shape: tuple[int, ...], type_name: str) -> int:
    t = _TYPE_BY_NAME.get(type_name.upper(), _TYPE_BY_NAME["F32"])  # unknown: the widest guess
    rows = 1
    for d in shape[1:]:
        rows *= d
    return rows * -(-shape[0] // t.block_size) * t.type_size if shape else 0


def _plan(src: str, quant: str, imatrix: str | None, cancel: threading.Event | None) -> int:
    """llama.cpp's own dry run (the types it will choose, imatrix included) added up to a file size."""
    headers = _read_src(src)
    log = TensorLog()
    run = run_llama_child(CHILD, _child_args(src, os.devnull, quant, 0, imatrix, dry=True),
                          on_stderr=log.feed, cancel=cancel)  # fmt: skip
    if run.cancelled:
        raise QuantizeCancelled(f"Quantizing to {quant} was cancelled.")
    if run.returncode != 0 or not log.tensors or log.done != log.total:
        raise QuantizeError(f"llama.cpp cannot quantize {os.path.basename(src)} to {quant}: {_reason(run)}")
    data = sum(-(-_tensor_bytes(t.shape, t.new_type or t.type) // ALIGN) * ALIGN for t in log.tensors)
    return sum(h.header_bytes for h in headers) + HEADER_SLACK + data


def predicted_bytes(src: str, quant: str, *, imatrix: str | None = None) -> int:
    """The size ``quantize(src, …, quant)`` will write, to within a few KiB above, as llama.cpp plans
    it (a dry run in a child, about a second): every quant, and the mix an imatrix changes.

    Raises:
        QuantizeError: unknown quant, a source that is not a usable GGUF, or llama.cpp refused it.
    """
    _check_quant(quant)
    return _plan(src, quant, imatrix, None)


def _child_args(src: str, out: str, quant: str, threads: int, imatrix: str | None, *, dry: bool) -> list[str]:
    return [src, out, str(FTYPE_BY_NAME[quant]), str(threads), imatrix or "", "dry" if dry else "run"]


def _reason(run: ChildRun) -> str:
    """Why the child failed: its own message, else llama.cpp's "failed to quantize: …", else its last line."""
    for kind, payload in run.messages:
        if kind == "error" and isinstance(payload, str):
            return payload[:300]
    for line in reversed(run.tail):
        _, sep, why = line.partition("failed to quantize: ")
        if sep and why.strip():
            why = why.strip()
            return f"writing the file failed ({why})" if "iostream error" in why else why
    last = next((line.strip() for line in reversed(run.tail) if line.strip()), "")
    died = "" if run.returncode is not None and run.returncode >= 0 else f"it {describe_exit(run.returncode)}"
    return "; ".join(p for p in (died, last[-300:]) if p) or f"it {describe_exit(run.returncode)}"


def _free_bytes(folder: str) -> int:
    return shutil.disk_usage(folder).free


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _gb(n: int) -> str:
    from desktop_app.core.units import format_bytes

    return format_bytes(n)


def _check_space(folder: str, need: int) -> None:
    free = _free_bytes(folder)
    if need > free:
        raise QuantizeError(f"Not enough disk space in {folder}: needs {_gb(need)}, {_gb(free)} free.")


def quantize(
    src: str,
    dst: str,
    quant: str,
    *,
    threads: int = 0,
    imatrix: str | None = None,
    progress: Callable[[QuantizeProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Write ``dst``: ``src`` quantized to ``quant`` (e.g. "Q4_K_M"), requantizing if need be, with the
    importance matrix in ``imatrix`` (a llama-imatrix .gguf or .dat) when given.

    Raises:
        QuantizeError: unknown quant, an unusable source, not enough disk space, or llama.cpp failed
            (its reason is in the message).
        ImatrixError: ``imatrix`` is not a usable importance matrix.
        QuantizeCancelled: ``cancel`` was set; nothing is left behind.
    """
    _check_quant(quant)
    if imatrix:
        from desktop_app.core.imatrix import read_imatrix

        read_imatrix(imatrix)  # its own clear error now, rather than llama.cpp's later
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise QuantizeError(f"Cannot write {os.path.basename(dst)}: the folder {folder} does not exist.")
    part = dst + ".part"
    _remove(part)  # left by a crash of an earlier run
    need = _plan(src, quant, imatrix, cancel)
    _check_space(folder, need)
    try:
        run = _run(src, part, quant, threads, imatrix, progress, cancel)
    except BaseException:
        _remove(part)
        raise
    if run.returncode == 0 and not run.cancelled:
        os.replace(part, dst)
        return
    _fail(run, part, folder, quant, need, src)


def _run(src: str, part: str, quant: str, threads: int, imatrix: str | None,
         progress: Callable[[QuantizeProgress], None] | None, cancel: threading.Event | None) -> ChildRun:  # fmt: skip
    log = TensorLog()

    def on_line(line: str) -> None:
        record = log.feed(line)
        if record is not None and progress is not None:
            progress(QuantizeProgress(record.index, record.total, record.name))

    return run_llama_child(CHILD, _child_args(src, part, quant, threads, imatrix, dry=False),
                           on_stderr=on_line, cancel=cancel)  # fmt: skip


def _fail(run: ChildRun, part: str, folder: str, quant: str, need: int, src: str) -> None:
    """Delete the partial output and raise what went wrong; a full disk is told as such."""
    full = False
    with contextlib.suppress(OSError):
        full = os.path.exists(part) and _free_bytes(folder) < DISK_FULL_FREE
    _remove(part)
    if run.cancelled:
        raise QuantizeCancelled(f"Quantizing to {quant} was cancelled.")
    if full or any("No space left" in line for line in run.tail):
        free = _free_bytes(folder)
        raise QuantizeError(f"Not enough disk space in {folder}: needs {_gb(need)}, {_gb(free)} free.")
    if run.timed_out:
        raise QuantizeError(f"llama.cpp's quantizer stopped answering while writing {quant}; it was stopped.")
    raise QuantizeError(f"llama.cpp could not quantize {os.path.basename(src)} to {quant}: {_reason(run)}")
