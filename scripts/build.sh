#!/usr/bin/env bash
# Configures and builds c3po (Release) into ${C3PO_BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${C3PO_BUILD_DIR:-build}"
# ccache must ignore what differs between identical precompiled-header builds.
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
# Relative paths in the cache keys, so that another clone of the repository hits the same cache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
if [[ ! -f "$build_dir/build.ninja" ]]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${C3PO_BUILD_TYPE:-Release}" "$@"
fi
cmake --build "$build_dir" -j "${C3PO_JOBS:-$(nproc)}" ${C3PO_TARGET:+--target "$C3PO_TARGET"}
