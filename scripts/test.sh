#!/usr/bin/env bash
# Runs every check: formatting, lints, and the whole test suite of every
# crate of the workspace (unit, golden, CLI, and the tests against real
# BIND, PowerDNS, Dovecot, PostgreSQL and Chromium, which the harness
# starts on loopback ports),
# then a short run of every fuzz target so that they keep building and
# their seeds keep passing (FUZZ_SMOKE_SECONDS per target, default 5; 0
# skips it; long runs are scripts/fuzz.sh SECONDS).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo check -p mailauth-reports --no-default-features --features sqlite --locked
status=0
cargo test --workspace --locked --no-fail-fast || status=$?

smoke="${FUZZ_SMOKE_SECONDS:-5}"
if [ "$smoke" != 0 ]; then
  # A dev build of the targets compiles in a few minutes; coverage-guided
  # all the same.
  FUZZ_PROFILE=dev scripts/fuzz.sh "$smoke" || status=$?
fi
exit "$status"
