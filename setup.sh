#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for this project and runs one job:
#   ./setup.sh demo   install the build packages, build the three programs (release), run the demo
#   ./setup.sh test   install build + test packages, build with sanitizers, run every test
# Packages are installed only when missing: as root with apt-get, otherwise
# through sudo. A user who cannot do either is told, before anything else
# happens, to install them as root and then to run the script as themself.
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
    # Not "run this script as root": the build folders would then be root's,
    # and the user's next run could not write them.
    local how="To go on, install them as root:
         apt-get install ${missing[*]}
       then run this script again as yourself ($(id -un))."
    command -v sudo >/dev/null 2>&1 ||
      die "these packages are missing, and 'sudo' is not installed to install them: ${missing[*]}
       $how"
    echo "setup: these packages are missing: ${missing[*]}; asking sudo for the right to install them"
    sudo -v || die "these packages are missing, and sudo does not let $(id -un) install them: ${missing[*]}
       $how"
    # sudo resets the environment: name the variable on apt-get's command line.
    sudo=(sudo env DEBIAN_FRONTEND=noninteractive)
  fi
  echo "setup: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# A build folder made by someone else (root, say) cannot be written: say so,
# rather than let CMake fail on CMakeCache.txt.
check_build_owner() {
  ((EUID == 0)) && return 0
  [[ -e build ]] || return 0
  local theirs
  theirs=$(find build ! -user "$EUID" -print -quit 2>/dev/null || echo build)
  [[ -z $theirs ]] && return 0
  die "'$PWD/$theirs' belongs to $(stat -c %U "$theirs" 2>/dev/null || echo 'another user'), not to you ($(id -un)): the build cannot write there.
       As root, remove the build folder ('rm -rf $PWD/build') or give it to yourself
       ('chown -R $(id -un): $PWD/build'), then run this script again."
}

case "${1:-}" in
demo)
  install_missing "${build_packages[@]}"
  check_build_owner
  cmake --preset release
  # Only what the demo runs, not the test programs.
  cmake --build --preset release --target coffee-launcher coffee-consumer coffee-producer
  exec build/release/launcher/coffee-launcher demo --producers 3 --orders 4 --baristas 2 --brew-time 250ms
  ;;
test)
  install_missing "${build_packages[@]}" "${test_packages[@]}"
  check_build_owner
  # In CI the systemd tests must really run: a machine that cannot boot the
  # container fails instead of skipping.
  [[ ${CI:-} == true ]] && export COFFEE_SYSTEMD_TESTS=require
  rm -f build/ci/junit.xml build/ci-tsan/junit.xml
  # Each suite runs whatever became of the one before; the summary at the end
  # counts them all and says which failed or did not run.
  fuzz_reader=0 fuzz_lines=0 fuzz_journal=0 asan=0 tsan=0
  # Ctrl-C stops the whole run, not the suite at hand only.
  trap 'echo "setup: interrupted" >&2; exit 130' INT TERM
  # Three libFuzzer targets share 60 s, a third each: the line reader and
  # validator, the consumer's one-pass line check against check_line, and
  # the journal's scanner over garbage.
  fuzz_seconds=$(( ${COFFEE_FUZZ_SECONDS:-60} / 3 ))
  ((fuzz_seconds > 0)) || fuzz_seconds=1
  tests/fuzz/run.sh "$fuzz_seconds" line_reader_fuzz || fuzz_reader=$?
  tests/fuzz/run.sh "$fuzz_seconds" order_lines_fuzz || fuzz_lines=$?
  tests/fuzz/run.sh "$fuzz_seconds" journal_scanner_fuzz || fuzz_journal=$?
  # The crash-consistency suite starts a consumer on thousands of images of
  # a journal: the release build's, as users run it (under ASan a start
  # costs ten times as much); without it, the suite starts its own build's.
  if cmake --preset release >/dev/null && cmake --build --preset release --target coffee-consumer; then
    export COFFEE_CRASH_CONSUMER=$PWD/build/release/consumer/coffee-consumer
  fi
  # Everything under AddressSanitizer + UndefinedBehaviorSanitizer, -Werror.
  cmake --workflow --preset ci || asan=$?
  # The threaded code (consumer, launcher) again under ThreadSanitizer: the
  # binaries of the tests labelled threads, and only those, are built.
  cmake --workflow --preset ci-tsan || tsan=$?
  echo
  exec tests/support/test-summary.sh fuzz:line_reader - "$fuzz_reader" fuzz:order_lines - "$fuzz_lines" \
    fuzz:journal_scanner - "$fuzz_journal" \
    asan+ubsan build/ci/junit.xml "$asan" tsan build/ci-tsan/junit.xml "$tsan"
  ;;
*)
  echo "usage: $0 demo|test" >&2
  exit 64
  ;;
esac
