"""One background thread reading RAM (and later VRAM) every second while a page shows it.

Paused otherwise: on a 2-core machine each reading and the repaint it causes are taken from
llama.cpp's threads while an answer streams (about 2 % of a core, for a bar nobody sees)."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from desktop_app.core.hardware import read_ram


class ResourceMonitor(QObject):
    """Emits ``memory(total_bytes, available_bytes)`` once a second, while wanted, until :meth:`stop`."""

    memory = Signal(object, object)  # Python ints: RAM sizes overflow a C int

    def __init__(self, interval_s: float = 1.0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._wanted = threading.Event()  # someone shows the readings
        self._poke = threading.Event()  # read now (just wanted again, or stopping)
        self._thread: threading.Thread | None = None
        self.set_wanted(True)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="quantdesk-monitor", daemon=True)
        self._thread.start()

    def set_wanted(self, wanted: bool) -> None:
        """Read while ``wanted`` (at once when it becomes so); pause otherwise. Never blocks."""
        if wanted and not self._wanted.is_set():
            self._wanted.set()
            self._poke.set()
        elif not wanted:
            self._wanted.clear()

    @property
    def wanted(self) -> bool:
        return self._wanted.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait()
            if self._stop.is_set():
                break
            try:
                ram = read_ram()
                self.memory.emit(ram.total_bytes, ram.available_bytes)
            except Exception:  # a failed reading is skipped, the next one may work
                pass
            self._poke.wait(self.interval_s)
            self._poke.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
