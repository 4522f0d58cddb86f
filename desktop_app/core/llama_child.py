"""A llama.cpp child process read line by line, that a cancel kills (quantizing, importance matrices).

The child runs in a process group of its own, so a cancel or a hang ends it and anything it started;
its stderr (llama.cpp's log) reaches a callback line by line, and its stdout carries its own JSON
messages ("kind", payload).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from desktop_app.core.child import child_command
from desktop_app.core.runtime import llama_child_env

MAX_LINE = 4096  # longer lines from a child arrive cut in pieces
IDLE_TIMEOUT_S = 3600  # a child silent this long hangs: it is stopped
_NEW_GROUP = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)  # Windows


@dataclass
class ChildRun:
    returncode: int | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))  # its last stderr lines
    messages: list[tuple[str, Any]] = field(default_factory=list)  # its own ["kind", payload] stdout lines
    cancelled: bool = False
    timed_out: bool = False


def _pump(stream: IO[str], tag: str, lines: queue.Queue[tuple[str, str | None]]) -> None:
    try:
        while chunk := stream.readline(MAX_LINE):
            lines.put((tag, chunk.rstrip("\r\n")))
    except (OSError, ValueError):
        pass
    finally:
        lines.put((tag, None))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the child and anything it started (its own process group on POSIX)."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError:
        with contextlib.suppress(OSError):
            proc.kill()


def _take(run: ChildRun, tag: str, line: str, on_stderr: Callable[[str], Any] | None,
          on_message: Callable[[str, Any], Any] | None) -> None:  # fmt: skip
    if tag == "out":
        try:
            kind, payload = json.loads(line)
        except (ValueError, TypeError):
            kind = None
        if isinstance(kind, str):
            run.messages.append((kind, payload))
            if on_message is not None:
                on_message(kind, payload)
            return
    run.tail.append(line)
    if on_stderr is not None:
        on_stderr(line)


def run_llama_child(
    module: str,
    args: list[str],
    *,
    on_stderr: Callable[[str], Any] | None = None,
    on_message: Callable[[str, Any], Any] | None = None,
    cancel: threading.Event | None = None,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
) -> ChildRun:
    """Run ``python -m module args`` with the app's llama.cpp runtime; hand each stderr line to
    ``on_stderr`` and each JSON ``[kind, payload]`` stdout line to ``on_message``, in this thread.
    On ``cancel`` (or silence past ``idle_timeout_s``) the child's whole process group is killed."""
    group: dict[str, Any] = {"start_new_session": True} if os.name == "posix" else {"creationflags": _NEW_GROUP}
    proc = subprocess.Popen(child_command(module, *args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                            env=llama_child_env(), **group)  # fmt: skip
    run = ChildRun()
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    streams = ((proc.stdout, "out"), (proc.stderr, "err"))
    pumps = [threading.Thread(target=_pump, args=(s, t, lines), daemon=True) for s, t in streams]
    for pump in pumps:
        pump.start()
    open_streams, last = 2, time.monotonic()
    try:
        while open_streams:
            if cancel is not None and cancel.is_set():
                run.cancelled = True
                break
            try:
                tag, line = lines.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() - last > idle_timeout_s:
                    run.timed_out = True
                    break
                continue
            last = time.monotonic()
            if line is None:
                open_streams -= 1
            else:
                _take(run, tag, line, on_stderr, on_message)
    finally:
        _end(proc, pumps, kill=open_streams > 0)
    run.returncode = proc.returncode
    return run


def _end(proc: subprocess.Popen[str], pumps: list[threading.Thread], *, kill: bool) -> None:
    if kill:
        _kill_group(proc)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # it closed its pipes but does not exit
        _kill_group(proc)
        proc.wait()
    for pump in pumps:
        pump.join(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
