#!/usr/bin/env bash
# Installs what c3po needs to build, test and run, from Debian's packages only.
# Idempotent: apt-get runs only when a package is missing, so a second call is fast.
# --tests: also what the tests, the fuzz targets and the reference scripts need; --fuzz: only the
# fuzz targets' compiler.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread
  nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev libutf8proc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin
)
# libFuzzer targets (scripts/fuzz.sh, part of the tests): clang with its fuzzer and sanitizer runtimes.
fuzz_packages=(clang-14 libclang-rt-14-dev)
if [[ "${1:-}" == "--tests" ]]; then
  # Independent references used only by tests and by the scripts that regenerate expectations.
  packages+=(python3-torch chromium "${fuzz_packages[@]}")
  command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
elif [[ "${1:-}" == "--fuzz" ]]; then
  packages+=("${fuzz_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
