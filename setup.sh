#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for this project and runs one job:
#   ./setup.sh demo   install the build packages, build (release), run the demo
#   ./setup.sh test   install build + test packages, build with sanitizers, run every test
# Packages are installed only when missing (apt-get, through sudo unless root).
set -euo pipefail
cd "$(dirname "$0")"

build_packages=(build-essential cmake ninja-build pkg-config libspdlog-dev libcxxopts-dev doctest-dev)
# clang + its runtime: the libFuzzer target. systemd + systemd-container: the
# unit tests under a real systemd in a throwaway container. dpkg-dev, file:
# cpack -G DEB. time: the benchmark's peak RSS. tmux: the demo's live view in a terminal.
test_packages=(clang libclang-rt-14-dev systemd systemd-container dpkg-dev file time tmux)

install_missing() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  echo "setup: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

case "${1:-}" in
demo)
  install_missing "${build_packages[@]}"
  cmake --preset release
  cmake --build --preset release
  exec build/release/launcher/coffee-launcher demo --producers 3 --orders 4 --baristas 2 --brew-time 250ms
  ;;
test)
  install_missing "${build_packages[@]}" "${test_packages[@]}"
  # In CI the systemd tests must really run: a machine that cannot boot the
  # container fails instead of skipping.
  [[ ${CI:-} == true ]] && export COFFEE_SYSTEMD_TESTS=require
  # The line reader and validator under libFuzzer for 60 s.
  tests/fuzz/run.sh "${COFFEE_FUZZ_SECONDS:-60}"
  # Everything under AddressSanitizer + UndefinedBehaviorSanitizer, -Werror.
  cmake --workflow --preset ci
  # The threaded code (consumer, launcher) again under ThreadSanitizer.
  cmake --workflow --preset ci-tsan
  ;;
*)
  echo "usage: $0 demo|test" >&2
  exit 64
  ;;
esac
