"""The memory predictor: llama.cpp's placement and sizing rules, and agreement with a real load."""

from __future__ import annotations

import pytest

from desktop_app.core.gguf import read_gguf_header, read_model_headers
from desktop_app.core.memory import Machine, Predictor, RunSettings, model_shape, repack_rules
from desktop_app.core.memory.explain import verdict_sentence
from desktop_app.core.memory.llama_log import parse_llama_log
from desktop_app.core.memory.measure import MeasureError, measure_allocations
from tests.gguf_factory import Q, write_gguf, write_model_header

GiB = 1024**3
MiB = 1024**2
CPU = Machine(ram_available_bytes=16 * GiB, ram_total_bytes=32 * GiB, cpu_features=("AVX", "AVX2"))


def cuda(vram_free: int = 8 * GiB, ram: int = 16 * GiB) -> Machine:
    return Machine(ram_available_bytes=ram, ram_total_bytes=32 * GiB, cpu_features=("AVX2",), gpu_name="RTX",
                   gpu_backend="CUDA", vram_free_bytes=vram_free, vram_total_bytes=12 * GiB,
                   gpu_offload_supported=True)  # fmt: skip


@pytest.fixture(scope="module")
def llama8b(tmp_path_factory):
    """A Llama-3-8B-shaped header (32 layers, 128k vocab) with a sparse data section."""
    path = write_model_header(tmp_path_factory.mktemp("m") / "l8b.gguf", n_layers=32, n_vocab=128256, n_embd=4096,
                              n_head=32, n_head_kv=8, n_ff=14336, ctx=8192)  # fmt: skip
    return model_shape([read_gguf_header(path)])


def test_starter_prediction_matches_a_real_llama_cpp_load(starter_path):
    """The ground truth: llama.cpp's own buffer sizes for the real file, in a child process."""
    from desktop_app.core.hardware import detect_hardware

    machine = Machine.from_hardware(detect_hardware())  # this machine: with a GPU build, its GPU is in play
    measured = measure_allocations(starter_path, n_ctx=2048).buffers
    shape = model_shape([read_gguf_header(starter_path)])
    p = Predictor(shape, machine).predict(RunSettings(n_ctx=2048, n_gpu_layers=0))
    both = {k: getattr(p.ram, k) + getattr(p.vram, k) for k in ("weights_bytes", "kv_cache_bytes", "compute_bytes")}
    assert measured.weights_bytes == pytest.approx(both["weights_bytes"], rel=0.005)
    assert measured.kv_cache_bytes == pytest.approx(both["kv_cache_bytes"], rel=0.005)
    assert measured.compute_bytes == pytest.approx(both["compute_bytes"], rel=0.10)
    assert measured.total_bytes == pytest.approx(sum(both.values()) + p.ram.output_bytes, rel=0.03)
    cpu = Predictor(shape, CPU).predict(RunSettings(n_ctx=2048))
    assert cpu.verdict == "cpu_only" and cpu.max_ctx == 8192


def test_kv_cache_follows_gqa_padding_and_cache_type(llama8b):
    pr = Predictor(llama8b, CPU)
    # 32 layers × 8 KV heads × 128 dims × 2 (K and V) × 2 bytes per cell; n_ctx padded to 256
    p = pr.evaluate(RunSettings(n_ctx=4000), 0)
    assert p.n_ctx == 4096
    assert p.ram.kv_cache_bytes == 4096 * 32 * 8 * 128 * 2 * 2
    q8 = pr.evaluate(RunSettings(n_ctx=4096, kv_type="q8_0"), 0)
    assert q8.ram.kv_cache_bytes == 4096 * 32 * 8 * 128 * 2 * 34 // 32
    assert q8.flash_attn
    refused = pr.evaluate(RunSettings(n_ctx=4096, kv_type="q4_0", flash_attn="off"), 0)
    assert any("needs flash attention" in n for n in refused.notes)


def test_sliding_window_layers_keep_a_short_cache(tmp_path):
    path = write_model_header(tmp_path / "g.gguf", arch="gemma3", tied=True, sliding_window=1024, n_layers=12,
                              n_vocab=4096, n_embd=1152, n_head=4, n_head_kv=1, head_dim=256, n_ff=6912,
                              quant=Q.Q8_0)  # fmt: skip
    shape = model_shape([read_gguf_header(path)])
    assert shape.swa_layers == [il % 6 < 5 for il in range(12)]  # gemma3: five local layers, then one global
    p = Predictor(shape, CPU).evaluate(RunSettings(n_ctx=32768), 0)
    per_cell = 1 * 256 * 2 * 2
    assert p.ram.kv_cache_bytes == 2 * 32768 * per_cell + 10 * 1536 * per_cell  # pad(1024 + 512, 256) cells


def test_gpu_placement_output_layer_first_and_embeddings_on_cpu(llama8b):
    pr = Predictor(llama8b, cuda())
    m = pr._m
    one = pr.evaluate(RunSettings(n_ctx=4096), 1)
    assert one.vram.weights_bytes == m.output_bytes  # the output layer goes to the GPU first
    assert one.vram.kv_cache_bytes == 0 and one.verdict == "partial_gpu"
    full = pr.evaluate(RunSettings(n_ctx=4096), 33)
    assert full.verdict == "full_gpu"
    assert full.ram.weights_bytes == m.input_bytes  # token embeddings never leave the CPU
    assert full.vram.weights_bytes == sum(m.layer_bytes) + m.output_bytes
    assert full.vram.kv_cache_bytes == 4096 * 32 * 8 * 128 * 2 * 2
    assert full.ram.kv_cache_bytes == 0


def test_tied_embeddings_are_copied_to_the_gpu_with_the_output_layer(starter_path):
    shape = model_shape([read_gguf_header(starter_path)])
    assert shape.tied_embeddings
    p = Predictor(shape, cuda()).evaluate(RunSettings(n_ctx=2048), 1)
    emb = shape.token_embd.n_bytes
    assert p.vram.weights_bytes == emb + sum(t.n_bytes for t in shape.tensors if t.name.startswith("output_norm"))


def test_auto_layers_take_what_fits(llama8b):
    small = Predictor(llama8b, cuda(vram_free=2 * GiB)).predict(RunSettings(n_ctx=4096))
    assert small.verdict == "partial_gpu" and 0 < small.n_gpu_layers < 33
    assert small.vram.needed_bytes + 256 * MiB <= 2 * GiB
    more = Predictor(llama8b, cuda(vram_free=2 * GiB)).evaluate(RunSettings(n_ctx=4096), small.n_gpu_layers + 1)
    assert more.vram.needed_bytes + 256 * MiB > 2 * GiB
    big = Predictor(llama8b, cuda(vram_free=24 * GiB)).predict(RunSettings(n_ctx=4096))
    assert big.verdict == "full_gpu" and big.n_gpu_layers == 33


def test_no_gpu_build_means_cpu_only(llama8b):
    m = Machine(ram_available_bytes=16 * GiB, ram_total_bytes=32 * GiB, gpu_name="RTX", gpu_backend="CUDA",
                vram_free_bytes=8 * GiB, gpu_offload_supported=False)  # fmt: skip
    p = Predictor(llama8b, m).predict(RunSettings(n_ctx=4096, n_gpu_layers=20))
    assert p.n_gpu_layers == 0 and p.verdict == "cpu_only"


def test_unified_memory_shares_one_pool(llama8b):
    mac = Machine(ram_available_bytes=6 * GiB, ram_total_bytes=16 * GiB, gpu_name="Apple M2", gpu_backend="Metal",
                  vram_free_bytes=10 * GiB, unified_memory=True, gpu_offload_supported=True)  # fmt: skip
    p = Predictor(llama8b, mac).evaluate(RunSettings(n_ctx=4096), 33)
    assert p.vram_free_bytes <= 6 * GiB - p.ram.needed_bytes


def test_too_large_says_what_would_fit(llama8b):
    tight = Machine(ram_available_bytes=int(1.5 * GiB), ram_total_bytes=4 * GiB, cpu_features=("AVX2",))
    p = Predictor(llama8b, tight).predict(RunSettings(n_ctx=8192))
    assert p.verdict == "too_large"
    text = verdict_sentence(p, smaller_quant="Q3_K_S")
    assert text.startswith("Needs ") and "more RAM" in text and "Q3_K_S" in text


def test_suggests_the_largest_quant_that_fits(tmp_path):
    from desktop_app.core.memory.explain import largest_fitting_quant

    f16 = model_shape([read_gguf_header(write_model_header(tmp_path / "f16.gguf", n_layers=32, n_vocab=128256,
                       n_embd=4096, n_head=32, n_head_kv=8, n_ff=14336, quant=Q.F16))])  # fmt: skip
    laptop = Machine(ram_available_bytes=7 * GiB, ram_total_bytes=16 * GiB, cpu_features=("AVX2",))
    s = RunSettings(n_ctx=4096)
    assert Predictor(f16, laptop).predict(s).verdict == "too_large"
    assert largest_fitting_quant(f16, laptop, s) == "Q5_K_M"  # Q8_0 (8.5 GB) and Q6_K (6.6 GB) do not fit
    assert largest_fitting_quant(f16, Machine(ram_available_bytes=2 * GiB, ram_total_bytes=4 * GiB), s) is None


def test_max_ctx_is_the_largest_that_fits(llama8b):
    m = Machine(ram_available_bytes=6 * GiB, ram_total_bytes=8 * GiB, cpu_features=("AVX2",))
    pr = Predictor(llama8b, m)
    best = pr.max_ctx(RunSettings(n_ctx=512))
    assert best is not None and best % 256 == 0 and best < 8192
    assert pr.predict(RunSettings(n_ctx=best)).verdict == "cpu_only"
    assert pr.predict(RunSettings(n_ctx=best + 256)).verdict == "too_large"


def test_repacked_weights_count_once_against_free_ram(llama8b):
    p = Predictor(llama8b, CPU).evaluate(RunSettings(n_ctx=4096), 0)
    assert p.ram.repack_bytes > 0  # Q4_K matrices on an AVX2 CPU
    assert p.ram.weights_bytes == llama8b.file_bytes - _header(llama8b) + p.ram.repack_bytes
    assert p.ram.needed_bytes == p.ram.total_bytes - p.ram.repack_bytes
    no_mmap = Predictor(llama8b, CPU).evaluate(RunSettings(n_ctx=4096, mmap=False), 0)
    assert no_mmap.ram.weights_bytes == p.ram.weights_bytes - p.ram.repack_bytes


def _header(shape) -> int:
    return shape.file_bytes - sum(t.n_bytes for t in shape.tensors)


def test_repack_rules_follow_the_cpu():
    assert repack_rules(["AVX", "AVX2"])["Q4_K"] == 8
    assert "Q2_K" in repack_rules(["AVX2", "AVX512"])
    assert repack_rules(["NEON", "DOTPROD"])["Q8_0"] == 4
    assert repack_rules(["SSE3"]) == {}


def test_missing_metadata_and_unknown_arch_are_marked_approximate(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", arch="mysterynet", n_layers=2)
    shape = model_shape([read_gguf_header(path)])
    assert shape.approximate
    assert any("mysterynet" in r for r in shape.approximate_reasons)
    p = Predictor(shape, CPU).predict(RunSettings(n_ctx=1024))
    assert p.approximate and p.notes


def test_log_parser_reads_every_buffer():
    log = """load_tensors:   CPU_Mapped model buffer size =    98.87 MiB
load_tensors:   CPU_REPACK model buffer size =     7.59 MiB
llama_context:        CPU  output buffer size =     0.19 MiB
llama_kv_cache:        CPU KV buffer size =    90.00 MiB
sched_reserve:        CPU compute buffer size =    99.38 MiB
"""
    b = parse_llama_log(log)
    assert b.model == {"CPU_Mapped": round(98.87 * MiB), "CPU_REPACK": round(7.59 * MiB)}
    assert b.kv_cache_bytes == 90 * MiB and b.compute_bytes == round(99.38 * MiB)


def test_measuring_a_broken_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model")
    with pytest.raises(MeasureError, match="Could not measure"):
        measure_allocations(str(bad), n_ctx=512, no_alloc=True)


def _recorded(name: str) -> Machine:
    import json
    import pathlib

    from desktop_app.core.hardware import HardwareInfo

    data = json.loads((pathlib.Path(__file__).parents[1] / "data" / "hardware" / f"{name}.json").read_text())
    return Machine.from_hardware(HardwareInfo.from_dict(data))


def test_recorded_cuda_machine_runs_8b_q4_fully_on_the_gpu(llama8b):
    m = _recorded("rtx4070-cuda")
    assert (m.gpu_backend, m.vram_free_bytes, m.has_gpu) == ("CUDA", 12303400960, True)
    p = Predictor(llama8b, m).predict(RunSettings(n_ctx=8192))
    assert p.verdict == "full_gpu" and p.n_gpu_layers == 33
    assert p.ram.weights_bytes == Predictor(llama8b, m)._m.input_bytes  # only token embeddings in RAM
    assert p.vram.overhead_bytes > 0  # the CUDA context
    assert "Fits entirely on your GPU (NVIDIA GeForce RTX 4070)" in verdict_sentence(p, gpu_name=m.gpu_name)


def test_recorded_mac_shares_memory_between_cpu_and_gpu(llama8b):
    m = _recorded("m2-metal")
    assert m.unified_memory and m.gpu_backend == "Metal"
    p = Predictor(llama8b, m).predict(RunSettings(n_ctx=4096))
    assert p.verdict in ("full_gpu", "partial_gpu")
    assert p.vram.needed_bytes + p.ram.needed_bytes <= m.ram_available_bytes


def test_recorded_gpu_without_a_gpu_build_runs_on_the_cpu(llama8b):
    m = _recorded("gtx1650-cpu-build")
    assert not m.has_gpu  # the build cannot offload, whatever NVML says
    p = Predictor(llama8b, m).predict(RunSettings(n_ctx=4096))
    assert p.n_gpu_layers == 0 and p.verdict == "cpu_only"


def test_measurements_are_kept_beside_predictions(starter_path):
    from desktop_app.core.memory.history import MeasurementStore, measure_and_record, model_fingerprint

    settings = RunSettings(n_ctx=512)
    predicted = Predictor(model_shape([read_gguf_header(starter_path)]), CPU).predict(settings)
    rec = measure_and_record(starter_path, settings, predicted)
    store = MeasurementStore()
    last = store.last_for(model_fingerprint(starter_path))
    assert last is not None and last.created_at == rec.created_at
    assert last.measured["weights_bytes"] == pytest.approx(last.predicted["weights_bytes"], rel=0.005)
    assert last.llama_cpp_version == "0.3.36"
    assert store.last_for("no-such-model") is None


# -- a GPU in use: device limits, op offload (rules measured on a Vulkan device, tests/benchmarks) ---
def _vulkan(**kw) -> Machine:
    kw = {"vram_free_bytes": 8 * GiB, **kw}
    return Machine(ram_available_bytes=16 * GiB, ram_total_bytes=32 * GiB, cpu_features=("AVX2",), gpu_name="GPU",
                   gpu_backend="Vulkan", vram_total_bytes=kw["vram_free_bytes"], gpu_offload_supported=True,
                   **kw)  # fmt: skip


def test_a_device_limit_keeps_the_embeddings_and_the_logits_in_ram(tmp_path):
    path = write_model_header(tmp_path / "qwen-like.gguf", n_layers=4, n_vocab=151936, n_embd=896, n_head=14,
                              n_head_kv=2, n_ff=4864, quant=Q.Q8_0, tied=True)  # fmt: skip
    shape = model_shape(read_model_headers(str(path)))
    full = RunSettings(n_ctx=512, n_gpu_layers=5)
    free = Predictor(shape, _vulkan()).predict(full, with_max_ctx=False)
    limited = Predictor(shape, _vulkan(gpu_max_tensor_bytes=128 * 1024 * 1024)).predict(full, with_max_ctx=False)
    embd = shape.token_embd.n_bytes  # 145 MB in Q8_0: over lavapipe's 128 MiB
    assert free.vram.weights_bytes - limited.vram.weights_bytes == embd  # no copy of it for the logits
    assert limited.ram.compute_bytes >= 4 * 512 * 151936 > free.ram.compute_bytes  # the logits, in RAM


def test_with_a_gpu_a_batch_runs_there_even_with_no_layers_offloaded(starter_path):
    shape = model_shape(read_model_headers(starter_path))
    cpu = Predictor(shape, CPU).predict(RunSettings(n_ctx=4096, n_gpu_layers=0), with_max_ctx=False)
    gpu = Predictor(shape, _vulkan()).predict(RunSettings(n_ctx=4096, n_gpu_layers=0), with_max_ctx=False)
    # llama.cpp offloads the batch's matmuls (copying each weight in): a GPU compute buffer, inputs on the host
    assert gpu.vram.compute_bytes > cpu.ram.compute_bytes > gpu.ram.compute_bytes > 0
    assert gpu.vram.weights_bytes == 0 and gpu.vram.overhead_bytes > 0 and gpu.verdict == "cpu_only"


def test_weights_of_a_type_the_gpu_cannot_multiply_stay_in_ram(llama8b):
    s = RunSettings(n_ctx=4096, n_gpu_layers=33)
    all_in = Predictor(llama8b, _vulkan(vram_free_bytes=24 * GiB)).predict(s, with_max_ctx=False)
    no_q4k = Predictor(llama8b, _vulkan(vram_free_bytes=24 * GiB, gpu_unsupported_types=("Q4_K",)))
    kept = no_q4k.predict(s, with_max_ctx=False)
    q4k = sum(t.n_bytes for t in llama8b.tensors if t.type_id == 12 and t.is_matmul_weight)
    assert all_in.vram.weights_bytes - kept.vram.weights_bytes == q4k > 0


def test_no_repacked_copy_when_a_gpu_is_in_use(llama8b):
    cpu = Predictor(llama8b, CPU).predict(RunSettings(n_ctx=4096, n_gpu_layers=0), with_max_ctx=False)
    gpu = Predictor(llama8b, _vulkan()).predict(RunSettings(n_ctx=4096, n_gpu_layers=0), with_max_ctx=False)
    assert cpu.ram.repack_bytes > 0 and gpu.ram.repack_bytes == 0  # its pinned host buffer comes first
