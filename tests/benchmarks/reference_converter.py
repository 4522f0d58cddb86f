"""llama.cpp's own ``convert_hf_to_gguf.py``, run from the sources vendored in the pinned
llama-cpp-python sdist, as the reference our converter is compared with.

The converter needs torch, so it runs in a throwaway venv (~/.cache/quantdesk-bench/convert-venv)
made once: torch==2.13.0 (the CPU build on this machine's disk; any other spec would fetch
gigabytes of CUDA), the converter's requirements with torch held to that pin, and the vendored
gguf-py so the converter writes with the gguf of its own sources.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from tests.benchmarks.llama_tools import _download_sdist
from tests.benchmarks.quants import CACHE

TORCH = "torch==2.13.0"
VENV = CACHE / "convert-venv"
_MARKER = ".quantdesk-ready"
# Torch is pinned above; gguf comes from the vendored gguf-py instead of PyPI.
_SKIPPED = ("torch", "gguf")
_EXTRA = ["safetensors", "tokenizers", "jinja2"]


def llama_cpp_sources() -> Path:
    """vendor/llama.cpp of the pinned llama-cpp-python sdist, downloaded and unpacked once (the
    same place ``llama_tools.llama_tool`` unpacks it)."""
    version = importlib.metadata.version("llama-cpp-python")
    root = CACHE / f"llama-cpp-python-{version}"
    src = root / f"llama_cpp_python-{version}"
    if not src.exists():
        root.mkdir(parents=True, exist_ok=True)
        sdist = root / f"llama_cpp_python-{version}.tar.gz"
        if not sdist.exists():
            _download_sdist(version, sdist)
        with tarfile.open(sdist) as tar:
            tar.extractall(root, filter="data")
    return src / "vendor" / "llama.cpp"


def _requirements(llama: Path) -> list[str]:
    """The pins of the converter's requirement files, less torch and gguf."""
    out: list[str] = []
    for name in ("requirements-convert_hf_to_gguf.txt", "requirements-convert_legacy_llama.txt"):
        for line in (llama / "requirements" / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            project = line.split(";")[0]
            for sep in "=<>~!([ ":
                project = project.split(sep, 1)[0]
            if project.strip().lower() not in _SKIPPED:
                out.append(line)
    return out


def _python() -> str:
    return shutil.which("python3.11") or shutil.which("python3") or sys.executable


def reference_venv() -> Path:
    """The converter's venv, made on first use; returns its folder."""
    if (VENV / _MARKER).exists():
        return VENV
    llama = llama_cpp_sources()
    if VENV.exists():
        shutil.rmtree(VENV)  # a half-made one from an interrupted run
    subprocess.run([_python(), "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, TORCH], check=True)
    constraints = VENV / "constraints.txt"
    constraints.write_text(TORCH + "\n")
    reqs = _requirements(llama) + _EXTRA
    subprocess.run([*pip, "-c", str(constraints), *reqs, str(llama / "gguf-py")], check=True)
    check = "import torch, transformers, gguf; print(torch.__version__, transformers.__version__, gguf.__file__)"
    done = subprocess.run([str(VENV / "bin" / "python"), "-c", check], check=True, capture_output=True, text=True)
    torch_version = done.stdout.split()[0]
    if not torch_version.startswith(TORCH.split("==")[1]):
        raise RuntimeError(f"the converter venv got torch {torch_version}, not {TORCH}")
    (VENV / _MARKER).write_text(done.stdout)
    return VENV


def _command(checkpoint: Path, outfile: Path, outtype: str) -> tuple[list[str], dict[str, str]]:
    venv, llama = reference_venv(), llama_cpp_sources()
    argv = [str(venv / "bin" / "python"), str(llama / "convert_hf_to_gguf.py"), str(checkpoint),
            "--outfile", str(outfile), "--outtype", outtype]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    return argv, env


def _fail(returncode: int, stderr: str) -> None:
    if returncode:
        tail = "\n".join(stderr.splitlines()[-30:])
        raise RuntimeError(f"convert_hf_to_gguf.py exited with {returncode}:\n{tail}")


def reference_convert(checkpoint: Path, outfile: Path, outtype: str = "f16") -> float:
    """Converts ``checkpoint`` with llama.cpp's converter; returns the wall seconds it took."""
    argv, env = _command(checkpoint, outfile, outtype)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    _fail(done.returncode, done.stderr)
    return seconds


def reference_convert_measured(checkpoint: Path, outfile: Path, outtype: str = "f16") -> tuple[float, int]:
    """As ``reference_convert``, and the child's peak RSS in bytes: ``/usr/bin/time -v`` where it
    exists, else ``os.wait4`` on the child, which reads the rusage of that child alone."""
    argv, env = _command(checkpoint, outfile, outtype)
    timer = shutil.which("time", path="/usr/bin")
    with tempfile.TemporaryDirectory() as tmp:
        err, report = Path(tmp) / "stderr", Path(tmp) / "time"
        if timer:
            argv = [timer, "-v", "-o", str(report), *argv]
        with open(err, "wb") as stderr:
            start = time.perf_counter()
            child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        _fail(child.returncode, err.read_text(errors="replace"))
        peak_kib = usage.ru_maxrss
        if timer:
            line = next(x for x in report.read_text().splitlines() if "Maximum resident set size" in x)
            peak_kib = int(line.rsplit(":", 1)[1])
    return seconds, peak_kib * 1024
