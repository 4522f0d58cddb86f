"""NVIDIA GPUs through NVML (the `nvidia-ml-py` binding that NVIDIA publishes).

NVML ships with the driver, so it answers even where this llama.cpp build has no CUDA: that is how
the Hardware page can say "you have an RTX 4070 but this build cannot use it".
"""

from __future__ import annotations

from types import ModuleType

from desktop_app.core.hardware.types import GpuInfo


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_nvidia_gpus(nvml: ModuleType | None = None) -> tuple[list[GpuInfo], str]:
    """Every NVIDIA GPU with its VRAM, and a note when NVML could not be asked.

    ``nvml`` replaces the ``pynvml`` module (tests pass a fake with the same functions).
    Never raises: a machine without the driver simply has no NVIDIA GPU.
    """
    if nvml is None:
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            return [], "nvidia-ml-py is not installed, so NVIDIA GPUs were not looked for."
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, …
        text = str(exc)
        if "Not Found" in text or "not found" in text or "Driver Not Loaded" in text:
            return [], ""  # no NVIDIA driver: nothing to report
        return [], f"NVIDIA driver found but NVML failed: {text}"
    gpus: list[GpuInfo] = []
    try:
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                GpuInfo(
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    vendor="nvidia",
                    backend="CUDA",
                    vram_total_bytes=int(mem.total),
                    vram_free_bytes=int(mem.free),
                    unified_memory=False,
                    source="NVML",
                )
            )
    except Exception as exc:
        return gpus, f"NVML stopped answering while listing GPUs: {exc}"
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
    return gpus, ""
