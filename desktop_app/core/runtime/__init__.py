"""The llama.cpp runtime QuantDesk owns: checked once per build and CPU, used by every child process."""

from desktop_app.core.runtime.config import RuntimeConfig
from desktop_app.core.runtime.selfcheck import (
    Attempt,
    RuntimeChoice,
    ensure_runtime,
    llama_child_env,
    runtime_for_children,
    set_threads_override,
)
from desktop_app.core.runtime.threads import default_threads

__all__ = [
    "Attempt",
    "RuntimeChoice",
    "RuntimeConfig",
    "default_threads",
    "ensure_runtime",
    "llama_child_env",
    "runtime_for_children",
    "set_threads_override",
]
