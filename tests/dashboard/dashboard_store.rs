//! The dashboard's daily rollup stays equal to the records it summarises:
//! built from scratch, folded in incrementally as reports arrive, rebuilt
//! when reports are removed or committed below the last folded id, and
//! tolerant of records without policy-evaluated results. On SQLite and on
//! PostgreSQL 15 (`sqlite::…`, `postgres::…`).

use crate::dashboard;
use crate::support;
use crate::util;

use mailauth::reports::IngestLimits;
use mailauth::reports::dashq::{DashFilter, DashboardQueries};
use support::postgres::TestStore;

both_stores!(
    rollup_tracks_the_records,
    absurd_counts_saturate_every_sum,
    delete_then_a_new_report_keeps_the_rollup_true,
    senders_named_and_forwarding_told_apart,
    reverse_dns_is_cached_for_offline_runs,
    asn_database_names_and_groups_sources,
    arc_evidence_marks_forwarding,
    alerts_fire_once_and_reach_the_webhook,
    alerts_by_email_over_starttls_with_auth,
    alerts_new_rules_fire_once_and_only_when_due,
    rollup_kept_on_reopen_folded_by_month_rebuilt_on_prune,
    sources_split_is_the_two_source_lists,
    migration_to_source_rollup_keeps_every_row,
    prune_and_delete_keep_every_rollup,
    prune_of_a_partly_folded_store,
    migration_collapses_the_policy_rollup,
);

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
        // Schema 5: no foreign keys between the partitioned tables, so the
        // children go first; a record carries its report's `date_begin`.
        "SELECT mailauth_month_partitions_v1(1767139200); \
         DELETE FROM records WHERE report_id = (SELECT min(id) FROM reports); \
         DELETE FROM policy_published WHERE report_id = (SELECT min(id) FROM reports); \
         DELETE FROM reports WHERE id = (SELECT min(id) FROM reports); \
         WITH r AS (INSERT INTO reports (org_name, report_id, date_begin, date_end, policy_domain, origin, ingested_at) \
           VALUES ('late.test', 'late', 1767139200, 1767225599, 'late.test', 'x', 0) RETURNING id, date_begin) \
         INSERT INTO records (report_id, date_begin, source_ip, count, disposition, header_from) \
           SELECT id, date_begin, '192.0.2.1', 5, 'reject', 'late.test' FROM r;",
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
         INSERT INTO records (report_id, date_begin, source_ip, count, disposition, header_from) \
           VALUES (1, 1767139200, '192.0.2.2', 11, 'quarantine', 'slow.test'); \
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

const MAX: i64 = i64::MAX;

/// The set-up SQL of `absurd_counts_saturate_every_sum` for PostgreSQL's
/// schema 5: the month's partitions first, and each record carrying its
/// report's `date_begin` (every report there begins at 1767139200).
fn pg_records(sql: &str) -> String {
    let mut out = String::from("SELECT mailauth_month_partitions_v1(1767139200); ");
    out.push_str(
        &sql.replace(
            "INSERT INTO records (report_id, ",
            "INSERT INTO records (report_id, date_begin, ",
        )
        .replace("(1, '192.0.2.", "(1, 1767139200, '192.0.2.")
        .replace("(2, '192.0.2.", "(2, 1767139200, '192.0.2.")
        .replace("(3, '192.0.2.", "(3, 1767139200, '192.0.2."),
    );
    out
}

/// Issue 15: two records of `<count>9223372036854775807</count>` for one
/// domain made every dashboard fail for good ("integer overflow" filling
/// the rollup on SQLite, "bigint out of range" on PostgreSQL). Ingest now
/// refuses such counts, but a store written by an older version may hold
/// them: every sum saturates at `i64::MAX` instead, and the commands that
/// read them (`summary`, `html`, `list`) work.
fn absurd_counts_saturate_every_sum(st: &TestStore) {
    drop(st.open());
    let sql = format!(
        "INSERT INTO reports (id, org_name, report_id, date_begin, date_end, policy_domain, \
           record_count, message_count, origin, ingested_at) VALUES \
           (1, 'big.test', 'r1', 1767139200, 1767225599, 'huge.test', 2, {MAX}, 'x', 0), \
           (2, 'big.test', 'r2', 1767139200, 1767225599, 'huge.test', 1, {MAX}, 'x', 0); \
         INSERT INTO records (report_id, source_ip, count, disposition, dkim_aligned, spf_aligned, \
           header_from, spf_domain, spf_result) VALUES \
           (1, '192.0.2.1', {MAX}, 'none', 'pass', 'pass', 'huge.test', 'huge.test', 'pass'), \
           (1, '192.0.2.1', {MAX}, 'reject', 'fail', 'fail', 'huge.test', 'huge.test', 'fail'), \
           (2, '192.0.2.1', {MAX}, 'quarantine', 'fail', 'fail', 'huge.test', 'huge.test', 'fail'); \
         INSERT INTO tls_reports (id, org_name, report_id, date_begin, date_end, origin, ingested_at) \
           VALUES (1, 'big.test', 't1', '2025-12-31T00:00:00Z', '2026-01-01T00:00:00Z', 'x', 0); \
         INSERT INTO tls_policies (id, tls_report_id, policy_type, policy_domain, successful_count, \
           failure_count) VALUES (1, 1, 'sts', 'huge.test', {MAX}, {MAX}), \
           (2, 1, 'sts', 'huge.test', {MAX}, 1); \
         INSERT INTO tls_failures (tls_policy_id, result_type, failed_session_count) VALUES \
           (1, 'starttls-not-supported', {MAX}), (2, 'starttls-not-supported', {MAX});"
    );
    st.execute(&sql, &pg_records(&sql));

    let mut store = st.open();
    assert_eq!(store.refresh_rollup().expect("rollup fills"), 2);
    let all = DashFilter::default();
    let daily = store.dash_daily(&all).expect("daily");
    assert_eq!(daily.len(), 1, "{daily:?}");
    let d = &daily[0];
    assert_eq!(
        (d.messages, d.dmarc_pass, d.none, d.quarantine, d.reject),
        (MAX, MAX, MAX, MAX, MAX)
    );
    // Folding a new report into a saturated day saturates too.
    let sql = format!(
        "INSERT INTO reports (id, org_name, report_id, date_begin, date_end, policy_domain, \
           record_count, message_count, origin, ingested_at) VALUES \
           (3, 'big.test', 'r3', 1767139200, 1767225599, 'huge.test', 1, {MAX}, 'x', 0); \
         INSERT INTO records (report_id, source_ip, count, disposition, header_from) VALUES \
           (3, '192.0.2.9', {MAX}, 'reject', 'huge.test');"
    );
    drop(store);
    st.execute(&sql, &pg_records(&sql));
    let mut store = st.open();
    assert_eq!(store.refresh_rollup().expect("rollup folds"), 1);
    let d = &store.dash_daily(&all).expect("daily")[0];
    assert_eq!((d.messages, d.reject), (MAX, MAX));

    let sources = store.dash_sources(&all, false, 10).expect("sources");
    assert_eq!(sources[0].messages, MAX, "{sources:?}");
    // Both sources have failing messages. 192.0.2.1 passed MAX and failed
    // 2 × MAX: with saturated totals, "messages > passing" would hide it,
    // so the failing messages are summed themselves (on both stores).
    let failing = store.dash_sources(&all, true, 10).expect("failing");
    let ips: Vec<&str> = failing.iter().map(|s| s.source_ip.as_str()).collect();
    assert_eq!(ips, ["192.0.2.1", "192.0.2.9"], "{failing:?}");
    let reporters = store.dash_reporters(&all).expect("reporters");
    assert_eq!((reporters[0].reports, reporters[0].messages), (3, MAX));
    let policy = store.dash_policy(&all).expect("policy");
    assert!(policy.iter().all(|p| p.messages == MAX), "{policy:?}");
    let tls = store.dash_tls(&all).expect("TLS");
    assert_eq!((tls[0].successful, tls[0].failed), (MAX, MAX));
    assert_eq!(
        tls[0].failure_types,
        vec![("starttls-not-supported".to_owned(), MAX)]
    );
    let listed = store.list(None).expect("list");
    let t = listed
        .iter()
        .find(|r| r.report_id == "t1")
        .expect("TLS row");
    assert_eq!(t.messages, MAX);
    let v = store.volume("huge.test", 0).expect("volume");
    assert_eq!((v.messages, v.dmarc_pass), (MAX, MAX));
    let f = store.failing_sources("huge.test", 0, 5).expect("failing");
    assert_eq!(f[0].messages, MAX);
    drop(store);

    // The commands, through the binary (debug build: an overflow in the
    // views would panic).
    let out = tempfile::tempdir().expect("tempdir");
    let html = out.path().join("site");
    let runs: [&[&str]; 5] = [
        &["summary"],
        &["summary", "--json"],
        &["summary", "--domain", "huge.test", "--offline"],
        &["html", "--offline", "--out", html.to_str().expect("utf-8")],
        &["list"],
    ];
    for args in runs {
        let o = util::Cmd::new()
            .arg("reports")
            .args(st.cli_args())
            .args(args)
            .dir(out.path())
            .output();
        assert!(
            o.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(html.join("index.html").is_file());
}

/// Issue 15 (`reports delete`): deleting the newest report and storing
/// another one may give it the same id on SQLite (same highest id, same
/// count as the rollup saw): the deletion resets the rollup's state, so
/// the refresh rebuilds instead of keeping the deleted report's messages.
fn delete_then_a_new_report_keeps_the_rollup_true(st: &TestStore) {
    use mailauth::reports::parse::ReportKind;
    let mut store = st.open();
    let sample = |name: &str| {
        std::fs::read(dashboard::samples().join("aggregate").join(name)).expect("sample")
    };
    let limits = IngestLimits::default();
    for name in ["test.xml", "google.xml"] {
        store
            .ingest_item(name, &sample(name), &limits)
            .expect("db")
            .expect("report");
    }
    store.refresh_rollup().expect("refresh");
    let newest = store
        .list(None)
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .max()
        .expect("a report");
    store
        .delete(&[(ReportKind::Aggregate, newest)])
        .expect("delete");
    store
        .ingest_item("outlook.xml", &sample("outlook.xml"), &limits)
        .expect("db")
        .expect("report");
    store.refresh_rollup().expect("refresh");
    assert_eq!(totals(store.as_ref()), want(st));
    // Unknown ids remove nothing.
    let ids: Vec<i64> = store
        .list(None)
        .expect("list")
        .iter()
        .map(|r| r.id)
        .collect();
    let err = store
        .delete(&[(ReportKind::Aggregate, ids[0]), (ReportKind::Tls, 999)])
        .expect_err("unknown id");
    assert!(
        err.to_string().contains("no tls report with id tls:999"),
        "{err}"
    );
    assert_eq!(store.list(None).expect("list").len(), 2);
}

/// One aggregate record as the tests write it: source IP, count,
/// disposition, DKIM and SPF alignment, override reason, DKIM results
/// (domain, result), SPF result (domain, result).
type Row = (
    &'static str,
    u32,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
    (&'static str, &'static str),
);

/// Google Workspace, by its published network, aligned for example.com.
const WORKSPACE_ALIGNED: Row = (
    "209.85.220.41",
    50,
    "none",
    "pass",
    "pass",
    None,
    &[("example.com", "pass")],
    ("example.com", "pass"),
);

/// SendGrid by DKIM d=, without example.com's own signature.
const SENDGRID_BY_DKIM: Row = (
    "192.0.2.10",
    20,
    "reject",
    "fail",
    "fail",
    None,
    &[("sendgrid.net", "pass")],
    ("bounces.sendgrid.net", "pass"),
);

/// One aggregate report for example.com from `org`: rows of (ip, count,
/// disposition, dkim aligned, spf aligned, reason, dkim d=/result, spf
/// domain/result).
#[allow(clippy::type_complexity)]
fn report(
    org: &str,
    id: &str,
    rows: &[(
        &str,
        u32,
        &str,
        &str,
        &str,
        Option<&str>,
        &[(&str, &str)],
        (&str, &str),
    )],
) -> Vec<u8> {
    report_at(org, id, "example.com", 1767139200, rows)
}

/// [`report`] for `domain` and the UTC day starting at `begin`.
#[allow(clippy::type_complexity)]
fn report_at(
    org: &str,
    id: &str,
    domain: &str,
    begin: i64,
    rows: &[(
        &str,
        u32,
        &str,
        &str,
        &str,
        Option<&str>,
        &[(&str, &str)],
        (&str, &str),
    )],
) -> Vec<u8> {
    let end = begin + 86_399;
    let mut x = format!(
        "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>{org}</org_name>\
         <email>d@{id}.test</email><report_id>{id}</report_id><date_range><begin>{begin}</begin>\
         <end>{end}</end></date_range></report_metadata><policy_published><domain>{domain}</domain>\
         <p>reject</p></policy_published>"
    );
    for (ip, n, disp, dkim, spf, reason, dkims, (sd, sr)) in rows {
        x.push_str(&format!(
            "<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated>\
             <disposition>{disp}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf>"
        ));
        if let Some(r) = reason {
            x.push_str(&format!("<reason><type>{r}</type></reason>"));
        }
        x.push_str(&format!("</policy_evaluated></row><identifiers><header_from>{domain}</header_from></identifiers><auth_results>"));
        for (d, r) in *dkims {
            x.push_str(&format!(
                "<dkim><domain>{d}</domain><selector>s1</selector><result>{r}</result></dkim>"
            ));
        }
        x.push_str(&format!(
            "<spf><domain>{sd}</domain><result>{sr}</result></spf></auth_results></record>"
        ));
    }
    x.push_str("</feedback>");
    x.into_bytes()
}

/// Sources are named from the catalogue (by DKIM d=, SPF domain,
/// published network), failing sources are classified with evidence, and
/// the "real failures" leave forwarding out; reporters spelled as host
/// names group under their organisation's domain. Offline: no DNS at all.
fn senders_named_and_forwarding_told_apart(st: &TestStore) {
    use mailauth::reports::dashboard::{self, attribution::Attributor};
    use mailauth::reports::sources::{Class, Method};
    let mut store = st.open();
    let limits = IngestLimits::default();
    let a = report(
        "mx1.GW.Example.net",
        "a",
        &[
            // Google Workspace, by its published network: aligned.
            WORKSPACE_ALIGNED,
            // SendGrid by DKIM d=, without the domain's own signature.
            SENDGRID_BY_DKIM,
            // A forwarder: DKIM of the author domain survives, SPF does not.
            (
                "198.51.100.7",
                7,
                "none",
                "pass",
                "fail",
                None,
                &[("example.com", "pass")],
                ("example.com", "fail"),
            ),
            (
                "198.51.100.7",
                3,
                "reject",
                "fail",
                "fail",
                None,
                &[("example.com", "fail")],
                ("example.com", "fail"),
            ),
            // The receiver says so.
            (
                "198.51.100.8",
                4,
                "none",
                "fail",
                "fail",
                Some("mailing_list"),
                &[],
                ("lists.example.org", "pass"),
            ),
            // Nobody: spoofing.
            (
                "203.0.113.66",
                9,
                "reject",
                "fail",
                "fail",
                None,
                &[],
                ("spoof.test", "fail"),
            ),
        ],
    );
    let b = report(
        "example.net",
        "b",
        &[(
            "209.85.220.42",
            5,
            "none",
            "pass",
            "pass",
            None,
            &[("example.com", "pass")],
            ("example.com", "pass"),
        )],
    );
    for (name, bytes) in [("a", a), ("b", b)] {
        store
            .ingest_item(name, &bytes, &limits)
            .expect("db")
            .expect("report");
    }
    let view = dashboard::domain(
        store.as_mut(),
        &Attributor::offline(),
        "example.com",
        &DashFilter::default(),
    )
    .expect("domain view");
    let by_ip = |ip: &str| {
        view.sources
            .iter()
            .find(|s| s.source_ip == ip)
            .unwrap_or_else(|| panic!("{ip} in {:?}", view.sources))
    };
    let g = by_ip("209.85.220.41");
    assert_eq!(
        (
            g.identity.id.as_deref(),
            g.identity.method,
            g.classification.class
        ),
        (Some("google-workspace"), Method::Network, Class::Aligned)
    );
    let sg = by_ip("192.0.2.10");
    assert_eq!(
        (
            sg.identity.id.as_deref(),
            sg.identity.method,
            sg.classification.class
        ),
        (Some("sendgrid"), Method::Dkim, Class::Misconfigured)
    );
    let fwd = by_ip("198.51.100.7");
    assert_eq!(fwd.classification.class, Class::Forwarded, "{fwd:?}");
    assert!(
        fwd.classification.evidence[0].contains("7 of 10"),
        "{fwd:?}"
    );
    let list = by_ip("198.51.100.8");
    assert_eq!(
        (list.forwarded_reason, list.classification.class),
        (4, Class::Forwarded)
    );
    let spoof = by_ip("203.0.113.66");
    assert_eq!(
        (
            spoof.identity.method,
            spoof.classification.class,
            spoof.identity.group.as_deref()
        ),
        (Method::Unknown, Class::Suspicious, Some("no reverse DNS"))
    );
    let s = &view.senders;
    assert_eq!((s.sources, s.messages), (6, 98));
    assert_eq!(s.identified_messages, 75, "{s:?}");
    assert_eq!(
        (
            s.fail_forwarded,
            s.fail_misconfigured,
            s.fail_suspicious,
            s.real_failures
        ),
        (7, 20, 9, 29)
    );
    let google = &s.services[0];
    assert_eq!(
        (google.id.as_str(), google.sources, google.messages),
        ("google-workspace", 2, 55)
    );
    assert_eq!(s.unknown.iter().map(|u| u.messages).sum::<i64>(), 23);
    // Reporters: one key for both spellings, the larger name shown.
    assert_eq!(view.reporters.len(), 1, "{:?}", view.reporters);
    let r = &view.reporters[0];
    assert_eq!(
        (r.key.as_str(), r.org.as_str(), r.reports),
        ("example.net", "mx1.GW.Example.net", 2)
    );
    assert_eq!(r.aliases, ["example.net"]);
}

/// A PTR answer found online is kept in the store with its time; an
/// offline run names the source from the cache alone, and a source whose
/// address has no PTR record is remembered as such.
fn reverse_dns_is_cached_for_offline_runs(st: &TestStore) {
    use mailauth::reports::dashboard::{self, attribution::Attributor};
    use mailauth::reports::sources::Method;
    use mailauth::spf::{MemRecord, MemoryDns, reverse_name};
    let mut store = st.open();
    let bytes = report(
        "google.com",
        "p",
        &[
            (
                "192.0.2.33",
                12,
                "none",
                "pass",
                "fail",
                None,
                &[("example.com", "pass")],
                ("example.com", "fail"),
            ),
            (
                "192.0.2.34",
                2,
                "reject",
                "fail",
                "fail",
                None,
                &[],
                ("example.com", "fail"),
            ),
        ],
    );
    store
        .ingest_item("p", &bytes, &IngestLimits::default())
        .expect("db")
        .expect("report");
    assert_eq!(store.ptr_cached("192.0.2.33").expect("read"), None);
    let mut dns = MemoryDns::new();
    dns.insert(
        &reverse_name("192.0.2.33".parse().expect("ip")),
        MemRecord::Ptr("o7.ptr4242.SendGrid.net.".into()),
    );
    let online = Attributor::new(Some(Box::new(dns)), Default::default());
    let all = DashFilter::default();
    let v = dashboard::domain(store.as_mut(), &online, "example.com", &all).expect("online");
    let s = v
        .sources
        .iter()
        .find(|s| s.source_ip == "192.0.2.33")
        .expect("source");
    assert_eq!(s.reverse_dns.as_deref(), Some("o7.ptr4242.sendgrid.net"));
    assert_eq!(
        (s.identity.id.as_deref(), s.identity.method),
        (Some("sendgrid"), Method::Ptr)
    );
    let (name, at) = store
        .ptr_cached("192.0.2.33")
        .expect("read")
        .expect("cached");
    assert_eq!(name.as_deref(), Some("o7.ptr4242.sendgrid.net"));
    assert!(at > 0, "looked-up time kept");
    // No PTR record: remembered as none.
    assert_eq!(
        store
            .ptr_cached("192.0.2.34")
            .expect("read")
            .map(|(n, _)| n),
        Some(None)
    );
    let v = dashboard::domain(store.as_mut(), &Attributor::offline(), "example.com", &all)
        .expect("offline");
    let s = v
        .sources
        .iter()
        .find(|s| s.source_ip == "192.0.2.33")
        .expect("source");
    assert_eq!(
        (s.reverse_dns.as_deref(), s.identity.method),
        (Some("o7.ptr4242.sendgrid.net"), Method::Ptr)
    );
}

/// Issue 18: an ASN database the user points to (`--asn-db`, MaxMind DB
/// format, built here with IPv4 and IPv6 networks) names each source's
/// autonomous system in `reports summary --json` and the HTML dashboard,
/// identifies a catalogue service by it (after PTR, before networks), and
/// groups unknown sources by it. A file that is not a MaxMind DB stops the
/// command with an error naming it, and nothing is printed.
fn asn_database_names_and_groups_sources(st: &TestStore) {
    use mailauth::reports::mmdb::Mmdb;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("asn.mmdb");
    let bytes = support::mmdb::asn_database(&[
        ("192.0.2.0/25", 11377, "SENDGRID"),
        ("198.51.100.0/24", 64500, "Example Transit"),
        ("2001:db8:1::/48", 64500, "Example Transit"),
        ("2001:db8:2::/48", 64501, "Other\u{1b}[31m Net"),
    ]);
    std::fs::write(&db, &bytes).expect("write database");
    // The reader itself: IPv4, IPv6, IPv4-mapped, and absent addresses.
    let m = Mmdb::open(&db).expect("open");
    let at = |ip: &str| m.lookup(ip.parse().expect("ip")).expect("lookup");
    let a = at("192.0.2.77").expect("in 192.0.2.0/25");
    assert_eq!((a.number, a.network.as_str()), (11377, "192.0.2.0/25"));
    assert_eq!(at("::ffff:198.51.100.9").expect("mapped").number, 64500);
    let v6 = at("2001:db8:1::25").expect("v6");
    assert_eq!(
        (v6.label().as_str(), v6.network.as_str()),
        ("AS64500 Example Transit", "2001:db8:1::/48")
    );
    assert_eq!(at("192.0.2.200"), None);
    assert_eq!(at("2001:db8:3::1"), None);

    let mut store = st.open();
    let r = report(
        "google.com",
        "asn",
        &[
            // Nothing but its AS names it: SendGrid's AS11377.
            (
                "192.0.2.10",
                20,
                "reject",
                "fail",
                "fail",
                None,
                &[],
                ("example.com", "fail"),
            ),
            // Unknown, in AS64500 over IPv4 and IPv6: one group.
            (
                "198.51.100.7",
                6,
                "reject",
                "fail",
                "fail",
                None,
                &[],
                ("example.com", "fail"),
            ),
            (
                "2001:db8:1::25",
                4,
                "reject",
                "fail",
                "fail",
                None,
                &[],
                ("example.com", "fail"),
            ),
            // An organisation name with an escape sequence.
            (
                "2001:db8:2::9",
                3,
                "reject",
                "fail",
                "fail",
                None,
                &[],
                ("example.com", "fail"),
            ),
            // Not in the database.
            (
                "203.0.113.66",
                2,
                "reject",
                "fail",
                "fail",
                None,
                &[],
                ("example.com", "fail"),
            ),
        ],
    );
    store
        .ingest_item("asn", &r, &IngestLimits::default())
        .expect("db")
        .expect("report");
    drop(store);
    let run = |extra: &[&std::ffi::OsStr]| {
        util::Cmd::new()
            .arg("-c")
            .arg(dir.path().join("none.yaml"))
            .arg("reports")
            .args(st.cli_args())
            .args(extra)
            .env_remove("MAILAUTH_ASN_DB")
            .dir(dir.path())
            .output()
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let o = run(&[
        os("summary"),
        os("--domain"),
        os("example.com"),
        os("--offline"),
        os("--json"),
        os("--asn-db"),
        db.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let src = |ip: &str| {
        v["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .find(|s| s["source_ip"] == ip)
            .unwrap_or_else(|| panic!("{ip} in {v}"))
            .clone()
    };
    let sg = src("192.0.2.10");
    assert_eq!(sg["identity"]["id"], "sendgrid", "{sg}");
    assert_eq!(sg["identity"]["method"], "asn", "{sg}");
    assert_eq!(sg["identity"]["asn"], "AS11377 SENDGRID", "{sg}");
    assert_eq!(
        sg["identity"]["evidence"], "AS11377 SENDGRID (192.0.2.0/25)",
        "{sg}"
    );
    assert_eq!(
        src("2001:db8:1::25")["identity"]["group"],
        "AS64500 Example Transit"
    );
    assert!(src("203.0.113.66")["identity"].get("asn").is_none());
    let unknown = v["senders"]["unknown"].as_array().expect("unknown");
    let group = |g: &str| {
        unknown
            .iter()
            .find(|u| u["group"] == g)
            .unwrap_or_else(|| panic!("{g} in {unknown:?}"))
    };
    let transit = group("AS64500 Example Transit");
    assert_eq!(
        (transit["sources"].as_i64(), transit["messages"].as_i64()),
        (Some(2), Some(10))
    );
    // The control character never reaches the output.
    assert_eq!(group("AS64501 Other [31m Net")["messages"], 3);
    assert_eq!(group("no reverse DNS")["messages"], 2);
    let services = v["senders"]["services"].as_array().expect("services");
    assert!(
        services
            .iter()
            .any(|s| s["id"] == "sendgrid" && s["methods"] == serde_json::json!(["asn"])),
        "{services:?}"
    );

    // The dashboard page shows the same.
    let site = dir.path().join("site");
    let o = run(&[
        os("html"),
        os("--offline"),
        os("--out"),
        site.as_os_str(),
        os("--asn-db"),
        db.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_dir(site.join("domains"))
        .expect("domains")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("page"))
        .find(|p| p.contains("example.com"))
        .expect("example.com page");
    assert!(
        page.contains("AS64500 Example Transit"),
        "group on the page"
    );
    assert!(page.contains("AS11377 SENDGRID"), "evidence on the page");
    assert!(!page.contains('\u{1b}'));

    // Not a MaxMind DB: exit 1, the file named, nothing on stdout.
    let bad = dir.path().join("bad.mmdb");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).expect("write");
    let o = run(&[
        os("summary"),
        os("--domain"),
        os("example.com"),
        os("--offline"),
        os("--json"),
        os("--asn-db"),
        bad.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("bad.mmdb") && err.contains("MaxMind"), "{err}");
    assert!(o.stdout.is_empty());
}

/// Issue 18: ARC as forwarding evidence. An aggregate report in Google's
/// form (`<reason><type>local_policy</type><comment>arc=pass</comment>`)
/// makes a failing source "forwarded" with the ARC evidence named; a
/// failure report whose included message carries an intact ARC chain
/// (RFC 8617 §5.2) shows that chain, and one with a broken chain does not.
fn arc_evidence_marks_forwarding(st: &TestStore) {
    use mailauth::reports::dashboard::{self, attribution::Attributor};
    use mailauth::reports::sources::Class;
    let mut store = st.open();
    let limits = IngestLimits::default();
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<feedback>\n  <report_metadata>\n    \
        <org_name>google.com</org_name>\n    <email>noreply-dmarc-support@google.com</email>\n    \
        <extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>\n    \
        <report_id>4462719436390468157</report_id>\n    <date_range>\n      <begin>1767139200</begin>\n      \
        <end>1767225599</end>\n    </date_range>\n  </report_metadata>\n  <policy_published>\n    \
        <domain>example.com</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>reject</p>\n    \
        <sp>reject</sp>\n    <pct>100</pct>\n    <np>reject</np>\n  </policy_published>\n  <record>\n    <row>\n      \
        <source_ip>209.85.220.69</source_ip>\n      <count>5</count>\n      <policy_evaluated>\n        \
        <disposition>none</disposition>\n        <dkim>fail</dkim>\n        <spf>fail</spf>\n        \
        <reason>\n          <type>local_policy</type>\n          <comment>arc=pass</comment>\n        </reason>\n      \
        </policy_evaluated>\n    </row>\n    <identifiers>\n      <header_from>example.com</header_from>\n    \
        </identifiers>\n    <auth_results>\n      <dkim>\n        <domain>example.com</domain>\n        \
        <result>fail</result>\n        <selector>s1</selector>\n      </dkim>\n      <spf>\n        \
        <domain>forwarder.example</domain>\n        <result>pass</result>\n      </spf>\n    </auth_results>\n  \
        </record>\n  <record>\n    <row>\n      <source_ip>203.0.113.66</source_ip>\n      <count>2</count>\n      \
        <policy_evaluated>\n        <disposition>reject</disposition>\n        <dkim>fail</dkim>\n        \
        <spf>fail</spf>\n      </policy_evaluated>\n    </row>\n    <identifiers>\n      \
        <header_from>example.com</header_from>\n    </identifiers>\n    <auth_results>\n      <spf>\n        \
        <domain>example.com</domain>\n        <result>fail</result>\n      </spf>\n    </auth_results>\n  \
        </record>\n</feedback>\n";
    store
        .ingest_item("google-arc.xml", xml.as_bytes(), &limits)
        .expect("db")
        .expect("report");
    let arf = |id: &str, seal2_cv: &str| {
        format!(
            "From: dmarc-reports@reporter.example\r\nTo: dmarc@example.com\r\n\
             Subject: DMARC failure report for example.com\r\nDate: Wed, 31 Dec 2025 10:00:00 +0000\r\n\
             Message-ID: <{id}@reporter.example>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=\"b1\"\r\n\r\n\
             --b1\r\nContent-Type: text/plain\r\n\r\nA message from 209.85.220.69 failed DMARC.\r\n\r\n\
             --b1\r\nContent-Type: message/feedback-report\r\n\r\n\
             Feedback-Type: auth-failure\r\nVersion: 1\r\nUser-Agent: reporter/1.0\r\n\
             Auth-Failure: dmarc\r\nOriginal-Mail-From: <list-bounces@lists.example.org>\r\n\
             Arrival-Date: Wed, 31 Dec 2025 09:59:58 +0000\r\nSource-IP: 209.85.220.69\r\n\
             Reported-Domain: example.com\r\n\
             Authentication-Results: mx.reporter.example; dmarc=fail header.from=example.com\r\n\r\n\
             --b1\r\nContent-Type: text/rfc822-headers\r\n\r\n\
             ARC-Seal: i=2; a=rsa-sha256; t=1767175198; cv={seal2_cv};\r\n        d=lists.example.org; s=arc-2025; b=YWJj\r\n\
             ARC-Message-Signature: i=2; a=rsa-sha256; c=relaxed/relaxed; d=lists.example.org;\r\n        s=arc-2025; h=from:to:subject:date; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=ZGVm\r\n\
             ARC-Authentication-Results: i=2; lists.example.org;\r\n       dkim=pass header.i=@example.com header.s=s1 header.b=\"Ab1Cd2Ef\";\r\n       spf=pass (lists.example.org: domain of a@example.com designates 192.0.2.25 as permitted sender) smtp.mailfrom=a@example.com;\r\n       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com;\r\n       arc=pass (i=1)\r\n\
             ARC-Seal: i=1; a=rsa-sha256; t=1767175190; cv=none; d=example.com; s=arc1; b=Z2hp\r\n\
             ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=arc1; h=from:to:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=amts\r\n\
             ARC-Authentication-Results: i=1; mail.example.com; dkim=pass header.i=@example.com; spf=pass smtp.mailfrom=example.com\r\n\
             From: Alice <a@example.com>\r\nTo: team@lists.example.org\r\nSubject: Minutes\r\n\
             Date: Wed, 31 Dec 2025 09:59:50 +0000\r\nMessage-ID: <m-{id}@example.com>\r\n\r\n--b1--\r\n"
        )
    };
    store
        .ingest_item("ruf-arc-pass.eml", arf("one", "pass").as_bytes(), &limits)
        .expect("db")
        .expect("failure report");
    let view = dashboard::domain(
        store.as_mut(),
        &Attributor::offline(),
        "example.com",
        &DashFilter::default(),
    )
    .expect("view");
    let fwd = view
        .sources
        .iter()
        .find(|s| s.source_ip == "209.85.220.69")
        .expect("forwarder source");
    assert_eq!(fwd.classification.class, Class::Forwarded, "{fwd:?}");
    assert!(
        fwd.classification.evidence[0].contains("ARC")
            && fwd.classification.evidence[0].contains("5 of 5"),
        "{:?}",
        fwd.classification.evidence
    );
    let spoof = view
        .sources
        .iter()
        .find(|s| s.source_ip == "203.0.113.66")
        .expect("spoof");
    assert_eq!(spoof.classification.class, Class::Suspicious);
    assert_eq!(view.failures.len(), 1);
    assert_eq!(
        view.failures[0].arc.as_deref(),
        Some(
            "ARC chain of 2 set(s), sealed last by d=lists.example.org (i=2 cv=pass); it found dmarc=pass, dkim=pass, spf=pass, arc=pass on arrival"
        )
    );
    // The same message with its last seal saying cv=fail: no evidence.
    store
        .ingest_item("ruf-arc-fail.eml", arf("two", "fail").as_bytes(), &limits)
        .expect("db")
        .expect("failure report");
    let view = dashboard::domain(
        store.as_mut(),
        &Attributor::offline(),
        "example.com",
        &DashFilter::default(),
    )
    .expect("view");
    assert_eq!(view.failures.len(), 2);
    assert_eq!(view.failures[0].arc, None, "newest first: the broken chain");
    assert!(view.failures[1].arc.is_some());
    // Shown as such on the page and in the terminal.
    let html = dashboard::html::domain(&view, &dashboard::html::Links::Static);
    assert!(html.contains("forwarding evidence: ARC chain of 2 set(s)"));
    let text = dashboard::text::domain(&view);
    assert!(text.contains("dmarc (ARC: forwarded)"), "{text}");
}

/// A loopback HTTP receiver answering every request with `status`;
/// keeps (head, body) of each request.
struct Receiver {
    port: u16,
    got: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                seen.lock()
                    .expect("lock")
                    .push((head, String::from_utf8_lossy(&body).into_owned()));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver { port, got }
    }

    fn requests(&self) -> Vec<(String, String)> {
        self.got.lock().expect("lock").clone()
    }
}

/// Issue 18: `reports alerts` evaluates the config's rules over the store
/// (a new unidentified source, a domain's fail rate, a catalogue service
/// not authorised, suspicious volume, a new reporter), exits 3 and POSTs
/// the alerts as JSON with the bearer token from the environment; the
/// next run finds nothing new (exit 0, no request), and a later report's
/// new source fires alone. A webhook that fails makes the run exit 1 and
/// the alerts are not remembered, so they are sent by the next run.
fn alerts_fire_once_and_reach_the_webhook(st: &TestStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = st.open();
    let limits = IngestLimits::default();
    let first = report(
        "mx1.GW.Example.net",
        "alerts-1",
        &[
            WORKSPACE_ALIGNED,
            SENDGRID_BY_DKIM,
            (
                "203.0.113.66",
                9,
                "reject",
                "fail",
                "fail",
                None,
                &[],
                ("spoof.test", "fail"),
            ),
        ],
    );
    store
        .ingest_item("alerts-1", &first, &limits)
        .expect("db")
        .expect("report");
    let config = |port: u16| {
        let path = dir.path().join(format!("mailauth-{port}.yaml"));
        std::fs::write(
            &path,
            format!(
                "domains:\n  example.com:\n    dmarc: {{ p: reject }}\n\
                 alerts:\n  window: 2d\n  new_source_messages: 5\n  fail_rate_percent: 20\n  \
                 fail_rate_min_messages: 10\n  suspicious_messages: 5\n  webhook:\n    \
                 url: http://127.0.0.1:{port}/hook/s3cr3t-path\n    token_env: ALERT_TOKEN\n"
            ),
        )
        .expect("config");
        path
    };
    let run = |config: &std::path::Path, json: bool| {
        let mut c = util::mailauth(["-c"])
            .arg(config)
            .arg("reports")
            .args(st.cli_args())
            .arg("alerts");
        if json {
            c = c.arg("--json");
        }
        c.env("MAILAUTH_NOW", "2026-01-01T12:00:00Z")
            .env("ALERT_TOKEN", "token-abc123")
            .env_remove("MAILAUTH_ASN_DB")
            .dir(dir.path())
            .output()
    };
    let keys = |o: &std::process::Output| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
        let mut k: Vec<String> = v["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .map(|a| a["key"].as_str().expect("key").to_owned())
            .collect();
        k.sort();
        k
    };
    let all = [
        "fail_rate/example.com/2026-01-01",
        "new_reporter/example.net",
        "new_source/example.com/203.0.113.66",
        "suspicious_volume/example.com/2026-01-01",
        "unauthorised_service/example.com/sendgrid",
    ];

    // A webhook answering 500: exit 1, the alerts printed, not remembered.
    let broken = Receiver::start(500);
    let o = run(&config(broken.port), true);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(keys(&o), all);
    assert!(err.contains("HTTP 500") || err.contains("500"), "{err}");
    assert!(
        !err.contains("s3cr3t-path") && !err.contains("token-abc123"),
        "{err}"
    );
    assert_eq!(broken.requests().len(), 1);

    // The next run sends them: exit 3, one POST with the token.
    let hook = Receiver::start(200);
    let good = config(hook.port);
    let o = run(&good, true);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(keys(&o), all);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["generated_at"], "2026-01-01T12:00:00Z");
    assert_eq!(v["since"], "2025-12-30T12:00:00Z");
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1);
    let (head, body) = &reqs[0];
    assert!(head.starts_with("POST /hook/s3cr3t-path "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer token-abc123"),
        "{head}"
    );
    let posted: serde_json::Value = serde_json::from_str(body).expect("posted JSON");
    assert_eq!(posted["alerts"].as_array().map(Vec::len), Some(5));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("token-abc123"));

    // Nothing new: exit 0, no request.
    let o = run(&good, false);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("no new alerts since 2025-12-30T12:00:00Z"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(hook.requests().len(), 1);

    // A new source in a later report fires alone (text form).
    let second = report(
        "mx1.GW.Example.net",
        "alerts-2",
        &[(
            "198.51.100.99",
            12,
            "reject",
            "fail",
            "fail",
            None,
            &[],
            ("spoof.test", "fail"),
        )],
    );
    store
        .ingest_item("alerts-2", &second, &limits)
        .expect("db")
        .expect("report");
    let o = run(&good, false);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("ALERT new_source: example.com: unidentified source 198.51.100.99"),
        "{text}"
    );
    assert_eq!(hook.requests().len(), 2);

    // A bad rule value is a config error (exit 2) naming the field.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "domains:\n  example.com:\n    dmarc: { p: reject }\nalerts:\n  new_source_messagez: 5\n",
    )
    .expect("config");
    let o = run(&bad, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("new_source_messagez"), "{err}");
    assert!(o.stdout.is_empty());
}

/// aiosmtpd requiring STARTTLS (a test CA's certificate for localhost) and
/// AUTH: writes each message to `<dir>/NNNN.eml` and each login to
/// `<dir>/logins`.
const TLS_SINK: &str = r#"
import itertools, os, signal, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
class Handler:
    n = itertools.count()
    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(sys.argv[2], "%04d.eml" % next(self.n))
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 OK"
def auth(server, session, envelope, mechanism, data):
    with open(os.path.join(sys.argv[2], "logins"), "a") as f:
        f.write("%s %s\n" % (mechanism, data.login.decode()))
    return AuthResult(success=data.login == b"alerts" and data.password == b"pw-xyz789")
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
c = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]),
               server_hostname="localhost", tls_context=ctx, require_starttls=True,
               authenticator=auth, auth_required=True, auth_require_tls=True)
c.start()
print("ready", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
c.stop()
"#;

/// Issue 18: alerts mailed through an SMTP server that requires STARTTLS
/// and AUTH PLAIN (aiosmtpd on loopback, a test CA): one message with the
/// alerts, the password from a file never printed, nothing sent again by
/// the next run.
fn alerts_by_email_over_starttls_with_auth(st: &TestStore) {
    use std::io::BufRead;
    let Some(python) = support::octodns::python_with("aiosmtpd") else {
        return;
    };
    let Some(ca) = support::https::TestCa::try_new() else {
        return;
    };
    let (cert, key) = ca.issue("smtp", &["localhost"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = dir.path().join("sink");
    std::fs::create_dir_all(&sink).expect("sink dir");
    let port = support::free_port();
    let mut child = std::process::Command::new(&python)
        .args(["-c", TLS_SINK, &port.to_string()])
        .arg(&sink)
        .arg(&cert)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start aiosmtpd");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    assert_eq!(line.trim(), "ready");
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _stop = Stop(child);

    let mut store = st.open();
    let r = report(
        "google.com",
        "mail-1",
        &[(
            "203.0.113.66",
            30,
            "reject",
            "fail",
            "fail",
            None,
            &[],
            ("spoof.test", "fail"),
        )],
    );
    store
        .ingest_item("mail-1", &r, &IngestLimits::default())
        .expect("db")
        .expect("report");
    std::fs::write(dir.path().join("smtp-password"), "pw-xyz789\n").expect("pw");
    let config = dir.path().join("mailauth.yaml");
    std::fs::write(
        &config,
        format!(
            "domains:\n  example.com:\n    dmarc: {{ p: reject }}\n\
             alerts:\n  window: 2d\n  new_reporter: false\n  fail_rate_min_messages: 0\n  \
             suspicious_messages: 0\n  email:\n    server: localhost:{port}\n    \
             from: dmarc-alerts@example.com\n    to: [ops@example.com, sec@example.com]\n    \
             username: alerts\n    password_file: smtp-password\n    ca_file: {}\n",
            ca.cert().display()
        ),
    )
    .expect("config");
    let run = || {
        util::Cmd::new()
            .arg("-c")
            .arg(&config)
            .arg("reports")
            .args(st.cli_args())
            .arg("alerts")
            .env("MAILAUTH_NOW", "2026-01-01T12:00:00Z")
            .env_remove("MAILAUTH_ASN_DB")
            .dir(dir.path())
            .output()
    };
    let o = run();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert_eq!(o.status.code(), Some(3), "{out}\n{err}");
    assert!(!out.contains("pw-xyz789") && !err.contains("pw-xyz789"));
    let mail = std::fs::read_to_string(sink.join("0000.eml")).expect("the message");
    assert!(
        mail.contains("Subject: mailauth: 1 new alert\r\n"),
        "{mail}"
    );
    assert!(
        mail.contains("Date: Thu, 01 Jan 2026 12:00:00 +0000\r\n"),
        "{mail}"
    );
    assert!(
        mail.contains("ALERT new_source: example.com: unidentified source 203.0.113.66"),
        "{mail}"
    );
    let logins = std::fs::read_to_string(sink.join("logins")).expect("logins");
    assert_eq!(logins, "PLAIN alerts\n");
    // Nothing new: no second message.
    let o = run();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!sink.join("0001.eml").exists());
}

/// Issue 18, the rules over time: a known source starting to fail, a
/// domain's pass rate dropping day over day, a major reporter gone
/// silent, a failure report in the window and TLS-RPT failures each fire
/// once (exit 3), and not again on the next run (exit 0). Beside each, a
/// case that must not fire: a new source failing (not known), a small
/// drop on another domain, a reporter still sending and one too small to
/// count, a failure report older than the window, a TLS policy domain
/// without failures.
fn alerts_new_rules_fire_once_and_only_when_due(st: &TestStore) {
    const DAY: i64 = 86_400;
    // 2025-12-31T00:00:00Z; the run is at 2026-01-10T12:00:00Z, its
    // window (2d) starts 2026-01-08T12:00:00Z.
    const D0: i64 = 1_767_139_200;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = st.open();
    let limits = IngestLimits::default();
    let mut ingest = |name: &str, bytes: &[u8]| {
        store
            .ingest_item(name, bytes, &limits)
            .expect("db")
            .expect("report");
    };
    let pass = |ip: &'static str, n: u32| {
        (
            ip,
            n,
            "none",
            "pass",
            "pass",
            None,
            &[][..],
            ("example.com", "pass"),
        )
    };
    let fail = |ip: &'static str, n: u32| {
        (
            ip,
            n,
            "reject",
            "fail",
            "fail",
            None,
            &[][..],
            ("spoof.test", "fail"),
        )
    };
    // Before the window: 192.0.2.1 passes (known), 192.0.2.3 only fails.
    ingest(
        "k1",
        &report_at(
            "big.example",
            "k1",
            "example.com",
            D0 + DAY,
            &[pass("192.0.2.1", 30), fail("192.0.2.3", 5)],
        ),
    );
    // 2026-01-08 (before the window, the day before the last complete
    // day): example.com all passing, other.example 50 of 50.
    ingest(
        "k2",
        &report_at(
            "big.example",
            "k2",
            "example.com",
            D0 + 8 * DAY,
            &[pass("192.0.2.1", 40)],
        ),
    );
    ingest(
        "o1",
        &report_at(
            "big.example",
            "o1",
            "other.example",
            D0 + 8 * DAY,
            &[pass("192.0.2.9", 50)],
        ),
    );
    // 2026-01-09 (in the window, the last complete day): the known source
    // fails, a new one fails too, example.com passes 10 of 45;
    // other.example 45 of 50 (a drop of 10 points, under 20).
    ingest(
        "k3",
        &report_at(
            "big.example",
            "k3",
            "example.com",
            D0 + 9 * DAY,
            &[
                pass("192.0.2.1", 10),
                fail("192.0.2.1", 15),
                fail("192.0.2.2", 20),
                fail("192.0.2.3", 0),
            ],
        ),
    );
    ingest(
        "o2",
        &report_at(
            "big.example",
            "o2",
            "other.example",
            D0 + 9 * DAY,
            &[pass("192.0.2.9", 45), fail("192.0.2.8", 5)],
        ),
    );
    // A reporter with 3 reports, the last ending 2026-01-02: silent; one
    // with a single old report: too small to count.
    for (i, id) in ["s1", "s2", "s3"].iter().enumerate() {
        ingest(
            id,
            &report_at(
                "old.example",
                id,
                "example.com",
                D0 + i as i64 * DAY,
                &[pass("192.0.2.1", 1)],
            ),
        );
    }
    ingest(
        "t1",
        &report_at(
            "tiny.example",
            "t1",
            "example.com",
            D0,
            &[pass("192.0.2.1", 1)],
        ),
    );
    // Failure reports: one arriving in the window, one before it.
    let arf = |id: &str, arrival: &str| {
        format!(
            "From: dmarc-reports@reporter.example\r\nTo: dmarc@example.com\r\n\
             Subject: DMARC failure report for example.com\r\nDate: {arrival}\r\n\
             Message-ID: <{id}@reporter.example>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=\"b1\"\r\n\r\n\
             --b1\r\nContent-Type: text/plain\r\n\r\nA message from 203.0.113.5 failed DMARC.\r\n\r\n\
             --b1\r\nContent-Type: message/feedback-report\r\n\r\n\
             Feedback-Type: auth-failure\r\nVersion: 1\r\nUser-Agent: reporter/1.0\r\n\
             Auth-Failure: dmarc\r\nOriginal-Mail-From: <x@spoof.test>\r\n\
             Arrival-Date: {arrival}\r\nSource-IP: 203.0.113.5\r\n\
             Reported-Domain: example.com\r\n\r\n\
             --b1\r\nContent-Type: text/rfc822-headers\r\n\r\n\
             From: <ceo@example.com>\r\nTo: a@reporter.example\r\nSubject: Invoice {id}\r\n\
             Message-ID: <m-{id}@spoof.test>\r\n\r\n--b1--\r\n"
        )
    };
    ingest(
        "ruf-new.eml",
        arf("new", "Sat, 09 Jan 2026 10:00:00 +0000").as_bytes(),
    );
    ingest(
        "ruf-old.eml",
        arf("old", "Fri, 02 Jan 2026 10:00:00 +0000").as_bytes(),
    );
    // TLS-RPT in the window: example.com with 3 failed sessions,
    // other.example with none.
    let tls = r#"{"organization-name":"Big","date-range":{"start-datetime":"2026-01-09T00:00:00Z",
        "end-datetime":"2026-01-09T23:59:59Z"},"contact-info":"tls@big.example","report-id":"tls-1",
        "policies":[{"policy":{"policy-type":"sts","policy-domain":"example.com"},
        "summary":{"total-successful-session-count":100,"total-failure-session-count":3},
        "failure-details":[{"result-type":"certificate-expired","failed-session-count":3}]},
        {"policy":{"policy-type":"sts","policy-domain":"other.example"},
        "summary":{"total-successful-session-count":100,"total-failure-session-count":0}}]}"#;
    ingest("tls-1.json", tls.as_bytes());

    let config = dir.path().join("mailauth.yaml");
    std::fs::write(
        &config,
        "domains:\n  example.com:\n    dmarc: { p: reject }\n\
         alerts:\n  window: 2d\n  new_source_messages: 0\n  fail_rate_min_messages: 0\n  \
         new_reporter: false\n  unauthorised_service: false\n  suspicious_messages: 0\n  \
         known_source_fail_messages: 10\n  pass_rate_drop_points: 20\n  \
         pass_rate_drop_min_messages: 20\n  reporter_silent_days: 3\n  \
         reporter_silent_min_reports: 3\n  failure_reports: true\n  tls_failed_sessions: 1\n",
    )
    .expect("config");
    let run = || {
        util::Cmd::new()
            .arg("-c")
            .arg(&config)
            .arg("reports")
            .args(st.cli_args())
            .arg("alerts")
            .arg("--json")
            .env("MAILAUTH_NOW", "2026-01-10T12:00:00Z")
            .env_remove("MAILAUTH_ASN_DB")
            .dir(dir.path())
            .output()
    };
    let o = run();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let mut keys: Vec<String> = v["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| a["key"].as_str().expect("key").to_owned())
        .collect();
    keys.sort();
    // The failure report's id depends on the store: checked apart.
    let ruf: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with("failure_report/"))
        .cloned()
        .collect();
    assert_eq!(ruf.len(), 1, "{keys:?}");
    assert!(ruf[0].starts_with("failure_report/example.com/"), "{ruf:?}");
    keys.retain(|k| !k.starts_with("failure_report/"));
    assert_eq!(
        keys,
        [
            "known_source_fails/example.com/192.0.2.1",
            "pass_rate_drop/example.com/2026-01-09",
            "reporter_silent/old.example/2026-01-02",
            "tls_failures/example.com/2026-01-10",
        ],
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("Sat, 09 Jan 2026") || text.contains("2026-01-09T10:00:00Z"),
        "{text}"
    );

    // The next run: nothing new.
    let o = run();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["alerts"].as_array().map(Vec::len), Some(0), "{v}");
}

/// The source and policy rollups answer as the records do: every domain
/// page list read from the rollups (no time bound) equals the same list
/// summed from the records (an unbounded range that makes the query read
/// them).
fn rollups_agree(store: &dyn DashboardQueries) {
    for domain in [None, Some("example.com".to_owned())] {
        let rolled = DashFilter {
            domain,
            ..DashFilter::default()
        };
        let records = DashFilter {
            since: Some(i64::MIN),
            ..rolled.clone()
        };
        let (all, failing) = store
            .dash_sources_split(&rolled, 1000, 1000)
            .expect("sources from the rollup");
        assert_eq!(
            all,
            store.dash_sources(&records, false, 1000).expect("sources")
        );
        assert_eq!(
            failing,
            store
                .dash_sources(&records, true, 1000)
                .expect("failing sources")
        );
        assert_eq!(
            store
                .dash_policy_rollup(&rolled)
                .expect("policy from the rollup"),
            store.dash_policy(&records).expect("policy")
        );
    }
}

/// Issue 21: a current rollup is kept when the store is opened again
/// (`serve` refreshes it at start and must not rebuild it); reports of
/// other months are folded in (on PostgreSQL the fill reads only their
/// months, so a bound off by one would leave one out); after a prune it
/// is equal to the records again.
fn rollup_kept_on_reopen_folded_by_month_rebuilt_on_prune(st: &TestStore) {
    use mailauth::reports::store_cli::AnyStore;
    let limits = IngestLimits::default();
    let ingest = |store: &mut Box<dyn AnyStore>, id: &str, begin: i64| {
        let xml = report_at(
            "r.test",
            id,
            "example.com",
            begin,
            &[WORKSPACE_ALIGNED, SENDGRID_BY_DKIM],
        );
        store
            .ingest_item(id, &xml, &limits)
            .expect("db")
            .expect("report");
    };
    let mut store = st.open();
    ingest(&mut store, "nov", 1_761_955_200); // 2025-11-01
    ingest(&mut store, "dec", 1_767_139_200); // 2025-12-31
    assert_eq!(store.refresh_rollup().expect("refresh"), 2);
    assert_eq!(totals(store.as_ref()), want(st));
    rollups_agree(store.as_ref());
    let rows = i64::try_from(
        store
            .dash_daily(&DashFilter::default())
            .expect("daily")
            .len(),
    )
    .expect("rows");
    assert_eq!(rows, 2, "one rollup row per day");
    drop(store);

    // Mark every rollup row: a rebuild would drop the mark.
    let mark = "UPDATE dashboard_daily_v1 SET messages = messages + 1000";
    st.execute(mark, mark);
    let mut store = st.open();
    assert_eq!(store.refresh_rollup().expect("refresh"), 0, "nothing new");
    let (m, p, r) = want(st);
    assert_eq!(
        totals(store.as_ref()),
        (m + 1000 * rows, p, r),
        "the rollup of the first open is kept, not rebuilt"
    );

    // A later month and an earlier one, both above the last folded id.
    ingest(&mut store, "feb", 1_769_990_399); // 2026-02-01 23:59:59
    ingest(&mut store, "oct", 1_759_276_800); // 2025-10-01 00:00:00
    assert_eq!(store.refresh_rollup().expect("refresh"), 2);
    let (m, p, r) = want(st);
    assert_eq!(
        totals(store.as_ref()),
        (m + 1000 * rows, p, r),
        "both new months folded in, the old rows untouched"
    );
    rollups_agree(store.as_ref());
    assert_eq!(
        store
            .dash_daily(&DashFilter::default())
            .expect("daily")
            .len(),
        4
    );

    // The mark taken off: the rollup equals the records again.
    let unmark = "UPDATE dashboard_daily_v1 SET messages = messages - 1000 \
                  WHERE messages >= 1000";
    st.execute(unmark, unmark);
    assert_eq!(totals(store.as_ref()), want(st));

    // Reports that began before December are pruned: kept, exact.
    store.prune(1_764_547_200, true).expect("prune");
    store.refresh_rollup().expect("refresh");
    assert_eq!(totals(store.as_ref()), want(st));
    rollups_agree(store.as_ref());
    assert_eq!(
        store
            .dash_daily(&DashFilter::default())
            .expect("daily")
            .len(),
        2
    );
}

/// The domain page reads both of its source lists from one query
/// (`dash_sources_split`, from the source rollup when unbounded in time):
/// each equals what its own query over the records answers, for every
/// limit, with and without a domain, a source or a time range.
fn sources_split_is_the_two_source_lists(st: &TestStore) {
    let limits = IngestLimits::default();
    let mut store = st.open();
    let rows: Vec<Row> = (0..12u32)
        .map(|i| {
            let ip: &'static str = Box::leak(format!("192.0.2.{}", 20 + i % 7).into_boxed_str());
            let aligned = if i % 3 == 0 { "pass" } else { "fail" };
            (
                ip,
                1 + (i % 4) * 5,
                if i % 5 == 0 { "reject" } else { "none" },
                aligned,
                if i % 4 == 0 { "pass" } else { "fail" },
                if i % 6 == 1 { Some("forwarded") } else { None },
                &[("example.com", "pass")] as &[_],
                ("example.com", "fail"),
            )
        })
        .collect();
    for (n, (org, domain)) in [
        ("a.test", "example.com"),
        ("b.test", "example.com"),
        ("a.test", "example.org"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("split{n}");
        let begin = 1_767_139_200 - 86_400 * i64::try_from(n).expect("n");
        let xml = report_at(org, &id, domain, begin, &rows[n * 2..]);
        store
            .ingest_item(&id, &xml, &limits)
            .expect("db")
            .expect("report");
    }
    store.refresh_rollup().expect("refresh");
    rollups_agree(store.as_ref());
    let filters = [
        DashFilter::default(),
        DashFilter {
            domain: Some("example.com".into()),
            ..DashFilter::default()
        },
        DashFilter {
            source: Some("192.0.2.21".into()),
            ..DashFilter::default()
        },
        DashFilter {
            since: Some(1_767_139_200 - 86_400),
            ..DashFilter::default()
        },
    ];
    let mut failing_seen = 0;
    for f in &filters {
        for (limit, failing_limit) in [(100, 100), (3, 2), (1, 5), (0, 0)] {
            let (all, failing) = store
                .dash_sources_split(f, limit, failing_limit)
                .expect("split");
            // Unbounded in time, the split reads the rollup and the two
            // queries the records.
            assert_eq!(
                all,
                store.dash_sources(f, false, limit).expect("all"),
                "{f:?} {limit}"
            );
            assert_eq!(
                failing,
                store.dash_sources(f, true, failing_limit).expect("failing"),
                "{f:?} {failing_limit}"
            );
            failing_seen += failing.len();
        }
    }
    assert!(failing_seen > 10, "the failing lists are not empty");
}

/// The store of `st` holding three sample reports, folded into its
/// rollups (the refresh folds in all three).
fn three_reports_folded(st: &TestStore) -> Box<dyn mailauth::reports::store_cli::AnyStore> {
    let limits = IngestLimits::default();
    let sample = |name: &str| {
        std::fs::read(dashboard::samples().join("aggregate").join(name)).expect("sample")
    };
    let mut store = st.open();
    for name in ["test.xml", "google.xml", "yahoo.xml"] {
        store
            .ingest_item(name, &sample(name), &limits)
            .expect("db")
            .expect("report");
    }
    assert_eq!(store.refresh_rollup().expect("refresh"), 3);
    store
}

/// Schema 6 adds the source and policy rollups: a store of version 5 (the
/// two tables dropped and the version forgotten) is migrated when opened,
/// keeping every row, and its next refresh rebuilds every rollup, which
/// then answers as the records do.
fn migration_to_source_rollup_keeps_every_row(st: &TestStore) {
    let store = three_reports_folded(st);
    let list = store.list(None).expect("list");
    let shown: Vec<_> = list
        .iter()
        .map(|r| {
            serde_json::to_value(store.show(r.kind, r.id).expect("show").expect("some"))
                .expect("json")
        })
        .collect();
    let daily = store.dash_daily(&DashFilter::default()).expect("daily");
    drop(store);
    let downgrade = "DROP TABLE dashboard_sources_v1; DROP TABLE dashboard_policy_v1; \
                     DROP TABLE dashboard_reporters_v1; \
                     ALTER TABLE dashboard_daily_v1 DROP COLUMN records; \
                     DELETE FROM schema_version WHERE version IN (6, 7);";
    st.execute(downgrade, downgrade);

    let mut store = st.open();
    assert_eq!(store.list(None).expect("list"), list, "every report kept");
    for (r, want) in list.iter().zip(&shown) {
        let got = serde_json::to_value(store.show(r.kind, r.id).expect("show").expect("some"))
            .expect("json");
        assert_eq!(&got, want, "{:?} {}", r.kind, r.id);
    }
    assert_eq!(store.refresh_rollup().expect("refresh"), 3, "rebuilt");
    assert_eq!(
        store.dash_daily(&DashFilter::default()).expect("daily"),
        daily
    );
    let (all, _) = store
        .dash_sources_split(&DashFilter::default(), 1000, 1000)
        .expect("sources");
    assert!(!all.is_empty(), "the source rollup is filled");
    rollups_agree(store.as_ref());
}

/// Every rollup answers as the records do: the source and policy rollups
/// ([`rollups_agree`]), the reporter rollup against the reporters of the
/// reports, and the daily rollup against the daily counts of each source
/// summed from its records; the policy rollup holds one row per group.
fn all_rollups_agree(st: &TestStore, store: &dyn DashboardQueries) {
    rollups_agree(store);
    for domain in [None, Some("example.com".to_owned())] {
        let rolled = DashFilter {
            domain,
            ..DashFilter::default()
        };
        let records = DashFilter {
            since: Some(i64::MIN),
            ..rolled.clone()
        };
        assert_eq!(
            store
                .dash_reporters(&rolled)
                .expect("reporters from the rollup"),
            store.dash_reporters(&records).expect("reporters"),
            "{rolled:?}"
        );
    }
    let mut daily = std::collections::BTreeMap::new();
    for s in store
        .dash_sources(&DashFilter::default(), false, 1000)
        .expect("sources")
    {
        let f = DashFilter {
            domain: Some(s.domain.clone()),
            source: Some(s.source_ip.clone()),
            ..DashFilter::default()
        };
        for d in store.dash_daily(&f).expect("daily of one source") {
            let e: &mut mailauth::reports::dashq::DailyRow = daily
                .entry((d.domain.clone(), d.day))
                .or_insert_with(|| mailauth::reports::dashq::DailyRow {
                    domain: d.domain.clone(),
                    day: d.day,
                    ..Default::default()
                });
            e.messages += d.messages;
            e.dmarc_pass += d.dmarc_pass;
            e.spf_aligned += d.spf_aligned;
            e.dkim_aligned += d.dkim_aligned;
            e.none += d.none;
            e.quarantine += d.quarantine;
            e.reject += d.reject;
        }
    }
    assert_eq!(
        store.dash_daily(&DashFilter::default()).expect("daily"),
        daily.into_values().collect::<Vec<_>>()
    );
    let all = DashFilter {
        since: Some(i64::MIN),
        ..DashFilter::default()
    };
    assert_eq!(
        st.query_int("SELECT count(*) FROM dashboard_policy_v1"),
        i64::try_from(store.dash_policy(&all).expect("policy").len()).expect("rows"),
        "one policy rollup row per group"
    );
}

/// A source whose records all count 0 messages (its rows stay on the
/// pages, with 0 messages, as long as one record does).
const ZERO_QUARANTINED: Row = (
    "192.0.2.77",
    0,
    "quarantine",
    "fail",
    "fail",
    None,
    &[],
    ("zero.test", "fail"),
);

/// [`ZERO_QUARANTINED`]'s source with messages.
const QUARANTINED: Row = (
    "192.0.2.77",
    3,
    "quarantine",
    "fail",
    "fail",
    Some("forwarded"),
    &[("other.test", "pass")],
    ("zero.test", "pass"),
);

const NOV_30: i64 = 1_764_460_800;
const DEC_01: i64 = 1_764_547_200;
const DEC_31: i64 = 1_767_139_200;

/// `reports prune` and `reports delete` keep the rollups in their own
/// transaction: afterwards the state is current (the refresh folds in
/// nothing: no rebuild from every record) and every rollup answers as the
/// records do, rows whose last record went gone, rows keeping only
/// records of 0 messages kept; repeated refreshes add to the policy rows
/// instead of appending.
fn prune_and_delete_keep_every_rollup(st: &TestStore) {
    use mailauth::reports::parse::ReportKind;
    let limits = IngestLimits::default();
    let mut store = st.open();
    let ingest = |store: &mut Box<dyn mailauth::reports::store_cli::AnyStore>,
                  org: &str,
                  id: &str,
                  domain: &str,
                  begin: i64,
                  rows: &[Row]| {
        let xml = report_at(org, id, domain, begin, rows);
        store
            .ingest_item(id, &xml, &limits)
            .expect("db")
            .expect("report");
    };
    ingest(
        &mut store,
        "r.test",
        "a",
        "example.com",
        NOV_30,
        &[WORKSPACE_ALIGNED, SENDGRID_BY_DKIM, QUARANTINED],
    );
    ingest(
        &mut store,
        "s.test",
        "b",
        "example.com",
        DEC_01,
        &[WORKSPACE_ALIGNED, ZERO_QUARANTINED],
    );
    ingest(
        &mut store,
        "r.test",
        "c",
        "other.test",
        NOV_30,
        &[SENDGRID_BY_DKIM],
    );
    assert_eq!(store.refresh_rollup().expect("refresh"), 3);
    all_rollups_agree(st, store.as_ref());
    // Folded one by one, the same groups again: added, not appended.
    ingest(
        &mut store,
        "r.test",
        "d",
        "example.com",
        DEC_31,
        &[WORKSPACE_ALIGNED, SENDGRID_BY_DKIM],
    );
    assert_eq!(store.refresh_rollup().expect("refresh"), 1);
    ingest(
        &mut store,
        "s.test",
        "e",
        "example.com",
        DEC_31,
        &[WORKSPACE_ALIGNED, QUARANTINED],
    );
    assert_eq!(store.refresh_rollup().expect("refresh"), 1);
    all_rollups_agree(st, store.as_ref());

    // November goes: other.test entirely, 192.0.2.77 keeps records (one
    // of 0 messages, one of 3), r.test keeps one report.
    let pruned = store.prune(DEC_01, true).expect("prune");
    assert_eq!(pruned.reports, 2);
    assert_eq!(
        store.refresh_rollup().expect("refresh"),
        0,
        "the prune kept the rollups current: nothing to rebuild"
    );
    all_rollups_agree(st, store.as_ref());
    assert!(
        !store
            .dash_reporters(&DashFilter::default())
            .expect("reporters")
            .is_empty()
    );

    // The newest report deleted, then another stored (SQLite may give it
    // the same id): only the new one is folded in.
    let ids: Vec<i64> = store
        .list(None)
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    let newest = *ids.iter().max().expect("a report");
    store
        .delete(&[(ReportKind::Aggregate, newest)])
        .expect("delete");
    assert_eq!(
        store.refresh_rollup().expect("refresh"),
        0,
        "kept by delete"
    );
    all_rollups_agree(st, store.as_ref());
    ingest(
        &mut store,
        "t.test",
        "f",
        "example.com",
        DEC_31,
        &[QUARANTINED],
    );
    assert_eq!(store.refresh_rollup().expect("refresh"), 1);
    all_rollups_agree(st, store.as_ref());

    // Everything deleted: every rollup empty, still current.
    let all: Vec<_> = store
        .list(None)
        .expect("list")
        .into_iter()
        .map(|r| (r.kind, r.id))
        .collect();
    store.delete(&all).expect("delete all");
    assert_eq!(store.refresh_rollup().expect("refresh"), 0);
    all_rollups_agree(st, store.as_ref());
    assert!(
        store
            .dash_daily(&DashFilter::default())
            .expect("daily")
            .is_empty()
    );
    assert!(
        store
            .dash_reporters(&DashFilter::default())
            .expect("reporters")
            .is_empty()
    );
}

/// A prune while the rollup is behind: the pruned reports that were
/// folded in are taken out, the ones that were not are only removed, and
/// the next refresh folds in just the newer reports kept.
fn prune_of_a_partly_folded_store(st: &TestStore) {
    let limits = IngestLimits::default();
    let mut store = st.open();
    let ingest = |store: &mut Box<dyn mailauth::reports::store_cli::AnyStore>,
                  id: &str,
                  begin: i64,
                  rows: &[Row]| {
        let xml = report_at("r.test", id, "example.com", begin, rows);
        store
            .ingest_item(id, &xml, &limits)
            .expect("db")
            .expect("report");
    };
    ingest(&mut store, "a", NOV_30, &[WORKSPACE_ALIGNED, QUARANTINED]);
    ingest(&mut store, "b", DEC_31, &[WORKSPACE_ALIGNED]);
    assert_eq!(store.refresh_rollup().expect("refresh"), 2);
    // Not folded in yet: one to be pruned, one kept.
    ingest(&mut store, "c", NOV_30, &[SENDGRID_BY_DKIM, QUARANTINED]);
    ingest(
        &mut store,
        "d",
        DEC_31,
        &[SENDGRID_BY_DKIM, ZERO_QUARANTINED],
    );
    assert_eq!(store.prune(DEC_01, true).expect("prune").reports, 2);
    assert_eq!(
        store.refresh_rollup().expect("refresh"),
        1,
        "only d folded in"
    );
    all_rollups_agree(st, store.as_ref());
    assert_eq!(totals(store.as_ref()), want(st));
    assert_eq!(store.refresh_rollup().expect("refresh"), 0);
}

/// Schema 7 makes the policy rollup one row per group: a store of version
/// 6 (its policy rows appended per refresh, no reporter rollup) is
/// migrated when opened, keeping every report, the appended rows summed
/// into one per group; its next refresh rebuilds every rollup.
fn migration_collapses_the_policy_rollup(st: &TestStore) {
    let store = three_reports_folded(st);
    let list = store.list(None).expect("list");
    drop(store);
    let downgrade = |int: &str| {
        format!(
            "DROP TABLE dashboard_reporters_v1; \
             ALTER TABLE dashboard_daily_v1 DROP COLUMN records; \
             DROP TABLE dashboard_policy_v1; \
             CREATE TABLE dashboard_policy_v1 (domain TEXT NOT NULL, p TEXT, pct {int}, \
               disposition TEXT NOT NULL, reasons TEXT, messages {int} NOT NULL); \
             CREATE INDEX dashboard_policy_v1_domain ON dashboard_policy_v1 (domain); \
             INSERT INTO dashboard_policy_v1 VALUES ('a.test', NULL, NULL, 'none', '[]', 5), \
               ('a.test', NULL, NULL, 'none', '[]', 7), ('a.test', 'reject', 100, 'none', '[]', 1), \
               ('a.test', 'reject', 100, 'none', '[]', 2), ('a.test', 'reject', NULL, 'none', '[]', 4); \
             DELETE FROM schema_version WHERE version = 7;"
        )
    };
    st.execute(&downgrade("INTEGER"), &downgrade("BIGINT"));

    let mut store = st.open();
    assert_eq!(store.list(None).expect("list"), list, "every report kept");
    assert_eq!(
        st.query_int("SELECT count(*) FROM dashboard_policy_v1"),
        3,
        "one row per group"
    );
    assert_eq!(
        st.query_int("SELECT messages FROM dashboard_policy_v1 WHERE p IS NULL AND pct IS NULL"),
        12
    );
    assert_eq!(
        st.query_int("SELECT messages FROM dashboard_policy_v1 WHERE p = 'reject' AND pct = 100"),
        3
    );
    assert_eq!(store.refresh_rollup().expect("refresh"), 3, "rebuilt");
    all_rollups_agree(st, store.as_ref());
    assert_eq!(totals(store.as_ref()), want(st));
}
