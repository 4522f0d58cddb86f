"""The PySide6 QuantDesk runs on must not lose references when signals are emitted.

PySide6-Essentials 6.12.0 dropped one reference to ``True`` on every ``Signal.emit``: 500 emits took
its count from 589 to 89, and a long chat (one emit per streamed piece) ended in "Fatal Python error:
bool_dealloc", taking the window down. This test emits the app's own signal kinds a few thousand
times and checks that nothing's reference count moved.
"""

from __future__ import annotations

import gc
import sys
import threading

from PySide6.QtCore import QObject, Signal

from desktop_app.ui.engine_client import EngineClient

EMITS = 3000
# The leak this guards against moved True's count by one per emit (thousands here). Other objects being
# freed while the test runs (a previous test's leftovers, a cycle collected mid-test) move the counts
# by tens to a few hundred, in either direction: the limit sits between the two.
LIMIT = 400


class _Kinds(QObject):
    flag = Signal(bool)
    count = Signal(int)
    anything = Signal(object)


def _counts() -> tuple[int, int, int]:
    gc.collect()
    return sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)


def test_emitting_signals_leaves_reference_counts_alone(qtbot):
    client = EngineClient()
    kinds = _Kinds()
    got = []
    client.token.connect(lambda rid, text: got.append(rid))
    client.finished.connect(lambda rid, stats: got.append(rid))
    kinds.flag.connect(lambda v: got.append(v))
    kinds.count.connect(lambda v: got.append(v))
    kinds.anything.connect(lambda v: got.append(v))
    before = _counts()
    for i in range(EMITS):
        client.token.emit(i, "piece")
        client.finished.emit(i, {"stopped": True, "ok": False})
        kinds.flag.emit(i % 2 == 0)
        kinds.count.emit(i)
        kinds.anything.emit(None)
        if i % 100 == 99:  # a leaking PySide6 is stopped here, before True's count reaches 0 and aborts us
            got.clear()
            drift = [a - b for a, b in zip(_counts(), before, strict=True)]
            assert all(abs(d) < LIMIT for d in drift), f"after {i + 1} emits of each: True/False/None moved by {drift}"
    got.clear()
    drift = [a - b for a, b in zip(_counts(), before, strict=True)]
    assert all(abs(d) < LIMIT for d in drift), drift


def test_signals_from_a_worker_thread_leave_reference_counts_alone(qtbot):
    """The engine's tokens reach the window from a reader thread (queued connections)."""
    kinds = _Kinds()
    got = []
    kinds.flag.connect(lambda v: got.append(v))
    kinds.anything.connect(lambda v: got.append(v))
    before = _counts()

    def emit_many():
        for i in range(EMITS):
            kinds.flag.emit(i % 2 == 0)
            kinds.anything.emit({"done": True, "i": i})

    worker = threading.Thread(target=emit_many)
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: len(got) == 2 * EMITS, timeout=30_000)
    got.clear()
    drift = [a - b for a, b in zip(_counts(), before, strict=True)]
    assert all(abs(d) < LIMIT for d in drift), drift
