#!/usr/bin/env bash
# Benchmark of DMARC aggregate report ingestion: mailauth against parsedmarc
# on the same generated corpus in the same run.
#
# Corpus: scripts/gen_reports.py --reports 2000 --seed 42 --min-records 10
#   --max-records 200 --large-records 200000,102000 (deterministic): 2,000
#   reports (212,076 records, 144 MB of XML) as plain XML (xml/) and as
#   reporters send them (mixed/: gzip, zip, XML), plus one 200,000-record
#   (97.7 MB) and one 102,000-record report (large/).
#
# Measured with /usr/bin/time (wall, CPU, max RSS), release build:
#   1. parse only: `mailauth reports ingest --dry-run` over xml/ and over
#      large/ (records/s), and parsedmarc's parse_report_file(offline=True)
#      over the same files (scripts/parsedmarc_bench.py, inside unshare -n);
#   2. end to end: `mailauth reports --db FILE ingest mixed/` into a new
#      SQLite database; parsedmarc's command line (--offline, JSON and CSV
#      output files) over mixed/ inside unshare -n;
#   3. peak RSS on the 200,000-record report: mailauth into SQLite, and
#      parsedmarc parsing it.
#
# mailauth's parse-only and end-to-end runs are repeated RUNS times (default
# 5) and their median is what the ratios at the end use; parsedmarc runs
# once per measure (minutes each).
#
# parsedmarc is installed from PyPI into a venv under the target dir (never
# committed). CORPUS=DIR reuses a generated corpus. PARSEDMARC=0 skips
# parsedmarc (it takes several minutes and GBs of memory).
#
#   benches/reports.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CORPUS=${CORPUS:-$TARGET/bench/reports-corpus}
VENV=$TARGET/bench/parsedmarc-venv
PARSEDMARC_VERSION=${PARSEDMARC_VERSION:-11.1.0}
PARSEDMARC=${PARSEDMARC:-1}
RUNS=${RUNS:-5}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

for bin in python3 /usr/bin/time unshare sqlite3; do
    command -v "$bin" >/dev/null || { echo "missing: $bin" >&2; exit 2; }
done

# timed LABEL OUT CMD...: stdout to OUT, stderr to OUT.err; prints and sets
# T_WALL, T_CPU, T_RSS_MB, T_EXIT.
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

# json_field FILE KEY: a top-level field of a JSON summary.
json_field() {
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"
}

rate() { python3 -c "print(f'{$1 / max($2, 0.001):,.0f}')"; }

median() { python3 -c "import statistics,sys; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.2f}')" "$@"; }

echo "== machine: $(nproc) cores; $(uptime)"
echo "== building mailauth (release)"
(cd "$ROOT" && cargo build --release --quiet --bin mailauth)
MAILAUTH=$TARGET/release/mailauth

if [ ! -f "$CORPUS/MANIFEST.tsv" ]; then
    echo "== generating the corpus in $CORPUS"
    mkdir -p "$CORPUS"
    python3 "$ROOT/scripts/gen_reports.py" --out "$CORPUS" --reports 2000 --seed 42 \
        --min-records 10 --max-records 200 --large-records 200000,102000
fi
read -r REPORTS RECORDS < <(awk -F'\t' 'NR > 1 && $1 !~ /^large\// { n++; r += $4 } END { print n, r }' "$CORPUS/MANIFEST.tsv")
LARGE_RECORDS=$(awk -F'\t' 'NR > 1 && $1 ~ /^large\// { r += $4 } END { print r }' "$CORPUS/MANIFEST.tsv")
BIG=$(ls "$CORPUS"/large/*large-200000.xml)
BIG_MB=$(python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1]) / 1e6:.1f}')" "$BIG")
echo "   corpus: $REPORTS reports, $RECORDS records (xml/, mixed/); large/: $LARGE_RECORDS records; biggest $BIG_MB MB"
# The large reports are plain XML, held to the decompressed limit (512 MiB
# by default) like the same reports compressed: no flag needed (before
# issue 21 they needed --max-input-bytes 268435456).
BIGLIMIT=()

echo "== mailauth: parse only (reports ingest --dry-run), $RUNS runs"
walls=()
for ((i = 0; i < RUNS; i++)); do
    timed "xml/ ($RECORDS records)" "$WORK/dry-xml.json" "$MAILAUTH" reports ingest --dry-run --json "$CORPUS/xml"
    [ "$T_EXIT" = 0 ] || { cat "$WORK/dry-xml.json.err" >&2; exit 1; }
    n=$(json_field "$WORK/dry-xml.json" records)
    [ "$n" = "$RECORDS" ] || { echo "   WRONG: $n records parsed, want $RECORDS" >&2; exit 1; }
    walls+=("$T_WALL")
done
M_PARSE=$(median "${walls[@]}")
echo "     median ${M_PARSE} s = $(rate "$RECORDS" "$M_PARSE") records/s wall"
timed "large/ ($LARGE_RECORDS records)" "$WORK/dry-large.json" "$MAILAUTH" reports ingest --dry-run --json "${BIGLIMIT[@]}" "$CORPUS/large"
[ "$T_EXIT" = 0 ] || { cat "$WORK/dry-large.json.err" >&2; exit 1; }
n=$(json_field "$WORK/dry-large.json" records)
[ "$n" = "$LARGE_RECORDS" ] || { echo "   WRONG: $n records parsed, want $LARGE_RECORDS" >&2; exit 1; }
echo "     = $(rate "$n" "$T_WALL") records/s wall, $(rate "$n" "$T_CPU") records/s CPU"

echo "== mailauth: mixed/ (gz, zip, xml) into a new SQLite database, $RUNS runs"
walls=()
for ((i = 0; i < RUNS; i++)); do
    rm -f "$WORK/mixed.db" "$WORK/mixed.db-wal" "$WORK/mixed.db-shm"
    CMD=("$MAILAUTH" reports --db "$WORK/mixed.db" ingest --json "$CORPUS/mixed")
    [ "$i" = 0 ] && echo "   ${CMD[*]}"
    timed "mixed/ into SQLite" "$WORK/mixed.json" "${CMD[@]}"
    [ "$T_EXIT" = 0 ] || { cat "$WORK/mixed.json" "$WORK/mixed.json.err" >&2; exit 1; }
    r=$(json_field "$WORK/mixed.json" reports); n=$(json_field "$WORK/mixed.json" records)
    stored=$(sqlite3 "$WORK/mixed.db" 'SELECT count(*) FROM records')
    [ "$r" = "$REPORTS" ] && [ "$n" = "$RECORDS" ] && [ "$stored" = "$RECORDS" ] \
        || { echo "   WRONG: want $REPORTS reports, $RECORDS records" >&2; exit 1; }
    walls+=("$T_WALL")
done
M_MIXED=$(median "${walls[@]}")
echo "     median ${M_MIXED} s = $(rate "$RECORDS" "$M_MIXED") records/s wall ($REPORTS reports, $RECORDS rows checked)"

echo "== mailauth: peak RSS on the $BIG_MB MB report"
timed "into SQLite" "$WORK/big.json" "$MAILAUTH" reports --db "$WORK/big.db" ingest --json "${BIGLIMIT[@]}" "$BIG"
[ "$T_EXIT" = 0 ] || { cat "$WORK/big.json" "$WORK/big.json.err" >&2; exit 1; }
n=$(json_field "$WORK/big.json" records)
[ "$n" = 200000 ] || { echo "   WRONG: $n records stored" >&2; exit 1; }
timed "parse only (--dry-run)" "$WORK/bigdry.json" "$MAILAUTH" reports ingest --dry-run --json "${BIGLIMIT[@]}" "$BIG"

if [ "$PARSEDMARC" = 0 ]; then
    echo "== parsedmarc skipped (PARSEDMARC=0)"
    echo "== load at the end: $(uptime)"
    exit 0
fi
if [ ! -x "$VENV/bin/parsedmarc" ]; then
    echo "== installing parsedmarc==$PARSEDMARC_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "parsedmarc==$PARSEDMARC_VERSION"
fi
PV=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("parsedmarc"))')
echo "== parsedmarc $PV: parse only (parse_report_file(offline=True), unshare -n)"
timed "xml/ ($RECORDS records)" "$WORK/pd-xml.txt" unshare -n "$VENV/bin/python" "$ROOT/scripts/parsedmarc_bench.py" "$CORPUS/xml"
read -r files reps recs secs < "$WORK/pd-xml.txt"
echo "     $reps reports, $recs records in $secs s of parsing = $(rate "$RECORDS" "$secs") records/s"
PD_PARSE=$secs
if [ "${PD_LARGE:-1}" = 1 ]; then
    echo "== parsedmarc $PV: peak RSS on the $BIG_MB MB report (PD_LARGE=0 skips it)"
    timed "parse" "$WORK/pd-big.txt" unshare -n "$VENV/bin/python" "$ROOT/scripts/parsedmarc_bench.py" "$BIG"
    read -r files reps recs secs < "$WORK/pd-big.txt"
    echo "     $recs records in $secs s = $(rate 200000 "$secs") records/s"
fi
echo "== parsedmarc $PV: mixed/ end to end (command line, JSON + CSV output files)"
PCMD=(unshare -n "$VENV/bin/parsedmarc" --offline -s -o "$WORK/pd-out" "$CORPUS/mixed")
echo "   ${PCMD[*]}"
timed "mixed/" "$WORK/pd-mixed.txt" "${PCMD[@]}"
echo "     = $(rate "$RECORDS" "$T_WALL") records/s wall"
PD_MIXED=$T_WALL
echo "== ratios (parsedmarc / mailauth median)"
python3 -c "print(f'   parse only, xml/: {float($PD_PARSE) / $M_PARSE:.0f}x  ({$PD_PARSE} s of parsing / {$M_PARSE} s)')"
python3 -c "print(f'   end to end, mixed/: {float($PD_MIXED) / $M_MIXED:.0f}x  ({$PD_MIXED} s / {$M_MIXED} s)')"
echo "== load at the end: $(uptime)"
