"""How llama.cpp runs on this machine: one configuration, passed to every child process by environment.

Qt-free and import-light: the children read it before they import llama_cpp.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

RUNTIME_ENV = "QUANTDESK_LLAMA_RUNTIME"
# Test-only: comma-separated configuration names ("*": all) whose children die with SIGILL on their
# first prompt of more than a few tokens, as llama.cpp does on CPUs that advertise AMX but fault on it.
FAULT_ENV = "QUANTDESK_TEST_FAULTY_RUNTIMES"
FAULT_MIN_TOKENS = 5

DEFAULT = "default"
NO_REPACK = "no_repack"
VARIANT_PREFIX = "cpu_"


@dataclass(frozen=True)
class RuntimeConfig:
    """What the children apply before loading a model.

    ``extra_bufts`` is llama.cpp's ``use_extra_bufts`` (``--repack`` / ``--no-repack``): weights
    copied into the CPU_REPACK (and, where built in, AMX) buffers for faster matrix kernels.
    ``cpu_variant`` names a ``libggml-cpu-<variant>`` library to load instead of the one ggml
    would pick, in builds with ``GGML_BACKEND_DL`` and several CPU variants; empty: ggml's choice.
    Threads of 0 mean "llama.cpp's default here" (resolved by the parent before it starts a child).
    """

    name: str = DEFAULT
    extra_bufts: bool = True
    cpu_variant: str = ""
    n_threads: int = 0
    n_threads_batch: int = 0

    @property
    def label(self) -> str:
        """In words, for the Hardware page."""
        if self.name == DEFAULT:
            return "llama.cpp's defaults (weight repacking on)"
        parts = []
        if self.cpu_variant:
            parts.append(f"with its {self.cpu_variant} CPU variant")
        if not self.extra_bufts:
            parts.append("without weight repacking")
        return "llama.cpp " + " and ".join(parts) if parts else self.name

    def with_threads(self, n_threads: int, n_threads_batch: int | None = None) -> RuntimeConfig:
        return replace(self, n_threads=n_threads, n_threads_batch=n_threads_batch or n_threads)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: object) -> RuntimeConfig:
        """Rebuild from :meth:`to_json`'s object; unknown or ill-typed fields fall back to defaults."""
        if not isinstance(data, dict):
            return cls()
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            value = data.get(f.name)
            default = getattr(cls, f.name)
            if type(value) is type(default):  # exact: a bool is not taken for a thread count, nor the reverse
                kwargs[f.name] = value
        config = cls(**kwargs)
        if not (0 <= config.n_threads <= 4096 and 0 <= config.n_threads_batch <= 4096):
            config = replace(config, n_threads=0, n_threads_batch=0)
        return config

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RuntimeConfig:
        text = (environ if environ is not None else os.environ).get(RUNTIME_ENV, "")
        try:
            return cls.from_dict(json.loads(text)) if text else cls()
        except ValueError:
            return cls()


def ladder(variants: list[str]) -> list[RuntimeConfig]:
    """The configurations to try, safest last: llama.cpp's defaults, then without extra buffer
    types (no repacking, no AMX), then each lower CPU variant (best first) without them."""
    configs = [RuntimeConfig(), RuntimeConfig(name=NO_REPACK, extra_bufts=False)]
    for v in variants[1:]:  # variants[0] is the one ggml picks by itself
        configs.append(RuntimeConfig(name=VARIANT_PREFIX + v, extra_bufts=False, cpu_variant=v))
    return configs


def faulty_configs(environ: dict[str, str] | None = None) -> set[str]:
    text = (environ if environ is not None else os.environ).get(FAULT_ENV, "")
    return {part.strip() for part in text.split(",") if part.strip()}
