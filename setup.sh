#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for this project and runs one job:
#   ./setup.sh demo   install the build packages, build the three programs (release), run the demo
#   ./setup.sh test   install build + test packages, build with sanitizers, run every test
# Packages are installed only when missing: as root with apt-get, otherwise
# through sudo. A user who cannot do either is told so, with the package
# list, before anything else happens.
set -euo pipefail
cd "$(dirname "$0")"

build_packages=(build-essential cmake ninja-build pkg-config libspdlog-dev libcxxopts-dev doctest-dev)
# clang + its runtime: the libFuzzer target. systemd + systemd-container: the
# unit tests under a real systemd in a throwaway container. dpkg-dev, file:
# cpack -G DEB. time: the benchmark's peak RSS. groff-base: the man pages are
# rendered and checked. tmux: the live demo is tested in a real terminal.
test_packages=(clang libclang-rt-14-dev systemd systemd-container dpkg-dev file time groff-base tmux)

die() {
  echo "setup: $*" >&2
  exit 1
}

install_missing() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0

  local sudo=()
  if ((EUID != 0)); then
    local how="run this script as root, or, as root, 'apt-get install sudo' and add
       yourself to the sudo group ('adduser $(id -un) sudo'; log in again), or install
       the packages yourself:
         apt-get install ${missing[*]}"
    command -v sudo >/dev/null 2>&1 ||
      die "these packages are missing and 'sudo' is not installed: ${missing[*]}
       To go on, $how"
    echo "setup: these packages are missing: ${missing[*]}; asking sudo for the right to install them"
    sudo -v || die "sudo does not let $(id -un) install packages.
       To go on, $how"
    # sudo resets the environment: name the variable on apt-get's command line.
    sudo=(sudo env DEBIAN_FRONTEND=noninteractive)
  fi
  echo "setup: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Every skipped test and the reason it gave, from each ctest run's JUnit file.
report_skips() {
  tests/support/report-skips.sh build/ci/junit.xml build/ci-tsan/junit.xml || true
}

case "${1:-}" in
demo)
  install_missing "${build_packages[@]}"
  cmake --preset release
  # Only what the demo runs, not the test programs.
  cmake --build --preset release --target coffee-launcher coffee-consumer coffee-producer
  exec build/release/launcher/coffee-launcher demo --producers 3 --orders 4 --baristas 2 --brew-time 250ms
  ;;
test)
  install_missing "${build_packages[@]}" "${test_packages[@]}"
  # In CI the systemd tests must really run: a machine that cannot boot the
  # container fails instead of skipping.
  [[ ${CI:-} == true ]] && export COFFEE_SYSTEMD_TESTS=require
  rm -f build/ci/junit.xml build/ci-tsan/junit.xml
  trap report_skips EXIT
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
