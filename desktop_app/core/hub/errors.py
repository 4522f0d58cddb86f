"""Typed Hub errors whose text says what happened and what to do."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from desktop_app.core.errors import (  # noqa: F401 (re-exported)
    HubError,
    HubFileNotFoundError,
    HubGatedError,
    HubRepoNotFoundError,
    HubUnreachableError,
    QuantDeskError,
)

T = TypeVar("T")


def endpoint() -> str:
    """HF_ENDPOINT read now (huggingface_hub reads it once at import)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


_reached: dict[str, float] = {}  # endpoint -> when a connection last succeeded
_reached_lock = threading.Lock()
PROBE_TIMEOUT_S = 5.0
PROBE_TTL_S = 60.0


def check_reachable() -> None:
    """Fail fast when the Hub's host cannot be reached at all.

    huggingface_hub retries refused connections with backoff for about 25 s; a user who is offline
    should hear so at once. One TCP connect (remembered for a minute) tells. Behind a proxy the
    direct connect says nothing, so it is skipped.
    """
    from urllib.parse import urlsplit

    url = endpoint()
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return
    with _reached_lock:
        if time.monotonic() - _reached.get(url, -PROBE_TTL_S) < PROBE_TTL_S:
            return
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise HubUnreachableError(
            f"Cannot reach the Hugging Face Hub ({url}): {_short(exc)}. "
            "Check the connection; local models keep working."
        ) from exc
    with _reached_lock:
        _reached[url] = time.monotonic()


def translate_errors(what: str, call: Callable[[], T]) -> T:
    """Run ``call`` and turn huggingface_hub / transport errors into :class:`HubError` subclasses."""
    from huggingface_hub import errors as hf

    check_reachable()
    try:
        return call()
    except hf.GatedRepoError as exc:
        raise HubGatedError(
            f"{what} is gated: accept its licence on the Hub, then save a token in Settings. ({_short(exc)})"
        ) from exc
    except hf.RepositoryNotFoundError as exc:
        raise HubRepoNotFoundError(
            f"{what}: no such repository on {endpoint()} (or it is private: a token is needed)."
        ) from exc
    except (hf.EntryNotFoundError, hf.RemoteEntryNotFoundError) as exc:
        raise HubFileNotFoundError(f"{what}: no such file in the repository.") from exc
    except hf.RevisionNotFoundError as exc:
        raise HubFileNotFoundError(f"{what}: no such branch or revision.") from exc
    except hf.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubGatedError(f"{what}: the Hub refused access ({status}). Check the token in Settings.") from exc
        raise HubError(f"{what}: the Hub answered with an error ({status or _short(exc)}). Try again later.") from exc
    except Exception as exc:
        if isinstance(exc, (OSError, TimeoutError)) or type(exc).__module__.split(".")[0].startswith("httpx"):
            raise HubUnreachableError(
                f"Cannot reach the Hugging Face Hub ({endpoint()}): {_short(exc)}. "
                "Check the connection; local models keep working."
            ) from exc
        raise


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
