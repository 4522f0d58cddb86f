"""Download what converting a Hub repo needs, into the Hugging Face cache, verified.

The weights go through the app's resumable, sha256-verified downloader. The small files (config,
tokenizer, template) are not LFS files on the Hub: their ETag is the git blob id, so they are checked
against that (``sha1("blob <size>\\0" + content)``) instead. Which files to fetch is decided here from a
fixed list and the weight index, never from names the server makes up; every name still passes the
downloader's own checks.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

from desktop_app.core.errors import CheckpointError, DownloadCancelled, UnsafeHubAnswerError
from desktop_app.core.hub.download import DownloadProgress, download_model
from desktop_app.core.hub.errors import endpoint, translate_errors
from desktop_app.core.hub.safety import check_filename, check_repo_id, check_size, sha256_or_none

SMALL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
               "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "chat_template.json",
               "model.safetensors.index.json")  # fmt: skip
MAX_SMALL_BYTES = 64 * 1024 * 1024
_GIT_OID = 40


def _siblings(repo_id: str, token: str | None) -> dict[str, int]:
    from huggingface_hub import HfApi

    from desktop_app.core.secrets import get_hf_token

    api = HfApi(endpoint=endpoint(), token=token or get_hf_token())
    info = translate_errors(repo_id, functools.partial(api.model_info, repo_id, files_metadata=True))
    return {s.rfilename: int(s.size or 0) for s in info.siblings or [] if isinstance(s.rfilename, str)}


def _weight_files(repo_id: str, names: dict[str, int], token: str | None) -> list[str]:
    """The shards the index names, or the top-level ``model*.safetensors`` when there is no index
    (as llama.cpp's converter picks them: not consolidated.safetensors beside them)."""
    if "model.safetensors.index.json" in names:
        index = json.loads(fetch_small(repo_id, "model.safetensors.index.json", token=token).read_text("utf-8"))
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{repo_id}'s model.safetensors.index.json has no weight map; it cannot be used.")
        shards = sorted({v for v in weight_map.values() if isinstance(v, str)})
    else:
        shards = sorted(n for n in names if "/" not in n and n.startswith("model") and n.endswith(".safetensors"))
    if not shards:
        raise CheckpointError(f"{repo_id} has no model*.safetensors weights to convert.")
    for name in shards:
        check_filename(name, repo_id)
        if name not in names:
            raise CheckpointError(f"{repo_id}'s index names {name}, which the repo does not have.")
    return shards


def checkpoint_files(repo_id: str, *, token: str | None = None) -> list[tuple[str, int]]:
    """The weight files converting ``repo_id`` downloads, with their sizes."""
    check_repo_id(repo_id)
    names = _siblings(repo_id, token)
    return [(n, names[n]) for n in _weight_files(repo_id, names, token)]


def fetch_small(repo_id: str, name: str, *, token: str | None = None, revision: str = "main") -> Path:
    """One small file of the repo in the HF cache, checked against its git blob id or sha256."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    from desktop_app.core.paths import hf_hub_cache_dir
    from desktop_app.core.secrets import get_hf_token

    check_filename(name, repo_id)
    tok = token or get_hf_token()
    url = hf_hub_url(repo_id, name, revision=revision, endpoint=endpoint())
    meta = translate_errors(f"{repo_id}/{name}", functools.partial(get_hf_file_metadata, url, token=tok))
    size = check_size(meta.size, name)
    if size > MAX_SMALL_BYTES:
        raise UnsafeHubAnswerError(f"{name} is {size:,} bytes, far more than such a file holds: not downloading it.")
    path = Path(translate_errors(f"{repo_id}/{name}", functools.partial(
        hf_hub_download, repo_id, name, revision=meta.commit_hash or revision, token=tok, endpoint=endpoint(),
        cache_dir=hf_hub_cache_dir())))  # fmt: skip
    check_content(path, meta.etag or "", size, name)
    return path


def check_content(path: Path, etag: str, size: int, name: str) -> None:
    """The file is what the Hub said: its size, and its sha256 (LFS) or git blob id (plain files)."""
    data = path.read_bytes()
    tag = etag.strip('"').removeprefix("W/").strip('"').lower()
    ok = len(data) == size
    if ok and (sha := sha256_or_none(tag)) is not None:
        ok = hashlib.sha256(data).hexdigest() == sha
    elif ok and len(tag) == _GIT_OID and all(c in "0123456789abcdef" for c in tag):
        ok = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest() == tag
    if not ok:
        path.resolve().unlink(missing_ok=True)  # the blob, then the snapshot's link to it
        path.unlink(missing_ok=True)
        raise UnsafeHubAnswerError(
            f"{name} did not match what the Hub said it is (size or hash); it was deleted. Try again; if it "
            "keeps happening, the mirror or proxy is serving bad files."
        )


def download_checkpoint(repo_id: str, *, token: str | None = None,
                        progress: Callable[[DownloadProgress], None] | None = None,
                        cancel: threading.Event | None = None) -> Path:  # fmt: skip
    """The checkpoint folder (the repo's snapshot in the HF cache) with everything converting needs.

    Raises:
        DownloadCancelled (the weights' partial download stays, to resume), HubError, CheckpointError.
    """
    check_repo_id(repo_id)
    names = _siblings(repo_id, token)
    folder: Path | None = None
    for name in SMALL_FILES:
        if name in names:
            folder = fetch_small(repo_id, name, token=token).parent
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled("Download cancelled.")
    if folder is None or "config.json" not in names:
        raise CheckpointError(f"{repo_id} has no config.json; it is not a checkpoint QuantDesk can convert.")
    result = download_model(repo_id, _weight_files(repo_id, names, token), token=token, progress=progress,
                            cancel=cancel)  # fmt: skip
    weights = Path(result.path).parent
    if weights != folder:
        raise CheckpointError(f"{repo_id} changed while downloading (a new commit); start again.")
    return folder
