"""How many threads llama.cpp itself would use here: its ``cpu_get_num_math()``.

llama.cpp (``common.cpp``) uses one thread per physical core, and on hybrid Intel CPUs only the
performance cores (efficiency cores make the lock-step matrix threads wait). llama-cpp-python's
``Llama`` instead defaults to ``cpu_count() // 2`` for generation, which is one thread on a 2-core
machine and half the cores on any CPU without SMT (every Apple Silicon Mac).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path

Sysctl = Callable[[str], "str | None"]


def parse_cpu_list(text: str) -> list[int]:
    """``0-3,8,10-11`` → [0, 1, 2, 3, 8, 10, 11] (the kernel's cpulist format)."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            return []
        if last < first or last - first > 65536:
            return []
        cpus.extend(range(first, last + 1))
    return cpus


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def _physical_cores_linux(sys_root: Path, cpus: list[int] | None = None) -> int:
    """Distinct cores among ``cpus`` (all CPUs when None), as llama.cpp counts them: by thread siblings."""
    cpu_dir = sys_root / "system" / "cpu"
    if cpus is None:
        try:
            cpus = sorted(int(p.name[3:]) for p in cpu_dir.glob("cpu[0-9]*") if p.name[3:].isdigit())
        except OSError:
            cpus = []
    siblings = set()
    for cpu in cpus:
        text = _read(cpu_dir / f"cpu{cpu}" / "topology" / "thread_siblings")
        if text is not None:
            siblings.add(text.strip())
    return len(siblings)


def default_threads(
    *,
    system: str | None = None,
    sys_root: str | Path = "/sys/devices",
    sysctl: Sysctl | None = None,
    logical: int | None = None,
) -> tuple[int, str]:
    """llama.cpp's default thread count on this machine, and in words what it counts.

    Arguments replace the real probes (for tests). Never raises; the answer is at least 1.
    """
    system = system or platform.system()
    logical = logical or os.cpu_count() or 1
    if system == "Linux":
        root = Path(sys_root)
        p_cores = _read(root / "cpu_core" / "cpus")  # Intel hybrid CPUs: the performance cores
        if p_cores and _read(root / "cpu_atom" / "cpus"):
            n = _physical_cores_linux(root, parse_cpu_list(p_cores))
            if n > 0:
                return n, "performance cores"
        n = _physical_cores_linux(root)
        if n > 0:
            return n, "physical cores"
    elif system == "Darwin":
        if sysctl is None:
            from desktop_app.core.sysctl import run_sysctl

            sysctl = run_sysctl
        for key, basis in (("hw.perflevel0.physicalcpu", "performance cores"), ("hw.physicalcpu", "physical cores")):
            value = sysctl(key)
            if value and value.strip().isdigit() and int(value) > 0:
                return int(value), basis
    else:
        import psutil

        n = psutil.cpu_count(logical=False)
        if n:
            return int(n), "physical cores"
    # llama.cpp's own fallback when it cannot tell: all logical CPUs up to 4, else half of them
    return (logical, "logical CPUs") if logical <= 4 else (logical // 2, "half the logical CPUs")
