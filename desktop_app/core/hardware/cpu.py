"""CPU name, core counts, SIMD features and RAM (psutil, /proc/cpuinfo, sysctl)."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

import psutil

from desktop_app.core.hardware.types import CpuInfo, RamInfo
from desktop_app.core.sysctl import run_sysctl

# /proc/cpuinfo flag -> the name llama.cpp prints in its system info, in llama.cpp's order.
X86_FEATURES = [
    ("pni", "SSE3"),
    ("ssse3", "SSSE3"),
    ("avx", "AVX"),
    ("avx_vnni", "AVX_VNNI"),
    ("avx2", "AVX2"),
    ("f16c", "F16C"),
    ("fma", "FMA"),
    ("bmi2", "BMI2"),
    ("avx512f", "AVX512"),
    ("avx512vbmi", "AVX512_VBMI"),
    ("avx512_vnni", "AVX512_VNNI"),
    ("avx512_bf16", "AVX512_BF16"),
    ("amx_int8", "AMX_INT8"),
]
ARM_FEATURES = [
    ("asimd", "NEON"),
    ("asimd", "ARM_FMA"),
    ("asimdhp", "FP16_VA"),
    ("asimddp", "DOTPROD"),
    ("i8mm", "MATMUL_INT8"),
    ("sve", "SVE"),
    ("sme", "SME"),
]
# macOS sysctl keys (Apple silicon) -> llama.cpp names
DARWIN_ARM_FEATURES = [
    ("hw.optional.neon", "NEON"),
    ("hw.optional.neon", "ARM_FMA"),
    ("hw.optional.arm.FEAT_FP16", "FP16_VA"),
    ("hw.optional.arm.FEAT_DotProd", "DOTPROD"),
    ("hw.optional.arm.FEAT_I8MM", "MATMUL_INT8"),
    ("hw.optional.arm.FEAT_SME", "SME"),
]

Sysctl = Callable[[str], "str | None"]


def _cpuinfo_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key and key not in fields:
            fields[key] = value.strip()
    return fields


def features_from_cpuinfo(text: str) -> list[str]:
    """llama.cpp-named SIMD features from the text of /proc/cpuinfo (x86 or ARM)."""
    fields = _cpuinfo_fields(text)
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    table = X86_FEATURES if "flags" in fields else ARM_FEATURES
    return [name for flag, name in table if flag in flags]


def cpu_name_from_cpuinfo(text: str) -> str | None:
    fields = _cpuinfo_fields(text)
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        if fields.get(key):
            return fields[key]
    return None


def read_cpu(
    *,
    system: str | None = None,
    cpuinfo_text: str | None = None,
    sysctl: Sysctl | None = None,
) -> CpuInfo:
    """Detect the CPU. Arguments replace the real probes (for tests)."""
    system = system or platform.system()
    name = None
    features: list[str] = []
    if system == "Linux":
        if cpuinfo_text is None:
            try:
                with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                    cpuinfo_text = f.read()
            except OSError:
                cpuinfo_text = ""
        name = cpu_name_from_cpuinfo(cpuinfo_text)
        features = features_from_cpuinfo(cpuinfo_text)
    elif system == "Darwin":
        sysctl = sysctl or run_sysctl
        name = sysctl("machdep.cpu.brand_string")
        if (sysctl("hw.optional.arm64") or "0") == "1":
            features = [n for key, n in DARWIN_ARM_FEATURES if (sysctl(key) or "0") == "1"]
        else:
            flags = (
                (sysctl("machdep.cpu.features") or "") + " " + (sysctl("machdep.cpu.leaf7_features") or "")
            ).lower()
            mac_x86 = {
                "sse3": "SSE3",
                "ssse3": "SSSE3",
                "avx1.0": "AVX",
                "avx2": "AVX2",
                "f16c": "F16C",
                "fma": "FMA",
                "bmi2": "BMI2",
                "avx512f": "AVX512",
            }
            features = [v for k, v in mac_x86.items() if k in flags.split()]
    name = name or platform.processor() or platform.machine() or "Unknown CPU"
    return CpuInfo(
        name=" ".join(name.split()),
        physical_cores=psutil.cpu_count(logical=False),
        logical_cores=psutil.cpu_count(logical=True) or os.cpu_count(),
        features=features,
        architecture=platform.machine(),
    )


def read_ram() -> RamInfo:
    vm = psutil.virtual_memory()
    return RamInfo(total_bytes=int(vm.total), available_bytes=int(vm.available))
