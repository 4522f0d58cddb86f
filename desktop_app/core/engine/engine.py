"""The engine: llama.cpp in a child process the app owns, talked to over a pipe.

Qt-free. Requests are non-blocking; what the child says comes back as :class:`EngineEvent`s to
one listener (the UI adapts them to signals; the CLI reads them from a queue). If the child dies
— llama.cpp abort, segfault, the OOM killer — the listener gets a ``died`` event with the reason,
and a new child can be started; nothing in the app's process is lost.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import queue
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from desktop_app.core.child import child_command, describe_exit
from desktop_app.core.errors import (
    EngineError,  # noqa: F401 (re-exported)
)
from desktop_app.core.kinds import EventKind
from desktop_app.core.runtime import llama_child_env

log = logging.getLogger(__name__)
_ids = itertools.count(1)


@dataclass
class EngineEvent:
    """What the engine child said. A ``token`` event carries ``text`` and, as a list, the ``pieces``
    it is made of (one per token, or per character that took several tokens): pieces streamed close
    together travel in one event."""

    kind: EventKind
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def request_id(self) -> int | None:
        return self.data.get("id")


@dataclass
class Sampling:
    """Sampling settings; the defaults are llama.cpp's own (``common_params_sampling``).

    Temperature 0 is greedy, as in llama.cpp: the most likely token every time, and with the
    repeat penalty at llama.cpp's 1.0 (off) the answer is llama.cpp's greedy answer.
    """

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None


LLAMA_CPP_DEFAULTS = "llama.cpp defaults"
PRESETS = {
    LLAMA_CPP_DEFAULTS: Sampling(),
    "Precise": Sampling(temperature=0.0, top_p=1.0, top_k=1, min_p=0.0, repeat_penalty=1.0),
    "Balanced": Sampling(temperature=0.7, repeat_penalty=1.1),
    "Creative": Sampling(temperature=1.0, top_p=0.98, top_k=100, min_p=0.02, repeat_penalty=1.05),
}
PRESET_NOTES = {
    LLAMA_CPP_DEFAULTS: "llama.cpp's own: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no repeat penalty",
    "Precise": "Greedy (temperature 0): the same answer every time, llama.cpp's greedy answer",
    "Balanced": "Temperature 0.7 with a mild repeat penalty (1.1) against loops in small models",
    "Creative": "Temperature 1.0 and a wider choice of words (top-k 100, top-p 0.98)",
}


class Engine:
    """One llama.cpp child process. Not thread-safe for requests: call from one thread."""

    def __init__(self, listener: Callable[[EngineEvent], None]) -> None:
        self._listener = listener
        self._proc: subprocess.Popen | None = None
        self._send_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._closing = False
        self.loaded: dict[str, Any] | None = None  # what the child reported when the model loaded

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def kill(self) -> None:
        """Kill the child outright (tests; what the OOM killer would do)."""
        if self._proc is not None:
            self._proc.kill()

    def start(self) -> None:
        if self.alive:
            return
        if self._proc is not None:  # a dead child: release its pipes before starting anew
            self._release(self._proc)
        self._closing = False
        self.loaded = None
        self.stderr_tail.clear()
        self._proc = subprocess.Popen(
            child_command("desktop_app.core.engine._worker"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=llama_child_env(),
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, args=(self._proc,), name="engine-events", daemon=True)
        self._reader.start()
        threading.Thread(target=self._drain_stderr, args=(self._proc,), name="engine-stderr", daemon=True).start()

    def _drain_stderr(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None  # Popen made it a pipe
        for line in proc.stderr:
            line = line.rstrip()
            if line:
                self.stderr_tail.append(line)
                log.debug("engine: %s", line)

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None  # Popen made it a pipe
        for line in proc.stdout:
            try:
                raw_kind, data = json.loads(line)
                kind = EventKind(raw_kind)
            except (ValueError, TypeError):
                continue
            if kind == EventKind.LOADED:
                self.loaded = data
            self._listener(EngineEvent(kind, data))
            if kind == EventKind.BYE:
                break
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if not self._closing and proc is self._proc:
            self.loaded = None
            last = self.stderr_tail[-1] if self.stderr_tail else ""
            msg = f"The engine {describe_exit(code)}." + (f" Its last words: {last}" if last else "")
            self._listener(EngineEvent(EventKind.DIED, {"message": msg, "exitcode": code}))

    def _send(self, kind: str, payload: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise EngineError("The engine is not running. Load a model first.")
        try:
            with self._send_lock:
                assert proc.stdin is not None  # Popen made it a pipe
                proc.stdin.write(json.dumps([kind, payload]) + "\n")
                proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise EngineError(f"The engine stopped answering ({exc}).") from exc

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the child: ask, then terminate, then kill."""
        proc = self._proc
        if proc is None:
            return
        self._closing = True
        try:
            self._send("stop", {})
            self._send("exit", {})
        except EngineError:
            pass
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(2)
        self._release(proc)
        self._proc = None
        self.loaded = None

    @staticmethod
    def _release(proc: subprocess.Popen) -> None:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is None:
                continue
            try:
                stream.close()
            except (OSError, ValueError):
                pass

    # -- requests ------------------------------------------------------------------------------
    def load(self, path: str, *, n_ctx: int, n_gpu_layers: int = 0, kv_type: str = "f16", flash_attn: str = "auto",
             n_threads: int | None = None, mmap: bool = True, seed: int | None = None,
             has_template: bool = True) -> None:  # fmt: skip
        self.start()
        payload = dict(path=path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, kv_type=kv_type, flash_attn=flash_attn,
                       n_threads=n_threads, mmap=mmap, has_template=has_template)  # fmt: skip
        if seed is not None:
            payload["seed"] = seed
        self._send("load", payload)

    def chat(self, messages: list[dict[str, str]], sampling: Sampling, *, reserve_answer: bool = False) -> int:
        """Start an answer; returns the request id its token/done/error events carry.

        ``reserve_answer``: refuse the turn, before any token is decoded, when the prompt (counted by
        the model's tokenizer after its chat template) and ``sampling.max_tokens`` more do not fit in
        the context; the error event then carries ``context_full``: prompt_tokens, reserve, n_ctx.
        Without it the answer is cut at the end of the context (finish reason "length").
        """
        rid = next(_ids)
        payload: dict[str, Any] = {"id": rid, "messages": messages}
        payload.update({k: v for k, v in sampling.__dict__.items() if v is not None})
        if reserve_answer:
            payload["reserve"] = sampling.max_tokens
        self._send("chat", payload)
        return rid

    def stop(self) -> None:
        """Stop the answer being generated (at the next token)."""
        try:
            self._send("stop", {})
        except EngineError:
            pass

    def count_tokens(self, text: str) -> int:
        rid = next(_ids)
        self._send("tokenize", {"id": rid, "text": text})
        return rid

    def unload(self) -> None:
        if self.alive:
            self._send("unload", {})


class SyncEngine:
    """A blocking wrapper for the command line and tests."""

    def __init__(self) -> None:
        self.events: queue.Queue[EngineEvent] = queue.Queue()
        self.engine = Engine(self.events.put)

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.engine.close()

    def _wait(self, kinds: set[str], rid: int | None = None, timeout: float = 600) -> EngineEvent:
        while True:
            try:
                ev = self.events.get(timeout=timeout)
            except queue.Empty:
                raise EngineError("The engine did not answer in time.") from None
            if ev.kind == EventKind.DIED:
                raise EngineError(ev.data["message"])
            if ev.kind == EventKind.ERROR and (rid is None or ev.request_id in (rid, None)):
                raise EngineError(ev.data["message"])
            if ev.kind in kinds and (rid is None or ev.request_id == rid):
                return ev

    def load(self, path: str, **kw) -> dict[str, Any]:
        self.engine.load(path, **kw)
        return self._wait({"loaded"}).data

    def stream(self, messages: list[dict[str, str]], sampling: Sampling) -> Iterator[EngineEvent]:
        """Yields token events, then the done event."""
        rid = self.engine.chat(messages, sampling)
        while True:
            ev = self._wait({"token", "done"}, rid)
            yield ev
            if ev.kind == EventKind.DONE:
                return
