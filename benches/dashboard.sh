#!/usr/bin/env bash
# Benchmark of the dashboards on a large report store, SQLite or PostgreSQL.
#
# 1. Creates a store with the current schema (`mailauth store migrate`) and
#    fills it with SQL: RECORDS aggregate records (default 1,000,000) in
#    100-record reports over 50 domains, 365 days, 5 reporters and 20,000
#    source IPs, with mixed DKIM/SPF results and dispositions.
#    STORE=sqlite (default): a new file. STORE=postgres: a throwaway
#    PostgreSQL 15 cluster (initdb, pg_ctl) in the temporary directory,
#    listening on a free loopback port only, trust authentication; the
#    monthly partitions are made by the store's own function, the rows by
#    generate_series, then ANALYZE (what autovacuum would do).
# 2. Starts `mailauth serve --offline` on a free loopback port and times,
#    with curl: the first start (which builds the rollups from every
#    record), then the overview page `/` and `/api/overview`, first request
#    and best of RUNS (the page is rendered from the rollup), and one
#    domain page (`/domain/d7.example`), first request and best of RUNS.
# 3. Stops the server and times a second start on the existing rollup,
#    then the overview after one more report arrives (folded in
#    incrementally).
# 4. Without BEFORE_BIN: times `reports prune` of about 10% of the reports
#    (those that began before 2025-02-07), then a start on the pruned
#    store and the overview and domain page after it.
#
#   benches/dashboard.sh                          # release build, 1M records, SQLite
#   STORE=postgres RECORDS=10000000 benches/dashboard.sh
#   PROFILE=debug RECORDS=200000 benches/dashboard.sh
#   MAILAUTH_BIN=/path/to/mailauth benches/dashboard.sh   # that binary, no build
#   BEFORE_BIN=/path/to/old/mailauth benches/dashboard.sh # both, on one store
#
# The store lives in a temporary directory (TMPDIR) removed at the end.
set -euo pipefail

RECORDS=${RECORDS:-1000000}
RUNS=${RUNS:-5}
PROFILE=${PROFILE:-release}
STORE=${STORE:-sqlite}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
PID=
PGDATA_DIR=
as_pg() {
    # initdb and pg_ctl refuse to run as root: the cluster then belongs to
    # the postgres user.
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [ -n "$PGDATA_DIR" ]; then as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" stop -m fast >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

case "$STORE" in
sqlite | postgres) ;;
*) echo "STORE must be sqlite or postgres, not $STORE" >&2; exit 2 ;;
esac

if [ -n "${MAILAUTH_BIN:-}" ]; then
    BIN=$MAILAUTH_BIN # a binary built before, to compare
elif [ "$PROFILE" = release ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    BIN=$TARGET/release/mailauth
else
    cargo build --quiet --manifest-path "$ROOT/Cargo.toml"
    BIN=$TARGET/debug/mailauth
fi
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
secs() { date +%s.%N; }
since() { echo "$(secs) - $1" | bc; }

REPORTS=$(( (RECORDS + 99) / 100 ))
# One report per (reporter, domain, day) slice: report i begins on day
# i % 365, for domain i % 50, from reporter i % 5; record j belongs to
# report j / 100.
if [ "$STORE" = sqlite ]; then
    DB=$WORK/reports.db
    STORE_ARGS=(--db "$DB")
    "${BEFORE_BIN:-$BIN}" store migrate --store "$DB" >/dev/null
    sql() { sqlite3 "$DB" "$@"; }
    start=$(secs)
    sqlite3 "$DB" >/dev/null <<SQL
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
    fill=$(since "$start")
    late_report() {
        sqlite3 "$DB" "INSERT INTO reports (org_name, report_id, date_begin, date_end, policy_domain, origin, ingested_at) VALUES ('late.example', 'late-$1', 1767139200, 1767225599, 'd1.example', 'bench', 0); INSERT INTO records (report_id, source_ip, count, disposition, header_from) VALUES (last_insert_rowid(), '192.0.2.1', 5, 'none', 'd1.example');"
    }
else
    chmod 755 "$WORK"
    PGDATA_DIR=$WORK/pg
    mkdir "$PGDATA_DIR"
    if [ "$(id -u)" = 0 ]; then chown postgres "$PGDATA_DIR"; fi
    as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust --no-sync -E UTF8 --locale C >/dev/null
    PGPORT=$(free_port)
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/pg.log" -w \
        -o "-p $PGPORT -k $PGDATA_DIR -h 127.0.0.1 -c fsync=off -c max_wal_size=4GB" start >/dev/null
    URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
    STORE_ARGS=(--store "$URL")
    "${BEFORE_BIN:-$BIN}" store migrate --store "$URL" >/dev/null
    sql() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$URL" -c "$1"; }
    start=$(secs)
    psql -X -q -v ON_ERROR_STOP=1 "$URL" >/dev/null <<SQL
SELECT mailauth_month_partitions_v1(1735689600 + d * 86400) FROM generate_series(0, 364) d;
SELECT mailauth_month_partitions_v1(1767139200);
BEGIN;
INSERT INTO reports (id, org_name, report_id, date_begin, date_end, policy_domain,
                     record_count, message_count, origin, ingested_at)
SELECT i + 1, 'reporter' || (i % 5) || '.example', 'r' || i,
       1735689600 + (i % 365) * 86400, 1735689600 + (i % 365) * 86400 + 86399,
       'd' || (i % 50) || '.example', 100, 0, 'bench', 0
FROM generate_series(0, $REPORTS - 1) i;
INSERT INTO policy_published (report_id, date_begin, domain, p, pct)
SELECT id, date_begin, policy_domain,
       CASE id % 3 WHEN 0 THEN 'none' WHEN 1 THEN 'quarantine' ELSE 'reject' END, 100
FROM reports;
INSERT INTO records (report_id, date_begin, source_ip, count, disposition, dkim_aligned,
                     spf_aligned, header_from, dkim_domain, dkim_selector, dkim_result,
                     spf_domain, spf_result)
SELECT i / 100 + 1, 1735689600 + ((i / 100) % 365) * 86400,
       '198.51.' || ((i * 7919) % 20000 / 256) || '.' || ((i * 7919) % 20000 % 256),
       1 + i % 17,
       CASE WHEN i % 23 = 0 THEN 'reject' WHEN i % 19 = 0 THEN 'quarantine' ELSE 'none' END,
       CASE WHEN i % 4 = 0 THEN 'fail' ELSE 'pass' END,
       CASE WHEN i % 3 = 0 THEN 'fail' ELSE 'pass' END,
       'd' || ((i / 100) % 50) || '.example', 'd' || ((i / 100) % 50) || '.example', 's1',
       CASE WHEN i % 4 = 0 THEN 'fail' ELSE 'pass' END,
       'bounce.example', CASE WHEN i % 3 = 0 THEN 'fail' ELSE 'pass' END
FROM generate_series(0::bigint, $RECORDS - 1) i;
UPDATE reports r SET message_count = s.n
FROM (SELECT report_id, date_begin, sum(count) AS n FROM records GROUP BY 1, 2) s
WHERE s.report_id = r.id AND s.date_begin = r.date_begin;
SELECT setval(pg_get_serial_sequence('reports', 'id'), (SELECT max(id) FROM reports));
COMMIT;
ANALYZE;
SQL
    fill=$(since "$start")
    late_report() {
        psql -X -q -v ON_ERROR_STOP=1 "$URL" >/dev/null <<SQL
WITH r AS (INSERT INTO reports (org_name, report_id, date_begin, date_end, policy_domain, origin, ingested_at)
           VALUES ('late.example', 'late-$1', 1767139200, 1767225599, 'd1.example', 'bench', 0)
           RETURNING id, date_begin)
INSERT INTO records (report_id, date_begin, source_ip, count, disposition, header_from)
SELECT id, date_begin, '192.0.2.1', 5, 'none', 'd1.example' FROM r;
SQL
    }
fi
echo "store ($STORE): $(sql 'SELECT count(*) FROM records') records in $(sql 'SELECT count(*) FROM reports') reports, filled in $fill s"

PORT=$(free_port)
# Starts `serve` and sets STARTED to the seconds until it answers
# /api/health.
start_serve() {
    local t0; t0=$(secs)
    "$RUN_BIN" serve --offline --listen "127.0.0.1:$PORT" "${STORE_ARGS[@]}" -c "$WORK/none.yaml" \
        >/dev/null 2>"$WORK/serve.log" &
    PID=$!
    for _ in $(seq 60000); do
        curl -sf "http://127.0.0.1:$PORT/api/health" >/dev/null && break
        kill -0 "$PID" 2>/dev/null || { echo "serve exited: $(cat "$WORK/serve.log")" >&2; exit 1; }
        sleep 0.01
    done
    STARTED=$(since "$t0")
}
stop_serve() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
t() { curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT$1"; }
best() {
    local b=999
    for _ in $(seq "$RUNS"); do
        local x; x=$(t "$1")
        b=$(echo "if ($x < $b) $x else $b" | bc)
    done
    echo "$b"
}
# Times one binary: first start, pages, second start, one new report.
measure() {
    RUN_BIN=$1
    echo "-- $2: $RUN_BIN"
    start_serve
    echo "serve first start (opens the store, builds the rollups): $STARTED s"
    echo "first request /: $(t /) s"
    echo "overview /             best of $RUNS: $(best /) s"
    echo "overview /api/overview best of $RUNS: $(best /api/overview) s"
    echo "first request /domain/d7.example: $(t /domain/d7.example) s"
    echo "domain /domain/d7.example best of $RUNS: $(best /domain/d7.example) s"
    curl -sf -o "$WORK/d7-$2.json" "http://127.0.0.1:$PORT/api/domain/d7.example"
    stop_serve
    start_serve
    echo "serve second start (the rollup exists and is current): $STARTED s"
    echo "overview / after the second start: $(t /) s"
    # New reports are folded in incrementally: add one and time again.
    late_report "$2"
    echo "overview / after one new report: $(t /) s"
    stop_serve
    if [ -z "${BEFORE_BIN:-}" ]; then
        # Retention: `reports prune` of the reports that began before
        # 2025-02-07 (37 of the 365 days: about 10% of the reports), then
        # a start on the pruned store (a rollup not kept by the prune is
        # rebuilt there). Skipped with BEFORE_BIN: both binaries read one
        # store, which must stay the same; compare two runs instead.
        local t0; t0=$(secs)
        MAILAUTH_NOW=2026-01-01T00:00:00Z "$RUN_BIN" reports prune --older-than 328d --yes \
            "${STORE_ARGS[@]}" -c "$WORK/none.yaml" >"$WORK/prune.txt"
        echo "reports prune (about 10% of the reports): $(since "$t0") s ($(head -1 "$WORK/prune.txt"))"
        start_serve
        echo "serve start after the prune: $STARTED s"
        echo "overview / after the prune: $(t /) s"
        echo "domain /domain/d7.example after the prune: $(t /domain/d7.example) s"
        stop_serve
    fi
}
if [ -n "${BEFORE_BIN:-}" ]; then
    # The same store (created with the older binary's schema), read first
    # by a binary built before; its rollup is then dropped so that the
    # second binary's first start (which migrates the store if its schema
    # is newer) builds it too.
    measure "$BEFORE_BIN" before
    sql "DELETE FROM dashboard_daily_v1" >/dev/null
    sql "DELETE FROM dashboard_rollup_v1" >/dev/null
fi
THIS_BIN=$BIN
measure "$THIS_BIN" this
if [ -n "${BEFORE_BIN:-}" ]; then
    if cmp -s "$WORK/d7-before.json" "$WORK/d7-this.json"; then
        echo "/api/domain/d7.example: the same JSON from both binaries"
    else
        echo "/api/domain/d7.example: the two binaries answer differently" >&2
        exit 1
    fi
fi
echo "store size: $(du -sh "$WORK" | cut -f1)"
