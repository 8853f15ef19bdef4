//! `reports ingest --imap` against a real Dovecot started by the harness:
//! APPEND the sample reports, ingest, then check the folders (Archive,
//! Invalid, an empty INBOX) and the database against a clean ingest of the
//! same messages. Plaintext on loopback, IMAPS and STARTTLS with a
//! throwaway CA, the COPY + EXPUNGE fallback, oversized messages, and
//! `--watch` (new mail, server restart, SIGTERM). The plaintext scenario
//! runs on SQLite and on PostgreSQL (`sqlite::…` and `postgres::…`).

use crate::support;
use crate::util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mailauth::reports::IngestLimits;
use mailauth::reports::ingest::imap::{ImapConfig, ImapSource, MoveMethod, Password};
use mailauth::reports::ingest::{self};
use mailauth::reports::store::{SqliteStore, Table};
use support::dovecot::{Dovecot, DovecotOpts, counts, expected, without_cr};
use support::postgres::TestStore;
use support::wait_until;

both_stores!(plaintext_on_loopback_ingests_archives_and_sets_invalid_aside);

const TABLES: [Table; 3] = [Table::Reports, Table::Records, Table::FailureReports];

fn data(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reports")).join(rel)
}

/// Every `.eml` sample (aggregate, failure, TLS), plus one mail that is no
/// report at all.
fn sample_messages() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in ["aggregate", "forensic", "tlsrpt"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(data(dir))
            .expect("samples")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        for f in files {
            out.push(std::fs::read(&f).expect("read sample"));
        }
    }
    out.push(not_a_report(0));
    out
}

fn not_a_report(i: usize) -> Vec<u8> {
    format!(
        "From: someone@example.org\r\nTo: dmarc@example.com\r\nSubject: lunch {i}?\r\n\
         Message-ID: <lunch-{i}@example.org>\r\n\r\nAre you free for lunch?\r\n"
    )
    .into_bytes()
}

fn db_counts(db: &Path) -> Vec<i64> {
    counts(&SqliteStore::open(db).expect("db"))
}

/// [`counts`] of any test store.
fn store_counts(store: &TestStore) -> Vec<i64> {
    let mut v: Vec<i64> = TABLES.iter().map(|t| store.count(*t)).collect();
    v.push(store.count(Table::TlsReports));
    v
}

fn append_all(d: &Dovecot, messages: &[Vec<u8>]) {
    let mut c = d.client();
    for m in messages {
        c.append("INBOX", m);
    }
    c.logout();
}

fn mailauth(d: &Dovecot, db: &Path, args: &[&str]) -> Command {
    mailauth_on(d, &["--db".into(), db.as_os_str().to_owned()], args)
}

/// `mailauth reports STORE-FLAGS ingest ARGS` (the flags of a
/// [`TestStore`]: `store.cli_args()`).
fn mailauth_on(d: &Dovecot, store_args: &[std::ffi::OsString], args: &[&str]) -> Command {
    let mut cmd = util::mailauth(["reports"])
        .args(store_args)
        .arg("ingest")
        .args(args)
        .env("MAILAUTH_IMAP_PASSWORD", &d.password)
        .command();
    cmd.stdin(Stdio::null());
    cmd
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// True when the message's Maildir file name has the \Seen flag (`S`).
fn seen(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.split_once(":2,").is_some_and(|(_, f)| f.contains('S'))
}

/// The common check: everything left the INBOX, reports are archived,
/// the rest is in Invalid, and the database holds what a clean ingest
/// holds.
fn check_after_ingest(d: &Dovecot, db: &Path, messages: &[Vec<u8>]) {
    check_after_ingest_counts(d, messages, db_counts(db));
}

fn check_after_ingest_counts(d: &Dovecot, messages: &[Vec<u8>], got: Vec<i64>) {
    let (want, invalid) = expected(messages);
    assert!(want[0] > 0, "the samples contain aggregate reports");
    assert!(invalid > 0, "the samples contain a non-report");
    assert_eq!(d.folder_files("INBOX").len(), 0, "INBOX is empty");
    let archived = d.folder_files("Archive");
    assert_eq!(archived.len(), messages.len() - invalid);
    assert_eq!(d.folder_files("Invalid").len(), invalid);
    // BODY.PEEK[]: the messages were not marked \Seen on the way.
    for f in &archived {
        assert!(!seen(f), "{} was marked \\Seen", f.display());
    }
    // The same messages, just moved (Dovecot stores lines with LF).
    let mut moved: Vec<Vec<u8>> = d
        .folder_messages("Archive")
        .iter()
        .chain(&d.folder_messages("Invalid"))
        .map(|m| without_cr(m))
        .collect();
    moved.sort();
    let mut orig: Vec<Vec<u8>> = messages.iter().map(|m| without_cr(m)).collect();
    orig.sort();
    let digest = |v: &[Vec<u8>]| -> Vec<(usize, String)> {
        v.iter()
            .map(|m| {
                (
                    m.len(),
                    String::from_utf8_lossy(&m[..m.len().min(60)]).into_owned(),
                )
            })
            .collect()
    };
    assert!(
        moved == orig,
        "{:#?}\n!=\n{:#?}",
        digest(&moved),
        digest(&orig)
    );
    assert_eq!(got, want);
}

fn plaintext_on_loopback_ingests_archives_and_sets_invalid_aside(store: &TestStore) {
    let Some(d) = Dovecot::try_start(DovecotOpts::default()) else {
        return;
    };
    let messages = sample_messages();
    append_all(&d, &messages);
    let flags = store.cli_args();
    let out = mailauth_on(&d, &flags, &["--imap", &d.url(false, "INBOX"), "--json"])
        .output()
        .expect("run mailauth");
    // Exit 1: one message was not a report.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(summary["items"], messages.len());
    assert_eq!(summary["errors"].as_array().map(Vec::len), Some(0));
    check_after_ingest_counts(&d, &messages, store_counts(store));
    let mut c = d.client();
    assert!(c.capabilities().contains("MOVE"));
    c.logout();

    // A second run finds nothing and changes nothing.
    let before = store_counts(store);
    let out = mailauth_on(&d, &flags, &["--imap", &d.url(false, "INBOX"), "--json"])
        .output()
        .expect("run mailauth");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(summary["items"], 0);
    assert_eq!(store_counts(store), before);

    // The same reports mailed again are duplicates, and archived too.
    let again: Vec<Vec<u8>> = messages[..3].to_vec();
    append_all(&d, &again);
    let out = mailauth_on(&d, &flags, &["--imap", &d.url(false, "INBOX"), "--json"])
        .output()
        .expect("run mailauth");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(summary["duplicates"].as_u64().is_some_and(|n| n >= 3));
    assert_eq!(summary["reports"], 0);
    assert_eq!(store_counts(store), before);
    assert_eq!(d.folder_files("INBOX").len(), 0);
    assert_eq!(
        d.folder_files("Archive").len(),
        messages.len() - expected(&messages).1 + 3
    );
}

#[test]
fn wrong_password_and_missing_password_fail_clearly() {
    let Some(d) = Dovecot::try_start(DovecotOpts::default()) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("r.db");
    let out = mailauth(&d, &db, &["--imap", &d.url(false, "INBOX")])
        .env("MAILAUTH_IMAP_PASSWORD", "not-the-password")
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: ") && err.contains("refused the login"),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "password printed: {err}");

    let out = mailauth(&d, &db, &["--imap", &d.url(false, "INBOX")])
        .env_remove("MAILAUTH_IMAP_PASSWORD")
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAILAUTH_IMAP_PASSWORD"));

    // --watch does not retry a login that cannot work.
    let out = mailauth(&d, &db, &["--imap", &d.url(false, "INBOX"), "--watch"])
        .env("MAILAUTH_IMAP_PASSWORD", "not-the-password")
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the login"));

    // From a file instead.
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, format!("{}\n", d.password)).expect("write");
    append_all(&d, &[not_a_report(1)]);
    let out = mailauth(
        &d,
        &db,
        &["--imap", &d.url(false, "INBOX"), "--imap-password-file"],
    )
    .arg(&pw)
    .env_remove("MAILAUTH_IMAP_PASSWORD")
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(d.folder_files("Invalid").len(), 1);
}

#[test]
fn imaps_and_starttls_with_a_private_ca() {
    let Some(d) = Dovecot::try_start(DovecotOpts {
        tls: true,
        ..DovecotOpts::default()
    }) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let ca = d.ca_file();
    let ca = ca.to_str().expect("utf-8 path");

    // Without the CA, the server's certificate is not trusted.
    let db = tmp.path().join("r.db");
    let out = mailauth(&d, &db, &["--imap", &d.url(true, "INBOX")])
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UnknownIssuer"),
        "{}",
        show(&out)
    );

    // IMAPS.
    let first: Vec<Vec<u8>> = sample_messages();
    let (half_a, half_b) = first.split_at(first.len() / 2);
    append_all(&d, half_a);
    let out = mailauth(&d, &db, &["--imap", &d.url(true, "INBOX"), "--imap-ca", ca])
        .output()
        .expect("run");
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", show(&out));
    assert_eq!(d.folder_files("INBOX").len(), 0, "{}", show(&out));
    assert_eq!(db_counts(&db), expected(half_a).0);

    // STARTTLS on the same database: the server requires TLS, so this
    // only works if the upgrade happened.
    let logins_before = tls_logins(&d);
    append_all(&d, half_b);
    let out = mailauth(
        &d,
        &db,
        &["--imap", &d.url(false, "INBOX"), "--imap-ca", ca],
    )
    .output()
    .expect("run");
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", show(&out));
    check_after_ingest(&d, &db, &first);
    // Dovecot lets loopback clients log in without TLS even with
    // `ssl = required`, so its log is what proves the upgrade happened.
    // (The log process writes a moment later.)
    let mut after = logins_before;
    let logged = wait_until(Duration::from_secs(10), || {
        after = tls_logins(&d);
        after.0 >= logins_before.0 + 2
    });
    assert!(logged, "no TLS login by mailauth:\n{}", d.log());
    assert_eq!(
        after.1,
        logins_before.1,
        "a login without TLS:\n{}",
        d.log()
    );
}

#[test]
fn copy_and_expunge_when_the_server_has_no_move() {
    let Some(d) = Dovecot::try_start(DovecotOpts {
        no_move: true,
        ..DovecotOpts::default()
    }) else {
        return;
    };
    let mut c = d.client();
    let caps = c.capabilities();
    c.logout();
    assert!(!caps.contains(" MOVE"), "{caps}");
    assert!(caps.contains("UIDPLUS"), "{caps}");
    let messages = sample_messages();
    append_all(&d, &messages);
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("r.db");
    let url = d.url(false, "INBOX").parse().expect("url");
    let config = ImapConfig::new(url, Password::new(d.password.clone()));
    let mut source = ImapSource::connect(config, 1 << 26).expect("connect");
    assert_eq!(source.move_method(), MoveMethod::CopyExpunge);
    let mut store = SqliteStore::open(&db).expect("db");
    let summary = ingest::run(
        &mut source,
        &mut store,
        &IngestLimits::default(),
        &mut |_| {},
    )
    .expect("ingest");
    source.logout();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.items as usize, messages.len());
    drop(store);
    check_after_ingest(&d, &db, &messages);
}

#[test]
fn oversized_messages_go_to_invalid_unread() {
    let Some(d) = Dovecot::try_start(DovecotOpts::default()) else {
        return;
    };
    let small = not_a_report(7);
    let mut big = b"From: big@example.org\r\nSubject: big\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5000));
    append_all(&d, &[big.clone(), small]);
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("r.db");
    let out = mailauth(
        &d,
        &db,
        &[
            "--imap",
            &d.url(false, "INBOX"),
            "--max-input-bytes",
            "1000",
            "--json",
        ],
    )
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let errors = summary["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{summary}");
    assert!(
        errors[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("limit of 1000")),
        "{summary}"
    );
    assert_eq!(summary["invalid"].as_array().map(Vec::len), Some(1));
    assert_eq!(d.folder_files("INBOX").len(), 0);
    assert_eq!(d.folder_messages("Invalid").len(), 2);
    let big = without_cr(&big);
    assert!(
        d.folder_messages("Invalid")
            .iter()
            .any(|m| without_cr(m) == big)
    );
}

/// Successful logins of `reports` in Dovecot's log: (with TLS, without).
fn tls_logins(d: &Dovecot) -> (usize, usize) {
    let log = d.log();
    let logins = log
        .lines()
        .filter(|l| l.contains("imap-login: Info: Login: user=<reports>,"));
    logins.fold((0, 0), |(t, p), l| {
        if l.contains(", TLS") {
            (t + 1, p)
        } else {
            (t, p + 1)
        }
    })
}

fn report_count(db: &Path) -> i64 {
    SqliteStore::open(db)
        .and_then(|s| s.count(Table::Reports))
        .unwrap_or(-1)
}

/// A small aggregate report, unique by `i`.
fn report(i: usize) -> Vec<u8> {
    let xml = format!(
        "<feedback><report_metadata><org_name>Watch Org</org_name><report_id>w-{i}</report_id>\
         <date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata>\
         <policy_published><domain>example.com</domain><p>none</p></policy_published>\
         <record><row><source_ip>192.0.2.{i}</source_ip><count>1</count><policy_evaluated>\
         <disposition>none</disposition></policy_evaluated></row><identifiers>\
         <header_from>example.com</header_from></identifiers><auth_results><spf>\
         <domain>example.com</domain><result>pass</result></spf></auth_results></record></feedback>"
    );
    format!(
        "From: r@watch.example\r\nSubject: Report {i}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/xml\r\n\r\n{xml}\r\n"
    )
    .into_bytes()
}

#[test]
fn watch_ingests_new_mail_survives_a_server_restart_and_stops_on_sigterm() {
    let Some(mut d) = Dovecot::try_start(DovecotOpts::default()) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("r.db");
    append_all(&d, &[report(1)]);
    let log = tmp.path().join("watch.err");
    let child = mailauth(
        &d,
        &db,
        &[
            "--imap",
            &d.url(false, "INBOX"),
            "--watch",
            "--json",
            "--imap-max-backoff-secs",
            "2",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&log).expect("log"))
    .spawn()
    .expect("spawn watcher");
    assert!(
        wait_until(Duration::from_secs(30), || report_count(&db) == 1),
        "the first report was not ingested"
    );
    // New mail while the watcher is in IDLE.
    append_all(&d, &[report(2)]);
    assert!(
        wait_until(Duration::from_secs(30), || report_count(&db) == 2),
        "mail appended during IDLE was not ingested"
    );
    assert!(wait_until(Duration::from_secs(10), || d
        .folder_files("Archive")
        .len()
        == 2));

    // The server goes away and comes back: the watcher reconnects.
    d.restart();
    append_all(&d, &[report(3)]);
    assert!(
        wait_until(Duration::from_secs(60), || report_count(&db) == 3),
        "no reconnect after the restart: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(wait_until(Duration::from_secs(10), || d
        .folder_files("Archive")
        .len()
        == 3));
    // A MOVE lands in Archive a moment before it leaves INBOX on disk.
    assert!(
        wait_until(Duration::from_secs(10), || d
            .folder_files("INBOX")
            .is_empty()),
        "INBOX still holds {:?}",
        d.folder_files("INBOX")
    );

    // SIGTERM: a clean stop with the summary.
    let out = support::sigterm_and_wait(child, Duration::from_secs(20));
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{err}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(summary["reports"], 3, "{summary}");
    assert!(err.contains("reconnecting"), "{err}");
    assert_eq!(err.matches("watching ").count(), 2, "{err}");
    // The reconnect errors are reported, so the exit code says so.
    assert_eq!(out.status.code(), Some(1), "{err}");
}
