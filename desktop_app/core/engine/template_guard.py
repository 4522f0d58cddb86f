"""Bounds on chat-template rendering (runs in the engine's child process).

A GGUF's chat template is a program (Jinja) written by whoever made the file. llama-cpp-python
renders it in a sandbox, which stops it touching files but not looping: ``range(10**5)`` nested
twice is 10¹⁰ steps, and a string doubled thirty times is a gigabyte. Rendering here is bounded
in time, in output and in memory; past a bound it stops with :class:`TemplateRenderError`, whose
message says what happened. The engine then reports it and keeps serving.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

MAX_RENDER_S = 10.0  # real templates render in milliseconds
MAX_PROMPT_CHARS = 8_000_000  # a prompt this long is more than any context window holds
MAX_GROWTH_BYTES = 512 * 1024 * 1024  # memory the render may take on top of the loaded model
_POLL_S = 0.02


class TemplateRenderError(Exception):
    """The chat template went past a bound while building the prompt."""


_patched = False


def _patch_render() -> None:
    """Render every Jinja template piece by piece, so a template that writes without end is stopped
    at ``MAX_PROMPT_CHARS`` instead of growing until memory runs out."""
    global _patched
    if _patched:
        return
    import jinja2

    def render(self, *args, **kwargs):
        out: list[str] = []
        n = 0
        for piece in self.generate(*args, **kwargs):
            n += len(piece)
            if n > MAX_PROMPT_CHARS:
                raise TemplateRenderError(
                    f"The model's chat template wrote more than {MAX_PROMPT_CHARS:,} characters for this "
                    "conversation and was stopped: it is broken or hostile. Use a model with a working template."
                )
            out.append(piece)
        return "".join(out)

    jinja2.Template.render = render
    _patched = True


@contextmanager
def bounded_rendering(max_s: float = MAX_RENDER_S, max_growth: int = MAX_GROWTH_BYTES) -> Iterator[None]:
    """Within this block, rendering is stopped when it takes longer than ``max_s`` or grows the
    process by more than ``max_growth`` bytes. Only in the main thread (signals); elsewhere only the
    output bound applies."""
    _patch_render()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss
    reason: list[str] = []
    done = threading.Event()
    main = threading.main_thread().ident

    def on_signal(signum, frame):
        if reason and not done.is_set():
            raise TemplateRenderError(reason[0])

    def watch() -> None:
        t0 = time.monotonic()
        while not done.wait(_POLL_S):
            grown = proc.memory_info().rss - base
            if time.monotonic() - t0 > max_s:
                reason.append(
                    f"The model's chat template was still running after {max_s:g} s and was stopped "
                    "(it loops far longer than any real template): it is broken or hostile."
                )
            elif grown > max_growth:
                reason.append(
                    f"The model's chat template took more than {max_growth // (1024 * 1024):,} MB of memory "
                    "and was stopped: it is broken or hostile."
                )
            else:
                continue
            signal.pthread_kill(main, signal.SIGUSR1)
            return

    previous = signal.signal(signal.SIGUSR1, on_signal)
    watcher = threading.Thread(target=watch, name="template-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        signal.signal(signal.SIGUSR1, previous)
