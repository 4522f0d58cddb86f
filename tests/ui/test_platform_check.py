"""Before the window: a platform plugin that cannot load is named with the packages to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from desktop_app.ui import platform_check as pc

DEBIAN_12_LDD = """\
\tlinux-vdso.so.1 (0x00007ffc)
\tlibQt6XcbQpa.so.6 => /x/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
"""


def test_what_qt_will_try():
    assert pc.candidate_platforms({}) == ["xcb"]
    assert pc.candidate_platforms({"WAYLAND_DISPLAY": "wayland-0"}) == ["wayland", "xcb"]
    assert pc.candidate_platforms({"QT_QPA_PLATFORM": "offscreen"}) == ["offscreen"]
    assert pc.candidate_platforms({"QT_QPA_PLATFORM": "wayland:foo=1;xcb"}) == ["wayland", "xcb"]


def test_a_bare_debian_12_gets_one_line_with_the_packages():
    said = pc.platform_problem({"DISPLAY": ":0"}, ldd=lambda _p: DEBIAN_12_LDD, platform="linux")
    assert said.startswith("QuantDesk's window cannot open: Qt's xcb platform needs libxcb-cursor.so.0, ")
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1;" in said
    assert "sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms." in said
    assert "\n" not in said


def test_one_plugin_that_loads_is_enough():
    def ldd(path):
        return DEBIAN_12_LDD if path.name == "libqxcb.so" else "\tlibc.so.6 => /lib/libc.so.6\n"

    assert pc.platform_problem({"WAYLAND_DISPLAY": "w"}, ldd=ldd, platform="linux") is None  # wayland loads
    assert pc.platform_problem({"QT_QPA_PLATFORM": "offscreen"}, ldd=ldd, platform="linux") is None
    assert pc.platform_problem({}, ldd=ldd, platform="win32") is None
    assert pc.platform_problem({"QT_QPA_PLATFORM": "nosuch"}, ldd=ldd, platform="linux") is None  # Qt's to say


def test_an_unknown_library_is_still_named():
    said = pc.install_hint(["libxcb-icccm.so.4", "libweird.so.3"])
    assert "libxcb-icccm4" in said and "provides libweird.so.3" in said


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not shutil.which("ldd"), reason="not Linux, or no ldd to hold the check to"
)
def test_the_real_xcb_plugin_here_agrees_with_ldd(monkeypatch):
    """Whatever this machine has installed, the check says what the loader says."""
    path = pc.plugin_path("xcb")
    assert path.name == "libqxcb.so" and path.parent.name == "platforms"
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
    missing = sorted({line.split()[0] for line in out.splitlines() if "not found" in line})
    assert sorted(pc.missing_libraries(path)) == missing
    monkeypatch.setattr(pc, "_ldd", lambda _p: None)  # no ldd: the loader's message names the first
    assert sorted(pc.missing_libraries(path))[:1] == missing[:1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="not Linux: the check only runs on Linux")
def test_the_command_says_it_instead_of_aborting(tmp_path):
    """With xcb made to miss a library, `quantdesk gui` exits 1 with the line, before Qt."""
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "QUANTDESK_DATA_DIR": str(tmp_path)}
    code = (
        "import sys; from desktop_app.ui import platform_check as pc; "
        "pc.missing_libraries = lambda path, ldd=None: ['libxcb-cursor.so.0']; "
        "from desktop_app.cli import main; sys.exit(main(['gui']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1 and "sudo apt install libxcb-cursor0" in out.stderr
    assert "Could not load the Qt platform plugin" not in out.stderr
