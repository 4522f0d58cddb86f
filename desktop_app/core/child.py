"""Start our own modules as child processes (llama.cpp work that may abort or hang)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


RUN_CHILD = "--run-child"  # a frozen app has no ``python -m``: its own binary runs the module


def child_command(module: str, *args: str) -> list[str]:
    """``python -m module args…`` with the interpreter running us; in a frozen app (PyInstaller),
    the app's own binary with ``--run-child module args…`` (see :func:`run_child_if_asked`)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, RUN_CHILD, module, *args]
    return [sys.executable, "-m", module, *args]


def run_child_if_asked(argv: list[str]) -> bool:
    """In the app's entry point: when started as a child (``--run-child module args…``), run that
    module as ``__main__`` with its own arguments and return True. Only our own modules qualify."""
    if len(argv) < 3 or argv[1] != RUN_CHILD or not argv[2].startswith("desktop_app."):
        return False
    import runpy

    sys.argv = [argv[2], *argv[3:]]
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    return True


def child_env(**extra: str) -> dict[str, str]:
    """The environment, with this copy of desktop_app importable even when not installed. Children
    that run llama.cpp use :func:`desktop_app.core.runtime.llama_child_env`, which adds how to run it."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = _PACKAGE_PARENT + (os.pathsep + path if path else "")
    env.update(extra)
    return env


def describe_exit(code: int | None) -> str:
    """A child's exit status in words: "was stopped by SIGSEGV (a crash inside llama.cpp)"."""
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {
            "SIGKILL": " (killed, most often by the system when memory runs out)",
            "SIGSEGV": " (a crash inside llama.cpp)",
            "SIGILL": " (an instruction this CPU refused to run, inside llama.cpp)",
            "SIGBUS": " (a crash inside llama.cpp, often a model file changed or cut short while in use)",
            "SIGABRT": " (llama.cpp aborted)",
        }.get(name, "")
        return f"was stopped by {name}{hint}"
    if code in _WINDOWS_CRASHES:  # Windows reports a crash as an NTSTATUS exit code
        return f"crashed ({_WINDOWS_CRASHES[code]}, inside llama.cpp)"
    return f"exited with code {code}"


_WINDOWS_CRASHES = {
    0xC000001D: "illegal instruction",
    0xC0000005: "access violation",
    0xC0000409: "aborted",
    0xC00000FD: "stack overflow",
}
