//! Ingest rate into PostgreSQL with 1 and 4 concurrent workers, against
//! the generated corpus (`gen_reports.py`, 2,000 reports in `mixed/`).
//! Ignored by default; run with
//!
//! ```text
//! MAILAUTH_REPORTS_CORPUS=<corpus dir> cargo test --release --test reports reports_postgres_perf -- --ignored --nocapture
//! ```
//!
//! Each run uses a fresh database on the harness's PostgreSQL 15. Four
//! workers all read the whole corpus (as four workers on one shared
//! mailbox would); the totals must equal the single-worker run.

use crate::support;

use std::path::PathBuf;
use std::time::Instant;

use mailauth::reports::IngestLimits;
use mailauth::reports::ingest::{self, FileSource, Summary};
use mailauth::reports::pgstore::PgStore;
use mailauth::reports::store::Table;
use support::postgres::PgServer;

fn corpus() -> PathBuf {
    PathBuf::from(
        std::env::var_os("MAILAUTH_REPORTS_CORPUS")
            .expect("set MAILAUTH_REPORTS_CORPUS to a generated corpus directory"),
    )
    .join("mixed")
}

fn run_workers(pg: &PgServer, workers: usize) -> (Vec<Summary>, f64, i64) {
    let url = pg.fresh_db(&format!("perf{workers}"));
    // Migrate before timing.
    drop(PgStore::open(&url, Some(pg.password())).expect("open"));
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (url, pw) = (url.clone(), pg.password().to_owned());
            std::thread::spawn(move || {
                let mut store = PgStore::open(&url, Some(&pw)).expect("worker opens");
                let mut src = FileSource::new([corpus()], 1 << 30);
                ingest::run(&mut src, &mut store, &IngestLimits::default(), &mut |_| {})
                    .expect("ingest")
            })
        })
        .collect();
    let sums: Vec<Summary> = handles
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .collect();
    let wall = start.elapsed().as_secs_f64();
    let records = PgStore::open(&url, Some(pg.password()))
        .expect("open")
        .count(Table::Records)
        .expect("count");
    (sums, wall, records)
}

#[test]
#[ignore = "needs a generated corpus; see the module docs"]
fn corpus_into_postgres_1_and_4_workers() {
    let Some(pg) = PgServer::shared() else { return };
    let (one, wall1, rec1) = run_workers(&pg, 1);
    let reports: u64 = one.iter().map(|s| s.reports).sum();
    println!(
        "1 worker: {reports} reports, {rec1} records in {wall1:.2} s ({:.0} records/s)",
        rec1 as f64 / wall1
    );
    let (four, wall4, rec4) = run_workers(&pg, 4);
    let reports4: u64 = four.iter().map(|s| s.reports).sum();
    let dups: u64 = four.iter().map(|s| s.duplicates).sum();
    println!(
        "4 workers: {reports4} reports ({dups} duplicates skipped), {rec4} records in {wall4:.2} s ({:.0} records/s stored)",
        rec4 as f64 / wall4
    );
    assert_eq!((reports4, rec4), (reports, rec1));
    assert_eq!(dups, 3 * reports);
}
