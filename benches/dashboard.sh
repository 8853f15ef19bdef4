#!/usr/bin/env bash
# Benchmark of the dashboard overview on a large report store.
#
# 1. Creates a store with the current schema (`mailauth store migrate` on a
#    new file) and fills it with SQL: RECORDS aggregate records (default
#    1,000,000) in 100-record reports over 50 domains, 365 days, 5 reporters
#    and 20,000 source IPs, with mixed DKIM/SPF results and dispositions.
# 2. Starts `mailauth serve --offline` on a free loopback port and times,
#    with curl: startup (which builds the daily rollup from every record),
#    then the overview page `/` and `/api/overview`, first request and best
#    of RUNS (the page is rendered from the rollup).
#    Also times one domain page (`/domain/d7.example`), which scans that
#    domain's records.
#
#   benches/dashboard.sh                  # release build, 1M records
#   PROFILE=debug RECORDS=200000 benches/dashboard.sh
set -euo pipefail

RECORDS=${RECORDS:-1000000}
RUNS=${RUNS:-5}
PROFILE=${PROFILE:-release}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

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
       'd' || (i % 50) || '.example', 100, 0, 'bench', 0 FROM n;
INSERT INTO policy_published (report_id, domain, p, pct)
SELECT id, policy_domain, CASE id % 3 WHEN 0 THEN 'none' WHEN 1 THEN 'quarantine' ELSE 'reject' END, 100
FROM reports;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $RECORDS)
INSERT INTO records (report_id, source_ip, count, disposition, dkim_aligned, spf_aligned,
                     header_from, dkim_domain, dkim_selector, dkim_result, spf_domain, spf_result)
SELECT i / 100 + 1,
       '198.51.' || ((i * 7919) % 20000 / 256) || '.' || ((i * 7919) % 20000 % 256),
       1 + i % 17,
       CASE WHEN i % 23 = 0 THEN 'reject' WHEN i % 19 = 0 THEN 'quarantine' ELSE 'none' END,
       CASE WHEN i % 4 = 0 THEN 'fail' ELSE 'pass' END,
       CASE WHEN i % 3 = 0 THEN 'fail' ELSE 'pass' END,
       'd' || ((i / 100) % 50) || '.example', 'd' || ((i / 100) % 50) || '.example', 's1',
       CASE WHEN i % 4 = 0 THEN 'fail' ELSE 'pass' END,
       'bounce.example', CASE WHEN i % 3 = 0 THEN 'fail' ELSE 'pass' END
FROM n;
UPDATE reports SET message_count = (SELECT sum(count) FROM records WHERE report_id = reports.id);
COMMIT;
SQL
end=$(date +%s.%N)
echo "store: $(sqlite3 "$DB" 'SELECT count(*) FROM records') records in $(sqlite3 "$DB" 'SELECT count(*) FROM reports') reports, filled in $(echo "$end - $start" | bc) s"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start=$(date +%s.%N)
"$BIN" serve --offline --listen "127.0.0.1:$PORT" --db "$DB" -c "$WORK/none.yaml" 2>/dev/null &
PID=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/api/health" >/dev/null && break
    sleep 0.05
done
end=$(date +%s.%N)
echo "serve startup (opens the store, builds the daily rollup): $(echo "$end - $start" | bc) s"

t() { curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT$1"; }
best() {
    local b=999
    for _ in $(seq "$RUNS"); do
        local x; x=$(t "$1")
        b=$(echo "if ($x < $b) $x else $b" | bc)
    done
    echo "$b"
}
echo "first request /: $(t /) s"
echo "overview /           best of $RUNS: $(best /) s"
echo "overview /api/overview best of $RUNS: $(best /api/overview) s"
echo "domain /domain/d7.example best of $RUNS: $(best /domain/d7.example) s"
# New reports are folded in incrementally: add one and time again.
sqlite3 "$DB" "INSERT INTO reports (org_name, report_id, date_begin, date_end, policy_domain, origin, ingested_at) VALUES ('late.example', 'late', 1767139200, 1767225599, 'd1.example', 'bench', 0); INSERT INTO records (report_id, source_ip, count, disposition, header_from) VALUES (last_insert_rowid(), '192.0.2.1', 5, 'none', 'd1.example');"
echo "overview / after one new report: $(t /) s"
