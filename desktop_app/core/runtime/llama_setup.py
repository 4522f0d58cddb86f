"""In a child process: make llama.cpp run the way the runtime check decided. Call before loading a model.

    import llama_cpp
    config = setup_llama()

* Builds with ``GGML_BACKEND_DL`` keep every backend (and every CPU variant) as a plug-in library,
  which llama-cpp-python never loads (see :mod:`backends`): here they are, with the CPU variant the
  configuration names (or ggml's own pick).
* ``use_extra_bufts`` has no ``Llama()`` argument: the default model parameters llama-cpp-python
  starts from are patched in this process, so ``Llama``, the low-level calls and every helper
  built on them get it.
"""

from __future__ import annotations

import os
import signal

from desktop_app.core.errors import LlamaLoadError  # noqa: F401 (re-exported)
from desktop_app.core.runtime.backends import backend_dirs, ggml_library, load_backends
from desktop_app.core.runtime.config import FAULT_MIN_TOKENS, RuntimeConfig, faulty_configs

_done: RuntimeConfig | None = None


def lib_dir() -> str | None:
    import llama_cpp

    folder = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    return folder if os.path.isdir(folder) else None


def _load_backends(config: RuntimeConfig) -> None:
    folder = lib_dir()
    if folder is not None:
        load_backends(ggml_library(folder), backend_dirs(folder), config.cpu_variant)


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
    faulty = faulty_configs()
    if config.name in faulty or "*" in faulty:
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


GGML_LOG_LEVEL_ERROR = 4
_GENERIC = ("failed to load model", "failed to read tensor info", "failed to read key-value pairs",
            "failed to read tensor data", "failed to read header")  # fmt: skip
_log_callbacks: list = []  # ctypes callbacks must outlive every call llama.cpp makes to them


def load_failure_reason(error_lines: list[str]) -> str:
    """The most specific of llama.cpp's error lines while loading, without its function prefixes.

    llama.cpp logs the cause first ("gguf_init_from_file_impl: tensor 'x' has offset 64, expected 0")
    and then generic lines up the call stack ("failed to read tensor data", "failed to load model");
    the cause is the one a person can act on.
    """
    for line in error_lines:
        text = line.strip()
        while True:  # drop "llama_model_load: ", "error loading model: ", "gguf_init_from_file_impl: "
            head, sep, rest = text.partition(": ")
            if not sep or not (head.isidentifier() or head == "error loading model"):
                break
            text = rest.strip()
        if text and not any(g in text for g in _GENERIC):
            return text
    return ""


def capture_llama_log(lines: list[str] | None = None) -> list[str]:
    """Send llama.cpp's log into ``lines`` (all of it) and return the list its error lines go to."""
    import ctypes

    import llama_cpp

    errors: list[str] = []

    @llama_cpp.llama_log_callback
    def on_log(level, text, user_data):
        line = text.decode("utf-8", "replace")
        if lines is not None:
            lines.append(line)
        if level == GGML_LOG_LEVEL_ERROR:
            errors.append(line)

    _log_callbacks.append(on_log)
    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))
    return errors


def load_llama(log: list[str] | None = None, **kwargs):
    """``llama_cpp.Llama(**kwargs)``; on failure :class:`LlamaLoadError` with llama.cpp's reason
    (llama-cpp-python alone says only "Failed to load model from file"), or ours for a file llama.cpp
    would abort on (:func:`~desktop_app.core.gguf.checks.load_problem`)."""
    import llama_cpp

    from desktop_app.core.errors import QuantDeskError
    from desktop_app.core.gguf.checks import load_problem

    problem = ""
    try:
        problem = load_problem(kwargs["model_path"])
    except (OSError, QuantDeskError):
        pass  # not readable as a GGUF: llama.cpp says why below
    if problem:
        raise LlamaLoadError(problem)
    errors = capture_llama_log(log)
    try:
        return llama_cpp.Llama(**kwargs)
    except (ValueError, RuntimeError) as exc:
        raise LlamaLoadError(f"llama.cpp refused the model: {load_failure_reason(errors) or exc}") from None
