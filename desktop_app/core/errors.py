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


class KeyringUnavailableError(QuantDeskError):
    """No usable OS keyring, so a secret cannot be stored safely."""


class SettingsError(QuantDeskError):
    """The settings file could not be read or written."""
