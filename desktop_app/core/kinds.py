"""The app's named states and kinds, as string enums in one place (after qutebrowser's usertypes).

Each member equals its string value and prints as it (``str``, f-strings, JSON), so the JSON the CLI
writes and the caches on disk stay as they were; code compares against members, not literals.
"""

from __future__ import annotations

from enum import Enum


class _StrEnum(str, Enum):
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Verdict(_StrEnum):
    """Whether a model fits this machine with the chosen settings, and where."""

    FULL_GPU = "full_gpu"
    PARTIAL_GPU = "partial_gpu"
    CPU_ONLY = "cpu_only"
    TOO_LARGE = "too_large"


class ModelKind(_StrEnum):
    """What a GGUF file is: a model that chats, or a part that works beside one."""

    MODEL = "model"
    PROJECTOR = "projector"  # a multimodal mmproj
    VOCAB = "vocab"  # a tokenizer only
    ADAPTER = "adapter"  # a LoRA


class EventKind(_StrEnum):
    """What the engine's child process says (and "died" when it stops saying anything)."""

    READY = "ready"
    LOADED = "loaded"
    UNLOADED = "unloaded"
    TOKEN = "token"
    DONE = "done"
    ERROR = "error"
    TOKENS = "tokens"
    BYE = "bye"
    DIED = "died"


class DownloadState(_StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    PAUSED = "paused"
    FAILED = "failed"
    DONE = "done"
    CANCELLED = "cancelled"
