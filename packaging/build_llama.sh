#!/usr/bin/env bash
# Build the portable llama.cpp QuantDesk ships (issue 11, item 1): the pinned llama-cpp-python wheel
# with no CPU tuning baked in (GGML_NATIVE=OFF), every CPU variant as a plug-in that ggml picks from
# at run time (GGML_BACKEND_DL, GGML_CPU_ALL_VARIANTS: the runtime check can step down a variant on a
# CPU that faults), and the RPC backend. Vulkan is added with QUANTDESK_VULKAN=1 (needs the Vulkan
# headers and glslc). ~9 minutes on 2 cores. Writes dist/wheels/llama_cpp_python-<version>-*.whl.
#
#   bash packaging/build_llama.sh && .venv/bin/pip install --force-reinstall --no-deps dist/wheels/llama_cpp_python-*.whl
#
# --no-cache-dir matters: pip caches a wheel built from an sdist under the sdist's name alone, so a
# cached native build would silently come back instead.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
version="$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' "$here/pyproject.toml")"
[ -n "$version" ] || { echo "no llama-cpp-python pin in pyproject.toml" >&2; exit 1; }
args="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_RPC=ON"
if [ "${QUANTDESK_VULKAN:-0}" = 1 ]; then
    args="$args -DGGML_VULKAN=ON ${QUANTDESK_VULKAN_CMAKE_ARGS:-}"
fi
mkdir -p "$here/dist/wheels"
CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$python" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
    "llama-cpp-python==$version" -w "$here/dist/wheels"
ls -l "$here"/dist/wheels/llama_cpp_python-"$version"-*.whl
