"""Child process for :mod:`desktop_app.core.quantize`: src dst ftype threads."""

from __future__ import annotations

import ctypes
import sys


def main() -> int:
    src, dst, ftype, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    import llama_cpp

    from desktop_app.core.runtime.llama_setup import llama_threads, setup_llama

    config = setup_llama()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = threads or llama_threads(config)["n_threads"]
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        print(f"llama_model_quantize returned {rc}", file=sys.stderr)
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())
