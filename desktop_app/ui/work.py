"""The one way the UI runs work off the GUI thread.

:func:`start` runs a function (or a generator, whose yields are progress) on a worker thread owned
by a widget. Its result, each progress item, its error and its end reach separate callbacks on the
GUI thread, and nothing reaches a widget that has been deleted meanwhile (the window closed
during a read): Qt drops a connection only when the slot is the receiver's own method, so a lambda
would otherwise run against a deleted C++ object.

Small ordered disk and keyring jobs go through :meth:`AppContext.run_io`, which uses the same
callbacks and the same guard on one shared thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject
from superqt.utils import create_worker

log = logging.getLogger(__name__)

Callback = Callable[..., Any] | None


def guarded(owner: QObject | None, fn: Callback) -> Callback:
    """``fn`` wrapped to do nothing once ``owner`` has been deleted (None: ``fn`` as it is)."""
    if fn is None or owner is None:
        return fn
    from shiboken6 import isValid

    def call(*args):
        if isValid(owner):
            return fn(*args)
        return None

    return call


class Job:
    """A started worker: ``cancel()`` asks it to stop (when it was started ``cancellable``)."""

    def __init__(self, worker, cancel: threading.Event | None) -> None:
        self.worker = worker
        self._cancel = cancel
        self.running = True

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()


def start(
    owner: QObject,
    fn: Callable[..., Any],
    *args: Any,
    on_result: Callback = None,
    on_error: Callback = None,
    on_progress: Callback = None,
    on_finished: Callback = None,
    cancellable: bool = False,
    **kwargs: Any,
) -> Job:
    """Run ``fn(*args, **kwargs)`` on a worker thread owned by ``owner``.

    ``on_result(value)``, ``on_error(exception)``, ``on_progress(item)`` (each yield of a generator)
    and ``on_finished()`` (after either) run on the GUI thread, unless ``owner`` is gone. With
    ``cancellable``, ``fn`` gets ``cancel=`` a :class:`threading.Event` that :meth:`Job.cancel` sets.
    An error with no ``on_error`` is logged, never raised into Qt's event loop.
    """
    cancel = threading.Event() if cancellable else None
    if cancel is not None:
        kwargs["cancel"] = cancel
    worker = create_worker(fn, *args, _start_thread=False, _ignore_errors=True, **kwargs)
    job = Job(worker, cancel)
    if on_result is not None:
        worker.returned.connect(guarded(owner, on_result))
    worker.errored.connect(guarded(owner, on_error) or (lambda exc: log.warning("background job failed: %s", exc)))
    if on_progress is not None and hasattr(worker, "yielded"):
        worker.yielded.connect(guarded(owner, on_progress))

    after = guarded(owner, on_finished)

    def finished() -> None:
        job.running = False
        if after is not None:
            after()

    worker.finished.connect(finished)
    worker.start()
    return job
