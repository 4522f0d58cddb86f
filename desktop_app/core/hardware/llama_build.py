"""What the installed llama.cpp build (from llama-cpp-python) can do, found without importing it.

Importing ``llama_cpp`` costs time and can abort the process on a broken GPU driver, so the version
comes from package metadata, the backends from the shared libraries it ships, and the device list
from a short child process (see ``_llama_probe``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from desktop_app.core.child import child_command, child_env
from desktop_app.core.errors import ProbeError  # noqa: F401 (re-exported)
from desktop_app.core.hardware.types import GpuInfo, LlamaCppInfo, LlamaDevice
from desktop_app.core.runtime.backends import PACKAGE, backend_dirs, llama_cpp_lib_dir, llama_cpp_version

PROBE_TIMEOUT_S = 30
# backend library stem -> the name people know it by
BACKEND_LIBS = {
    "ggml-cpu": "CPU",
    "ggml-cuda": "CUDA",
    "ggml-metal": "Metal",
    "ggml-vulkan": "Vulkan",
    "ggml-hip": "ROCm",
    "ggml-sycl": "SYCL",
    "ggml-opencl": "OpenCL",
    "ggml-musa": "MUSA",
    "ggml-cann": "CANN",
    "ggml-blas": "BLAS",
    "ggml-rpc": "RPC",
}
GPU_BACKENDS = {"CUDA", "Metal", "Vulkan", "ROCm", "SYCL", "OpenCL", "MUSA", "CANN"}
_LIB_RE = re.compile(r"^(?:lib)?(ggml-[a-z0-9]+)(?:-[A-Za-z0-9_]+)?\.(?:so|dylib|dll)")
_VERSION_RE = re.compile(r"ggml-base\.so\.(\d+\.\d+\.\d+)$")


def backends_in(lib_dir: str) -> tuple[list[str], str | None]:
    """Backend names from the library files in ``lib_dir`` (and the plug-in folder of a
    GGML_BACKEND_DL wheel), and ggml's version if it shows."""

    found: list[str] = []
    version = None
    names = []
    for folder in backend_dirs(lib_dir):
        try:
            names += sorted(os.listdir(folder))
        except OSError:
            continue
    if not names:
        return [], None
    for name in names:
        m = _LIB_RE.match(name)
        if m and m.group(1) in BACKEND_LIBS and BACKEND_LIBS[m.group(1)] not in found:
            found.append(BACKEND_LIBS[m.group(1)])
        v = _VERSION_RE.search(name)
        if v:
            version = v.group(1)
    if not found and any(n.startswith(("libggml", "ggml")) for n in names):
        found.append("CPU")  # older builds link the CPU backend into libggml itself
    return found, version


# backend -> (CMAKE_ARGS flag, what the build needs)
GPU_BUILDS = {
    "CUDA": ("-DGGML_CUDA=on", "NVIDIA GPUs. Needs the CUDA toolkit (nvcc)."),
    "Metal": ("-DGGML_METAL=on", "Apple silicon Macs. Needs the Xcode command line tools."),
    "Vulkan": ("-DGGML_VULKAN=on", "AMD, Intel and NVIDIA GPUs. Needs the Vulkan SDK."),
    "ROCm": ("-DGGML_HIP=on", "AMD GPUs on Linux. Needs ROCm (hipcc)."),
}
VENDOR_BACKEND = {"nvidia": "CUDA", "apple": "Metal", "amd": "Vulkan", "intel": "Vulkan", "other": "Vulkan"}


def gpu_build_commands(*, system: str, version: str | None) -> dict[str, str]:
    """For each GPU backend, the exact command that reinstalls llama-cpp-python built for it."""
    pin = f"{PACKAGE}=={version}" if version else PACKAGE
    pip = f'"{sys.executable}" -m pip install --force-reinstall --no-cache-dir --no-deps {pin}'
    out = {}
    for backend, (flag, _need) in GPU_BUILDS.items():
        if backend == "Metal" and system not in ("Darwin", ""):
            continue
        if backend == "ROCm" and system != "Linux":
            continue
        out[backend] = f"set CMAKE_ARGS={flag} && {pip}" if system == "Windows" else f'CMAKE_ARGS="{flag}" {pip}'
    return out


def gpu_build_command(gpus: list[GpuInfo], *, system: str, version: str | None) -> tuple[str, str]:
    """The command for the GPUs found here (empty when there is none) and a sentence about it."""
    if not gpus:
        return "", (
            "No GPU was found, so llama.cpp runs on the CPU. If you add a GPU, pick its backend "
            "to get the command that rebuilds llama.cpp for it."
        )
    backend = VENDOR_BACKEND.get(gpus[0].vendor, "Vulkan")
    commands = gpu_build_commands(system=system, version=version)
    backend = backend if backend in commands else "Vulkan"
    return commands[backend], (
        f"Rebuilds llama.cpp with {backend} for your {gpus[0].name} (takes several minutes). "
        f"{GPU_BUILDS[backend][1]} Restart QuantDesk afterwards."
    )


def probe_llama_cpp(gpus: list[GpuInfo], *, system: str, run_probe: bool = True, cpu_features: list[str] | None = None,
                    recheck_runtime: bool = False) -> LlamaCppInfo:  # fmt: skip
    """Describe the installed llama.cpp build and how it runs here (the runtime check, when
    ``run_probe``: remembered, or run now the first time this build meets this CPU).
    Never raises; problems go into ``error``."""
    version = llama_cpp_version()
    lib_dir = llama_cpp_lib_dir()
    if version is None or lib_dir is None:
        cmd, hint = gpu_build_command(gpus, system=system, version=None)
        return LlamaCppInfo(
            gpu_build_commands=gpu_build_commands(system=system, version=None),
            installed=False,
            version=version,
            ggml_version=None,
            backends=[],
            gpu_offload_supported=False,
            devices=[],
            error="llama-cpp-python is not installed: QuantDesk cannot run models. "
            f"Install it with: {sys.executable} -m pip install {PACKAGE}",
            gpu_build_command=cmd,
            gpu_build_hint=hint,
        )
    backends, ggml_version = backends_in(lib_dir)
    devices: list[LlamaDevice] = []
    system_info = ""
    error = ""
    runtime = None
    offload = any(b in GPU_BACKENDS for b in backends)
    if run_probe:
        try:
            result = _run_probe(lib_dir)
            devices = [LlamaDevice(**d) for d in result["devices"]]
            # llama.cpp also says yes for a build with only the RPC backend (remote devices): the
            # app's claim is about this machine's GPUs, so a GPU backend must be there too
            offload = bool(result["gpu_offload_supported"]) and offload
            system_info = result["system_info"]
        except ProbeError as exc:
            error = str(exc)
        from desktop_app.core.runtime.selfcheck import ensure_runtime

        runtime = ensure_runtime(recheck=recheck_runtime, cpu_features=cpu_features, lib_dir=lib_dir)
        if runtime is not None and not runtime.works:
            error = (error + " " if error else "") + runtime.reason
    cmd, hint = ("", "") if offload else gpu_build_command(gpus, system=system, version=version)
    return LlamaCppInfo(
        gpu_build_commands={} if offload else gpu_build_commands(system=system, version=version),
        installed=True,
        version=version,
        ggml_version=ggml_version,
        backends=backends,
        gpu_offload_supported=offload,
        devices=devices,
        system_info=system_info,
        error=error,
        gpu_build_command=cmd,
        gpu_build_hint=hint,
        runtime=runtime,
    )


def _run_probe(lib_dir: str) -> dict:
    env = child_env()
    try:
        proc = subprocess.run(
            child_command("desktop_app.core.hardware._llama_probe", lib_dir),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProbeError(
            f"Asking llama.cpp for its devices took over {PROBE_TIMEOUT_S} s (a GPU driver hanging?)."
        ) from None
    except OSError as exc:
        raise ProbeError(f"Could not start the llama.cpp probe: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no message"]
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        raise ProbeError(f"llama.cpp failed while listing its devices ({how}): {tail[0]}")
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise ProbeError("llama.cpp's device probe printed something unexpected.") from None
