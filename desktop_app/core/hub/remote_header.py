"""Read a GGUF header on the Hub with HTTP Range requests, without downloading the model.

The first request asks for 256 KiB; when the header is longer the parser estimates where it ends
(from the vocabulary strings seen so far) and one more request usually finishes it. Every part of
a split GGUF is read. Parsed headers are cached on disk by repo, file and ETag (the file's content
hash), so asking again costs one HEAD request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from desktop_app.core.gguf import GGUFArray, GGUFHeader, NeedMoreBytes, TensorInfo, parse_gguf_header
from desktop_app.core.gguf.split import is_first_part, part_names
from desktop_app.core.hub.errors import HubError, HubFileNotFoundError, endpoint, translate_errors
from desktop_app.core.paths import app_paths, write_text_atomic

log = logging.getLogger(__name__)
FIRST_CHUNK = 256 * 1024
CACHE_VERSION = 1


@dataclass
class RemoteHeaders:
    repo_id: str
    filename: str  # the first part
    filenames: list[str]
    revision: str  # commit hash the headers were read at
    headers: list[GGUFHeader]
    bytes_fetched: int  # body bytes downloaded for this call (0 when all came from the cache)
    from_cache: bool

    @property
    def file_bytes(self) -> int:
        return sum(h.file_bytes for h in self.headers)


def _token(token: str | None) -> str | None:
    if token:
        return token
    from desktop_app.core.secrets import get_hf_token

    return get_hf_token()


# Headers are fetched in parallel but parsed one at a time: parsing is pure Python and holds the GIL,
# and eight parsing threads would each take their turn before the GUI thread gets it back.
_PARSE_LOCK = threading.Lock()


def _cache_dir() -> Path:
    return app_paths().cache_dir / "remote-headers"


def header_to_json(h: GGUFHeader) -> dict:
    def enc(v):
        if isinstance(v, GGUFArray):
            return {"__gguf_array__": [v.item_type, v.count]}
        if isinstance(v, list):
            return [enc(x) for x in v]
        return v

    return {
        "version": h.version,
        "alignment": h.alignment,
        "header_bytes": h.header_bytes,
        "file_bytes": h.file_bytes,
        "value_types": h.value_types,
        "metadata": {k: enc(v) for k, v in h.metadata.items()},
        "tensors": [[t.name, list(t.shape), t.type_id, t.offset] for t in h.tensors],
    }


def header_from_json(d: dict) -> GGUFHeader:
    def dec(v):
        if isinstance(v, dict) and "__gguf_array__" in v:
            return GGUFArray(*v["__gguf_array__"])
        if isinstance(v, list):
            return [dec(x) for x in v]
        return v

    return GGUFHeader(
        version=d["version"],
        metadata={k: dec(v) for k, v in d["metadata"].items()},
        tensors=[TensorInfo(n, tuple(s), t, o) for n, s, t, o in d["tensors"]],
        alignment=d["alignment"],
        header_bytes=d["header_bytes"],
        file_bytes=d["file_bytes"],
        value_types=d["value_types"],
    )


def _cache_path(repo_id: str, filename: str, etag: str) -> Path:
    key = hashlib.sha256(f"{repo_id}\0{filename}\0{etag}".encode()).hexdigest()[:40]
    return _cache_dir() / f"{key}.json"


def _read_cache(path: Path) -> GGUFHeader | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("cache_version") == CACHE_VERSION:
            return header_from_json(data["header"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_cache(path: Path, header: GGUFHeader) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps({"cache_version": CACHE_VERSION, "header": header_to_json(header)}))
    except OSError as exc:
        log.warning("could not cache a remote header: %s", exc)


def fetch_file_header(
    repo_id: str, filename: str, *, revision: str = "main", token: str | None = None
) -> tuple[GGUFHeader, str, int, bool]:
    """One file's header: (header, commit hash, body bytes fetched, from cache).

    Raises:
        HubError and subclasses; NotAGGUFError and friends when the file is not a usable GGUF.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session

    tok = _token(token)
    where = f"{repo_id}/{filename}"
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint())
    meta = translate_errors(where, lambda: get_hf_file_metadata(url, token=tok, endpoint=endpoint()))
    size = meta.size
    if not size:
        raise HubError(f"{where}: the Hub did not say how large the file is, so its header cannot be read.")
    etag = meta.etag or ""
    cache_path = _cache_path(repo_id, filename, etag) if etag else None
    if cache_path is not None:
        cached = _read_cache(cache_path)
        if cached is not None and cached.file_bytes == size:
            return cached, meta.commit_hash or revision, 0, True

    session = get_session()
    location = meta.location or url
    headers = build_hf_headers(token=tok)
    buf = bytearray()
    fetched = 0
    want = min(FIRST_CHUNK, size)
    while True:
        start, end = len(buf), want - 1

        def get(start=start, end=end):
            r = session.get(location, headers={**headers, "Range": f"bytes={start}-{end}"}, follow_redirects=True)
            if r.status_code == 404:
                from huggingface_hub.errors import EntryNotFoundError

                raise EntryNotFoundError(f"{where} not found")
            r.raise_for_status()
            return r

        resp = translate_errors(where, get)
        body = resp.content
        if resp.status_code == 200 and start == 0:
            body = body[: end + 1]  # a server without Range support sent everything; keep what we asked for
        elif resp.status_code != 206:
            raise HubError(f"{where}: the server ignored the byte range (status {resp.status_code}).")
        if not body:
            raise HubError(f"{where}: the server sent no data for bytes {start}-{end}.")
        buf += body
        fetched += len(body)
        try:
            with _PARSE_LOCK:  # see _PARSE_LOCK
                header = parse_gguf_header(bytes(buf), file_bytes=size, name=filename)
            break
        except NeedMoreBytes as more:
            # the estimate only sees the array it stopped in (the vocabulary's token types and merges
            # may follow): ask for up to half as much again (at most 0.1 % of the file), to finish
            # in one more round trip rather than three
            slack = min(more.estimate // 2, size // 1000)
            want = min(size, max(more.estimate + slack, more.needed, len(buf) + 64 * 1024))
            if want <= len(buf):
                raise HubError(f"{where}: the header could not be read from the bytes the server sent.") from None
    if cache_path is not None:
        _write_cache(cache_path, header)
    return header, meta.commit_hash or revision, fetched, False


def list_gguf_files(repo_id: str, *, revision: str = "main", token: str | None = None) -> list[str]:
    """The repo's .gguf files (all parts), sorted."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint(), token=_token(token))
    files = translate_errors(repo_id, lambda: api.list_repo_files(repo_id, revision=revision))
    return sorted(f for f in files if f.lower().endswith(".gguf"))


def _pick_file(repo_id: str, files: list[str]) -> str:
    models = [f for f in files if "mmproj" not in f.lower()]
    firsts = [f for f in models if is_first_part(f)]
    if not firsts:
        raise HubFileNotFoundError(f"{repo_id} has no GGUF files. Pick a repo with GGUF quants (or convert).")
    if len(firsts) == 1:
        return firsts[0]
    for pref in ("Q4_K_M", "q4_k_m"):
        hit = [f for f in firsts if pref in f]
        if hit:
            return hit[0]
    raise HubFileNotFoundError(
        f"{repo_id} has {len(firsts)} GGUF files; name one as {repo_id}:FILE, e.g. {repo_id}:{firsts[0]}"
    )


def fetch_model_headers(
    repo_id: str, filename: str | None = None, *, revision: str = "main", token: str | None = None
) -> RemoteHeaders:
    """The headers of every part of a Hub model. Without ``filename``, the repo's only GGUF
    (or its Q4_K_M) is used.

    Raises:
        HubError and subclasses; GGUFError subclasses for files that are not usable GGUFs.
    """
    if filename is None:
        filename = _pick_file(repo_id, list_gguf_files(repo_id, revision=revision, token=token))
    names = part_names(filename)
    headers, fetched, cached, commit = [], 0, True, revision
    for name in names:
        h, commit, n, from_cache = fetch_file_header(repo_id, name, revision=revision, token=token)
        headers.append(h)
        fetched += n
        cached = cached and from_cache
    return RemoteHeaders(repo_id, names[0], names, commit, headers, fetched, cached)
