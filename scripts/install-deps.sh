#!/usr/bin/env bash
# Installs what the test suite needs and a fresh machine may lack: the
# Debian packages its real servers come from (BIND 9 for RFC 2136 and
# named-checkzone, Knot DNS as a second RFC 2136 server, PowerDNS with its
# sqlite backend, Dovecot for IMAP,
# PostgreSQL 15, OpenDKIM's key tester, Chromium for the dashboard tests,
# openssl for throwaway CAs, nginx-light's WebDAV as an MTA-STS policy
# upload target), the C/C++ compiler that the bundled SQLite and
# libFuzzer are built with, and cargo-fuzz when a libFuzzer run is asked
# for (FUZZ_SMOKE_SECONDS, or `scripts/install-deps.sh fuzz`). The test harness starts each
# server itself, on loopback ports in temp dirs; nothing here starts one.
set -euo pipefail


packages=(strace bind9 bind9-utils bind9-dnsutils knot pdns-server pdns-backend-sqlite3 sqlite3
          dovecot-imapd postgresql-15 opendkim-tools chromium openssl g++ nginx-light
          postfix opendkim rspamd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -ne 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo $0" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# cargo-fuzz drives the fuzz targets under libFuzzer (scripts/fuzz.sh, and
# scripts/test.sh's smoke run when FUZZ_SMOKE_SECONDS asks for one); the
# tests replay every target's seeds without it.
if { [ "${1:-}" = fuzz ] || [ "${FUZZ_SMOKE_SECONDS:-0}" != 0 ]; } \
  && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz@0.13.2
fi

# moto's server mode stands in for the Route 53 API in the provider
# conformance suite (tests/support/moto.rs). Pinned: the suite documents
# where this version differs from the real API.
if ! command -v moto_server >/dev/null 2>&1; then
  echo "installing moto[server]"
  python3 -m pip install --quiet 'moto[server]==5.2.1'
fi

# Python tools of the bridge, signer and output-schema tests
# (tests/cli/emit_bridges.rs, tests/keys/signers.rs, tests/cli/output_schema.rs), pinned,
# in a venv of their own: octoDNS with its BIND provider (octodns-validate,
# octodns-sync), aiosmtpd (the SMTP sink behind Postfix), jsonschema
# with rfc3339-validator (an independent check of `format: date-time`), and
# the Prometheus project's client library, whose text-format parser reads
# `serve`'s /metrics (tests/dashboard/dashboard_api.rs).
# The tests look in $MAILAUTH_VENV (default below).
venv=${MAILAUTH_VENV:-/opt/mailauth/venv}
if ! "$venv/bin/python" -c 'import octodns, octodns_bind, aiosmtpd, jsonschema, rfc3339_validator, prometheus_client' >/dev/null 2>&1; then
  echo "installing octodns, octodns-bind, aiosmtpd, jsonschema, prometheus-client into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet octodns==1.22.0 octodns-bind==1.1.0 aiosmtpd==1.4.6 \
    jsonschema==4.23.0 rfc3339-validator==0.1.4 prometheus-client==0.21.1
fi
# Terraform (terraform fmt/validate in tests/cli/emit_bridges.rs) and the
# hashicorp/aws provider mirror ($MAILAUTH_TF_PLUGINS, default
# /opt/tf-plugins) come with the machine image: no package registry
# reachable here ships them. dnscontrol has no release on them either; its
# config is checked under Node (the image's) with
# tests/data/bridges/dnscontrol_stub.js.
for t in terraform node; do
  command -v "$t" >/dev/null || echo "warning: $t is not installed; tests/cli/emit_bridges.rs fails under CI=true" >&2
done
