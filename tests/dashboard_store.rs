//! The dashboard's daily rollup stays equal to the records it summarises:
//! built from scratch, folded in incrementally as reports arrive, rebuilt
//! when reports are removed or committed below the last folded id, and
//! tolerant of records without policy-evaluated results. On SQLite and on
//! PostgreSQL 15 (`sqlite::…`, `postgres::…`).

mod dashboard;
mod support;

use mailauth::reports::IngestLimits;
use mailauth::reports::dashq::{DashFilter, DashboardQueries};
use support::postgres::TestStore;

both_stores!(rollup_tracks_the_records);

fn totals(store: &dyn DashboardQueries) -> (i64, i64, i64) {
    let rows = store.dash_daily(&DashFilter::default()).expect("daily");
    rows.iter().fold((0, 0, 0), |(m, p, r), d| {
        (m + d.messages, p + d.dmarc_pass, r + d.reject)
    })
}

fn want(st: &TestStore) -> (i64, i64, i64) {
    dashboard::expected_store(st)
        .values()
        .fold((0, 0, 0), |(m, p, r), e| {
            (m + e.messages, p + e.dmarc_pass, r + e.reject)
        })
}

fn rollup_tracks_the_records(st: &TestStore) {
    let mut store = st.open();
    let sample = |name: &str| {
        std::fs::read(dashboard::samples().join("aggregate").join(name)).expect("sample")
    };
    let limits = IngestLimits::default();
    store
        .ingest_item("a", &sample("test.xml"), &limits)
        .expect("db")
        .expect("report");
    assert_eq!(store.refresh_rollup().expect("refresh"), 1);
    assert_eq!(totals(store.as_ref()), want(st));
    assert_eq!(store.refresh_rollup().expect("refresh"), 0, "nothing new");

    // Incremental: two more reports are folded in.
    for name in ["google.xml", "yahoo.xml"] {
        store
            .ingest_item(name, &sample(name), &limits)
            .expect("db")
            .expect("report");
    }
    assert_eq!(store.refresh_rollup().expect("refresh"), 2);
    assert_eq!(totals(store.as_ref()), want(st));

    // A record without policy-evaluated dkim/spf (NULL) and a removed
    // report: the rollup is rebuilt and still matches.
    drop(store);
    st.execute(
        "PRAGMA foreign_keys = ON; \
         DELETE FROM reports WHERE id = (SELECT min(id) FROM reports); \
         INSERT INTO reports (org_name, report_id, date_begin, date_end, policy_domain, origin, ingested_at) \
           VALUES ('late.test', 'late', 1767139200, 1767225599, 'late.test', 'x', 0); \
         INSERT INTO records (report_id, source_ip, count, disposition, header_from) \
           VALUES (last_insert_rowid(), '192.0.2.1', 5, 'reject', 'late.test');",
        "DELETE FROM reports WHERE id = (SELECT min(id) FROM reports); \
         WITH r AS (INSERT INTO reports (org_name, report_id, date_begin, date_end, policy_domain, origin, ingested_at) \
           VALUES ('late.test', 'late', 1767139200, 1767225599, 'late.test', 'x', 0) RETURNING id) \
         INSERT INTO records (report_id, source_ip, count, disposition, header_from) \
           SELECT id, '192.0.2.1', 5, 'reject', 'late.test' FROM r;",
    );
    let mut store = st.open();
    store.refresh_rollup().expect("refresh");
    let got = totals(store.as_ref());
    assert_eq!(got, want(st));
    assert!(got.2 >= 5, "the late reject is counted");

    // A report committed after the last refresh with an id below the
    // highest folded one (a slow worker; id 1 was removed above): the
    // rollup notices and rebuilds.
    drop(store);
    st.execute(
        "INSERT INTO reports (id, org_name, report_id, date_begin, date_end, policy_domain, origin, ingested_at) \
           VALUES (1, 'slow.test', 'slow', 1767139200, 1767225599, 'slow.test', 'x', 0); \
         INSERT INTO records (report_id, source_ip, count, disposition, header_from) \
           VALUES (1, '192.0.2.2', 11, 'quarantine', 'slow.test'); \
         INSERT INTO reports (org_name, report_id, date_begin, date_end, policy_domain, origin, ingested_at) \
           VALUES ('new.test', 'new', 1767139200, 1767225599, 'new.test', 'x', 0);",
        "INSERT INTO reports (id, org_name, report_id, date_begin, date_end, policy_domain, origin, ingested_at) \
           VALUES (1, 'slow.test', 'slow', 1767139200, 1767225599, 'slow.test', 'x', 0); \
         INSERT INTO records (report_id, source_ip, count, disposition, header_from) \
           VALUES (1, '192.0.2.2', 11, 'quarantine', 'slow.test'); \
         INSERT INTO reports (org_name, report_id, date_begin, date_end, policy_domain, origin, ingested_at) \
           VALUES ('new.test', 'new', 1767139200, 1767225599, 'new.test', 'x', 0);",
    );
    let mut store = st.open();
    store.refresh_rollup().expect("refresh");
    let got = totals(store.as_ref());
    assert_eq!(got, want(st));
    assert_eq!(
        store
            .dash_daily(&DashFilter {
                domain: Some("slow.test".into()),
                ..DashFilter::default()
            })
            .expect("daily")
            .iter()
            .map(|d| d.quarantine)
            .sum::<i64>(),
        11,
        "the late low-id report is in the rollup"
    );
}
