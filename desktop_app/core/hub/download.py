"""Downloads you can trust: into the standard Hugging Face cache (its blobs/snapshots/refs layout, so
huggingface_hub and other tools find the files), resumable (also after a restart: the .incomplete
file stays), with progress, cancel, pause, retry with backoff when the transfer stalls, a free-disk
check first, and the sha256 checked against the Hub's LFS hash. File metadata, auth headers and
redirects come from huggingface_hub; the body is read by a lean loop that hashes as it writes.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from desktop_app.core.errors import (  # noqa: F401 (re-exported)
    CorruptDownloadError,
    DiskFullError,
    DownloadCancelled,
    UnsafeHubAnswerError,
)
from desktop_app.core.hub.errors import HubError, HubUnreachableError, endpoint, translate_errors
from desktop_app.core.hub.safety import (
    check_commit,
    check_filename,
    check_repo_id,
    check_revision,
    check_size,
    inside,
    same_origin,
    sha256_or_none,
)

log = logging.getLogger(__name__)
DISK_MARGIN_BYTES = 512 * 1024 * 1024
RETRIES = 5
BACKOFF_S = (1, 2, 4, 8, 16)


@dataclass
class DownloadProgress:
    filename: str
    part: int  # 1-based part of a split model
    parts: int
    bytes_done: int  # across all parts
    bytes_total: int
    speed_bps: float
    eta_s: float | None
    phase: str = "downloading"  # checking (a resumed part) | downloading | retrying | verified


@dataclass
class DownloadResult:
    path: str  # the first part, in the Hugging Face cache
    paths: list[str]
    bytes: int
    sha256: list[str]
    resumed: bool


def _cache_dir() -> Path:
    from desktop_app.core.paths import hf_hub_cache_dir

    return Path(hf_hub_cache_dir())


def _incomplete_bytes(repo_id: str, sha256: str) -> int:
    p = _storage(repo_id) / "blobs" / f"{sha256}.incomplete"
    try:
        return p.stat().st_size if not p.is_symlink() else 0
    except OSError:
        return 0


def download_model(
    repo_id: str,
    filenames: list[str],
    *,
    revision: str = "main",
    token: str | None = None,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> DownloadResult:
    """Download every part of a model into the HF cache, verified.

    Raises:
        DownloadCancelled: ``cancel`` was set; the partial file stays and a later call resumes it.
        DiskFullError: not enough free space (checked first, and if the disk fills on the way).
        CorruptDownloadError: the sha256 did not match the Hub's; the bad file was deleted.
        HubGatedError, HubRepoNotFoundError, HubFileNotFoundError, HubUnreachableError, HubError.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    from desktop_app.core.secrets import get_hf_token

    check_repo_id(repo_id)
    check_revision(revision)
    for name in filenames:
        check_filename(name, repo_id)
    tok = token or get_hf_token()
    cancel = cancel or threading.Event()
    metas = []
    for name in filenames:
        url = hf_hub_url(repo_id, name, revision=revision, endpoint=endpoint())
        meta = translate_errors(f"{repo_id}/{name}", functools.partial(get_hf_file_metadata, url, token=tok))
        metas.append(_Checked(name, check_size(meta.size, name), check_commit(meta.commit_hash, name),
                              sha256_or_none(meta.etag), meta.location or url))  # fmt: skip
    _fill_sha256(repo_id, metas, tok)
    total = sum(m.size for m in metas)
    already = sum(_incomplete_bytes(repo_id, m.sha256 or "") for m in metas)
    resumed = already > 0
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache).free
    if total - already + DISK_MARGIN_BYTES > free:
        raise DiskFullError(
            f"Not enough free disk space in {cache}: the download needs {_gb(total - already)} and "
            f"{_gb(free)} is free. Free some space (or move HF_HOME) and try again."
        )

    job = _Job(repo_id, revision, tok, cancel, progress, total, len(filenames))
    paths: list[str] = []
    shas: list[str] = []
    for i, checked in enumerate(metas):
        job.urls[checked.name], job.commits[checked.name] = checked.url, checked.commit
        job.sizes[checked.name] = checked.size
        path, digest = job.fetch(i, checked.name, checked.sha256 or "")
        paths.append(path)
        shas.append(digest)
        job.done_before += checked.size
    return DownloadResult(paths[0], paths, total, shas, resumed)


@dataclass
class _Checked:
    """One file's metadata from the server, each field checked before use."""

    name: str
    size: int
    commit: str
    sha256: str | None  # from the ETag when it is one; else asked of the Hub's paths-info API
    url: str


def _fill_sha256(repo_id: str, metas: list[_Checked], token: str | None) -> None:
    """Every file is verified by sha256: where the ETag is not one (a git sha1, a proxy's own tag, a
    lie), ask the Hub for the LFS sha256 of the file at that commit.

    Raises:
        UnsafeHubAnswerError: no sha256 to be had, or one that disagrees on the size.
    """
    missing = [m for m in metas if m.sha256 is None]
    if not missing:
        return
    from huggingface_hub import HfApi

    by_commit: dict[str, list[_Checked]] = {}
    for m in missing:
        by_commit.setdefault(m.commit, []).append(m)
    for commit, group in by_commit.items():
        api = HfApi(endpoint=endpoint(), token=token)
        infos = translate_errors(repo_id, functools.partial(api.get_paths_info, repo_id, [m.name for m in group],
                                                            revision=commit))  # fmt: skip
        lfs = {getattr(i, "path", None): getattr(i, "lfs", None) for i in infos}
        for m in group:
            info = lfs.get(m.name)
            m.sha256 = sha256_or_none(getattr(info, "sha256", None))
            if m.sha256 is None or getattr(info, "size", m.size) != m.size:
                raise UnsafeHubAnswerError(
                    f"The Hub gave no sha256 for {m.name} (its ETag is not one and the file has no LFS record "
                    "that agrees with its size): refusing to download what cannot be verified."
                )


class _Job:
    """One model's download: the parts one after the other, progress across all of them."""

    def __init__(self, repo_id, revision, token, cancel, progress, total, parts) -> None:
        self.repo_id, self.revision, self.token = repo_id, revision, token
        self.cancel, self.progress = cancel, progress
        self.total, self.parts = total, parts
        self.done_before = 0
        self.urls: dict[str, str] = {}
        self.commits: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        self.started = time.monotonic()
        self.session_bytes = 0  # fetched by this call, for the speed
        self._last_report = 0.0

    def _report(self, name: str, i: int, got: int, phase: str = "downloading", *, force: bool = True) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_report < 0.05:  # at most 20 reports a second
            return
        self._last_report = now
        speed = self.session_bytes / max(now - self.started, 1e-6) if phase == "downloading" else 0.0
        eta = (self.total - got) / speed if speed > 0 else None
        self.progress(DownloadProgress(name, i + 1, self.parts, got, self.total, speed, eta, phase))

    def fetch(self, i: int, name: str, expected_sha: str) -> tuple[str, str]:
        path, digest = _download_with_retries(self, name, i, expected_sha)
        if digest != expected_sha:
            os.remove(path)  # never leave a bad file looking complete (or resumable)
            raise CorruptDownloadError(
                f"{name} arrived corrupted (its sha256 does not match the Hub's); the bad copy was deleted. "
                "Download it again."
            )
        self._report(name, i, self.done_before + self.sizes[name], "verified")
        return _place_in_cache(self.repo_id, self.revision, self.commits[name], name, path, expected_sha), digest


CHUNK = 1 << 20
STALL_TIMEOUT_S = 30.0  # no byte for this long: the transfer stalled; retry (resuming) with backoff


class _Short(Exception):
    """The server closed the connection before the announced end (or sent more than announced)."""


def _transfer(job: _Job, name: str, i: int, f, sha) -> None:
    """GET the rest of the file into ``f`` (open for appending), hashing as it arrives.

    A plain ``urllib`` loop reading into one reused buffer: on a fast link this costs about as much
    CPU as huggingface_hub's ``http_get`` does without hashing, so verifying comes for free.
    """
    import http.client
    import urllib.error
    import urllib.request

    from huggingface_hub.utils import build_hf_headers

    resume = f.tell()
    size = job.sizes[name]
    if resume == size:
        return
    url = job.urls[name]
    # the token goes to the Hub's own origin only (a CDN it redirects to gets a signed URL instead)
    headers = build_hf_headers(token=job.token if same_origin(url, endpoint()) else False)
    if resume:
        headers["Range"] = f"bytes={resume}-"
    try:
        resp = _opener().open(urllib.request.Request(url, headers=headers), timeout=STALL_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        raise _http_error(job, name, exc.code) from exc
    with resp:
        if resume and resp.status == 200:  # the server ignored Range: start over
            f.seek(0)
            f.truncate()
            sha.__init__()
            resume = 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        got = resume
        try:
            # never past the announced size: a body without Content-Length cannot fill the disk
            while got < size and (n := resp.readinto(view[: min(CHUNK, size - got)])):
                if job.cancel.is_set():
                    raise DownloadCancelled("Download paused or cancelled; it will resume from here.")
                chunk = view[:n]
                f.write(chunk)
                sha.update(chunk)
                got += n
                job.session_bytes += n
                job._report(name, i, job.done_before + got, force=False)
        except http.client.IncompleteRead as exc:
            raise _Short(f"{name}: the connection closed early") from exc
    if got != size:
        raise _Short(f"{name}: got {got:,} bytes, expected {size:,}")


def _opener():
    """urllib, but a redirect to another origin does not carry the Authorization header along."""
    import urllib.request
    from urllib.parse import urlsplit

    class NoTokenElsewhere(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            new = super().redirect_request(req, fp, code, msg, headers, newurl)
            if new is not None and not same_origin(req.full_url, new.full_url):
                for key in [k for k in new.headers if k.lower() == "authorization"]:
                    del new.headers[key]
                new.unredirected_hdrs.pop("Authorization", None)
            if new is not None and urlsplit(new.full_url).scheme not in ("http", "https"):
                return None
            return new

    return urllib.request.build_opener(NoTokenElsewhere)


def _http_error(job: _Job, name: str, status: int) -> HubError:
    from desktop_app.core.hub.errors import HubFileNotFoundError, HubGatedError

    where = f"{job.repo_id}/{name}"
    if status in (401, 403):
        return HubGatedError(f"{where}: the Hub refused access ({status}). Check the token in Settings.")
    if status == 404:
        return HubFileNotFoundError(f"{where}: no such file in the repository.")
    if status == 416:
        return _RangeNotSatisfiable(where)
    return HubError(f"{where}: the Hub answered with an error ({status}). Try again later.")


class _RangeNotSatisfiable(HubError):
    pass


def _download_with_retries(job: _Job, name: str, i: int, etag: str) -> tuple[str, str]:
    """Fetch into blobs/<etag>.incomplete, resuming from what is there (also after a restart).

    Returns the path and the file's sha256, computed on the way (what an earlier attempt or run
    fetched is hashed first, from disk).
    """
    blobs = _storage(job.repo_id) / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    if not inside(_cache_dir(), blobs):
        raise UnsafeHubAnswerError(f"{blobs} leads outside the Hugging Face cache (a link?): refusing to write there.")
    incomplete = blobs / f"{etag}.incomplete"
    for attempt in range(RETRIES + 1):
        try:
            with _open_partial(incomplete) as f:
                sha = _hash_existing(f, job, name, i)
                _transfer(job, name, i, f, sha)
            return str(incomplete), sha.hexdigest()
        except DownloadCancelled:
            raise
        except _RangeNotSatisfiable as exc:
            got = incomplete.stat().st_size if incomplete.exists() else 0
            incomplete.unlink(missing_ok=True)
            raise CorruptDownloadError(
                f"{name}: the server announced {job.sizes[name]:,} bytes but has only {got:,}. "
                "Nothing was kept; the file on the server may be broken, try again later."
            ) from exc
        except HubError as exc:
            if "error (5" not in str(exc) or attempt == RETRIES:  # retry only the server's own errors
                raise
        except _Short as exc:
            size, got = job.sizes[name], incomplete.stat().st_size
            if got > size:
                incomplete.unlink(missing_ok=True)
                raise CorruptDownloadError(
                    f"{name}: the server sent more bytes than it announced. Nothing was kept; try again later."
                ) from exc
            if attempt == RETRIES:
                raise HubError(f"Downloading {name} failed: {exc}. Resume it later: what was fetched is kept.") from exc
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC
                raise DiskFullError(
                    f"The disk filled up while downloading {name}. Free some space and resume: what was "
                    "fetched is kept."
                ) from exc
            if attempt == RETRIES:
                raise HubUnreachableError(
                    f"Downloading {name} failed: {exc}. Check the connection and resume: what was fetched is kept."
                ) from exc
        wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
        log.warning("download of %s stalled; retrying in %s s", name, wait)
        job._report(name, i, job.done_before, "retrying")
        if job.cancel.wait(wait):
            raise DownloadCancelled("Download cancelled while waiting to retry.")
    raise HubError(f"Downloading {name} failed.")


def _open_partial(path: Path):
    """The partial file, for reading and appending, never through a link: a link planted at its name
    (pointing at a user's file) would make the download append to that file.

    Raises:
        UnsafeHubAnswerError: there is a link (or something not a file) at ``path``.
    """
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        if os.path.islink(path) or (path.exists() and not path.is_file()):
            raise OSError(errno.ELOOP, "not a plain file")
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise UnsafeHubAnswerError(
                f"{path} is a link or not a plain file (something planted it in the cache): refusing to write "
                "through it. Delete it and download again."
            ) from exc
        raise
    f = os.fdopen(fd, "r+b")
    f.seek(0, os.SEEK_END)
    return f


def _hash_existing(f, job: _Job, name: str, i: int):
    """sha256 over what the partial file already holds (left at its end, ready to append)."""
    sha = hashlib.sha256()
    f.seek(0)
    while chunk := f.read(4 * CHUNK):
        if job.cancel.is_set():
            raise DownloadCancelled("Cancelled while checking the partial download.")
        sha.update(chunk)
        job._report(name, i, job.done_before + f.tell(), "checking", force=False)
    return sha


def _storage(repo_id: str) -> Path:
    return _cache_dir() / ("models--" + repo_id.replace("/", "--"))


def _place_in_cache(repo_id: str, revision: str, commit: str, name: str, incomplete: str, etag: str) -> str:
    """Move the finished file where huggingface_hub keeps it: blobs/<etag>, a snapshot link, a ref."""
    storage = _storage(repo_id)
    blob = storage / "blobs" / etag
    pointer = storage / "snapshots" / commit / name  # name, commit and etag were checked; links are not
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if not inside(storage, pointer.parent) or (pointer.exists() and not pointer.is_symlink() and pointer.is_dir()):
        raise UnsafeHubAnswerError(f"{pointer} leads outside the repository's cache folder: refusing to place it.")
    os.replace(incomplete, blob)
    if pointer.is_symlink() or pointer.exists():
        pointer.unlink()
    try:
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    except OSError:  # no symlinks (Windows without developer mode): huggingface_hub copies too
        shutil.copyfile(blob, pointer)
    if revision != commit:
        ref = storage / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        if inside(storage, ref.parent) and not ref.is_symlink():
            ref.write_text(commit)
    return str(pointer)


def _gb(n: int) -> str:
    from desktop_app.core.units import format_bytes

    return format_bytes(n)
