#!/usr/bin/env bash
# Install QuantDesk for the current user on Linux: a private virtual environment, the starter
# model, a menu entry and an icon. Run from a checkout:  bash packaging/install.sh
# Needs Python 3.10+ and a C/C++ compiler (llama-cpp-python is built from source, ~4 min).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${QUANTDESK_PREFIX:-$HOME/.local/share/quantdesk}"
bin_dir="$HOME/.local/bin"
python="${PYTHON:-python3}"

"$python" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"QuantDesk needs Python 3.10 or newer; this is {sys.version.split()[0]}.")
PY
"$python" -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install --upgrade pip
"$prefix/venv/bin/pip" install "$here[starter]"

mkdir -p "$bin_dir" "$HOME/.local/share/applications" "$HOME/.local/share/icons/hicolor/scalable/apps"
ln -sf "$prefix/venv/bin/quantdesk" "$bin_dir/quantdesk"
ln -sf "$prefix/venv/bin/quantdesk-gui" "$bin_dir/quantdesk-gui"
sed "s|^Exec=.*|Exec=$prefix/venv/bin/quantdesk-gui|" "$here/packaging/quantdesk.desktop" \
    > "$HOME/.local/share/applications/quantdesk.desktop"
cp "$here/resources/icons/quantdesk.svg" "$HOME/.local/share/icons/hicolor/scalable/apps/quantdesk.svg"
command -v update-desktop-database >/dev/null && update-desktop-database "$HOME/.local/share/applications" || true
echo "QuantDesk is installed. Start it from your applications menu, or run: $bin_dir/quantdesk"
