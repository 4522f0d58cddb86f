"""Hugging Face checkpoint → GGUF: the starter round-trips to the byte, every architecture loads and runs
in llama.cpp, and bad checkpoints are refused with a message and nothing left behind."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader

from desktop_app.core.convert import converter
from desktop_app.core.convert.converter import ConvertProgress, convert, plan
from desktop_app.core.errors import Cancelled, CheckpointError
from desktop_app.core.quantize import quantize
from tests.hf_factory import random_checkpoint, starter_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def starter_f16(tmp_path_factory, starter_path) -> str:
    path = tmp_path_factory.mktemp("f16") / "smollm2-f16.gguf"
    quantize(starter_path, str(path), "F16")  # dequantizes Q4_1 (allow_requantize)
    return str(path)


@pytest.fixture(scope="module")
def starter_hf(tmp_path_factory, starter_f16) -> Path:
    return starter_checkpoint(tmp_path_factory.mktemp("hf") / "SmolLM2-135M-Instruct", starter_f16, shards=2)


def _no_output(folder: Path) -> None:
    assert [p.name for p in folder.iterdir()] == [], "a failed conversion left files behind"


def _logits(llama_cls, path: str, text: str) -> np.ndarray:
    llm = llama_cls(model_path=path, n_ctx=64, logits_all=True, verbose=False)
    try:
        tokens = llm.tokenize(text.encode(), add_bos=False)
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)]), tokens
    finally:
        llm.close()


def test_the_starter_round_trips_to_the_byte(starter_hf, starter_f16, tmp_path, plain_llama):
    seen: list[ConvertProgress] = []
    result = convert(starter_hf, tmp_path / "out.gguf", "f16", progress=seen.append)
    assert result.bytes == (tmp_path / "out.gguf").stat().st_size and len(result.sha256) == 64
    assert seen[-1].done_bytes == seen[-1].total_bytes > 0 and len(seen) == 272
    ours, original = GGUFReader(result.path), GGUFReader(starter_f16)
    theirs = {t.name: t for t in original.tensors}
    assert sorted(t.name for t in ours.tensors) == sorted(theirs)
    for t in ours.tensors:
        assert t.tensor_type == theirs[t.name].tensor_type, t.name
        assert bytes(t.data) == bytes(theirs[t.name].data), t.name
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.ggml.pre",
                "tokenizer.chat_template", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                "llama.rope.freq_base", "llama.attention.head_count_kv", "llama.context_length"):  # fmt: skip
        assert ours.fields[key].contents() == original.fields[key].contents(), key
    a, tokens_a = _logits(plain_llama, result.path, "The capital of France is")
    b, tokens_b = _logits(plain_llama, starter_f16, "The capital of France is")
    assert tokens_a == tokens_b
    assert np.array_equal(a, b)


ARCHS = [
    "llama",
    "llama:bpe",
    "llama:llama-hf",
    "mistral",
    "qwen2:bpe",
    "qwen3:bpe",
    "gemma2",
    "gemma3",
    "gemma3:bpe",
    "phi3",
]


@pytest.mark.parametrize("case", ARCHS)
def test_each_architecture_converts_and_runs_in_llama_cpp(case, tmp_path, starter_f16, plain_llama):
    arch, _, tok = case.partition(":")
    folder = random_checkpoint(tmp_path / "hf", arch, tokenizer=tok or "sentencepiece", bpe_from=starter_f16,
                               dtype="bfloat16" if arch in ("gemma3", "phi3") else "float16")  # fmt: skip
    result = convert(folder, tmp_path / "out.gguf", "q8_0" if arch == "qwen3" else "f16")
    llm = plain_llama(model_path=result.path, n_ctx=64, verbose=False)
    try:
        out = llm.create_completion("Hello world", max_tokens=4, temperature=0.0)
        assert out["usage"]["completion_tokens"] >= 1
        expected = arch if arch in ("gemma2", "gemma3", "phi3", "qwen2", "qwen3") else "llama"
        assert llm.metadata["general.architecture"] == expected
    finally:
        llm.close()


def test_a_truncated_shard_is_refused_before_anything_is_written(starter_hf, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in starter_hf.iterdir():
        data = p.read_bytes()
        (broken / p.name).write_bytes(data[: len(data) // 2] if p.name.startswith("model-00002") else data)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CheckpointError, match="truncated"):
        convert(broken, out / "x.gguf")
    _no_output(out)


def test_a_header_that_lies_about_offsets_is_refused(starter_hf, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in starter_hf.iterdir():
        (broken / p.name).write_bytes(p.read_bytes())
    shard = broken / "model-00001-of-00002.safetensors"
    raw = bytearray(shard.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    begin, end = header[name]["data_offsets"]
    header[name]["data_offsets"] = [begin + 2, end + 2]
    text = json.dumps(header, separators=(",", ":")).encode().ljust(n)
    assert len(text) == n
    shard.write_bytes(bytes(raw[:8]) + text + bytes(raw[8 + n :]))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CheckpointError):
        convert(broken, out / "x.gguf")
    _no_output(out)


def test_a_missing_tokenizer_and_an_unknown_architecture_are_named(tmp_path):
    folder = random_checkpoint(tmp_path / "hf", "llama")
    (folder / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError, match="no tokenizer"):
        convert(folder, tmp_path / "x.gguf")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["MambaForCausalLM"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="MambaForCausalLM models cannot be converted yet; QuantDesk converts"):
        plan(folder)
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "x.gguf.part").exists()


def test_an_unknown_pre_tokenizer_is_refused(tmp_path, starter_f16):
    folder = random_checkpoint(tmp_path / "hf", "qwen2", tokenizer="bpe", bpe_from=starter_f16)
    tok = json.loads((folder / "tokenizer.json").read_text())
    tok["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = False  # splits differently: another hash
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(CheckpointError, match="splits text in a way llama.cpp does not know"):
        convert(folder, tmp_path / "x.gguf")


def test_a_mixture_of_experts_and_integer_weights_are_refused(tmp_path):
    folder = random_checkpoint(tmp_path / "hf", "llama")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_local_experts": 8}))
    with pytest.raises(CheckpointError, match="mixture of experts"):
        plan(folder)


def test_absurd_config_numbers_are_refused(tmp_path):
    folder = random_checkpoint(tmp_path / "hf", "llama")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 10**9}))
    with pytest.raises(CheckpointError, match="num_hidden_layers is 1000000000"):
        plan(folder)


def test_a_full_disk_is_said_before_starting_and_mid_way(tmp_path, monkeypatch):
    folder = random_checkpoint(tmp_path / "hf", "llama")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(converter.shutil, "disk_usage", lambda _p: type("U", (), {"free": 1000})())
    with pytest.raises(CheckpointError, match="Not enough disk space"):
        convert(folder, out / "x.gguf")
    _no_output(out)
    monkeypatch.undo()
    written = []

    def emit(data, fout):
        written.append(data.nbytes)
        if len(written) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_emit(data, fout)

    real_emit = converter._emit
    monkeypatch.setattr(converter, "_emit", emit)
    with pytest.raises(CheckpointError, match="The disk filled up while writing x.gguf"):
        convert(folder, out / "x.gguf")
    _no_output(out)


def test_cancel_deletes_the_partial_file(tmp_path):
    folder = random_checkpoint(tmp_path / "hf", "llama")
    out = tmp_path / "out"
    out.mkdir()
    cancel = threading.Event()

    def progress(p: ConvertProgress) -> None:
        assert (out / "x.gguf.part").exists()
        cancel.set()

    with pytest.raises(Cancelled):
        convert(folder, out / "x.gguf", progress=progress, cancel=cancel)
    _no_output(out)
