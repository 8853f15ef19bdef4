//! The PostgreSQL report store against a real PostgreSQL 15 started by the
//! harness: same results as SQLite for ingest, list, show and checklist
//! queries; dedupe under four concurrent workers (threads and processes);
//! schema guard; `store migrate` and an idempotent `store copy`; the
//! monthly partitions of schema 5 (migration from version 4, creation by
//! eight racing workers, `reports prune` dropping whole months).

use crate::support;
use crate::util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use mailauth::reports::IngestLimits;
use mailauth::reports::ingest::{self, FileSource, Summary};
use mailauth::reports::parse::ReportKind;
use mailauth::reports::pgstore::PgStore;
use mailauth::reports::store::{
    ChecklistQueries, ReportDetail, ReportRow, ReportStore, SCHEMA_VERSION, SqliteStore,
    StoreError, Table,
};
use support::postgres::PgServer;

fn data() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reports")).to_owned()
}

/// Every sample file, sorted: aggregate, failure and TLS reports, valid
/// and invalid ones.
fn corpus() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for kind in ["aggregate", "forensic", "tlsrpt"] {
        let mut v: Vec<PathBuf> = std::fs::read_dir(data().join(kind))
            .expect("read samples")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        out.extend(v);
    }
    assert!(out.len() > 20, "samples missing: {}", out.len());
    out
}

fn ingest_files(store: &mut dyn ReportStore, files: Vec<PathBuf>) -> Summary {
    let limits = IngestLimits::default();
    let mut src = FileSource::new(files, limits.max_input_bytes);
    ingest::run(&mut src, store, &limits, &mut |_| {}).expect("ingest runs")
}

/// A row without its backend-assigned id.
type Key = (
    &'static str,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
);

fn key(r: &ReportRow) -> Key {
    (
        r.kind.as_str(),
        r.org.clone(),
        r.report_id.clone(),
        r.domain.clone(),
        r.begin.clone(),
        r.end.clone(),
        r.records,
        r.messages,
    )
}

fn keys(rows: &[ReportRow]) -> Vec<Key> {
    let mut v: Vec<_> = rows.iter().map(key).collect();
    v.sort();
    v
}

fn detail_json(d: &ReportDetail) -> serde_json::Value {
    let mut v = serde_json::to_value(d).expect("json");
    v["id"] = serde_json::Value::Null;
    v
}

fn pg_store(pg: &PgServer, url: &str) -> PgStore {
    PgStore::open(url, Some(pg.password())).expect("open PostgreSQL store")
}

#[test]
fn same_results_as_sqlite() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("same");
    let mut p = pg_store(&pg, &url);
    let mut s = SqliteStore::open_in_memory().expect("sqlite");
    let sp = ingest_files(&mut p, corpus());
    let ss = ingest_files(&mut s, corpus());
    assert!(sp.reports > 10 && sp.records > 100, "{sp:?}");
    assert!(sp.tls_reports > 0 && sp.failure_reports > 0, "{sp:?}");
    assert_eq!(
        (
            sp.items,
            sp.reports,
            sp.records,
            sp.failure_reports,
            sp.tls_reports,
            sp.duplicates
        ),
        (
            ss.items,
            ss.reports,
            ss.records,
            ss.failure_reports,
            ss.tls_reports,
            ss.duplicates
        )
    );
    assert_eq!(sp.invalid, ss.invalid);
    for t in [
        Table::Reports,
        Table::Records,
        Table::FailureReports,
        Table::TlsReports,
        Table::TlsPolicies,
        Table::TlsFailures,
    ] {
        assert_eq!(
            p.count(t).expect("pg count"),
            s.count(t).expect("count"),
            "{t:?}"
        );
    }
    let (lp, ls) = (p.list(None).expect("pg list"), s.list(None).expect("list"));
    assert_eq!(keys(&lp), keys(&ls));
    // Every report shows the same details and records on both stores.
    let mut by_key = std::collections::HashMap::new();
    for r in &ls {
        by_key.insert(key(r), r.id);
    }
    let mut domains = std::collections::BTreeSet::new();
    for r in &lp {
        let sid = by_key[&key(r)];
        let dp = p.show(r.kind, r.id).expect("pg show").expect("pg has it");
        let ds = s.show(r.kind, sid).expect("show").expect("sqlite has it");
        let (mut jp, mut js) = (detail_json(&dp), detail_json(&ds));
        // Each store records when it ingested; nothing else may differ.
        jp["details"]["ingested_at"] = serde_json::Value::Null;
        js["details"]["ingested_at"] = serde_json::Value::Null;
        assert_eq!(jp, js, "{:?} {}", r.kind, r.report_id);
        if r.kind == ReportKind::Aggregate {
            domains.insert(r.domain.clone());
        }
        // Filtering by domain agrees too.
        assert_eq!(
            keys(&p.list(Some(&r.domain)).expect("pg list domain")),
            keys(&s.list(Some(&r.domain)).expect("list domain"))
        );
    }
    assert!(
        p.show(ReportKind::Aggregate, 1 << 40)
            .expect("show")
            .is_none()
    );
    // Checklist queries: same numbers for every domain.
    for d in &domains {
        assert_eq!(
            p.aggregate_days(d, 0).expect("pg"),
            s.aggregate_days(d, 0).expect("sq")
        );
        assert_eq!(
            p.volume(d, 0).expect("pg"),
            s.volume(d, 0).expect("sq"),
            "{d}"
        );
        assert_eq!(
            p.failing_sources(d, 0, 10).expect("pg"),
            s.failing_sources(d, 0, 10).expect("sq"),
            "{d}"
        );
    }
    assert!(domains.len() > 5, "{domains:?}");
    // A second run stores nothing and counts every report as a duplicate.
    let again = ingest_files(&mut p, corpus());
    assert_eq!(again.reports + again.tls_reports + again.failure_reports, 0);
    assert_eq!(
        again.duplicates,
        sp.reports + sp.tls_reports + sp.failure_reports + sp.duplicates
    );
}

/// An aggregate report `id` with `n` records, each its own source
/// (10.x.y.z numbered from 0) and count (1 to 5 in turn).
fn numbered_report(id: &str, n: u32) -> String {
    use std::fmt::Write as _;
    let mut xml = format!(
        "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>Big</org_name>\
         <email>r@big.example</email><report_id>{id}</report_id><date_range>\
         <begin>1700000000</begin><end>1700086399</end></date_range></report_metadata>\
         <policy_published><domain>example.com</domain><p>reject</p></policy_published>",
    );
    for i in 0..n {
        let _ = write!(
            xml,
            "<record><row><source_ip>10.{}.{}.{}</source_ip><count>{}</count><policy_evaluated>\
             <disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>\
             <identifiers><header_from>example.com</header_from></identifiers><auth_results>\
             <spf><domain>example.com</domain><result>fail</result></spf></auth_results></record>",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            i % 5 + 1
        );
    }
    xml.push_str("</feedback>");
    xml
}

/// A report of up to `WHOLE_REPORT_RECORDS` records is stored with one statement
/// (its header held back with its records), a longer one with its header
/// stored once that many are held and its records copied from there. On
/// either side of that limit, a report shows the same records, in the same
/// order, as on SQLite, and a second ingest counts each a duplicate and
/// stores nothing more, whether its header was held to the end or not.
#[test]
fn reports_either_side_of_the_held_records_store_as_on_sqlite() {
    use mailauth::reports::pgstore::WHOLE_REPORT_RECORDS;
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("held");
    let hold = u32::try_from(WHOLE_REPORT_RECORDS).expect("small");
    let dir = tempfile::tempdir().expect("tempdir");
    let sizes = [0, 1, hold - 1, hold, hold + 1, 2 * hold + 7];
    let files: Vec<PathBuf> = sizes
        .iter()
        .map(|&n| {
            let path = dir.path().join(format!("r{n}.xml"));
            std::fs::write(&path, numbered_report(&format!("held-{n}"), n)).expect("write");
            path
        })
        .collect();
    let mut p = pg_store(&pg, &url);
    let mut s = SqliteStore::open_in_memory().expect("sqlite");
    for store in [&mut p as &mut dyn ReportStore, &mut s] {
        let sum = ingest_files(store, files.clone());
        assert!(sum.invalid.is_empty() && sum.errors.is_empty(), "{sum:?}");
        assert_eq!((sum.reports, sum.duplicates), (sizes.len() as u64, 0));
        assert_eq!(
            sum.records,
            sizes.iter().map(|&n| u64::from(n)).sum::<u64>()
        );
    }
    let (lp, ls) = (p.list(None).expect("pg list"), s.list(None).expect("list"));
    assert_eq!(keys(&lp), keys(&ls));
    for r in &lp {
        let sid = ls.iter().find(|x| key(x) == key(r)).expect("on SQLite").id;
        let dp = p.show(r.kind, r.id).expect("pg show").expect("pg has it");
        let ds = s.show(r.kind, sid).expect("show").expect("sqlite has it");
        let (mut jp, mut js) = (detail_json(&dp), detail_json(&ds));
        jp["details"]["ingested_at"] = serde_json::Value::Null;
        js["details"]["ingested_at"] = serde_json::Value::Null;
        assert_eq!(jp, js, "{}", r.report_id);
    }
    let again = ingest_files(&mut p, files);
    assert_eq!((again.reports, again.records), (0, 0), "{again:?}");
    assert_eq!(again.duplicates, sizes.len() as u64, "{again:?}");
    assert_eq!(p.count(Table::Reports).expect("count"), sizes.len() as i64);
}

/// A plain-XML report too large to hold in memory is parsed as it is read
/// on PostgreSQL too (issue 21), stores what SQLite stores, and one over
/// the decompressed-report limit is refused with nothing written.
#[test]
fn a_large_plain_xml_file_streams_into_postgres() {
    use mailauth::reports::ingest::Source as _;
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("bigxml");
    let n = 30_000u32;
    let xml = numbered_report("big-pg", n);
    assert!(xml.len() > 8 << 20, "over the size that is streamed");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.xml");
    std::fs::write(&path, &xml).expect("write");
    let mut src = FileSource::new([path.clone()], 64 << 20);
    let item = src.next_item().expect("one item").expect("readable");
    assert!(item.stream, "not streamed");

    let mut p = pg_store(&pg, &url);
    let mut s = SqliteStore::open_in_memory().expect("sqlite");
    for store in [&mut p as &mut dyn ReportStore, &mut s] {
        let mut src = FileSource::new([path.clone()], 64 << 20);
        let sum = ingest::run(&mut src, store, &IngestLimits::default(), &mut |_| {}).expect("run");
        assert!(sum.invalid.is_empty() && sum.errors.is_empty(), "{sum:?}");
        assert_eq!((sum.reports, sum.records), (1, u64::from(n)));
    }
    let (a, b) = (p.list(None).expect("list"), s.list(None).expect("list"));
    assert_eq!(keys(&a), keys(&b));

    let url = pg.fresh_db("bigxml_limit");
    let mut tight_store = pg_store(&pg, &url);
    let tight = IngestLimits {
        max_decompressed_bytes: (xml.len() as u64) - 1,
        ..IngestLimits::default()
    };
    let mut file = std::fs::File::open(&path).expect("open");
    let err = tight_store
        .ingest_xml_stream("big.xml", &mut file, &tight)
        .expect("db ok")
        .expect_err("too large");
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    assert!(tight_store.list(None).expect("list").is_empty());
}

#[test]
fn four_concurrent_workers_equal_one_worker() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("four");
    let files = corpus();
    let mut single = SqliteStore::open_in_memory().expect("sqlite");
    let one = ingest_files(&mut single, files.clone());
    // Four workers, each with its own connection, race through the same
    // list, each starting at a different place.
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|w| {
            let (url, pw, barrier) = (url.clone(), pg.password().to_owned(), barrier.clone());
            let mut mine = files.clone();
            mine.rotate_left(w * files.len() / 4);
            std::thread::spawn(move || {
                let mut store = PgStore::open(&url, Some(&pw)).expect("worker opens");
                barrier.wait();
                ingest_files(&mut store, mine)
            })
        })
        .collect();
    let sums: Vec<Summary> = handles
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .collect();
    let total = |f: fn(&Summary) -> u64| sums.iter().map(f).sum::<u64>();
    assert_eq!(total(|s| s.reports), one.reports, "{sums:?}");
    assert_eq!(total(|s| s.records), one.records);
    assert_eq!(total(|s| s.tls_reports), one.tls_reports);
    assert_eq!(total(|s| s.failure_reports), one.failure_reports);
    let stored = one.reports + one.tls_reports + one.failure_reports;
    assert_eq!(
        total(|s| s.duplicates),
        4 * (stored + one.duplicates) - stored
    );
    let p = pg_store(&pg, &url);
    assert_eq!(
        keys(&p.list(None).expect("list")),
        keys(&single.list(None).expect("list"))
    );
    assert_eq!(
        p.count(Table::Records).expect("count"),
        single.count(Table::Records).expect("count")
    );
}

fn make_maildir(md: &Path, files: &[PathBuf]) {
    for d in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(d)).expect("mkdir");
    }
    for (i, f) in files.iter().enumerate() {
        std::fs::copy(f, md.join("new").join(format!("{i}.msg"))).expect("copy message");
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| rd.count())
}

fn mailauth(pg: &PgServer) -> Command {
    util::Cmd::new()
        .env("MAILAUTH_STORE_PASSWORD", pg.password())
        .env_remove("MAILAUTH_STORE")
        .env_remove("MAILAUTH_DB")
        .command()
}

#[test]
fn four_worker_processes_on_four_maildir_copies() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("procs");
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = corpus();
    let mut single = SqliteStore::open_in_memory().expect("sqlite");
    let one = ingest_files(&mut single, files.clone());
    let mds: Vec<PathBuf> = (0..4).map(|i| tmp.path().join(format!("md{i}"))).collect();
    for md in &mds {
        make_maildir(md, &files);
    }
    let children: Vec<_> = mds
        .iter()
        .map(|md| {
            mailauth(&pg)
                .args(["reports", "--store", &url, "ingest", "--json", "--maildir"])
                .arg(md)
                .output_spawn()
        })
        .collect();
    let mut sums = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("worker exits");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value = serde_json::from_str(&stdout).expect("JSON summary");
        sums.push(s);
    }
    let total = |k: &str| sums.iter().map(|s| s[k].as_u64().expect(k)).sum::<u64>();
    assert_eq!(total("reports"), one.reports, "{sums:?}");
    assert_eq!(total("records"), one.records);
    assert_eq!(total("tls_reports"), one.tls_reports);
    assert_eq!(total("failure_reports"), one.failure_reports);
    // Every message left new/: stored ones and the losers of a race are in
    // the archive, the rest in the invalid folder.
    for md in &mds {
        assert_eq!(count_files(&md.join("new")), 0, "{}", md.display());
        assert_eq!(
            count_files(&md.join(".Archive/cur")) + count_files(&md.join(".Invalid/cur")),
            files.len()
        );
        assert_eq!(count_files(&md.join(".Invalid/cur")), one.invalid.len());
    }
    let p = pg_store(&pg, &url);
    assert_eq!(
        keys(&p.list(None).expect("list")),
        keys(&single.list(None).expect("list"))
    );
}

trait SpawnOutput {
    fn output_spawn(&mut self) -> std::process::Child;
}

impl SpawnOutput for Command {
    fn output_spawn(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn mailauth")
    }
}

#[test]
fn concurrent_first_opens_migrate_once_and_newer_schema_is_refused() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("schema");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (url, pw) = (url.clone(), pg.password().to_owned());
            std::thread::spawn(move || PgStore::open(&url, Some(&pw)).map(|s| s.found_version()))
        })
        .collect();
    let found: Vec<i64> = handles
        .into_iter()
        .map(|h| h.join().expect("thread").expect("opens"))
        .collect();
    assert!(
        found.iter().all(|&v| v == 0 || v == SCHEMA_VERSION),
        "{found:?}"
    );
    let mut c = pg.connect(&url);
    let rows: i64 = c
        .query_one("SELECT count(*) FROM schema_version", &[])
        .expect("count")
        .get(0);
    assert_eq!(rows, SCHEMA_VERSION);
    c.execute(
        "INSERT INTO schema_version VALUES ($1)",
        &[&(SCHEMA_VERSION + 1)],
    )
    .expect("bump");
    match PgStore::open(&url, Some(pg.password())) {
        Err(StoreError::NewerSchema {
            found,
            known,
            store,
        }) => {
            assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            assert!(!store.to_string().contains(pg.password()));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    // The CLI refuses too, and says why.
    let out = mailauth(&pg)
        .args(["reports", "--store", &url, "list"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer than this program knows"), "{err}");
}

#[test]
fn wrong_password_fails_without_printing_it() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("pw");
    let out = mailauth(&pg)
        .env("MAILAUTH_STORE_PASSWORD", "not-the-password")
        .args(["reports", "--store", &url, "list"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    // A password file works where the environment is empty.
    let tmp = tempfile::tempdir().expect("tempdir");
    let pwf = tmp.path().join("pw");
    std::fs::write(&pwf, format!("{}\n", pg.password())).expect("write");
    // `list` reads only: a fresh database is first migrated.
    let out = mailauth(&pg)
        .env_remove("MAILAUTH_STORE_PASSWORD")
        .args(["store", "migrate", "--store", &url, "--store-password-file"])
        .arg(&pwf)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = mailauth(&pg)
        .env_remove("MAILAUTH_STORE_PASSWORD")
        .args(["reports", "--store", &url, "--store-password-file"])
        .arg(&pwf)
        .args(["list", "--format", "json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    // A password in the URL is refused before connecting.
    let with_pw = url.replace("mailauth@", "mailauth:hunter2@");
    let out = mailauth(&pg)
        .args(["reports", "--store", &with_pw, "list"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("contains a password") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn store_migrate_and_idempotent_copy() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("copy");
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("r.db");
    let mut s = SqliteStore::open(&db).expect("sqlite");
    let sum = ingest_files(&mut s, corpus());
    drop(s);

    let out = mailauth(&pg)
        .args(["store", "migrate", "--store", &url])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("migrated schema 0 -> {SCHEMA_VERSION}")),
        "{text}"
    );
    let out = mailauth(&pg)
        .args(["store", "migrate", "--store", &url])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is current"), "{text}");

    let copy = |pg: &PgServer| -> serde_json::Value {
        let out = mailauth(pg)
            .args(["store", "copy", "--json", "--from"])
            .arg(format!("sqlite://{}", db.display()))
            .args(["--to", &url])
            .output()
            .expect("run copy");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("copy JSON")
    };
    let first = copy(&pg);
    assert_eq!(first["reports"], sum.reports);
    assert_eq!(first["records"], sum.records);
    assert_eq!(first["tls_reports"], sum.tls_reports);
    assert_eq!(first["failure_reports"], sum.failure_reports);
    assert_eq!(first["skipped"], 0);
    let second = copy(&pg);
    assert_eq!(
        (
            &second["reports"],
            &second["records"],
            &second["tls_reports"]
        ),
        (&0.into(), &0.into(), &0.into())
    );
    assert_eq!(
        second["skipped"],
        sum.reports + sum.tls_reports + sum.failure_reports
    );
    // The copy reads like the original, details included.
    let s = SqliteStore::open(&db).expect("sqlite");
    let p = pg_store(&pg, &url);
    let (lp, ls) = (p.list(None).expect("list"), s.list(None).expect("list"));
    assert_eq!(keys(&lp), keys(&ls));
    for r in &ls {
        let twin = lp.iter().find(|x| key(x) == key(r)).expect("copied");
        let a = detail_json(&p.show(twin.kind, twin.id).expect("show").expect("some"));
        let b = detail_json(&s.show(r.kind, r.id).expect("show").expect("some"));
        assert_eq!(a, b, "{:?} {}", r.kind, r.report_id);
    }
}

/// `store:` in the config (URL plus a password file beside the config)
/// drives `reports`, the dashboards and `store migrate`; `--db` and
/// `MAILAUTH_STORE` still win over it.
#[test]
fn config_store_drives_the_store_commands() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("config");
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("pg.pw"), format!("{}\n", pg.password())).expect("pw");
    let config = tmp.path().join("mailauth.yaml");
    std::fs::write(
        &config,
        format!(
            "store:\n  url: {url}\n  password_file: pg.pw\ndomains:\n  example.com:\n    dmarc: {{ p: none }}\n"
        ),
    )
    .expect("config");
    let run = |args: &[&str], env: Option<(&str, &str)>| {
        let mut c = mailauth(&pg);
        c.env_remove("MAILAUTH_STORE_PASSWORD")
            .current_dir(tmp.path())
            .arg("-c")
            .arg(&config)
            .args(args);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        let out = c.output().expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    run(
        &[
            "reports",
            "ingest",
            &data().join("aggregate/nice-input.xml").to_string_lossy(),
            &data().join("tlsrpt/rfc8460.json").to_string_lossy(),
        ],
        None,
    );
    let p = pg_store(&pg, &url);
    assert_eq!(p.count(Table::Reports).expect("count"), 1);
    assert_eq!(p.count(Table::TlsReports).expect("count"), 1);
    let summary: serde_json::Value =
        serde_json::from_str(&run(&["reports", "summary", "--offline", "--json"], None))
            .expect("json");
    assert!(
        summary["totals"]["messages"].as_i64() > Some(0),
        "{summary}"
    );
    assert!(run(&["store", "migrate"], None).contains("is current"));
    // A flag or MAILAUTH_STORE wins over the config: an empty SQLite file
    // (made first: `list` reads only and never creates a store).
    run(&["store", "migrate", "--store", "flag.db"], None);
    run(&["store", "migrate", "--store", "sqlite://env.db"], None);
    let listed = |out: String| serde_json::from_str::<serde_json::Value>(&out).expect("json");
    assert_eq!(
        listed(run(&["reports", "list", "--format", "json"], None))
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        listed(run(
            &["reports", "--db", "flag.db", "list", "--format", "json"],
            None
        )),
        serde_json::json!([])
    );
    assert_eq!(
        listed(run(
            &["reports", "list", "--format", "json"],
            Some(("MAILAUTH_STORE", "sqlite://env.db"))
        )),
        serde_json::json!([])
    );
    assert!(tmp.path().join("flag.db").exists() && tmp.path().join("env.db").exists());
}

/// 2026-11-27T00:00:00Z: the generated reports cover the days before it.
const NOW: i64 = 1_795_737_600;

/// One aggregate report of `domain` for the day starting at `begin`:
/// `pass` messages aligned, `fail` messages from a stranger.
fn daily_report(domain: &str, begin: i64, pass: u64, fail: u64) -> String {
    let record = |ip: &str, n: u64, v: &str| {
        format!(
            " <record>\n  <row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated><disposition>none</disposition><dkim>{v}</dkim><spf>{v}</spf></policy_evaluated></row>\n  <identifiers><header_from>{domain}</header_from></identifiers>\n  <auth_results><spf><domain>{domain}</domain><result>{v}</result></spf></auth_results>\n </record>\n"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n <report_metadata>\n  <org_name>receiver.test</org_name>\n  <email>dmarc@receiver.test</email>\n  <report_id>{domain}-{begin}</report_id>\n  <date_range><begin>{begin}</begin><end>{end}</end></date_range>\n </report_metadata>\n <policy_published>\n  <domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><pct>100</pct>\n </policy_published>\n{}{}</feedback>\n",
        record("198.51.100.10", pass, "pass"),
        record("203.0.113.50", fail, "fail"),
        end = begin + 86_399
    )
}

/// `mailauth checklist` and the `plan` hint read a PostgreSQL store like
/// an SQLite one: same checklist, same hint.
#[test]
fn checklist_and_plan_hint_read_postgres() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("checklist");
    let tmp = tempfile::tempdir().expect("tempdir");
    let reports = tmp.path().join("reports");
    std::fs::create_dir(&reports).expect("mkdir");
    for day in 1..=16 {
        let begin = NOW - day * 86_400;
        std::fs::write(
            reports.join(format!("{day}.xml")),
            daily_report("ready.test", begin, 1000, 5),
        )
        .expect("write report");
    }
    let config = tmp.path().join("mailauth.yaml");
    std::fs::write(
        &config,
        "provider: { kind: zonefile, dir: zones }\ndomains:\n  ready.test:\n    spf: { ip4: [198.51.100.10] }\n    dmarc: { p: none, rua: [mailto:dmarc@ready.test] }\n",
    )
    .expect("config");
    std::fs::create_dir(tmp.path().join("zones")).expect("zones");
    let sqlite = tmp.path().join("r.db");
    let run = |args: &[&str], store: &[&str]| {
        let out = mailauth(&pg)
            .env("MAILAUTH_NOW", NOW.to_string())
            .env("NO_COLOR", "1")
            .current_dir(tmp.path())
            .arg("-c")
            .arg(&config)
            .args(args)
            .args(store)
            .output()
            .expect("run");
        assert!(
            out.status.code().is_some_and(|c| c <= 2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let pg_flags = ["--store", url.as_str()];
    let lite_flags = ["--db", sqlite.to_str().expect("utf-8 path")];
    let reports = reports.to_str().expect("utf-8 path");
    run(&["reports", "ingest", reports], &pg_flags);
    run(&["reports", "ingest", reports], &lite_flags);

    let hint_pg = run(&["plan"], &pg_flags);
    assert!(hint_pg.contains("can advance to"), "{hint_pg}");
    assert_eq!(hint_pg, run(&["plan"], &lite_flags));
    let none = run(&["plan"], &["--db", "absent.db"]);
    assert!(!none.contains("can advance"), "{none}");
    assert!(!tmp.path().join("absent.db").exists());

    let checklist = |store: &[&str]| {
        run(
            &[
                "checklist",
                "ready.test",
                "--format",
                "json",
                "--nameserver",
                "127.0.0.1:9",
                "--timeout",
                "0.2",
            ],
            store,
        )
    };
    // The dead nameserver's timeout message says how long the resolver
    // waited, which varies from run to run; everything else must match.
    let on_pg = mask_waits(&checklist(&pg_flags));
    assert!(on_pg.contains("\"items\""), "{on_pg}");
    assert_eq!(on_pg, mask_waits(&checklist(&lite_flags)));
    assert_ne!(
        on_pg,
        mask_waits(&checklist(&["--db", "absent.db"])),
        "the store was read"
    );
}

/// Replaces the N of every "within Nms" with `#`.
fn mask_waits(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("within ") {
        let (head, tail) = rest.split_at(i + "within ".len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with("ms") {
            out.push('#');
            rest = &tail[digits..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

// ------------------------------------------------------------------ TLS

/// `sslmode` in the store URL against a real PostgreSQL 15 with TLS on (a
/// certificate for `localhost` only, from a throwaway CA).
mod tls {
    use super::*;
    use support::https::TestCa;
    use support::postgres::RecordingProxy;

    fn tls_server() -> Option<(TestCa, PgServer)> {
        let ca = TestCa::try_new()?;
        let (cert, key) = ca.issue("pg", &["localhost"]);
        let server = PgServer::start_tls(&cert, &key)?;
        Some((ca, server))
    }

    fn connect_error(url: &str, password: &str) -> String {
        match PgStore::open(url, Some(password)) {
            Ok(_) => panic!("{url}: connected"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn postgres_sslmode_require_keeps_the_password_off_the_wire() {
        let Some((_ca, server)) = tls_server() else {
            return;
        };
        let db = server.fresh_db("clear");
        let proxy = RecordingProxy::start(server.port());
        let via = db.replace(
            &format!(":{}/", server.port()),
            &format!(":{}/", proxy.port()),
        );
        let pw = server.password().to_string();
        // The server asks for the password in clear: without TLS the
        // proxy sees it (so it would see it with TLS too if it crossed).
        PgStore::open(&format!("{via}?sslmode=disable"), Some(&pw)).expect("plain TCP");
        assert!(
            proxy.saw(pw.as_bytes()),
            "the recorder sees a clear password"
        );
        proxy.sent.lock().expect("sent").clear();
        let store =
            PgStore::open(&format!("{via}?sslmode=require"), Some(&pw)).expect("TLS connects");
        store.count(Table::Reports).expect("a query over TLS");
        assert!(
            !proxy.saw(pw.as_bytes()),
            "with sslmode=require the password crossed in clear"
        );
        assert!(
            !proxy.sent.lock().expect("sent").is_empty(),
            "the connection went through the recorder"
        );
    }

    #[test]
    fn postgres_sslmode_require_refuses_a_server_without_tls() {
        let Some(server) = PgServer::shared() else {
            return;
        };
        let db = server.fresh_db("nossl");
        let err = connect_error(&format!("{db}?sslmode=require"), server.password());
        assert!(err.contains("cannot connect"), "{err}");
        assert!(err.contains("sslmode=require"), "names the mode: {err}");
    }

    #[test]
    fn postgres_sslmode_verify_full_checks_the_ca_and_the_host_name() {
        let Some((ca, server)) = tls_server() else {
            return;
        };
        let Some(other_ca) = TestCa::try_new() else {
            return;
        };
        let pw = server.password().to_string();
        let db = server.fresh_db("verify");
        let by_name = db.replace("127.0.0.1", "localhost");
        let root = |ca: &TestCa| format!("sslrootcert={}", ca.cert().display());
        // The right CA and the name in the certificate: connects.
        let store = PgStore::open(
            &format!("{by_name}?sslmode=verify-full&{}", root(&ca)),
            Some(&pw),
        )
        .expect("verify-full with the right CA and name");
        store.count(Table::Reports).expect("query");
        // Another CA: refused.
        let err = connect_error(
            &format!("{by_name}?sslmode=verify-full&{}", root(&other_ca)),
            &pw,
        );
        assert!(err.contains("certificate"), "{err}");
        // The right CA, a name the certificate does not hold: refused.
        let err = connect_error(&format!("{db}?sslmode=verify-full&{}", root(&ca)), &pw);
        assert!(err.contains("certificate"), "{err}");
        // require with a CA file checks the chain (libpq: as verify-ca),
        // not the name.
        PgStore::open(&format!("{db}?sslmode=require&{}", root(&ca)), Some(&pw))
            .expect("require + sslrootcert: chain checked, name not");
        let err = connect_error(&format!("{db}?sslmode=require&{}", root(&other_ca)), &pw);
        assert!(err.contains("certificate"), "{err}");
        // Modes that could fall back to plain TCP are refused up front.
        let err = connect_error(&format!("{by_name}?sslmode=prefer"), &pw);
        assert!(err.contains("sslmode=prefer"), "{err}");
        // An unreadable CA file is named.
        let err = connect_error(
            &format!("{by_name}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            &pw,
        );
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}

/// A column of another type than the store reads (a store altered by
/// hand) is an error naming the column, never a panic: every cell is read
/// with `try_get`.
#[test]
fn a_column_of_another_type_is_an_error_naming_it() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("coltype");
    let mut p = pg_store(&pg, &url);
    let sum = ingest_files(&mut p, corpus());
    assert!(sum.reports > 0 && sum.tls_reports > 0, "{sum:?}");
    let tls_id = p
        .list(None)
        .expect("list before")
        .iter()
        .find(|r| r.kind == ReportKind::Tls)
        .map(|r| r.id)
        .expect("a TLS report");
    drop(p);
    let mut c = pg.connect(&url);
    c.batch_execute(
        "ALTER TABLE reports ALTER COLUMN record_count TYPE text; \
         ALTER TABLE tls_policies ALTER COLUMN successful_count TYPE numeric",
    )
    .expect("alter");
    let p = pg_store(&pg, &url);
    let column = |e: &StoreError| match e {
        StoreError::Column { column, .. } => column.clone(),
        other => panic!("expected a column error, got {other:?}"),
    };
    let err = p.list(None).expect_err("record_count is text");
    assert_eq!(column(&err), "record_count", "{err}");
    assert!(
        err.to_string()
            .contains("column record_count is text, expected an integer"),
        "{err}"
    );
    let err = p
        .show(ReportKind::Tls, tls_id)
        .expect_err("successful_count is numeric");
    assert_eq!(column(&err), "successful_count", "{err}");
    // The CLI says the same and fails.
    let out = mailauth(&pg)
        .args(["reports", "--store", &url, "list"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("column record_count"), "{stderr}");
}

/// Every table the store counts.
const TABLES: [Table; 6] = [
    Table::Reports,
    Table::Records,
    Table::FailureReports,
    Table::TlsReports,
    Table::TlsPolicies,
    Table::TlsFailures,
];

fn counts(p: &PgStore) -> Vec<i64> {
    TABLES.iter().map(|&t| p.count(t).expect("count")).collect()
}

/// Writes `daily_report`s of `domains` beginning `days` days before
/// `NOW` into `dir`; returns the files with their `date_begin`.
fn daily_files(dir: &Path, domains: &[&str], days: &[i64]) -> Vec<(PathBuf, i64)> {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut out = Vec::new();
    for d in domains {
        for &day in days {
            let begin = NOW - day * 86_400;
            let path = dir.join(format!("{d}-{day}.xml"));
            std::fs::write(&path, daily_report(d, begin, 100 + day as u64, 3))
                .expect("write report");
            out.push((path, begin));
        }
    }
    out
}

/// Monthly partitions of `table` (without the two edges).
fn month_partitions(c: &mut postgres::Client, table: &str) -> Vec<String> {
    c.query(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = $1::text::regclass AND c.relname ~ '_p[0-9]{4}_[0-9]{2}$' \
         ORDER BY 1",
        &[&table],
    )
    .expect("list partitions")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Schema 5 partitions the aggregate tables by month: `store migrate` of
/// a version-4 store with data keeps every row, every id and every
/// `reports show`, spreads the rows over monthly partitions, and ingest
/// goes on without reusing an id.
#[test]
fn migration_to_partitions_keeps_every_row() {
    let Some(pg) = PgServer::shared() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let from = pg.fresh_db("v4src");
    let to = pg.fresh_db("v4");
    let mut files = corpus();
    let days: Vec<i64> = (0..8).map(|k| 3 + k * 23).collect();
    files.extend(
        daily_files(&tmp.path().join("daily"), &["old.test", "new.test"], &days)
            .into_iter()
            .map(|(p, _)| p),
    );
    let mut src = pg_store(&pg, &from);
    let sum = ingest_files(&mut src, files);
    assert!(sum.reports > 16 && sum.tls_reports > 0, "{sum:?}");
    pg.store_at_version(&from, &to, 4);
    match PgStore::open_read_only(&to, Some(pg.password())) {
        Err(StoreError::OlderSchema { found: 4, .. }) => {}
        other => panic!("expected a version-4 store, got {other:?}"),
    }

    let out = mailauth(&pg)
        .args(["store", "migrate", "--store", &to])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("migrated schema 4 -> {SCHEMA_VERSION}")),
        "{text}"
    );

    let dst = pg_store(&pg, &to);
    assert_eq!(counts(&dst), counts(&src));
    let (ld, ls) = (dst.list(None).expect("list"), src.list(None).expect("list"));
    assert_eq!(ld, ls, "same rows, same ids");
    for r in &ls {
        let a = serde_json::to_value(dst.show(r.kind, r.id).expect("show").expect("some"));
        let b = serde_json::to_value(src.show(r.kind, r.id).expect("show").expect("some"));
        assert_eq!(a.expect("json"), b.expect("json"), "{:?} {}", r.kind, r.id);
    }
    let show = |url: &str, id: i64| {
        let out = mailauth(&pg)
            .args(["reports", "--store", url, "show", &id.to_string(), "--json"])
            .output()
            .expect("run show");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let agg = ls
        .iter()
        .find(|r| r.kind == ReportKind::Aggregate && r.records > 1)
        .expect("an aggregate report");
    assert_eq!(show(&to, agg.id), show(&from, agg.id));

    // Rows sit in the partitions of their months, the same ones ingest
    // makes.
    let (mut cs, mut cd) = (pg.connect(&from), pg.connect(&to));
    for table in ["reports", "policy_published", "records"] {
        let parts = month_partitions(&mut cd, table);
        assert!(parts.len() >= 8, "{table}: {parts:?}");
        assert_eq!(parts, month_partitions(&mut cs, table), "{table}");
    }
    let misplaced: i64 = cd
        .query_one(
            "SELECT count(*) FROM records c JOIN reports r ON r.id = c.report_id \
             WHERE c.date_begin <> r.date_begin OR c.tableoid::regclass::text <> \
             replace(r.tableoid::regclass::text, 'reports_', 'records_')",
            &[],
        )
        .expect("check placement")
        .get(0);
    assert_eq!(misplaced, 0);

    // Ingest goes on: a new report gets an id past every old one.
    let max_id = ls
        .iter()
        .filter(|r| r.kind == ReportKind::Aggregate)
        .map(|r| r.id)
        .max();
    let mut dst = dst;
    let fresh = daily_report("after.test", NOW + 40 * 86_400, 7, 1);
    let found = dst
        .ingest_item("after.xml", fresh.as_bytes(), &IngestLimits::default())
        .expect("store")
        .expect("parse");
    assert_eq!(found.len(), 1);
    let new = dst
        .list(Some("after.test"))
        .expect("list")
        .pop()
        .expect("stored");
    assert!(Some(new.id) > max_id, "{} after {max_id:?}", new.id);
}

/// `reports prune` drops the partitions of the months before the cutoff
/// and deletes row by row only in the month holding it: afterwards the
/// store reads (counts, list, dashboards, `reports summary`) as a store
/// that never had the pruned reports. A worker that still believes a
/// dropped month exists stores into it again.
#[test]
fn prune_drops_old_months_and_reads_as_if_never_stored() {
    let Some(pg) = PgServer::shared() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (all_url, kept_url) = (pg.fresh_db("prune_all"), pg.fresh_db("prune_kept"));
    // 2026-11-26 back to 2026-05-01: seven months; the cutoff (70 days
    // back, 2026-09-18) falls inside September, between the reports of
    // 09-15 and 09-24.
    let days: Vec<i64> = (1..=210).step_by(9).collect();
    let cutoff = NOW - 70 * 86_400;
    let mut files = daily_files(&tmp.path().join("d"), &["a.test", "b.test"], &days);
    // A reporter's clock at zero: the edge partition before 1970.
    let edge = tmp.path().join("edge.xml");
    std::fs::write(&edge, daily_report("a.test", -86_400 * 400, 5, 5)).expect("write");
    files.push((edge, -86_400 * 400));
    let run = |url: &str, args: &[&str]| -> String {
        let out = mailauth(&pg)
            .env("MAILAUTH_NOW", NOW.to_string())
            .args(["reports", "--store", url])
            .args(args)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let all: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let kept: Vec<PathBuf> = files
        .iter()
        .filter(|(_, b)| *b >= cutoff)
        .map(|(p, _)| p.clone())
        .collect();
    let old = files.len() - kept.len();
    assert!(kept.len() > 4 && old > 10, "{} {old}", kept.len());
    let mut worker = pg_store(&pg, &all_url);
    ingest_files(&mut worker, all);
    let mut kept_store = pg_store(&pg, &kept_url);
    ingest_files(&mut kept_store, kept);
    // The dashboards' rollup is built before the prune, so the prune must
    // invalidate it.
    run(&all_url, &["summary", "--json"]);

    let mut c = pg.connect(&all_url);
    let before = month_partitions(&mut c, "records");
    assert!(
        before.contains(&"records_p2026_05".to_owned()),
        "{before:?}"
    );
    let dry: serde_json::Value =
        serde_json::from_str(&run(&all_url, &["prune", "--older-than", "70d", "--json"]))
            .expect("json");
    assert_eq!(dry["reports"], old as u64);
    assert_eq!(dry["records"], 2 * old as u64);
    assert_eq!(
        month_partitions(&mut c, "records"),
        before,
        "a dry run drops nothing"
    );
    let done: serde_json::Value = serde_json::from_str(&run(
        &all_url,
        &["prune", "--older-than", "70d", "--yes", "--json"],
    ))
    .expect("json");
    assert_eq!(
        (&done["reports"], &done["records"]),
        (&dry["reports"], &dry["records"])
    );

    // May to August are gone as tables; September, holding the cutoff,
    // keeps its later days.
    for table in ["reports", "policy_published", "records"] {
        let after = month_partitions(&mut c, table);
        assert_eq!(
            after,
            ["2026_09", "2026_10", "2026_11"]
                .map(|m| format!("{table}_p{m}"))
                .to_vec(),
            "{table}"
        );
    }
    // 09-24 of both domains stays, 09-15 went row by row.
    let september = c
        .query_one(
            "SELECT count(*), min(date_begin) FROM reports_p2026_09",
            &[],
        )
        .expect("count");
    assert_eq!(september.get::<_, i64>(0), 2);
    assert!(september.get::<_, i64>(1) >= cutoff);

    assert_eq!(counts(&worker), counts(&kept_store));
    assert_eq!(
        keys(&worker.list(None).expect("list")),
        keys(&kept_store.list(None).expect("list"))
    );
    for args in [
        &["summary", "--json"][..],
        &["summary", "--json", "--since", "2026-09-01T00:00:00Z"],
        &["summary", "--json", "--domain", "a.test", "--offline"],
        &["summary", "--domain", "b.test", "--offline"],
    ] {
        assert_eq!(run(&all_url, args), run(&kept_url, args), "{args:?}");
    }

    // `worker` saw August's partitions before the prune dropped them: its
    // next August report fails once on the missing partition, then goes
    // into a new one.
    let august = daily_report("late.test", NOW - 100 * 86_400, 9, 0);
    let found = worker
        .ingest_item("late.xml", august.as_bytes(), &IngestLimits::default())
        .expect("store after prune")
        .expect("parse");
    assert_eq!(found.len(), 1);
    assert!(month_partitions(&mut c, "records").contains(&"records_p2026_08".to_owned()));
}

/// Eight workers that all meet months no partition exists for yet create
/// each month's partitions once and store each report once.
#[test]
fn eight_workers_create_each_month_once() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("eight");
    let tmp = tempfile::tempdir().expect("tempdir");
    // Twelve months, two reports a month per domain.
    let days: Vec<i64> = (0..24).map(|k| 1 + k * 15).collect();
    let files: Vec<PathBuf> = daily_files(tmp.path(), &["x.test", "y.test", "z.test"], &days)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    drop(pg_store(&pg, &url)); // migrated once, before the race
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let (url, pw, barrier) = (url.clone(), pg.password().to_owned(), barrier.clone());
            let mut mine = files.clone();
            mine.rotate_left(w * files.len() / 8);
            if w % 2 == 1 {
                mine.reverse();
            }
            std::thread::spawn(move || {
                let mut store = PgStore::open(&url, Some(&pw)).expect("worker opens");
                barrier.wait();
                ingest_files(&mut store, mine)
            })
        })
        .collect();
    let sums: Vec<Summary> = handles
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .collect();
    let n = files.len() as u64;
    assert!(sums.iter().all(|s| s.errors.is_empty()), "{sums:?}");
    assert_eq!(sums.iter().map(|s| s.reports).sum::<u64>(), n, "{sums:?}");
    assert_eq!(sums.iter().map(|s| s.duplicates).sum::<u64>(), 7 * n);
    let p = pg_store(&pg, &url);
    assert_eq!(p.count(Table::Reports).expect("count"), n as i64);
    assert_eq!(p.count(Table::Records).expect("count"), 2 * n as i64);
    let mut c = pg.connect(&url);
    let months: i64 = c
        .query_one(
            "SELECT count(DISTINCT date_trunc('month', to_timestamp(date_begin) AT TIME ZONE 'UTC')) \
             FROM reports",
            &[],
        )
        .expect("months")
        .get(0);
    assert!(months >= 12, "{months}");
    for table in ["reports", "policy_published", "records"] {
        assert_eq!(
            month_partitions(&mut c, table).len() as i64,
            months,
            "{table}"
        );
    }
}

fn aggregate_sample(name: &str) -> Vec<u8> {
    std::fs::read(data().join("aggregate").join(name)).expect("read sample")
}

/// Items written in a group (as `reports ingest` writes files) are
/// committed once, together: another connection sees none of them before
/// `commit_group`; a bad item among them (cut inside its first record,
/// after its report's row was written) is undone alone, and the items
/// before and after it are kept, as one transaction per item kept them.
#[test]
fn a_group_commits_its_items_once_and_undoes_a_bad_one_alone() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("group");
    let mut store = pg_store(&pg, &url);
    let other = pg_store(&pg, &url);
    let limits = IngestLimits::default();
    let google = aggregate_sample("google.xml");
    let text = String::from_utf8_lossy(&google);
    let cut = text.find("<record>").expect("a record") + "<record>".len() + 5;
    // A report longer than the records held with its header, cut after
    // them: its row and its first records were written.
    let hold = u32::try_from(mailauth::reports::pgstore::WHOLE_REPORT_RECORDS).expect("small");
    let long = numbered_report("long", hold + 50);
    let long_cut = long
        .match_indices("<record>")
        .nth(hold as usize + 10)
        .expect("record")
        .0
        + 20;
    assert!(store.begin_group().expect("begin a group"));
    for name in ["acme.xml", "aol.xml"] {
        let found = store
            .ingest_item(name, &aggregate_sample(name), &limits)
            .expect("database")
            .expect("a good item");
        assert_eq!(found.len(), 1);
        assert!(!found[0].duplicate);
        if name == "acme.xml" {
            for bad in [&google[..cut], &long.as_bytes()[..long_cut]] {
                let bad = store
                    .ingest_item("cut.xml", bad, &limits)
                    .expect("database");
                assert!(bad.is_err(), "{bad:?}");
            }
        }
    }
    assert_eq!(other.count(Table::Reports).expect("count"), 0);
    assert_eq!(other.count(Table::Records).expect("count"), 0);
    store.commit_group().expect("commit the group");
    let mut want = SqliteStore::open_in_memory().expect("sqlite");
    for name in ["acme.xml", "aol.xml"] {
        want.ingest_item(name, &aggregate_sample(name), &limits)
            .expect("database")
            .expect("a good item");
    }
    assert_eq!(
        keys(&other.list(None).expect("list")),
        keys(&want.list(None).expect("list"))
    );
    assert_eq!(
        other.count(Table::Records).expect("count"),
        want.count(Table::Records).expect("count")
    );
    // The store goes on after the group, one transaction per item.
    let found = store
        .ingest_item("google.xml", &google, &limits)
        .expect("database")
        .expect("a good item");
    assert!(!found[0].duplicate);
    assert_eq!(other.count(Table::Reports).expect("count"), 3);
}

/// Two workers' open groups, each holding a report the other then claims,
/// wait on each other. PostgreSQL breaks the deadlock by failing one
/// worker's statement; that worker commits its group's earlier items,
/// which releases the report the other waits for, and runs the item again
/// in a new transaction. Both finish without an error, and each report is
/// stored once, the second claim of each being a duplicate.
#[test]
fn crossed_groups_get_past_a_deadlock() {
    crossed_groups(|store, item| {
        store
            .ingest_item("item", item, &IngestLimits::default())
            .expect("database")
            .expect("a good item")
    });
}

/// The same, for items parsed beforehand (as `reports ingest` stores
/// files): each is one small report, stored by the session's function
/// without a savepoint of its own. The function catches the deadlock,
/// undoes the report alone and says so; the store commits the group's
/// earlier items and stores the report again.
#[test]
fn crossed_groups_of_parsed_items_get_past_a_deadlock() {
    use mailauth::reports::parse::ParsedItem;
    crossed_groups(|store, item| {
        let parsed = ParsedItem::parse(item, &IngestLimits::default(), 100)
            .expect("parses")
            .expect("held");
        store
            .store_parsed("item", &parsed)
            .expect("database")
            .expect("a good item")
    });
}

/// Two groups, on two connections, each holding a report the other then
/// claims: stored with `store`, every report once.
fn crossed_groups(store: fn(&mut PgStore, &[u8]) -> Vec<mailauth::reports::parse::Found>) {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("crossed");
    let limits = IngestLimits::default();
    let (x, y) = (aggregate_sample("acme.xml"), aggregate_sample("aol.xml"));
    // The two reports' months exist beforehand (made by other reports of
    // those months, committed): a group that makes a month's partitions
    // holds their lock until it commits, which would keep the second
    // group below from even starting in this one thread.
    let mut months = pg_store(&pg, &url);
    for item in [&x, &y] {
        let other = String::from_utf8_lossy(item).replace("<report_id>", "<report_id>m-");
        months
            .ingest_item("month", other.as_bytes(), &limits)
            .expect("database")
            .expect("a good item");
    }
    let mut first = pg_store(&pg, &url);
    let mut second = pg_store(&pg, &url);
    for (s, item) in [(&mut first, &x), (&mut second, &y)] {
        assert!(s.begin_group().expect("begin a group"));
        let found = store(s, item);
        assert!(!found[0].duplicate);
    }
    let crossed = [(first, y), (second, x)].map(|(mut s, item)| {
        std::thread::spawn(move || {
            let found = store(&mut s, &item);
            let committed = s.commit_group();
            (found, committed)
        })
    });
    for h in crossed {
        let (found, committed) = h.join().expect("worker");
        assert!(found[0].duplicate, "{found:?}");
        committed.expect("commit the group");
    }
    assert_eq!(months.count(Table::Reports).expect("count"), 4);
}

/// A group whose connection is lost before its commit: the commit is an
/// error (the ingest loop then finishes none of its items), and nothing of
/// the group is stored.
#[test]
fn a_group_whose_connection_is_lost_fails_its_commit() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("lostgroup");
    let db = url.rsplit('/').next().expect("a database name").to_owned();
    let mut store = pg_store(&pg, &url);
    let limits = IngestLimits::default();
    assert!(store.begin_group().expect("begin a group"));
    store
        .ingest_item("acme.xml", &aggregate_sample("acme.xml"), &limits)
        .expect("database")
        .expect("a good item");
    let ended = pg
        .admin()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND state = 'idle in transaction'",
            &[&db],
        )
        .expect("end the group's session");
    assert_eq!(ended.get::<_, i64>(0), 1);
    let err = store.commit_group().expect_err("the group was lost");
    assert!(err.to_string().contains("commit a group of items"), "{err}");
    assert_eq!(pg_store(&pg, &url).count(Table::Reports).expect("count"), 0);
}
