"""Checks before a load for what llama.cpp does not refuse but stops on (an assert that aborts the
process), and that the header reader leaves out because they need a long array read whole."""

from __future__ import annotations

import os

from desktop_app.core.gguf.reader import read_string_array


def load_problem(path: str | os.PathLike[str]) -> str:
    """Why llama.cpp would abort loading ``path`` (the first shard of a split model), or "".

    Raises:
        OSError, GGUFError: the file cannot be read (a load would fail the same way).
    """
    tokens = read_string_array(path, "tokenizer.ggml.tokens")
    if tokens and len(set(tokens)) != len(tokens):
        first: dict[bytes, int] = {}
        for i, tok in enumerate(tokens):
            if tok in first:
                shown = tok.decode("utf-8", "replace")[:40]
                return (
                    f"The vocabulary lists the token {shown!r} twice (ids {first[tok]:,} and {i:,}); llama.cpp "
                    "stops (aborts) on such a file. The file is damaged: download or convert it again."
                )
            first[tok] = i
    return ""
