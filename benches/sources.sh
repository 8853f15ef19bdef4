#!/usr/bin/env bash
# Benchmark of source identification in `reports summary --domain` on a
# large report store, with and without an ASN database (issue 18).
#
# 1. Creates a store with the current schema and fills it with SQL:
#    RECORDS aggregate records (default 1,000,000) in 100-record reports
#    over 5 domains and 20,000 source IPs: a quarter in SendGrid's network
#    (DKIM d=sendgrid.net on some), a quarter in Google's, the rest in
#    unknown networks.
# 2. Writes a MaxMind DB ASN database (python3, the layout of GeoLite2-ASN)
#    naming the systems of those networks.
# 3. Times `reports summary --domain d1.example --offline --json` (every
#    source of the domain identified and classified: up to 5,000) and the
#    same with `--asn-db`, RUNS times each, and prints the medians.
# The store and the database are deleted afterwards.
#
#   benches/sources.sh                    # release build, 1M records
#   PROFILE=debug RECORDS=100000 benches/sources.sh
set -euo pipefail

RECORDS=${RECORDS:-1000000}
RUNS=${RUNS:-5}
PROFILE=${PROFILE:-release}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ "$PROFILE" = release ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
else
    cargo build --quiet --manifest-path "$ROOT/Cargo.toml"
fi
BIN=$TARGET/$PROFILE/mailauth
DB=$WORK/reports.db
"$BIN" store migrate --store "$DB" >/dev/null

REPORTS=$(( (RECORDS + 99) / 100 ))
start=$(date +%s.%N)
sqlite3 "$DB" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $REPORTS)
INSERT INTO reports (id, org_name, report_id, date_begin, date_end, policy_domain,
                     record_count, message_count, origin, ingested_at)
SELECT i + 1, 'reporter' || (i % 5) || '.example', 'r' || i,
       1735689600 + (i % 365) * 86400, 1735689600 + (i % 365) * 86400 + 86399,
       'd' || (i % 5) || '.example', 100, 0, 'bench', 0 FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $RECORDS)
INSERT INTO records (report_id, source_ip, count, disposition, dkim_aligned, spf_aligned,
                     header_from, dkim_domain, dkim_selector, dkim_result, spf_domain, spf_result,
                     reasons)
SELECT i / 100 + 1,
       CASE (i * 7919) % 4
         WHEN 0 THEN '167.89.' || ((i * 7919) % 20000 / 256 % 128) || '.' || ((i * 7919) % 20000 % 256)
         WHEN 1 THEN '209.85.' || ((i * 7919) % 20000 / 256 % 128 + 128) || '.' || ((i * 7919) % 20000 % 256)
         WHEN 2 THEN '198.51.' || ((i * 7919) % 20000 / 256) || '.' || ((i * 7919) % 20000 % 256)
         ELSE '2001:db8:' || ((i * 7919) % 20000 / 256) || '::' || ((i * 7919) % 20000 % 256)
       END,
       1 + i % 17,
       CASE WHEN i % 23 = 0 THEN 'reject' ELSE 'none' END,
       CASE WHEN i % 4 = 0 THEN 'fail' ELSE 'pass' END,
       CASE WHEN i % 3 = 0 THEN 'fail' ELSE 'pass' END,
       'd' || ((i / 100) % 5) || '.example',
       CASE WHEN i % 8 = 0 THEN 'sendgrid.net' ELSE 'd' || ((i / 100) % 5) || '.example' END, 's1',
       CASE WHEN i % 4 = 0 THEN 'fail' ELSE 'pass' END,
       'bounce.example', CASE WHEN i % 3 = 0 THEN 'fail' ELSE 'pass' END,
       CASE WHEN i % 29 = 0 THEN '[{"type":"local_policy","comment":"arc=pass"}]' ELSE '[]' END
FROM n;
UPDATE reports SET message_count = (SELECT sum(count) FROM records WHERE report_id = reports.id);
COMMIT;
SQL
end=$(date +%s.%N)
echo "store: $(sqlite3 "$DB" 'SELECT count(*) FROM records') records in $(sqlite3 "$DB" 'SELECT count(*) FROM reports') reports, filled in $(echo "$end - $start" | bc) s"

ASN=$WORK/asn.mmdb
python3 - "$ASN" <<'PY'
import ipaddress, struct, sys
nets = [("167.89.0.0/17", 11377, "SENDGRID"), ("209.85.128.0/17", 15169, "GOOGLE"),
        ("198.51.0.0/16", 64500, "Example Transit"), ("2001:db8::/32", 64501, "Example Six")]
def ctrl(kind, size):
    small = min(size, 29)
    out = bytes([small, kind - 7]) if kind > 7 else bytes([(kind << 5) | small])
    return out + (bytes([size - 29]) if size >= 29 else b"")
def s(t): return ctrl(2, len(t)) + t.encode()
def u(kind, v):
    b = v.to_bytes(8, "big").lstrip(b"\0")
    return ctrl(kind, len(b)) + b
nodes, data = [[None, None]], b""
for net, asn, org in nets:
    n = ipaddress.ip_network(net)
    bits = int(n.network_address) if n.version == 6 else int(n.network_address)
    length = n.prefixlen if n.version == 6 else 96 + n.prefixlen
    off = len(data)
    data += ctrl(7, 2) + s("autonomous_system_number") + u(6, asn) + s("autonomous_system_organization") + s(org)
    node = 0
    for depth in range(length):
        bit = (bits >> (127 - depth)) & 1
        if depth + 1 == length:
            nodes[node][bit] = ("d", off); break
        r = nodes[node][bit]
        if r is None:
            nodes.append([None, None]); nodes[node][bit] = ("n", len(nodes) - 1); r = nodes[node][bit]
        node = r[1]
count = len(nodes)
tree = b""
for pair in nodes:
    for r in pair:
        v = count if r is None else (r[1] if r[0] == "n" else count + 16 + r[1])
        tree += v.to_bytes(3, "big")
meta = (ctrl(7, 5) + s("binary_format_major_version") + u(5, 2) + s("node_count") + u(6, count)
        + s("record_size") + u(5, 24) + s("ip_version") + u(5, 6) + s("database_type") + s("GeoLite2-ASN"))
open(sys.argv[1], "wb").write(tree + b"\0" * 16 + data + b"\xab\xcd\xefMaxMind.com" + meta)
PY

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_runs() {
    for _ in $(seq "$RUNS"); do
        local s e
        s=$(date +%s.%N)
        "$BIN" -c "$WORK/none.yaml" reports --db "$DB" summary --domain d1.example --offline --json "$@" >"$WORK/out.json"
        e=$(date +%s.%N)
        echo "$e - $s" | bc
    done | median
}
# The first summary builds the rollup; not timed.
"$BIN" -c "$WORK/none.yaml" reports --db "$DB" summary --offline >/dev/null
echo "summary --domain d1.example --json, median of $RUNS: $(time_runs) s"
echo "  sources: $(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); s=v["senders"]; print(s["sources"], "summarised,", round(s["identified_pct"] or 0, 1), "% of messages identified")' "$WORK/out.json")"
echo "same with --asn-db, median of $RUNS: $(time_runs --asn-db "$ASN") s"
echo "  sources: $(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); s=v["senders"]; print(s["sources"], "summarised,", round(s["identified_pct"] or 0, 1), "% of messages identified;", len(s["unknown"]), "unknown groups")' "$WORK/out.json")"
