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
# than in a check build of its own: `cargo clippy` is cargo with
# clippy-driver as the workspace's compiler, and clippy-driver compiles as
# rustc does besides linting. The dependencies are compiled by rustc as
# usual, so they are the ones `cargo build` made. CLIPPY_ARGS is how
# `cargo clippy` hands its `-- -D warnings` to the driver. Every cargo
# command below runs with the same settings, so none rebuilds.
RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo test --workspace --all-targets --locked --no-run

status=0
# The SQLite-only build of the report pipeline (the `postgres` and `imap`
# features off) checks its feature gates. Its dependencies have other
# features than the tests' (a build of their own), and cargo runs one
# command at a time in a target directory, so it checks in a directory of
# its own, at the lowest CPU priority, beside the tests: they spend most
# of their time waiting on servers, processes and timeouts, and take the
# CPU first when they need it.
env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS CARGO_TARGET_DIR=target/sqlite-only \
  nice -n 19 cargo check -p mailauth-reports --no-default-features --features sqlite --locked \
  >target/check-sqlite-only.log 2>&1 &
check_sqlite=$!

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

if ! wait "$check_sqlite"; then
  cat target/check-sqlite-only.log >&2
  echo "test.sh: mailauth-reports does not build with only the sqlite feature" >&2
  status=1
fi

smoke="${FUZZ_SMOKE_SECONDS:-0}"
if [ "$smoke" != 0 ]; then
  FUZZ_PROFILE=dev FUZZ_PARALLEL=2 scripts/fuzz.sh "$smoke" || status=$?
fi
exit "$status"
