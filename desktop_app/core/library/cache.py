"""The library's memory between runs: parsed headers keyed by path, size and mtime, and the last
scan's list so the Models page can show it at once while a fresh scan runs in the background."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from desktop_app.core.library.entry import LibraryEntry
from desktop_app.core.paths import app_paths, write_text_atomic

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def file_signature(path: str) -> list[int] | None:
    """[size, mtime_ns] of a file, or None when it cannot be stat'ed (then it is never cached)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


class LibraryCache:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or app_paths().library_cache_file
        self._entries: dict[str, dict] = {}
        self._last: list[str] = []
        self._dirty = False

    @classmethod
    def load(cls, path: Path | None = None) -> LibraryCache:
        cache = cls(path)
        try:
            data = json.loads(cache.path.read_text(encoding="utf-8"))
            if data.get("version") == CACHE_VERSION:
                cache._entries = dict(data.get("entries", {}))
                cache._last = list(data.get("last", []))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("library cache unreadable, starting afresh: %s", exc)
        return cache

    def get(self, path: str, signature: list):
        item = self._entries.get(os.path.abspath(path))
        if not item or item.get("signature") != signature:
            return None
        try:
            return LibraryEntry.from_dict(item["entry"])
        except (KeyError, TypeError):
            return None

    def put(self, path: str, signature: list, entry) -> None:
        self._entries[os.path.abspath(path)] = {"signature": signature, "entry": entry.to_dict()}
        self._dirty = True

    def set_last(self, entries) -> None:
        ids = [e.id for e in entries]
        if ids != self._last:
            self._last = ids
            self._dirty = True
        # forget headers of files no longer in the library
        keep = set(ids)
        for key in [k for k in self._entries if k not in keep]:
            del self._entries[key]
            self._dirty = True

    def last_entries(self) -> list:
        """The previous scan's entries, straight from the cache: no header is read, but a file that
        is no longer there (moved, deleted, or in a venv that was removed) is left out, so nothing
        offers or opens it before the fresh scan ends."""
        out = []
        for key in self._last:
            item = self._entries.get(key)
            if item:
                try:
                    entry = LibraryEntry.from_dict(item["entry"])
                except (KeyError, TypeError):
                    continue
                if all(os.path.isfile(p) for p in entry.paths):
                    out.append(entry)
        return out

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(
                self.path, json.dumps({"version": CACHE_VERSION, "entries": self._entries, "last": self._last})
            )
            self._dirty = False
        except OSError as exc:  # a cache that cannot be written only costs speed next time
            log.warning("could not write library cache %s: %s", self.path, exc)
