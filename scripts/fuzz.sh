#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for SECONDS (default 60).
#
#   scripts/fuzz.sh 600               # 10 minutes per target
#   scripts/fuzz.sh 10                # CI smoke run: keeps the targets building
#   scripts/fuzz.sh 120 record_spf    # only the named targets
#
# Corpora live in fuzz/corpus/<target> (not committed); they are seeded from
# fuzz/seeds and the test data on every run, so a fresh checkout starts from
# real inputs. A crash leaves its input in fuzz/artifacts/<target>/ and makes
# the script exit non-zero; turn each one into a test in tests/reports/regressions.rs.
#
# Environment:
#   FUZZ_SANITIZER  address | none (default none: the parsers are safe Rust,
#                   coverage-guided without ASan runs several times faster)
#   FUZZ_JOBS       libFuzzer -fork workers per target (default 1)
#   FUZZ_PARALLEL   targets run at the same time (default 1)
#   FUZZ_RSS_MB     libFuzzer -rss_limit_mb (default 2048)
#   FUZZ_PROFILE    release (default) | dev: dev builds compile in a fraction
#                   of the time and run slower; enough for a CI smoke run
#   FUZZ_BIN_DIR    run the target binaries found here and build nothing (a
#                   copy of an earlier build, so that a long run is not
#                   disturbed by rebuilds of a changing checkout)
#   FUZZ_SUMMARY    where the per-target summary goes (default
#                   fuzz/summary.txt); lets several runs share a checkout
#   FUZZ_BUILD_ONLY 1: build the targets and stop (scripts/test.sh builds
#                   them while the tests run, then runs them)
set -euo pipefail

secs="${1:-60}"
shift || true
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"
rss="${FUZZ_RSS_MB:-2048}"
profile=()
if [ "${FUZZ_PROFILE:-release}" = dev ]; then
    profile=(--dev)
fi
# cargo-fuzz passes -Z flags to rustc; a stable toolchain accepts them with
# RUSTC_BOOTSTRAP (a nightly toolchain does not need it).
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

all_targets=$(cargo fuzz list --fuzz-dir fuzz)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    # shellcheck disable=SC2206
    targets=($all_targets)
fi

if [ -n "${FUZZ_BIN_DIR:-}" ]; then
    bin_dir="$FUZZ_BIN_DIR"
else
    cargo fuzz build --fuzz-dir fuzz "${profile[@]}" -s "$sanitizer"
    if [ "${FUZZ_BUILD_ONLY:-}" = 1 ]; then
        exit 0
    fi
    triple=$(rustc -vV | sed -n 's/^host: //p')
    if [ ${#profile[@]} -eq 0 ]; then
        bin_dir="fuzz/target/$triple/release"
    else
        bin_dir="fuzz/target/$triple/debug"
    fi
fi

# seed_all: copies each target's seeds (fuzz/seeds.txt, the list the
# ordinary tests replay too) into its corpus, content-named so that
# repeated runs do not pile up copies.
seed_all() {
    local t patterns p line n
    # Every target has a corpus directory, seeded or not.
    for t in "${targets[@]}"; do
        mkdir -p "fuzz/corpus/$t"
    done
    while read -r t patterns; do
        [ -n "$t" ] && [ "${t#\#}" = "$t" ] || continue
        [[ " ${targets[*]} " == *" $t "* ]] || continue
        # Unquoted: each pattern expands to the files it matches.
        # shellcheck disable=SC2086
        for p in $patterns; do
            if [ "${p#lines:}" != "$p" ]; then
                n=0
                while IFS=$'\t' read -r _ line; do
                    n=$((n + 1))
                    [ -n "$line" ] || continue
                    printf '%s' "$line" >"fuzz/corpus/$t/seed-${p##*/}-$n"
                done < <(grep -v '^#' "${p#lines:}")
            elif [ -f "$p" ]; then
                cp "$p" "fuzz/corpus/$t/seed-$(sha1sum <"$p" | cut -c1-16)"
            fi
        done
    done <fuzz/seeds.txt
}
seed_all

fork=""
if [ "$jobs" -gt 1 ]; then
    fork="-fork=$jobs"
fi
summary="${FUZZ_SUMMARY:-fuzz/summary.txt}"
: >"$summary"

# run_one <target>: runs one target; its summary line goes to
# fuzz/artifacts/<target>/last-run.summary, its exit status is the run's.
run_one() {
    local t="$1" log status=0 execs corpus line
    mkdir -p "fuzz/artifacts/$t"
    log="fuzz/artifacts/$t/last-run.log"
    # The binary is run directly (as `cargo fuzz run` does after building).
    "$bin_dir/$t" -artifact_prefix="fuzz/artifacts/$t/" \
        -max_total_time="$secs" -rss_limit_mb="$rss" -timeout=10 \
        -max_len=262144 -print_final_stats=1 ${fork:+"$fork"} \
        "fuzz/corpus/$t" >"$log" 2>&1 || status=$?
    # libFuzzer runs every input of the corpus (the seeds) before it
    # mutates, whatever -max_total_time says, and prints INITED once it
    # has: without that line the seeds were not all run (-fork runs
    # report differently and are not checked).
    if [ "$status" -eq 0 ] && [ -z "$fork" ] && ! grep -q 'INITED' "$log"; then
        echo "$t: the corpus was not replayed (no INITED line in $log)" >&2
        status=1
    fi
    execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
    if [ -z "$execs" ]; then
        execs=$(grep -Eo '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
    fi
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    line="$t seconds=$secs execs=${execs:-?} corpus=$corpus exit=$status"
    echo "$line" >"fuzz/artifacts/$t/last-run.summary"
    if [ "$status" -ne 0 ]; then
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -20 >&2 || true
    fi
    return "$status"
}

# FUZZ_PARALLEL targets run at a time (default 1; each libFuzzer process
# uses one core).
parallel="${FUZZ_PARALLEL:-1}"
declare -A pids=()
failed=()
reap() {
    local t
    for t in "${!pids[@]}"; do
        if ! kill -0 "${pids[$t]}" 2>/dev/null; then
            wait "${pids[$t]}" || failed+=("$t")
            unset "pids[$t]"
        fi
    done
}
for t in "${targets[@]}"; do
    while [ "${#pids[@]}" -ge "$parallel" ]; do
        sleep 0.1
        reap
    done
    echo "== $t: ${secs}s"
    run_one "$t" &
    pids[$t]=$!
done
while [ "${#pids[@]}" -gt 0 ]; do
    sleep 0.1
    reap
done
for t in "${targets[@]}"; do
    tee -a "$summary" <"fuzz/artifacts/$t/last-run.summary"
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz.sh: crashes or errors in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: no crashes ($(wc -l <"$summary") targets, ${secs}s each)"
