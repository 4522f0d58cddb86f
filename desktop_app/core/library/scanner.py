"""Find the GGUF models the user already has: configured folders, single files, the Hugging Face
cache and the starter model. Split GGUFs become one entry; unreadable files become entries with
the reason, so nothing silently disappears.

:func:`iter_scan` is a generator: it yields :class:`ScanProgress` (each yield is a cancel point)
and returns a :class:`ScanResult`. :func:`scan_library` runs it to the end.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass

from desktop_app.core.errors import GGUFError
from desktop_app.core.gguf import model_info_from_headers, read_gguf_header
from desktop_app.core.gguf.split import group_parts, missing_parts, parse_split
from desktop_app.core.library.cache import LibraryCache, file_signature
from desktop_app.core.library.entry import (
    SOURCE_FILE,
    SOURCE_FOLDER,
    SOURCE_HF,
    SOURCE_STARTER,
    LibraryEntry,
    ScanProgress,
    ScanResult,
)
from desktop_app.core.paths import hf_hub_cache_dir
from desktop_app.core.settings import Settings
from desktop_app.core.starter import StarterModel, find_starter_model

log = logging.getLogger(__name__)

MAX_DEPTH = 8  # folders below a configured folder that are searched


@dataclass
class _Found:
    path: str  # as found (the user's spelling; symlinks kept)
    source: str
    label: str
    repo_id: str | None = None


def _walk_gguf(folder: str, problems: list[str]) -> Iterable[str]:
    """GGUF files below ``folder``; folders that cannot be read are reported, not fatal."""
    if not os.path.exists(folder):
        problems.append(f"Folder not found: {folder} (moved, deleted, or on a drive that is not connected).")
        return
    if not os.path.isdir(folder):
        problems.append(f"Not a folder: {folder}.")
        return
    seen: set[str] = set()
    stack = [(folder, 0)]
    while stack:
        current, depth = stack.pop()
        real = os.path.realpath(current)
        if real in seen:
            continue
        seen.add(real)
        try:
            with os.scandir(current) as it:
                items = list(it)
        except PermissionError:
            problems.append(f"No permission to read folder {current}; its models are not listed.")
            continue
        except OSError as exc:
            problems.append(f"Could not read folder {current}: {exc.strerror or exc}.")
            continue
        subdirs = []
        for item in sorted(items, key=lambda i: i.name):
            if item.name.startswith("."):
                continue
            try:
                if item.is_dir():
                    if depth < MAX_DEPTH:
                        if item.is_symlink() and _is_ancestor(os.path.realpath(item.path), current):
                            problems.append(
                                f"Skipped the link {item.path}: it leads back to {os.path.realpath(item.path)}, "
                                "a folder it is inside (a loop)."
                            )
                            continue
                        subdirs.append((item.path, depth + 1))
                    continue
            except OSError as exc:
                problems.append(_unreadable_item(item.path, exc))
                continue
            if item.is_symlink() and _link_loops(item.path):
                problems.append(_unreadable_item(item.path, OSError(errno.ELOOP, "")))
                continue
            if item.name.lower().endswith(".gguf"):
                yield item.path
        stack.extend(reversed(subdirs))


def _is_ancestor(real: str, current: str) -> bool:
    here = os.path.realpath(current)
    return here == real or here.startswith(real.rstrip(os.sep) + os.sep)


def _unreadable_item(path: str, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return (f"Skipped the link {path}: it points to itself through other links (a loop). "
                "Remove it or point it at a real file.")  # fmt: skip
    return f"Skipped {path}: {exc.strerror or exc}."


def _link_loops(path: str) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _hf_cache_files(cache_dir: str) -> Iterable[_Found]:
    try:
        repos = sorted(d for d in os.listdir(cache_dir) if d.startswith("models--"))
    except OSError:
        return
    for repo in repos:
        repo_id = repo[len("models--") :].replace("--", "/")
        snapshots = os.path.join(cache_dir, repo, "snapshots")
        for path in _walk_gguf(snapshots, []):
            yield _Found(path, SOURCE_HF, f"Hugging Face cache ({repo_id})", repo_id)


def _collect(settings: Settings, starter: StarterModel | None, problems: list[str]) -> list[_Found]:
    found: list[_Found] = []
    if starter is not None and starter.path:
        found.append(_Found(starter.path, SOURCE_STARTER, "Starter model (bundled)"))
    for folder in settings.model_folders:
        found.extend(_Found(p, SOURCE_FOLDER, folder) for p in _walk_gguf(folder, problems))
    if settings.include_hf_cache:
        found.extend(_hf_cache_files(hf_hub_cache_dir()))
    for path in settings.extra_files:
        found.append(_Found(path, SOURCE_FILE, "Opened file"))
    excluded = {os.path.abspath(p) for p in settings.excluded_paths}
    unique: list[_Found] = []
    seen: set[str] = set()
    for f in found:
        if os.path.abspath(f.path) in excluded:
            continue
        key = os.path.realpath(f.path)
        if key in seen:
            continue
        seen.add(key)
        unique.append(f)
    return unique


def _read_group(group: list[_Found]) -> LibraryEntry:
    first = group[0]
    entry = LibraryEntry(
        id=os.path.abspath(first.path),
        paths=[os.path.abspath(f.path) for f in group],
        source=first.source,
        source_label=first.label,
        file_bytes=0,
        repo_id=first.repo_id,
    )
    sizes = []
    for f in group:
        try:
            sizes.append(os.stat(f.path).st_size)
        except FileNotFoundError:
            entry.error = (
                f"{os.path.basename(f.path)} is a broken link (an unfinished download?)."
                if os.path.islink(f.path)
                else f"{os.path.basename(f.path)} no longer exists."
            )
            return entry
        except OSError as exc:
            entry.error = f"Cannot open {os.path.basename(f.path)}: {exc.strerror or exc}."
            return entry
    entry.file_bytes = sum(sizes)

    split = parse_split(first.path)
    if split:
        total = split.total
        missing = missing_parts(f.path for f in group)
        if missing:
            shown = ", ".join(str(n) for n in missing[:8]) + ("…" if len(missing) > 8 else "")
            entry.error = (
                f"Split model with {total} parts, but part{'s' if len(missing) > 1 else ''} {shown} "
                "missing. Download the missing parts into the same folder."
            )
            return entry
    headers = []
    for f in group:
        try:
            headers.append(read_gguf_header(f.path))
        except GGUFError as exc:
            where = f"{os.path.basename(f.path)}: " if len(group) > 1 else ""
            entry.error = where + exc.reason
            return entry
        except PermissionError:
            entry.error = f"No permission to read {os.path.basename(f.path)}."
            return entry
        except OSError as exc:
            entry.error = f"Cannot read {os.path.basename(f.path)}: {exc.strerror or exc}."
            return entry
        except Exception as exc:  # a parser bug must not stop the scan; say which file
            log.exception("unexpected error reading %s", f.path)
            entry.error = f"Unexpected error reading this file ({type(exc).__name__}: {exc})."
            return entry
    entry.info = model_info_from_headers(headers, file_name=os.path.basename(first.path))
    return entry


def iter_scan(
    settings: Settings,
    *,
    cache: LibraryCache | None = None,
    starter: StarterModel | None = None,
) -> Generator[ScanProgress, None, ScanResult]:
    """Scan the library. Yields progress before each model; returns the result.

    Headers already in ``cache`` with the same size and modification time are not read again.
    Closing the generator (cancel) leaves the cache as it was.
    """
    t0 = time.perf_counter()
    folder_problems: list[str] = []
    notices: list[str] = []
    if settings.include_starter:
        starter = starter if starter is not None else find_starter_model()
        if starter.problem:
            notices.append(starter.problem)
    else:
        starter = None
    found = _collect(settings, starter, folder_problems)
    groups = group_parts(found, lambda f: f.path)
    entries: list[LibraryEntry] = []
    parsed = 0
    for i, group in enumerate(groups):
        yield ScanProgress(i, len(groups), group[0].path)
        signature = [file_signature(f.path) for f in group]
        cached = cache.get(group[0].path, signature) if cache else None
        if cached is not None:
            cached.source, cached.source_label, cached.repo_id = group[0].source, group[0].label, group[0].repo_id
            entries.append(cached)
            continue
        entry = _read_group(group)
        parsed += 1
        entries.append(entry)
        if cache is not None and None not in signature:
            cache.put(group[0].path, signature, entry)
    if cache is not None:
        cache.set_last(entries)
        cache.save()
    yield ScanProgress(len(groups), len(groups), "")
    return ScanResult(
        entries=entries,
        folder_problems=folder_problems,
        notices=notices,
        elapsed_s=time.perf_counter() - t0,
        parsed=parsed,
    )


def scan_library(
    settings: Settings, *, cache: LibraryCache | None = None, starter: StarterModel | None = None
) -> ScanResult:
    """Run :func:`iter_scan` to the end (for the CLI and tests)."""
    gen = iter_scan(settings, cache=cache, starter=starter)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
