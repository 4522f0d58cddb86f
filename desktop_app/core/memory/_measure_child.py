"""Load a GGUF with llama.cpp and print the buffers it allocates, as JSON. Run by `measure.py`.

With ``--no-alloc`` llama.cpp only simulates the allocations (model and KV buffers then log 0,
the compute buffer its real size): no tensor data is read, so a sparse file with a real header is
enough. Runs in its own process: llama.cpp aborts the process on some bad inputs.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys

from desktop_app.core.gguf.quant_names import KV_TYPE_IDS

FLASH = {"auto": -1, "off": 0, "on": 1}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--ubatch", type=int, default=512)
    ap.add_argument("--gpu-layers", type=int, default=0)
    ap.add_argument("--kv-type", default="f16")
    ap.add_argument("--flash-attn", default="auto")
    ap.add_argument("--no-alloc", action="store_true")
    ap.add_argument("--no-mmap", action="store_true")
    ap.add_argument("--swa-full", action="store_true", help="full-size cache for sliding-window layers")
    args = ap.parse_args()

    import llama_cpp

    from desktop_app.core.runtime.llama_setup import llama_threads, setup_llama

    config = setup_llama()
    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def on_log(level, text, user_data):
        lines.append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = args.gpu_layers
    mp.no_alloc = args.no_alloc
    if args.no_alloc or args.no_mmap:
        mp.load_mode = 0  # no mmap
    model = llama_cpp.llama_model_load_from_file(args.path.encode(), mp)
    if not model:
        print(json.dumps({"error": "llama.cpp could not load the model", "log": "".join(lines)[-4000:]}))
        return 2
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = args.ctx
    cp.n_batch = args.batch
    cp.n_ubatch = args.ubatch
    cp.n_seq_max = 1
    threads = llama_threads(config)
    cp.n_threads, cp.n_threads_batch = threads["n_threads"], threads["n_threads_batch"]
    cp.type_k = KV_TYPE_IDS[args.kv_type]
    cp.type_v = KV_TYPE_IDS[args.kv_type]
    cp.flash_attn_type = FLASH[args.flash_attn]
    cp.swa_full = args.swa_full  # llama.cpp's default is True; QuantDesk's engine, like llama-server, uses False
    ctx = llama_cpp.llama_init_from_model(model, cp)
    log = "".join(lines)
    if not ctx:
        print(json.dumps({"error": "llama.cpp could not create a context", "log": log[-4000:]}))
        return 3
    print(json.dumps({"log": log}))
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
