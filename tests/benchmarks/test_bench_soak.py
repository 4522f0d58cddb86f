"""A long session in the real window: 10,000 streamed tokens, and the window is still there.

With PySide6 6.12.0 the window aborted ("Fatal Python error: bool_dealloc") after ~1,500 streamed
tokens; with llama-cpp-python's own streaming, a long answer slowed down quadratically. Here the
Chat page answers until 10,000 tokens have streamed (long counting answers, then stories), while a
heartbeat on the GUI thread measures stalls, and the GUI process's memory and reference counts are
watched.

Run on demand:  python -m pytest tests/benchmarks/test_bench_soak.py -s
"""

from __future__ import annotations

import sys

import psutil

from tests.benchmarks.heartbeat import Heartbeat

TARGET_TOKENS = 10_000
ASKS = [
    "Count from 1 to 3000, one number per line, and nothing else.",
    "Write a very long, detailed story about a lighthouse keeper, chapter by chapter.",
    "Write a very long, detailed history of sailing ships, century by century.",
]


def test_ten_thousand_streamed_tokens_in_the_window(make_window, qtbot):
    w = make_window()
    page = w.chat_page
    page.settings_panel.ctx_spin.setValue(8192)
    page.settings_panel.max_tokens.setValue(4000)
    proc = psutil.Process()
    rss_start = proc.memory_info().rss
    true_start = sys.getrefcount(True)
    total, answers, rows = 0, 0, []
    beat = Heartbeat().start()
    while total < TARGET_TOKENS:
        page.new_conversation()
        page.input.setPlainText(ASKS[answers % len(ASKS)])
        with qtbot.waitSignal(page.answer_finished, timeout=900_000):
            page.send()
        st = page.conv.messages[-1].stat
        assert st and not st.get("stopped"), "the answer did not finish"
        total += st["completion_tokens"]
        answers += 1
        rows.append((st["completion_tokens"], st["tokens_per_s"], len(page.conv.messages[-1].content)))
        qtbot.wait(50)
    beat.stop()
    rss_growth = (proc.memory_info().rss - rss_start) / 2**20
    print(f"\n{total:,} tokens streamed in {answers} answers; the window is {'up' if w.isVisible() else 'GONE'}")
    for i, (n, tps, chars) in enumerate(rows, 1):
        print(f"  answer {i}: {n:5} tokens at {tps:6.1f} tokens/s, {chars:6,} characters")
    print(f"worst GUI stall {beat.worst_stall_ms():.0f} ms over {len(beat.gaps):,} heartbeats; GUI process memory "
          f"{rss_growth:+.1f} MiB; references to True {sys.getrefcount(True) - true_start:+d}")  # fmt: skip
    assert w.isVisible() and total >= TARGET_TOKENS
    assert abs(sys.getrefcount(True) - true_start) < 100
    assert beat.worst_stall_ms() < 100
