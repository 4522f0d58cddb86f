"""The engine: llama.cpp in a child process (see :mod:`desktop_app.core.engine.engine`)."""

from desktop_app.core.engine.engine import (
    LLAMA_CPP_DEFAULTS,
    PRESET_NOTES,
    PRESETS,
    Engine,
    EngineError,
    EngineEvent,
    Sampling,
    SyncEngine,
)

__all__ = [
    "LLAMA_CPP_DEFAULTS",
    "PRESETS",
    "PRESET_NOTES",
    "Engine",
    "EngineError",
    "EngineEvent",
    "Sampling",
    "SyncEngine",
]
