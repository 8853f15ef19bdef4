#!/usr/bin/env bash
# Runs every check: formatting, lints, and the whole test suite of every
# crate of the workspace (unit, golden, CLI, and the tests against real
# BIND, PowerDNS, Dovecot, PostgreSQL and Chromium, which the harness
# starts on loopback ports, and every fuzz target's seeds, replayed by
# crates/mailauth-fuzz-targets). FUZZ_SMOKE_SECONDS=N (default 0: off)
# also builds the fuzz targets under libFuzzer and runs each for N
# seconds; long runs are scripts/fuzz.sh SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check

# Clippy, as `cargo clippy --workspace --all-targets -- -D warnings` runs
# it, but while the workspace's crates are compiled for the tests rather
# than in a check build of its own (scripts/lint-env.sh): the dependencies
# are the ones `cargo build` made, and every cargo command below runs with
# the same settings, so none rebuilds.
. scripts/lint-env.sh
cargo test --workspace --all-targets --locked --no-run

# The SQLite-only build of the report pipeline (the `postgres` and `imap`
# features off) checks its feature gates. Built in the same target
# directory, it reuses every dependency whose features are the same, and
# compiles only the few that differ and the crates above them.
status=0
if ! cargo build -p mailauth-reports --no-default-features --features sqlite --lib --locked; then
  echo "test.sh: mailauth-reports does not build with only the sqlite feature" >&2
  status=1
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

smoke="${FUZZ_SMOKE_SECONDS:-0}"
if [ "$smoke" != 0 ]; then
  FUZZ_PROFILE=dev FUZZ_PARALLEL=2 scripts/fuzz.sh "$smoke" || status=$?
fi
exit "$status"
