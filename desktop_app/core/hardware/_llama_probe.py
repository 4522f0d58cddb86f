"""Ask this llama.cpp build what it can do. Run as a child process by `llama_build.probe_llama_cpp`.

It loads llama.cpp's shared libraries with ctypes (not the llama_cpp Python package) and prints
one JSON object. Being a separate process, a GPU driver that hangs or aborts while llama.cpp
initialises it costs a message, not the app.
"""

from __future__ import annotations

import ctypes
import json
import sys

from desktop_app.core.runtime.backends import backend_dirs, ggml_library, load_backends

DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}


def _devices(ggml: ctypes.CDLL) -> list[dict]:
    ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
    ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(ggml, fn).restype = ctypes.c_char_p
        getattr(ggml, fn).argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_dev_type.restype = ctypes.c_int
    ggml.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_dev_memory.restype = None
    ggml.ggml_backend_dev_memory.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    devices = []
    for i in range(ggml.ggml_backend_dev_count()):
        dev = ggml.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        ggml.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        devices.append(
            {
                "name": (ggml.ggml_backend_dev_name(dev) or b"").decode("utf-8", "replace"),
                "description": (ggml.ggml_backend_dev_description(dev) or b"").decode("utf-8", "replace"),
                "type": DEVICE_TYPES.get(ggml.ggml_backend_dev_type(dev), "other"),
                "memory_total_bytes": total.value or None,
                "memory_free_bytes": free.value or None,
            }
        )
    return devices


def probe(lib_dir: str) -> dict:
    # ggml through libllama's handle: the ggml llama.cpp uses (see backends.ggml_library)
    ggml = llama = ggml_library(lib_dir)
    # builds with GGML_BACKEND_DL keep every backend as a plug-in: load them as the children do
    load_backends(ggml, backend_dirs(lib_dir))
    devices = _devices(ggml)
    llama.llama_supports_gpu_offload.restype = ctypes.c_bool
    llama.llama_print_system_info.restype = ctypes.c_char_p
    return {
        "gpu_offload_supported": bool(llama.llama_supports_gpu_offload()),
        "system_info": (llama.llama_print_system_info() or b"").decode("utf-8", "replace").strip(),
        "devices": devices,
    }


if __name__ == "__main__":
    json.dump(probe(sys.argv[1]), sys.stdout)
