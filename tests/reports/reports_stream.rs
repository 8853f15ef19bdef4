//! A 200,000-record report is parsed record by record: the visitor sees
//! each record once, in order, and nothing collects them. Compressed
//! reports (.gz, .zip, .eml with a base64 attachment) are parsed as they
//! are decompressed (issue 21), and every bomb limit still holds.

use crate::util;

use std::fmt::Write;
use std::process::Command;

use mailauth::reports::parse::aggregate::{AggregateVisitor, SinkError, parse};
use mailauth::reports::parse::{AggregateHeader, AggregateSummary, Disposition, Record};

#[derive(Default)]
struct Count {
    headers: u64,
    records: u64,
    messages: u64,
    rejected: u64,
    last_ip: Option<std::net::IpAddr>,
    ends: u64,
}

impl AggregateVisitor for Count {
    fn header(&mut self, h: &AggregateHeader) -> Result<bool, SinkError> {
        assert_eq!(h.report_id, "big-1");
        self.headers += 1;
        Ok(true)
    }
    fn record(&mut self, r: &Record) -> Result<(), SinkError> {
        self.records += 1;
        self.messages += r.count;
        if r.disposition == Disposition::Reject {
            self.rejected += 1;
        }
        self.last_ip = Some(r.source_ip);
        Ok(())
    }
    fn end(&mut self, s: &AggregateSummary) -> Result<bool, SinkError> {
        assert_eq!(s.records, self.records);
        self.ends += 1;
        Ok(true)
    }
}

fn big_report(n: u32) -> String {
    let mut s = String::with_capacity(n as usize * 330);
    s.push_str(
        "<?xml version=\"1.0\"?><feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">\
         <version>1.0</version><report_metadata><org_name>Big</org_name>\
         <email>r@big.example</email><report_id>big-1</report_id><date_range>\
         <begin>1700000000</begin><end>1700086399</end></date_range></report_metadata>\
         <policy_published><domain>example.com</domain><p>reject</p></policy_published>",
    );
    for i in 0..n {
        let disp = if i % 4 == 0 { "reject" } else { "none" };
        let _ = write!(
            s,
            "<record><row><source_ip>10.{}.{}.{}</source_ip><count>{}</count><policy_evaluated>\
             <disposition>{disp}</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>\
             <identifiers><envelope_from>example.com</envelope_from><header_from>example.com</header_from>\
             </identifiers><auth_results><dkim><domain>example.com</domain><selector>s1</selector>\
             <result>pass</result></dkim><spf><domain>example.com</domain><scope>mfrom</scope>\
             <result>fail</result></spf></auth_results></record>",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            i % 7 + 1
        );
    }
    s.push_str("</feedback>");
    s
}

#[test]
fn two_hundred_thousand_records_stream_through_a_callback() {
    let n = 200_000u32;
    let xml = big_report(n);
    let mut c = Count::default();
    let summary = parse(xml.as_bytes(), &mut c).expect("parses");
    assert_eq!(c.headers, 1);
    assert_eq!(c.ends, 1);
    assert_eq!(c.records, u64::from(n));
    assert_eq!(summary.records, u64::from(n));
    let want_messages: u64 = (0..u64::from(n)).map(|i| i % 7 + 1).sum();
    assert_eq!(c.messages, want_messages);
    assert_eq!(summary.messages, want_messages);
    assert_eq!(c.rejected, u64::from(n).div_ceil(4));
    let last = n - 1;
    assert_eq!(
        c.last_ip,
        Some(
            format!(
                "10.{}.{}.{}",
                (last >> 16) & 255,
                (last >> 8) & 255,
                last & 255
            )
            .parse()
            .expect("ip")
        )
    );
}

/// A plain-XML file over the streaming threshold goes through the file
/// source unread and is parsed as it is read: the database ends up with
/// exactly what the in-memory path stores for the same report.
#[test]
fn a_large_xml_file_is_stored_as_a_stream_like_in_memory() {
    use mailauth::reports::IngestLimits;
    use mailauth::reports::ingest::{self, FileSource, Source};
    use mailauth::reports::store::{ReportStore, SqliteStore, Table};

    let n = 40_000u32;
    let xml = big_report(n);
    assert!(xml.len() > 8 << 20, "the report must be over the threshold");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.xml");
    std::fs::write(&path, &xml).expect("write");

    let mut src = FileSource::new([path.clone()], 64 << 20);
    let item = src.next_item().expect("one item").expect("readable");
    assert!(item.stream && item.bytes.is_empty(), "not streamed");

    let limits = IngestLimits::default();
    let mut streamed = SqliteStore::open(&dir.path().join("s.db")).expect("db");
    let mut src = FileSource::new([path.clone()], 64 << 20);
    let s = ingest::run(&mut src, &mut streamed, &limits, &mut |_| {}).expect("run");
    assert!(s.invalid.is_empty() && s.errors.is_empty(), "{s:?}");
    assert_eq!((s.reports, s.records), (1, u64::from(n)));

    let mut in_memory = SqliteStore::open(&dir.path().join("m.db")).expect("db");
    let found = in_memory
        .ingest_item("big.xml", xml.as_bytes(), &limits)
        .expect("db ok")
        .expect("parses");
    assert_eq!(found[0].records, u64::from(n));
    assert_eq!(
        streamed.count(Table::Records).expect("count"),
        in_memory.count(Table::Records).expect("count")
    );
    let a = streamed.list(None).expect("list");
    let b = in_memory.list(None).expect("list");
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].records, a[0].messages, &a[0].report_id),
        (b[0].records, b[0].messages, &b[0].report_id)
    );

    // Over the limit of a decompressed report it is refused, never
    // truncated (issue 21: the same limit as the report compressed).
    let mut small = SqliteStore::open(&dir.path().join("l.db")).expect("db");
    let tight = IngestLimits {
        max_decompressed_bytes: (xml.len() as u64) - 1,
        ..IngestLimits::default()
    };
    let mut file = std::fs::File::open(&path).expect("open");
    let err = small
        .ingest_xml_stream("big.xml", &mut file, &tight)
        .expect("db ok")
        .expect_err("too large");
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    assert_eq!(small.count(Table::Records).expect("count"), 0);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn zip(name: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file(name, opts).expect("start");
    w.write_all(data).expect("write");
    w.finish().expect("finish").into_inner()
}

/// A report mail with `data` as a base64 attachment (RFC 2045 section
/// 6.8, lines of 76 characters).
fn eml(name: &str, ctype: &str, data: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut lines = String::with_capacity(b64.len() * 78 / 76 + 2);
    for chunk in b64.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(chunk).expect("ascii"));
        lines.push_str("\r\n");
    }
    format!(
        "From: noreply-dmarc@big.example\r\nTo: dmarc@example.com\r\n\
         Subject: Report Domain: example.com\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\nReport attached.\r\n--b\r\n\
         Content-Type: {ctype}; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{lines}--b--\r\n"
    )
    .into_bytes()
}

/// The report in every form it arrives in: name and bytes.
fn forms(xml: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let gz = gzip(xml);
    let zipped = zip("report.xml", xml);
    vec![
        ("report.xml.gz", gz.clone()),
        ("report.zip", zipped.clone()),
        (
            "report-gz.eml",
            eml("report.xml.gz", "application/gzip", &gz),
        ),
        (
            "report-zip.eml",
            eml("report.zip", "application/zip", &zipped),
        ),
    ]
}

/// Counts what reaches it.
#[derive(Default)]
struct Seen {
    records: u64,
}

impl AggregateVisitor for Seen {
    fn header(&mut self, _: &AggregateHeader) -> Result<bool, SinkError> {
        Ok(true)
    }
    fn record(&mut self, _: &Record) -> Result<(), SinkError> {
        self.records += 1;
        Ok(())
    }
}

impl mailauth::reports::parse::ReportSink for Seen {
    fn failure(&mut self, _: &mailauth::reports::parse::FailureReport) -> Result<bool, SinkError> {
        Ok(true)
    }
    fn tls(&mut self, _: &mailauth::reports::parse::TlsReport) -> Result<bool, SinkError> {
        Ok(true)
    }
}

/// A report followed, in the same compressed stream, by a bomb: 16 MiB of
/// spaces behind `</feedback>`, against a 4 MiB decompression limit.
fn report_then_bomb(n: u32) -> Vec<u8> {
    let mut xml = big_report(n).into_bytes();
    xml.resize(xml.len() + (16 << 20), b' ');
    xml
}

/// Issue 21: a compressed report is parsed as it is decompressed. Its
/// records reach the sink before the end of the compressed stream has been
/// inflated: here a bomb behind the report is met only after every record
/// was handed on (before, the whole layer was inflated first and the
/// sink saw nothing). The bomb is still refused in every form.
#[test]
fn compressed_reports_reach_the_sink_as_they_are_decompressed() {
    use mailauth::reports::IngestLimits;
    use mailauth::reports::parse::{ParseError, parse_item};

    let n = 2_000u32;
    let limits = IngestLimits {
        max_decompressed_bytes: 4 << 20,
        ..IngestLimits::default()
    };
    for (name, bytes) in forms(&report_then_bomb(n)) {
        let mut seen = Seen::default();
        let err = parse_item(&bytes, &limits, &mut seen).expect_err(name);
        assert!(
            matches!(err, ParseError::TooLarge { .. }),
            "{name}: want a limit error, got {err}"
        );
        assert!(
            err.to_string().contains("decompressed size") && err.to_string().contains("4194304"),
            "{name}: {err}"
        );
        assert_eq!(
            seen.records,
            u64::from(n),
            "{name}: the records must be parsed while the stream is inflated"
        );
    }
}

fn ingest_cmd(db: &std::path::Path, extra: &[&str], paths: &[&std::path::Path]) -> Command {
    util::mailauth(["reports", "--db"])
        .arg(db)
        .arg("ingest")
        .arg("--json")
        .args(extra)
        .args(paths)
        .command()
}

fn run_json(mut cmd: Command) -> (i32, serde_json::Value) {
    let out = cmd.output().expect("run mailauth");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

/// Issue 21: through `mailauth reports ingest`, a gzip, a zip and two mails
/// (base64 gzip, base64 zip) whose report is followed by a bomb are each set
/// aside with the limit named, nothing of them is stored, and the batch
/// goes on: the same reports without the bomb, in the same directory, are
/// stored whole.
#[test]
fn streamed_bombs_are_refused_and_the_batch_goes_on() {
    let n = 2_000u32;
    let dir = tempfile::tempdir().expect("tempdir");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    for (name, bytes) in forms(&report_then_bomb(n)) {
        std::fs::write(inbox.join(format!("a-bomb-{name}")), bytes).expect("write");
    }
    for i in 0..4 {
        // One report id per file, so that none is a duplicate.
        let xml = big_report(n).replace("big-1", &format!("good-{i}"));
        let (name, bytes) = forms(xml.as_bytes()).swap_remove(i);
        std::fs::write(inbox.join(format!("b-good-{name}")), bytes).expect("write");
    }
    let db = dir.path().join("r.db");
    let (code, s) = run_json(ingest_cmd(
        &db,
        &["--max-decompressed-bytes", "4194304"],
        &[&inbox],
    ));
    assert_eq!(code, 1, "invalid items exit 1: {s}");
    assert_eq!(s["items"], 8, "{s}");
    assert_eq!(s["reports"], 4, "{s}");
    assert_eq!(s["records"], 4 * u64::from(n), "{s}");
    let invalid = s["invalid"].as_array().expect("invalid list");
    assert_eq!(invalid.len(), 4, "{s}");
    for p in invalid {
        let (origin, reason) = (
            p["origin"].as_str().unwrap_or(""),
            p["reason"].as_str().unwrap_or(""),
        );
        assert!(origin.contains("a-bomb-"), "{p}");
        assert!(reason.contains("exceeds the limit of 4194304"), "{p}");
    }
    let conn = rusqlite::Connection::open(&db).expect("db");
    let (reports, records): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM reports), (SELECT count(*) FROM records)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!((reports, records), (4, 4 * i64::from(n)));
}

/// Issue 21: a plain-XML report and the same report compressed are held to
/// the same limit, the decompressed one (`--max-decompressed-bytes`):
/// before, the plain file was refused by `--max-input-bytes` (64 MiB by
/// default) while the same report gzip'd was read up to 512 MiB.
#[test]
fn a_report_is_held_to_the_same_size_limit_plain_or_compressed() {
    let xml = big_report(30_000);
    let size = xml.len() as u64;
    assert!(size > 8 << 20, "over the streaming threshold");
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("big.xml");
    let gz = dir.path().join("big.xml.gz");
    std::fs::write(&plain, &xml).expect("write");
    std::fs::write(&gz, gzip(xml.as_bytes())).expect("write");
    let gz_size = std::fs::metadata(&gz).expect("stat").len();

    // The raw input limit between the two sizes: both are read, the plain
    // file as a stream.
    let input = (gz_size + 1).to_string();
    for (i, file) in [&plain, &gz].into_iter().enumerate() {
        let db = dir.path().join(format!("ok{i}.db"));
        let (code, s) = run_json(ingest_cmd(&db, &["--max-input-bytes", &input], &[file]));
        assert_eq!(
            (code, &s["reports"], &s["records"]),
            (0, &1.into(), &30_000.into()),
            "{}: {s}",
            file.display()
        );
    }
    // The decompressed limit one byte short of the report: both refused,
    // naming that limit; nothing stored.
    let short = (size - 1).to_string();
    for (i, file) in [&plain, &gz].into_iter().enumerate() {
        let db = dir.path().join(format!("no{i}.db"));
        let (code, s) = run_json(ingest_cmd(
            &db,
            &["--max-decompressed-bytes", &short],
            &[file],
        ));
        assert_eq!(
            (code, &s["reports"]),
            (1, &0.into()),
            "{}: {s}",
            file.display()
        );
        let problems: Vec<_> = ["invalid", "errors"]
            .iter()
            .flat_map(|k| s[k].as_array().cloned().unwrap_or_default())
            .collect();
        assert_eq!(problems.len(), 1, "{s}");
        let reason = problems[0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(&format!("limit of {short}")),
            "{}: {reason}",
            file.display()
        );
    }
}
