//! kill -9 during a Maildir ingest, at several moments, then a full re-run:
//! every report is stored exactly once and every message ends up archived.
//!
//! The library test re-runs its own binary as the child (`ingest_child`,
//! which does nothing unless the parent sets its environment), so the kill
//! hits a real process with a real SQLite file. The command-line test kills
//! `mailauth reports ingest --maildir` itself, on SQLite and on PostgreSQL
//! (`sqlite::…` and `postgres::…`).

mod support;

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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailauth"));
    cmd.arg("reports")
        .args(store.cli_args())
        .arg("ingest")
        .arg("--maildir")
        .arg(md)
        .stdout(std::process::Stdio::null())
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
                .args(["--exact", "ingest_child", "--test-threads=1"])
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
