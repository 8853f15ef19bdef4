#!/usr/bin/env bash
# Benchmark of `mailauth validate` against checkdmarc, and a cross-check of
# their SPF lookup counts.
#
# 1. Generates N domains (default 1000; SPF with includes, DMARC with an
#    external, authorised rua, two 2048-bit DKIM selectors, MX) as zones of
#    one BIND on a free loopback port, plus a mailauth config for them.
# 2. Times `mailauth validate` (release build; all checks including DKIM
#    and propagation) and checkdmarc's Python API on the same domains in the
#    same run.
# 3. Runs scripts/crosscheck_checkdmarc.py on the test fixtures
#    (tests/data/validate): SPF lookup and void-lookup counts of both tools.
#
# checkdmarc is installed from PyPI into a venv under the target dir (never
# committed). Needs named, dig, openssl, python3.
#
#   benches/validate.sh            # N=1000
#   N=200 benches/validate.sh
set -euo pipefail

N=${N:-1000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET/bench/venv
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for bin in named dig openssl python3; do
    command -v "$bin" >/dev/null || { echo "missing: $bin" >&2; exit 2; }
done

free_port() {
    python3 -c 'import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass'
}

# start_named DIR PORT: serves every DIR/zones/<zone>.zone; waits until up.
start_named() {
    local dir=$1 port=$2 conf=$1/named.conf
    mkdir -p "$dir/run"
    {
        echo "options { directory \"$dir/run\"; pid-file \"$dir/run/named.pid\";"
        echo "  session-keyfile \"$dir/run/session.key\"; listen-on port $port { 127.0.0.1; };"
        echo "  listen-on-v6 { none; }; recursion no; allow-query { 127.0.0.1; };"
        echo "  dnssec-validation no; notify no; };"
        echo "controls { };"
        for f in "$dir"/zones/*.zone; do
            z=$(basename "$f" .zone)
            echo "zone \"$z\" { type primary; file \"$f\"; };"
        done
    } > "$conf"
    named -g -n 2 -c "$conf" > "$dir/named.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 300); do
        grep -q "running" "$dir/named.log" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$dir/named.log" >&2
    echo "named did not start" >&2
    exit 1
}

echo "== building mailauth (release)"
(cd "$ROOT" && cargo build --release --quiet)
MAILAUTH=$TARGET/release/mailauth

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import checkdmarc' 2>/dev/null; then
    echo "== installing checkdmarc into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet checkdmarc
fi
CHECKDMARC_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("checkdmarc"))')

echo "== generating $N domains"
mkdir -p "$WORK/bench/zones"
for s in 1 2; do
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null \
        | openssl pkey -pubout -outform DER 2>/dev/null | base64 -w0 > "$WORK/key$s.b64"
done
python3 - "$WORK" "$N" <<'PY'
import sys
work, n = sys.argv[1], int(sys.argv[2])
keys = [open(f"{work}/key{s}.b64").read().strip() for s in (1, 2)]
def strings(v, size=255):
    return " ".join('"%s"' % v[i:i + size] for i in range(0, len(v), size))
def soa(origin):
    return (f"$TTL 300\n@ IN SOA ns.test. hostmaster.{origin}. 1 3600 600 86400 300\n"
            "@ IN NS ns.test.\n")
z = f"{work}/bench/zones"
open(f"{z}/test.zone", "w").write(soa("test") + "ns IN A 127.0.0.1\n")
open(f"{z}/provider.test.zone", "w").write(
    soa("provider.test")
    + '_spf IN TXT "v=spf1 ip4:198.51.100.0/24 include:_spf2.provider.test ~all"\n'
    + '_spf2 IN TXT "v=spf1 ip4:203.0.113.0/24 ~all"\n'
    + '*._report._dmarc.reports IN TXT "v=DMARC1"\n'
    + "reports IN MX 10 mx\nmx IN A 127.0.0.1\n")
cfg = ["domains:"]
names = []
for i in range(n):
    d = f"d{i:05d}.test"
    names.append(d)
    open(f"{z}/{d}.zone", "w").write(
        soa(d)
        + '@ IN TXT "v=spf1 ip4:192.0.2.0/24 mx include:_spf.provider.test -all"\n'
        + '_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@reports.provider.test"\n'
        + "".join(f"s{s}._domainkey IN TXT {strings(f'v=DKIM1; k=rsa; p={keys[s - 1]}')}\n"
                  for s in (1, 2))
        + "@ IN MX 10 mail\nmail IN A 192.0.2.25\n")
    cfg += [f"  {d}:",
            "    spf: { ip4: [192.0.2.0/24], mx: true, include: [_spf.provider.test], all: fail }",
            "    dmarc: { p: reject, rua: [mailto:dmarc@reports.provider.test] }",
            "    dkim:", "      selectors:"]
    for s in (1, 2):
        cfg += [f"        - name: s{s}", f"          public_key: {keys[s - 1]}"]
open(f"{work}/bench/mailauth.yaml", "w").write("\n".join(cfg) + "\n")
open(f"{work}/bench/domains.txt", "w").write("\n".join(names) + "\n")
PY

PORT=$(free_port)
start_named "$WORK/bench" "$PORT"
dig @127.0.0.1 -p "$PORT" +short d00000.test SOA > /dev/null

echo "== mailauth validate: $N domains (SPF tree, DKIM x2, DMARC + tree walk + rua authorisation, MX, propagation)"
CMD=("$MAILAUTH" -c "$WORK/bench/mailauth.yaml" validate --nameserver "127.0.0.1:$PORT"
     --authority "ns.test=127.0.0.1:$PORT" --json)
echo "   ${CMD[*]}"
BEST=""
for run in 1 2 3; do
    START=$(date +%s.%N)
    set +e
    "${CMD[@]}" > "$WORK/mailauth.json"
    CODE=$?
    set -e
    END=$(date +%s.%N)
    T=$(python3 -c "print(f'{$END - $START:.3f}')")
    echo "   run $run: ${T} s (exit $CODE)"
    if [ -z "$BEST" ] || python3 -c "import sys; sys.exit(0 if $T < $BEST else 1)"; then BEST=$T; fi
done
python3 - "$WORK/mailauth.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
print("   summary:", doc["summary"])
PY
echo "   best: ${BEST} s"

echo "== checkdmarc $CHECKDMARC_VERSION: same $N domains (Python API, nameserver 127.0.0.1:$PORT)"
"$VENV/bin/python" - "$WORK/bench/domains.txt" "$PORT" <<'PY'
import sys, time, logging
logging.disable(logging.CRITICAL)
import checkdmarc, dns.nameserver
domains = open(sys.argv[1]).read().split()
ns = [dns.nameserver.Do53Nameserver("127.0.0.1", int(sys.argv[2]))]
start = time.monotonic()
res = checkdmarc.check_domains(domains, nameservers=ns, timeout=1.0)
took = time.monotonic() - start
res = res if isinstance(res, list) else [res]
ok = sum(1 for r in res if r.get("spf", {}).get("valid") and r.get("dmarc", {}).get("valid"))
print(f"   checkdmarc.check_domains(..., timeout=1.0): {took:.3f} s; {ok}/{len(res)} with valid SPF and DMARC")
PY

echo "== cross-check with checkdmarc on the test fixtures"
mkdir -p "$WORK/fixtures"
cp -r "$ROOT/tests/data/validate/zones" "$WORK/fixtures/zones"
FPORT=$(free_port)
start_named "$WORK/fixtures" "$FPORT"
set +e
"$MAILAUTH" -c "$ROOT/tests/data/validate/mailauth.yaml" validate --json --no-propagation \
    --nameserver "127.0.0.1:$FPORT" > "$WORK/fixtures.json"
set -e
"$VENV/bin/python" "$ROOT/scripts/crosscheck_checkdmarc.py" "$FPORT" "$WORK/fixtures.json"
