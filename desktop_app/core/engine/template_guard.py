"""Bounds on chat-template rendering (runs in the engine's child process).

A GGUF's chat template is a program (Jinja) written by whoever made the file. llama-cpp-python
renders it in a sandbox, which stops it touching files but not looping: ``range(10**5)`` nested
twice is 10¹⁰ steps, and a string doubled thirty times is a gigabyte. Rendering here is bounded
in time (a watchdog thread), in output (rendered piece by piece) and in memory (the process's data
limit, lowered while rendering); past a bound it stops with :class:`TemplateRenderError`, whose
message says what happened. The engine then reports it and keeps serving.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from desktop_app.core.errors import TemplateRenderError  # noqa: F401 (re-exported)

MAX_RENDER_S = 10.0  # real templates render in milliseconds
MAX_PROMPT_CHARS = 8_000_000  # a prompt this long is more than any context window holds
MAX_GROWTH_BYTES = 512 * 1024 * 1024  # memory the render may take on top of the loaded model
_POLL_S = 0.02


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

    jinja2.Template.render = render  # type: ignore[method-assign]
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
    assert main is not None

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
    limit = _DataLimit(max_growth)  # the hard stop; the watcher alone can be starved of the GIL
    try:
        with limit:
            yield
    except MemoryError:
        raise TemplateRenderError(
            f"The model's chat template took more than {max_growth // (1024 * 1024):,} MB of memory "
            "and was stopped: it is broken or hostile."
        ) from None
    finally:
        done.set()
        watcher.join()
        signal.signal(signal.SIGUSR1, previous)


class _DataLimit:
    """Lower the process's data limit (RLIMIT_DATA: private writable memory, which a template's
    strings are and the mmapped model is not) to what it uses now plus ``growth``, and restore it.
    An allocation past it fails with MemoryError at once, however long one string operation takes
    (a watchdog thread needs the GIL to look, and one doubling of a huge string holds it). Linux only:
    elsewhere the watchdog's look is the bound."""

    def __init__(self, growth: int) -> None:
        self.growth = growth
        self.saved: tuple[int, int] | None = None

    def __enter__(self) -> None:
        try:
            import resource

            with open("/proc/self/status", encoding="ascii") as f:
                kb = next(int(line.split()[1]) for line in f if line.startswith("VmData:"))
            soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
            new = kb * 1024 + self.growth
            if hard != resource.RLIM_INFINITY:
                new = min(new, hard)
            resource.setrlimit(resource.RLIMIT_DATA, (new, hard))
            self.saved = (soft, hard)
        except (ImportError, OSError, StopIteration, ValueError):
            self.saved = None

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_DATA, self.saved)
