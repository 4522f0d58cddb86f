"""Our importance matrix against llama-imatrix's own, on the same text, chunk size and threads.

Run on demand:  python -m pytest tests/benchmarks/test_bench_imatrix.py -s
(builds llama-imatrix from the pinned sdist the first time, see llama_tools.py)

llama-imatrix runs with ``-c 512 -b 512``: its default batch of 2048 would put four 512-token
chunks side by side in one batch (same sums, other kernels' rounding); ``-b 512`` evaluates one
chunk per batch, as compute_imatrix does. ``--no-ppl`` only skips its perplexity printout, and
``--no-repack`` is passed when the app's runtime runs llama.cpp without weight repacking. Then
``llama-imatrix --in-file ours --show-statistics`` must read our file.
"""

from __future__ import annotations

import subprocess
import time

import numpy as np

from desktop_app.core.imatrix import compute_imatrix, load_imatrix
from desktop_app.core.runtime import runtime_for_children
from desktop_app.resources import resource_path
from tests.benchmarks.llama_tools import llama_tool
from tests.benchmarks.quants import smollm2_quants

N_CTX = 512
MAX_REL_DIFF = 1e-3


def _rel_diffs(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for name, a in ours.items():
        b = theirs[name].astype(np.float64)
        a = a.astype(np.float64)
        scale = np.maximum(np.abs(a), np.abs(b))
        rel = np.where(scale > 0, np.abs(a - b) / np.where(scale > 0, scale, 1), 0)
        out[name] = float(rel.max())
    return out


def test_compute_imatrix_matches_llama_imatrix(tmp_path):
    model = smollm2_quants(["F16"])["F16"]
    text = resource_path("compare/fidelity-text.txt").read_text("utf-8").rstrip("\n")
    text_file = tmp_path / "calibration.txt"
    text_file.write_text(text, "utf-8")  # no final newline: llama-imatrix -f would drop one
    config = runtime_for_children()
    threads = config.n_threads
    tool = llama_tool("llama-imatrix")

    theirs_path, ours_path = tmp_path / "theirs.gguf", tmp_path / "ours.gguf"
    cmd = [tool, "-m", model, "-f", str(text_file), "-o", str(theirs_path), "-c", str(N_CTX), "-b", str(N_CTX),
           "-t", str(threads), "--no-ppl", *([] if config.extra_bufts else ["--no-repack"])]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    their_s = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]

    t0 = time.monotonic()
    compute_imatrix(model, text, str(ours_path), n_ctx=N_CTX, threads=threads, dataset=str(text_file))
    our_s = time.monotonic() - t0

    ours, theirs = load_imatrix(str(ours_path)), load_imatrix(str(theirs_path))
    assert set(ours.entries) == set(theirs.entries)
    assert (ours.chunk_count, ours.chunk_size) == (theirs.chunk_count, theirs.chunk_size)
    diffs = _rel_diffs(ours.entries, theirs.entries)
    worst = max(diffs, key=diffs.__getitem__)
    print(f"\n{len(diffs)} weights, {ours.chunk_count} chunks of {N_CTX} tokens, {threads} threads: "
          f"max relative difference {diffs[worst]:.2e} ({worst}), median of the per-weight maxima "
          f"{np.median(list(diffs.values())):.2e}")  # fmt: skip
    print(f"wall time: compute_imatrix {our_s:.1f} s, llama-imatrix {their_s:.1f} s")
    assert diffs[worst] <= MAX_REL_DIFF
    # llama.cpp's own loader reads our file (the one llama-quantize uses too)
    stats = subprocess.run([tool, "-m", model, "--in-file", str(ours_path), "--show-statistics"],
                           capture_output=True, text=True)  # fmt: skip
    assert stats.returncode == 0 and f"({len(diffs)} tensors)" in stats.stdout + stats.stderr, stats.stderr[-2000:]


def test_an_importance_matrix_lowers_the_kl_divergence_of_q4_k_s(tmp_path):
    """Q4_K_S from the F16 starter with and without an importance matrix computed from QuantDesk's own
    calibration text, measured by the app's Compare on its fidelity text (a different text: no
    calibrating on the test set)."""
    from desktop_app.core.compare.runner import run_comparison
    from desktop_app.core.convert.calibration import default_calibration_text
    from desktop_app.core.quantize import quantize

    f16 = smollm2_quants(["F16"])["F16"]
    matrix = tmp_path / "calibration.imatrix.gguf"
    t0 = time.monotonic()
    compute_imatrix(f16, default_calibration_text(), str(matrix))
    imatrix_s = time.monotonic() - t0
    plain, weighted = tmp_path / "plain-Q4_K_S.gguf", tmp_path / "imatrix-Q4_K_S.gguf"
    quantize(f16, str(plain), "Q4_K_S")
    quantize(f16, str(weighted), "Q4_K_S", imatrix=str(matrix))
    result = run_comparison(f16, [str(plain), str(weighted)])
    without, with_ = (c.stats["kld_mean"] for c in result.candidates)
    lower = 100 * (1 - with_ / without)
    print(f"\nimatrix from the calibration text: {imatrix_s:.1f} s; Q4_K_S mean KLD vs F16 over "
          f"{result.chunks} chunks: without {without:.5f}, with {with_:.5f} ({lower:.1f} % lower)")  # fmt: skip
    assert with_ < without
