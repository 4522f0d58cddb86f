"""Where a llama.cpp build keeps its backends, and loading them in builds that keep them as plug-ins.

A llama-cpp-python wheel built with ``GGML_BACKEND_DL`` (and ``GGML_CPU_ALL_VARIANTS``) has no CPU
backend linked in: each backend is a library loaded at run time, and its CPU variants
(``libggml-cpu-haswell.so``, ``-icelake``, ``-zen4`` …) land in ``site-packages/bin``, apart from
llama-cpp-python's own ``lib`` folder. llama-cpp-python loads none of them (it has no binding for
``ggml_backend_load_all``), so llama.cpp refuses every model ("no backends are loaded").
:func:`load_backends` loads the CPU variant (the one named, else the best ggml scores for this CPU)
and every other backend once. It uses ctypes only, so the device probe can use it without
importing llama_cpp.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
from dataclasses import dataclass, field

_LIB_RE = re.compile(r"^(?:lib)?ggml-([a-z0-9]+)(?:-([A-Za-z0-9_]+))?\.(?:so|dylib|dll)$")
_NOT_BACKENDS = {"base"}

PACKAGE = "llama-cpp-python"


def llama_cpp_version() -> str | None:
    """llama-cpp-python's installed version, from its metadata (llama_cpp is not imported)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def llama_cpp_lib_dir() -> str | None:
    """Where llama-cpp-python keeps its shared libraries, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        lib = os.path.join(location, "lib")
        if os.path.isdir(lib):
            return lib
    return None


def backend_dirs(lib_dir: str) -> list[str]:
    """``lib_dir`` (llama-cpp-python's ``lib``) and, if pip put plug-ins there, ``site-packages/bin``."""
    dirs = [lib_dir]
    extra = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(lib_dir))), "bin")
    try:
        if any(_LIB_RE.match(n) for n in os.listdir(extra)):
            dirs.append(extra)
    except OSError:
        pass
    return dirs


@dataclass
class BackendFiles:
    cpu_variants: dict[str, str] = field(default_factory=dict)  # haswell -> path
    cpu: str | None = None  # a single libggml-cpu (a plug-in build without variants)
    others: dict[str, str] = field(default_factory=dict)  # vulkan -> path, rpc -> path, cuda -> path


def backend_files(dirs: list[str]) -> BackendFiles:
    """The backend libraries in ``dirs``; a name found in two folders counts once (the first)."""
    found = BackendFiles()
    for folder in dirs:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            m = _LIB_RE.match(name)
            if not m or m.group(1) in _NOT_BACKENDS:
                continue
            path = os.path.join(folder, name)
            if m.group(1) == "cpu":
                if m.group(2):
                    found.cpu_variants.setdefault(m.group(2), path)
                else:
                    found.cpu = found.cpu or path
            elif not m.group(2):
                found.others.setdefault(m.group(1), path)
    return found


def variant_scores(files: BackendFiles) -> list[tuple[str, int]]:
    """Each CPU variant with the score ggml itself gives it on this CPU (0: cannot run here), best first."""
    out = []
    for name, path in files.cpu_variants.items():
        try:
            lib = ctypes.CDLL(path)
            lib.ggml_backend_score.restype = ctypes.c_int
            score = int(lib.ggml_backend_score())
        except (OSError, AttributeError):
            score = 0
        out.append((name, score))
    return sorted(out, key=lambda x: -x[1])


def ggml_library(lib_dir: str) -> ctypes.CDLL:
    """ggml's functions as llama.cpp itself links them: through libllama's handle.

    A wheel cannot hold symlinks, so ``libggml.so``, ``libggml.so.0`` and ``libggml.so.0.25.3`` are
    three files; opening one by path can load a second ggml with a registry of its own, and
    backends loaded there are not llama.cpp's. ``dlsym`` on libllama's handle searches the libraries
    libllama was linked with, which are the ones it uses.

    Raises:
        OSError: libllama is not in ``lib_dir``.
    """
    for name in ("libllama.so", "libllama.dylib", "llama.dll", "libllama.dll"):
        path = os.path.join(lib_dir, name)
        if os.path.exists(path):
            lib = ctypes.CDLL(path)  # the library llama_cpp loaded, if it did: same file, same handle
            lib.ggml_backend_reg_count.restype = ctypes.c_size_t
            lib.ggml_backend_load.restype = ctypes.c_void_p
            lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
            return lib
    raise OSError(f"llama.cpp's library is not in {lib_dir}")


def load_backends(ggml: ctypes.CDLL, dirs: list[str], cpu_variant: str = "") -> list[str]:
    """Load the backends of a plug-in build; nothing when they are built in. Returns what was loaded.

    Raises:
        RuntimeError: the CPU variant asked for is not there, or no CPU backend could be loaded.
    """
    if ggml.ggml_backend_reg_count() > 0:
        return []
    files = backend_files(dirs)
    if cpu_variant:
        cpu = files.cpu_variants.get(cpu_variant)
        if cpu is None:
            raise RuntimeError(f"llama.cpp's CPU variant {cpu_variant!r} is not in {', '.join(dirs)}.")
    else:
        best = [v for v, score in variant_scores(files) if score > 0]
        cpu = files.cpu_variants[best[0]] if best else files.cpu
    loaded = []
    if cpu is None or not ggml.ggml_backend_load(cpu.encode()):
        raise RuntimeError(f"No CPU backend of llama.cpp could be loaded from {', '.join(dirs)}.")
    loaded.append(os.path.basename(cpu))
    for path in files.others.values():
        if ggml.ggml_backend_load(path.encode()):  # a GPU backend without its driver just does not load
            loaded.append(os.path.basename(path))
    return loaded
