"""Apple silicon: the GPU shares RAM with the CPU (unified memory)."""

from __future__ import annotations

from desktop_app.core.hardware.cpu import Sysctl, run_sysctl
from desktop_app.core.hardware.types import GpuInfo


def metal_working_set_bytes(ram_bytes: int) -> int:
    """What Metal lets one process keep on the GPU (``recommendedMaxWorkingSetSize``).

    macOS allows about two thirds of RAM on machines up to 36 GB and three quarters above; the
    real value comes from llama.cpp's Metal device when that build is installed.
    """
    return ram_bytes * 3 // 4 if ram_bytes > 36 * 1024**3 else ram_bytes * 2 // 3


def read_apple_gpu(*, sysctl: Sysctl | None = None, available_ram_bytes: int | None = None) -> list[GpuInfo]:
    """The integrated GPU of an Apple-silicon Mac; empty on Intel Macs. ``sysctl`` is injectable."""
    sysctl = sysctl or run_sysctl
    if (sysctl("hw.optional.arm64") or "0") != "1":
        return []
    ram = int(sysctl("hw.memsize") or 0)
    chip = sysctl("machdep.cpu.brand_string") or "Apple silicon"
    total = metal_working_set_bytes(ram) if ram else None
    free = None
    if total is not None and available_ram_bytes is not None:
        free = min(total, available_ram_bytes)
    return [
        GpuInfo(
            name=f"{chip} GPU",
            vendor="apple",
            backend="Metal",
            vram_total_bytes=total,
            vram_free_bytes=free,
            unified_memory=True,
            source="sysctl (estimated Metal working set)",
            note="unified memory: the GPU uses system RAM",
        )
    ]
