"""QuantDesk's converter against llama.cpp's own convert_hf_to_gguf.py (torch, in a throwaway venv).

    python -m pytest tests/benchmarks/test_bench_convert.py -s -o addopts=""

Identity: every tensor's name, type, shape, bytes and order and every metadata key except general.*
(tests/benchmarks/gguf_diff.py), for the starter rebuilt as a checkpoint in f16/bf16/q8_0, a random
checkpoint of each architecture, and a 7B-wide Llama (BF16, two layers). Speed and memory: both run as
child processes on the same checkpoint; wall time ours ≤ 1.0× theirs, our peak RSS ≤ the larger of
1.5× the biggest tensor and 400 MB.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.benchmarks.gguf_diff import gguf_differences
from tests.benchmarks.quants import smollm2_quants
from tests.benchmarks.reference_converter import reference_convert, reference_convert_measured
from tests.hf_factory import random_checkpoint, save_bf16, starter_checkpoint

RSS_FLOOR = 400 * 1024 * 1024


def _ours_measured(checkpoint: Path, out: Path, outtype: str) -> tuple[float, int]:
    """Wall time and peak RSS of ``quantdesk convert`` in a child. The RSS comes from /usr/bin/time
    -v, which execs the command itself: a child forked from this (large) pytest process would carry
    pytest's own high-water mark in its ru_maxrss."""
    argv = [sys.executable, "-m", "desktop_app", "convert", str(checkpoint), "--outtype", outtype,
            "--outfile", str(out), "--json"]  # fmt: skip
    timer = shutil.which("time", path="/usr/bin")
    assert timer, "the benchmark needs /usr/bin/time (Debian's time package) for a clean peak RSS"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "time"
        start = time.perf_counter()
        done = subprocess.run([timer, "-v", "-o", str(report), *argv], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        assert done.returncode == 0, done.stderr
        line = next(x for x in report.read_text().splitlines() if "Maximum resident set size" in x)
    assert json.loads(done.stdout)["path"] == str(out)
    return seconds, int(line.rsplit(":", 1)[1]) * 1024


@pytest.fixture(scope="module")
def starter_hf(tmp_path_factory) -> Path:
    f16 = smollm2_quants(["F16"])["F16"]
    return starter_checkpoint(tmp_path_factory.mktemp("hf") / "SmolLM2-135M-Instruct", str(f16), shards=2)


@pytest.mark.parametrize("outtype", ["f16", "bf16", "q8_0"])
def test_the_starter_is_identical_and_not_slower(starter_hf, tmp_path, outtype):
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    t_ours, rss_ours = _ours_measured(starter_hf, ours, outtype)
    t_theirs, rss_theirs = reference_convert_measured(starter_hf, theirs, outtype)
    diffs = gguf_differences(ours, theirs)
    print(f"\nstarter {outtype}: {len(diffs)} differences; ours {t_ours:.2f} s {rss_ours / 2**20:.0f} MiB, "
          f"llama.cpp {t_theirs:.2f} s {rss_theirs / 2**20:.0f} MiB ({t_ours / t_theirs:.2f}×)")  # fmt: skip
    assert diffs == []
    assert t_ours <= 1.0 * t_theirs
    assert rss_ours <= max(1.5 * 49152 * 576 * 2, RSS_FLOOR)


CASES = [
    ("llama", "sentencepiece", "float16"), ("llama", "bpe", "bfloat16"), ("llama", "llama-hf", "float16"),
    ("mistral", "sentencepiece", "bfloat16"),
    ("qwen2", "bpe", "bfloat16"), ("qwen3", "bpe", "bfloat16"), ("gemma2", "sentencepiece", "float32"),
    ("gemma3", "sentencepiece", "bfloat16"), ("gemma3", "bpe", "float16"), ("phi3", "sentencepiece", "bfloat16"),
]  # fmt: skip


@pytest.mark.parametrize(("arch", "tokenizer", "dtype"), CASES)
def test_each_architecture_is_identical(tmp_path, arch, tokenizer, dtype):
    f16 = smollm2_quants(["F16"])["F16"]
    folder = random_checkpoint(tmp_path / "hf", arch, tokenizer=tokenizer, bpe_from=str(f16), dtype=dtype)
    for outtype in ("f16", "bf16", "q8_0"):
        from desktop_app.core.convert.converter import convert

        ours, theirs = tmp_path / f"ours-{outtype}.gguf", tmp_path / f"theirs-{outtype}.gguf"
        convert(folder, ours, outtype)
        reference_convert(folder, theirs, outtype)
        diffs = gguf_differences(ours, theirs)
        print(f"\n{arch} ({tokenizer}, {dtype}) → {outtype}: {len(diffs)} differences {diffs[:3]}")
        assert diffs == []


def test_a_7b_wide_llama_converts_in_bounded_memory(tmp_path):
    """Llama-2-7B's widths (4096 hidden, 11008 FFN, 32000 vocab: a 262 MB BF16 embedding) with two
    layers: what decides the peak memory of a 7B conversion, in 1.5 GB of checkpoint."""
    import numpy as np

    folder = random_checkpoint(tmp_path / "hf", "llama", layers=2)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32,
                  vocab_size=32000)  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").unlink()
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)

    weights = {"model.embed_tokens.weight": w(32000, 4096), "lm_head.weight": w(32000, 4096),
               "model.norm.weight": w(4096) + 1}  # fmt: skip
    for i in range(2):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            weights[f"{p}self_attn.{name}.weight"] = w(4096, 4096)
        weights |= {f"{p}mlp.gate_proj.weight": w(11008, 4096), f"{p}mlp.up_proj.weight": w(11008, 4096),
                    f"{p}mlp.down_proj.weight": w(4096, 11008), f"{p}input_layernorm.weight": w(4096) + 1,
                    f"{p}post_attention_layernorm.weight": w(4096) + 1}  # fmt: skip
    save_bf16(folder / "model.safetensors", weights)
    del weights
    biggest = 32000 * 4096 * 2
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    t_ours, rss_ours = _ours_measured(folder, ours, "f16")
    t_theirs, rss_theirs = reference_convert_measured(folder, theirs, "f16")
    diffs = gguf_differences(ours, theirs)
    limit = max(1.5 * biggest, RSS_FLOOR)
    print(f"\n7B-wide llama BF16 → f16: {len(diffs)} differences; ours {t_ours:.2f} s, peak {rss_ours / 2**20:.0f} MiB "
          f"(limit {limit / 2**20:.0f}); llama.cpp {t_theirs:.2f} s, peak {rss_theirs / 2**20:.0f} MiB")  # fmt: skip
    assert diffs == []
    assert rss_ours <= limit
    assert t_ours <= 1.0 * t_theirs
