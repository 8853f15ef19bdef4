//! Every sample report parses to its expected kind, reporter and record
//! count, or is rejected with its documented reason (see
//! tests/data/reports/SOURCES.md for each file's quirk).

use std::path::Path;

use mailauth::reports::IngestLimits;
use mailauth::reports::parse::{CollectSink, ReportKind, parse_item};

enum Want {
    /// (kind, org, records)
    Ok(ReportKind, &'static str, u64),
    /// substring of the error message
    Err(&'static str),
}

use ReportKind::{Aggregate as A, Failure as F, Tls as T};

const CASES: &[(&str, Want)] = &[
    (
        "aggregate/!example.com!1538204542!1538463818.xml",
        Want::Ok(A, "accurateplastics.com", 1),
    ),
    (
        "aggregate/!large-example.com!1711897200!1711983600.xml",
        Want::Ok(A, "accurateplastics.com", 2286),
    ),
    (
        "aggregate/Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml",
        Want::Ok(A, "google.com", 1),
    ),
    (
        "aggregate/addisonfoods.com!example.com!1536105600!1536191999.xml",
        Want::Ok(A, "addisonfoods.com", 1),
    ),
    ("aggregate/empty_reason.xml", Want::Ok(A, "example.org", 1)),
    (
        "aggregate/estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml.zip",
        Want::Ok(A, "XYZ Corporation", 1),
    ),
    (
        "aggregate/example.net!example.com!1529366400!1529452799.xml",
        Want::Ok(A, "example.net", 1),
    ),
    (
        "aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz",
        Want::Ok(A, "FastMail Pty Ltd", 1),
    ),
    (
        "aggregate/ikea.com!example.de!1538690400!1538776800.xml",
        Want::Ok(A, "ikea.com", 1),
    ),
    (
        "aggregate/invalid_utf_8.xml",
        Want::Ok(A, "accurateplastics.com", 1),
    ),
    ("aggregate/invalid_xml.xml", Want::Ok(A, "veeam.com", 1)),
    (
        "aggregate/mimecast-weird-gzip.eml",
        Want::Ok(A, "Mimecast", 1),
    ),
    (
        "aggregate/old_draft_from_wiki.xml",
        Want::Ok(A, "acme.com", 1),
    ),
    (
        "aggregate/protection.outlook.com!example.com!1711756800!1711843200.xml",
        Want::Ok(A, "Outlook.com", 1),
    ),
    (
        "aggregate/rfc9990-example.net!example.com!1700000000!1700086399.xml",
        Want::Ok(A, "example.net", 2),
    ),
    (
        "aggregate/rfc9990-sample.xml",
        Want::Ok(A, "Sample Reporter", 1),
    ),
    ("aggregate/twilight.eml", Want::Ok(A, "google.com", 1)),
    (
        "aggregate/usssa.com!example.com!1538784000!1538870399.xml",
        Want::Ok(A, "usssa.com", 2),
    ),
    (
        "aggregate/veeam.com!example.com!1530133200!1530219600.xml",
        Want::Ok(A, "veeam.com", 1),
    ),
    (
        "aggregate/report_with_upper_cased_pass.xml",
        Want::Ok(A, "example.com", 1),
    ),
    (
        "aggregate/empty.xml",
        Want::Err("not a report: empty input"),
    ),
    ("aggregate/changed-input.xml", Want::Ok(A, "fred.com", 20)),
    ("aggregate/nice-input.xml", Want::Ok(A, "google.com", 20)),
    ("aggregate/nice-input.xml.gz", Want::Ok(A, "google.com", 20)),
    (
        "aggregate/nice-input.xml.zip",
        Want::Ok(A, "google.com", 20),
    ),
    ("aggregate/acme.xml", Want::Ok(A, "acme.com", 1)),
    ("aggregate/aol.xml", Want::Ok(A, "AOL", 1)),
    ("aggregate/gmxnet.xml", Want::Ok(A, "GMX", 1)),
    ("aggregate/google.xml", Want::Ok(A, "google.com", 1)),
    ("aggregate/hardfail.xml", Want::Ok(A, "reporting org", 1)),
    ("aggregate/mailru.xml", Want::Ok(A, "Mail.Ru", 1)),
    ("aggregate/outlook.xml", Want::Ok(A, "Outlook.com", 2)),
    ("aggregate/solamora.xml", Want::Ok(A, "solarmora.com", 1)),
    ("aggregate/webde.xml", Want::Ok(A, "WEB.DE", 1)),
    ("aggregate/yahoo.xml", Want::Ok(A, "Yahoo", 1)),
    ("aggregate/test.xml", Want::Ok(A, "Test Inc.", 2)),
    ("aggregate/test.xml.gz", Want::Ok(A, "Test Inc.", 2)),
    // Double gzip is unambiguous: unwrapped (parsedmarc rejects it).
    ("aggregate/test.xml.gz.gz", Want::Ok(A, "Test Inc.", 2)),
    ("aggregate/test.xml.zip", Want::Ok(A, "Test Inc.", 2)),
    ("aggregate/test2.xml", Want::Ok(A, "Test Inc.", 2)),
    (
        "aggregate/test_empty.xml",
        Want::Err("invalid row/source_ip \"\" in record 1"),
    ),
    (
        "forensic/DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml",
        Want::Ok(F, "domain.de", 1),
    ),
    (
        "forensic/[Netease DMARC Failure Report] Rent Reminder.eml",
        Want::Ok(F, "cardinal.com", 1),
    ),
    (
        "forensic/dmarc_ruf_report_linkedin.crlf.eml",
        Want::Ok(F, "example.com", 1),
    ),
    (
        "forensic/dmarc_ruf_report_linkedin.eml",
        Want::Ok(F, "example.com", 1),
    ),
    // RFC 5965 §3.2 allows a comment after the address (the host name).
    (
        "forensic/source-ip-comment.eml",
        Want::Ok(F, "example.com", 1),
    ),
    (
        "forensic/exim_plain_text_only_no_arf_part.eml",
        Want::Ok(F, "example.com", 1),
    ),
    (
        "tlsrpt/google.com_smtp_tls_report.eml",
        Want::Ok(T, "Google Inc.", 1),
    ),
    ("tlsrpt/mail.ru.json", Want::Ok(T, "Mail.ru", 1)),
    ("tlsrpt/rfc8460.json", Want::Ok(T, "Company-X", 1)),
    ("tlsrpt/smtp_tls.json", Want::Ok(T, "Example Inc.", 1)),
    ("tlsrpt/google.json", Want::Ok(T, "Google Inc.", 1)),
    (
        "tlsrpt/microsoft.json",
        Want::Ok(T, "Microsoft Corporation", 2),
    ),
    ("tlsrpt/no-contact.json", Want::Ok(T, "server.com", 1)),
    ("tlsrpt/no-policy.json", Want::Ok(T, "Google Inc.", 1)),
    (
        "tlsrpt/no_ip_and_mx.json",
        Want::Ok(T, "Microsoft Corporation", 1),
    ),
    ("tlsrpt/rfc-example.json", Want::Ok(T, "Company-X", 1)),
];

fn data() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reports"))
}

#[test]
fn every_sample_has_an_expected_outcome() {
    let mut failures = Vec::new();
    for (name, want) in CASES {
        let bytes = std::fs::read(data().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut sink = CollectSink::default();
        let got = parse_item(&bytes, &IngestLimits::default(), &mut sink);
        match (want, got) {
            (Want::Ok(kind, org, records), Ok(found)) => {
                let [f] = found.as_slice() else {
                    failures.push(format!("{name}: expected one report, got {found:?}"));
                    continue;
                };
                // For failure reports the "org" column checks the reported domain.
                let who = if *kind == F { &f.domain } else { &f.org };
                if (f.kind, who.as_str(), f.records) != (*kind, *org, *records) {
                    failures.push(format!(
                        "{name}: want {kind:?}/{org}/{records}, got {:?}/{who}/{}",
                        f.kind, f.records
                    ));
                }
            }
            (Want::Err(msg), Err(e)) => {
                if !e.to_string().contains(msg) {
                    failures.push(format!("{name}: want error containing {msg:?}, got {e}"));
                }
            }
            (Want::Ok(..), Err(e)) => failures.push(format!("{name}: unexpected error: {e}")),
            (Want::Err(msg), Ok(found)) => {
                failures.push(format!("{name}: want error {msg:?}, got {found:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn table_covers_every_file() {
    let mut missing = Vec::new();
    for dir in ["aggregate", "forensic", "tlsrpt"] {
        for entry in std::fs::read_dir(data().join(dir)).expect("read dir") {
            let entry = entry.expect("entry");
            let rel = format!("{dir}/{}", entry.file_name().to_string_lossy());
            if !CASES.iter().any(|(n, _)| *n == rel) {
                missing.push(rel);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "samples without an expected outcome: {missing:?}"
    );
}

#[test]
fn recovered_quirks_are_noted() {
    let read = |n: &str| std::fs::read(data().join(n)).expect("read");
    let limits = IngestLimits::default();
    let found = |n: &str| {
        parse_item(&read(n), &limits, &mut CollectSink::default()).expect("parses")[0].clone()
    };
    let utf8 = found("aggregate/invalid_utf_8.xml");
    assert!(
        utf8.warnings.iter().any(|w| w.contains("UTF-8")),
        "{utf8:?}"
    );
    // The file name claims three days, the XML says otherwise: the XML wins.
    let named = found("aggregate/!example.com!1538204542!1538463818.xml");
    assert!(
        !named.warnings.iter().any(|w| w.contains("more than 24")),
        "{named:?}"
    );
    let long = read("aggregate/nice-input.xml");
    let long = String::from_utf8(long).expect("utf-8");
    let begin = long.find("<begin>").expect("begin") + "<begin>".len();
    let end = long[begin..].find('<').expect("end") + begin;
    let begin_ts: i64 = long[begin..end].trim().parse().expect("number");
    let long = format!(
        "{}{}{}",
        &long[..begin],
        begin_ts - 3 * 86_400,
        &long[end..]
    );
    let f = parse_item(long.as_bytes(), &limits, &mut CollectSink::default()).expect("parses");
    assert!(
        f[0].warnings.iter().any(|w| w.contains("more than 24")),
        "{f:?}"
    );
}
