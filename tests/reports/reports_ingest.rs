//! Store dedupe, sources (files, mbox, Maildir) and their crash safety,
//! and decompression bombs. Every scenario that touches the store runs on
//! SQLite and on PostgreSQL 15 (`sqlite::…` and `postgres::…` tests).

use crate::support;
use crate::util;

use std::io::Write;
use std::path::{Path, PathBuf};

use mailauth::reports::IngestLimits;
use mailauth::reports::ingest::{
    self, FileSource, Item, MaildirFolders, MaildirSource, MboxSource, Outcome, Source, Summary,
};
use mailauth::reports::parse::{ParseError, ReportKind};
use mailauth::reports::store::{ReportStore, SqliteStore, Table};
use support::postgres::TestStore;

both_stores!(
    reingest_is_a_duplicate_and_changes_nothing,
    failure_and_tls_reports_dedupe_too,
    rejected_report_stores_nothing,
    show_returns_records,
    directory_walk_ingests_every_sample,
    maildir_moves_after_commit_and_rerun_is_idempotent,
    interrupted_run_loses_nothing_and_counts_nothing_twice,
    maildir_folders_are_configurable,
    mbox_messages_are_ingested,
    oversized_file_is_refused_before_reading,
    huge_counts_are_set_aside_and_summary_still_works,
    control_characters_are_removed_alike_on_both_stores,
);

/// `mailauth reports <store flags> ARGS…`: exit code, stdout, stderr.
fn mailauth(st: &TestStore, args: &[&str]) -> (i32, String, String) {
    let out = util::Cmd::new()
        .arg("reports")
        .args(st.cli_args())
        .args(args)
        .output();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An aggregate report for `domain` (June 2024) with the given records.
fn aggregate_xml(report_id: &str, org: &str, domain: &str, records: &[(&str, &str)]) -> String {
    let mut xml = format!(
        "<feedback><report_metadata><org_name>{org}</org_name><report_id>{report_id}</report_id>\
         <date_range><begin>1718236800</begin><end>1718323199</end></date_range></report_metadata>\
         <policy_published><domain>{domain}</domain><p>none</p></policy_published>"
    );
    for (count, header_from) in records {
        xml.push_str(&format!(
            "<record><row><source_ip>192.0.2.1</source_ip><count>{count}</count><policy_evaluated>\
             <disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>\
             <identifiers><header_from>{header_from}</header_from></identifiers></record>"
        ));
    }
    xml + "</feedback>"
}

/// Issue 15: two records of `<count>9223372036854775807</count>` were
/// stored, and every later `reports summary` failed with an integer
/// overflow. Now the report is set aside with the reason, the batch goes
/// on, and the summary works.
fn huge_counts_are_set_aside_and_summary_still_works(st: &TestStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let huge = "9223372036854775807";
    std::fs::write(
        dir.path().join("a-huge.xml"),
        aggregate_xml(
            "huge",
            "o",
            "example.com",
            &[(huge, "example.com"), (huge, "example.com")],
        ),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("b-fine.xml"),
        aggregate_xml("fine", "o", "example.com", &[("5", "example.com")]),
    )
    .expect("write");
    // 257 records of 2^32 each: every one within `max_record_count`, the
    // total over `max_report_messages` (2^40).
    std::fs::write(
        dir.path().join("c-total.xml"),
        aggregate_xml(
            "total",
            "o",
            "example.com",
            &[("4294967296", "example.com"); 257],
        ),
    )
    .expect("write");
    let path = dir.path().to_str().expect("utf-8 path");
    let (code, out, err) = mailauth(st, &["ingest", "--json", path]);
    let s: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert_eq!(code, 1, "{s}");
    assert_eq!(s["reports"], 1, "{s}");
    let invalid = s["invalid"].as_array().expect("invalid");
    assert_eq!(invalid.len(), 2, "{s}");
    let reason = invalid[0]["reason"].as_str().expect("reason");
    assert_eq!(
        invalid[1]["reason"],
        "the report's total of row/count, 1103806595072 at record 257 (max_report_messages), \
         exceeds the limit of 1099511627776",
        "{s}"
    );
    assert!(
        invalid[0]["origin"]
            .as_str()
            .expect("origin")
            .ends_with("a-huge.xml"),
        "{s}"
    );
    assert_eq!(
        reason,
        "row/count 9223372036854775807 in record 1 (max_record_count) exceeds the limit of 4294967296"
    );
    assert_eq!(st.count(Table::Records), 1);
    let (code, out, err) = mailauth(st, &["summary", "--offline", "--since", "2024-01-01"]);
    assert_eq!(code, 0, "summary fails:\n{out}\n{err}");
    assert!(out.contains("example.com"), "{out}");
}

/// Issue 15: `&#0;` became U+0000, which PostgreSQL refuses in TEXT: the
/// whole run stopped at it. Now NUL and the other C0 controls (tab, LF
/// and CR kept) are removed at parse time, so both stores hold the same
/// text: in aggregate, failure and TLS reports.
fn control_characters_are_removed_alike_on_both_stores(st: &TestStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.xml"),
        aggregate_xml(
            "nul&#0;1",
            "Org&#0;&#27;]0;x&#7;",
            "exa&#0;mple.com",
            &[("3", "exa&#x0;mple.com")],
        ),
    )
    .expect("write");
    let tls = String::from_utf8(read("tlsrpt/rfc-example.json")).expect("utf-8");
    let tls = tls.replacen(
        "\"organization-name\": \"",
        "\"organization-name\": \"\\u0000Ctl",
        1,
    );
    assert!(tls.contains("\\u0000Ctl"), "sample changed: {tls}");
    std::fs::write(dir.path().join("b.json"), tls).expect("write");
    let mut ruf = read("forensic/dmarc_ruf_report_linkedin.eml");
    let at = ruf
        .windows(24)
        .position(|w| w == b"Reported-Domain: example")
        .expect("Reported-Domain")
        + 24;
    ruf.splice(at..at, [0u8, 0x1b]);
    std::fs::write(dir.path().join("c.eml"), ruf).expect("write");
    let path = dir.path().to_str().expect("utf-8 path");
    let (code, out, err) = mailauth(st, &["ingest", "--json", path]);
    let s: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(
        (&s["reports"], &s["tls_reports"], &s["failure_reports"]),
        (&1.into(), &1.into(), &1.into()),
        "{s}"
    );
    let (code, out, err) = mailauth(st, &["list", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("\\u0000") && !out.contains("\\u001b"),
        "{out}"
    );
    let rows: serde_json::Value = serde_json::from_str(&out).expect("json");
    let mut got: Vec<(String, String, String)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let f = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (f("kind"), f("org"), f("domain"))
        })
        .collect();
    got.sort();
    let kinds: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(kinds, ["aggregate", "failure", "tls"], "{out}");
    assert_eq!(got[0].1, "Org]0;x", "{out}");
    assert_eq!(got[0].2, "example.com", "{out}");
    assert_eq!(got[1].2, "example.com", "{out}");
    assert!(got[2].1.starts_with("Ctl"), "{out}");
}

fn data(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reports")).join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn run(source: &mut dyn Source, store: &mut dyn ReportStore) -> Summary {
    ingest::run(source, store, &IngestLimits::default(), &mut |_| {}).expect("ingest runs")
}

fn reingest_is_a_duplicate_and_changes_nothing(st: &TestStore) {
    let mut store = st.open();
    let xml = read("aggregate/nice-input.xml");
    let first = store
        .ingest_item("a", &xml, &IngestLimits::default())
        .expect("db ok")
        .expect("parses");
    assert!(!first[0].duplicate);
    assert_eq!(st.count(Table::Records), 20);
    // Same report in other containers: duplicates, nothing added.
    for rel in [
        "aggregate/nice-input.xml",
        "aggregate/nice-input.xml.gz",
        "aggregate/nice-input.xml.zip",
    ] {
        let again = store
            .ingest_item(rel, &read(rel), &IngestLimits::default())
            .expect("db ok")
            .expect("parses");
        assert!(again[0].duplicate, "{rel}");
    }
    assert_eq!(st.count(Table::Reports), 1);
    assert_eq!(st.count(Table::Records), 20);
    // A different reporter with otherwise similar data is a new report.
    store
        .ingest_item(
            "c",
            &read("aggregate/changed-input.xml"),
            &IngestLimits::default(),
        )
        .expect("db ok")
        .expect("parses");
    assert_eq!(st.count(Table::Reports), 2);
}

fn failure_and_tls_reports_dedupe_too(st: &TestStore) {
    let mut store = st.open();
    let limits = IngestLimits::default();
    for _ in 0..2 {
        for rel in [
            "forensic/dmarc_ruf_report_linkedin.eml",
            "tlsrpt/rfc8460.json",
        ] {
            store
                .ingest_item(rel, &read(rel), &limits)
                .expect("db")
                .expect("parses");
        }
    }
    assert_eq!(st.count(Table::FailureReports), 1);
    assert_eq!(st.count(Table::TlsReports), 1);
    assert_eq!(st.count(Table::TlsPolicies), 1);
    assert!(st.count(Table::TlsFailures) > 0);
    let rows = store.list(None).expect("list");
    let kinds: Vec<ReportKind> = rows.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, vec![ReportKind::Tls, ReportKind::Failure]);
}

fn rejected_report_stores_nothing(st: &TestStore) {
    let mut store = st.open();
    // Valid header, first record fine, second record broken: all or nothing.
    let xml = String::from_utf8(read(
        "aggregate/usssa.com!example.com!1538784000!1538870399.xml",
    ))
    .expect("utf-8");
    let pos = xml.rfind("<source_ip>").expect("second record");
    let end = xml[pos..].find("</source_ip>").expect("end") + pos;
    let broken = format!("{}<source_ip>not-an-ip{}", &xml[..pos], &xml[end..]);
    let got = store
        .ingest_item("x", broken.as_bytes(), &IngestLimits::default())
        .expect("db ok");
    assert!(
        matches!(
            got,
            Err(ParseError::InvalidValue {
                record: Some(2),
                ..
            })
        ),
        "{got:?}"
    );
    assert_eq!(st.count(Table::Reports), 0);
    assert_eq!(st.count(Table::Records), 0);
}

fn show_returns_records(st: &TestStore) {
    let mut store = st.open();
    store
        .ingest_item(
            "x",
            &read("aggregate/rfc9990-example.net!example.com!1700000000!1700086399.xml"),
            &IngestLimits::default(),
        )
        .expect("db")
        .expect("parses");
    let row = store.list(Some("example.com")).expect("list").remove(0);
    let d = store.show(row.kind, row.id).expect("db").expect("found");
    assert_eq!(d.records.len(), 2);
    assert_eq!(d.records[1].disposition, "reject");
    assert_eq!(d.records[1].reasons[0]["kind"], "other");
    let mailauth::reports::store::ReportDetails::Aggregate(a) = &d.details else {
        panic!("aggregate details: {:?}", d.details);
    };
    assert_eq!(a.policy_published.np.as_deref(), Some("reject"));
    assert_eq!(a.version.as_deref(), Some("2.0"));
    assert!(store.list(Some("other.example")).expect("list").is_empty());
}

fn directory_walk_ingests_every_sample(st: &TestStore) {
    let mut store = st.open();
    let dirs = || ["aggregate", "forensic", "tlsrpt"].map(data);
    let mut src = FileSource::new(dirs(), IngestLimits::default().max_input_bytes);
    let s = run(&mut src, store.as_mut());
    assert_eq!(s.items, 57, "{s:?}");
    let invalid: Vec<&str> = s
        .invalid
        .iter()
        .map(|p| p.origin.rsplit('/').next().unwrap_or_default())
        .collect();
    assert_eq!(invalid, vec!["empty.xml", "test_empty.xml"], "{s:?}");
    assert_eq!(s.failure_reports, 5);
    // rfc8460.json and rfc-example.json are the same RFC 8460 example report.
    assert_eq!(s.tls_reports, 9);
    // 41 aggregate files, 2 invalid: 39 reports, of which the .gz/.zip
    // copies and re-sent reports are duplicates; plus one failure report
    // that is a duplicate: forensic/source-ip-comment.eml is the LinkedIn
    // report again, with a comment after its Source-IP.
    assert_eq!(s.reports + s.duplicates, 39 + 1 + 1, "{s:?}");
    assert_eq!(s.reports, 31, "{s:?}");
    assert_eq!(st.count(Table::Reports) as u64, s.reports);
    assert_eq!(st.count(Table::Records) as u64, s.records);
    // Again: all duplicates.
    let mut src = FileSource::new(dirs(), IngestLimits::default().max_input_bytes);
    let again = run(&mut src, store.as_mut());
    assert_eq!(
        (again.reports, again.failure_reports, again.tls_reports),
        (0, 0, 0)
    );
    // 39 aggregate, 6 failure (5 reports, one of them twice), 10 TLS.
    assert_eq!(again.duplicates, 39 + 6 + 10);
}

fn make_maildir(root: &Path, files: &[(&str, &[u8])]) {
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).expect("mkdir");
    }
    for (name, bytes) in files {
        std::fs::write(root.join("new").join(name), bytes).expect("write");
    }
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

fn maildir_moves_after_commit_and_rerun_is_idempotent(st: &TestStore) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = tmp.path().join("Maildir");
    make_maildir(
        &md,
        &[
            ("1.good", &read("aggregate/twilight.eml")),
            ("2.tls", &read("tlsrpt/google.com_smtp_tls_report.eml")),
            ("3.junk", b"Subject: hello\r\n\r\njust a note\r\n"),
            ("4.dup", &read("aggregate/twilight.eml")),
        ],
    );
    let mut store = st.open();
    let mut src = MaildirSource::open(&md, MaildirFolders::default(), 1 << 20).expect("maildir");
    let s = run(&mut src, store.as_mut());
    assert_eq!(
        (s.items, s.reports, s.tls_reports, s.duplicates),
        (4, 1, 1, 1),
        "{s:?}"
    );
    assert_eq!(s.invalid.len(), 1);
    assert!(s.invalid[0].reason.contains("no report found"), "{s:?}");
    assert!(names(&md.join("new")).is_empty());
    assert_eq!(
        names(&md.join(".Archive/cur")),
        vec!["1.good", "2.tls", "4.dup"]
    );
    assert_eq!(names(&md.join(".Invalid/cur")), vec!["3.junk"]);

    // Simulate a crash after commit, before the move: put a stored message
    // back. The re-run counts it as a duplicate and archives it.
    std::fs::copy(md.join(".Archive/cur/1.good"), md.join("new/5.again")).expect("copy");
    drop(store);
    let mut store = st.open();
    let mut src = MaildirSource::open(&md, MaildirFolders::default(), 1 << 20).expect("maildir");
    let s = run(&mut src, store.as_mut());
    assert_eq!((s.items, s.reports, s.duplicates), (1, 0, 1), "{s:?}");
    assert_eq!(st.count(Table::Reports), 1);
    assert!(names(&md.join(".Archive/cur")).contains(&"5.again".to_owned()));
}

/// A source that "crashes" (stops) between the commit and the move.
struct CrashAfterCommit<S> {
    inner: S,
    moves_left: usize,
}

impl<S: Source> Source for CrashAfterCommit<S> {
    fn next_item(&mut self) -> Option<Result<Item, ingest::IngestError>> {
        if self.moves_left == 0 {
            return None;
        }
        self.inner.next_item()
    }
    fn finish(&mut self, item: &Item, outcome: &Outcome) -> Result<(), ingest::IngestError> {
        self.moves_left -= 1;
        if self.moves_left == 0 {
            return Ok(()); // "killed" before moving this one
        }
        self.inner.finish(item, outcome)
    }
}

fn interrupted_run_loses_nothing_and_counts_nothing_twice(st: &TestStore) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = tmp.path().join("Maildir");
    let msgs: Vec<(String, Vec<u8>)> = [
        "aggregate/twilight.eml",
        "aggregate/mimecast-weird-gzip.eml",
        "aggregate/Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml",
    ]
    .iter()
    .enumerate()
    .map(|(i, r)| (format!("{i}.msg"), read(r)))
    .collect();
    let refs: Vec<(&str, &[u8])> = msgs
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    make_maildir(&md, &refs);
    let mut total_new = 0;
    for moves in [2, usize::MAX] {
        let mut store = st.open();
        let inner = MaildirSource::open(&md, MaildirFolders::default(), 1 << 20).expect("maildir");
        let mut src = CrashAfterCommit {
            inner,
            moves_left: moves,
        };
        let s = run(&mut src, store.as_mut());
        total_new += s.reports;
    }
    assert_eq!(total_new, 3);
    assert_eq!(st.count(Table::Reports), 3);
    assert!(names(&md.join("new")).is_empty());
    assert_eq!(names(&md.join(".Archive/cur")).len(), 3);
}

fn maildir_folders_are_configurable(st: &TestStore) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = tmp.path().join("M");
    make_maildir(&md, &[("a", b"not a mail at all")]);
    let folders = MaildirFolders {
        archive: ".Done".to_owned(),
        invalid: ".Bad".to_owned(),
    };
    let mut store = st.open();
    let mut src = MaildirSource::open(&md, folders, 1 << 20).expect("maildir");
    let s = run(&mut src, store.as_mut());
    assert_eq!(s.invalid.len(), 1);
    assert_eq!(names(&md.join(".Bad/cur")), vec!["a"]);
    assert!(MaildirSource::open(&tmp.path().join("nope"), MaildirFolders::default(), 1).is_err());
}

fn mbox_messages_are_ingested(st: &TestStore) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("reports.mbox");
    let mut f = std::fs::File::create(&path).expect("create");
    for rel in [
        "aggregate/twilight.eml",
        "forensic/dmarc_ruf_report_linkedin.eml",
        "tlsrpt/google.com_smtp_tls_report.eml",
    ] {
        let msg = read(rel);
        let msg = String::from_utf8_lossy(&msg).replace("\r\n", "\n");
        writeln!(f, "From reports@example.net Sat Jan  1 00:00:00 2000").expect("write");
        // The linkedin sample already starts with its own "From " line.
        // RFC 4155: body lines starting with "From " are quoted.
        for line in msg.lines().skip_while(|l| l.starts_with("From ")) {
            if line.starts_with("From ") {
                write!(f, ">").expect("write");
            }
            writeln!(f, "{line}").expect("write");
        }
        writeln!(f).expect("write");
    }
    drop(f);
    let mut store = st.open();
    let mut src = MboxSource::new(path.clone());
    let s = run(&mut src, store.as_mut());
    assert_eq!(
        (s.items, s.reports, s.failure_reports, s.tls_reports),
        (3, 1, 1, 1),
        "{s:?}"
    );
    let mut src = MboxSource::new(path);
    let again = run(&mut src, store.as_mut());
    assert_eq!((again.reports, again.duplicates), (0, 3), "{again:?}");
}

fn zip_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file(name, opts).expect("start");
    w.write_all(data).expect("write");
    w.finish().expect("finish").into_inner()
}

#[test]
fn zip_bomb_rejected() {
    // 300 MiB of '<' compresses to about 300 KB.
    let bomb = zip_of("report.xml", &vec![b'<'; 300 << 20]);
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let limits = IngestLimits {
        max_decompressed_bytes: 64 << 20,
        ..IngestLimits::default()
    };
    let err = mailauth::reports::parse::parse_all(&bomb, &limits).expect_err("bomb");
    assert!(matches!(err, ParseError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("decompressed size"), "{err}");
    // Under the size cap, the ratio cap catches it.
    let err =
        mailauth::reports::parse::parse_all(&bomb, &IngestLimits::default()).expect_err("bomb");
    assert!(err.to_string().contains("compression ratio"), "{err}");
}

#[test]
fn gzip_bomb_in_a_mail_rejected_and_batch_goes_on() {
    use base64::Engine;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b' '; 200 << 20]).expect("compress");
    let gz = enc.finish().expect("gzip");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&gz);
    let mail = format!(
        "From: a@example.net\r\nSubject: Report\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/gzip; name=\"r.xml.gz\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("1-bomb.eml"), mail).expect("write");
    std::fs::write(tmp.path().join("2-good.xml"), read("aggregate/google.xml")).expect("write");
    let mut store = SqliteStore::open_in_memory().expect("db");
    let mut src = FileSource::new([tmp.path().to_owned()], 1 << 26);
    let s = run(&mut src, &mut store);
    assert_eq!(s.reports, 1, "{s:?}");
    assert_eq!(s.invalid.len(), 1);
    assert!(s.invalid[0].reason.contains("compression ratio"), "{s:?}");
}

fn oversized_file_is_refused_before_reading(st: &TestStore) {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("big.xml"), vec![b' '; 4096]).expect("write");
    let mut store = st.open();
    let mut src = FileSource::new([tmp.path().to_owned()], 1024);
    let s = run(&mut src, store.as_mut());
    assert_eq!(s.errors.len(), 1);
    assert!(
        s.errors[0].reason.contains("more than the limit of 1024"),
        "{s:?}"
    );
}

/// Issue 15: SQLite ran with `synchronous=NORMAL` (the WAL is synced only
/// at checkpoints) and the Maildir rename was not followed by a directory
/// fsync: after a power cut a report could be gone from the store while
/// its message had left `new/`. Checked on the system calls (strace):
/// before each message's rename the WAL was fsync'd (its commit is
/// durable), and after it the target and source directories are. A real
/// power cut is not simulated. PostgreSQL commits are durable on the
/// server (`synchronous_commit=on`, its default).
#[test]
fn maildir_rename_follows_a_durable_commit_and_is_synced() {
    let strace = std::process::Command::new("strace").arg("-V").output();
    if strace.is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "strace is missing (scripts/install-deps.sh installs it)"
        );
        eprintln!("SKIP: strace is missing");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = tmp.path().join("Maildir");
    make_maildir(
        &md,
        &[
            ("1.eml", &read("aggregate/nice-input.xml")),
            ("2.eml", &read("tlsrpt/google.json")),
            ("3.eml", b"not a report"),
        ],
    );
    let log = tmp.path().join("strace.log");
    let out = std::process::Command::new("strace")
        .args([
            "-f",
            "-y",
            "-e",
            "trace=pwrite64,write,fsync,fdatasync,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&log)
        .arg(util::bin())
        .args(["reports", "--db"])
        .arg(tmp.path().join("reports.db"))
        .args(["ingest", "--maildir"])
        .arg(&md)
        .output()
        .expect("strace mailauth");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let log = std::fs::read_to_string(&log).expect("strace log");
    // One call per line, without the pid column; a call another thread
    // interrupted is its "<unfinished ...>" line (which names the file),
    // not the "resumed" one.
    let calls: Vec<&str> = log
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, c)| c.trim_start()))
        .filter(|c| !c.starts_with("<...") && !c.starts_with("+++"))
        .collect();
    let renames: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].starts_with("rename"))
        .collect();
    assert_eq!(renames.len(), 3, "{log}");
    let mut from = 0;
    for (n, &i) in renames.iter().enumerate() {
        // The message's commit: the last write to the WAL before the
        // rename, then an fsync of the WAL.
        let wal = |c: &&str, call: &str| c.starts_with(call) && c.contains("reports.db-wal>");
        let last_write = calls[from..i]
            .iter()
            .rposition(|c| wal(c, "pwrite64(") || wal(c, "write("));
        let wal_sync = last_write.is_some_and(|w| {
            calls[from + w..i]
                .iter()
                .any(|c| wal(c, "fsync(") || wal(c, "fdatasync("))
        });
        let next = renames.get(n + 1).copied().unwrap_or(calls.len());
        let after = &calls[i + 1..next];
        let folder = if calls[i].contains(".Invalid") {
            ".Invalid"
        } else {
            ".Archive"
        };
        let target_sync = after
            .iter()
            .any(|c| c.starts_with("fsync(") && c.contains(&format!("{folder}/cur>")));
        let source_sync = after
            .iter()
            .any(|c| c.starts_with("fsync(") && c.contains("Maildir/new>"));
        // The invalid message has nothing to commit.
        if folder == ".Archive" {
            assert!(wal_sync, "no WAL fsync before {}:\n{log}", calls[i]);
        }
        assert!(
            target_sync && source_sync,
            "no directory fsync after {}:\n{log}",
            calls[i]
        );
        from = i + 1;
    }
}

/// A power cut at any moment of `reports ingest DIR` into SQLite: the
/// files are committed in groups, and the WAL is checkpointed by a second
/// connection on a thread of its own (`store::checkpoint`) while the
/// writing thread goes on with the next group, so fsyncs of the WAL and
/// of the database file come from two threads. The run is traced and the
/// disk rebuilt after each fsync, as in the Maildir test below; in every
/// state the store opens and passes `integrity_check`, and holds the
/// reports of a prefix of the files (groups are committed in order, each
/// all or nothing); after the run, all of them.
#[test]
fn directory_ingest_with_checkpoints_on_their_thread_survives_a_power_cut_at_any_fsync() {
    use support::powercut;
    if !powercut::require_strace() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let disk = tmp.path().join("disk");
    std::fs::create_dir_all(&disk).expect("mkdir");
    // More files than two groups hold (256 each): three groups at least,
    // the checkpoints of the first ones running beside the next one's
    // writes.
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let ids: Vec<String> = (0..600).map(|i| format!("pc-{i:03}")).collect();
    for id in &ids {
        let records: Vec<(String, String)> = (0..20)
            .map(|n| (format!("{}", n + 1), format!("d{n}.example.com")))
            .collect();
        let records: Vec<(&str, &str)> = records
            .iter()
            .map(|(c, d)| (c.as_str(), d.as_str()))
            .collect();
        let xml = aggregate_xml(id, "o", "example.com", &records);
        std::fs::write(input.join(format!("{id}.xml")), xml).expect("write");
    }
    let db = disk.join("reports.db");
    drop(SqliteStore::open(&db).expect("create the store"));
    let cmd = util::mailauth(["reports", "--db"])
        .arg(&db)
        .arg("ingest")
        .arg(&input)
        .command();
    let (out, trace) = powercut::trace(&disk, cmd, &tmp.path().join("strace.log"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let states = trace.crash_states();
    let mut partial = 0;
    // States between groups whose database file holds more than before
    // the run: a checkpoint had copied pages into it and synced it.
    let mut checkpointed = 0;
    let initial = states[0].entries.get(Path::new("reports.db")).cloned();
    for (n, state) in states.iter().enumerate() {
        let at = format!(
            "power cut after {} of {} operations",
            state.after_ops,
            trace.ops.len()
        );
        let here = tmp.path().join(format!("state-{n}"));
        let (store, mut stored) = crash_state_store(state, &here, "reports.db", &at);
        assert_eq!(
            store.count(Table::Records).expect("count"),
            stored.len() as i64 * 20,
            "{at}"
        );
        drop(store);
        stored.sort();
        assert_eq!(stored, ids[..stored.len()], "{at}: not a prefix");
        if n + 1 == states.len() {
            assert_eq!(stored.len(), ids.len(), "{at}: after the run");
        } else if !stored.is_empty() && stored.len() < ids.len() {
            partial += 1;
            if state.entries.get(Path::new("reports.db")) != initial.as_ref() {
                checkpointed += 1;
            }
        }
        std::fs::remove_dir_all(&here).expect("remove state");
    }
    println!(
        "{} crash states from {} traced operations, {partial} between groups \
         ({checkpointed} of them after a checkpoint)",
        states.len(),
        trace.ops.len()
    );
    assert!(
        partial > 0,
        "no state between two groups: the test tested nothing"
    );
}

/// The disk of a power cut (`state`) rebuilt in `here`: the store `db` in
/// it passes SQLite's `integrity_check`, and is opened; with the report
/// ids it holds. `at` names the state in a failure.
fn crash_state_store(
    state: &support::powercut::CrashState,
    here: &Path,
    db: &str,
    at: &str,
) -> (SqliteStore, Vec<String>) {
    // A store whose files lie at the root has no directory entry that
    // makes `here`.
    std::fs::create_dir_all(here).expect("mkdir");
    state.materialize(here);
    let file = here.join(db);
    let conn = rusqlite::Connection::open(&file).expect("open the store");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok", "{at}");
    drop(conn);
    let store = SqliteStore::open(&file).expect("open the store");
    let stored = store
        .list(None)
        .expect("list")
        .into_iter()
        .map(|r| r.report_id)
        .collect();
    (store, stored)
}

/// Issue 15: a power cut at any moment of `reports ingest --maildir` into
/// SQLite loses nothing. The run is traced (strace) and the disk is
/// rebuilt as a power cut would leave it after each fsync, keeping only
/// the file data and directory entries fsync had made durable
/// (`support::powercut`). In every such state the store opens and passes
/// `integrity_check`, every message is still somewhere (in `new/`, the
/// archive or the invalid folder), and every message that has left `new/`
/// has its report in the store; after the run, every move is durable.
/// Fails with `synchronous=NORMAL` (the WAL is not synced before the
/// rename), without the directory fsyncs after the rename (the moves are
/// not durable after the run), and without the fsync of a new folder
/// (its `cur/` entry was never durable: a message renamed into it was in
/// neither place).
#[test]
fn maildir_ingest_loses_nothing_to_a_power_cut_at_any_fsync() {
    use support::powercut;
    if !powercut::require_strace() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let disk = tmp.path().join("disk");
    let md = disk.join("Maildir");
    // (message, the report id it holds: None for the invalid one)
    let messages: Vec<(String, Option<String>)> = (0..4)
        .map(|i| (format!("{i}.eml"), Some(format!("pc-{i}"))))
        .chain([("9.eml".to_owned(), None)])
        .collect();
    let bodies: Vec<(String, Vec<u8>)> = messages
        .iter()
        .map(|(name, id)| {
            let body = match id {
                Some(id) => aggregate_xml(id, "o", "example.com", &[("3", "example.com")]),
                None => "not a report".to_owned(),
            };
            (name.clone(), body.into_bytes())
        })
        .collect();
    make_maildir(
        &md,
        &bodies
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect::<Vec<_>>(),
    );
    // The store exists before the run (and, like the Maildir, is on disk:
    // the harness takes the state before the run as durable).
    let db = disk.join("reports.db");
    drop(SqliteStore::open(&db).expect("create the store"));
    let cmd = util::mailauth(["reports", "--db"])
        .arg(&db)
        .args(["ingest", "--maildir"])
        .arg(&md)
        .command();
    let (out, trace) = powercut::trace(&disk, cmd, &tmp.path().join("strace.log"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let states = trace.crash_states();
    let mut left = 0;
    for (n, state) in states.iter().enumerate() {
        let at = format!(
            "power cut after {} of {} operations",
            state.after_ops,
            trace.ops.len()
        );
        let here = tmp.path().join(format!("state-{n}"));
        let (store, stored) = crash_state_store(state, &here, "reports.db", &at);
        drop(store);
        let source: Vec<String> =
            [state.names_in("Maildir/new"), state.names_in("Maildir/cur")].concat();
        let handled: Vec<String> = [
            state.names_in("Maildir/.Archive/cur"),
            state.names_in("Maildir/.Invalid/cur"),
        ]
        .concat();
        for (name, id) in &messages {
            let in_source = source.contains(name);
            assert!(
                in_source || handled.contains(name),
                "{at}: message {name} is in neither new/ nor a folder"
            );
            if let (false, Some(id)) = (in_source, id) {
                left += 1;
                assert!(
                    stored.contains(id),
                    "{at}: message {name} has left new/ but report {id} is not in the store \
                     (stored: {stored:?})"
                );
            }
        }
        if n + 1 == states.len() {
            // After the run: every move is durable.
            assert!(source.is_empty(), "{at}: still in the inbox: {source:?}");
        }
        std::fs::remove_dir_all(&here).expect("remove state");
    }
    println!(
        "{} crash states from {} traced operations; a moved message was checked {left} times",
        states.len(),
        trace.ops.len()
    );
    assert!(
        left > 0,
        "no state had a moved message: the test tested nothing"
    );
}
