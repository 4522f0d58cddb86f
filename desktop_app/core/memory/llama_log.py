"""Read what llama.cpp really allocated from the lines it logs while loading a model.

    load_tensors:   CPU_Mapped model buffer size =    98.87 MiB
    load_tensors:   CPU_REPACK model buffer size =     7.59 MiB
    llama_context:        CPU  output buffer size =     0.19 MiB
    llama_kv_cache:        CPU KV buffer size =    90.00 MiB
    sched_reserve:        CPU compute buffer size =    99.38 MiB

These are the ground truth a prediction is held against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MIB = 1024 * 1024
_LINE = re.compile(
    r"(?P<buft>[A-Za-z0-9_]+)\s+(?P<kind>model|output|KV|compute)\s+buffer size\s*=\s*(?P<mib>[0-9.]+)\s*MiB"
)
# printed even with no_alloc, when the KV buffer itself logs 0
_KV_SIZE = re.compile(r"llama_kv_cache: size =\s*(?P<mib>[0-9.]+) MiB")
_RS = re.compile(r"(?P<buft>[A-Za-z0-9_]+)\s+RS buffer size\s*=\s*(?P<mib>[0-9.]+)\s*MiB")


@dataclass
class MeasuredBuffers:
    """Bytes per buffer type (e.g. 'CPU_Mapped', 'CPU_REPACK', 'CUDA0') for each kind of buffer."""

    model: dict[str, int] = field(default_factory=dict)
    kv: dict[str, int] = field(default_factory=dict)
    compute: dict[str, int] = field(default_factory=dict)
    output: dict[str, int] = field(default_factory=dict)
    recurrent: dict[str, int] = field(default_factory=dict)
    kv_caches: list[int] = field(default_factory=list)  # each cache's size (SWA models have two)

    @property
    def weights_bytes(self) -> int:
        return sum(self.model.values())

    @property
    def kv_cache_bytes(self) -> int:
        buffers = sum(self.kv.values())
        return (buffers or sum(self.kv_caches)) + sum(self.recurrent.values())

    @property
    def compute_bytes(self) -> int:
        return sum(self.compute.values())

    @property
    def output_bytes(self) -> int:
        return sum(self.output.values())

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.compute_bytes + self.output_bytes

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "kv": self.kv,
            "compute": self.compute,
            "output": self.output,
            "recurrent": self.recurrent,
        }


def parse_llama_log(text: str) -> MeasuredBuffers:
    """Buffer sizes from a llama.cpp load log. Sizes are logged in MiB with two decimals."""
    out = MeasuredBuffers()
    kinds = {"model": out.model, "KV": out.kv, "compute": out.compute, "output": out.output}
    for line in text.splitlines():
        m = _LINE.search(line)
        if m:
            target = kinds[m.group("kind")]
            # the last value wins: llama.cpp logs the compute buffer again after re-reserving
            target[m.group("buft")] = round(float(m.group("mib")) * MIB)
            continue
        m = _KV_SIZE.search(line)
        if m:
            out.kv_caches.append(round(float(m.group("mib")) * MIB))
            continue
        m = _RS.search(line)
        if m:
            out.recurrent[m.group("buft")] = round(float(m.group("mib")) * MIB)
    return out
