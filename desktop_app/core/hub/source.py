"""Where a model's header comes from: a local file (all parts of a split model) or the Hub.

It lives with the Hub (which builds on ``memory``), so ``memory`` never reaches up to the Hub."""

from __future__ import annotations

import os
import re

from desktop_app.core.gguf import read_model_headers
from desktop_app.core.hub.remote_header import fetch_model_headers
from desktop_app.core.memory.shape import ModelShape, model_shape

HUB_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<file>.+))?$")


def is_hub_reference(model: str) -> bool:
    return not os.path.exists(model) and bool(HUB_RE.match(model))


def load_model_shape(model: str) -> tuple[ModelShape, str]:
    """The shape of ``model`` and where it came from (see :func:`load_model`)."""
    shape, source, _fetched = load_model(model)
    return shape, source


def load_model(model: str) -> tuple[ModelShape, str, int | None]:
    """The shape of ``model``, where it came from, and the header bytes fetched (None when local).

    Raises:
        FileNotFoundError, GGUFError: a local file is missing or unreadable.
        HubError: the Hub could not be asked (see :mod:`desktop_app.core.hub`).
    """
    if is_hub_reference(model):
        m = HUB_RE.match(model)
        assert m is not None  # is_hub_reference matched it
        remote = fetch_model_headers(m.group("repo"), m.group("file"))
        return model_shape(remote.headers), f"hf://{m.group('repo')}/{remote.filename}", remote.bytes_fetched
    if not os.path.exists(model):
        raise FileNotFoundError(
            f"No such file: {model}. Give a .gguf path, or owner/repo[:file] for a model on the Hub."
        )
    return model_shape(read_model_headers(model)), os.path.abspath(model), None
