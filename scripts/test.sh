#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
bash scripts/test-assets.sh
bash scripts/build.sh
ctest --test-dir "${C3PO_BUILD_DIR:-build}" --output-on-failure -j "${C3PO_JOBS:-$(nproc)}"
