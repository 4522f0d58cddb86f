"""The Debian packages a frozen QuantDesk folder needs: every shared library its ELF files link to
that the folder does not carry, mapped to its package with ``dpkg -S`` (on the Debian release the
.deb is built on). Prints one Depends line; what cannot be mapped goes to stderr.

    python3 packaging/deb_depends.py /opt/quantdesk
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

# sonames Qt's xcb platform plugin needs that a minimal system may lack, for when the build machine
# does not have them installed (dpkg -S cannot map what is not there)
KNOWN = {"libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
         "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0"}  # fmt: skip
# libraries only llama.cpp's GPU plug-ins link to: without them the plug-in does not load and the CPU
# is used (the Hardware page says so), so they are Recommends, not Depends
OPTIONAL = {"libvulkan1"}
# plugins for things QuantDesk never loads (SQL drivers, other platforms); their missing libraries
# are not dependencies
UNUSED = re.compile(
    r"/(sqldrivers|egldeviceintegrations|platforminputcontexts|platformthemes|generic)/|wayland|wlshell", re.IGNORECASE
)


def elf_files(root: str) -> list[str]:
    out = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(path)
    return out


def linked(root: str) -> tuple[set[str], set[str]]:
    """(system library paths, sonames not found). A soname the folder itself carries is not missing:
    llama.cpp's plug-ins find libggml-base in the process that loads them."""
    system, missing = set(), set()
    carried = {os.path.basename(p) for p in elf_files(root)} | {n for _d, _s, files in os.walk(root) for n in files}
    for path in elf_files(root):
        if UNUSED.search(path):
            continue
        ldd = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        for line in ldd.splitlines():
            m = re.match(r"\s*(\S+) => (\S+)", line)
            if not m:
                continue
            soname, target = m.groups()
            if target == "not":
                if soname not in carried:
                    missing.add(soname)
            elif not os.path.realpath(target).startswith(os.path.realpath(root)):
                system.add(target)
    return system, missing


def packages(paths: set[str]) -> tuple[set[str], set[str]]:
    found, unmapped = set(), set()
    for path in sorted(paths):
        real = os.path.realpath(path)
        candidates = [path, real, real.replace("/usr/lib/", "/lib/"), path.replace("/lib/", "/usr/lib/")]
        for candidate in dict.fromkeys(candidates):
            done = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if done.returncode == 0:
                found.add(done.stdout.split(":")[0].strip())
                break
        else:
            unmapped.add(path)
    return found, unmapped


def main() -> int:
    root = sys.argv[1]
    system, missing = linked(root)
    found, unmapped = packages(system)
    found |= {KNOWN[s] for s in missing if s in KNOWN}
    for s in sorted(missing - set(KNOWN)):
        print(f"deb_depends: {s} is needed but not installed here, and not mapped", file=sys.stderr)
    for p in sorted(unmapped):
        print(f"deb_depends: no package owns {p}", file=sys.stderr)
    print(", ".join(sorted(found - OPTIONAL)))
    return 1 if (missing - set(KNOWN)) or unmapped else 0


if __name__ == "__main__":
    raise SystemExit(main())
