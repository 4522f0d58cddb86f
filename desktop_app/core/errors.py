"""Typed errors raised by the core.

Every message says what happened and what the user can do about it; the UI shows ``str(error)``
as it is, so keep them short, concrete and free of Python jargon.
"""

from __future__ import annotations


class QuantDeskError(Exception):
    """Base class of every error the core raises on purpose."""


class GGUFError(QuantDeskError):
    """A file could not be read as a GGUF model."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{reason}")
        self.path = path
        self.reason = reason


class NotAGGUFError(GGUFError):
    """The file does not start with the GGUF magic bytes."""


class TruncatedGGUFError(GGUFError):
    """The file ends before its header says it should (an interrupted download or copy)."""


class CorruptGGUFError(GGUFError):
    """The header holds values no real model has (absurd counts, unknown types, bad lengths)."""


class UnsupportedGGUFError(GGUFError):
    """A GGUF version or feature this build does not understand."""


class Cancelled(QuantDeskError):
    """The user cancelled the job; what was done so far is kept. Catch this, not a message's text."""


class KeyringUnavailableError(QuantDeskError):
    """No usable OS keyring, so a secret cannot be stored safely."""


class SettingsError(QuantDeskError):
    """The settings file could not be read or written."""


# -- llama.cpp: the engine, the runtime, measuring and quantizing


class EngineError(QuantDeskError):
    """The engine could not do what was asked (no model, load failed, it died)."""


class LlamaLoadError(QuantDeskError):
    """llama.cpp refused a model; the message is llama.cpp's own reason."""


class TemplateRenderError(QuantDeskError):
    """The chat template went past a bound while building the prompt."""


class ProbeError(QuantDeskError):
    """The llama.cpp hardware probe failed (its child process died or said nothing)."""


class MeasureError(QuantDeskError):
    """llama.cpp could not load the model to measure it."""


class QuantizeError(QuantDeskError):
    """llama.cpp's quantizer failed."""


class CheckpointError(QuantDeskError):
    """A Hugging Face checkpoint could not be read or converted."""


# -- the Hugging Face Hub and downloads


class HubError(QuantDeskError):
    """Something went wrong talking to the Hugging Face Hub."""


class HubUnreachableError(HubError):
    """No connection to the Hub (offline, DNS, proxy, timeout)."""


class HubRepoNotFoundError(HubError):
    """No such repository on the Hub (or it is private and the token cannot see it)."""


class HubFileNotFoundError(HubError):
    """The repository has no such file (or no GGUF file at all)."""


class HubGatedError(HubError):
    """The repo needs an accepted licence and a token."""


class UnsafeHubAnswerError(HubError):
    """The server answered with something that cannot be used safely (a path outside the cache, a
    malformed checksum or commit, an absurd size). Nothing was written."""


class DownloadCancelled(Cancelled, HubError):
    """The user cancelled (or paused) the download; what was fetched is kept for a resume."""


class DiskFullError(HubError):
    """Not enough disk space for a download (checked before, or the disk filled up during it)."""


class CorruptDownloadError(HubError):
    """A downloaded file is not what the Hub announced (its sha256 or its size); the bad copy is not kept."""


# -- comparing quants


class CompareError(QuantDeskError):
    """A comparison could not run (a model failed to load or its child process died)."""


class CompareCancelled(Cancelled, CompareError):
    """The user cancelled the comparison; the models measured so far are kept."""


class KLDFileError(QuantDeskError):
    """Not a kl-divergence-base file, or a damaged one."""


# -- quantizing and importance matrices


class QuantizeCancelled(Cancelled, QuantizeError):
    """The user cancelled quantizing; the partial output was deleted."""


class ImatrixError(QuantDeskError):
    """An importance matrix could not be read (damaged or not one) or computed."""


class ImatrixCancelled(Cancelled, ImatrixError):
    """The user cancelled computing an importance matrix; nothing was written."""
