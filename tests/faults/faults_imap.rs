//! Issue #10: an IMAP server that drops the connection in the middle of a
//! FETCH. A real Dovecot behind a fault-injecting proxy
//! (`support::tcp_cut`): the connection is cut (RST or FIN) at exact
//! points of the server's FETCH responses, or stalled. Each cut must end
//! the run with a clear error that names the server and the command,
//! exit non-zero, move no message whose data was not committed, and leave
//! a consistent database; the next run (no cut) must converge to exactly
//! what one clean run stores. A stalled server must fail within the I/O
//! timeout, and `--watch` must reconnect and keep going.

use crate::support;
use crate::util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mailauth::reports::IngestLimits;
use mailauth::reports::ingest::imap::{ImapConfig, ImapError, ImapSource, Password};
use mailauth::reports::ingest::{self};
use mailauth::reports::store::{SqliteStore, Table};
use support::dovecot::{Dovecot, DovecotOpts, counts, expected, without_cr};
use support::tcp_cut::{At, Fault, Plan, Scanner, TcpCut, Times, Trigger};
use support::wait_until;

/// Messages per `UID FETCH` by default (docs/reports.md: "batches of at
/// most 32 messages").
const BATCH: usize = 32;

fn data(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reports")).join(rel)
}

/// The `.eml` samples (aggregate, failure, TLS), one mail that is no
/// report, then small aggregate reports up to `total` messages: more than
/// one batch, so a cut can fall after a batch was committed and moved.
fn messages(total: usize) -> Vec<Vec<u8>> {
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
    out.push(
        b"From: someone@example.org\r\nTo: dmarc@example.com\r\nSubject: lunch?\r\n\
          Message-ID: <lunch@example.org>\r\n\r\nAre you free for lunch?\r\n"
            .to_vec(),
    );
    let mut i = 0;
    while out.len() < total {
        out.push(report(i));
        i += 1;
    }
    out
}

/// A small aggregate report, unique by `i` (about 900 bytes).
fn report(i: usize) -> Vec<u8> {
    let xml = format!(
        "<feedback><report_metadata><org_name>Cut Org</org_name><report_id>cut-{i}</report_id>\
         <date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata>\
         <policy_published><domain>example.com</domain><p>none</p></policy_published>\
         <record><row><source_ip>192.0.2.{}</source_ip><count>{i}</count><policy_evaluated>\
         <disposition>none</disposition></policy_evaluated></row><identifiers>\
         <header_from>example.com</header_from></identifiers><auth_results><spf>\
         <domain>example.com</domain><result>pass</result></spf></auth_results></record></feedback>",
        i % 250
    );
    format!(
        "From: r@cut.example\r\nSubject: Report {i}\r\nMessage-ID: <cut-{i}@cut.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/xml\r\n\r\n{xml}\r\n"
    )
    .into_bytes()
}

/// The counts of the database at `db` (an empty one if it does not exist
/// yet), after SQLite's own consistency check.
fn db_counts(db: &Path) -> Vec<i64> {
    if db.exists() {
        let conn = rusqlite::Connection::open(db).expect("open db");
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(ok, "ok", "integrity_check of {}", db.display());
    }
    counts(&SqliteStore::open(db).expect("db"))
}

fn append_all(d: &Dovecot, messages: &[Vec<u8>]) {
    let mut c = d.client();
    for m in messages {
        c.append("INBOX", m);
    }
    c.logout();
}

fn url(port: u16) -> String {
    format!("imap://{}@127.0.0.1:{port}/INBOX", support::dovecot::USER)
}

fn mailauth(d: &Dovecot, db: &Path, port: u16, extra: &[&str]) -> Command {
    let mut cmd = util::mailauth(["reports", "--db"])
        .arg(db)
        .args(["ingest", "--imap", &url(port)])
        .args(extra)
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

/// Messages moved out of the INBOX so far (Archive and Invalid, from disk).
fn moved(d: &Dovecot) -> Vec<Vec<u8>> {
    let mut v = d.folder_messages("Archive");
    v.extend(d.folder_messages("Invalid"));
    v
}

/// The end state of a finished ingest: every message left the INBOX
/// exactly once, reports to Archive and the rest to Invalid, and the
/// database holds what one clean ingest of all of them holds.
fn check_converged(d: &Dovecot, db: &Path, all: &[Vec<u8>], what: &str) {
    let (want, invalid) = expected(all);
    assert_eq!(d.folder_files("INBOX").len(), 0, "{what}: INBOX is empty");
    assert_eq!(
        d.folder_files("Archive").len(),
        all.len() - invalid,
        "{what}: Archive"
    );
    assert_eq!(d.folder_files("Invalid").len(), invalid, "{what}: Invalid");
    let mut got: Vec<Vec<u8>> = moved(d).iter().map(|m| without_cr(m)).collect();
    got.sort();
    let mut orig: Vec<Vec<u8>> = all.iter().map(|m| without_cr(m)).collect();
    orig.sort();
    assert!(
        got == orig,
        "{what}: the moved messages are not the originals"
    );
    assert_eq!(db_counts(db), want, "{what}: database");
}

/// One cut, then a clean re-run, on a fresh server and database.
fn cut_then_converge(nth: usize, at: At, fault: Fault) {
    let what = format!("cut at FETCH #{nth} {at:?} by {fault:?}");
    let Some(d) = Dovecot::try_start(DovecotOpts::default()) else {
        return;
    };
    let all = messages(40);
    assert!(nth < all.len(), "{what}: no such FETCH");
    append_all(&d, &all);
    let proxy = TcpCut::start(
        d.port,
        Plan {
            trigger: Trigger::Fetch { nth, at },
            fault,
            times: Times::Once,
        },
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("r.db");

    let out = mailauth(&d, &db, proxy.port(), &[])
        .output()
        .expect("run mailauth");
    assert_eq!(proxy.fired(), 1, "{what}: the fault did not happen");
    // A clear error: non-zero exit, the server, and the command.
    assert_ne!(out.status.code(), Some(0), "{what}: {}", show(&out));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let server = format!("127.0.0.1:{}", proxy.port());
    let named = text
        .lines()
        .any(|l| l.contains(&server) && l.contains("UID FETCH"));
    assert!(
        named,
        "{what}: no error naming {server} and UID FETCH\n{text}"
    );
    // Batches before the cut were committed, then moved; the batch being
    // fetched was not handed out at all.
    let done = nth / BATCH * BATCH;
    let gone = moved(&d);
    assert_eq!(gone.len(), done, "{what}: moved\n{text}");
    assert_eq!(
        d.folder_files("INBOX").len(),
        all.len() - done,
        "{what}: INBOX\n{text}"
    );
    // Nothing moved that is not committed, nothing committed beyond what
    // was moved.
    assert_eq!(
        db_counts(&db),
        expected(&gone).0,
        "{what}: database\n{text}"
    );

    // The re-run (the proxy now forwards untouched) finishes the job.
    rerun_converges(&d, &db, &proxy, &all, done, &what);
}

/// The re-run after a fault (the proxy, fired once, now forwards
/// untouched): no error, the `done` messages already moved are not seen
/// again, and the mailbox and database converge.
fn rerun_converges(
    d: &Dovecot,
    db: &Path,
    proxy: &TcpCut,
    all: &[Vec<u8>],
    done: usize,
    what: &str,
) {
    let out = mailauth(d, db, proxy.port(), &["--json"])
        .output()
        .expect("run mailauth");
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{what}: {}",
        show(&out)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", show(&out)));
    assert_eq!(
        summary["errors"].as_array().map(Vec::len),
        Some(0),
        "{what}: {summary}"
    );
    assert_eq!(summary["items"], all.len() - done, "{what}: {summary}");
    assert_eq!(proxy.fired(), 1);
    check_converged(d, db, all, what);
}

// Six points across the fetch of two batches (32 + 8 messages), each
// followed by a re-run that must converge.

#[test]
fn cut_by_reset_before_the_first_body_then_converges() {
    cut_then_converge(0, At::Line(0), Fault::Rst);
}

#[test]
fn cut_by_fin_at_a_response_boundary_then_converges() {
    // The server's answer simply stops between two FETCH responses: no
    // error from the socket, only a missing tagged OK.
    cut_then_converge(5, At::Line(0), Fault::Fin);
}

#[test]
fn cut_by_fin_inside_a_fetch_line_then_converges() {
    cut_then_converge(3, At::Line(9), Fault::Fin);
}

#[test]
fn cut_by_reset_one_byte_into_a_body_then_converges() {
    cut_then_converge(10, At::Body(1), Fault::Rst);
}

#[test]
fn cut_by_fin_in_the_middle_of_a_body_of_the_second_batch_then_converges() {
    cut_then_converge(34, At::Body(300), Fault::Fin);
}

#[test]
fn cut_by_reset_after_the_last_body_before_its_closing_paren_then_converges() {
    cut_then_converge(39, At::BodyEnd, Fault::Rst);
}

/// The server refuses a command (`NO`, RFC 9051 7.1) instead of
/// completing it: the proxy rewrites the tagged `OK` of the first answer
/// holding `pattern`. The run must fail naming the command and the
/// server's text, move nothing it did not commit, and a re-run converge.
fn refused_then_converge(pattern: &'static [u8], command: &str, done: usize) {
    let what = format!("{command} refused");
    let Some(d) = Dovecot::try_start(DovecotOpts::default()) else {
        return;
    };
    let all = messages(40);
    append_all(&d, &all);
    let proxy = TcpCut::start(
        d.port,
        Plan {
            trigger: Trigger::Completion { pattern, nth: 0 },
            fault: Fault::Refuse,
            times: Times::Once,
        },
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("r.db");

    let out = mailauth(&d, &db, proxy.port(), &[])
        .output()
        .expect("run mailauth");
    assert_eq!(proxy.fired(), 1, "{what}: the refusal was not injected");
    assert_eq!(out.status.code(), Some(1), "{what}: {}", show(&out));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let server = format!("127.0.0.1:{}", proxy.port());
    assert!(
        text.lines().any(|l| l.contains(&server)
            && l.contains(command)
            && l.contains("answered NO")
            && l.contains("[SERVERBUG] injected")),
        "{what}: no error naming {server}, {command} and the server's text\n{text}"
    );
    assert_eq!(moved(&d).len(), done, "{what}: moved\n{text}");
    assert_eq!(
        d.folder_files("INBOX").len(),
        all.len() - done,
        "{what}: INBOX\n{text}"
    );
    assert_eq!(
        db_counts(&db),
        expected(&moved(&d)).0,
        "{what}: database\n{text}"
    );

    rerun_converges(&d, &db, &proxy, &all, done, &what);
}

/// Issue: a `NO` to `UID FETCH` used to read as an empty answer, and the
/// batch was skipped without an error.
#[test]
fn a_refused_uid_fetch_fails_the_run_and_moves_nothing_of_its_batch() {
    refused_then_converge(b"BODY[]", "UID FETCH", 0);
}

#[test]
fn a_refused_uid_search_fails_the_run_before_anything_is_fetched() {
    refused_then_converge(b"* SEARCH", "UID SEARCH", 0);
}

fn config(port: u16, d: &Dovecot, timeout: Duration) -> ImapConfig {
    let mut c = ImapConfig::new(
        url(port).parse().expect("url"),
        Password::new(d.password.clone()),
    );
    c.io_timeout = timeout;
    c.connect_timeout = timeout;
    c
}

#[test]
fn a_stalled_server_fails_within_the_timeout() {
    let Some(d) = Dovecot::try_start(DovecotOpts::default()) else {
        return;
    };
    let all = messages(12);
    append_all(&d, &all);
    let timeout = Duration::from_secs(2);
    // A hang detector, not a measurement: far above the timeout.
    let bound = Duration::from_secs(30);

    // Accepts, then never says a word: not even the greeting.
    let silent = TcpCut::start(
        d.port,
        Plan {
            trigger: Trigger::Accept,
            fault: Fault::Stall,
            times: Times::Always,
        },
    );
    let start = Instant::now();
    let err = ImapSource::connect(config(silent.port(), &d, timeout), 1 << 26)
        .expect_err("a silent server");
    assert!(start.elapsed() < bound, "took {:?}", start.elapsed());
    assert!(
        matches!(&err, ImapError::Timeout { command, secs: 2, .. } if command == "greeting"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", silent.port())),
        "{text}"
    );

    // Stops in the middle of a message body: the UID FETCH times out,
    // the run ends with that error, nothing is moved or stored.
    let stall = TcpCut::start(
        d.port,
        Plan {
            trigger: Trigger::Fetch {
                nth: 2,
                at: At::Body(100),
            },
            fault: Fault::Stall,
            times: Times::Always,
        },
    );
    let start = Instant::now();
    let mut source =
        ImapSource::connect(config(stall.port(), &d, timeout), 1 << 26).expect("connect");
    let mut store = SqliteStore::open_in_memory().expect("db");
    let summary = ingest::run(
        &mut source,
        &mut store,
        &IngestLimits::default(),
        &mut |_| {},
    )
    .expect("ingest");
    assert!(start.elapsed() < bound, "took {:?}", start.elapsed());
    assert_eq!(stall.fired(), 1);
    assert_eq!(summary.errors.len(), 1, "{summary:?}");
    let reason = &summary.errors[0].reason;
    assert!(
        reason.contains("UID FETCH")
            && reason.contains("no answer within 2 s")
            && reason.contains(&format!("127.0.0.1:{}", stall.port())),
        "{reason}"
    );
    assert_eq!(counts(&store), vec![0, 0, 0, 0]);
    assert_eq!(d.folder_files("INBOX").len(), all.len());
    assert!(moved(&d).is_empty());
    assert!(
        source.take_error().is_some(),
        "the broken connection is kept"
    );
}

/// `--imap-timeout` reaches the connection: a server that stops in the
/// middle of a message body ends the run within it, through the binary.
#[test]
fn imap_timeout_flag_ends_a_stalled_run() {
    let Some(d) = Dovecot::try_start(DovecotOpts::default()) else {
        return;
    };
    let all = messages(6);
    append_all(&d, &all);
    let stall = TcpCut::start(
        d.port,
        Plan {
            trigger: Trigger::Fetch {
                nth: 1,
                at: At::Body(50),
            },
            fault: Fault::Stall,
            times: Times::Always,
        },
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("r.db");
    // A hang detector, not a measurement: far below the 120 s default,
    // far above the 2 s asked for.
    let bound = Duration::from_secs(60);
    let start = Instant::now();
    let out = mailauth(
        &d,
        &db,
        stall.port(),
        &["--imap-timeout", "2", "--imap-connect-timeout", "5"],
    )
    .output()
    .expect("run mailauth");
    assert!(start.elapsed() < bound, "took {:?}", start.elapsed());
    assert_eq!(stall.fired(), 1, "the stall did not happen");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // The summary's errors go to standard output with it.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let server = format!("127.0.0.1:{}", stall.port());
    assert!(
        text.lines().any(|l| l.contains("UID FETCH")
            && l.contains("no answer within 2 s")
            && l.contains(&server)),
        "{}",
        show(&out)
    );
    assert!(moved(&d).is_empty());
    assert_eq!(d.folder_files("INBOX").len(), all.len());
    assert_eq!(db_counts(&db), vec![0, 0, 0, 0]);
}

#[test]
fn imap_timeouts_must_be_positive() {
    for flag in ["--imap-timeout", "--imap-connect-timeout"] {
        let out = util::Cmd::new()
            .args([
                "reports",
                "ingest",
                "--imap",
                "imap://u@127.0.0.1:9/INBOX",
                flag,
                "0",
            ])
            .output();
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(flag),
            "{flag}: {}",
            show(&out)
        );
    }
}

fn report_count(db: &Path) -> i64 {
    SqliteStore::open(db)
        .and_then(|s| s.count(Table::Reports))
        .unwrap_or(-1)
}

#[test]
fn watch_reconnects_after_a_cut_in_mid_fetch_and_keeps_ingesting() {
    let Some(d) = Dovecot::try_start(DovecotOpts::default()) else {
        return;
    };
    let first: Vec<Vec<u8>> = (0..6).map(report).collect();
    append_all(&d, &first);
    let proxy = TcpCut::start(
        d.port,
        Plan {
            trigger: Trigger::Fetch {
                nth: 3,
                at: At::Body(120),
            },
            fault: Fault::Rst,
            times: Times::Once,
        },
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("r.db");
    let log = tmp.path().join("watch.err");
    let child = mailauth(
        &d,
        &db,
        proxy.port(),
        &["--watch", "--json", "--imap-max-backoff-secs", "1"],
    )
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&log).expect("log"))
    .spawn()
    .expect("spawn watcher");
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(60), || report_count(&db) == 6),
        "the reports were not all ingested after the cut: {}",
        stderr()
    );
    assert_eq!(proxy.fired(), 1, "the cut did not happen");
    assert!(proxy.connections() >= 2, "no reconnect");
    // Mail that arrives after the reconnect, while the watcher is in IDLE.
    let late = report(6);
    append_all(&d, std::slice::from_ref(&late));
    assert!(
        wait_until(Duration::from_secs(60), || report_count(&db) == 7),
        "mail appended after the reconnect was not ingested: {}",
        stderr()
    );
    assert!(wait_until(Duration::from_secs(10), || d
        .folder_files("Archive")
        .len()
        == 7));

    let out = support::sigterm_and_wait(child, Duration::from_secs(20));
    let err = stderr();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{err}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(summary["reports"], 7, "{summary}");
    let server = format!("127.0.0.1:{}", proxy.port());
    assert!(
        err.lines()
            .any(|l| l.contains("reconnecting") && l.contains("UID FETCH") && l.contains(&server)),
        "{err}"
    );
    assert_eq!(err.matches("watching ").count(), 2, "{err}");
    // The cut is reported, so the exit code says so.
    assert_eq!(out.status.code(), Some(1), "{err}");
    let mut all = first;
    all.push(late);
    check_converged(&d, &db, &all, "watch");
}

// The proxy's cut points themselves, on a canned stream.

const STREAM: &[u8] = b"* 1 FETCH (UID 7 BODY[] {5}\r\nhello)\r\n\
    * 2 FETCH (UID 8 BODY[] {3}\r\nabc)\r\nt1 OK done\r\n";

/// Feeds `STREAM` in chunks of `chunk` bytes; what got through before the
/// trigger, and whether it was reached.
fn through(trigger: Trigger, chunk: usize) -> (Vec<u8>, bool) {
    let mut s = Scanner::new(trigger);
    let mut out = Vec::new();
    for c in STREAM.chunks(chunk) {
        let (o, hit) = s.feed(c);
        out.extend(o);
        if hit {
            return (out, true);
        }
    }
    out.extend(s.flush_all());
    (out, false)
}

#[test]
fn proxy_cut_points_are_exact_whatever_the_chunking() {
    let line = b"* 1 FETCH (UID 7 BODY[] {5}\r\n".len();
    let second = STREAM
        .windows(9)
        .position(|w| w == b"* 2 FETCH")
        .expect("second response");
    let cases = [
        (0, At::Line(0), 0),
        (0, At::Line(4), 4),
        (0, At::Body(0), line),
        (0, At::Body(2), line + 2),
        (0, At::BodyEnd, line + 5),
        (1, At::Line(3), second + 3),
        (1, At::Body(1), second + line + 1),
        (1, At::BodyEnd, second + line + 3),
    ];
    for chunk in [1, 2, 7, STREAM.len()] {
        for (nth, at, want) in cases {
            let (out, hit) = through(Trigger::Fetch { nth, at }, chunk);
            assert!(hit, "{nth} {at:?} chunk {chunk}");
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&STREAM[..want]),
                "{nth} {at:?} chunk {chunk}"
            );
        }
        // There is no third FETCH: everything passes, unchanged.
        let (out, hit) = through(
            Trigger::Fetch {
                nth: 2,
                at: At::Line(0),
            },
            chunk,
        );
        assert!(!hit);
        assert_eq!(out, STREAM);
    }
    assert_eq!(
        support::tcp_cut::literal_len(b"* 1 FETCH (BODY[] {12}\r\n"),
        Some(12)
    );
    assert_eq!(
        support::tcp_cut::literal_len(b"a APPEND x {3+}\r\n"),
        Some(3)
    );
    assert_eq!(support::tcp_cut::literal_len(b"* OK {x}\r\n"), None);
}

#[test]
fn proxy_refuses_the_completion_of_the_matching_answer_whatever_the_chunking() {
    let tagged = STREAM
        .windows(5)
        .position(|w| w == b"t1 OK")
        .expect("tagged line");
    for chunk in [1, 2, 7, STREAM.len()] {
        let trigger = Trigger::Completion {
            pattern: b"BODY[]",
            nth: 0,
        };
        // The `)` lines after the literals continue a FETCH response: they
        // are not taken for a tagged completion.
        let mut s = Scanner::new(trigger);
        let mut out = Vec::new();
        let mut hit = false;
        for c in STREAM.chunks(chunk) {
            let (o, h) = s.feed(c);
            out.extend(o);
            if h {
                hit = true;
                out.extend(s.refuse_held());
                break;
            }
        }
        assert!(hit, "chunk {chunk}");
        let mut want = STREAM[..tagged].to_vec();
        want.extend_from_slice(b"t1 NO [SERVERBUG] injected\r\n");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want),
            "chunk {chunk}"
        );
        // No answer holds a SEARCH response: nothing is touched.
        let mut s = Scanner::new(Trigger::Completion {
            pattern: b"* SEARCH",
            nth: 0,
        });
        let mut out = Vec::new();
        for c in STREAM.chunks(chunk) {
            let (o, h) = s.feed(c);
            assert!(!h, "chunk {chunk}");
            out.extend(o);
        }
        out.extend(s.flush_all());
        assert_eq!(out, STREAM);
    }
}
