#!/usr/bin/env bash
# Peak memory of report ingestion against the number of records, for each
# form a report arrives in (issue 21): plain XML, .xml.gz, .zip, and a mail
# (.eml) with the report as a base64 gzip or zip attachment.
#
# Reports: scripts/gen_reports.py --skip-small --large-records SIZES (the
#   compact Google-style report of the corpus in benches/reports.sh; the
#   200,000-record one is the 97.7 MB report). Each is then written in the
#   four other forms by scripts/report_forms.py.
#
# Measured with /usr/bin/time (max RSS, wall), release build, RUNS times
# each (median printed): `mailauth reports --db NEW.db ingest --json FILE`
# into a new SQLite database; the script checks every record was stored.
# The peer, in the same run: parsedmarc's parse_report_file(offline=True)
# on each form, inside unshare -n, for sizes up to PEER_MAX records
# (it needs about 6 KB of memory per record and minutes per 100,000).
# BEFORE=BINARY also runs another mailauth build (e.g. the previous
# release) on the same files; MAILAUTH=BINARY measures that build instead
# of building the release one (peak RSS hardly depends on the profile;
# wall times do).
#
#   benches/reports_rss.sh
#   SIZES=10000,200000 RUNS=1 PARSEDMARC=0 benches/reports_rss.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SIZES=${SIZES:-10000,50000,100000,200000,400000}
RUNS=${RUNS:-3}
PARSEDMARC=${PARSEDMARC:-1}
PEER_MAX=${PEER_MAX:-50000}
BEFORE=${BEFORE:-}
VENV=$TARGET/bench/parsedmarc-venv
PARSEDMARC_VERSION=${PARSEDMARC_VERSION:-11.1.0}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

for bin in python3 /usr/bin/time unshare sqlite3; do
    command -v "$bin" >/dev/null || { echo "missing: $bin" >&2; exit 2; }
done

echo "== machine: $(nproc) cores; $(uptime)"
if [ -z "${MAILAUTH:-}" ]; then
    echo "== building mailauth (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin mailauth)
    MAILAUTH=$TARGET/release/mailauth
fi
echo "== mailauth: $MAILAUTH"

if [ "$PARSEDMARC" = 1 ] && [ ! -x "$VENV/bin/parsedmarc" ]; then
    echo "== installing parsedmarc==$PARSEDMARC_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "parsedmarc==$PARSEDMARC_VERSION"
fi

echo "== generating reports of $SIZES records"
python3 "$ROOT/scripts/gen_reports.py" --out "$WORK/corpus" --skip-small \
    --large-records "$SIZES" > /dev/null
python3 "$ROOT/scripts/report_forms.py" "$WORK/corpus/large" "$WORK/forms"

# measure BIN FILE RECORDS: prints "median_rss_mb median_wall_s" over RUNS.
measure() {
    local bin=$1 file=$2 want=$3 rss=() wall=() i
    for ((i = 0; i < RUNS; i++)); do
        rm -f "$WORK/m.db" "$WORK/m.db-wal" "$WORK/m.db-shm"
        /usr/bin/time -f '%M %e' -o "$WORK/time.txt" \
            "$bin" reports --db "$WORK/m.db" ingest --json --item-timeout 3600 "$file" > "$WORK/out.json" 2> "$WORK/err.txt" || true
        local stored
        stored=$(sqlite3 "$WORK/m.db" 'SELECT count(*) FROM records' 2>/dev/null || echo 0)
        if [ "$stored" != "$want" ]; then
            echo "FAILED"; return
        fi
        read -r r w < <(tail -1 "$WORK/time.txt")
        rss+=("$r"); wall+=("$w")
    done
    python3 - "${rss[@]}" -- "${wall[@]}" <<'EOF'
import statistics, sys
args = sys.argv[1:]
cut = args.index("--")
rss = [float(x) for x in args[:cut]]
wall = [float(x) for x in args[cut + 1:]]
print(f"{statistics.median(rss) / 1024:.1f} {statistics.median(wall):.2f}")
EOF
}

# peer FILE: parsedmarc's max RSS (MB) and parse time.
peer() {
    /usr/bin/time -f '%M %e' -o "$WORK/ptime.txt" unshare -n "$VENV/bin/python" \
        "$ROOT/scripts/parsedmarc_bench.py" "$1" > "$WORK/pout.txt" 2>&1 || { echo "FAILED"; return; }
    read -r r w < <(tail -1 "$WORK/ptime.txt")
    python3 -c "print(f'{$r / 1024:.1f} {$w:.2f}')"
}

FORMS=(xml xml.gz zip gz.eml zip.eml)
printf '%-8s %-8s %10s %12s %8s' records form size_MB mailauth_MB wall_s
[ -n "$BEFORE" ] && printf ' %10s %8s' before_MB wall_s
[ "$PARSEDMARC" = 1 ] && printf ' %13s %8s %6s' parsedmarc_MB wall_s ratio
echo
for n in ${SIZES//,/ }; do
    for form in "${FORMS[@]}"; do
        file=$(ls "$WORK/forms/"*"-$n.$form")
        size=$(python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1]) / 1e6:.1f}')" "$file")
        read -r m_rss m_wall < <(measure "$MAILAUTH" "$file" "$n")
        printf '%-8s %-8s %10s %12s %8s' "$n" "$form" "$size" "$m_rss" "$m_wall"
        if [ -n "$BEFORE" ]; then
            read -r b_rss b_wall < <(measure "$BEFORE" "$file" "$n")
            printf ' %10s %8s' "$b_rss" "${b_wall:-}"
        fi
        if [ "$PARSEDMARC" = 1 ]; then
            if [ "$n" -le "$PEER_MAX" ]; then
                read -r p_rss p_wall < <(peer "$file")
                ratio=$(python3 -c "print(f'{$p_rss / $m_rss:.0f}x')" 2>/dev/null || echo -)
                printf ' %13s %8s %6s' "$p_rss" "${p_wall:-}" "$ratio"
            else
                printf ' %13s %8s %6s' - - -
            fi
        fi
        echo
    done
done
echo "== load at the end: $(uptime)"
