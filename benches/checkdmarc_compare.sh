#!/usr/bin/env bash
# Side-by-side of `mailauth validate` and checkdmarc on zones with planted
# problems (scripts/gen_problem_zones.py: PER domains per class, 11 by
# default: 220 domains), served by one BIND 9.18 on a loopback port.
# Prints the Markdown table of BENCHMARKS.md ("validate against
# checkdmarc"). Needs named, python3 and network access to PyPI once (for
# checkdmarc, installed into a venv under the target dir).
set -euo pipefail

PER=${PER:-11}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET/bench/venv
WORK=$(mktemp -d)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for bin in named python3; do
    command -v "$bin" >/dev/null || { echo "missing: $bin" >&2; exit 2; }
done
(cd "$ROOT" && cargo build --quiet)
MAILAUTH=$TARGET/debug/mailauth
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import checkdmarc' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet checkdmarc
fi

python3 "$ROOT/scripts/gen_problem_zones.py" "$WORK" "$PER"
PORT=$(python3 -c 'import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass')
mkdir -p "$WORK/run"
{
    echo "options { directory \"$WORK/run\"; pid-file \"$WORK/run/named.pid\";"
    echo "  session-keyfile \"$WORK/run/session.key\"; listen-on port $PORT { 127.0.0.1; };"
    echo "  listen-on-v6 { none; }; recursion no; allow-query { 127.0.0.1; };"
    echo "  dnssec-validation no; notify no; };"
    echo "controls { };"
    for f in "$WORK"/zones/*.zone; do
        echo "zone \"$(basename "$f" .zone)\" { type primary; file \"$f\"; };"
    done
} > "$WORK/named.conf"
named -g -n 2 -c "$WORK/named.conf" > "$WORK/named.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do
    grep -q "all zones loaded" "$WORK/named.log" 2>/dev/null && break
    sleep 0.1
done

# No config file: every domain is judged on what it publishes.
"$MAILAUTH" -c "$WORK/absent.yaml" validate --json --no-propagation --no-mta-sts-policy \
    --nameserver "127.0.0.1:$PORT" $(cut -f1 "$WORK/domains.tsv") > "$WORK/mailauth.json" || true
"$VENV/bin/python" "$ROOT/scripts/compare_checkdmarc.py" "$PORT" "$WORK/domains.tsv" "$WORK/mailauth.json"
