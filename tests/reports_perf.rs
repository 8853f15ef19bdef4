//! Throughput of parsing and storing, against a generated corpus (the
//! deterministic `gen_reports.py` generator: 2,000 reports, plus one
//! 200,000-record report). Ignored by default; run with
//!
//! ```text
//! MAILAUTH_REPORTS_CORPUS=<corpus dir> cargo test --release --test reports_perf -- --ignored --nocapture
//! ```
//!
//! Targets (release): ≥ 200k records/s parsing, the 2,000-report corpus
//! into SQLite in ≤ 4 s. Both wall and CPU time are printed; the targets
//! are checked against the process CPU time where Linux exposes it, so a
//! busy shared machine does not fail them.

use std::path::PathBuf;
use std::time::Instant;

use mailauth::reports::IngestLimits;
use mailauth::reports::ingest::{self, FileSource};
use mailauth::reports::parse::aggregate::{AggregateVisitor, SinkError, parse};
use mailauth::reports::parse::{AggregateHeader, Record};
use mailauth::reports::store::{SqliteStore, Table};

fn corpus() -> PathBuf {
    PathBuf::from(
        std::env::var_os("MAILAUTH_REPORTS_CORPUS")
            .expect("set MAILAUTH_REPORTS_CORPUS to a generated corpus directory"),
    )
}

/// (reports, records, sum of counts) of the regular (not `large/`)
/// reports in the corpus MANIFEST.tsv.
fn manifest_totals() -> (u64, u64, u64) {
    let text = std::fs::read_to_string(corpus().join("MANIFEST.tsv")).expect("manifest");
    let mut reports = 0;
    let (mut records, mut messages) = (0u64, 0u64);
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols[0].starts_with("large/") {
            continue;
        }
        records += cols[3].parse::<u64>().expect("records");
        messages += cols[4].parse::<u64>().expect("messages");
        reports += 1;
    }
    (reports, records, messages)
}

/// Process CPU seconds (user + system) from /proc/self/stat, if available.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces): state is
    // field 3, utime 14, stime 15 (proc(5)); clock ticks are 100 Hz.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Times `f`: (wall seconds, CPU seconds or wall when unknown).
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let out = f();
    let wall = t.elapsed().as_secs_f64();
    let cpu = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => wall,
    };
    (out, wall, cpu)
}

struct Count(u64);

impl AggregateVisitor for Count {
    fn header(&mut self, _: &AggregateHeader) -> Result<bool, SinkError> {
        Ok(true)
    }
    fn record(&mut self, _: &Record) -> Result<(), SinkError> {
        self.0 += 1;
        Ok(())
    }
}

#[test]
#[ignore = "needs a generated corpus; see the module docs"]
fn parse_throughput() {
    let dir = corpus().join("large");
    for entry in std::fs::read_dir(&dir).expect("large/") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        let mut c = Count(0);
        let (_, wall, cpu) = timed(|| parse(&bytes, &mut c).expect("parses"));
        let rate = c.0 as f64 / cpu.max(0.01);
        println!(
            "{}: {} records in {wall:.2} s wall, {cpu:.2} s CPU = {rate:.0} records/s",
            path.display(),
            c.0
        );
        if !cfg!(debug_assertions) {
            assert!(
                rate >= 200_000.0,
                "parse rate {rate:.0} records/s below target"
            );
        }
    }
}

#[test]
#[ignore = "needs a generated corpus; see the module docs"]
fn corpus_into_sqlite() {
    let (reports, records, _) = manifest_totals();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = SqliteStore::open(&tmp.path().join("bench.db")).expect("db");
    let mut src = FileSource::new([corpus().join("mixed")], 1 << 30);
    let (s, wall, secs) = timed(|| {
        ingest::run(&mut src, &mut store, &IngestLimits::default(), &mut |_| {}).expect("run")
    });
    println!(
        "{} reports, {} records into SQLite in {wall:.2} s wall, {secs:.2} s CPU ({:.0} records/s)",
        s.reports,
        s.records,
        s.records as f64 / secs.max(0.01)
    );
    assert!(s.invalid.is_empty() && s.errors.is_empty(), "{s:?}");
    assert_eq!((s.reports, s.records), (reports, records));
    assert_eq!(store.count(Table::Records).expect("count") as u64, records);
    if !cfg!(debug_assertions) {
        assert!(secs <= 4.0, "corpus took {secs:.2} s, target 4 s");
    }
}
