"""Start our own modules as child processes (llama.cpp work that may abort or hang)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def child_command(module: str, *args: str) -> list[str]:
    """``python -m module args…`` with the interpreter running us."""
    return [sys.executable, "-m", module, *args]


def child_env(**extra: str) -> dict[str, str]:
    """The environment, with this copy of desktop_app importable even when not installed."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = _PACKAGE_PARENT + (os.pathsep + path if path else "")
    env.update(extra)
    return env
