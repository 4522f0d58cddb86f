"""Fidelity numbers against llama-perplexity's own, wall time, and RAM that does not grow with the text.

Run on demand:  python -m pytest tests/benchmarks/test_bench_compare.py -s
(builds llama-perplexity from the pinned sdist the first time, see llama_tools.py)
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from desktop_app.core.compare import run_comparison
from desktop_app.core.compare.runner import _run_child
from desktop_app.resources import resource_path
from tests.benchmarks.llama_tools import llama_tool
from tests.benchmarks.quants import smollm2_quants

TEXT = str(resource_path("compare/fidelity-text.txt"))
CANDIDATES = ["Q8_0", "Q4_K_M"]


def _threads() -> int:
    return psutil.cpu_count(logical=False) or 1


def _llama_perplexity(args: list[str]) -> tuple[str, float]:
    t0 = time.perf_counter()
    out = subprocess.run([llama_tool(), "-c", "512", "-t", str(_threads()), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout + out.stderr, time.perf_counter() - t0


def _parse(log: str) -> dict:
    def num(pattern: str) -> float:
        return float(re.search(pattern, log).group(1))

    return {"ppl": num(r"Mean PPL\(Q\)\s*:\s*([\d.]+)"), "kld_mean": num(r"Mean\s+KLD:\s*([\d.]+)"),
            "same_top_p": num(r"Same top p:\s*([\d.]+)") / 100}  # fmt: skip


@pytest.fixture(scope="module")
def quants():
    return smollm2_quants(["F16", *CANDIDATES])


def test_numbers_and_wall_time_match_llama_perplexity(quants, tmp_path):
    theirs, their_time = {}, 0.0
    base = tmp_path / "lp.kld"
    log, t = _llama_perplexity(["-m", quants["F16"], "-f", TEXT, "--kl-divergence-base", str(base)])
    their_time += t
    their_ref_ppl = float(re.search(r"Final estimate: PPL = ([\d.]+)", log).group(1))
    for q in CANDIDATES:
        log, t = _llama_perplexity(["-m", quants[q], "--kl-divergence-base", str(base), "--kl-divergence"])
        theirs[q] = _parse(log)
        their_time += t
    t0 = time.perf_counter()
    c = run_comparison(quants["F16"], [quants[q] for q in CANDIDATES], text_path=TEXT, n_threads=_threads())
    our_time = time.perf_counter() - t0
    speed_phase = sum(r.stats["ttft_s"] + r.stats["gen_tokens"] / r.stats["gen_tokens_per_s"]
                      for r in [c.reference, *c.candidates])  # fmt: skip
    print(f"\nreference F16: PPL ours {c.reference.stats['ppl']:.4f} vs llama-perplexity {their_ref_ppl:.4f}")
    worst = {"ppl": 0.0, "kld": 0.0, "top": 0.0}
    for q, r in zip(CANDIDATES, c.candidates, strict=True):
        s, o = r.stats, theirs[q]
        d_ppl = abs(s["ppl"] / o["ppl"] - 1)
        d_kld = abs(s["kld_mean"] / o["kld_mean"] - 1)
        d_top = abs(s["same_top_p"] - o["same_top_p"]) * 100
        worst = {"ppl": max(worst["ppl"], d_ppl), "kld": max(worst["kld"], d_kld), "top": max(worst["top"], d_top)}
        print(f"{q}: PPL {s['ppl']:.4f} vs {o['ppl']:.4f} ({d_ppl * 100:.3f} %), mean KLD {s['kld_mean']:.6f} vs "
              f"{o['kld_mean']:.6f} ({d_kld * 100:.2f} %), same top {s['same_top_p'] * 100:.3f} % vs "
              f"{o['same_top_p'] * 100:.3f} % ({d_top:.3f} points)")  # fmt: skip
    print(f"wall time: ours {our_time:.1f} s (of which {speed_phase:.1f} s measuring speed, which "
          f"llama-perplexity does not) vs llama-perplexity {their_time:.1f} s: {our_time / their_time:.2f}x "
          f"(target <= 1.5x)")  # fmt: skip
    assert worst["ppl"] < 0.005 and worst["kld"] < 0.03 and worst["top"] < 0.5
    assert our_time <= 1.5 * their_time

    # the file formats cross-check both ways: our candidates against llama-perplexity's base file…
    job = {"mode": "candidate", "model": quants["Q8_0"], "n_ctx": 512, "base": str(base), "n_threads": _threads()}
    ours_on_theirs = _run_child(job, 1, 2, "candidate", None, threading.Event())
    # …and llama-perplexity against ours
    log, _ = _llama_perplexity(["-m", quants["Q8_0"], "--kl-divergence-base", c.base_file, "--kl-divergence"])
    theirs_on_ours = _parse(log)
    print(f"cross-check Q8_0: our scoring on llama-perplexity's base file: KLD {ours_on_theirs['kld_mean']:.6f}; "
          f"llama-perplexity on ours: KLD {theirs_on_ours['kld_mean']:.6f}")  # fmt: skip
    assert ours_on_theirs["kld_mean"] == pytest.approx(theirs["Q8_0"]["kld_mean"], rel=0.03)
    assert theirs_on_ours["kld_mean"] == pytest.approx(c.candidates[0].stats["kld_mean"], rel=0.03)


def test_peak_ram_does_not_grow_with_the_text(quants, tmp_path):
    text = tmp_path / "long.txt"
    text.write_text(Path(TEXT).read_text(encoding="utf-8") * 3, encoding="utf-8")  # ~14k tokens, 27 chunks
    peaks = {}
    for chunks in (2, 24):
        c = run_comparison(quants["F16"], [quants["Q4_K_M"]], text_path=str(text), chunks=chunks)
        peaks[chunks] = (c.reference.stats["peak_rss_bytes"], c.candidates[0].stats["peak_rss_bytes"])
    mib = 1024 * 1024
    print(f"\npeak RSS (reference, candidate): 2 chunks {peaks[2][0] // mib} / {peaks[2][1] // mib} MiB, "
          f"24 chunks {peaks[24][0] // mib} / {peaks[24][1] // mib} MiB")  # fmt: skip
    assert peaks[24][0] < 1.1 * peaks[2][0] and peaks[24][1] < 1.1 * peaks[2][1]
