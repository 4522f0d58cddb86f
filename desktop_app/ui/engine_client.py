"""The engine as Qt signals: what the child process says arrives on the GUI thread."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from desktop_app.core.engine import Engine, EngineError, EngineEvent, Sampling
from desktop_app.core.kinds import EventKind


class EngineClient(QObject):
    loaded = Signal(object)  # dict: path, n_ctx, chat_format, load_s, log
    token = Signal(int, str)  # request id, text
    finished = Signal(int, object)  # request id, stats dict
    failed = Signal(object, str)  # request id or None, message
    refused = Signal(object, object)  # request id, context_full: the turn does not fit (Engine.chat reserve_answer)
    died = Signal(str)
    _event = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._event.connect(self._dispatch)  # queued: emitted from the engine's reader thread
        self.engine = Engine(self._event.emit)
        self.busy_request: int | None = None

    def _dispatch(self, ev: EngineEvent) -> None:
        if ev.kind == EventKind.LOADED:
            self.loaded.emit(ev.data)
        elif ev.kind == EventKind.TOKEN:
            self.token.emit(ev.request_id, ev.data["text"])
        elif ev.kind == EventKind.DONE:
            if ev.request_id == self.busy_request:
                self.busy_request = None
            self.finished.emit(ev.request_id, ev.data)
        elif ev.kind == EventKind.ERROR:
            if ev.request_id == self.busy_request:
                self.busy_request = None
            if isinstance(ev.data.get("context_full"), dict):
                self.refused.emit(ev.request_id, ev.data["context_full"])
                return
            self.failed.emit(ev.request_id, ev.data.get("message", "unknown error"))
        elif ev.kind == EventKind.DIED:
            self.busy_request = None
            self.died.emit(ev.data["message"])

    def load(self, path: str, **settings) -> None:
        self.engine.load(path, **settings)

    def chat(self, messages: list[dict[str, str]], sampling: Sampling, *, reserve_answer: bool = False) -> int:
        """Raises EngineError when the engine is not running."""
        self.busy_request = self.engine.chat(messages, sampling, reserve_answer=reserve_answer)
        return self.busy_request

    def stop(self) -> None:
        self.engine.stop()

    @property
    def model_loaded(self) -> bool:
        return self.engine.alive and self.engine.loaded is not None

    def shutdown(self) -> None:
        try:
            self.engine.close()
        except EngineError:
            pass
