#!/usr/bin/env bash
# Runs every check: formatting, lints, and the whole test suite (unit,
# golden, CLI, and the tests against real BIND, PowerDNS, Dovecot,
# PostgreSQL and Chromium, which the harness starts on loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --no-fail-fast
