#!/usr/bin/env bash
# Runs every check: formatting, lints, and the whole test suite of every
# crate of the workspace (unit, golden, CLI, and the tests against real
# BIND, PowerDNS, Dovecot, PostgreSQL and Chromium, which the harness
# starts on loopback ports),
# then a short run of every fuzz target so that they keep building and
# their seeds keep passing (FUZZ_SMOKE_SECONDS per target, default 1; 0
# skips it; long runs are scripts/fuzz.sh SECONDS). libFuzzer replays the
# whole seeded corpus before the clock starts to matter (fuzz.sh checks
# that it did), so the seconds only buy extra mutations, which the long
# runs are for.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo check -p mailauth-reports --no-default-features --features sqlite --locked
status=0
# The test binaries first, so that the fuzz targets' build below does not
# compete with them.
cargo test --workspace --locked --no-run || status=$?

smoke="${FUZZ_SMOKE_SECONDS:-1}"
fuzz_build=
if [ "$smoke" != 0 ]; then
  # A dev build of the targets compiles in a few minutes; coverage-guided
  # all the same. It runs at the lowest CPU priority while the tests run:
  # they spend most of their time waiting on servers, processes and
  # timeouts, and take the CPU first when they need it.
  mkdir -p fuzz/artifacts
  FUZZ_PROFILE=dev FUZZ_BUILD_ONLY=1 nice -n 19 scripts/fuzz.sh \
    >fuzz/artifacts/build.log 2>&1 &
  fuzz_build=$!
fi

cargo test --workspace --locked --no-fail-fast || status=$?

if [ -n "$fuzz_build" ]; then
  if wait "$fuzz_build"; then
    # Built already: fuzz.sh's own build finds nothing to do.
    FUZZ_PROFILE=dev scripts/fuzz.sh "$smoke" || status=$?
  else
    cat fuzz/artifacts/build.log >&2
    echo "test.sh: the fuzz targets do not build" >&2
    status=1
  fi
fi
exit "$status"
