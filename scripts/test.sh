#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test, then every fuzz target for a
# short fixed time (C3PO_FUZZ_SECONDS, default 30 each; docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
bash scripts/test-assets.sh
bash scripts/build.sh
ctest --test-dir "${C3PO_BUILD_DIR:-build}" --output-on-failure -j "${C3PO_JOBS:-$(nproc)}"
C3PO_FUZZ_JOBS="${C3PO_FUZZ_JOBS:-${C3PO_JOBS:-$(nproc)}}" bash scripts/fuzz.sh "${C3PO_FUZZ_SECONDS:-30}"
