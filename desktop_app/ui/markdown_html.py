"""Markdown → HTML with converters built once per thread.

``markdown.markdown()`` builds a new converter on every call, compiling some hundred regular
expressions (about 90 ms the first time): far too slow for the GUI thread while an answer streams.
Converters are kept per thread (they are not thread-safe), and :func:`warm_up` compiles the shared
regular-expression cache on a worker before the GUI thread first needs it.
"""

from __future__ import annotations

import threading

import markdown

CHAT = ("fenced_code", "tables", "sane_lists")
CARD = ("fenced_code", "tables")
_local = threading.local()


def to_html(text: str, extensions: tuple[str, ...] = CHAT) -> str:
    converters = _local.__dict__.setdefault("converters", {})
    md = converters.get(extensions)
    if md is None:
        md = converters[extensions] = markdown.Markdown(extensions=list(extensions))
    return md.reset().convert(text)


def warm_up() -> None:
    to_html("*a* `b`\n\n```\nc\n```\n\n| d |\n|---|\n| e |\n")
