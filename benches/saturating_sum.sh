#!/usr/bin/env bash
# Cost of the dashboards' overflow-safe sums (`sqlite_sum!` in
# src/reports/dashq.rs) against SQLite's plain `sum`, on the query that
# builds the daily rollup: 1,000,000 records in 10,000 reports over 50
# domains and 365 days, grouped by domain and day, seven sums per group.
# Uses the sqlite3 command-line shell only (no build); prints each run's
# wall time, then the median per variant.
#
#   benches/saturating_sum.sh            # RUNS=5
set -euo pipefail

RUNS=${RUNS:-5}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
DB=$WORK/bench.db

sqlite3 "$DB" <<'SQL'
CREATE TABLE r (id INTEGER PRIMARY KEY, dom TEXT, day INTEGER);
CREATE TABLE c (report_id INTEGER, count INTEGER, dkim_aligned TEXT, spf_aligned TEXT,
                disposition TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
  INSERT INTO r SELECT i, 'd' || (i % 50), i % 365 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
  INSERT INTO c SELECT 1 + (i % 10000), 1 + (i % 97),
    CASE WHEN i % 3 = 0 THEN 'pass' ELSE 'fail' END,
    CASE WHEN i % 5 = 0 THEN 'pass' ELSE 'fail' END,
    CASE i % 4 WHEN 0 THEN 'reject' WHEN 1 THEN 'quarantine' ELSE 'none' END FROM n;
SQL

exprs=(
  "c.count"
  "CASE WHEN c.dkim_aligned = 'pass' OR c.spf_aligned = 'pass' THEN c.count ELSE 0 END"
  "CASE WHEN c.spf_aligned = 'pass' THEN c.count ELSE 0 END"
  "CASE WHEN c.dkim_aligned = 'pass' THEN c.count ELSE 0 END"
  "CASE WHEN c.disposition IN ('quarantine', 'reject') THEN 0 ELSE c.count END"
  "CASE WHEN c.disposition = 'quarantine' THEN c.count ELSE 0 END"
  "CASE WHEN c.disposition = 'reject' THEN c.count ELSE 0 END"
)
query() { # $1: plain | saturating
  local cols=()
  for e in "${exprs[@]}"; do
    if [ "$1" = plain ]; then
      cols+=("sum($e)")
    else
      cols+=("max(min(sum(($e) >> 32) * 4294967296 + sum(($e) & 4294967295), 9223372036854775807), -9223372036854775808)")
    fi
  done
  local IFS=,
  echo "SELECT count(*) FROM (SELECT r.dom, r.day, ${cols[*]} FROM c JOIN r ON r.id = c.report_id GROUP BY 1, 2);"
}

for variant in plain saturating; do
  sql=$(query "$variant")
  times=()
  for _ in $(seq "$RUNS"); do
    start=$(date +%s.%N)
    sqlite3 "$DB" "$sql" >/dev/null
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  echo "$variant: ${times[*]} s; median $median s"
done
