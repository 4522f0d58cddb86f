"""The engine: llama.cpp in a child process (see :mod:`desktop_app.core.engine.engine`)."""

from desktop_app.core.engine.engine import PRESETS, Engine, EngineError, EngineEvent, Sampling, SyncEngine

__all__ = ["PRESETS", "Engine", "EngineError", "EngineEvent", "Sampling", "SyncEngine"]
