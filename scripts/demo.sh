#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds c3po, and runs the whole C3PO
# method on the shipped demo model (reference store; base, icl, mode, kernel, NGD and oracle in the
# in-distribution and shifted conditions; mechanism numbers, findings and reports).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
C3PO_TARGET=c3po bash scripts/build.sh
c3po="${C3PO_BUILD_DIR:-build}/bin/c3po"
if [[ -f models/demo/config.json ]]; then
  exec "$c3po" demo "$@"
fi
# Until the trained demo model ships in models/demo, show the engine on a checkpoint the tests use.
echo "models/demo holds no trained model yet: showing c3po info on the tiny OLMoE test checkpoint" >&2
exec "$c3po" info tests/model/data/olmoe
