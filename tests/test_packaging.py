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
