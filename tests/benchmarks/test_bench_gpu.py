"""The fit predictor's GPU figures against llama.cpp's own allocations on a real GPU backend.

No GPU here, but Mesa's lavapipe is a Vulkan driver that runs on the CPU: with a llama.cpp built
with GGML_VULKAN=ON (e.g. `bash packaging/build.sh`'s portable build, or CMAKE_ARGS="-DGGML_VULKAN=on"
pip install llama-cpp-python==<pinned>), `apt-get install mesa-vulkan-drivers` and
GGML_VK_VISIBLE_DEVICES=0 (llama.cpp skips CPU-type Vulkan devices otherwise), it offloads to
"Vulkan0". Skipped when this llama.cpp sees no GPU.

    GGML_VK_VISIBLE_DEVICES=0 python -m pytest tests/benchmarks/test_bench_gpu.py -s

Held, device by device, with the CPU benchmark's tolerances (weights and KV 0.5 %, compute 10 %,
total 3 %): SmolLM2 quants at 0, half and all layers offloaded; 152k-vocabulary shapes whose
embedding matrix and logits exceed lavapipe's 128 MiB maxStorageBufferRange (those weights stay
in RAM and the logits are computed on the CPU); and the automatic layer count under a VRAM budget.
"""

from __future__ import annotations

import dataclasses

import pytest

from desktop_app.core.gguf import read_gguf_header, read_model_headers
from desktop_app.core.hardware import detect_hardware
from desktop_app.core.memory import Machine, Predictor, RunSettings, model_shape
from desktop_app.core.memory.measure import measure_allocations
from desktop_app.core.memory.predictor import GPU_CONTEXT_OVERHEAD, VRAM_MARGIN_BYTES
from tests.benchmarks.quants import smollm2_quants
from tests.gguf_factory import Q, write_model_header

MIB = 1024 * 1024
LIMITS = {"weights": 0.005, "kv": 0.005, "compute": 0.10, "total": 0.03}
ROUNDING = 0.006 * MIB  # llama.cpp logs each buffer in MiB with two decimals


@pytest.fixture(scope="module")
def machine():
    mc = Machine.from_hardware(detect_hardware())
    if not mc.has_gpu:
        pytest.skip("this llama.cpp sees no GPU (for lavapipe: a Vulkan build and GGML_VK_VISIBLE_DEVICES=0)")
    return mc


def _split(b) -> dict[str, dict[str, int]]:
    """Measured buffers by device: the GPU's (Vulkan0, CUDA0 …) and the host's (everything else)."""
    out = {"gpu": {}, "host": {}}
    for kind, bufs in (("weights", b.model), ("kv", b.kv), ("compute", b.compute)):
        out["gpu"][kind] = sum(v for k, v in bufs.items() if k[-1].isdigit())
        out["host"][kind] = sum(v for k, v in bufs.items() if not k[-1].isdigit())
    return out


def _errors(p, m) -> dict[str, float]:
    errs = {}
    for dev, pm in (("gpu", p.vram), ("host", p.ram)):
        pred = {"weights": pm.weights_bytes, "kv": pm.kv_cache_bytes, "compute": pm.compute_bytes}
        for kind, meas in m[dev].items():
            diff = pred[kind] - meas
            errs[f"{dev} {kind}"] = 0.0 if abs(diff) <= ROUNDING else diff / meas if meas else 9.99
    # everything llama.cpp allocates, on both devices (a device's own total can be compute only)
    tot_p = p.ram.buffers_bytes - p.ram.output_bytes + p.vram.buffers_bytes
    tot_m = sum(sum(d.values()) for d in m.values())
    errs["all total"] = 0.0 if abs(tot_p - tot_m) <= 6 * ROUNDING else (tot_p - tot_m) / tot_m
    return errs


def _check(label: str, path: str, shape, machine, cases) -> dict[str, float]:
    worst: dict[str, float] = {}
    predictor = Predictor(shape, machine)
    print(f"\n{label}\n  ngl  ctx  FA  | GPU weights/KV/compute MiB (meas/pred)            | host compute | errors")
    for ngl, ctx, fa in cases:
        m = _split(measure_allocations(path, n_ctx=ctx, n_gpu_layers=ngl, flash_attn=fa).buffers)
        p = predictor.predict(RunSettings(n_ctx=ctx, n_gpu_layers=ngl, flash_attn=fa), with_max_ctx=False)
        e = _errors(p, m)
        for k, v in e.items():
            worst[k] = max(worst.get(k, 0.0), abs(v))
        g = m["gpu"]
        print(f"  {ngl:3} {ctx:5} {fa:4} | {g['weights'] / MIB:7.2f}/{p.vram.weights_bytes / MIB:7.2f} "
              f"{g['kv'] / MIB:6.2f}/{p.vram.kv_cache_bytes / MIB:6.2f} {g['compute'] / MIB:7.2f}/"
              f"{p.vram.compute_bytes / MIB:7.2f} | {m['host']['compute'] / MIB:7.2f}/"
              f"{p.ram.compute_bytes / MIB:7.2f} | "
              + " ".join(f"{k} {v * 100:+.1f}%" for k, v in e.items() if v))  # fmt: skip
    return worst


def _assert(worst: dict[str, float]) -> None:
    print("  worst: " + ", ".join(f"{k} {v * 100:.2f}%" for k, v in sorted(worst.items())))
    for key, err in worst.items():
        assert err < LIMITS[key.split()[-1]], key


@pytest.mark.parametrize("quant", ["Q8_0", "Q4_K_M", "F16"])
def test_smollm2_on_the_gpu_against_llama_cpp(quant, machine):
    path = smollm2_quants(["F16", quant])[quant]
    shape = model_shape(read_model_headers(path))
    n = shape.n_layer + 1
    cases = [(ngl, ctx, fa) for ngl in (0, n // 2, n) for ctx in (512, 4096) for fa in ("auto", "off")]
    _assert(_check(f"SmolLM2 {quant} ({n} layer slots)", path, shape, machine, cases))


@pytest.mark.parametrize("tied", [True, False])
def test_device_limits_keep_large_weights_and_logits_on_the_host(tied, machine, tmp_path):
    if machine.gpu_max_tensor_bytes is None:
        pytest.skip("this GPU takes tensors of any size")
    if tied:  # like Qwen2.5-0.5B: its 145 MB embedding matrix cannot be copied to the GPU for the logits
        kw = dict(n_embd=896, n_head=14, n_head_kv=2, n_ff=4864, quant=Q.Q8_0)
    else:  # the output matrix fits, but its result for a 512-token batch (311 MB) does not
        kw = dict(n_embd=1024, n_head=16, n_head_kv=8, n_ff=3072, quant=Q.Q4_K)
    path = write_model_header(tmp_path / "big-vocab.gguf", n_layers=4, n_vocab=151936, tied=tied, **kw)
    shape = model_shape([read_gguf_header(path)])
    p = Predictor(shape, machine).predict(RunSettings(n_ctx=512, n_gpu_layers=5), with_max_ctx=False)
    assert p.ram.compute_bytes > 4 * 512 * 151936  # the logits are computed in RAM
    cases = [(ngl, ctx, fa) for ngl in (0, 2, 5) for ctx, fa in ((512, "auto"), (4096, "off"))]
    kind = "tied Q8_0" if tied else "untied Q4_K"
    label = f"152k vocabulary, {kind} (device limit {machine.gpu_max_tensor_bytes:,} B)"
    _assert(_check(label, str(path), shape, machine, cases))


def test_auto_layers_are_the_most_that_really_fit(machine):
    path = smollm2_quants(["F16"])["F16"]
    shape = model_shape(read_model_headers(path))
    settings = RunSettings(n_ctx=4096, n_gpu_layers="auto")
    fixed = GPU_CONTEXT_OVERHEAD.get(machine.gpu_backend or "", 256 * MIB) + VRAM_MARGIN_BYTES

    def measured_need(ngl: int) -> int:
        g = _split(measure_allocations(path, n_ctx=4096, n_gpu_layers=ngl).buffers)["gpu"]
        return sum(g.values()) + fixed

    none, full = measured_need(0), measured_need(shape.n_layer + 1)
    print()
    for share in (0.3, 0.7):  # budgets that fit part of the model
        budget = int(none + share * (full - none))
        tight = dataclasses.replace(machine, vram_free_bytes=budget)
        k = Predictor(shape, tight).predict(settings, with_max_ctx=False).n_gpu_layers
        fits, next_fits = measured_need(k), measured_need(k + 1)
        print(f"VRAM budget {budget / MIB:7.1f} MiB: predicted auto layers {k}; llama.cpp needs {fits / MIB:.1f} MiB "
              f"there and {next_fits / MIB:.1f} MiB with one more")  # fmt: skip
        assert fits <= budget < next_fits
