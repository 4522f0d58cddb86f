"""Numbers as people read them. Sizes in decimal units (as file managers and the Hub show them),
memory in binary units (as the OS reports RAM)."""

from __future__ import annotations


def format_bytes(n: int | None) -> str:
    """File sizes: 98.4 MB, 4.92 GB."""
    if n is None:
        return "?"
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= div:
            value = n / div
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"
    return f"{n} B"


def format_memory(n: int | None) -> str:
    """Memory: 23.5 GiB, 512 MiB."""
    if n is None:
        return "?"
    for unit, div in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def format_params(n: int | None) -> str:
    """Parameter counts: 135M, 7.2B."""
    if not n:
        return "?"
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            value = n / div
            return f"{value:.0f}{unit}" if value >= 100 else f"{value:.1f}{unit}"
    return str(n)
