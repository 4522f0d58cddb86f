"""Scanning 200 GGUF headers with 50k-token vocabularies (tokens, types and merges): under 2 s.

Run on demand:  python -m pytest tests/benchmarks -s
"""

from __future__ import annotations

import shutil
import time

from desktop_app.core.gguf import read_gguf_header
from desktop_app.core.library import LibraryCache, StarterModel, scan_library
from desktop_app.core.settings import Settings
from tests.gguf_factory import write_gguf

N_FILES = 200


def _scan(settings, cache):
    return scan_library(settings, cache=cache, starter=StarterModel(None, ""))


def test_scan_200_headers(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    src = write_gguf(tmp_path / "src.gguf", n_vocab=50_000, merges=True, n_layers=32, n_embd=256)
    for i in range(N_FILES):
        shutil.copyfile(src, lib / f"model-{i:03d}.gguf")
    t0 = time.perf_counter()
    for _ in range(20):
        read_gguf_header(src)
    one = (time.perf_counter() - t0) / 20
    settings = Settings(model_folders=[str(lib)], include_hf_cache=False, include_starter=False)
    cold = _scan(settings, LibraryCache(tmp_path / "cache.json"))
    assert len(cold.models) == N_FILES and cold.parsed == N_FILES
    warm = _scan(settings, LibraryCache.load(tmp_path / "cache.json"))
    assert warm.parsed == 0
    print(
        f"\none header (50k tokens + merges, 290 tensors): {one * 1000:.1f} ms; "
        f"scan of {N_FILES} files: cold {cold.elapsed_s:.2f} s, from cache {warm.elapsed_s:.2f} s (target < 2 s)"
    )
    assert cold.elapsed_s < 2.0
