"""What comes from a Hub server is hostile until checked: names, ETags, commits and sizes.

A server (or whatever answers at HF_ENDPOINT) chooses the file names in a listing, the ETag and
X-Repo-Commit headers and the sizes. Before any of them becomes part of a path, an allocation or a
loop, it must match what the Hugging Face Hub really sends; anything else is refused with a
message, and nothing is written.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from desktop_app.core.errors import UnsafeHubAnswerError  # noqa: F401 (re-exported)

_NAME_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID_RE = re.compile(rf"^{_NAME_PART}/{_NAME_PART}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_REVISION_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}(?:/[A-Za-z0-9._-]{1,200}){0,4}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\\:]")
MAX_FILENAME_CHARS = 1000
MAX_FILE_BYTES = 1 << 41  # 2 TiB: no model file is larger; a bigger size is a lie


def check_repo_id(repo_id: str) -> str:
    if not isinstance(repo_id, str) or not _REPO_ID_RE.match(repo_id) or ".." in repo_id:
        raise UnsafeHubAnswerError(f"{repo_id!r} is not a Hub repository name (owner/name).")
    return repo_id


def check_filename(name: str, repo_id: str = "") -> str:
    """A file name from a listing: a relative path with no way out of its folder.

    Raises:
        UnsafeHubAnswerError: absolute, ``..``, backslashes, drive letters, control characters, too long.
    """
    where = f" in {repo_id}" if repo_id else ""
    bad = (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_FILENAME_CHARS
        or name.startswith("/")
        or _CONTROL_RE.search(name)
        or any(part in ("", ".", "..") or len(part) > 255 for part in name.split("/"))
    )
    if bad:
        raise UnsafeHubAnswerError(
            f"The server listed a file{where} named {name!r}, which is not a safe relative path: "
            "refusing to download it (nothing was written)."
        )
    return name


def check_revision(revision: str) -> str:
    if not isinstance(revision, str) or not _REVISION_RE.match(revision) or ".." in revision.split("/"):
        raise UnsafeHubAnswerError(f"{revision!r} is not a branch, tag or commit name.")
    return revision


def check_commit(commit: str | None, name: str) -> str:
    if not isinstance(commit, str) or not _COMMIT_RE.match(commit):
        raise UnsafeHubAnswerError(
            f"The server gave {name} a malformed commit ({str(commit)[:80]!r}); refusing it (nothing was written)."
        )
    return commit


def sha256_or_none(value: str | None) -> str | None:
    """A sha256 in hex, lower case, or None if ``value`` is not one (an ETag may be a git sha1, or a lie)."""
    if not isinstance(value, str):
        return None
    value = value.strip().strip('"').lower()
    if value.startswith("w/"):
        return None  # a weak ETag is no checksum
    return value if _SHA256_RE.match(value) else None


def check_size(size: object, name: str) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > MAX_FILE_BYTES:
        raise UnsafeHubAnswerError(
            f"The server gave no usable size for {name} ({str(size)[:40]}); refusing to download it without one."
        )
    return size


def inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` resolves (following links) to a place inside ``root``."""
    r = os.path.realpath(root)
    p = os.path.realpath(path)
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)


def same_origin(url: str, other: str) -> bool:
    """Same scheme, host and port: where a token may go."""
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme.lower(), a.hostname, a.port or _default_port(a.scheme)) == (
        b.scheme.lower(),
        b.hostname,
        b.port or _default_port(b.scheme),
    )


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme.lower())
