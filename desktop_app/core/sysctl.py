"""macOS's sysctl, for the CPU facts the hardware look and the runtime check read there."""

from __future__ import annotations

import subprocess


def run_sysctl(key: str) -> str | None:
    """Read one macOS sysctl value; None when it does not exist."""
    try:
        out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
