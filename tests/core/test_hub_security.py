"""A Hub server that lies cannot steer a download outside the cache, fill the disk, or get the token.

Each attack here was found by a campaign against the app (a hostile server at HF_ENDPOINT, a cache
someone planted links in); each must end in a clear message with nothing written where it should
not be, or, where the lie is harmless once checked, in a correct verified file.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from desktop_app.core.errors import UnsafeHubAnswerError
from desktop_app.core.hub.download import _storage, download_model
from desktop_app.core.hub.safety import check_filename, inside, same_origin
from tests.gguf_factory import write_gguf

REPO = "evil/model-GGUF"
NAME = "model-Q4_K_M.gguf"


@pytest.fixture
def model_file(tmp_path) -> Path:
    (tmp_path / "src").mkdir()
    return write_gguf(tmp_path / "src" / NAME, n_layers=2)


@pytest.fixture
def repo(hub, model_file):
    hub.add_repo(REPO, {NAME: model_file})
    return REPO


@pytest.fixture
def victim(tmp_path) -> Path:
    p = tmp_path / "home" / "victim.sh"
    p.parent.mkdir(parents=True)
    p.write_text("echo the user's own file\n")
    return p


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _everything_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} if root.exists() else set()


def test_an_etag_that_is_a_path_is_not_used_as_one(hub, repo, model_file, victim, tmp_path):
    hub.etag_override = "../../../../" + str(victim).lstrip("/")
    before = victim.read_text()
    result = download_model(repo, [NAME])  # the sha256 comes from the Hub's LFS record instead
    assert victim.read_text() == before
    assert result.sha256 == [_sha(model_file)] and _sha(Path(result.path)) == _sha(model_file)
    assert inside(os.environ["HF_HOME"], os.path.realpath(result.path))
    assert any(p.endswith("/paths-info/" + "0123456789abcdef0123456789abcdef01234567") for _m, p, _r in hub.requests)


def test_without_a_sha256_anywhere_nothing_is_downloaded(hub, repo):
    hub.etag_override = "not-a-checksum"
    hub.paths_info_lfs = False
    with pytest.raises(UnsafeHubAnswerError, match="no sha256 .* cannot be verified"):
        download_model(repo, [NAME])
    assert not list((_storage(repo) / "blobs").glob("*")) if (_storage(repo) / "blobs").exists() else True


BAD_NAMES = ["/tmp/evil.gguf", "../../escape.gguf", "sub/../../x.gguf", "a\\..\\b.gguf", "c:x.gguf", "", "x\0.gguf",
             "a//b.gguf"]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES)
def test_file_names_that_leave_the_folder_are_refused(hub, model_file, name, tmp_path):
    hub.add_repo(REPO, {name: model_file})
    home = Path(os.environ["HF_HOME"])
    with pytest.raises(UnsafeHubAnswerError, match="not a safe relative path"):
        download_model(REPO, [name])
    assert not _everything_under(home / "hub")  # nothing written, not even a folder
    assert not any(m == "GET" for m, _p, _r in hub.requests)


def test_safe_names_with_folders_are_fine():
    assert check_filename("Q4_K_M/model-00001-of-00002.gguf") == "Q4_K_M/model-00001-of-00002.gguf"


def test_a_commit_that_is_a_path_is_refused(hub, repo, tmp_path):
    hub.commit_override = "../../../outside"
    with pytest.raises(UnsafeHubAnswerError, match="malformed commit"):
        download_model(repo, [NAME])
    assert not (Path(os.environ["HF_HOME"]) / "outside").exists() and not (tmp_path / "outside").exists()
    assert not _everything_under(Path(os.environ["HF_HOME"]) / "hub")


def test_a_body_without_length_stops_at_the_announced_size(hub, repo, model_file):
    hub.endless_body = True
    t0 = time.perf_counter()
    result = download_model(repo, [NAME])
    took = time.perf_counter() - t0
    size = model_file.stat().st_size
    assert os.path.getsize(result.path) == size and _sha(Path(result.path)) == _sha(model_file)
    assert took < 10  # read up to the size and hung up, instead of writing gigabytes


def test_the_token_does_not_follow_a_redirect_to_another_host(hub, repo, model_file, isolated_env):
    from tests.hub_server import HubStandIn

    elsewhere = HubStandIn().start()
    try:
        elsewhere.add_repo(REPO, {NAME: model_file})
        hub.redirect_to = elsewhere.url
        result = download_model(repo, [NAME], token=hub.token)
        assert _sha(Path(result.path)) == _sha(model_file)
        assert any(auth == f"Bearer {hub.token}" for _p, auth in hub.auth_seen)  # the Hub got it
        assert elsewhere.auth_seen and all(auth is None for _p, auth in elsewhere.auth_seen)  # the other host did not
    finally:
        elsewhere.stop()


def test_a_link_planted_at_the_partial_file_is_not_written_through(hub, repo, model_file, victim):
    blobs = _storage(repo) / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{_sha(model_file)}.incomplete").symlink_to(victim)
    before = victim.read_text()
    with pytest.raises(UnsafeHubAnswerError, match="link or not a plain file"):
        download_model(repo, [NAME])
    assert victim.read_text() == before


def test_a_linked_snapshot_folder_does_not_lead_outside(hub, model_file, tmp_path, victim):
    name = "sub/" + NAME
    hub.add_repo(REPO, {name: model_file})
    snap = _storage(REPO) / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snap.mkdir(parents=True)
    (snap / "sub").symlink_to(victim.parent)
    with pytest.raises(UnsafeHubAnswerError, match="leads outside"):
        download_model(REPO, [name])
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim.sh"]


def test_origins():
    assert same_origin("https://huggingface.co/a", "https://huggingface.co:443/b")
    assert not same_origin("https://huggingface.co/a", "https://cdn-lfs.huggingface.co/a")
    assert not same_origin("http://127.0.0.1:8000/a", "http://127.0.0.1:8001/a")
    assert not same_origin("https://huggingface.co/a", "http://huggingface.co/a")
