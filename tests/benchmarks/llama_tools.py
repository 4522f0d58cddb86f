"""llama.cpp's own tools, built from the sources vendored in the pinned llama-cpp-python sdist.

The first call downloads the sdist from PyPI and builds one target (a few minutes on 2 cores);
later calls reuse the binary in ~/.cache/quantdesk-bench. QUANTDESK_LLAMA_PERPLEXITY may point at
a binary instead.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import tarfile
import urllib.parse
import urllib.request

from tests.benchmarks.quants import CACHE


def _download_sdist(version: str, dest) -> None:
    """The sdist itself, from PyPI's JSON API (``pip download --no-binary`` would build its build
    dependencies from source first)."""
    index = "https://pypi.org/pypi/llama-cpp-python/json"
    with urllib.request.urlopen(index, timeout=60) as r:
        urls = json.load(r)["releases"][version]
    sdist = next(u for u in urls if u["packagetype"] == "sdist")
    tmp = dest.with_suffix(".part")
    with urllib.request.urlopen(urllib.parse.urljoin(index, sdist["url"]), timeout=600) as r, open(tmp, "wb") as f:
        shutil.copyfileobj(r, f)
    if hashlib.sha256(tmp.read_bytes()).hexdigest() != sdist["digests"]["sha256"]:
        raise RuntimeError("the llama-cpp-python sdist did not match PyPI's sha256")
    tmp.replace(dest)


def llama_tool(target: str = "llama-perplexity") -> str:
    if target == "llama-perplexity" and os.environ.get("QUANTDESK_LLAMA_PERPLEXITY"):
        return os.environ["QUANTDESK_LLAMA_PERPLEXITY"]
    version = importlib.metadata.version("llama-cpp-python")
    root = CACHE / f"llama-cpp-python-{version}"
    binary = root / "build" / "bin" / target
    if binary.exists():
        return str(binary)
    root.mkdir(parents=True, exist_ok=True)
    sdist = root / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.exists():
        _download_sdist(version, sdist)
    src = root / f"llama_cpp_python-{version}"
    if not src.exists():
        with tarfile.open(sdist) as tar:
            tar.extractall(root, filter="data")
    llama = src / "vendor" / "llama.cpp"
    build = root / "build"
    subprocess.run(["cmake", "-S", str(llama), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"], check=True)  # fmt: skip
    subprocess.run(["cmake", "--build", str(build), "--target", target, "-j", str(os.cpu_count() or 2)], check=True)
    return str(binary)
