#!/usr/bin/env bash
# Installs the Debian packages the test suite's real servers come from:
# BIND 9 (RFC 2136, named-checkzone), PowerDNS with its sqlite backend,
# Dovecot (IMAP), OpenDKIM's key tester, Chromium (dashboard tests).
# PostgreSQL 15 is expected from the machine image (or the postgresql package).
set -euo pipefail

# cargo-fuzz drives the fuzz targets (scripts/fuzz.sh, and the smoke run in
# scripts/test.sh).
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz@0.13.2
fi

packages=(bind9 bind9-utils bind9-dnsutils pdns-server pdns-backend-sqlite3 sqlite3
          dovecot-imapd opendkim-tools chromium openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v initdb >/dev/null && [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo $0" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
