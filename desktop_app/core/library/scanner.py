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
from dataclasses import asdict, dataclass, field

from desktop_app.core.errors import GGUFError
from desktop_app.core.gguf import SPLIT_RE, ModelInfo, model_info_from_headers, read_gguf_header
from desktop_app.core.library.cache import LibraryCache, file_signature
from desktop_app.core.library.starter import StarterModel, find_starter_model
from desktop_app.core.settings import Settings

log = logging.getLogger(__name__)

MAX_DEPTH = 8  # folders below a configured folder that are searched
SOURCE_FOLDER, SOURCE_FILE, SOURCE_HF, SOURCE_STARTER = "folder", "file", "hf-cache", "starter"


@dataclass
class LibraryEntry:
    """One model in the library (all shards of a split model), or one file that failed to read."""

    id: str  # absolute path of the first shard
    paths: list[str]
    source: str  # folder | file | hf-cache | starter
    source_label: str  # the folder, "Hugging Face cache", …
    file_bytes: int
    info: ModelInfo | None = None
    error: str | None = None
    repo_id: str | None = None

    @property
    def name(self) -> str:
        if self.info:
            return self.info.name
        return os.path.basename(self.id)

    @property
    def file_name(self) -> str:
        return os.path.basename(self.id)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["info"] = self.info.to_dict() if self.info else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LibraryEntry:
        d = dict(d)
        d["info"] = ModelInfo.from_dict(d["info"]) if d.get("info") else None
        return cls(**d)


@dataclass
class ScanProgress:
    done: int
    total: int
    current: str


@dataclass
class ScanResult:
    entries: list[LibraryEntry]
    folder_problems: list[str] = field(default_factory=list)  # folders that could not be searched
    notices: list[str] = field(default_factory=list)  # e.g. "starter model not installed"
    elapsed_s: float = 0.0
    parsed: int = 0  # headers actually read (the rest came from the cache)

    @property
    def models(self) -> list[LibraryEntry]:
        return [e for e in self.entries if e.error is None]

    @property
    def problems(self) -> list[LibraryEntry]:
        return [e for e in self.entries if e.error is not None]


def hf_hub_cache_dir() -> str:
    """The Hugging Face cache folder, resolved from the environment the way huggingface_hub does."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return os.path.expanduser(explicit)
    home = os.environ.get("HF_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.path.join(xdg, "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


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


def _group_shards(found: list[_Found]) -> list[list[_Found]]:
    """Put the shards of split models together, ordered; single files stay alone."""
    groups: dict[tuple[str, str, str], dict[int, _Found]] = {}
    order: list[tuple[str, ...]] = []
    singles: dict[tuple[str, ...], list[_Found]] = {}
    for f in found:
        m = SPLIT_RE.match(os.path.basename(f.path))
        if m:
            key = (os.path.dirname(f.path), m.group("stem"), m.group("total"))
            if key not in groups:
                groups[key] = {}
                order.append(key)
            groups[key][int(m.group("no"))] = f
        else:
            key1 = (f.path,)
            singles[key1] = [f]
            order.append(key1)
    out = []
    for key in order:
        if len(key) == 1:
            out.append(singles[key])
        else:
            shards = groups[key]
            out.append([shards[n] for n in sorted(shards)])
    return out


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

    m = SPLIT_RE.match(os.path.basename(first.path))
    if m:
        total = int(m.group("total"))
        present = {int(SPLIT_RE.match(os.path.basename(f.path)).group("no")) for f in group}
        missing = [n for n in range(1, total + 1) if n not in present]
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
    groups = _group_shards(found)
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
