//! Hostile report inputs against the real `mailauth reports ingest`: a
//! 1 GB report, zip and gzip bombs (1000:1 and beyond), MIME nested ten
//! levels deep, a report with a million records, and compressed items as
//! large as the input limit allows, read from their files as parsed. Each input is
//! generated on the fly into a temp dir (never committed); each run has a
//! wall-clock bound (a hang fails the test) and a peak-memory bound read
//! from the child's own rusage.
//!
//! Owns the report-side limit tests; leaves the limits themselves to
//! `reports::IngestLimits` and the config-side limits to
//! `tests/limits_config.rs`.
//!
//! The million-record report runs in CI as a 100,000-record report (about
//! 35 MB of XML, same code path); set `MAILAUTH_LIMITS_FULL=1` for the full
//! million.

mod support;
mod util;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::bounded::{Bounded, run_bounded};

fn ingest(db: &Path, args: &[&Path], extra: &[&str]) -> Command {
    util::mailauth(["reports", "--db"])
        .arg(db)
        .arg("ingest")
        .arg("--json")
        .args(extra)
        .args(args)
        .command()
}

fn summary(run: &Bounded) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "summary is not JSON ({e}); exit {}\nstdout:\n{}\nstderr:\n{}",
            run.code, run.stdout, run.stderr
        )
    })
}

/// The single reason an ingest run gave for rejecting its one item.
fn only_rejection(run: &Bounded) -> String {
    let s = summary(run);
    let mut reasons: Vec<String> = ["invalid", "errors"]
        .iter()
        .flat_map(|k| s[k].as_array().cloned().unwrap_or_default())
        .map(|p| p["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(reasons.len(), 1, "want exactly one rejected item: {s}");
    assert_eq!(s["reports"], 0, "nothing may be stored: {s}");
    reasons.remove(0)
}

const MIB: i64 = 1024;

fn header(domain: &str, report_id: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata>
    <org_name>limits.example</org_name>
    <email>noreply@limits.example</email>
    <report_id>{report_id}</report_id>
    <date_range><begin>1718236800</begin><end>1718323199</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct>
  </policy_published>
"#
    )
}

/// Record `i`: distinct source addresses and counts, so the XML compresses
/// like a real report (well under 1000:1) rather than like a bomb.
fn record(i: u64) -> String {
    format!(
        "  <record><row><source_ip>10.{}.{}.{}</source_ip><count>{}</count>\
<policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>\
<identifiers><header_from>example.com</header_from></identifiers>\
<auth_results><dkim><domain>example.com</domain><result>pass</result><selector>s{}</selector></dkim>\
<spf><domain>bounce{}.example.com</domain><result>fail</result></spf></auth_results></record>\n",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff,
        i % 97 + 1,
        i % 13,
        i % 1009,
    )
}

/// Writes a gzip'd aggregate report with `n` records; returns the sum of
/// the counts.
fn write_big_report(path: &Path, n: u64) -> u64 {
    let file = std::fs::File::create(path).expect("create report");
    let mut gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    gz.write_all(header("example.com", &format!("big-{n}")).as_bytes())
        .expect("write");
    let mut messages = 0;
    let mut buf = String::with_capacity(1 << 20);
    for i in 0..n {
        buf.push_str(&record(i));
        messages += i % 97 + 1;
        if buf.len() > (1 << 20) - 1024 {
            gz.write_all(buf.as_bytes()).expect("write");
            buf.clear();
        }
    }
    buf.push_str("</feedback>\n");
    gz.write_all(buf.as_bytes()).expect("write");
    gz.finish().expect("gzip finish").flush().expect("flush");
    messages
}

#[test]
fn a_million_records_are_all_stored_in_bounded_memory() {
    let full = std::env::var("MAILAUTH_LIMITS_FULL").is_ok_and(|v| v == "1");
    let n: u64 = if full { 1_000_000 } else { 100_000 };
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = tmp.path().join("big.xml.gz");
    let messages = write_big_report(&report, n);
    let db = tmp.path().join("reports.db");
    let run = run_bounded(
        ingest(&db, &[&report], &[]),
        Duration::from_secs(if full { 1800 } else { 300 }),
    );
    let s = summary(&run);
    assert_eq!(run.code, 0, "stderr:\n{}\nsummary: {s}", run.stderr);
    assert_eq!(s["reports"], 1, "{s}");
    assert_eq!(s["records"], n, "{s}");
    // The records are in the database with their counts.
    let conn = rusqlite::Connection::open(&db).expect("open db");
    let (rows, sum): (i64, i64) = conn
        .query_row("SELECT COUNT(*), SUM(count) FROM records", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("count records");
    assert_eq!(rows as u64, n);
    assert_eq!(sum as u64, messages);
    // The decompressed XML is held once (about 350 bytes a record); the
    // records themselves are streamed, not collected.
    let xml_kib = (n as i64 * 400) / 1024;
    let bound = xml_kib + 160 * MIB;
    assert!(
        run.max_rss_kib < bound,
        "peak RSS {} KiB for {n} records, bound {bound} KiB",
        run.max_rss_kib
    );
    eprintln!(
        "{n} records: {:?}, peak RSS {} MiB",
        run.elapsed,
        run.max_rss_kib / MIB
    );
}

/// Writes the aggregate report of `n` records to `out`, a MB at a time.
fn write_xml(out: &mut dyn Write, n: u64) {
    out.write_all(header("example.com", &format!("stored-{n}")).as_bytes())
        .expect("write");
    let mut buf = String::with_capacity(1 << 20);
    for i in 0..n {
        buf.push_str(&record(i));
        if buf.len() > (1 << 20) - 1024 {
            out.write_all(buf.as_bytes()).expect("write");
            buf.clear();
        }
    }
    buf.push_str("</feedback>\n");
    out.write_all(buf.as_bytes()).expect("write");
}

/// Issue 21: a compressed item is read from its file as it is parsed,
/// never held whole nor copied for the parser, and a mail's attachment is
/// decoded as it is read. The report is stored uncompressed inside gzip
/// and zip (deflate's "stored" blocks), so that each item is as large as
/// the XML (43 MB as `.xml.gz` and `.zip`; a mail of 41 MB with a 30 MB
/// `.xml.gz` attached in base64): holding one item and a copy of it took
/// more than the bound, while the streamed items need what a small one
/// does. The files are written as they are generated: the child's peak
/// RSS counts the test process's own peak (the child starts as a copy of
/// it), which must stay small too.
#[test]
fn a_large_compressed_item_is_read_from_its_file_in_bounded_memory() {
    use base64::Engine as _;
    use std::io::Read as _;
    let n: u64 = 100_000;
    let tmp = tempfile::tempdir().expect("tempdir");
    let gz_path = tmp.path().join("stored.xml.gz");
    let file = std::io::BufWriter::new(std::fs::File::create(&gz_path).expect("create"));
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::none());
    write_xml(&mut gz, n);
    gz.finish().expect("gzip").flush().expect("flush");
    // The attachment within `max_attachment_bytes` (32 MiB).
    let n_mail: u64 = 70_000;
    let small_gz = tmp.path().join("attached.xml.gz");
    let file = std::io::BufWriter::new(std::fs::File::create(&small_gz).expect("create"));
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::none());
    write_xml(&mut gz, n_mail);
    gz.finish().expect("gzip").flush().expect("flush");
    let zip_path = tmp.path().join("stored.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).expect("create"));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    zip.start_file("stored.xml", opts).expect("zip entry");
    write_xml(&mut zip, n);
    zip.finish().expect("zip");
    let eml_path = tmp.path().join("stored.eml");
    let mut eml = std::io::BufWriter::new(std::fs::File::create(&eml_path).expect("create"));
    eml.write_all(
        b"From: reports@limits.example\r\nTo: dmarc@example.com\r\n\
        Subject: Report domain: example.com\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
        Content-Type: text/plain\r\n\r\nA report.\r\n--b\r\n\
        Content-Type: application/gzip; name=\"stored.xml.gz\"\r\n\
        Content-Transfer-Encoding: base64\r\n\
        Content-Disposition: attachment; filename=\"stored.xml.gz\"\r\n\r\n",
    )
    .expect("write");
    // RFC 2045 section 6.8: lines of 76 characters, 57 bytes each.
    let mut gz_file = std::io::BufReader::new(std::fs::File::open(&small_gz).expect("open"));
    let mut chunk = [0u8; 57];
    loop {
        let mut got = 0;
        while got < chunk.len() {
            match gz_file.read(&mut chunk[got..]).expect("read") {
                0 => break,
                k => got += k,
            }
        }
        if got == 0 {
            break;
        }
        let line = base64::engine::general_purpose::STANDARD.encode(&chunk[..got]);
        eml.write_all(line.as_bytes()).expect("write");
        eml.write_all(b"\r\n").expect("write");
    }
    eml.write_all(b"--b--\r\n").expect("write");
    eml.flush().expect("flush");
    drop(eml);
    for (path, n) in [(&gz_path, n), (&zip_path, n), (&eml_path, n_mail)] {
        let size = std::fs::metadata(path).expect("size").len();
        assert!(size > 40_000_000, "{}: {size} bytes", path.display());
        let db = tmp.path().join("reports.db");
        let _ = std::fs::remove_file(&db);
        let run = run_bounded(ingest(&db, &[path], &[]), Duration::from_secs(300));
        let s = summary(&run);
        assert_eq!(run.code, 0, "stderr:\n{}\nsummary: {s}", run.stderr);
        assert_eq!(s["records"], n, "{}: {s}", path.display());
        let bound = 64 * MIB;
        assert!(
            run.max_rss_kib < bound,
            "{}: peak RSS {} KiB for a {size}-byte item, bound {bound} KiB",
            path.display(),
            run.max_rss_kib
        );
        eprintln!(
            "{}: {size} bytes, {:?}, peak RSS {} MiB",
            path.display(),
            run.elapsed,
            run.max_rss_kib / MIB
        );
    }
}

#[test]
fn a_1gb_report_is_refused_without_being_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = tmp.path().join("huge.xml");
    // A real 1 GiB file (sparse: the tail reads as NUL bytes), starting like
    // an aggregate report.
    let mut f = std::fs::File::create(&report).expect("create");
    f.write_all(header("example.com", "huge").as_bytes())
        .expect("write");
    f.set_len(1 << 30).expect("set_len");
    drop(f);
    let db = tmp.path().join("reports.db");
    let run = run_bounded(ingest(&db, &[&report], &[]), Duration::from_secs(60));
    let reason = only_rejection(&run);
    assert!(
        reason.contains("1073741824") && reason.contains("limit"),
        "reason should name the size and the limit: {reason}"
    );
    assert!(
        run.max_rss_kib < 100 * MIB,
        "peak RSS {} KiB: the file was read",
        run.max_rss_kib
    );
}

#[test]
fn a_1gb_report_behind_gzip_stops_at_the_decompression_limit() {
    // 1 GiB of report XML gzip'd to a few MB: under the input limit, over
    // the decompression limit once lowered to 64 MiB so the test stays
    // quick; the default (512 MiB) is the same code path.
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = tmp.path().join("huge.xml.gz");
    let file = std::fs::File::create(&report).expect("create");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    gz.write_all(header("example.com", "huge-gz").as_bytes())
        .expect("write");
    // 1 GiB of whitespace-separated comments compresses too well (a bomb);
    // records from a small rotating set keep the ratio near a real report's.
    let block: String = (0..4096).map(record).collect();
    let mut written = 0usize;
    while written < 80 << 20 {
        gz.write_all(block.as_bytes()).expect("write");
        written += block.len();
    }
    gz.finish().expect("gzip finish");
    let db = tmp.path().join("reports.db");
    let limit = (64u64 << 20).to_string();
    let run = run_bounded(
        ingest(&db, &[&report], &["--max-decompressed-bytes", &limit]),
        Duration::from_secs(120),
    );
    let reason = only_rejection(&run);
    assert!(
        reason.contains("limit") && reason.contains(&limit),
        "reason should name the decompression limit: {reason}"
    );
    assert!(
        run.max_rss_kib < 64 * MIB + 120 * MIB,
        "peak RSS {} KiB past the 64 MiB decompression limit",
        run.max_rss_kib
    );
}

/// Zeros deflate at about 1030:1: a 1000:1 bomb in one entry.
fn zip_bomb(path: &Path, inflated: u64) {
    zip_bomb_of(path, inflated, "", b' ');
}

/// A bomb in one zip entry: the report's start, then `open`, then
/// `inflated` bytes of `fill`.
fn zip_bomb_of(path: &Path, inflated: u64, open: &str, fill: u8) {
    let file = std::fs::File::create(path).expect("create");
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(inflated >= u32::MAX as u64);
    zip.start_file("report.xml", opts).expect("start entry");
    zip.write_all(header("example.com", "bomb").as_bytes())
        .expect("write");
    zip.write_all(open.as_bytes()).expect("write");
    let zeros = vec![fill; 1 << 20];
    let mut left = inflated;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        zip.write_all(&zeros[..n]).expect("write");
        left -= n as u64;
    }
    zip.finish().expect("finish zip");
}

#[test]
fn a_zip_bomb_is_refused_within_the_decompression_budget() {
    // Deflate tops out near 1030:1, so a one-layer bomb sits right at the
    // 1000:1 ratio cap: the ratio can only be judged once the entry is
    // inflated past the cap, and the decompression budget is what bounds
    // memory. Check both the default budget and a lowered one.
    let tmp = tempfile::tempdir().expect("tempdir");
    let bomb = tmp.path().join("bomb.zip");
    zip_bomb(&bomb, 1 << 30);
    let size = std::fs::metadata(&bomb).expect("stat").len();
    assert!(
        (1u64 << 30) / size >= 1000,
        "the bomb is only {}:1",
        (1u64 << 30) / size
    );
    let default_budget = 512 * MIB;
    for (args, budget_kib) in [
        (vec![], default_budget),
        (
            vec![
                "--max-decompressed-bytes".to_string(),
                (64u64 << 20).to_string(),
            ],
            64 * MIB,
        ),
    ] {
        let db = tmp.path().join("reports.db");
        let extra: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_bounded(ingest(&db, &[&bomb], &extra), Duration::from_secs(60));
        let reason = only_rejection(&run);
        assert!(
            reason.contains("ratio") || reason.contains("limit"),
            "reason should name the limit hit: {reason}"
        );
        assert!(
            run.max_rss_kib < budget_kib + 120 * MIB,
            "peak RSS {} KiB past the {budget_kib} KiB budget ({extra:?})",
            run.max_rss_kib
        );
    }
}

/// A bomb that is one tag that never ends (`<x aaaa…`): the parser must
/// hold the unfinished tag, so the window grows to the decompression
/// budget, and growing it must not hold two copies at once (mimalloc's
/// realloc copies: 1.3 GB of RSS against a 512 MiB budget before large
/// blocks went to the system's allocator).
#[test]
fn a_zip_bomb_of_one_endless_tag_is_refused_within_the_decompression_budget() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bomb = tmp.path().join("tag-bomb.zip");
    zip_bomb_of(&bomb, 1 << 30, "<x ", b'a');
    let db = tmp.path().join("reports.db");
    let run = run_bounded(ingest(&db, &[&bomb], &[]), Duration::from_secs(60));
    let reason = only_rejection(&run);
    assert!(
        reason.contains("limit"),
        "reason should name the limit hit: {reason}"
    );
    assert!(
        run.max_rss_kib < 512 * MIB + 120 * MIB,
        "peak RSS {} KiB past the 524288 KiB budget",
        run.max_rss_kib
    );
}

#[test]
fn a_nested_gzip_bomb_is_refused_in_bounded_memory() {
    // gzip(gzip(1 GiB of spaces)): each layer alone is about 1000:1, the
    // two together about a million to one.
    let tmp = tempfile::tempdir().expect("tempdir");
    let inner = {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(header("example.com", "nested").as_bytes())
            .expect("write");
        let spaces = vec![b' '; 1 << 20];
        for _ in 0..(1 << 10) {
            gz.write_all(&spaces).expect("write");
        }
        gz.finish().expect("finish")
    };
    let mut outer = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    outer.write_all(&inner).expect("write");
    let outer = outer.finish().expect("finish");
    let bomb = tmp.path().join("bomb.xml.gz.gz");
    std::fs::write(&bomb, &outer).expect("write bomb");
    let db = tmp.path().join("reports.db");
    let run = run_bounded(ingest(&db, &[&bomb], &[]), Duration::from_secs(60));
    let reason = only_rejection(&run);
    assert!(
        reason.contains("ratio") || reason.contains("limit"),
        "reason should name the limit hit: {reason}"
    );
    assert!(
        run.max_rss_kib < 100 * MIB,
        "peak RSS {} KiB",
        run.max_rss_kib
    );
}

/// A message whose aggregate report sits `depth` `message/rfc822` layers
/// down.
fn nested_message(depth: usize, xml: &str) -> String {
    let mut body = format!(
        "From: reports@limits.example\r\nTo: dmarc@example.com\r\nSubject: Report\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n\
--b0\r\nContent-Type: text/plain\r\n\r\nreport attached\r\n\
--b0\r\nContent-Type: application/xml\r\nContent-Disposition: attachment; filename=\"r.xml\"\r\n\r\n{xml}\r\n--b0--\r\n"
    );
    for level in 1..=depth {
        body = format!(
            "From: fwd{level}@limits.example\r\nTo: dmarc@example.com\r\nSubject: Fwd {level}\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"n{level}\"\r\n\r\n\
--n{level}\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n\
--n{level}\r\nContent-Type: message/rfc822\r\n\r\n{body}\r\n--n{level}--\r\n"
        );
    }
    body
}

fn small_report(id: &str) -> String {
    let mut xml = header("example.com", id);
    xml.push_str(&record(1));
    xml.push_str("</feedback>\n");
    xml
}

#[test]
fn mime_nested_ten_levels_is_refused_and_shallow_nesting_is_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let deep = tmp.path().join("deep.eml");
    std::fs::write(&deep, nested_message(10, &small_report("deep"))).expect("write");
    let db = tmp.path().join("reports.db");
    let run = run_bounded(ingest(&db, &[&deep], &[]), Duration::from_secs(30));
    let reason = only_rejection(&run);
    assert!(
        reason.contains("depth") || reason.contains("nest") || reason.contains("limit"),
        "reason should name the nesting limit: {reason}"
    );
    // The same report one level down (a forwarded report) is read.
    let shallow = tmp.path().join("shallow.eml");
    std::fs::write(&shallow, nested_message(1, &small_report("shallow"))).expect("write");
    let run = run_bounded(ingest(&db, &[&shallow], &[]), Duration::from_secs(30));
    let s = summary(&run);
    assert_eq!(s["reports"], 1, "{s}\n{}", run.stderr);
    assert_eq!(s["records"], 1, "{s}");
}

#[test]
fn mime_nested_ten_thousand_levels_does_not_overflow_the_stack() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let deep = tmp.path().join("deeper.eml");
    std::fs::write(&deep, nested_message(10_000, &small_report("deeper"))).expect("write");
    let db = tmp.path().join("reports.db");
    let run = run_bounded(ingest(&db, &[&deep], &[]), Duration::from_secs(60));
    assert!(
        run.code == 0 || run.code == 1,
        "exit {} (a crash?)\nstderr:\n{}",
        run.code,
        run.stderr
    );
    let reason = only_rejection(&run);
    assert!(!reason.is_empty());
}

/// Issue 15: `<feedback>`, N open `<a>` and N stray `</p>` cost O(N^2)
/// (each `</p>` scanned the whole element stack): 150,000 of each would
/// take hours. Now the element depth is capped (`max_xml_depth`) and a
/// stray end tag costs O(1): refused at once, with the limit named, both
/// read whole (under 8 MiB) and streamed (over 8 MiB); a good report in the
/// same batch is stored.
#[test]
fn tag_soup_is_refused_at_the_depth_limit_in_linear_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("reports.db");
    // Written in pieces: see `write_zip_of_empty_entries` about memory.
    let soup = |path: &Path, stray: usize| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
        w.write_all(b"<feedback>").expect("write");
        for _ in 0..150_000 {
            w.write_all(b"<a>").expect("write");
        }
        for _ in 0..stray {
            w.write_all(b"</p>").expect("write");
        }
        w.write_all(b"</feedback>").expect("write");
        w.flush().expect("flush");
    };
    let small = tmp.path().join("a-soup.xml");
    soup(&small, 150_000);
    let big = tmp.path().join("b-soup.xml");
    soup(&big, 2_600_000);
    assert!(std::fs::metadata(&big).expect("meta").len() > 8 << 20);
    let good = tmp.path().join("c-good.xml");
    std::fs::write(&good, small_report("good")).expect("write");
    let run = run_bounded(
        ingest(&db, &[&small, &big, &good], &[]),
        Duration::from_secs(60),
    );
    let s = summary(&run);
    assert_eq!(s["reports"], 1, "the good report is stored: {s}");
    let invalid = s["invalid"].as_array().expect("invalid");
    assert_eq!(invalid.len(), 2, "{s}");
    for p in invalid {
        assert_eq!(
            p["reason"], "XML element nesting (max_xml_depth) exceeds the limit of 256",
            "{s}"
        );
    }
}

/// A per-item wall-clock budget (`--item-timeout`): an item past it is set
/// aside as invalid with the reason, and the batch goes on. With a budget
/// of 0 s every item is past it at the parser's first look at the clock
/// (after 4,096 tokens), so a report of a few thousand records always is,
/// and a tiny report never is.
#[test]
fn an_item_past_its_time_budget_is_set_aside_and_the_batch_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("reports.db");
    let big = tmp.path().join("a-big.xml");
    let mut xml = header("example.com", "slow");
    for i in 0..3_000 {
        xml.push_str(&record(i));
    }
    xml.push_str("</feedback>\n");
    std::fs::write(&big, xml).expect("write");
    let good = tmp.path().join("b-good.xml");
    std::fs::write(&good, small_report("quick")).expect("write");
    let run = run_bounded(
        ingest(&db, &[&big, &good], &["--item-timeout", "0"]),
        Duration::from_secs(60),
    );
    let s = summary(&run);
    assert_eq!(run.code, 1, "{s}");
    assert_eq!(s["reports"], 1, "{s}");
    let invalid = s["invalid"].as_array().expect("invalid");
    assert_eq!(invalid.len(), 1, "{s}");
    assert_eq!(
        invalid[0]["reason"], "took longer than the per-item time budget of 0 s (--item-timeout)",
        "{s}"
    );
}

/// The report data of the test suite.
fn data(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/reports")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `item` (named so that it comes first) and then a small plain report,
/// ingested with `--item-timeout 0`: the item is set aside as invalid with
/// the time budget as its reason, and the small report behind it is
/// stored. A budget of 0 s is past at the first look at the clock, and
/// every kind but plain aggregate XML (which looks every 4,096 tokens)
/// looks at it when it starts.
fn item_past_its_budget_is_set_aside(name: &str, item: &[u8]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("reports.db");
    let slow = tmp.path().join(name);
    std::fs::write(&slow, item).expect("write");
    let good = tmp.path().join("z-good.xml");
    std::fs::write(&good, small_report("quick")).expect("write");
    let run = run_bounded(
        ingest(&db, &[&slow, &good], &["--item-timeout", "0"]),
        Duration::from_secs(60),
    );
    let s = summary(&run);
    assert_eq!(run.code, 1, "{s}");
    assert_eq!(
        (&s["reports"], &s["failure_reports"], &s["tls_reports"]),
        (&1.into(), &0.into(), &0.into()),
        "{s}"
    );
    let invalid = s["invalid"].as_array().expect("invalid");
    assert_eq!(invalid.len(), 1, "{s}");
    assert!(
        invalid[0]["origin"]
            .as_str()
            .is_some_and(|o| o.ends_with(name)),
        "{s}"
    );
    assert_eq!(
        invalid[0]["reason"], "took longer than the per-item time budget of 0 s (--item-timeout)",
        "{s}"
    );
}

/// Issue 15: the per-item time budget covered aggregate XML only. A
/// gzip'd report is now set aside in the container stage (decompression
/// looks at the clock on every read).
#[test]
fn a_compressed_item_past_its_time_budget_is_set_aside_and_the_batch_goes_on() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(small_report("gzipped").as_bytes())
        .expect("gzip");
    item_past_its_budget_is_set_aside("a-report.xml.gz", &gz.finish().expect("gzip"));
}

/// Issue 15: the same for a failure report (ARF, in a MIME message).
#[test]
fn a_failure_report_past_its_time_budget_is_set_aside_and_the_batch_goes_on() {
    item_past_its_budget_is_set_aside(
        "a-failure.eml",
        &data("forensic/dmarc_ruf_report_linkedin.eml"),
    );
}

/// Issue 15: the same for an SMTP TLS report (JSON).
#[test]
fn a_tls_report_past_its_time_budget_is_set_aside_and_the_batch_goes_on() {
    item_past_its_budget_is_set_aside("a-tls.json", &data("tlsrpt/google.json"));
}

/// Writes a stored (uncompressed) zip of `n` empty entries named in base
/// 36 to `path`, by hand (APPNOTE.TXT 4.3.7 local headers, 4.3.12 central
/// directory, 4.3.16 end record) and straight to the file: the zip crate
/// takes minutes to write hundreds of thousands of entries in a debug
/// build, and a copy in this process's memory would count in the peak RSS
/// of a child forked meanwhile by another test.
fn write_zip_of_empty_entries(path: &Path, n: u32) -> u64 {
    let name = |mut i: u32| {
        let mut s = Vec::new();
        loop {
            s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(i % 36) as usize]);
            i /= 36;
            if i == 0 {
                return s;
            }
        }
    };
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create zip"));
    let mut offset = 0u32;
    for i in 0..n {
        let nm = name(i);
        w.write_all(b"PK\x03\x04\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00")
            .expect("write");
        w.write_all(&[0; 12]).expect("write"); // crc, sizes
        w.write_all(&(nm.len() as u16).to_le_bytes())
            .expect("write");
        w.write_all(&0u16.to_le_bytes()).expect("write");
        w.write_all(&nm).expect("write");
        offset += 30 + nm.len() as u32;
    }
    let cd_offset = offset;
    let mut cd_len = 0u32;
    offset = 0;
    for i in 0..n {
        let nm = name(i);
        w.write_all(b"PK\x01\x02\x14\x00\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00")
            .expect("write");
        w.write_all(&[0; 12]).expect("write"); // crc, sizes
        w.write_all(&(nm.len() as u16).to_le_bytes())
            .expect("write");
        w.write_all(&[0; 12]).expect("write"); // extra, comment, disk, attributes
        w.write_all(&offset.to_le_bytes()).expect("write");
        w.write_all(&nm).expect("write");
        offset += 30 + nm.len() as u32;
        cd_len += 46 + nm.len() as u32;
    }
    w.write_all(b"PK\x05\x06\x00\x00\x00\x00").expect("write");
    let entries = u16::try_from(n).unwrap_or(0xFFFF);
    w.write_all(&entries.to_le_bytes()).expect("write");
    w.write_all(&entries.to_le_bytes()).expect("write");
    w.write_all(&cd_len.to_le_bytes()).expect("write");
    w.write_all(&cd_offset.to_le_bytes()).expect("write");
    w.write_all(&0u16.to_le_bytes()).expect("write");
    w.flush().expect("flush");
    u64::from(cd_offset + cd_len + 22)
}

/// Issue 15: the 16-entry zip limit (`max_zip_entries`) was checked only
/// after the zip crate had read the whole central directory into memory
/// (a 64 MiB zip lists over half a million entries). Now the end of
/// central directory record is checked first: a zip of 60,000 entries
/// (5 MiB) and one of 700,000 (59 MiB; ZIP64-less, so the record's 16-bit
/// counts say 65,535) are refused with the limit named, in the memory of
/// the file itself.
#[test]
fn a_zip_listing_700000_entries_is_refused_before_its_directory_is_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("reports.db");
    for n in [60_000, 700_000] {
        let zip = tmp.path().join(format!("entries-{n}.zip"));
        let size = write_zip_of_empty_entries(&zip, n);
        assert_eq!(size, std::fs::metadata(&zip).expect("meta").len());
        let run = run_bounded(ingest(&db, &[&zip], &[]), Duration::from_secs(120));
        assert_eq!(
            only_rejection(&run),
            "zip entries (max_zip_entries) exceeds the limit of 16",
            "{n} entries"
        );
        // The file (read whole, and copied once to the store's parse
        // thread) and the program; no directory (700,000 entries parsed
        // took more than 200 MiB more).
        let bound = 2 * size as i64 / 1024 + 40 * MIB;
        assert!(
            run.max_rss_kib < bound,
            "{n} entries: peak RSS {} KiB, bound {bound} KiB",
            run.max_rss_kib
        );
        eprintln!(
            "{n} entries ({size} bytes): peak RSS {} KiB",
            run.max_rss_kib
        );
    }
}

/// Issue 15: a directory with links back to itself (`a -> .`,
/// `sub/b -> ..`, `sub/c -> /abs/in`) was walked through every path the links make, 2^40 of them before the
/// kernel's link limit. Now each directory is walked once.
#[test]
fn directory_ingest_walks_a_symlink_loop_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("reports.db");
    let dir = tmp.path().join("in");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("r.xml"), small_report("loop")).expect("write");
    std::fs::create_dir(dir.join("sub")).expect("mkdir");
    std::os::unix::fs::symlink(".", dir.join("a")).expect("symlink");
    std::os::unix::fs::symlink("..", dir.join("sub/b")).expect("symlink");
    std::os::unix::fs::symlink(&dir, dir.join("sub/c")).expect("symlink");
    let run = run_bounded(ingest(&db, &[&dir], &[]), Duration::from_secs(60));
    let s = summary(&run);
    assert_eq!(run.code, 0, "{s}");
    assert_eq!(s["reports"], 1, "{s}");
    assert_eq!(s["items"], 1, "{s}");
}

/// Issue 15: an mbox message was read whole before the size limit
/// applied. Now a message over `--max-input-bytes` is skipped as it is
/// read (an error naming it; the messages around it are stored), in about
/// the memory of the limit: here 200 MiB behind a 1 MiB limit.
#[test]
fn an_oversized_mbox_message_is_skipped_without_being_read_whole() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("reports.db");
    let mbox = tmp.path().join("reports.mbox");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&mbox).expect("create"));
    let message = |w: &mut std::io::BufWriter<std::fs::File>, id: &str| {
        write!(
            w,
            "From r@example.com Mon Jun 10 00:00:00 2024\nFrom: r@example.com\n\
             Subject: report {id}\nContent-Type: text/xml\n\n{}\n",
            small_report(id)
        )
        .expect("write");
    };
    message(&mut w, "first");
    write!(
        w,
        "From r@example.com Mon Jun 10 00:00:00 2024\nSubject: big\n\n"
    )
    .expect("write");
    let line = [b'x'; 1023];
    for _ in 0..200 * 1024 {
        w.write_all(&line).expect("write");
        w.write_all(b"\n").expect("write");
    }
    message(&mut w, "third");
    w.flush().expect("flush");
    drop(w);
    let run = run_bounded(
        ingest(
            &db,
            &[],
            &[
                "--max-input-bytes",
                "1048576",
                "--mbox",
                mbox.to_str().expect("utf-8"),
            ],
        ),
        Duration::from_secs(120),
    );
    let s = summary(&run);
    assert_eq!(s["reports"], 2, "{s}");
    let errors = s["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{s}");
    let reason = errors[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("reports.mbox#2 is 209")
            && reason.ends_with("bytes, more than the limit of 1048576"),
        "{reason}"
    );
    assert!(
        run.max_rss_kib < 48 * MIB,
        "peak RSS {} KiB for a 200 MiB message behind a 1 MiB limit",
        run.max_rss_kib
    );
}
