#!/usr/bin/env bash
# Smoke-test the built .deb and tarball on a fresh Debian 12 with no Python and no compiler (issue 11):
# debootstrap a minimal root, apt-install dist/quantdesk_<version>_amd64.deb there (apt pulls its
# Depends), add Xvfb as the test's X server, then run: --version, hardware --json, the window on Xvfb
# with Qt's xcb platform (not offscreen) rendering every page, and a chat with the starter model. Then
# the same from the unpacked tarball. Needs root, debootstrap and Debian's mirror. ~5 min.
#   sudo bash packaging/smoke.sh        (SMOKE_ROOT=/somewhere to keep the root for a look)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$here/desktop_app/__init__.py")"
deb="$here/dist/quantdesk_${version}_amd64.deb"
tarball="$here/dist/quantdesk-$version-linux-x86_64.tar.gz"
root="${SMOKE_ROOT:-$(mktemp -d /tmp/quantdesk-smoke.XXXXXX)}"
out="$here/dist/smoke"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
[ -f "$deb" ] && [ -f "$tarball" ] || { echo "build first: bash packaging/build.sh" >&2; exit 1; }

step() { printf '\n== %s\n' "$*"; }
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 QUANTDESK_DATA_DIR=/tmp/qd "$@"; }

step "a fresh Debian 12 in $root"
[ -x "$root/bin/sh" ] || debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
cp "$deb" "$root/tmp/"
step "apt install the .deb (and Xvfb, the test's X server)"
in_root apt-get update -qq
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "/tmp/$(basename "$deb")" xvfb xauth >/dev/null
for tool in python3 python gcc cc; do
    if in_root sh -c "command -v $tool" >/dev/null; then echo "FAIL: $tool is in the root" >&2; exit 1; fi
done
echo "no python, no compiler in the root"

run_app() {  # $1: the quantdesk command inside the root; $2: a label for the screenshots folder
    local q="$1" shots="/tmp/shots-$2"
    step "$2: quantdesk --version"
    in_root "$q" --version
    step "$2: quantdesk hardware --json"
    in_root "$q" hardware --json > "$out/$2-hardware.json"
    grep -o '"configuration": "[a-z_0-9]*"' "$out/$2-hardware.json" | head -1
    step "$2: the window on Xvfb (xcb), every page"
    in_root sh -c "Xvfb :99 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & x=\$!; sleep 2;
        DISPLAY=:99 QT_QPA_PLATFORM=xcb $q gui --screenshots $shots; rc=\$?; kill \$x; exit \$rc"
    mkdir -p "$out/$2" && cp "$root$shots"/*.png "$out/$2/"
    ls "$out/$2"
    step "$2: a chat with the starter model"
    starter="$(in_root "$q" models --json | grep -o '"path": "[^"]*\.gguf"' | head -1 | cut -d'"' -f4)"
    in_root "$q" chat "$starter" --prompt "Say hello in five words." --temperature 0
}

mkdir -p "$out"
run_app /usr/bin/quantdesk deb
if [ "${SMOKE_VULKAN:-0}" = 1 ]; then
    # Mesa's lavapipe: a Vulkan device on the CPU, enough to prove the bundled Vulkan backend offloads
    # (llama.cpp skips CPU-type Vulkan devices unless GGML_VK_VISIBLE_DEVICES names them)
    step "deb: offload to a Vulkan device (lavapipe)"
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        mesa-vulkan-drivers libvulkan1 >/dev/null
    in_root env GGML_VK_VISIBLE_DEVICES=0 quantdesk hardware --json > "$out/deb-hardware-vulkan.json"
    tr -d ' \n' < "$out/deb-hardware-vulkan.json" | grep -o '"backends":\[[^]]*\]'
    tr -d ' \n' < "$out/deb-hardware-vulkan.json" | grep -q '"name":"Vulkan0"' || { echo "FAIL: no Vulkan device" >&2; exit 1; }
    starter="$(in_root quantdesk models --json | grep -o '"path": "[^"]*\.gguf"' | head -1 | cut -d'"' -f4)"
    in_root env GGML_VK_VISIBLE_DEVICES=0 quantdesk chat "$starter" --prompt "Say hello." --temperature 0 \
        --gpu-layers 99 --json > "$out/deb-chat-vulkan.json"
    grep -o '"n_gpu_layers": [0-9]*' "$out/deb-chat-vulkan.json"
    grep -q '"n_gpu_layers": [1-9]' "$out/deb-chat-vulkan.json" || { echo "FAIL: nothing offloaded" >&2; exit 1; }
fi
step "the tarball, from its own folder"
tar -C "$root/opt" -xzf "$tarball"
run_app "/opt/quantdesk-$version/quantdesk" tarball
step "passed: screenshots in $out"
