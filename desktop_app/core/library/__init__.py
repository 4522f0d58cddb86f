"""The local model library: scanning folders, the HF cache and the starter model."""

from desktop_app.core.library.cache import LibraryCache
from desktop_app.core.library.entry import LibraryEntry, ScanProgress, ScanResult
from desktop_app.core.library.scanner import iter_scan, scan_library
from desktop_app.core.starter import StarterModel, find_starter_model

__all__ = [
    "LibraryCache",
    "LibraryEntry",
    "ScanProgress",
    "ScanResult",
    "StarterModel",
    "find_starter_model",
    "iter_scan",
    "scan_library",
]
