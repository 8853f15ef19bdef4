#!/usr/bin/env bash
# Benchmark of `mailauth plan` / `apply` against a BIND primary over RFC 2136
# + AXFR with TSIG, and octoDNS (octodns-bind) planning the same zones on the
# same server in the same run.
#
# 1. Generates N zones (default 1000) served by one BIND on a free loopback
#    port (dynamic zones; one TSIG key may update and transfer them) and a
#    mailauth config declaring SPF, DMARC and two 2048-bit RSA DKIM selectors
#    for each (scripts/gen_zones.py).
# 2. `mailauth apply` once, so the zones hold the records; a plan must then
#    be empty.
# 3. Changes the DMARC policy of every 10th domain in a copy of the config;
#    octoDNS: dumps the applied zones through octodns-bind (AXFR) as its
#    YAML source and makes the same change there.
# 4. RUNS times, interleaved: `mailauth plan` (release build) and
#    `octodns-sync` (plan only) against the same server, each timed with
#    /usr/bin/time (wall, CPU, max RSS); prints the medians and the ratio
#    of the median wall times. Checks that mailauth finds exactly N/10
#    changes, all of them the `_dmarc` TXT of a changed domain, and that
#    octoDNS finds N/10 updates. Around every mailauth run it reads the
#    kernel's TCP counters (nstat: TcpActiveOpens, TcpExtListenOverflows,
#    TcpExtListenDrops, TcpExtTCPSynRetrans; system-wide, so other traffic
#    on the machine counts too) and shows named's listen sockets (ss -ltn:
#    Send-Q is the backlog, named's tcp-listen-queue).
# 5. Times `mailauth apply` of the changed config, then the re-plan, which
#    must be empty; octoDNS's plan must then be empty as well.
#
# octoDNS and octodns-bind are installed from PyPI into a venv under the
# target dir (never committed). Needs named, tsig-keygen, dig, openssl,
# python3, /usr/bin/time.
#
#   benches/plan_bind.sh              # N=1000, RUNS=5
#   N=100 RUNS=1 benches/plan_bind.sh
#   N=10000 RUNS=5 SKIP_APPLY=1 benches/plan_bind.sh   # no apply/re-plan step
set -euo pipefail

N=${N:-1000}
RUNS=${RUNS:-5}
SKIP_APPLY=${SKIP_APPLY:-}
EVERY=10
OCTODNS_VERSION=${OCTODNS_VERSION:-1.22.0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET/bench/octodns-venv
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for bin in named tsig-keygen dig openssl python3 /usr/bin/time nstat ss; do
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

# timed LABEL OUT CMD...: runs CMD with stdout to OUT, stderr to OUT.err;
# prints wall/CPU/RSS and sets T_WALL, T_CPU, T_RSS_MB, T_EXIT.
timed() {
    local label=$1 out=$2; shift 2
    set +e
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/time.txt" "$@" > "$out" 2> "$out.err"
    T_EXIT=$?
    set -e
    read -r wall user sys rss < <(tail -1 "$WORK/time.txt")
    T_WALL=$wall
    T_CPU=$(python3 -c "print(f'{$user + $sys:.2f}')")
    T_RSS_MB=$(python3 -c "print(f'{$rss / 1024:.1f}')")
    echo "   $label: ${T_WALL} s wall, ${T_CPU} s CPU (user $user, sys $sys), max RSS ${T_RSS_MB} MB, exit $T_EXIT"
}

# plan_changes FILE: prints "changes zones-with-changes errors" of a JSON plan.
plan_changes() {
    python3 - "$1" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
changes = sum(len(z["changes"]) for z in plan["zones"])
zones = sum(1 for z in plan["zones"] if z["changes"])
errors = sum(1 for z in plan["zones"] if z.get("error"))
print(changes, zones, errors)
PY
}

echo "== machine: $(nproc) cores; $(uptime)"
echo "== building mailauth (release)"
(cd "$ROOT" && cargo build --release --quiet --bin mailauth)
MAILAUTH=$TARGET/release/mailauth

if [ ! -x "$VENV/bin/octodns-sync" ] || ! "$VENV/bin/python" -c 'import octodns_bind' 2>/dev/null; then
    echo "== installing octodns==$OCTODNS_VERSION and octodns-bind into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "octodns==$OCTODNS_VERSION" octodns-bind
fi
OCTO_V=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("octodns"), m.version("octodns-bind"))')
echo "   octodns, octodns-bind: $OCTO_V"

echo "== generating $N zones"
KEYS=()
for k in 1 2 3 4; do
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null \
        | openssl pkey -pubout -outform DER 2>/dev/null | base64 -w0 > "$WORK/key$k.b64"
    KEYS+=("$WORK/key$k.b64")
done
KEYLIST=$(IFS=,; echo "${KEYS[*]}")
tsig-keygen -a hmac-sha256 mailauth-key > "$WORK/tsig.key"
PORT=$(free_port)
B=$WORK/bind
python3 "$ROOT/scripts/gen_zones.py" --out "$B" --zones "$N" --port "$PORT" \
    --keys "$KEYLIST" --tsig "$WORK/tsig.key"
python3 "$ROOT/scripts/gen_zones.py" --out "$B" --zones "$N" --port "$PORT" \
    --keys "$KEYLIST" --tsig "$WORK/tsig.key" --change-every "$EVERY" \
    --config-name mailauth-changed.yaml
WANT=$(( (N + EVERY - 1) / EVERY ))

named -g -n 2 -c "$B/named.conf" > "$B/named.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do
    grep -q "running" "$B/named.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "running" "$B/named.log" || { tail -20 "$B/named.log" >&2; echo "named did not start" >&2; exit 1; }
LAST=$(printf 'd%05d.test' $((N - 1)))
SERVED=""
for _ in $(seq 1 20); do
    dig @127.0.0.1 -p "$PORT" +short +tries=1 +time=2 "$LAST" SOA | grep -q . && { SERVED=1; break; }
    sleep 0.5
done
[ -n "$SERVED" ] || { tail -5 "$B/named.log" >&2; echo "$LAST not served" >&2; exit 1; }
echo "   named on 127.0.0.1:$PORT serving $N zones"

echo "== mailauth apply (initial: SPF, DMARC, 2 DKIM and the registry record per zone)"
timed "apply (initial)" "$WORK/apply0.txt" "$MAILAUTH" --color never -c "$B/mailauth.yaml" apply --auto-approve
[ "$T_EXIT" = 0 ] || { tail -20 "$WORK/apply0.txt" "$WORK/apply0.txt.err" >&2; exit 1; }
"$MAILAUTH" -c "$B/mailauth.yaml" plan --json > "$WORK/plan0.json"
read -r c z e < <(plan_changes "$WORK/plan0.json")
echo "   plan after the initial apply: $c changes, $e errors"
[ "$c" = 0 ] && [ "$e" = 0 ] || { echo "the initial apply did not converge" >&2; exit 1; }

echo "== octoDNS: dump the applied zones as its source (AXFR through octodns-bind), change every ${EVERY}th DMARC"
O=$WORK/octodns
"$VENV/bin/python" "$ROOT/scripts/octodns_bench.py" config --out "$O" --domains "$B/domains.txt" \
    --port "$PORT" --tsig "$WORK/tsig.key"
"$VENV/bin/python" "$ROOT/scripts/octodns_bench.py" dump --out "$O" --domains "$B/domains.txt" \
    --change-every "$EVERY"

echo "== listen sockets of named (Send-Q = backlog):"
ss -ltn "sport = :$PORT" | sed 's/^/   /'

CMD=("$MAILAUTH" -c "$B/mailauth-changed.yaml" plan --json)
OCMD=("$VENV/bin/octodns-sync" --config-file "$O/octodns.yaml")
echo "== $RUNS runs, interleaved: mailauth plan ($N zones, $WANT changed, release) and octoDNS $OCTO_V plan"
echo "   ${CMD[*]}"
echo "   ${OCMD[*]}"
M_WALL=(); M_CPU=(); M_RSS=(); O_WALL=(); O_CPU=(); O_RSS=()
NSTAT_KEYS="TcpActiveOpens TcpExtListenOverflows TcpExtListenDrops TcpExtTCPSynRetrans"
for run in $(seq 1 "$RUNS"); do
    nstat -n
    timed "mailauth run $run" "$WORK/plan1.json" "${CMD[@]}"
    [ "$T_EXIT" = 0 ] || { tail -20 "$WORK/plan1.json.err" >&2; exit 1; }
    echo "     kernel TCP counters during the run: $(nstat -z $NSTAT_KEYS | awk '!/^#/ {printf "%s %s  ", $1, $2}')"
    M_WALL+=("$T_WALL"); M_CPU+=("$T_CPU"); M_RSS+=("$T_RSS_MB")
    python3 - "$WORK/plan1.json" "$EVERY" "$WANT" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
every, want = int(sys.argv[2]), int(sys.argv[3])
expect = {f"d{i:05d}.test" for i in range(0, len(plan["zones"]), every)}
got = {}
errors = [z["zone"] for z in plan["zones"] if z.get("error")]
for z in plan["zones"]:
    for c in z["changes"]:
        got.setdefault(z["zone"].rstrip("."), []).append(c)
bad = [(zone, c["action"], c["name"], c["type"]) for zone, cs in got.items() for c in cs
       if zone not in expect or c["action"] != "update" or not c["name"].startswith("_dmarc")
       or "p=quarantine" not in "".join(c["new"]["data"])]
if set(got) != expect or sum(map(len, got.values())) != want or bad or errors:
    sys.exit(f"   WRONG PLAN: {sum(map(len, got.values()))} changes, zones differ: "
             f"{sorted(set(got) ^ expect)[:5]}, unexpected: {bad[:5]}, errors: {errors[:5]}")
print(f"     check: exactly {want} changes, each the _dmarc TXT of a changed zone (p=quarantine)")
PY
    timed "octodns-sync run $run" "$WORK/octo1.txt" "${OCMD[@]}"
    [ "$T_EXIT" = 0 ] || { tail -20 "$WORK/octo1.txt.err" >&2; exit 1; }
    O_WALL+=("$T_WALL"); O_CPU+=("$T_CPU"); O_RSS+=("$T_RSS_MB")
    read -r oc ou od oz < <("$VENV/bin/python" "$ROOT/scripts/octodns_bench.py" count "$WORK/octo1.txt.err")
    echo "     octoDNS plan: $oc creates, $ou updates, $od deletes in $oz zones"
    [ "$oc" = 0 ] && [ "$ou" = "$WANT" ] && [ "$od" = 0 ] || echo "     WARNING: octoDNS did not plan exactly $WANT updates"
done
python3 - "${M_WALL[*]}" "${M_CPU[*]}" "${M_RSS[*]}" "${O_WALL[*]}" "${O_CPU[*]}" "${O_RSS[*]}" "$N" <<'PY'
import statistics as st, sys
m_wall, m_cpu, m_rss, o_wall, o_cpu, o_rss = ([float(x) for x in a.split()] for a in sys.argv[1:7])
med = st.median
print(f"== medians of {len(m_wall)} runs, {sys.argv[7]} zones")
print(f"   mailauth plan: {med(m_wall):.2f} s wall (max {max(m_wall):.2f}; runs {', '.join(f'{x:.2f}' for x in m_wall)}), "
      f"{med(m_cpu):.2f} s CPU, {med(m_rss):.1f} MB max RSS")
print(f"   octoDNS plan:  {med(o_wall):.2f} s wall (runs {', '.join(f'{x:.2f}' for x in o_wall)}), "
      f"{med(o_cpu):.2f} s CPU, {med(o_rss):.1f} MB max RSS")
print(f"   ratio (octoDNS / mailauth): {med(o_wall) / med(m_wall):.1f}x wall, {med(o_cpu) / med(m_cpu):.1f}x CPU")
PY

if [ -n "$SKIP_APPLY" ]; then
    echo "== load at the end: $(uptime)"
    exit 0
fi

echo "== mailauth apply of the changed config, then re-plan"
timed "apply ($WANT changes)" "$WORK/apply1.txt" "$MAILAUTH" --color never -c "$B/mailauth-changed.yaml" apply --auto-approve
[ "$T_EXIT" = 0 ] || { tail -20 "$WORK/apply1.txt" "$WORK/apply1.txt.err" >&2; exit 1; }
timed "re-plan" "$WORK/plan2.json" "${CMD[@]}"
read -r c z e < <(plan_changes "$WORK/plan2.json")
echo "   re-plan: $c changes, $e errors"
[ "$c" = 0 ] && [ "$e" = 0 ] || { echo "   WRONG: the re-plan is not empty" >&2; exit 1; }
timed "octodns-sync (plan after apply)" "$WORK/octo2.txt" "${OCMD[@]}"
read -r oc ou od oz < <("$VENV/bin/python" "$ROOT/scripts/octodns_bench.py" count "$WORK/octo2.txt.err")
echo "   octoDNS plan after mailauth's apply: $oc creates, $ou updates, $od deletes"
echo "== load at the end: $(uptime)"
