"""Search, quant listing with fit, and downloads against the local Hub stand-in (a real HTTP server)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from desktop_app.core.hub import HubGatedError, HubRepoNotFoundError, HubUnreachableError
from desktop_app.core.hub.download import (
    CorruptDownloadError,
    DiskFullError,
    DownloadCancelled,
    download_model,
)
from desktop_app.core.hub.quants import group_files, quant_name, repo_quants
from desktop_app.core.hub.search import search_models
from desktop_app.core.library import scan_library
from desktop_app.core.memory import Machine, RunSettings
from desktop_app.core.settings import Settings
from desktop_app.core.starter import StarterModel
from tests.gguf_factory import write_gguf

GiB = 1024**3
LAPTOP = Machine(ram_available_bytes=12 * GiB, ram_total_bytes=16 * GiB, cpu_features=("AVX2",))


def _sha(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def smol_repo(hub, starter_path, tmp_path):
    big = write_gguf(tmp_path / "SmolLM2-135M-Instruct-Q8_0.gguf", n_layers=2)
    hub.add_repo("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
                 {"smollm2-135m-instruct-q4_1.gguf": starter_path, "smollm2-135m-instruct-q8_0.gguf": big,
                  "README.md": tmp_path / "README.md"}, downloads=5000, likes=50, params=134_515_008)  # fmt: skip
    return "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"


@pytest.fixture(autouse=True)
def readme(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\n---\n# SmolLM2 GGUF\n\nA small model.\n")


def test_search_sorts_and_filters(hub, smol_repo, tmp_path):
    hub.add_repo("bartowski/Llama-3.2-1B-Instruct-GGUF", {"m-Q4_K_M.gguf": tmp_path / "README.md"}, downloads=90000,
                 likes=10, params=1_235_814_432)  # fmt: skip
    hub.add_repo("meta/Llama-3.2-1B", {"model.safetensors": tmp_path / "README.md"}, downloads=100, likes=900,
                 params=1_235_814_432)  # fmt: skip
    by_downloads = search_models("")
    assert [r.repo_id for r in by_downloads] == ["bartowski/Llama-3.2-1B-Instruct-GGUF", smol_repo]
    assert by_downloads[0].params == 1_235_814_432 and by_downloads[0].gguf
    assert [r.repo_id for r in search_models("", sort="likes")][0] == smol_repo
    assert [r.repo_id for r in search_models("llama", gguf_only=False)] == [
        "bartowski/Llama-3.2-1B-Instruct-GGUF", "meta/Llama-3.2-1B"]  # fmt: skip
    assert [r.repo_id for r in search_models("", author="bartowski")] == ["bartowski/Llama-3.2-1B-Instruct-GGUF"]
    assert search_models("", max_params=500_000_000)[0].repo_id == smol_repo


def test_quant_names_and_split_grouping():
    assert quant_name("Llama-3.2-1B-Instruct-Q4_K_M.gguf") == "Q4_K_M"
    assert quant_name("model.IQ4_XS.gguf") == "IQ4_XS"
    assert quant_name("qwen2.5-7b-instruct-fp16-00001-of-00004.gguf") == "?"
    assert quant_name("x-bf16.gguf") == "BF16"
    files = group_files([("a-Q8_0-00002-of-00002.gguf", 5, "b"), ("a-Q8_0-00001-of-00002.gguf", 7, "a"),
                         ("a-Q4_K_M.gguf", 3, "c"), ("mmproj-f16.gguf", 1, "d"), ("README.md", 1, "")])  # fmt: skip
    assert [(f.quant, f.size_bytes, f.shards, f.mmproj) for f in files] == [
        ("Q4_K_M", 3, 1, False), ("Q8_0", 12, 2, False), ("F16", 1, 1, True)]  # fmt: skip
    assert files[1].parts == ["a-Q8_0-00001-of-00002.gguf", "a-Q8_0-00002-of-00002.gguf"]


def test_repo_quants_with_fit_badges_from_remote_headers(hub, smol_repo):
    rq = repo_quants(smol_repo, LAPTOP, RunSettings(n_ctx=4096))
    assert [f.quant for f in rq.files] == ["Q8_0", "Q4_1"] or [f.quant for f in rq.files] == ["Q4_1", "Q8_0"]
    q41 = next(f for f in rq.files if f.quant == "Q4_1")
    assert q41.prediction.verdict == "cpu_only" and q41.sha256 == [hub.repos[smol_repo].sha256[q41.filename]]
    assert q41.bits_per_weight == pytest.approx(5.74, abs=0.01)
    assert q41.header_bytes_fetched < 0.02 * q41.size_bytes
    assert rq.license == "apache-2.0" and rq.card_markdown.startswith("# SmolLM2 GGUF")
    best, why = rq.recommended()
    assert best is not None and "largest quant that fits" in why


def test_download_is_verified_and_lands_in_the_hf_cache(hub, smol_repo, starter_path):
    seen = []
    result = download_model(smol_repo, ["smollm2-135m-instruct-q4_1.gguf"], progress=seen.append)
    assert os.path.realpath(result.path) != result.path  # a snapshot link to the blob, as huggingface_hub does
    assert result.sha256 == [_sha(starter_path)] and result.bytes == os.path.getsize(starter_path)
    assert not result.resumed
    assert seen and max(p.bytes_done for p in seen) == result.bytes  # hashed on the way: no second read
    # the library sees it, with its repo
    lib = scan_library(Settings(), starter=StarterModel(None, ""))
    assert lib.problems == [] and lib.folder_problems == []
    assert [(e.repo_id, e.file_name) for e in lib.models] == [(smol_repo, "smollm2-135m-instruct-q4_1.gguf")]


def test_cancel_then_resume(hub, smol_repo, starter_path):
    hub.throttle_bps = 40 * 1024 * 1024
    cancel = threading.Event()

    def progress(p):
        if p.bytes_done > 20 * 1024 * 1024:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        download_model(smol_repo, ["smollm2-135m-instruct-q4_1.gguf"], progress=progress, cancel=cancel)
    served = hub.served["smollm2-135m-instruct-q4_1.gguf"]
    hub.throttle_bps = 0
    result = download_model(smol_repo, ["smollm2-135m-instruct-q4_1.gguf"])
    assert result.resumed and result.sha256 == [_sha(starter_path)]
    total_served = hub.served["smollm2-135m-instruct-q4_1.gguf"]
    assert total_served - served < os.path.getsize(starter_path) - 10 * 1024 * 1024  # not fetched again


def test_killed_download_process_resumes_to_a_verified_file(hub, smol_repo, starter_path, tmp_path):
    hub.throttle_bps = 20 * 1024 * 1024
    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "desktop_app", "download", smol_repo, "--file",
                             "smollm2-135m-instruct-q4_1.gguf", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while hub.served["smollm2-135m-instruct-q4_1.gguf"] < 15 * 1024 * 1024 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()  # the process, not a mock
    proc.communicate()
    hub.throttle_bps = 0
    out = subprocess.run([sys.executable, "-m", "desktop_app", "download", smol_repo, "--file",
                          "smollm2-135m-instruct-q4_1.gguf", "--json"], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    import json

    data = json.loads(out.stdout)
    assert data["resumed"] is True and data["sha256"] == _sha(starter_path) and data["bytes"] == 98_362_432


def test_corrupted_transfer_is_detected_and_deleted(hub, smol_repo):
    hub.corrupt = True
    with pytest.raises(CorruptDownloadError, match="corrupted"):
        download_model(smol_repo, ["smollm2-135m-instruct-q4_1.gguf"])
    lib = scan_library(Settings(), starter=StarterModel(None, ""))
    assert lib.models == []  # nothing left looking complete


def test_server_lying_about_the_size(hub, smol_repo):
    hub.lie_about_size = 1000
    with pytest.raises(Exception, match="(?i)size|bytes"):
        download_model(smol_repo, ["smollm2-135m-instruct-q4_1.gguf"])
    assert scan_library(Settings(), starter=StarterModel(None, "")).models == []


def test_dropped_connection_is_retried(hub, smol_repo, starter_path):
    hub.drop_after = 5 * 1024 * 1024

    def heal():
        time.sleep(0.5)
        hub.drop_after = None

    threading.Thread(target=heal, daemon=True).start()
    result = download_model(smol_repo, ["smollm2-135m-instruct-q4_1.gguf"])
    assert result.sha256 == [_sha(starter_path)]


def test_errors_and_disk_space(hub, smol_repo, monkeypatch, starter_path):
    with pytest.raises(HubRepoNotFoundError):
        download_model("nobody/nothing", ["x.gguf"])
    hub.add_repo("me/gated", {"g.gguf": starter_path}, gated=True)
    with pytest.raises(HubGatedError, match="gated: accept its licence"):
        download_model("me/gated", ["g.gguf"])
    with pytest.raises(HubGatedError):
        download_model("me/gated", ["g.gguf"], token="hf_wrong")
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage._replace(free=10 * 1024 * 1024))
    with pytest.raises(DiskFullError, match="Not enough free disk space"):
        download_model(smol_repo, ["smollm2-135m-instruct-q4_1.gguf"])
    monkeypatch.undo()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(HubUnreachableError):
        download_model(smol_repo, ["smollm2-135m-instruct-q4_1.gguf"])


def test_gated_repo_with_the_token_from_the_keyring(hub, starter_path):
    from desktop_app.core.secrets import set_hf_token

    hub.add_repo("me/gated", {"g.gguf": starter_path}, gated=True)
    set_hf_token(hub.token)
    rq = repo_quants("me/gated", LAPTOP, RunSettings(n_ctx=4096))
    assert [f.quant for f in rq.files] == ["Q4_1"] and rq.files[0].prediction is not None
    result = download_model("me/gated", ["g.gguf"])
    assert Path(result.path).stat().st_size == Path(starter_path).stat().st_size


def test_disk_full_mid_download_keeps_what_was_fetched(hub, smol_repo, starter_path, monkeypatch):
    from desktop_app.core.hub import download as dl

    class FillsUp:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            if self._f.tell() + len(data) > 20 * 1024 * 1024:
                raise OSError(28, "No space left on device")
            return self._f.write(data)

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    real_open = dl._open_partial
    monkeypatch.setattr(dl, "_open_partial", lambda path: FillsUp(real_open(path)))
    name = "smollm2-135m-instruct-q4_1.gguf"
    with pytest.raises(DiskFullError, match="The disk filled up .* what was fetched is kept"):
        download_model(smol_repo, [name])
    [partial] = (dl._storage(smol_repo) / "blobs").glob("*.incomplete")
    assert 0 < partial.stat().st_size <= 20 * 1024 * 1024
    monkeypatch.setattr(dl, "_open_partial", real_open)  # space freed: resume
    result = download_model(smol_repo, [name])
    assert result.resumed and result.sha256 == [hub.repos[smol_repo].sha256[name]]
    assert hub.served[name] < 1.25 * os.path.getsize(starter_path)
