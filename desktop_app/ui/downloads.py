"""The download queue: one download at a time in a worker, progress as signals, kept across restarts.

The queue is saved in the data folder; the partial file stays in the Hugging Face cache, so a paused
(or interrupted) download resumes where it stopped, also after the app restarts.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field

from PySide6.QtCore import QObject, Signal

from desktop_app.core.hub.download import DownloadCancelled, DownloadProgress, download_model
from desktop_app.core.kinds import DownloadState
from desktop_app.ui import work
from desktop_app.ui.context import AppContext

log = logging.getLogger(__name__)


@dataclass
class DownloadTask:
    repo_id: str
    parts: list[str]
    quant: str
    size_bytes: int
    state: DownloadState = DownloadState.QUEUED
    bytes_done: int = 0
    speed_bps: float = 0.0
    eta_s: float | None = None
    phase: str = ""
    error: str = ""
    path: str = ""
    added_at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return f"{self.repo_id}/{self.parts[0]}"


class DownloadManager(QObject):
    changed = Signal(object)  # DownloadTask
    completed = Signal(object)  # DownloadTask
    _progress = Signal(object, object)  # task, DownloadProgress (from the worker thread)

    def __init__(self, ctx: AppContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.path = ctx.paths.data_dir / "downloads.json"
        self.tasks: list[DownloadTask] = []
        self._active: DownloadTask | None = None
        self._job: work.Job | None = None
        self._progress.connect(self._on_progress)
        self._load()

    # -- persistence ---------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.tasks = [DownloadTask(**{**t, "state": DownloadState(t.get("state", DownloadState.QUEUED))})
                          for t in data.get("tasks", [])]  # fmt: skip
        except (OSError, ValueError, TypeError, AttributeError):
            self.tasks = []
        for t in self.tasks:
            if t.state == DownloadState.DOWNLOADING:  # the app closed mid-download: carry on
                t.state = DownloadState.QUEUED

    def _save(self) -> None:
        data = json.dumps({"version": 1, "tasks": [asdict(t) for t in self.tasks]}, indent=1)

        def write() -> None:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(data, encoding="utf-8")
            tmp.replace(self.path)

        self.ctx.run_io(write, on_error=lambda exc: log.warning("could not save the download list: %s", exc))

    # -- queue ---------------------------------------------------------------------------------
    def add(self, repo_id: str, parts: list[str], quant: str, size_bytes: int) -> DownloadTask:
        for t in self.tasks:
            if (
                t.repo_id == repo_id
                and t.parts == parts
                and t.state not in (DownloadState.DONE, DownloadState.CANCELLED)
            ):
                return t
        task = DownloadTask(repo_id, parts, quant, size_bytes)
        self.tasks.append(task)
        self._save()
        self.changed.emit(task)
        self._next()
        return task

    def start(self) -> None:
        """Start the queue (after the window is up)."""
        self._next()

    def pause(self, task: DownloadTask) -> None:
        if task is self._active and self._job is not None:
            task.state = DownloadState.PAUSED
            self._job.cancel()
        elif task.state == DownloadState.QUEUED:
            task.state = DownloadState.PAUSED
            self.changed.emit(task)
        self._save()

    def resume(self, task: DownloadTask) -> None:
        if task.state in (DownloadState.PAUSED, DownloadState.FAILED):
            task.state = DownloadState.QUEUED
            task.error = ""
            self.changed.emit(task)
            self._save()
            self._next()

    def cancel(self, task: DownloadTask) -> None:
        if task is self._active and self._job is not None:
            task.state = DownloadState.CANCELLED
            self._job.cancel()
        else:
            task.state = DownloadState.CANCELLED
            self.changed.emit(task)
        self._save()

    def busy(self) -> list[str]:
        return [f"Downloading {t.quant} of {t.repo_id}" for t in self.tasks if t.state == DownloadState.DOWNLOADING]

    def _next(self) -> None:
        if self._active is not None:
            return
        task = next((t for t in self.tasks if t.state == DownloadState.QUEUED), None)
        if task is None:
            return
        self._active = task
        task.state = DownloadState.DOWNLOADING
        task.phase = "starting"
        self.changed.emit(task)
        self._job = work.start(
            self, download_model, task.repo_id, task.parts, progress=lambda p: self._progress.emit(task, p),
            cancellable=True, on_result=lambda result: self._done(task, result),
            on_error=lambda exc: self._failed(task, exc), on_finished=self._worker_finished,
        )  # fmt: skip

    def _on_progress(self, task: DownloadTask, p: DownloadProgress) -> None:
        task.bytes_done, task.speed_bps, task.eta_s, task.phase = p.bytes_done, p.speed_bps, p.eta_s, p.phase
        self.changed.emit(task)

    def _done(self, task: DownloadTask, result) -> None:
        task.state = DownloadState.DONE
        task.path = result.path
        task.bytes_done = result.bytes
        task.phase = "verified"
        self._save()
        self.changed.emit(task)
        self.completed.emit(task)
        self.ctx.notify(f"Downloaded and verified {task.quant} of {task.repo_id}: it is in your library.")
        self.ctx.rescan()

    def _failed(self, task: DownloadTask, exc: Exception) -> None:
        if isinstance(exc, DownloadCancelled):
            if task.state == DownloadState.CANCELLED:
                self._discard_partial(task)
            elif task.state != DownloadState.PAUSED:
                task.state = DownloadState.PAUSED
        else:
            task.state = DownloadState.FAILED
            task.error = str(exc)
            self.ctx.notify(f"Download of {task.quant} from {task.repo_id} failed: {exc}", "error")
        self._save()
        self.changed.emit(task)

    def _discard_partial(self, task: DownloadTask) -> None:
        from desktop_app.core.hub.download import _storage

        blobs = _storage(task.repo_id) / "blobs"
        for p in blobs.glob("*.incomplete") if blobs.exists() else []:
            try:
                p.unlink()
            except OSError:
                pass

    def _worker_finished(self) -> None:
        self._active = None
        self._job = None
        self._next()

    def shutdown(self) -> None:
        """On quit: stop the transfer (the partial file stays for a resume next time)."""
        if self._job is not None:
            self._job.cancel()
        if self._active is not None:
            self._active.state = DownloadState.QUEUED  # resume on the next start
        data = json.dumps({"version": 1, "tasks": [asdict(t) for t in self.tasks]}, indent=1)
        try:
            self.path.write_text(data, encoding="utf-8")
        except OSError:
            pass
