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
# weight types a GPU is asked about (ggml type ids): the ones GGUF files use for matrices
WEIGHT_TYPES = {
    "F32": 0, "F16": 1, "BF16": 30, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10, "Q3_K": 11,
    "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "IQ2_XXS": 16, "IQ2_XS": 17, "IQ3_XXS": 18, "IQ1_S": 19, "IQ4_NL": 20,
    "IQ3_S": 21, "IQ2_S": 22, "IQ4_XS": 23, "IQ1_M": 29, "MXFP4": 39,
}  # fmt: skip
BATCH = 512  # llama.cpp asks about a weight with a batch of this many tokens (weight_buft_supported)
MAX_ROWS = 1 << 22  # with 4096 F32 columns: 64 GiB; a device that takes that is "no limit"


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


def _device_limits(ggml: ctypes.CDLL, dev: int) -> dict:
    """What llama.cpp will and will not put on this device, found the way llama.cpp itself decides
    (weight_buft_supported): a matmul of a weight with a 512-token batch, shown to the device's
    supports_op with a dummy buffer of its type. Metadata only: nothing is allocated.

    ``max_tensor_bytes``: the largest tensor the device takes (Vulkan: maxStorageBufferRange
    without 64-bit indexing, e.g. 128 MiB on Mesa's lavapipe; None if over 64 GiB).
    ``unsupported_types``: weight types whose matmul it cannot run (they stay in RAM).
    """
    for fn, res, args in (
        ("ggml_tensor_overhead", ctypes.c_size_t, []),
        ("ggml_init", ctypes.c_void_p, [_InitParams]),
        ("ggml_free", None, [ctypes.c_void_p]),
        ("ggml_new_tensor_2d", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]),
        ("ggml_mul_mat", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]),
        ("ggml_backend_dev_buffer_type", ctypes.c_void_p, [ctypes.c_void_p]),
        ("ggml_backend_buft_alloc_buffer", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t]),
        ("ggml_backend_buffer_free", None, [ctypes.c_void_p]),
        ("ggml_backend_dev_supports_op", ctypes.c_bool, [ctypes.c_void_p, ctypes.c_void_p]),
    ):
        getattr(ggml, fn).restype = res
        getattr(ggml, fn).argtypes = args
    buft = ggml.ggml_backend_dev_buffer_type(dev)
    buffer = ggml.ggml_backend_buft_alloc_buffer(buft, 0) if buft else None

    def supported(type_id: int, ne0: int, rows: int) -> bool:
        ctx = ggml.ggml_init(_InitParams(ggml.ggml_tensor_overhead() * 8, None, True))
        if not ctx:
            return False
        try:
            w = ggml.ggml_new_tensor_2d(ctx, type_id, ne0, rows)
            b = ggml.ggml_new_tensor_2d(ctx, 0, ne0, BATCH)
            op = ggml.ggml_mul_mat(ctx, w, b)
            # ggml_tensor starts {enum ggml_type type; struct ggml_backend_buffer * buffer; ...}
            ctypes.c_void_p.from_address(w + 8).value = buffer
            return bool(ggml.ggml_backend_dev_supports_op(dev, op))
        finally:
            ggml.ggml_free(ctx)

    try:
        unsupported = [name for name, tid in WEIGHT_TYPES.items() if not supported(tid, 4096, 256)]
        lo, hi = 0, MAX_ROWS  # rows of a 4096-column F32 weight (16 KiB a row) the device takes
        if supported(0, 4096, hi):
            limit = None
        else:
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if supported(0, 4096, mid) else (lo, mid - 1)
            limit = lo * 4096 * 4
    finally:
        if buffer:
            ggml.ggml_backend_buffer_free(buffer)
    return {"max_tensor_bytes": limit, "unsupported_types": unsupported}


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
        kind = DEVICE_TYPES.get(ggml.ggml_backend_dev_type(dev), "other")
        devices.append(
            {
                "name": (ggml.ggml_backend_dev_name(dev) or b"").decode("utf-8", "replace"),
                "description": (ggml.ggml_backend_dev_description(dev) or b"").decode("utf-8", "replace"),
                "type": kind,
                "memory_total_bytes": total.value or None,
                "memory_free_bytes": free.value or None,
                **(_device_limits(ggml, dev) if kind in ("gpu", "igpu") else {}),
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
