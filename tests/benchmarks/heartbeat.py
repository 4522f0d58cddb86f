"""A 5 ms timer on the GUI thread: the gaps between its beats show how long the event loop stalled."""

from __future__ import annotations

from PySide6.QtCore import QElapsedTimer, QTimer

INTERVAL_MS = 5


class Heartbeat:
    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self._beat)

    def start(self) -> Heartbeat:
        self._clock.start()
        self._last = self._clock.elapsed()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()

    def _beat(self) -> None:
        now = self._clock.elapsed()
        self.gaps.append(now - self._last)
        self._last = now

    def worst_stall_ms(self, first: int = 0, last: int | None = None) -> float:
        """The longest gap beyond the interval, over beats ``first``..``last``."""
        return max(self.gaps[first:last]) - INTERVAL_MS
