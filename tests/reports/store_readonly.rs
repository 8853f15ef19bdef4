//! Read-only commands leave the report store as they found it: `plan`
//! (its policy hint), `checklist` and `inspect --failure-report` open the
//! store read-only. They never create an SQLite file, never migrate a
//! store, never write one; a store whose schema is older than the program
//! is a note for `plan` (which still succeeds) and an error naming
//! `mailauth store migrate` for the others. SQLite and PostgreSQL.

use crate::support;
use crate::util;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::SystemTime;

use mailauth::reports::IngestLimits;
use mailauth::reports::pgstore::PgStore;
use mailauth::reports::store::{ReportStore, SCHEMA_VERSION, SqliteStore, StoreError};
use support::postgres::PgServer;

/// 2026-11-27T00:00:00Z: the generated reports cover the days before it.
const NOW: i64 = 1_795_737_600;

/// One aggregate report of `domain` for the day starting at `begin`.
fn daily_report(domain: &str, begin: i64) -> String {
    let record = |ip: &str, n: u64, v: &str| {
        format!(
            " <record>\n  <row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated><disposition>none</disposition><dkim>{v}</dkim><spf>{v}</spf></policy_evaluated></row>\n  <identifiers><header_from>{domain}</header_from></identifiers>\n  <auth_results><spf><domain>{domain}</domain><result>{v}</result></spf></auth_results>\n </record>\n"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n <report_metadata>\n  <org_name>receiver.test</org_name>\n  <email>dmarc@receiver.test</email>\n  <report_id>{domain}-{begin}</report_id>\n  <date_range><begin>{begin}</begin><end>{end}</end></date_range>\n </report_metadata>\n <policy_published>\n  <domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><pct>100</pct>\n </policy_published>\n{}{}</feedback>\n",
        record("198.51.100.10", 1000, "pass"),
        record("203.0.113.50", 5, "fail"),
        end = begin + 86_399
    )
}

/// A workspace: a config for `ready.test`, an empty zones directory and
/// sixteen days of reports in `reports/`.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().expect("tempdir");
        let reports = dir.path().join("reports");
        std::fs::create_dir(&reports).expect("mkdir");
        for day in 1..=16 {
            std::fs::write(
                reports.join(format!("{day}.xml")),
                daily_report("ready.test", NOW - day * 86_400),
            )
            .expect("write report");
        }
        std::fs::write(
            dir.path().join("mailauth.yaml"),
            "provider: { kind: zonefile, dir: zones }\ndomains:\n  ready.test:\n    spf: { ip4: [198.51.100.10] }\n    dmarc: { p: none, rua: [mailto:dmarc@ready.test] }\n",
        )
        .expect("config");
        std::fs::create_dir(dir.path().join("zones")).expect("zones");
        Case { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn run(&self, args: &[&str], password: Option<&str>) -> Output {
        let mut c = util::mailauth(["-c"])
            .arg(self.path("mailauth.yaml"))
            .args(args)
            .dir(self.dir.path())
            .env("MAILAUTH_NOW", NOW.to_string())
            .env_remove("MAILAUTH_STORE")
            .env_remove("MAILAUTH_DB")
            .env_remove("MAILAUTH_STORE_PASSWORD");
        if let Some(pw) = password {
            c = c.env("MAILAUTH_STORE_PASSWORD", pw);
        }
        c.output()
    }

    /// Every file name in the workspace directory (an SQLite `-wal` or
    /// `-shm` file left behind would show here).
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// The directory holds the same files as `before`, give or take the
/// SQLite WAL companions of `db` that any reader of a WAL-mode database
/// creates when they are missing (the shared-memory index, and an empty
/// log: nothing was written to it).
fn assert_same_files(case: &Case, before: &[String], db: &str) {
    let companions = [format!("{db}-wal"), format!("{db}-shm")];
    let strip = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|f| !companions.contains(f))
            .cloned()
            .collect()
    };
    assert_eq!(
        strip(&case.files()),
        strip(before),
        "files appeared or vanished"
    );
    let wal = case.path(&companions[0]);
    if wal.exists() {
        let len = std::fs::metadata(&wal).expect("wal").len();
        assert_eq!(len, 0, "something was written to {}", wal.display());
    }
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The checklist arguments: no real DNS (a dead loopback port, short
/// timeout), JSON out.
const CHECKLIST: &[&str] = &[
    "checklist",
    "ready.test",
    "--format",
    "json",
    "--nameserver",
    "127.0.0.1:9",
    "--timeout",
    "0.2",
];

/// Bytes and modification time of a file.
fn snapshot(p: &Path) -> (Vec<u8>, SystemTime) {
    let bytes = std::fs::read(p).expect("read store");
    let mtime = std::fs::metadata(p)
        .and_then(|m| m.modified())
        .expect("mtime");
    (bytes, mtime)
}

/// Turns a current SQLite store into one of schema version 1: the tables
/// of migrations 2 to 4 dropped, their rows in `schema_version` deleted (exactly
/// what a store written by a version-1 program holds).
fn downgrade_sqlite_to_v1(db: &Path) {
    let c = rusqlite::Connection::open(db).expect("open");
    c.execute_batch(
        "DROP TABLE IF EXISTS dashboard_daily_v1; DROP TABLE IF EXISTS dashboard_rollup_v1; \
         DROP TABLE IF EXISTS ptr_cache_v1; DROP TABLE IF EXISTS alerts_fired_v1; \
         DELETE FROM schema_version WHERE version > 1;",
    )
    .expect("downgrade");
}

fn sqlite_version(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .expect("open")
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .expect("version")
}

#[test]
fn plan_reads_a_current_sqlite_store_without_touching_it() {
    let case = Case::new();
    let out = case.run(&["reports", "--db", "r.db", "ingest", "reports"], None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let db = case.path("r.db");
    let before = snapshot(&db);
    let files = case.files();

    let out = case.run(&["plan", "--db", "r.db"], None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(stdout(&out).contains("can advance to"), "{}", show(&out));
    let out = case.run(&[CHECKLIST, &["--db", "r.db"]].concat(), None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(stdout(&out).contains("\"items\""), "{}", show(&out));

    assert!(snapshot(&db) == before, "the store file changed");
    assert_same_files(&case, &files, "r.db");
}

#[test]
fn plan_on_an_old_sqlite_store_omits_the_hint_with_a_note_and_changes_nothing() {
    let case = Case::new();
    let out = case.run(&["reports", "--db", "r.db", "ingest", "reports"], None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let db = case.path("r.db");
    downgrade_sqlite_to_v1(&db);
    let before = snapshot(&db);
    let files = case.files();

    let out = case.run(&["plan", "--db", "r.db"], None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!stdout(&out).contains("can advance"), "{}", show(&out));
    let notes: Vec<&str> = std::str::from_utf8(&out.stderr)
        .expect("utf-8")
        .lines()
        .filter(|l| l.starts_with("note: "))
        .collect();
    assert_eq!(notes.len(), 1, "{}", show(&out));
    assert!(
        notes[0].contains("r.db has schema version 1")
            && notes[0].contains("run `mailauth store migrate`"),
        "{}",
        show(&out)
    );
    assert!(snapshot(&db) == before, "plan changed the store file");
    assert_same_files(&case, &files, "r.db");
    assert_eq!(sqlite_version(&db), 1);

    // checklist and inspect refuse, exit 1, and change nothing either.
    let out = case.run(&[CHECKLIST, &["--db", "r.db"]].concat(), None);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("schema version 1; run `mailauth store migrate`"),
        "{}",
        show(&out)
    );
    let out = case.run(&["inspect", "--failure-report", "1", "--db", "r.db"], None);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("run `mailauth store migrate`"),
        "{}",
        show(&out)
    );
    assert!(
        snapshot(&db) == before,
        "checklist/inspect changed the store"
    );
    assert_same_files(&case, &files, "r.db");

    // Once migrated, the hint is back.
    let out = case.run(&["store", "migrate", "--store", "sqlite://r.db"], None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(sqlite_version(&db), SCHEMA_VERSION);
    let out = case.run(&["plan", "--db", "r.db"], None);
    assert!(stdout(&out).contains("can advance to"), "{}", show(&out));
    assert!(!stderr(&out).contains("note: "), "{}", show(&out));
}

#[test]
fn a_missing_sqlite_store_is_not_created_by_read_only_commands() {
    let case = Case::new();
    let files = case.files();
    let out = case.run(&["plan", "--db", "absent.db"], None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!stdout(&out).contains("can advance"), "{}", show(&out));
    let out = case.run(&[CHECKLIST, &["--db", "absent.db"]].concat(), None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = case.run(
        &["inspect", "--failure-report", "1", "--db", "absent.db"],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // No flag: the default mailauth.db next to where the command runs.
    let out = case.run(&["plan"], None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(case.files(), files, "a store file was created");
}

#[test]
fn a_read_only_sqlite_store_refuses_writes_and_newer_schemas() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("r.db");
    assert!(matches!(
        SqliteStore::open_read_only(&db),
        Err(StoreError::Open { .. })
    ));
    assert!(!db.exists(), "open_read_only created the file");
    drop(SqliteStore::open(&db).expect("create"));
    let mut ro = SqliteStore::open_read_only(&db).expect("read-only");
    let xml = daily_report("ready.test", NOW - 86_400);
    let r = ro.ingest_item("x.xml", xml.as_bytes(), &IngestLimits::default());
    assert!(r.is_err(), "a read-only store stored a report: {r:?}");
    drop(ro);
    let c = rusqlite::Connection::open(&db).expect("open");
    let rows: i64 = c
        .query_row("SELECT count(*) FROM reports", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 0);
    c.execute(
        "INSERT INTO schema_version VALUES (?1)",
        [SCHEMA_VERSION + 1],
    )
    .expect("bump");
    drop(c);
    match SqliteStore::open_read_only(&db) {
        Err(StoreError::NewerSchema { found, known, .. }) => {
            assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

/// Schema version and whether the rollup table of migration 2 exists.
fn pg_schema(pg: &PgServer, url: &str) -> (i64, bool) {
    let mut c = pg.connect(url);
    let v: i64 = c
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .expect("version")
        .get(0);
    let rollup: bool = c
        .query_one("SELECT to_regclass('dashboard_rollup_v1') IS NOT NULL", &[])
        .expect("regclass")
        .get(0);
    (v, rollup)
}

#[test]
fn checklist_on_an_old_postgres_store_names_store_migrate_and_changes_nothing() {
    let Some(pg) = PgServer::shared() else { return };
    let url = pg.fresh_db("ro_old");
    let case = Case::new();
    let pw = Some(pg.password());
    let src = pg.fresh_db("ro_old_src");
    let out = case.run(&["reports", "--store", &src, "ingest", "reports"], pw);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // A version-1 store holding those reports: laid out by migration 1
    // (schema 5 partitions the aggregate tables, so dropping the later
    // tables no longer gives version 1).
    pg.store_at_version(&src, &url, 1);
    assert_eq!(pg_schema(&pg, &url), (1, false));

    let out = case.run(&[CHECKLIST, &["--store", &url]].concat(), pw);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("schema version 1; run `mailauth store migrate`"),
        "{}",
        show(&out)
    );
    let out = case.run(&["plan", "--store", &url], pw);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!stdout(&out).contains("can advance"), "{}", show(&out));
    assert!(
        stderr(&out).contains("note: no policy hints: report store")
            && stderr(&out).contains("run `mailauth store migrate`"),
        "{}",
        show(&out)
    );
    let out = case.run(&["inspect", "--failure-report", "1", "--store", &url], pw);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("run `mailauth store migrate`"),
        "{}",
        show(&out)
    );
    assert_eq!(pg_schema(&pg, &url), (1, false), "the schema changed");

    let out = case.run(&["store", "migrate", "--store", &url], pw);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(pg_schema(&pg, &url), (SCHEMA_VERSION, true));
    let out = case.run(&["plan", "--store", &url], pw);
    assert!(stdout(&out).contains("can advance to"), "{}", show(&out));
}

#[test]
fn a_read_only_postgres_store_refuses_writes_and_never_migrates() {
    let Some(pg) = PgServer::shared() else { return };
    // An empty database: version 0, nothing is created.
    let url = pg.fresh_db("ro_empty");
    match PgStore::open_read_only(&url, Some(pg.password())) {
        Err(StoreError::OlderSchema { found: 0, .. }) => {}
        other => panic!("expected OlderSchema, got {other:?}"),
    }
    let exists: bool = pg
        .connect(&url)
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .expect("regclass")
        .get(0);
    assert!(!exists, "open_read_only created schema_version");

    drop(PgStore::open(&url, Some(pg.password())).expect("migrate"));
    let mut ro = PgStore::open_read_only(&url, Some(pg.password())).expect("read-only");
    assert_eq!(ro.schema_version().expect("version"), SCHEMA_VERSION);
    let xml = daily_report("ready.test", NOW - 86_400);
    let r = ro.ingest_item("x.xml", xml.as_bytes(), &IngestLimits::default());
    let text = format!("{r:?}");
    assert!(
        r.is_err() || r.as_ref().is_ok_and(|x| x.is_err()),
        "a read-only store stored a report: {text}"
    );
    assert!(text.contains("read-only transaction"), "{text}");
    drop(ro);
    let rows: i64 = pg
        .connect(&url)
        .query_one("SELECT count(*) FROM reports", &[])
        .expect("count")
        .get(0);
    assert_eq!(rows, 0);
}
