//! kill -9 during `reports ingest --imap` at random moments, several
//! times, then a clean re-run against the same Dovecot mailbox: the
//! database holds exactly what one clean run stores, and every message
//! ends up in Archive exactly once (nothing lost, nothing doubled), with
//! both the MOVE path and the COPY + EXPUNGE fallback.

use crate::support;
use crate::util;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailauth::reports::IngestLimits;
use mailauth::reports::store::{ReportStore, SqliteStore, Table};
use support::dovecot::{Dovecot, DovecotOpts};

const MESSAGES: usize = 50;
const RECORDS_PER_REPORT: usize = 30;

fn report(i: usize) -> Vec<u8> {
    let mut s = format!(
        "<feedback><report_metadata><org_name>Kill Org</org_name><report_id>imap-k-{i}</report_id>\
         <date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata>\
         <policy_published><domain>example.com</domain><p>none</p></policy_published>"
    );
    for r in 0..RECORDS_PER_REPORT {
        s.push_str(&format!(
            "<record><row><source_ip>192.0.2.{r}</source_ip><count>{i}</count><policy_evaluated>\
             <disposition>none</disposition></policy_evaluated></row><identifiers>\
             <header_from>example.com</header_from></identifiers><auth_results><spf>\
             <domain>example.com</domain><result>pass</result></spf></auth_results></record>"
        ));
    }
    s.push_str("</feedback>");
    format!(
        "From: r@kill.example\r\nSubject: Report {i}\r\nMessage-ID: <k{i}@kill.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/xml\r\n\r\n{s}\r\n"
    )
    .into_bytes()
}

fn subject(m: &[u8]) -> String {
    let text = String::from_utf8_lossy(m);
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("?")
        .trim_end()
        .to_owned()
}

/// A number in `lo..hi` from the OS's randomness.
fn random_in(lo: usize, hi: usize) -> usize {
    let b = support::random_bytes(8);
    let n = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    lo + (n % (hi - lo) as u64) as usize
}

fn counts(store: &SqliteStore) -> Vec<i64> {
    [Table::Reports, Table::Records]
        .iter()
        .map(|t| store.count(*t).expect("count"))
        .collect()
}

fn clean_run_counts(messages: &[Vec<u8>]) -> Vec<i64> {
    let mut store = SqliteStore::open_in_memory().expect("memory db");
    for (i, m) in messages.iter().enumerate() {
        store
            .ingest_item(&format!("m{i}"), m, &IngestLimits::default())
            .expect("db")
            .expect("a valid report");
    }
    counts(&store)
}

fn ingest(d: &Dovecot, db: &Path) -> Command {
    let mut cmd = util::mailauth(["reports", "--db"])
        .arg(db)
        .args(["ingest", "--imap", &d.url(false, "INBOX")])
        .env("MAILAUTH_IMAP_PASSWORD", &d.password)
        .command();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn kill_nine_then_rerun(opts: DovecotOpts) {
    let Some(d) = Dovecot::try_start(opts) else {
        return;
    };
    let messages: Vec<Vec<u8>> = (0..MESSAGES).map(report).collect();
    let want = clean_run_counts(&messages);
    assert_eq!(
        want,
        vec![MESSAGES as i64, (MESSAGES * RECORDS_PER_REPORT) as i64]
    );
    let mut c = d.client();
    for m in &messages {
        c.append("INBOX", m);
    }
    c.logout();
    assert_eq!(d.folder_files("INBOX").len(), MESSAGES);

    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("r.db");
    let mut killed = Vec::new();
    for round in 0..5 {
        let archived = d.folder_files("Archive").len();
        if archived >= MESSAGES - 2 {
            break;
        }
        // Kill once the archive has grown by a random amount (at least
        // one, so every round makes progress), or after a random delay
        // in the first rounds (which may land before anything is moved).
        let target = archived + random_in(1, ((MESSAGES - archived) / 2).max(2));
        let delay = Duration::from_millis(random_in(0, 400) as u64);
        let mut child = ingest(&d, &db).spawn().expect("spawn mailauth");
        let start = Instant::now();
        let deadline = start + Duration::from_secs(60);
        loop {
            if child.try_wait().expect("wait").is_some() || Instant::now() > deadline {
                break;
            }
            let moved = d.folder_files("Archive").len();
            if moved >= target || (round < 2 && start.elapsed() >= delay && moved > archived) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("kill -9"); // SIGKILL on Unix
            killed.push(d.folder_files("Archive").len());
        }
        child.wait().expect("reap");
        // After every kill: what is archived is stored, and no report was
        // stored without all its records.
        let store = SqliteStore::open(&db).expect("db");
        let [reports, records] = counts(&store)[..] else {
            panic!("two counts");
        };
        let archived = d.folder_files("Archive").len() as i64;
        assert!(
            reports >= archived,
            "stored {reports} < archived {archived}: {:?}",
            d.folder_files("Archive")
                .iter()
                .map(|p| (
                    p.file_name().unwrap_or_default().to_owned(),
                    subject(&std::fs::read(p).unwrap_or_default())
                ))
                .collect::<Vec<_>>()
        );
        assert_eq!(records, reports * RECORDS_PER_REPORT as i64);
    }
    println!("killed {} runs, at archive sizes {killed:?}", killed.len());
    assert!(
        !killed.is_empty(),
        "no run was killed mid-way: the test tested nothing"
    );

    let status = ingest(&d, &db).status().expect("re-run");
    assert_eq!(status.code(), Some(0));
    let store = SqliteStore::open(&db).expect("db");
    assert_eq!(
        counts(&store),
        want,
        "the database differs from a clean run"
    );
    assert_eq!(d.folder_files("INBOX").len(), 0, "messages left behind");
    assert_eq!(d.folder_files("Invalid").len(), 0);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for m in d.folder_messages("Archive") {
        *seen.entry(subject(&m)).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = messages.iter().map(|m| (subject(m), 1)).collect();
    assert_eq!(seen, expected, "every message archived exactly once");
}

#[test]
fn kill_nine_with_move() {
    kill_nine_then_rerun(DovecotOpts::default());
}

#[test]
fn kill_nine_with_copy_and_expunge() {
    kill_nine_then_rerun(DovecotOpts {
        no_move: true,
        ..DovecotOpts::default()
    });
}

/// The states a crash can leave the COPY fallback in, built by hand: the
/// next run finishes each one without losing or doubling a message.
#[test]
fn copy_fallback_recovers_each_interrupted_state() {
    let Some(d) = Dovecot::try_start(DovecotOpts {
        no_move: true,
        ..DovecotOpts::default()
    }) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("r.db");
    // All three were committed before the crash (the fallback only starts
    // after the commit).
    let (copied, not_copied, flagged) = (report(100), report(101), report(102));
    {
        let mut store = SqliteStore::open(&db).expect("db");
        for m in [&copied, &not_copied, &flagged] {
            store
                .ingest_item("before", m, &IngestLimits::default())
                .expect("db")
                .expect("valid");
        }
    }
    let mut c = d.client();
    c.command("CREATE Archive");
    // Marked and copied, crash before \Deleted.
    c.append_with_flags("INBOX", "($MailauthMoving)", &copied);
    c.append_with_flags("Archive", "($MailauthMoving)", &copied);
    // Marked, crash before COPY.
    c.append_with_flags("INBOX", "($MailauthMoving)", &not_copied);
    // Copied and \Deleted, crash before UID EXPUNGE.
    c.append_with_flags("INBOX", "(\\Deleted $MailauthMoving)", &flagged);
    c.append_with_flags("Archive", "($MailauthMoving)", &flagged);
    // Someone else's deleted mail is left alone.
    let theirs = b"From: a@example.org\r\nSubject: theirs\r\n\r\nbye\r\n".to_vec();
    c.append_with_flags("INBOX", "(\\Deleted)", &theirs);
    c.logout();

    let status = ingest(&d, &db).status().expect("run");
    assert_eq!(status.code(), Some(0));
    let mut archived: Vec<String> = d
        .folder_messages("Archive")
        .iter()
        .map(|m| subject(m))
        .collect();
    archived.sort();
    assert_eq!(archived, ["Report 100", "Report 101", "Report 102"]);
    let left: Vec<String> = d
        .folder_messages("INBOX")
        .iter()
        .map(|m| subject(m))
        .collect();
    assert_eq!(left, ["theirs"]);
    let store = SqliteStore::open(&db).expect("db");
    assert_eq!(counts(&store)[0], 3);
}
