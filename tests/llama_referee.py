"""What llama.cpp itself makes of a GGUF file: run in a child, one file per run (it may crash).

    python tests/llama_referee.py FILE [--load]

Prints one JSON line: ``{"gguf": true|false, "error": "<llama.cpp's first error line>"}`` from
``gguf_init_from_file`` (the header, as llama.cpp reads it); with ``--load`` also ``"load"`` from
``llama_model_load_from_file`` (vocab only, no weights: what a load checks before touching tensor
data). A crash shows as the child's exit status.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys


def main() -> int:
    path = sys.argv[1]
    import llama_cpp

    lib = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    errors: list[str] = []

    @llama_cpp.llama_log_callback
    def on_log(level, text, user_data):
        if level == 4:
            errors.append(text.decode("utf-8", "replace").strip())

    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))
    base = ctypes.CDLL(os.path.join(lib, "libggml-base.so"))
    base.ggml_log_set(on_log, ctypes.c_void_p(0))  # gguf_* log through ggml's own logger

    class Params(ctypes.Structure):
        _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]

    base.gguf_init_from_file.restype = ctypes.c_void_p
    base.gguf_init_from_file.argtypes = [ctypes.c_char_p, Params]
    base.gguf_free.argtypes = [ctypes.c_void_p]
    ctx = base.gguf_init_from_file(path.encode(), Params(True, None))
    out: dict = {"gguf": bool(ctx), "error": errors[0] if errors else ""}
    if ctx:
        base.gguf_free(ctx)
    if "--load" in sys.argv and ctx:
        errors.clear()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = "--full" not in sys.argv
        model = llama_cpp.llama_model_load_from_file(path.encode(), params)
        out["load"] = bool(model)
        out["load_error"] = next((e for e in errors if "failed to load model" not in e), errors[0] if errors else "")
        if model:
            llama_cpp.llama_model_free(model)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
