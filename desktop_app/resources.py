"""Files under the top-level ``resources/`` folder (icons, eval texts, metric modules).

An installed wheel carries them as ``desktop_app/_resources``; a source checkout reads the
folder beside the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resources_dir() -> Path:
    bundled = _PACKAGE_DIR / "_resources"
    return bundled if bundled.is_dir() else _PACKAGE_DIR.parent / "resources"


def resource_path(relative: str) -> Path:
    return resources_dir() / relative
