#!/usr/bin/env bash
# Add QuantDesk (this unpacked folder) to the applications menu and to ~/.local/bin. Nothing else is
# installed or fetched; delete the folder and ~/.local/share/applications/quantdesk.desktop to remove it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$HOME/.local/bin" "$HOME/.local/share/applications" "$HOME/.local/share/icons/hicolor/scalable/apps"
ln -sf "$here/quantdesk" "$HOME/.local/bin/quantdesk"
sed "s|^Exec=.*|Exec=$here/quantdesk|" "$here/quantdesk.desktop" > "$HOME/.local/share/applications/quantdesk.desktop"
cp "$here/quantdesk.svg" "$HOME/.local/share/icons/hicolor/scalable/apps/quantdesk.svg"
command -v update-desktop-database >/dev/null && update-desktop-database "$HOME/.local/share/applications" || true
echo "QuantDesk is in your applications menu; or run $here/quantdesk"
