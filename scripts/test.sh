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
status=0
# Every test executable of the workspace, built once; cargo's messages say
# where each is (scripts/run_tests.py runs them).
built=target/test-binaries.json
mkdir -p target
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics \
  >"$built" || status=$?

# While the tests run (they mostly wait on servers, processes and
# timeouts), the lints and the SQLite-only build are checked beside them,
# at a lower CPU priority, and the fuzz targets are built at the lowest:
# the tests take the CPU first when they need it.
lint_log=target/lint.log
nice -n 10 bash -c 'set -e
  cargo clippy --workspace --all-targets --locked -- -D warnings
  cargo check -p mailauth-reports --no-default-features --features sqlite --locked' \
  >"$lint_log" 2>&1 &
lint=$!

smoke="${FUZZ_SMOKE_SECONDS:-1}"
fuzz_build=
if [ "$smoke" != 0 ]; then
  # A dev build of the targets compiles in a few minutes; coverage-guided
  # all the same.
  mkdir -p fuzz/artifacts
  FUZZ_PROFILE=dev FUZZ_BUILD_ONLY=1 nice -n 19 scripts/fuzz.sh \
    >fuzz/artifacts/build.log 2>&1 &
  fuzz_build=$!
fi

# The test binaries run side by side, TEST_THREADS tests at a time each
# (default 6: they wait more than they compute). The binaries that bound
# time and memory or kill processes (faults, limits_*: tests/README.md)
# run afterwards, one at a time, with the default number of threads.
if [ "$status" = 0 ]; then
  scripts/run_tests.py --built "$built" --threads "${TEST_THREADS:-6}" \
    --solo faults --solo limits_config --solo limits_reports || status=$?
fi

if wait "$lint"; then
  cat "$lint_log"
else
  cat "$lint_log" >&2
  echo "test.sh: clippy or the SQLite-only build failed" >&2
  status=1
fi
# Documentation examples (cargo's build lock is free again).
cargo test --workspace --locked --doc || status=$?

if [ -n "$fuzz_build" ]; then
  if wait "$fuzz_build"; then
    # Built already: fuzz.sh's own build finds nothing to do.
    FUZZ_PROFILE=dev FUZZ_PARALLEL=2 scripts/fuzz.sh "$smoke" || status=$?
  else
    cat fuzz/artifacts/build.log >&2
    echo "test.sh: the fuzz targets do not build" >&2
    status=1
  fi
fi
exit "$status"
