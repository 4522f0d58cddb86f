#!/usr/bin/env bash
# Build the self-contained QuantDesk for Linux x86-64 from a checkout (issue 11):
#   dist/quantdesk-<version>-linux-x86_64.tar.gz  a folder: the frozen app, the starter model, the icon,
#                                                 and install.sh (menu entry for the user)
#   dist/quantdesk_<version>_amd64.deb            /opt/quantdesk, /usr/bin/quantdesk, menu entry, icon
# Nothing is fetched at run time. Needs Python 3.10+, a C/C++ toolchain (the portable llama.cpp is built
# by packaging/build_llama.sh unless dist/wheels already has it) and dpkg-deb. ~15 min on 2 cores.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$here/desktop_app/__init__.py")"
work="$here/build/bundle"
rm -rf "$work" && mkdir -p "$work" "$here/dist"

wheel="$(ls "$here"/dist/wheels/llama_cpp_python-*.whl 2>/dev/null | head -1 || true)"
[ -n "$wheel" ] || { bash "$here/packaging/build_llama.sh"; wheel="$(ls "$here"/dist/wheels/llama_cpp_python-*.whl | head -1)"; }
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel"
"$work/venv/bin/pip" install -q "$here[starter]" "pyinstaller>=6.10"
"$work/venv/bin/pyinstaller" --noconfirm --log-level WARN --distpath "$work/dist" --workpath "$work/pyi" \
    "$here/packaging/quantdesk.spec"
app="$work/dist/quantdesk"

# -- the tarball: quantdesk-<version>/ with the app, the icon, the menu entry and install.sh
tree="$work/quantdesk-$version"
cp -a "$app" "$tree"
cp "$here/resources/icons/quantdesk.svg" "$tree/quantdesk.svg"
sed "s|^Exec=.*|Exec=quantdesk|" "$here/packaging/quantdesk.desktop" > "$tree/quantdesk.desktop"
cp "$here/packaging/tarball-install.sh" "$tree/install.sh"
tar -C "$work" -czf "$here/dist/quantdesk-$version-linux-x86_64.tar.gz" "quantdesk-$version"

# -- the .deb: Depends are the Debian packages of every system library the frozen app links to
deb="$work/deb"
mkdir -p "$deb/DEBIAN" "$deb/opt" "$deb/usr/bin" "$deb/usr/share/applications" \
    "$deb/usr/share/icons/hicolor/scalable/apps"
cp -a "$app" "$deb/opt/quantdesk"
ln -s /opt/quantdesk/quantdesk "$deb/usr/bin/quantdesk"
sed "s|^Exec=.*|Exec=/opt/quantdesk/quantdesk|" "$here/packaging/quantdesk.desktop" > "$deb/usr/share/applications/quantdesk.desktop"
cp "$here/resources/icons/quantdesk.svg" "$deb/usr/share/icons/hicolor/scalable/apps/quantdesk.svg"
depends="$("$python" "$here/packaging/deb_depends.py" "$deb/opt/quantdesk")"
size="$(du -sk "$deb" | cut -f1)"
cat > "$deb/DEBIAN/control" <<CONTROL
Package: quantdesk
Version: $version
Architecture: amd64
Maintainer: QuantDesk developers <maintainers@users.noreply.example>
Installed-Size: $size
Depends: $depends
Recommends: libvulkan1, mesa-vulkan-drivers
Section: science
Priority: optional
Homepage: https://example.invalid/quantdesk
Description: pick, run and compare quantized LLMs on your own computer
 A desktop app that shows which quant of a model fits this computer, chats with it through
 llama.cpp (bundled, with every CPU variant), converts Hugging Face checkpoints and compares
 quant levels. Includes the SmolLM2-135M-Instruct starter model.
CONTROL
dpkg-deb --root-owner-group --build "$deb" "$here/dist/quantdesk_${version}_amd64.deb" >/dev/null
ls -l "$here/dist/quantdesk-$version-linux-x86_64.tar.gz" "$here/dist/quantdesk_${version}_amd64.deb"
echo "Depends: $depends"
