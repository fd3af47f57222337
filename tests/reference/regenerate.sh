#!/usr/bin/env bash
# Regenerate the tiny checkpoints and their expectations in tests/model/data/ (deterministic).
# Needs Debian's python3-torch, hence /usr/bin/python3 explicitly.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
/usr/bin/python3 "$here/make_tiny_models.py" --out "$here/../model/data"
/usr/bin/python3 "$here/make_expected.py" --data "$here/../model/data"
