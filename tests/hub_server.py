"""A local stand-in for the Hugging Face Hub on 127.0.0.1: the routes huggingface_hub uses, over
real files, with Range support, LFS metadata headers and switchable failures."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


_sha_cache: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    """The file's sha256, remembered across tests.

    Sparse files (model headers written by ``write_model_header``, gigabytes of holes) are never
    downloaded in full by the tests; they get the hash of their first 16 MiB instead of 16 GB of zeros.
    """
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _sha_cache:
        sparse = st.st_blocks * 512 < st.st_size // 2
        h = hashlib.sha256()
        with open(path, "rb") as f:
            budget = 16 << 20 if sparse else st.st_size
            while budget > 0 and (chunk := f.read(min(1 << 22, budget))):
                h.update(chunk)
                budget -= len(chunk)
        _sha_cache[key] = h.hexdigest()
    return _sha_cache[key]


@dataclass
class Repo:
    files: dict[str, Path]
    gated: bool = False
    sha256: dict[str, str] = field(default_factory=dict)
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2026-01-01T00:00:00.000Z"
    params: int | None = None
    pipeline_tag: str = "text-generation"


def _card_data(repo: Repo) -> dict:
    readme = repo.files.get("README.md")
    if readme is None:
        return {}
    text = readme.read_text(errors="replace")
    m = re.match(r"^---\n(.*?)\n---", text, re.S)
    data = {}
    for line in m.group(1).splitlines() if m else []:
        key, _, value = line.partition(":")
        if value.strip():
            data[key.strip()] = value.strip()
    return data


class HubStandIn:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.served: dict[str, int] = defaultdict(int)  # body bytes sent per file
        self.requests: list[tuple[str, str, str]] = []  # (method, path, range)
        self.fail: dict[str, int] = {}  # path regex -> HTTP status to answer instead
        self.ignore_range = False
        self.throttle_bps = 0  # slow connections: bytes per second (0: as fast as possible)
        self.drop_after: int | None = None  # drop the connection after this many body bytes of a file
        self.corrupt = False  # flip a byte in every file body sent
        self.lie_about_size = 0  # announce this many extra bytes
        # a server that lies (the attacks tests/core/test_hub_security.py tries)
        self.etag_override: str | None = None  # sent as ETag / X-Linked-Etag instead of the sha256
        self.commit_override: str | None = None  # sent as X-Repo-Commit
        self.endless_body = False  # no Content-Length, and junk after the file, forever
        self.redirect_to: str | None = None  # answer file requests with a 302 to this other server
        self.paths_info_lfs = True  # paths-info tells the LFS sha256
        self.auth_seen: list[tuple[str, str | None]] = []  # (path, Authorization) of every request
        self.token = "hf_StandInToken0123456789"  # the one token gated repos accept
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HubStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_repo(self, repo_id: str, files: dict[str, Path], *, gated: bool = False, **meta) -> None:
        sha = {name: _sha256(Path(p)) for name, p in files.items()}
        self.repos[repo_id] = Repo({k: Path(v) for k, v in files.items()}, gated, sha, **meta)

    # -- HTTP ----------------------------------------------------------------------------------
    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _json(self, obj, status=200):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status, code=""):
                body = json.dumps({"error": f"status {status}"}).encode()
                self.send_response(status)
                if code:
                    self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                self._route()

            def do_GET(self):
                self._route()

            def do_POST(self):
                from urllib.parse import parse_qs

                path = unquote(urlparse(self.path).path)
                hub.requests.append(("POST", path, ""))
                hub.auth_seen.append((path, self.headers.get("Authorization")))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                m = re.match(r"^/api/models/([^/]+/[^/]+)/paths-info/([^/]+)$", path)
                if not m:
                    return self._error(404, "EntryNotFound")
                repo = self._repo(m.group(1))
                if repo is None:
                    return
                wanted = parse_qs(body).get("paths", [])
                items = []
                for name in wanted:
                    p = repo.files.get(name)
                    if p is None:
                        continue
                    item = {"type": "file", "path": name, "size": p.stat().st_size, "oid": repo.sha256[name][:40]}
                    if hub.paths_info_lfs:
                        item["lfs"] = {"oid": repo.sha256[name], "size": p.stat().st_size, "pointerSize": 134}
                    items.append(item)
                self._json(items)

            def _route(self):
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path, self.headers.get("Range", "")))
                hub.auth_seen.append((path, self.headers.get("Authorization")))
                for pattern, status in hub.fail.items():
                    if re.search(pattern, path):
                        return self._error(status)
                if path == "/api/models":
                    return self._search()
                m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?$", path)
                if m:
                    return self._tree(m.group(1))
                m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$", path)
                if m:
                    return self._info(m.group(1))
                m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
                if m:
                    return self._resolve(m.group(1), m.group(3))
                return self._error(404, "EntryNotFound")

            def _search(self):
                from urllib.parse import parse_qs

                q = parse_qs(urlparse(self.path).query)
                search = (q.get("search") or [""])[0].lower()
                author = (q.get("author") or [""])[0]
                sort = (q.get("sort") or ["downloads"])[0]
                limit = int((q.get("limit") or ["30"])[0])
                filters = q.get("filter") or []
                items = []
                for rid, repo in hub.repos.items():
                    if search and search not in rid.lower():
                        continue
                    if author and not rid.startswith(author + "/"):
                        continue
                    has_gguf = any(n.endswith(".gguf") for n in repo.files)
                    if "gguf" in filters and not has_gguf:
                        continue
                    item = {
                        "id": rid, "modelId": rid, "downloads": repo.downloads, "likes": repo.likes,
                        "lastModified": repo.last_modified, "pipeline_tag": repo.pipeline_tag,
                        "gated": "auto" if repo.gated else False,
                        "tags": ["gguf"] if has_gguf else ["safetensors"],
                    }  # fmt: skip
                    if repo.params and has_gguf:
                        item["gguf"] = {"total": repo.params, "architecture": "llama"}
                    elif repo.params:
                        item["safetensors"] = {"total": repo.params, "parameters": {"BF16": repo.params}}
                    items.append(item)
                keys = {"downloads": "downloads", "likes": "likes", "trending_score": "likes",
                        "last_modified": "lastModified", "lastModified": "lastModified"}  # fmt: skip
                key = keys.get(sort, "downloads")
                items.sort(key=lambda it: it[key], reverse=True)
                self._json(items[:limit])

            def _repo(self, repo_id):
                repo = hub.repos.get(repo_id)
                if repo is None:
                    self._error(404, "RepoNotFound")
                    return None
                if repo.gated and self.headers.get("Authorization") != f"Bearer {hub.token}":
                    self._error(401, "GatedRepo")
                    return None
                return repo

            def _tree(self, repo_id):
                repo = self._repo(repo_id)
                if repo is None:
                    return
                items = [
                    {
                        "type": "file",
                        "path": name,
                        "size": p.stat().st_size,
                        "oid": repo.sha256[name][:40],
                        "lfs": {"oid": repo.sha256[name], "size": p.stat().st_size, "pointerSize": 134},
                    }
                    for name, p in sorted(repo.files.items())
                ]
                self._json(items)

            def _info(self, repo_id):
                repo = self._repo(repo_id)
                if repo is None:
                    return
                self._json(
                    {
                        "id": repo_id,
                        "modelId": repo_id,
                        "sha": COMMIT,
                        "gated": "auto" if repo.gated else False,
                        "private": False,
                        "siblings": [
                            {
                                "rfilename": n,
                                "size": p.stat().st_size,
                                "lfs": {"sha256": repo.sha256[n], "size": p.stat().st_size, "pointerSize": 134},
                            }
                            for n, p in sorted(repo.files.items())
                        ],  # fmt: skip
                        "cardData": _card_data(repo),
                    }
                )

            def _resolve(self, repo_id, name):
                repo = self._repo(repo_id)
                if repo is None:
                    return
                p = repo.files.get(name)
                if p is None:
                    return self._error(404, "EntryNotFound")
                if hub.redirect_to:  # as the Hub sends LFS files to its CDN: the metadata on the redirect
                    self.send_response(302)
                    self.send_header("Location", hub.redirect_to.rstrip("/") + self.path)
                    self.send_header("X-Linked-Etag", f'"{repo.sha256[name]}"')
                    self.send_header("X-Linked-Size", str(p.stat().st_size))
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = p.stat().st_size
                start, end = 0, size - 1
                rng = self.headers.get("Range")
                partial = False
                if rng and not hub.ignore_range:
                    m = re.match(r"bytes=(\d+)-(\d*)", rng)
                    if m:
                        start = int(m.group(1))
                        end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
                        partial = True
                        if start >= size:
                            self.send_response(416)
                            self.send_header("Content-Range", f"bytes */{size}")
                            self.send_header("Content-Length", "0")
                            self.end_headers()
                            return
                self.send_response(206 if partial else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Accept-Ranges", "bytes")
                etag = hub.etag_override if hub.etag_override is not None else repo.sha256[name]
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(size + hub.lie_about_size))
                self.send_header("X-Repo-Commit", hub.commit_override or COMMIT)
                if partial:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                if hub.endless_body and self.command != "HEAD":
                    self.close_connection = True  # the body ends when the connection does: never
                else:
                    self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if hub.endless_body:
                    with open(p, "rb") as f:
                        f.seek(start)
                        data = f.read()
                    junk = b"\0" * (1 << 20)
                    try:
                        self.wfile.write(data)
                        hub.served[name] += len(data)
                        for _ in range(100_000):  # up to ~100 GB, or until the client hangs up
                            self.wfile.write(junk)
                            hub.served[name] += len(junk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                step = 1 << 20
                if hub.throttle_bps:
                    step = max(1024, hub.throttle_bps // 20)
                sent = 0
                with open(p, "rb") as f:
                    f.seek(start)
                    left = end - start + 1
                    while left > 0:
                        chunk = f.read(min(left, step))
                        if not chunk:
                            break
                        if hub.corrupt and sent == 0 and start == 0:
                            chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                        if hub.drop_after is not None and sent + len(chunk) > hub.drop_after:
                            chunk = chunk[: max(hub.drop_after - sent, 0)]
                            try:
                                self.wfile.write(chunk)
                                self.wfile.flush()
                            except (BrokenPipeError, ConnectionResetError):
                                pass
                            hub.served[name] += len(chunk)
                            self.close_connection = True
                            self.connection.shutdown(2)
                            return
                        try:
                            self.wfile.write(chunk)
                        except (BrokenPipeError, ConnectionResetError):
                            return
                        hub.served[name] += len(chunk)
                        sent += len(chunk)
                        left -= len(chunk)
                        if hub.throttle_bps:
                            time.sleep(len(chunk) / hub.throttle_bps)

        return Handler
