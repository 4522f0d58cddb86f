"""Start-up figures: `--version` and `hardware --json` under 0.5 s, the window within 1.5 s.

Run on demand:  python -m pytest tests/benchmarks -s
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

RUNS = 7


def _time(args: list[str], env: dict | None = None) -> list[float]:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t0)
        assert proc.returncode == 0, proc.stderr
    return times


def _report(name: str, times: list[float], limit_s: float) -> None:
    med = statistics.median(times)
    print(f"\n{name}: median {med * 1000:.0f} ms, best {min(times) * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms "
          f"over {len(times)} runs (target < {limit_s * 1000:.0f} ms)")  # fmt: skip
    assert med < limit_s


def test_version_is_fast():
    _report("quantdesk --version", _time([sys.executable, "-m", "desktop_app", "--version"]), 0.5)


def test_hardware_json_is_fast():
    _report("quantdesk hardware --json", _time([sys.executable, "-m", "desktop_app", "hardware", "--json"]), 0.5)


def test_window_is_shown_quickly(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QUANTDESK_EXIT_WHEN_SHOWN": "1"}
    shown, listed = [], []
    for _ in range(5):
        proc = subprocess.run([sys.executable, "-m", "desktop_app", "gui"], capture_output=True, text=True,
                              env=env, timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        shown.append(figures["window_shown_s"])
        listed.append(figures["library_listed_s"])
    print(f"\nwindow shown: median {statistics.median(shown):.2f} s; library listed: median "
          f"{statistics.median(listed):.2f} s (from process start, 5 launches)")  # fmt: skip
    assert statistics.median(shown) < 1.5
