"""What the machine has, as plain dataclasses that serialise to the `quantdesk hardware` JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from desktop_app.core.runtime.selfcheck import RuntimeChoice


@dataclass(frozen=True)
class CpuInfo:
    name: str
    physical_cores: int | None
    logical_cores: int | None
    features: list[str]  # SIMD features llama.cpp can use, in llama.cpp's own spelling
    architecture: str = ""


@dataclass(frozen=True)
class RamInfo:
    total_bytes: int
    available_bytes: int


@dataclass(frozen=True)
class GpuInfo:
    name: str
    vendor: str  # nvidia | amd | apple | intel | other
    backend: str  # the llama.cpp backend that drives it: CUDA, ROCm, Metal, Vulkan, SYCL
    vram_total_bytes: int | None
    vram_free_bytes: int | None
    unified_memory: bool
    source: str = ""  # where the numbers come from (NVML, sysfs, sysctl, llama.cpp)
    note: str = ""


@dataclass(frozen=True)
class LlamaDevice:
    name: str
    description: str
    type: str  # cpu | gpu | igpu | accel
    memory_total_bytes: int | None
    memory_free_bytes: int | None
    # asked of the device as llama.cpp asks when it places a weight (GPUs only)
    max_tensor_bytes: int | None = None  # larger weights, or matmul results, stay in RAM; None: no limit
    unsupported_types: list[str] = field(default_factory=list)  # weight types whose matmul it cannot run


@dataclass(frozen=True)
class LlamaCppInfo:
    installed: bool
    version: str | None  # llama-cpp-python's version
    ggml_version: str | None
    backends: list[str]  # backend libraries present in this build (CPU, CUDA, Metal, …)
    gpu_offload_supported: bool
    devices: list[LlamaDevice]
    system_info: str = ""  # llama_print_system_info(): the CPU features this build uses
    error: str = ""  # why the build could not be probed, if it could not
    gpu_build_command: str = ""  # how to get a build that offloads to the GPUs found here
    gpu_build_hint: str = ""
    gpu_build_commands: dict[str, str] = field(default_factory=dict)  # backend -> command
    runtime: RuntimeChoice | None = None  # how llama.cpp runs here (the runtime check), None if not installed


@dataclass(frozen=True)
class HardwareInfo:
    cpu: CpuInfo
    ram: RamInfo
    gpus: list[GpuInfo]
    llama_cpp: LlamaCppInfo
    os: str = ""
    notes: list[str] = field(default_factory=list)  # probes that failed, and why

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.llama_cpp.runtime is not None:
            d["llama_cpp"]["runtime"] = self.llama_cpp.runtime.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> HardwareInfo:
        """Rebuild from :meth:`to_dict` output (or `quantdesk hardware --json` recorded elsewhere)."""
        ll = dict(d["llama_cpp"])
        ll["devices"] = [LlamaDevice(**x) for x in ll.get("devices", [])]
        ll["runtime"] = RuntimeChoice.from_dict(ll["runtime"]) if ll.get("runtime") else None
        known = {f for f in LlamaCppInfo.__dataclass_fields__}
        return cls(
            cpu=CpuInfo(**d["cpu"]),
            ram=RamInfo(**d["ram"]),
            gpus=[GpuInfo(**g) for g in d.get("gpus", [])],
            llama_cpp=LlamaCppInfo(**{k: v for k, v in ll.items() if k in known}),
            os=d.get("os", ""),
            notes=list(d.get("notes", [])),
        )
