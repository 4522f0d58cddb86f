"""One steady background thread reading RAM (and later VRAM) every second."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from desktop_app.core.hardware import read_ram


class ResourceMonitor(QObject):
    """Emits ``memory(total_bytes, available_bytes)`` once a second until :meth:`stop`."""

    memory = Signal(object, object)  # Python ints: RAM sizes overflow a C int

    def __init__(self, interval_s: float = 1.0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="quantdesk-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ram = read_ram()
                self.memory.emit(ram.total_bytes, ram.available_bytes)
            except Exception:  # a failed reading is skipped, the next one may work
                pass
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
