"""The core must work where Qt is absent: enforced, not hoped."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import desktop_app.core

CORE = pathlib.Path(desktop_app.core.__file__).parent
FORBIDDEN = ("PySide6", "shiboken6", "superqt", "desktop_app.ui")


def test_no_core_module_imports_qt():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(CORE)}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert offenders == []


def test_core_runs_with_qt_unimportable(tmp_path):
    """Import every core module and run a scan and a hardware probe with PySide6 blocked."""
    script = f"""
import sys, pkgutil, importlib
for name in {FORBIDDEN[:3]!r}:
    sys.modules[name] = None  # any import of it now raises ImportError
import desktop_app.core as core
for m in pkgutil.walk_packages(core.__path__, "desktop_app.core."):
    importlib.import_module(m.name)
from desktop_app.core.hardware import detect_hardware
from desktop_app.core.library import scan_library
from desktop_app.core.settings import Settings
hw = detect_hardware()
result = scan_library(Settings(include_hf_cache=False))
print(hw.ram.total_bytes > 0, len(result.models))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "1"]
