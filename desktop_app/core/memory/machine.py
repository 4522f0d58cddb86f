"""The machine a prediction is held against: free RAM and VRAM, the GPU llama.cpp would use and
what it takes, and whether the runtime repacks weights; made from the hardware probe."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Machine:
    """What the prediction is held against (from :mod:`desktop_app.core.hardware`)."""

    ram_available_bytes: int
    ram_total_bytes: int
    cpu_features: tuple[str, ...] = ()
    gpu_name: str | None = None
    gpu_backend: str | None = None  # CUDA, Metal, Vulkan, … (None: no usable GPU)
    vram_free_bytes: int = 0
    vram_total_bytes: int = 0
    unified_memory: bool = False
    gpu_offload_supported: bool = False
    repack: bool = True  # the runtime's weight repacking (off: no CPU_REPACK copy is allocated)
    # what the GPU takes, asked of it as llama.cpp asks (hardware probe): larger weights, or weights
    # whose matmul result for a 512-token batch is larger, and unsupported types stay in RAM
    gpu_max_tensor_bytes: int | None = None
    gpu_unsupported_types: tuple[str, ...] = ()

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpu_backend) and self.gpu_offload_supported and self.vram_free_bytes > 0

    @classmethod
    def from_hardware(cls, hw) -> Machine:
        """The first GPU llama.cpp can use (if the build offloads), else CPU only."""
        gpu = hw.gpus[0] if hw.gpus else None
        backend = None
        device = None
        if gpu is not None:
            backend = {"nvidia": "CUDA", "apple": "Metal", "amd": "ROCm"}.get(gpu.vendor, "Vulkan")
            built = [b for b in hw.llama_cpp.backends if b not in ("CPU", "RPC", "BLAS")]
            if built:
                backend = built[0]
            gpus = [d for d in hw.llama_cpp.devices if d.type in ("gpu", "igpu")]
            device = next((d for d in gpus if gpu.name and (gpu.name in d.description or d.description in gpu.name)),
                          gpus[0] if gpus else None)  # fmt: skip
        return cls(
            ram_available_bytes=hw.ram.available_bytes,
            ram_total_bytes=hw.ram.total_bytes,
            cpu_features=tuple(hw.cpu.features),
            gpu_name=gpu.name if gpu else None,
            gpu_backend=backend,
            vram_free_bytes=(gpu.vram_free_bytes or 0) if gpu else 0,
            vram_total_bytes=(gpu.vram_total_bytes or 0) if gpu else 0,
            unified_memory=bool(gpu and gpu.unified_memory),
            gpu_offload_supported=hw.llama_cpp.gpu_offload_supported,
            repack=hw.llama_cpp.runtime.repack if hw.llama_cpp.runtime is not None else True,
            gpu_max_tensor_bytes=device.max_tensor_bytes if device is not None else None,
            gpu_unsupported_types=tuple(device.unsupported_types) if device is not None else (),
        )
