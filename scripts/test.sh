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

# Most tests wait on servers, processes and timeouts rather than on the
# CPU, so their binaries run TEST_THREADS tests at a time (default 6,
# against the 2 a 2-core machine would get). The binaries that bound time
# and memory or kill processes (faults, limits_*: tests/README.md) keep the
# default, so that no more of them share the CPU than before. Every other
# test binary is found here, whichever exists, so none is left out.
solo=(faults limits_config limits_reports)
parallel=(--lib --bins)
shopt -s nullglob
for t in tests/*.rs tests/*/main.rs crates/*/tests/*.rs crates/*/tests/*/main.rs; do
  name=${t##*tests/}
  name=${name%/main.rs}
  name=${name%.rs}
  case " ${solo[*]} " in *" $name "*) ;; *) parallel+=(--test "$name") ;; esac
done
shopt -u nullglob
cargo test --workspace --locked --no-fail-fast "${parallel[@]}" \
  -- --test-threads "${TEST_THREADS:-6}" || status=$?
# Documentation examples, which naming targets above leaves out.
cargo test --workspace --locked --doc || status=$?
solo_args=()
for name in "${solo[@]}"; do solo_args+=(--test "$name"); done
cargo test --locked --no-fail-fast "${solo_args[@]}" || status=$?

if [ -n "$fuzz_build" ]; then
  if wait "$fuzz_build"; then
    # Built already: fuzz.sh's own build finds nothing to do. Nothing
    # else runs by now: two targets at a time, one per core.
    FUZZ_PROFILE=dev FUZZ_PARALLEL=2 scripts/fuzz.sh "$smoke" || status=$?
  else
    cat fuzz/artifacts/build.log >&2
    echo "test.sh: the fuzz targets do not build" >&2
    status=1
  fi
fi
exit "$status"
