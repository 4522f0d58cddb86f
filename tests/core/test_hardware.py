"""Hardware detection against injected probes (fake NVML, sysfs, sysctl) and this machine."""

from __future__ import annotations

import os
import types

import psutil

from desktop_app.core.hardware import detect_hardware
from desktop_app.core.hardware.amd import read_sysfs_gpus
from desktop_app.core.hardware.apple import read_apple_gpu
from desktop_app.core.hardware.cpu import cpu_name_from_cpuinfo, features_from_cpuinfo, read_cpu
from desktop_app.core.hardware.llama_build import backends_in, gpu_build_command, gpu_build_commands
from desktop_app.core.hardware.nvidia import read_nvidia_gpus
from desktop_app.core.hardware.types import GpuInfo

GiB = 1024**3

X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD Ryzen 9 7950X 16-Core Processor
flags\t\t: fpu pni ssse3 fma sse4_1 avx f16c avx2 bmi2 avx512f avx512vbmi avx512_vnni avx512_bf16

processor\t: 1
model name\t: AMD Ryzen 9 7950X 16-Core Processor
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm asimddp i8mm sve
CPU implementer\t: 0x41
"""


def fake_nvml(gpus: list[tuple[str, int, int]], *, init_error: Exception | None = None, fail_at: int | None = None):
    """A stand-in for the pynvml module with the calls NVML really offers."""

    class NVMLError(Exception):
        pass

    def init():
        if init_error:
            raise init_error

    def handle(i):
        if fail_at is not None and i == fail_at:
            raise NVMLError("GPU is lost")
        return i

    return types.SimpleNamespace(
        nvmlInit=init,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=handle,
        nvmlDeviceGetName=lambda h: gpus[h][0].encode(),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=gpus[h][1], free=gpus[h][2], used=0),
    )


def test_cpu_features_x86_in_llama_cpp_spelling():
    assert features_from_cpuinfo(X86_CPUINFO) == [
        "SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"
    ]  # fmt: skip
    assert cpu_name_from_cpuinfo(X86_CPUINFO) == "AMD Ryzen 9 7950X 16-Core Processor"


def test_cpu_features_arm():
    assert features_from_cpuinfo(ARM_CPUINFO) == ["NEON", "ARM_FMA", "FP16_VA", "DOTPROD", "MATMUL_INT8", "SVE"]
    info = read_cpu(system="Linux", cpuinfo_text=ARM_CPUINFO)
    assert info.features[0] == "NEON"


def test_cpu_on_apple_silicon_from_sysctl():
    values = {
        "machdep.cpu.brand_string": "Apple M2 Pro",
        "hw.optional.arm64": "1",
        "hw.optional.neon": "1",
        "hw.optional.arm.FEAT_DotProd": "1",
        "hw.optional.arm.FEAT_I8MM": "0",
        "hw.optional.arm.FEAT_FP16": "1",
    }
    info = read_cpu(system="Darwin", sysctl=values.get)
    assert info.name == "Apple M2 Pro"
    assert info.features == ["NEON", "ARM_FMA", "FP16_VA", "DOTPROD"]


def test_nvidia_gpus_from_nvml():
    nvml = fake_nvml([("NVIDIA GeForce RTX 4070", 12 * GiB, 11 * GiB), ("NVIDIA A100", 80 * GiB, 79 * GiB)])
    gpus, note = read_nvidia_gpus(nvml)
    assert note == ""
    assert [(g.name, g.vram_total_bytes, g.vram_free_bytes, g.backend) for g in gpus] == [
        ("NVIDIA GeForce RTX 4070", 12 * GiB, 11 * GiB, "CUDA"),
        ("NVIDIA A100", 80 * GiB, 79 * GiB, "CUDA"),
    ]
    assert not any(g.unified_memory for g in gpus)


def test_no_nvidia_driver_is_silent_but_a_broken_one_is_reported():
    assert read_nvidia_gpus(fake_nvml([], init_error=Exception("NVML Shared Library Not Found"))) == ([], "")
    gpus, note = read_nvidia_gpus(fake_nvml([], init_error=Exception("Insufficient Permissions")))
    assert gpus == [] and "Insufficient Permissions" in note
    gpus, note = read_nvidia_gpus(fake_nvml([("A", GiB, GiB), ("B", GiB, GiB)], fail_at=1))
    assert [g.name for g in gpus] == ["A"] and "GPU is lost" in note


def _card(root, name, vendor, **files):
    dev = root / name / "device"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text(vendor + "\n")
    (dev / "device").write_text("0x73bf\n")
    for key, value in files.items():
        (dev / key).write_text(f"{value}\n")


def test_amd_and_intel_gpus_from_sysfs(tmp_path):
    _card(tmp_path, "card0", "0x1002", mem_info_vram_total=16 * GiB, mem_info_vram_used=2 * GiB,
          mem_info_vis_vram_total=256 * 1024**2, product_name="Radeon RX 6800 XT")  # fmt: skip
    _card(tmp_path, "card1", "0x1002", mem_info_vram_total=512 * 1024**2, mem_info_vram_used=100,
          mem_info_vis_vram_total=512 * 1024**2)  # fmt: skip
    _card(tmp_path, "card2", "0x8086")
    _card(tmp_path, "card3", "0x1af4")  # a virtio display adapter: not a GPU for llama.cpp
    (tmp_path / "card0-DP-1").mkdir()  # connectors are not cards
    gpus = read_sysfs_gpus(tmp_path)
    assert [(g.vendor, g.name) for g in gpus] == [
        ("amd", "Radeon RX 6800 XT"),
        ("amd", "AMD Radeon GPU (PCI device 0x73bf)"),
        ("intel", "Intel GPU (PCI device 0x73bf)"),
    ]
    assert (gpus[0].vram_total_bytes, gpus[0].vram_free_bytes, gpus[0].unified_memory) == (16 * GiB, 14 * GiB, False)
    assert gpus[1].unified_memory and "integrated" in gpus[1].note
    assert gpus[2].vram_total_bytes is None and gpus[2].unified_memory


def test_missing_sysfs_means_no_gpus(tmp_path):
    assert read_sysfs_gpus(tmp_path / "nope") == []


def test_apple_unified_memory(tmp_path):
    values = {"hw.optional.arm64": "1", "hw.memsize": str(16 * GiB), "machdep.cpu.brand_string": "Apple M3"}
    [gpu] = read_apple_gpu(sysctl=values.get, available_ram_bytes=9 * GiB)
    assert gpu.unified_memory and gpu.backend == "Metal" and gpu.name == "Apple M3 GPU"
    assert gpu.vram_total_bytes == 16 * GiB * 2 // 3
    assert gpu.vram_free_bytes == 9 * GiB
    big = {**values, "hw.memsize": str(64 * GiB)}
    assert read_apple_gpu(sysctl=big.get)[0].vram_total_bytes == 48 * GiB
    assert read_apple_gpu(sysctl={"hw.optional.arm64": "0"}.get) == []


def test_gpu_build_command_follows_the_gpu_found():
    nvidia = GpuInfo("RTX", "nvidia", "CUDA", GiB, GiB, False)
    amd = GpuInfo("RX", "amd", "ROCm/Vulkan", GiB, GiB, False)
    cmd, hint = gpu_build_command([nvidia], system="Linux", version="0.3.36")
    assert cmd.startswith('CMAKE_ARGS="-DGGML_CUDA=on" ')
    assert "llama-cpp-python==0.3.36" in cmd and "--force-reinstall" in cmd and "CUDA toolkit" in hint
    assert "-DGGML_VULKAN=on" in gpu_build_command([amd], system="Linux", version="0.3.36")[0]
    win = gpu_build_command([nvidia], system="Windows", version="0.3.36")[0]
    assert win.startswith("set CMAKE_ARGS=-DGGML_CUDA=on && ")
    assert gpu_build_command([], system="Linux", version="0.3.36")[0] == ""
    assert set(gpu_build_commands(system="Linux", version="1")) == {"CUDA", "Vulkan", "ROCm"}
    assert set(gpu_build_commands(system="Darwin", version="1")) == {"CUDA", "Metal", "Vulkan"}


def test_backends_from_library_files(tmp_path):
    for name in ("libggml-base.so.0.25.3", "libggml-cpu.so", "libggml-cuda.so", "libllama.so"):
        (tmp_path / name).write_bytes(b"")
    assert backends_in(str(tmp_path)) == (["CPU", "CUDA"], "0.25.3")


def _has_cpu_variants() -> bool:
    from desktop_app.core.runtime.backends import backend_dirs, backend_files, llama_cpp_lib_dir

    lib = llama_cpp_lib_dir()
    return bool(lib and len(backend_files(backend_dirs(lib)).cpu_variants) > 1)


def test_this_machine_is_reported_truthfully():
    hw = detect_hardware()
    assert hw.ram.total_bytes == psutil.virtual_memory().total
    assert 0 < hw.ram.available_bytes <= hw.ram.total_bytes
    assert hw.cpu.logical_cores == os.cpu_count()
    assert hw.cpu.physical_cores == psutil.cpu_count(logical=False)
    ll = hw.llama_cpp
    assert ll.installed and ll.version == "0.3.36" and ll.error == ""
    assert "CPU" in ll.backends
    assert any(d.type == "cpu" for d in ll.devices)
    # llama.cpp's own view of the CPU agrees with ours. A build with CPU variants reports what the
    # variant it loaded was compiled for: a subset of this CPU's features, not all of them.
    claimed = {f.split(" = ")[0].strip() for f in ll.system_info.split("|") if f.strip().endswith("= 1")}
    claimed = {f.split(":")[-1].strip() for f in claimed} - {"LLAMAFILE", "OPENMP", "REPACK", "KLEIDIAI"}
    if _has_cpu_variants():
        assert claimed and claimed <= set(hw.cpu.features), claimed - set(hw.cpu.features)
    else:
        for feature in hw.cpu.features:
            assert f"{feature} = 1" in ll.system_info
    # offload is claimed for a GPU backend only (a portable build's RPC backend is not one, though
    # llama.cpp's llama_supports_gpu_offload() says yes for it)
    from desktop_app.core.hardware.llama_build import GPU_BACKENDS

    assert ll.gpu_offload_supported == any(b in GPU_BACKENDS for b in ll.backends)


def test_detect_with_injected_probes_merges_everything(tmp_path):
    _card(tmp_path, "card0", "0x1002", mem_info_vram_total=8 * GiB, mem_info_vram_used=GiB)
    nvml = fake_nvml([("NVIDIA RTX 3060", 12 * GiB, 10 * GiB)])
    hw = detect_hardware(system="Linux", nvml=nvml, sysfs_root=str(tmp_path), cpuinfo_text=X86_CPUINFO,
                         probe_llama=False)  # fmt: skip
    assert [g.vendor for g in hw.gpus] == ["nvidia", "amd"]
    assert hw.cpu.name.startswith("AMD Ryzen 9")
    assert not hw.llama_cpp.gpu_offload_supported
    assert "-DGGML_CUDA=on" in hw.llama_cpp.gpu_build_command
    d = hw.to_dict()
    assert d["gpus"][0]["vram_total_bytes"] == 12 * GiB
