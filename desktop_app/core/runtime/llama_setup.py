"""In a child process: make llama.cpp run the way the runtime check decided. Call before loading a model.

    import llama_cpp
    config = setup_llama()

* Builds with ``GGML_BACKEND_DL`` keep every backend (and every CPU variant) as a plug-in library;
  llama-cpp-python has no binding for ``ggml_backend_load_all`` and so loads none, and llama.cpp
  then refuses every model ("no backends are loaded"). Here they are loaded: the CPU variant the
  configuration names (or ggml's own pick), then the GPU and RPC backends.
* ``use_extra_bufts`` has no ``Llama()`` argument: the default model parameters llama-cpp-python
  starts from are patched in this process, so ``Llama``, the low-level calls and every helper
  built on them get it.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal

from desktop_app.core.runtime.config import FAULT_MIN_TOKENS, RuntimeConfig, faulty_configs

_CPU_VARIANT_RE = re.compile(r"^(?:lib)?ggml-cpu-([A-Za-z0-9_]+)\.(?:so|dylib|dll)$")
_BACKEND_RE = re.compile(r"^(?:lib)?ggml-([a-z0-9]+)\.(?:so|dylib|dll)$")
_NOT_BACKENDS = {"base", "cpu"}
_done: RuntimeConfig | None = None


def lib_dir() -> str | None:
    import llama_cpp

    folder = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    return folder if os.path.isdir(folder) else None


def _ggml(folder: str) -> ctypes.CDLL:
    for name in ("libggml.so", "libggml.dylib", "ggml.dll", "libggml.dll"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            lib = ctypes.CDLL(path)  # the same library llama_cpp loaded: dlopen counts references
            lib.ggml_backend_reg_count.restype = ctypes.c_size_t
            lib.ggml_backend_load.restype = ctypes.c_void_p
            lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
            return lib
    raise OSError(f"ggml's library is not in {folder}")


def cpu_variant_files(folder: str) -> dict[str, str]:
    """CPU variant name → library path, for builds with several (``GGML_CPU_ALL_VARIANTS``)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    return {m.group(1): os.path.join(folder, n) for n in sorted(names) if (m := _CPU_VARIANT_RE.match(n))}


def variant_scores(folder: str) -> list[tuple[str, int]]:
    """Each CPU variant with the score ggml gives it on this CPU (0: cannot run here), best first."""
    out = []
    for name, path in cpu_variant_files(folder).items():
        try:
            lib = ctypes.CDLL(path)
            lib.ggml_backend_score.restype = ctypes.c_int
            score = int(lib.ggml_backend_score())
        except (OSError, AttributeError):
            score = 0
        out.append((name, score))
    return sorted(out, key=lambda x: -x[1])


def _load_backends(config: RuntimeConfig) -> None:
    folder = lib_dir()
    if folder is None:
        return
    ggml = _ggml(folder)
    if ggml.ggml_backend_reg_count() > 0:
        return  # backends are built in (the usual pip build): nothing to load
    variants = cpu_variant_files(folder)
    if config.cpu_variant:
        path = variants.get(config.cpu_variant)
        if path is None or not ggml.ggml_backend_load(path.encode()):
            raise RuntimeError(f"llama.cpp's CPU variant {config.cpu_variant!r} could not be loaded from {folder}.")
        for name in sorted(os.listdir(folder)):
            m = _BACKEND_RE.match(name)
            if m and m.group(1) not in _NOT_BACKENDS and name not in ("libggml.so", "ggml.dll", "libggml.dylib"):
                ggml.ggml_backend_load(os.path.join(folder, name).encode())
    else:
        ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
        ggml.ggml_backend_load_all_from_path(folder.encode())
    if ggml.ggml_backend_reg_count() == 0:
        raise RuntimeError(f"No llama.cpp backend could be loaded from {folder}.")


def _no_extra_bufts() -> None:
    import llama_cpp
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params

    def default_params():
        params = original()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = default_params
    llama_cpp.llama_model_default_params = default_params


def _simulate_fault() -> None:
    """Test-only: die like llama.cpp's AMX kernels do, on the first batch of more than a few tokens."""
    import llama_cpp
    import llama_cpp.llama_cpp as low

    original = low.llama_decode

    def decode(ctx, batch):
        if batch.n_tokens >= FAULT_MIN_TOKENS:
            os.kill(os.getpid(), signal.SIGILL)
        return original(ctx, batch)

    low.llama_decode = decode
    llama_cpp.llama_decode = decode


def setup_llama(config: RuntimeConfig | None = None) -> RuntimeConfig:
    """Apply ``config`` (default: the one in the environment) to llama.cpp in this process, once.

    Raises:
        RuntimeError: the configuration names a CPU variant this build does not have, or no
            backend could be loaded.
    """
    global _done
    if _done is not None:
        return _done
    config = config or RuntimeConfig.from_env()
    _load_backends(config)
    if not config.extra_bufts:
        _no_extra_bufts()
    if config.name in faulty_configs():
        _simulate_fault()
    _done = config
    return config


def llama_threads(config: RuntimeConfig, requested: int | None = None) -> dict[str, int]:
    """``Llama()`` keyword arguments for the threads: the request, else the configuration's."""
    if not (requested or config.n_threads):
        from desktop_app.core.runtime.threads import default_threads

        requested = default_threads()[0]
    n = requested or config.n_threads
    return {"n_threads": n, "n_threads_batch": requested or config.n_threads_batch or n}
