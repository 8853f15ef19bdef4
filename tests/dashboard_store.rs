//! The dashboard's daily rollup stays equal to the records it summarises:
//! built from scratch, folded in incrementally as reports arrive, rebuilt
//! when reports are removed, and tolerant of records without
//! policy-evaluated results.

mod dashboard;

use std::path::Path;

use mailauth::reports::IngestLimits;
use mailauth::reports::store::{DashFilter, ReportStore, SqliteStore};

fn totals(store: &SqliteStore) -> (i64, i64, i64) {
    let rows = store.dash_daily(&DashFilter::default()).expect("daily");
    rows.iter().fold((0, 0, 0), |(m, p, r), d| {
        (m + d.messages, p + d.dmarc_pass, r + d.reject)
    })
}

fn want(db: &Path) -> (i64, i64, i64) {
    dashboard::expected(db)
        .values()
        .fold((0, 0, 0), |(m, p, r), e| {
            (m + e.messages, p + e.dmarc_pass, r + e.reject)
        })
}

#[test]
fn rollup_tracks_the_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("r.db");
    let mut store = SqliteStore::open(&db).expect("open");
    let sample = |name: &str| {
        std::fs::read(dashboard::samples().join("aggregate").join(name)).expect("sample")
    };
    let limits = IngestLimits::default();
    store
        .ingest_item("a", &sample("test.xml"), &limits)
        .expect("db")
        .expect("report");
    assert_eq!(store.refresh_rollup().expect("refresh"), 1);
    assert_eq!(totals(&store), want(&db));
    assert_eq!(store.refresh_rollup().expect("refresh"), 0, "nothing new");

    // Incremental: two more reports are folded in.
    for name in ["google.xml", "yahoo.xml"] {
        store
            .ingest_item(name, &sample(name), &limits)
            .expect("db")
            .expect("report");
    }
    assert_eq!(store.refresh_rollup().expect("refresh"), 2);
    assert_eq!(totals(&store), want(&db));

    // A record without policy-evaluated dkim/spf (NULL) and a removed
    // report: the rollup is rebuilt and still matches.
    drop(store);
    {
        let c = rusqlite::Connection::open(&db).expect("sqlite");
        c.execute_batch(
            "PRAGMA foreign_keys = ON; \
             DELETE FROM reports WHERE id = (SELECT min(id) FROM reports); \
             INSERT INTO reports (org_name, report_id, date_begin, date_end, policy_domain, origin, ingested_at) \
               VALUES ('late.test', 'late', 1767139200, 1767225599, 'late.test', 'x', 0); \
             INSERT INTO records (report_id, source_ip, count, disposition, header_from) \
               VALUES (last_insert_rowid(), '192.0.2.1', 5, 'reject', 'late.test');",
        )
        .expect("edit");
    }
    let mut store = SqliteStore::open(&db).expect("reopen");
    store.refresh_rollup().expect("refresh");
    let got = totals(&store);
    assert_eq!(got, want(&db));
    assert!(got.2 >= 5, "the late reject is counted");
}
