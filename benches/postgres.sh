#!/usr/bin/env bash
# Benchmark of report ingestion into PostgreSQL with 1 and 4 worker
# processes, release build, on the generated corpus (the `mixed/`
# encodings: gzip, zip and plain XML, as reporters send them).
#
# Corpus: scripts/gen_reports.py --reports 2000 --seed 42 --min-records 10
#   --max-records 200 (deterministic): 2,000 reports, 212,076 records.
#   CORPUS=DIR reuses a generated corpus (default: generated under the
#   target dir).
#
# A PostgreSQL 15 cluster is created in a temp dir and started on a free
# loopback port (password authentication, default durability settings:
# fsync and synchronous_commit on; FSYNC=off turns fsync off), and stopped
# at the end. Runs, each into a fresh database migrated beforehand:
#   1. one `mailauth reports --store … ingest mixed/` process;
#   2. four processes, each on a quarter of the files (workers on disjoint
#      mailboxes);
#   3. four processes, each on the whole corpus (four workers racing on one
#      shared mailbox: every report is stored once, the rest are
#      duplicates);
#   4. eight processes, each on an eighth of the files (the scale-out shape
#      of docs/postgres.md: N workers, one PostgreSQL);
#   5. one process on the corpus's 200,000-record report (large/, plain
#      XML): one report, one transaction, so the figure is the record path
#      (parse + COPY) without 2,000 commits.
# Records are stored with binary COPY (reports::pgstore::write).
# Every run must store exactly the corpus's reports and records (checked
# with psql). Wall time from /usr/bin/time and the shell.
#
#   CORPUS=DIR benches/postgres.sh
#   MAILAUTH_BIN=PATH benches/postgres.sh   # another build (e.g. a baseline), no build step
#   ONLY="1 big" benches/postgres.sh         # some of the runs: 1 4split 4all 8split big
#
# Each run prints its wall time, the CPU time of the mailauth processes and
# that of the PostgreSQL cluster (the backends serving them included).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CORPUS=${CORPUS:-$TARGET/bench/reports-corpus}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
FSYNC=${FSYNC:-on}
ONLY=${ONLY:-1 4split 4all 8split big}
WORK=$(mktemp -d)
PGDATA=$WORK/pg
USER_NAME=mailauth
PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

for bin in python3 /usr/bin/time "$PGBIN/initdb" "$PGBIN/pg_ctl" "$PGBIN/psql"; do
    command -v "$bin" >/dev/null || { echo "missing: $bin" >&2; exit 2; }
done

# Run as root, the cluster belongs to `postgres` (PostgreSQL refuses root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_pg() {
    if [ -f "$PGDATA/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA" stop -m fast >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap stop_pg EXIT

echo "== machine: $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg) (shared with other work)"
if [ -n "${MAILAUTH_BIN:-}" ]; then
    MAILAUTH=$MAILAUTH_BIN
    echo "== mailauth: $MAILAUTH"
else
    echo "== building mailauth (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin mailauth)
    MAILAUTH=$TARGET/release/mailauth
fi

if [ ! -f "$CORPUS/MANIFEST.tsv" ]; then
    echo "== generating the corpus in $CORPUS"
    mkdir -p "$CORPUS"
    python3 "$ROOT/scripts/gen_reports.py" --out "$CORPUS" --reports 2000 --seed 42 \
        --min-records 10 --max-records 200
fi
read -r REPORTS RECORDS < <(awk -F'\t' 'NR > 1 && $1 !~ /^large\// { n++; r += $4 } END { print n, r }' "$CORPUS/MANIFEST.tsv")
mapfile -t FILES < <(find "$CORPUS/mixed" -type f | sort)
echo "   corpus: $REPORTS reports, $RECORDS records in ${#FILES[@]} files (mixed/)"

echo "== starting PostgreSQL 15 (fsync=$FSYNC)"
mkdir -p "$PGDATA"
printf '%s\n' "$PASSWORD" > "$WORK/pw"
if [ "$(id -u)" = 0 ]; then
    chmod 755 "$WORK"
    chown postgres "$PGDATA" "$WORK/pw"
fi
as_pg "$PGBIN/initdb" -D "$PGDATA" -U "$USER_NAME" -A scram-sha-256 --pwfile "$WORK/pw" \
    -E UTF8 --locale C >/dev/null
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/pg.log" -w \
    -o "-p $PORT -k $PGDATA -h 127.0.0.1 -c fsync=$FSYNC -c max_connections=50" start >/dev/null
echo "   $("$PGBIN/postgres" --version), port $PORT"
export MAILAUTH_STORE_PASSWORD=$PASSWORD PGPASSWORD=$PASSWORD
unset MAILAUTH_STORE MAILAUTH_DB

# pg_cpu: CPU seconds the cluster has used so far: the postmaster, its
# live processes and the backends it has reaped (utime + stime, and the
# reaped children's cutime + cstime, from /proc/PID/stat).
pg_cpu() {
    local pm ticks
    pm=$(head -n 1 "$PGDATA/postmaster.pid")
    ticks=$(getconf CLK_TCK)
    { cat "/proc/$pm/stat"; for c in $(pgrep -P "$pm"); do cat "/proc/$c/stat" 2>/dev/null || true; done; } |
        awk -v pm="$pm" -v hz="$ticks" '{ sub(/^.*\) /, ""); t += $12 + $13; if (NR == 1) t += $14 + $15 } END { printf "%.2f", t / hz }'
}

psql_do() { "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d "$1" -Atq -c "$2"; }

# fresh NAME: a new, migrated database; prints its URL.
fresh() {
    psql_do postgres "CREATE DATABASE $1" >/dev/null
    local url="postgres://$USER_NAME@127.0.0.1:$PORT/$1"
    "$MAILAUTH" store migrate --store "$url" >/dev/null
    echo "$url"
}

# check NAME: the database holds exactly the corpus.
check() {
    local got
    got=$(psql_do "$1" "SELECT (SELECT count(*) FROM reports) || ' ' || (SELECT count(*) FROM records)")
    # Nothing duplicated or lost inside a report either: every report holds
    # exactly the records its header counted.
    local off
    off=$(psql_do "$1" "SELECT count(*) FROM reports r WHERE r.record_count <> (SELECT count(*) FROM records c WHERE c.report_id = r.id)")
    if [ "$off" != 0 ]; then
        echo "   MISMATCH in $1: $off report(s) whose records differ from their count" >&2
        exit 1
    fi
    if [ "$got" != "$REPORTS $RECORDS" ]; then
        echo "   MISMATCH in $1: stored $got, expected $REPORTS $RECORDS" >&2
        exit 1
    fi
    echo "   stored: $got (reports, records) = the corpus"
}

declare -A WALL
# run LABEL DB WORKERS SPLIT: SPLIT=split gives each worker its share of
# the files, SPLIT=all the whole corpus.
run() {
    local label=$1 db=$2 workers=$3 split=$4 url pids=() start end i
    url=$(fresh "$db")
    echo "== $label"
    local pg0
    pg0=$(pg_cpu)
    start=$(date +%s.%N)
    for ((i = 0; i < workers; i++)); do
        local mine=()
        if [ "$split" = split ]; then
            local j
            for ((j = i; j < ${#FILES[@]}; j += workers)); do mine+=("${FILES[j]}"); done
        else
            mine=("${FILES[@]}")
        fi
        /usr/bin/time -f '%e %U %S %M' -o "$WORK/$db.$i.time" \
            "$MAILAUTH" reports --store "$url" ingest --json "${mine[@]}" \
            > "$WORK/$db.$i.json" 2> "$WORK/$db.$i.err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || { echo "worker failed:" >&2; cat "$WORK/$db".*.err >&2; exit 1; }
    done
    end=$(date +%s.%N)
    WALL[$db]=$(python3 -c "print(f'{$end - $start:.2f}')")
    local dups cpu
    dups=$(python3 -c "import json,glob,sys; print(sum(json.load(open(f))['duplicates'] for f in glob.glob(sys.argv[1])))" "$WORK/$db.*.json")
    cpu=$(cat "$WORK/$db".*.time | awk '{ u += $2; s += $3 } END { printf "%.2f", u + s }')
    echo "   wall ${WALL[$db]} s, mailauth CPU ${cpu} s, PostgreSQL CPU $(python3 -c "print(f'{$(pg_cpu) - $pg0:.2f}')") s, duplicates skipped $dups"
    echo "   records stored/s: $(python3 -c "print(f'{$RECORDS / ${WALL[$db]}:,.0f}')")"
    check "$db"
}

want() { [[ " $ONLY " == *" $1 "* ]]; }
want 1 && run "1 worker, whole corpus" bench1 1 split
want 4split && run "4 workers, a quarter of the files each" bench4split 4 split
want 4all && run "4 workers, the whole corpus each (racing)" bench4all 4 all
want 8split && run "8 workers, an eighth of the files each" bench8split 8 split

BIG=$(find "$CORPUS/large" -name '*large-200000.xml' 2>/dev/null | head -n 1)
if [ -n "$BIG" ] && want big; then
    url=$(fresh benchbig)
    echo "== 1 worker, one 200,000-record report ($(du -m "$BIG" | cut -f1) MB plain XML)"
    pg0=$(pg_cpu)
    start=$(date +%s.%N)
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/big.time" \
        "$MAILAUTH" reports --store "$url" ingest --json --max-input-bytes 200000000 "$BIG" \
        > "$WORK/big.json" 2> "$WORK/big.err" || { cat "$WORK/big.err" >&2; exit 1; }
    end=$(date +%s.%N)
    wall=$(python3 -c "print(f'{$end - $start:.2f}')")
    got=$(psql_do benchbig "SELECT (SELECT count(*) FROM reports) || ' ' || (SELECT count(*) FROM records)")
    [ "$got" = "1 200000" ] || { echo "   MISMATCH: stored $got, expected 1 200000" >&2; exit 1; }
    echo "   wall $wall s, mailauth CPU $(awk '{ printf "%.2f", $2 + $3 }' "$WORK/big.time") s, PostgreSQL CPU $(python3 -c "print(f'{$(pg_cpu) - $pg0:.2f}')") s, peak RSS $(awk '{ print int($4 / 1024) }' "$WORK/big.time") MB"
    echo "   records stored/s: $(python3 -c "print(f'{200000 / $wall:,.0f}')")"
fi

echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
