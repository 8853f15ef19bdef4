//! kill -9 during a Maildir ingest, at several moments, then a full re-run:
//! every report is stored exactly once and every message ends up archived.
//!
//! The library test re-runs its own binary as the child (`ingest_child`,
//! which does nothing unless the parent sets its environment), so the kill
//! hits a real process with a real SQLite file. The command-line test kills
//! `mailauth reports ingest --maildir` itself, on SQLite and on PostgreSQL
//! (`sqlite::…` and `postgres::…`).

use crate::support;
use crate::util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mailauth::reports::IngestLimits;
use mailauth::reports::ingest::{self, MaildirFolders, MaildirSource};
use mailauth::reports::store::{SqliteStore, Table};
use support::postgres::TestStore;

both_stores!(kill_nine_the_command_then_rerun);

const MESSAGES: usize = 150;
const RECORDS_PER_REPORT: usize = 40;

fn report(i: usize) -> String {
    let mut s = format!(
        "<feedback><report_metadata><org_name>Kill Org</org_name><report_id>k-{i}</report_id>\
         <date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata>\
         <policy_published><domain>example.com</domain><p>none</p></policy_published>"
    );
    for r in 0..RECORDS_PER_REPORT {
        s.push_str(&format!(
            "<record><row><source_ip>192.0.2.{r}</source_ip><count>1</count><policy_evaluated>\
             <disposition>none</disposition></policy_evaluated></row><identifiers>\
             <header_from>example.com</header_from></identifiers><auth_results><spf>\
             <domain>example.com</domain><result>pass</result></spf></auth_results></record>"
        ));
    }
    s.push_str("</feedback>");
    format!(
        "From: r@kill.example\r\nSubject: Report {i}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/xml\r\n\r\n{s}\r\n"
    )
}

fn run_ingest(db: &Path, maildir: &Path) {
    let mut store = SqliteStore::open(db).expect("db");
    let mut src =
        MaildirSource::open(maildir, MaildirFolders::default(), 1 << 20).expect("maildir");
    ingest::run(&mut src, &mut store, &IngestLimits::default(), &mut |_| {}).expect("ingest");
}

/// The child side: only active when the parent sets the variables.
#[test]
fn ingest_child() {
    let (Some(db), Some(md)) = (
        std::env::var_os("MAILAUTH_KILL9_DB"),
        std::env::var_os("MAILAUTH_KILL9_MAILDIR"),
    ) else {
        return;
    };
    run_ingest(Path::new(&db), Path::new(&md));
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| rd.count())
}

fn make_maildir(md: &Path) {
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).expect("mkdir");
    }
    for i in 0..MESSAGES {
        std::fs::write(md.join("new").join(format!("{i:04}.msg")), report(i)).expect("write");
    }
}

/// `mailauth reports <store> ingest --maildir MD`, not yet waited for.
fn ingest_command(store: &TestStore, md: &Path) -> Command {
    let mut cmd = util::mailauth(["reports"])
        .args(store.cli_args())
        .arg("ingest")
        .arg("--maildir")
        .arg(md)
        .command();
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

/// Starts an ingest with `spawn` and kills it (SIGKILL) when the archive
/// reaches each target, checking after each kill that whatever was archived
/// is stored and that no report lacks records; then `finish` runs a full
/// ingest, after which every report must be stored once and every message
/// archived. `counts` gives the stored (reports, records).
fn kill_at_targets_then_finish(
    md: &Path,
    spawn: &dyn Fn() -> std::process::Child,
    counts: &dyn Fn() -> (usize, usize),
    finish: &dyn Fn(),
) {
    let mut killed_mid_way = 0;
    // Kill when the archive has reached each target (so the kill lands
    // mid-run whatever the machine's speed).
    for target in [10usize, 50, 90, 130] {
        let mut child = spawn();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while count_files(&md.join(".Archive/cur")) < target
            && child.try_wait().expect("wait").is_none()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Child::kill is SIGKILL on Unix.
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("kill -9");
            killed_mid_way += 1;
        }
        child.wait().expect("reap");
        let archived = count_files(&md.join(".Archive/cur"));
        let (stored, records) = counts();
        // Whatever was archived is stored; stored may be ahead of the moves.
        assert!(stored >= archived, "stored {stored}, archived {archived}");
        assert_eq!(
            records,
            stored * RECORDS_PER_REPORT,
            "a report was stored without all its records"
        );
    }
    finish();
    assert_eq!(counts(), (MESSAGES, MESSAGES * RECORDS_PER_REPORT));
    assert_eq!(count_files(&md.join("new")), 0);
    assert_eq!(count_files(&md.join(".Archive/cur")), MESSAGES);
    assert_eq!(count_files(&md.join(".Invalid/cur")), 0);
    println!("killed {killed_mid_way} of 4 runs mid-way");
    assert!(
        killed_mid_way > 0,
        "no run was killed mid-way: the test tested nothing"
    );
}

/// `mailauth reports <store> ingest --maildir`, killed at each target.
fn kill_nine_the_command_then_rerun(store: &TestStore) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = tmp.path().join("Maildir");
    make_maildir(&md);
    kill_at_targets_then_finish(
        &md,
        &|| ingest_command(store, &md).spawn().expect("spawn mailauth"),
        &|| {
            (
                store.count(Table::Reports) as usize,
                store.count(Table::Records) as usize,
            )
        },
        &|| {
            let status = ingest_command(store, &md).status().expect("run mailauth");
            assert!(status.success(), "the full re-run failed: {status}");
        },
    );
}

#[test]
fn kill_nine_then_rerun_loses_nothing_and_counts_nothing_twice() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md: PathBuf = tmp.path().join("Maildir");
    make_maildir(&md);
    let db = tmp.path().join("r.db");
    let exe = std::env::current_exe().expect("test binary");
    kill_at_targets_then_finish(
        &md,
        &|| {
            Command::new(&exe)
                .args(["--exact", &child_test("ingest_child"), "--test-threads=1"])
                .env("MAILAUTH_KILL9_DB", &db)
                .env("MAILAUTH_KILL9_MAILDIR", &md)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn child")
        },
        &|| {
            let store = SqliteStore::open(&db).expect("db");
            (
                store.count(Table::Reports).expect("count") as usize,
                store.count(Table::Records).expect("count") as usize,
            )
        },
        &|| run_ingest(&db, &md),
    );
}

/// The name `--exact` takes for the test `name` of this module: its path
/// in the test binary without the binary's own name (this file is a
/// module of the `faults` binary).
fn child_test(name: &str) -> String {
    match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::{name}"),
        None => name.to_string(),
    }
}

/// Message `NNNN.msg` holds report `k-N`.
fn report_id_of(message: &str) -> String {
    let n: usize = message
        .trim_end_matches(".msg")
        .parse()
        .expect("message name");
    format!("k-{n}")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn stored_ids(store: &TestStore) -> Vec<String> {
    store
        .open()
        .list(None)
        .expect("list")
        .into_iter()
        .map(|r| r.report_id)
        .collect()
}

/// Every message in the archive has its report in the store.
fn assert_archived_are_stored(md: &Path, store: &TestStore, when: &str) -> usize {
    let stored = stored_ids(store);
    let archived = names(&md.join(".Archive/cur"));
    for m in &archived {
        let id = report_id_of(m);
        assert!(
            stored.contains(&id),
            "{when}: {m} is archived but report {id} is not in the store"
        );
    }
    archived.len()
}

/// Issue 15: PostgreSQL itself killed (kill -9 of the postmaster and its
/// backends, no shutdown checkpoint) while `reports ingest --maildir`
/// runs: after a restart (crash recovery), every message that had left
/// `new/` has its report in the store. The kills land
/// - with mailauth stopped right after it renamed its 1st, then (in the
///   next run) its 4th message (strace sends it SIGSTOP at rename(2), which
///   stops it on the way out of the call): the message just moved has its
///   report committed, so the commit comes before the move
///   (`ingest::run` calls `Source::finish` only after
///   `ReportStore::ingest_item` has committed);
/// - while mailauth runs, once 8 more messages are archived: mailauth
///   fails on the dead connection and moves nothing it has not stored.
///
/// A full run afterwards stores every report once and archives every
/// message. The server runs with `fsync=on`.
#[test]
fn postgres_killed_after_moves_keeps_every_moved_report() {
    use support::postgres::PgServer;
    if !support::powercut::require_strace() {
        return;
    }
    let Some(server) = PgServer::start_own() else {
        return;
    };
    let server = std::sync::Arc::new(server);
    let store = TestStore::postgres_on(server.clone(), "pg_kill9");
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = tmp.path().join("Maildir");
    const N: usize = 40;
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).expect("mkdir");
    }
    for i in 0..N {
        std::fs::write(md.join("new").join(format!("{i:04}.msg")), report(i)).expect("write");
    }

    // Stopped right after its K-th rename(2).
    let mut archived_before = 0;
    for k in [1, 4] {
        let log = tmp.path().join(format!("strace-{k}.log"));
        let inject = format!("inject=rename,renameat,renameat2:signal=SIGSTOP:when={k}");
        let mut child = Command::new("strace")
            .args([
                "-f",
                "-e",
                "trace=rename,renameat,renameat2",
                "-e",
                &inject,
                "-o",
            ])
            .arg(&log)
            .arg("--")
            .arg(util::bin())
            .arg("reports")
            .args(store.cli_args())
            .arg("ingest")
            .arg("--maildir")
            .arg(&md)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn strace mailauth");
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let pid = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("stopped by SIGSTOP")) {
                break line
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<i32>().ok())
                    .expect("pid in the strace log");
            }
            assert!(
                child.try_wait().expect("wait").is_none(),
                "mailauth ended before its rename number {k}:\n{text}"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "mailauth never reached its rename number {k}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        // A signal is delivered on the way out of the system call: the
        // K-th rename is done, nothing after it.
        server.kill9();
        server.restart();
        let when = format!("PostgreSQL killed right after rename number {k}");
        let archived = assert_archived_are_stored(&md, &store, &when);
        assert_eq!(archived, archived_before + k, "{when}");
        archived_before = archived;
        // SAFETY: kill(2) on the mailauth process this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        child.wait().expect("reap strace");
    }

    // Killed under a running ingest.
    let before = names(&md.join(".Archive/cur")).len();
    let mut child = ingest_command(&store, &md).spawn().expect("spawn mailauth");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while names(&md.join(".Archive/cur")).len() < before + 8
        && child.try_wait().expect("wait").is_none()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mid_way = child.try_wait().expect("wait").is_none();
    server.kill9();
    let status = child.wait().expect("reap mailauth");
    assert!(
        !mid_way || !status.success(),
        "mailauth succeeded although its store died under it"
    );
    server.restart();
    assert_archived_are_stored(&md, &store, "PostgreSQL killed under a running ingest");

    // Then a full run converges.
    let status = ingest_command(&store, &md).status().expect("run mailauth");
    assert!(status.success(), "the full re-run failed: {status}");
    assert_eq!(store.count(Table::Reports) as usize, N);
    assert_eq!(store.count(Table::Records) as usize, N * RECORDS_PER_REPORT);
    assert_eq!(names(&md.join(".Archive/cur")).len(), N);
    assert!(names(&md.join("new")).is_empty());
    println!("killed PostgreSQL under a running ingest mid-way: {mid_way}");
}
