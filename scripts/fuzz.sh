#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang-14 into ${C3PO_FUZZ_DIR:-build-fuzz} and runs
# each for a bounded time: bash scripts/fuzz.sh [SECONDS_PER_TARGET (default 30)] [TARGET ...]
# Inputs the fuzzer finds new are kept in build-fuzz/corpus/<target> (the committed seeds in
# fuzz/corpus/<target> are read, never written), so later runs continue from there. Any crash,
# leak, undefined behaviour, timeout or out-of-memory fails the script; the input is left in
# build-fuzz/artifacts/<target>/. Prints executions and coverage per target. docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift $(($# > 0 ? 1 : 0))
dir="${C3PO_FUZZ_DIR:-build-fuzz}"

bash scripts/setup.sh --fuzz
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
if [[ ! -f "$dir/build.ninja" ]]; then
  cmake -S fuzz -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
fi
# One compile at a time: the sanitized LibTorch translation units need a lot of memory.
cmake --build "$dir" -j "${C3PO_FUZZ_JOBS:-1}"

targets=("$@")
((${#targets[@]})) || mapfile -t targets <"$dir/targets.txt"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
summary=()
for t in "${targets[@]}"; do
  bin="$dir/fuzz_$t"
  [[ -x "$bin" ]] || { echo "fuzz: no target $t (known: $(tr '\n' ' ' <"$dir/targets.txt"))" >&2; exit 2; }
  mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t" "$dir/logs"
  log="$dir/logs/$t.log"
  status=ok
  # Inputs that once failed (fuzz/regressions/<target>/) are replayed first.
  if compgen -G "fuzz/regressions/$t/*" >/dev/null; then
    if ! "$bin" -runs=1 fuzz/regressions/"$t"/* >"$dir/logs/$t.regressions.log" 2>&1; then
      status="FAILED (regression input, see $dir/logs/$t.regressions.log)"
    fi
  fi
  if [[ $status == ok ]]; then
    echo "fuzz: $t for ${seconds}s" >&2
    if ! "$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/$t/" "$dir/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
      status="FAILED (see $log; input in $dir/artifacts/$t/)"
      tail -n 40 "$log" >&2
    fi
  fi
  [[ $status == ok ]] || failed+=("$t")
  # libFuzzer's last status line ("#N DONE cov: C ft: F corp: ...") and its final stats.
  last=$(grep -E '^#[0-9]+' "$log" 2>/dev/null | tail -n 1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")
  execs=$(sed -nE 's/^stat::number_of_executed_units: ([0-9]+)/\1/p' "$log" 2>/dev/null || true)
  rate=$(sed -nE 's/^stat::average_exec_per_sec: +([0-9]+)/\1/p' "$log" 2>/dev/null || true)
  rss=$(sed -nE 's/^stat::peak_rss_mb: +([0-9]+)/\1/p' "$log" 2>/dev/null || true)
  summary+=("$(printf '%-18s %12s %8s %7s %7s %6s %7s  %s' "$t" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" \
    "${corp:--}" "${rss:--}" "$status")")
done

printf '\n%-18s %12s %8s %7s %7s %6s %7s  %s\n' target executions exec/s cov ft corpus rss_mb result
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: findings in ${failed[*]}" >&2
  exit 1
fi
