"""The runtime QuantDesk owns against llama.cpp's own llama-bench, and what the runtime check costs.

llama-bench is built from the sources vendored in the pinned llama-cpp-python (tests/benchmarks/
llama_tools.py) and run at its defaults (threads: one per physical core; flash attention auto),
with ``--repack`` as the runtime check chose. The app's figures come from its engine child process
answering through the chat path: prompt speed from the time to first token of a ~500-token prompt
(pp512's work), generation speed from a 128-token answer to a short question. A chat always has a
prompt before its answer (the chat template alone is ~30 tokens), so generation is held against
llama-bench's tg128 at that depth (``-d``); tg128 from an empty context is printed beside it.

Run on demand:  python -m pytest tests/benchmarks/test_bench_runtime.py -s
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from desktop_app.core.engine import Sampling, SyncEngine
from desktop_app.core.runtime import ensure_runtime, selfcheck
from tests.benchmarks.llama_tools import llama_tool
from tests.benchmarks.quants import smollm2_quants

ROUNDS = 9
STORY = "The lighthouse keeper wrote in his log every night about the ships, the weather and the sea. " * 40


def _bench(model: str, test: str, *, repack: bool, threads: int, depth: int = 0) -> float:
    """One llama-bench test (pp512, or tg128 at a depth), 2 repetitions, its mean tokens/s."""
    which = ["-p", "512", "-n", "0"] if test == "pp" else ["-p", "0", "-n", "128", "-d", str(depth)]
    cmd = [llama_tool("llama-bench"), "-m", model, *which, "-r", "2", "-o", "json", "--repack", "1" if repack else "0",
           "-t", str(threads)]  # fmt: skip
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)[0]["avg_ts"]


def _app_pp(se: SyncEngine, i: int) -> tuple[float, int]:
    long_ask = [{"role": "user", "content": f"{i} " + STORY[:2300] + "\nWhat did he write about?"}]
    for ev in se.stream(long_ask, Sampling(temperature=0.0, max_tokens=1, seed=1)):
        if ev.kind == "done":
            return ev.data["prompt_tokens"] / ev.data["ttft_s"], ev.data["prompt_tokens"]
    raise AssertionError("no answer")


def _app_tg(se: SyncEngine, i: int) -> tuple[float, int, int]:
    short = [{"role": "user", "content": f"Write a very long story about lighthouse number {i}."}]
    for ev in se.stream(short, Sampling(temperature=0.0, max_tokens=128, seed=1)):
        if ev.kind == "done":
            return ev.data["tokens_per_s"], ev.data["prompt_tokens"], ev.data["completion_tokens"]
    raise AssertionError("no answer")


def test_app_speed_against_llama_bench(starter_path):
    choice = ensure_runtime()
    models = {"Q4_1 (starter)": starter_path, "Q8_0": smollm2_quants(["F16", "Q8_0"])["Q8_0"]}
    opts = dict(repack=choice.repack, threads=choice.threads)
    print(f"\nruntime: {choice.label}, {choice.threads} threads ({choice.threads_basis})")
    print("model            app pp   bench pp512  ratio |  app tg  bench tg128@d  ratio | bench tg128 (d0)  ratio")
    worst = {"pp": 9.9, "tg": 9.9}
    for name, path in models.items():
        rows = []
        with SyncEngine() as se:
            se.load(path, n_ctx=2048, seed=1)
            _app_pp(se, -1)  # warm-up: page cache, the template compiled
            for i in range(ROUNDS):  # each app figure right beside its llama-bench figure: this machine drifts
                tg, depth, n = _app_tg(se, i)
                assert n == 128, "the answer ended before 128 tokens"
                b_tgd = _bench(path, "tg", depth=depth, **opts)
                b_tg0 = _bench(path, "tg", **opts)
                pp, pp_tokens = _app_pp(se, i)
                b_pp = _bench(path, "pp", **opts)
                rows.append(dict(pp=pp, b_pp=b_pp, tg=tg, b_tgd=b_tgd, b_tg0=b_tg0, depth=depth, pp_tokens=pp_tokens))

        def med(key: str, rows=rows) -> float:
            return statistics.median(r[key] for r in rows)

        def ratio(a: str, b: str, rows=rows) -> float:
            return statistics.median(r[a] / r[b] for r in rows)

        r_pp, r_tg, r_tg0 = ratio("pp", "b_pp"), ratio("tg", "b_tgd"), ratio("tg", "b_tg0")
        print(f"{name:16}{med('pp'):8.1f}{med('b_pp'):13.1f}{r_pp:7.2f} |{med('tg'):8.1f}{med('b_tgd'):15.1f}"
              f"{r_tg:7.2f} |{med('b_tg0'):17.1f}{r_tg0:7.2f}   (prompt {rows[0]['pp_tokens']} tokens, answer at "
              f"depth {rows[0]['depth']}; ratios: median of {ROUNDS} paired rounds)")  # fmt: skip
        worst["pp"] = min(worst["pp"], r_pp)
        worst["tg"] = min(worst["tg"], r_tg)
    print(f"worst: prompt {worst['pp']:.2f}x pp512, generation {worst['tg']:.2f}x tg128 at the same depth")
    assert worst["tg"] >= 0.95 and worst["pp"] >= 0.90


def test_the_runtime_check_costs_little_once_and_nothing_after(tmp_path, monkeypatch):
    first, later = [], []
    for i in range(3):
        monkeypatch.setenv("QUANTDESK_DATA_DIR", str(tmp_path / f"fresh{i}"))
        selfcheck._memo.clear()
        t0 = time.perf_counter()
        choice = ensure_runtime()
        first.append(time.perf_counter() - t0)
        selfcheck._memo.clear()  # as a new process: only the remembered file
        t0 = time.perf_counter()
        assert ensure_runtime().remembered
        later.append(time.perf_counter() - t0)
    env = {**os.environ, "QUANTDESK_DATA_DIR": str(tmp_path / "fresh0")}
    cli = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "desktop_app", "hardware", "--json"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        cli.append(time.perf_counter() - t0)
    print(f"\nruntime check, first time: {', '.join(f'{s:.2f}' for s in first)} s ({choice.check_model}, "
          f"{len(choice.attempts)} configuration(s) tried)")  # fmt: skip
    print(
        f"later starts (remembered): {', '.join(f'{s * 1000:.1f}' for s in later)} ms; "
        f"`quantdesk hardware --json` with it remembered: {statistics.median(cli):.2f} s"
    )
    assert statistics.median(first) < 3.0 and max(later) < 0.05
