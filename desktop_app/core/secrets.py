"""The Hugging Face token, kept in the OS keyring (Keychain, Credential Manager, Secret Service).

It is never written to settings or logs. When no keyring is available, saving fails with a
message that says so and how to provide the token instead (HF_TOKEN).
"""

from __future__ import annotations

import os

from desktop_app.core.errors import KeyringUnavailableError

SERVICE = "QuantDesk"
TOKEN_USER = "huggingface-token"


def _keyring():
    import keyring
    import keyring.errors

    return keyring, keyring.errors


def keyring_backend_name() -> str:
    keyring, _ = _keyring()
    backend = keyring.get_keyring()
    return getattr(backend, "name", type(backend).__name__)


def keyring_usable() -> bool:
    keyring, _ = _keyring()
    backend = keyring.get_keyring()
    try:
        return float(getattr(backend, "priority", 0)) > 0
    except Exception:
        return False


def get_hf_token() -> str | None:
    """The token from the keyring, else HF_TOKEN from the environment, else None. Never raises."""
    keyring, errors = _keyring()
    try:
        token = keyring.get_password(SERVICE, TOKEN_USER)
    except (errors.KeyringError, RuntimeError):
        token = None
    return token or os.environ.get("HF_TOKEN") or None


def set_hf_token(token: str) -> None:
    """Store the token in the OS keyring.

    Raises:
        KeyringUnavailableError: no usable keyring on this system, or it refused.
        ValueError: the token is empty or not shaped like a Hugging Face token.
    """
    token = token.strip()
    if not token:
        raise ValueError("The token is empty.")
    if not token.startswith("hf_") or len(token) < 20 or any(c.isspace() for c in token):
        raise ValueError(
            "That does not look like a Hugging Face token (they start with 'hf_'). "
            "Copy it again from huggingface.co/settings/tokens."
        )
    keyring, errors = _keyring()
    if not keyring_usable():
        raise KeyringUnavailableError(
            "No OS keyring is available here, so the token cannot be stored safely. "
            "Set the HF_TOKEN environment variable instead."
        )
    try:
        keyring.set_password(SERVICE, TOKEN_USER, token)
    except (errors.KeyringError, RuntimeError) as exc:
        raise KeyringUnavailableError(
            f"The OS keyring refused to store the token ({exc}). Set the HF_TOKEN environment variable instead."
        ) from exc


def delete_hf_token() -> None:
    keyring, errors = _keyring()
    try:
        keyring.delete_password(SERVICE, TOKEN_USER)
    except (errors.PasswordDeleteError, errors.KeyringError, RuntimeError):
        pass


def token_source() -> str:
    """'keyring', 'environment' or '' — where the token in use comes from."""
    keyring, errors = _keyring()
    try:
        if keyring.get_password(SERVICE, TOKEN_USER):
            return "keyring"
    except (errors.KeyringError, RuntimeError):
        pass
    return "environment" if os.environ.get("HF_TOKEN") else ""
