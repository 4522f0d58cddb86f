"""The whole job: a Hub repo or a folder → converted → quantized, the disk planned first, and the
command line's contract (``quantdesk convert ... --json``)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest
from gguf import GGUFReader

from desktop_app.core.convert.hub_checkpoint import check_content, checkpoint_files
from desktop_app.core.convert.pipeline import ConvertRequest, JobProgress, disk_plan, run
from desktop_app.core.errors import Cancelled, CheckpointError, UnsafeHubAnswerError
from tests.hf_factory import random_checkpoint
from tests.test_cli import quantdesk

pytestmark = pytest.mark.slow


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return random_checkpoint(tmp_path / "hf" / "Tiny-Llama", "llama", layers=2)


def _serve(hub, repo_id: str, folder: Path) -> None:
    hub.add_repo(repo_id, {p.name: p for p in folder.iterdir() if p.is_file()})


def test_a_hub_repo_downloads_converts_and_quantizes(hub, checkpoint, tmp_path):
    _serve(hub, "acme/Tiny-Llama", checkpoint)
    out = tmp_path / "out"
    req = ConvertRequest("acme/Tiny-Llama", str(out), quant="Q8_0")
    space = disk_plan(req)
    assert space.download_bytes == (checkpoint / "model.safetensors").stat().st_size
    assert space.ok and 0 < space.final_bytes < space.intermediate_bytes
    assert space.shared_disk, "tmp and the HF cache share a disk here: the download counts"
    assert space.peak_bytes == space.download_bytes + space.intermediate_bytes + space.final_bytes
    assert "to the Hugging Face cache on the same disk" in space.describe()
    phases: list[JobProgress] = []
    result = run(req, progress=phases.append)
    assert [p.name for p in out.iterdir()] == ["Tiny-Llama-Q8_0.gguf"], "the intermediate F16 is deleted"
    assert {p.phase for p in phases} == {"download", "convert", "quantize"}
    assert result.quant == "Q8_0" and result.bytes == Path(result.path).stat().st_size
    assert result.sha256 == hashlib.sha256(Path(result.path).read_bytes()).hexdigest()
    assert result.bytes <= space.final_bytes <= 1.2 * result.bytes + 65536, (space.final_bytes, result.bytes)
    reader = GGUFReader(result.path)
    assert reader.fields["general.architecture"].contents() == "llama"


def test_the_intermediate_is_kept_when_asked_and_a_float_gguf_is_quantized_directly(checkpoint, tmp_path):
    out = tmp_path / "out"
    result = run(ConvertRequest(str(checkpoint), str(out), quant="Q4_K_S", keep_intermediate=True))
    assert result.intermediate and Path(result.intermediate).name == "Tiny-Llama-F16.gguf"
    again = run(ConvertRequest(result.intermediate, str(tmp_path / "again"), quant="Q8_0"))
    assert Path(again.path).name == "Tiny-Llama-F16-Q8_0.gguf" and again.outtype == "f16"
    with pytest.raises(CheckpointError, match="is already quantized"):
        disk_plan(ConvertRequest(again.path, str(tmp_path / "x"), quant="Q4_K_M"))


def test_not_enough_disk_is_said_before_anything_starts(checkpoint, tmp_path, monkeypatch):
    from desktop_app.core.convert import pipeline

    monkeypatch.setattr(pipeline.shutil, "disk_usage", lambda _p: type("U", (), {"free": 10_000})())
    with pytest.raises(CheckpointError, match="Not enough disk space .* needs"):
        run(ConvertRequest(str(checkpoint), str(tmp_path / "out"), quant="Q8_0"))
    assert list((tmp_path / "out").iterdir()) == []


def test_cancel_while_quantizing_leaves_nothing(checkpoint, tmp_path):
    cancel = threading.Event()

    def progress(p: JobProgress) -> None:
        if p.phase == "quantize":
            cancel.set()

    with pytest.raises(Cancelled):
        run(ConvertRequest(str(checkpoint), str(tmp_path / "out"), quant="Q4_K_M"), progress=progress, cancel=cancel)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_repo_without_weights_or_with_a_bad_index_is_refused(hub, checkpoint, tmp_path):
    files = {p.name: p for p in checkpoint.iterdir() if p.name != "model.safetensors"}
    hub.add_repo("acme/no-weights", files)
    with pytest.raises(CheckpointError, match="no model\\*.safetensors"):
        checkpoint_files("acme/no-weights")
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "../../etc/passwd"}}))
    hub.add_repo("acme/evil-index", {**files, "model.safetensors.index.json": index})
    with pytest.raises(Exception, match="passwd|not a plain|unsafe|name"):
        checkpoint_files("acme/evil-index")


def test_small_files_are_checked_against_the_git_blob_id_or_sha256(tmp_path):
    f = tmp_path / "config.json"
    f.write_bytes(b'{"a": 1}')
    blob = hashlib.sha1(b"blob 8\0" + f.read_bytes()).hexdigest()
    check_content(f, f'"{blob}"', 8, "config.json")
    check_content(f, hashlib.sha256(f.read_bytes()).hexdigest(), 8, "config.json")
    with pytest.raises(UnsafeHubAnswerError, match="did not match"):
        check_content(f, "0" * 40, 8, "config.json")
    assert not f.exists(), "a file that does not match is deleted"


def test_the_command_line_converts_and_prints_the_contract(checkpoint, tmp_path):
    out = tmp_path / "model.gguf"
    done = quantdesk("convert", str(checkpoint), "--outtype", "bf16", "--outfile", str(out), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) >= {"path", "bytes", "sha256", "outtype", "quant", "seconds"}
    assert data["path"] == str(out) and data["outtype"] == "bf16" and data["quant"] is None
    assert data["bytes"] == out.stat().st_size
    bad = quantdesk("convert", str(tmp_path / "nowhere"), "--json")
    assert bad.returncode == 2 and "is not a folder, a GGUF file or a Hugging Face repo" in bad.stderr
