#!/usr/bin/env bash
# Benchmark of `mailauth validate` against checkdmarc at fleet sizes, and a
# cross-check of their SPF lookup counts.
#
# 1. For each size in SIZES (default 1,000 and 10,000 domains), generates
#    that many domains (SPF with includes, DMARC with an external,
#    authorised rua, two 2048-bit DKIM selectors, MX) as zones of one BIND
#    on a free loopback port, plus a mailauth config for them.
# 2. Times `mailauth validate` (release build; all checks including DKIM
#    and propagation) RUNS times and checkdmarc's Python API CD_RUNS times
#    (CD_RUNS_LARGE times above 1,000 domains: one run of checkdmarc at
#    10,000 domains takes minutes) on the same domains in the same run,
#    each process under /usr/bin/time: medians of wall time, CPU time
#    (user + system) and peak RSS, and the ratio of the median wall times.
# 3. Runs scripts/crosscheck_checkdmarc.py on the test fixtures
#    (tests/data/validate): SPF lookup and void-lookup counts of both tools.
#
# checkdmarc is installed from PyPI into a venv under the target dir (never
# committed), or taken from CHECKDMARC_VENV. Needs named, dig, openssl,
# python3, /usr/bin/time.
#
#   benches/validate.sh                       # SIZES="1000 10000"
#   SIZES=200 RUNS=3 benches/validate.sh
#   N=1000 benches/validate.sh                # one size, as before
set -euo pipefail

SIZES=${SIZES:-${N:-1000 10000}}
RUNS=${RUNS:-5}
CD_RUNS=${CD_RUNS:-3}
CD_RUNS_LARGE=${CD_RUNS_LARGE:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${CHECKDMARC_VENV:-$TARGET/bench/venv}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for bin in named dig openssl python3 /usr/bin/time; do
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
    NAMED_PID=$!
    PIDS+=("$NAMED_PID")
    # "all zones loaded" comes after every zone is served (10,000 zones
    # take a while).
    for _ in $(seq 1 3000); do
        grep -q "all zones loaded" "$dir/named.log" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$dir/named.log" >&2
    echo "named did not start" >&2
    exit 1
}

# MAILAUTH=path/to/mailauth times that binary instead of building one.
if [ -z "${MAILAUTH:-}" ]; then
    echo "== building mailauth (release)"
    (cd "$ROOT" && cargo build --release --quiet)
    MAILAUTH=$TARGET/release/mailauth
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import checkdmarc' 2>/dev/null; then
    echo "== installing checkdmarc into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet checkdmarc
fi
CHECKDMARC_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("checkdmarc"))')

for s in 1 2; do
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null \
        | openssl pkey -pubout -outform DER 2>/dev/null | base64 -w0 > "$WORK/key$s.b64"
done

# gen_domains DIR N: DIR/zones/*.zone, DIR/mailauth.yaml, DIR/domains.txt.
gen_domains() {
python3 - "$WORK" "$1" "$2" <<'PY'
import sys
work, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
keys = [open(f"{work}/key{s}.b64").read().strip() for s in (1, 2)]
def strings(v, size=255):
    return " ".join('"%s"' % v[i:i + size] for i in range(0, len(v), size))
def soa(origin):
    return (f"$TTL 300\n@ IN SOA ns.test. hostmaster.{origin}. 1 3600 600 86400 300\n"
            "@ IN NS ns.test.\n")
z = f"{out}/zones"
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
open(f"{out}/mailauth.yaml", "w").write("\n".join(cfg) + "\n")
open(f"{out}/domains.txt", "w").write("\n".join(names) + "\n")
PY
}

cat > "$WORK/checkdmarc_run.py" <<'PY'
import sys, time, logging, warnings
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
import checkdmarc, dns.nameserver
domains = open(sys.argv[1]).read().split()
ns = [dns.nameserver.Do53Nameserver("127.0.0.1", int(sys.argv[2]))]
start = time.monotonic()
res = checkdmarc.check_domains(domains, nameservers=ns, timeout=1.0)
took = time.monotonic() - start
res = res if isinstance(res, list) else [res]
ok = sum(1 for r in res if r.get("spf", {}).get("valid") and r.get("dmarc", {}).get("valid"))
print(f"check_domains {took:.3f} s; {ok}/{len(res)} with valid SPF and DMARC")
PY

# timed FILE CMD...: runs CMD under /usr/bin/time, its stdout to $WORK/out,
# appends "wall cpu peak_rss_kib exit" to FILE and prints the run.
timed() {
    local file=$1
    shift
    set +e
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" > "$WORK/out" 2> "$WORK/err"
    local code=$?
    set -e
    read -r wall user sys rss < <(tail -n 1 "$WORK/time")
    local cpu
    cpu=$(python3 -c "print(f'{$user + $sys:.2f}')")
    echo "$wall $cpu $rss $code" >> "$file"
    echo "   run: ${wall} s wall, ${cpu} s CPU, $((rss / 1024)) MiB peak RSS (exit $code)"
}

# median FILE: "median wall, median CPU, median peak RSS (MiB)".
median() {
    python3 - "$1" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
col = lambda i: statistics.median(float(r[i]) for r in rows)
print(f"{col(0):.2f} {col(1):.2f} {col(2) / 1024:.0f} {len(rows)}")
PY
}

SUMMARY=$WORK/summary
: > "$SUMMARY"
for N in $SIZES; do
    echo "== $N domains: generating zones"
    B=$WORK/bench$N
    mkdir -p "$B/zones"
    gen_domains "$B" "$N"
    PORT=$(free_port)
    start_named "$B" "$PORT"
    dig @127.0.0.1 -p "$PORT" +short d00000.test SOA > /dev/null
    echo "   load average: $(cut -d' ' -f1-3 /proc/loadavg)"

    echo "== mailauth validate: $N domains (SPF tree, DKIM x2, DMARC + tree walk + rua authorisation, MX, MTA-STS, TLS-RPT, BIMI, propagation)"
    CMD=("$MAILAUTH" -c "$B/mailauth.yaml" validate --nameserver "127.0.0.1:$PORT"
         --authority "ns.test=127.0.0.1:$PORT" --json)
    echo "   ${CMD[*]}"
    for _ in $(seq 1 "$RUNS"); do timed "$B/mailauth.runs" "${CMD[@]}"; done
    python3 - "$WORK/out" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
print("   summary:", doc["summary"])
PY

    runs=$CD_RUNS
    [ "$N" -gt 1000 ] && runs=$CD_RUNS_LARGE
    echo "== checkdmarc $CHECKDMARC_VERSION: same $N domains, $runs run(s) (Python API, nameserver 127.0.0.1:$PORT, timeout=1.0)"
    for _ in $(seq 1 "$runs"); do
        timed "$B/checkdmarc.runs" "$VENV/bin/python" "$WORK/checkdmarc_run.py" "$B/domains.txt" "$PORT"
        echo "   $(cat "$WORK/out")"
    done
    echo "   load average: $(cut -d' ' -f1-3 /proc/loadavg)"

    read -r mw mc mr mn < <(median "$B/mailauth.runs")
    read -r cw cc cr cn < <(median "$B/checkdmarc.runs")
    ratio=$(python3 -c "print(f'{$cw / $mw:.0f}')")
    echo "| $N | mailauth validate | $mn | $mw s | $mc s | $mr MiB |" >> "$SUMMARY"
    echo "| $N | checkdmarc $CHECKDMARC_VERSION | $cn | $cw s | $cc s | $cr MiB |" >> "$SUMMARY"
    echo "| $N | ratio (checkdmarc / mailauth, wall) | | ${ratio}× | | |" >> "$SUMMARY"
    kill "$NAMED_PID" 2>/dev/null || true
    wait "$NAMED_PID" 2>/dev/null || true
    rm -rf "$B/zones"
done

echo "== medians"
echo "| domains | tool | runs | wall | CPU (user + system) | peak RSS |"
echo "|---|---|---|---|---|---|"
cat "$SUMMARY"

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
