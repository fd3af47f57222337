#!/usr/bin/env bash
# Chooses the settings `c3po demo` runs with, on the demo's dev splits only (models/demo/data/dev.jsonl
# and dev-shifted.jsonl: carved from the reference split, disjoint from the reference store's items
# and from test). Prints one line per setting with the dev accuracies of base, icl, kernel
# regression and NGD; models/demo/README.md ("Tuning") records the grid, the result and the choice.
# Usage: bash scripts/tune-demo.sh [OUT]   (needs a built c3po: bash scripts/build.sh; LIMIT=N dev
# items per split, default 150; LAYERS="last:5 last:3" widens the grid; KERNEL_AT="layers lr k" adds
# the kernel-width stage)
set -euo pipefail
cd "$(dirname "$0")/.."
c3po="${C3PO_BUILD_DIR:-build}/bin/c3po"
out="${1:-c3po-tune}"
demo=models/demo
mkdir -p "$out"

# Accuracy of METHOD in the Markdown table an eval run printed.
acc() { awk -F'|' -v m="$2" '$3 ~ "^ *"m" *$" { gsub(/ /, "", $5); print $5 }' "$1"; }

run() {  # run SETTING STORE EMBEDDER DATA FLAGS...
  local name="$1" store="$2" embedder="$3" data="$4"
  shift 4
  local dir="$out/$name/$data"
  if [[ ! -f "$dir/table.md" ]]; then
    mkdir -p "$dir"
    "$c3po" eval "$demo" --task generic --data "$demo/data/$data.jsonl" --dtype f32 --no-timing \
      --reference "$store" --embedder "$embedder" --method base,icl,kernel,ngd --out "$dir/run" \
      --limit "${LIMIT:-150}" "$@" \
      > "$dir/table.tmp" 2> "$dir/log.txt"
    mv "$dir/table.tmp" "$dir/table.md"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$data" "$(acc "$dir/table.md" base)" "$(acc "$dir/table.md" icl)" \
    "$(acc "$dir/table.md" kernel)" "$(acc "$dir/table.md" ngd)"
}

printf 'setting\tsplit\tbase\ticl\tkernel\tngd\n'
for embedder in ${EMBEDDERS:-model hash}; do
  store="$out/$embedder.store"
  [[ -f "$store" ]] || "$c3po" reference build "$demo" --data "generic=$demo/data/reference.jsonl" --dtype f32 \
    --embedder "$embedder" --out "$store" > "$out/$embedder.build.log" 2>&1
  for data in dev dev-shifted; do
    for layers in ${LAYERS:-last:5}; do
      for lr in 0.01 0.1 0.3; do
        for k in 3 10; do
          run "emb=$embedder,layers=$layers,lr=$lr,k=$k" "$store" "$embedder" "$data" \
            --layers "$layers" --lr "$lr" --k "$k"
        done
      done
    done
    # Stage 2: the kernel width, at the settings stage 1 chose (KERNEL_AT="layers lr k", e.g.
    # KERNEL_AT="last:5 0.1 10"), for this embedder.
    if [[ -n "${KERNEL_AT:-}" ]]; then
      read -r layers lr k <<< "$KERNEL_AT"
      for kernel in gaussian:0.2 gaussian:0.5 gaussian:1; do
        run "emb=$embedder,layers=$layers,lr=$lr,k=$k,kernel=$kernel" "$store" "$embedder" "$data" \
          --layers "$layers" --lr "$lr" --k "$k" --kernel "$kernel"
      done
    fi
  done
done
