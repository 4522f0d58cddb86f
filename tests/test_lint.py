"""ruff, mypy and the import contracts run with the tests, so the one test command also keeps the code
clean, the core's types consistent and the layers where pyproject.toml says they are."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff comes with the test extra"
    out = subprocess.run([ruff, "check", "desktop_app", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_layers_hold():
    """pyproject.toml's [tool.importlinter] contracts: no layer imports one above it; core has no Qt."""
    lint = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter comes with the test extra"
    out = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr


def test_mypy_is_clean_on_the_core():
    """[tool.mypy] in pyproject.toml: desktop_app/core, strict on the modules others build on."""
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr
