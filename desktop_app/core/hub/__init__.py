"""The Hugging Face Hub through huggingface_hub (HF_ENDPOINT, HF_HOME and HF_TOKEN honoured)."""

from desktop_app.core.hub.errors import (
    HubError,
    HubFileNotFoundError,
    HubGatedError,
    HubRepoNotFoundError,
    HubUnreachableError,
)

__all__ = ["HubError", "HubFileNotFoundError", "HubGatedError", "HubRepoNotFoundError", "HubUnreachableError"]
