"""Prediction against llama.cpp's real allocations.

Real loads of the SmolLM2 quants at 512, 4096 and 8192 context; no_alloc loads of synthetic
headers for shapes this machine has no real file of (sliding window, MoE, large vocabularies).
Run on demand:  python -m pytest tests/benchmarks/test_bench_memory.py -s
"""

from __future__ import annotations

import time

import pytest

from desktop_app.core.gguf import read_gguf_header, read_model_headers
from desktop_app.core.hardware import detect_hardware
from desktop_app.core.memory import Machine, Predictor, RunSettings, model_shape
from desktop_app.core.memory.measure import measure_allocations
from tests.benchmarks.quants import smollm2_quants
from tests.gguf_factory import Q, write_gguf, write_model_header

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def machine():
    return Machine.from_hardware(detect_hardware())


def _err(pred: int, meas: int) -> float:
    return (pred - meas) / meas if meas else 0.0


def test_smollm2_quants_against_real_loads(machine):
    quants = smollm2_quants()
    rows, worst = [], {"weights": 0.0, "kv": 0.0, "compute": 0.0, "total": 0.0}
    for name, path in quants.items():
        predictor = Predictor(model_shape(read_model_headers(path)), machine)
        for ctx, fa in ((512, "auto"), (4096, "auto"), (8192, "auto"), (512, "off"), (4096, "off"), (8192, "off")):
            m = measure_allocations(path, n_ctx=ctx, flash_attn=fa).buffers
            p = predictor.predict(RunSettings(n_ctx=ctx, n_gpu_layers=0, flash_attn=fa), with_max_ctx=False).ram
            errs = {
                "weights": _err(p.weights_bytes, m.weights_bytes),
                "kv": _err(p.kv_cache_bytes, m.kv_cache_bytes),
                "compute": _err(p.compute_bytes, m.compute_bytes),
                "total": _err(p.buffers_bytes, m.total_bytes),
            }
            for k, v in errs.items():
                worst[k] = max(worst[k], abs(v))
            rows.append((f"{name} FA {fa}", ctx, m, p, errs))
    print("\nquant         ctx   weights MiB (meas/pred)   KV MiB          compute MiB       total MiB        errors")
    for name, ctx, m, p, e in rows:
        print(f"{name:13}{ctx:5}  {m.weights_bytes / MIB:8.2f}/{p.weights_bytes / MIB:8.2f}  "
              f"{m.kv_cache_bytes / MIB:7.2f}/{p.kv_cache_bytes / MIB:7.2f}  "
              f"{m.compute_bytes / MIB:7.2f}/{p.compute_bytes / MIB:7.2f}  "
              f"{m.total_bytes / MIB:7.2f}/{p.buffers_bytes / MIB:7.2f}  "
              + " ".join(f"{k} {v * 100:+.2f}%" for k, v in e.items()))  # fmt: skip
    print("worst: " + ", ".join(f"{k} {v * 100:.2f}%" for k, v in worst.items()))
    assert worst["weights"] < 0.005 and worst["kv"] < 0.005
    assert worst["compute"] < 0.10 and worst["total"] < 0.03


SHAPES = {
    "sliding window (gemma3, 12 layers, 262k vocab, tied)": dict(
        arch="gemma3", tied=True, sliding_window=1024, n_layers=12, n_vocab=262144, n_embd=1152, n_head=4,
        n_head_kv=1, head_dim=256, n_ff=6912, quant=Q.Q8_0),
    "MoE (llama, 8 experts, 2 used)": dict(
        n_layers=4, n_vocab=32000, n_embd=2048, n_head=16, n_head_kv=4, n_ff=1536, n_expert=8, n_expert_used=2),
    "large vocab (152k, head_dim 128)": dict(
        n_layers=4, n_vocab=151936, n_embd=1024, n_head=16, n_head_kv=8, n_ff=3072, head_dim=128),
    "llama-3 8B-like (128k vocab)": dict(
        n_layers=4, n_vocab=128256, n_embd=4096, n_head=32, n_head_kv=8, n_ff=14336),
}  # fmt: skip


@pytest.mark.parametrize("label", list(SHAPES))
def test_synthetic_shapes_against_no_alloc_loads(label, tmp_path, machine):
    path = write_model_header(tmp_path / "m.gguf", **SHAPES[label])
    predictor = Predictor(model_shape([read_gguf_header(path)]), machine)
    worst_kv = worst_compute = 0.0
    print(f"\n{label}")
    for ctx in (4096, 32768):
        for fa in ("off", "on"):
            m = measure_allocations(str(path), n_ctx=ctx, flash_attn=fa, no_alloc=True).buffers
            p = predictor.evaluate(RunSettings(n_ctx=ctx, flash_attn=fa), 0).ram
            ek, ec = _err(p.kv_cache_bytes, m.kv_cache_bytes), _err(p.compute_bytes, m.compute_bytes)
            worst_kv, worst_compute = max(worst_kv, abs(ek)), max(worst_compute, abs(ec))
            print(f"  ctx {ctx:6} FA {fa:3}: KV {m.kv_cache_bytes / MIB:8.2f}/{p.kv_cache_bytes / MIB:8.2f} MiB "
                  f"({ek * 100:+.2f}%), compute {m.compute_bytes / MIB:8.2f}/{p.compute_bytes / MIB:8.2f} MiB "
                  f"({ec * 100:+.2f}%)")  # fmt: skip
    assert worst_kv < 0.005 and worst_compute < 0.10


def test_prediction_and_parse_speed(tmp_path, machine):
    path = write_gguf(tmp_path / "v.gguf", n_vocab=50_000, merges=True, n_layers=32, n_embd=256)
    t0 = time.perf_counter()
    for _ in range(20):
        header = read_gguf_header(path)
    parse_ms = (time.perf_counter() - t0) / 20 * 1000
    predictor = Predictor(model_shape([header]), machine)
    t0 = time.perf_counter()
    for i in range(200):
        predictor.predict(RunSettings(n_ctx=512 + 256 * i, n_gpu_layers="auto"))
    predict_ms = (time.perf_counter() - t0) / 200 * 1000
    print(f"\nparse a 50k-vocab header: {parse_ms:.1f} ms; one prediction (with auto layers and max context): "
          f"{predict_ms:.2f} ms")  # fmt: skip
    assert parse_ms < 100 and predict_ms < 5


def test_predicted_quant_sizes_against_the_quantizer():
    import os

    from desktop_app.core.memory.quant_plan import plan_for_headers
    from tests.benchmarks.quants import PLANNED

    quants = smollm2_quants(PLANNED)
    f16 = read_gguf_header(quants["F16"])
    print("\nquant    predicted bytes   quantizer wrote   error")
    worst = 0.0
    for q in PLANNED:
        predicted = plan_for_headers([f16], q).file_bytes
        real = os.path.getsize(quants[q])
        worst = max(worst, abs(predicted - real) / real)
        print(f"{q:7} {predicted:16,} {real:17,}   {(predicted - real) / real * 100:+.4f}%")
    print(f"worst {worst * 100:.4f}% (target < 0.1%)")
    assert worst < 0.001
