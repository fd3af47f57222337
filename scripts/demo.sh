#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds c3po, and runs the whole C3PO
# method on the shipped demo model (reference store, base / mode / kernel / NGD / oracle, report).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
C3PO_TARGET=c3po bash scripts/build.sh
exec "${C3PO_BUILD_DIR:-build}/bin/c3po" demo "$@"
