"""The state the pages share: settings, hardware, the library, and the one message channel.

Everything slow (disk, subprocesses, the keyring) runs in workers; results come back as signals
on the GUI thread. Pages never call the core's blocking functions themselves.
"""

from __future__ import annotations

import copy
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from desktop_app.core.hardware import HardwareInfo, detect_hardware
from desktop_app.core.library import LibraryCache, LibraryEntry, ScanProgress, ScanResult, iter_scan
from desktop_app.core.paths import AppPaths, app_paths
from desktop_app.core.runtime import set_threads_override
from desktop_app.core.settings import Settings, SettingsStore
from desktop_app.ui import work
from desktop_app.ui.work import guarded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    text: str
    level: str = "info"  # info | warning | error


def _scan_with_cache(settings: Settings):
    """Worker body: first the cached list (instant), then a real scan with progress."""
    cache = LibraryCache.load()
    yield ("cached", cache.last_entries())
    gen = iter_scan(settings, cache=cache)
    while True:
        try:
            progress = next(gen)
        except StopIteration as stop:
            return stop.value
        yield ("progress", progress)


class AppContext(QObject):
    message = Signal(object)  # Message
    settings_changed = Signal()
    hardware_changed = Signal(object)  # HardwareInfo
    hardware_failed = Signal(str)
    library_changed = Signal()
    scan_started = Signal()
    scan_progress = Signal(int, int)  # done, total
    scan_finished = Signal(object)  # ScanResult
    selected_model_changed = Signal(object)  # LibraryEntry | None
    _io_done = Signal(object, object)  # callback, result-or-exception (from the io thread)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.paths: AppPaths = app_paths().ensure()
        self.store = SettingsStore(self.paths.settings_file)
        self.settings: Settings = self.store.load()
        set_threads_override(self.settings.threads)
        self.hardware: HardwareInfo | None = None
        self.entries: list[LibraryEntry] = []
        self.last_scan: ScanResult | None = None
        self.selected: LibraryEntry | None = None
        self.scanning = False
        self._scan_worker = None
        self._rescan_pending = False
        self._hw_worker = None
        self._redetect: bool | None = None  # a look asked for during one: with the runtime re-checked?
        # One thread for small disk and keyring jobs, so they run in order and never on the GUI thread.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quantdesk-io")
        self._io_done.connect(self._deliver_io)

    def startup_problem(self) -> str:
        """What went wrong reading settings or creating folders, for the user once ("" if nothing)."""
        return "\n".join(p for p in (self.paths.problem, self.store.problem) if p)

    # -- messages ------------------------------------------------------------------------------
    def notify(self, text: str, level: str = "info") -> None:
        getattr(log, "warning" if level != "info" else "info")(text)
        self.message.emit(Message(text, level))

    # -- background io -------------------------------------------------------------------------
    def run_io(self, fn, *args, owner: QObject | None = None, on_result=None, on_error=None) -> Future | None:
        """Run ``fn(*args)`` on the io thread (one, so saves happen in the order asked).

        ``on_result(value)`` or ``on_error(exception)`` runs on the GUI thread, unless ``owner`` has
        been deleted meanwhile; an error with no ``on_error`` is shown to the user.
        """
        deliver_result = guarded(owner, on_result)
        deliver_error = guarded(owner, on_error) or (lambda exc: self.notify(str(exc), "error"))

        def job():
            try:
                result = fn(*args)
            except Exception as exc:  # delivered, not lost
                self._io_done.emit(deliver_error, exc)
                return exc
            self._io_done.emit(deliver_result, result)
            return result

        try:
            return self._io.submit(job)
        except RuntimeError:  # shutting down: do it now rather than lose it
            job()
            return None

    def _deliver_io(self, callback, value) -> None:
        if callback is not None:
            callback(value)

    # -- settings ------------------------------------------------------------------------------
    def save_settings(self, *, rescan: bool = False) -> None:
        set_threads_override(self.settings.threads)
        snapshot = copy.deepcopy(self.settings)
        self.run_io(self.store.save, snapshot)
        self.settings_changed.emit()
        if rescan:
            self.rescan()

    # -- hardware ------------------------------------------------------------------------------
    def detect_hardware(self, *, recheck_runtime: bool = False) -> None:
        """Look at the hardware in a worker; ``recheck_runtime`` also runs the llama.cpp runtime check
        again (the first look at a new build or CPU runs it anyway)."""
        if self._hw_worker is not None:  # one look at a time; a request during it runs when it ends
            self._redetect = bool(self._redetect) or recheck_runtime
            return
        self._hw_worker = work.start(
            self, detect_hardware, recheck_runtime=recheck_runtime, on_result=self._hardware_ready,
            on_error=lambda exc: self.hardware_failed.emit(f"Hardware detection failed: {exc}"),
            on_finished=self._hardware_worker_done,
        )  # fmt: skip

    def hardware_pending(self) -> bool:
        """A hardware look (and with it, maybe the llama.cpp runtime check) is running."""
        return self._hw_worker is not None

    def _hardware_ready(self, info: HardwareInfo) -> None:
        self.hardware = info
        self.hardware_changed.emit(info)

    def _hardware_worker_done(self) -> None:
        self._hw_worker = None
        if self._redetect is not None:
            recheck, self._redetect = self._redetect, None
            self.detect_hardware(recheck_runtime=recheck)

    # -- library -------------------------------------------------------------------------------
    def rescan(self) -> None:
        """Scan in the background; a request during a scan restarts it when it ends."""
        if self._scan_worker is not None:
            self._rescan_pending = True
            return
        self.scanning = True
        self.scan_started.emit()
        self._scan_worker = work.start(
            self, _scan_with_cache, copy.deepcopy(self.settings), on_progress=self._scan_yielded,
            on_result=self._scan_returned, on_finished=self._scan_worker_done,
            on_error=lambda exc: self.notify(f"Scanning the library failed: {exc}", "error"),
        )  # fmt: skip

    def _scan_yielded(self, item) -> None:
        kind, value = item
        if kind == "cached":
            if not self.entries and value:
                self._set_entries(value)
        elif isinstance(value, ScanProgress):
            self.scan_progress.emit(value.done, value.total)

    def _scan_returned(self, result: ScanResult) -> None:
        self.last_scan = result
        self._set_entries(result.entries)
        self.scan_finished.emit(result)

    def _scan_worker_done(self) -> None:
        self._scan_worker = None
        self.scanning = False
        if self._rescan_pending:
            self._rescan_pending = False
            self.rescan()

    def _set_entries(self, entries: list[LibraryEntry]) -> None:
        self.entries = list(entries)
        self.library_changed.emit()
        if self.selected is not None:
            again = next((e for e in self.entries if e.id == self.selected.id), None)
            self.select_model(again)

    def select_model(self, entry: LibraryEntry | None) -> None:
        self.selected = entry
        self.selected_model_changed.emit(entry)

    def find_entry(self, entry_id: str) -> LibraryEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    # -- shutdown ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        self._redetect = None
        for job in (self._scan_worker, self._hw_worker):
            if job is not None:
                try:
                    job.worker.quit()
                except RuntimeError:
                    pass
        self._io.shutdown(wait=True)
