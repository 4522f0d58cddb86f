"""AMD (and Intel) GPUs through the Linux DRM sysfs tree: /sys/class/drm/card*/device."""

from __future__ import annotations

import os
from pathlib import Path

from desktop_app.core.hardware.types import GpuInfo

AMD_VENDOR = "0x1002"
INTEL_VENDOR = "0x8086"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def read_sysfs_gpus(root: str | os.PathLike[str] = "/sys/class/drm") -> list[GpuInfo]:
    """AMD GPUs with VRAM from amdgpu's mem_info files; Intel GPUs by name (shared memory).

    ``root`` replaces /sys/class/drm (tests build a fake tree). Never raises.
    """
    base = Path(root)
    try:
        cards = sorted(p for p in base.iterdir() if p.name.startswith("card") and "-" not in p.name)
    except OSError:
        return []
    gpus: list[GpuInfo] = []
    seen: set[str] = set()
    for card in cards:
        dev = card / "device"
        vendor = (_read(dev / "vendor") or "").lower()
        if vendor not in (AMD_VENDOR, INTEL_VENDOR):
            continue
        real = os.path.realpath(dev)
        if real in seen:
            continue
        seen.add(real)
        device_id = _read(dev / "device") or "?"
        if vendor == AMD_VENDOR:
            total = _read_int(dev / "mem_info_vram_total")
            used = _read_int(dev / "mem_info_vram_used")
            vis = _read_int(dev / "mem_info_vis_vram_total")
            name = _read(dev / "product_name") or f"AMD Radeon GPU (PCI device {device_id})"
            # An APU reports a small VRAM carve-out and uses system RAM through GTT.
            integrated = total is not None and total <= 1 << 30 and (vis or 0) == total
            gpus.append(
                GpuInfo(
                    name=name,
                    vendor="amd",
                    backend="ROCm/Vulkan",
                    vram_total_bytes=total,
                    vram_free_bytes=(total - used) if total is not None and used is not None else None,
                    unified_memory=integrated,
                    source="sysfs (amdgpu)",
                    note="integrated GPU: shares system RAM" if integrated else "",
                )
            )
        else:
            gpus.append(
                GpuInfo(
                    name=_read(dev / "product_name") or f"Intel GPU (PCI device {device_id})",
                    vendor="intel",
                    backend="Vulkan/SYCL",
                    vram_total_bytes=None,
                    vram_free_bytes=None,
                    unified_memory=True,
                    source="sysfs",
                    note="shares system RAM; llama.cpp's Vulkan or SYCL build can use it",
                )
            )
    return gpus
