"""Hardware detection: CPU, RAM, GPUs and what the llama.cpp build can use.

Each probe is injectable so tests can present a fake NVML, a fake sysfs tree or a fake sysctl;
:func:`detect_hardware` never raises, it records failed probes in ``HardwareInfo.notes``.
"""

from __future__ import annotations

import platform
from types import ModuleType

from desktop_app.core.hardware.amd import read_sysfs_gpus
from desktop_app.core.hardware.apple import read_apple_gpu
from desktop_app.core.hardware.cpu import Sysctl, read_cpu, read_ram
from desktop_app.core.hardware.llama_build import probe_llama_cpp
from desktop_app.core.hardware.nvidia import read_nvidia_gpus
from desktop_app.core.hardware.types import (
    CpuInfo,
    GpuInfo,
    HardwareInfo,
    LlamaCppInfo,
    LlamaDevice,
    RamInfo,
)

__all__ = [
    "CpuInfo",
    "GpuInfo",
    "HardwareInfo",
    "LlamaCppInfo",
    "LlamaDevice",
    "RamInfo",
    "detect_hardware",
    "read_ram",
]


def _gpus_from_llama(devices: list[LlamaDevice], known: list[GpuInfo]) -> list[GpuInfo]:
    """GPUs that only llama.cpp sees (e.g. Vulkan on Windows), not already found by a vendor probe."""
    extra = []
    for dev in devices:
        if dev.type not in ("gpu", "igpu"):
            continue
        if any(g.name and (g.name in dev.description or dev.description in g.name) for g in known):
            continue
        extra.append(
            GpuInfo(
                name=dev.description or dev.name,
                vendor="other",
                backend=dev.name.rstrip("0123456789") or dev.name,
                vram_total_bytes=dev.memory_total_bytes,
                vram_free_bytes=dev.memory_free_bytes,
                unified_memory=dev.type == "igpu",
                source="llama.cpp",
            )
        )
    return extra


def detect_hardware(
    *,
    system: str | None = None,
    nvml: ModuleType | None = None,
    sysfs_root: str = "/sys/class/drm",
    sysctl: Sysctl | None = None,
    cpuinfo_text: str | None = None,
    probe_llama: bool = True,
    recheck_runtime: bool = False,
) -> HardwareInfo:
    """Look at this machine. Keyword arguments replace real probes (for tests); ``recheck_runtime``
    runs the llama.cpp runtime check again even if this build and CPU were checked before."""
    system = system or platform.system()
    notes: list[str] = []
    cpu = read_cpu(system=system, cpuinfo_text=cpuinfo_text, sysctl=sysctl)
    ram = read_ram()
    gpus, note = read_nvidia_gpus(nvml)
    if note:
        notes.append(note)
    if system == "Linux":
        gpus += read_sysfs_gpus(sysfs_root)
    elif system == "Darwin":
        gpus += read_apple_gpu(sysctl=sysctl, available_ram_bytes=ram.available_bytes)
    llama = probe_llama_cpp(gpus, system=system, run_probe=probe_llama, cpu_features=cpu.features,
                            recheck_runtime=recheck_runtime)  # fmt: skip
    if llama.error:
        notes.append(llama.error)
    gpus += _gpus_from_llama(llama.devices, gpus)
    if not cpu.features and llama.system_info:
        # Windows has no /proc/cpuinfo: take the features llama.cpp itself reports.
        feats = [p.split("=")[0].strip() for p in llama.system_info.split("|") if p.strip().endswith("= 1")]
        cpu = CpuInfo(cpu.name, cpu.physical_cores, cpu.logical_cores, feats, cpu.architecture)
    os_name = f"{platform.system()} {platform.release()}".strip()
    return HardwareInfo(cpu=cpu, ram=ram, gpus=gpus, llama_cpp=llama, os=os_name, notes=notes)
