"""Before the window: can Qt's platform plugin load here? (Linux; stdlib only, no Qt imported.)

On a Linux desktop without a few small X11 libraries (Debian 12's default install lacks
libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1) Qt prints "Could not load the Qt platform plugin
xcb" and aborts the process. Here the plugin Qt will try is loaded first (ldd lists the missing
libraries only when that fails), and the user gets one line naming the packages to install for
their distribution.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# library (soname) -> (Debian/Ubuntu package, Fedora package)
PACKAGES = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl"),
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.M)
_CANNOT_OPEN = re.compile(r"(\S+\.so[.\d]*): cannot open shared object file")


def candidate_platforms(env: Mapping[str, str]) -> list[str]:
    """The platform plugins Qt will try, in order (what QT_QPA_PLATFORM names, else Qt's default)."""
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return [p.split(":")[0].strip() for p in chosen.split(";") if p.split(":")[0].strip()]
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
        return ["wayland", "xcb"]
    return ["xcb"]


def plugin_path(platform: str) -> Path | None:
    """PySide6's plugin file for ``platform`` (without importing PySide6)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "Qt" / "plugins" / "platforms" / f"libq{platform}.so"
    return path if path.is_file() else None


def _ldd(path: Path) -> str | None:
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        return subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def missing_libraries(path: Path, ldd: Callable[[Path], str | None] | None = None) -> list[str]:
    """The shared libraries the dynamic loader cannot find for ``path``.

    By default the plugin is loaded (Qt loads it next anyway, so a start where it loads costs
    nothing more); only when that fails is ``ldd`` asked for all the missing ones, and without
    ldd the loader's own message names the first. A given ``ldd`` is asked directly.
    """
    if ldd is None:
        try:
            ctypes.CDLL(str(path))
        except OSError as exc:
            out = _ldd(path)
            if out is None:
                m = _CANNOT_OPEN.search(str(exc))
                return [m.group(1)] if m else []
            return list(dict.fromkeys(_NOT_FOUND.findall(out)))
        return []
    out = ldd(path)
    return list(dict.fromkeys(_NOT_FOUND.findall(out or "")))


def install_hint(missing: list[str]) -> str:
    """The packages to install, for Debian/Ubuntu and for Fedora."""
    debian = [PACKAGES[lib][0] for lib in missing if lib in PACKAGES]
    fedora = [PACKAGES[lib][1] for lib in missing if lib in PACKAGES]
    unknown = [lib for lib in missing if lib not in PACKAGES]
    hint = ""
    if debian:
        hint = (f"On Debian/Ubuntu: sudo apt install {' '.join(dict.fromkeys(debian))}; "
                f"on Fedora: sudo dnf install {' '.join(dict.fromkeys(fedora))}.")  # fmt: skip
    if unknown:
        hint += f" Install the package that provides {', '.join(unknown)}."
    return hint.strip()


def platform_problem(
    env: Mapping[str, str] | None = None, ldd: Callable[[Path], str | None] | None = None, platform: str | None = None
) -> str | None:
    """One line saying what to install when no platform plugin Qt will try can load; None when one
    can (or when this is not Linux, or the plugin is not found where PySide6 keeps it)."""
    if not (platform or sys.platform).startswith("linux"):
        return None
    tried: dict[str, list[str]] = {}
    for name in candidate_platforms(os.environ if env is None else env):
        path = plugin_path(name)
        if path is None:
            return None  # a plugin we do not know of: Qt says what it thinks
        missing = missing_libraries(path, ldd)
        if not missing:
            return None
        tried[name] = missing
    if not tried:
        return None
    every = list(dict.fromkeys(lib for libs in tried.values() for lib in libs))
    names = " or ".join(tried)
    return (f"QuantDesk's window cannot open: Qt's {names} platform needs {', '.join(every)}, which "
            f"{'is' if len(every) == 1 else 'are'} not installed. {install_hint(every)}")  # fmt: skip
