//! MIME shapes reporters send, built here so each one is explicit:
//! HTML "[Preview]" part first, `application/octet-stream` named `.zip`,
//! quoted-printable `text/xml` body, nested `message/rfc822`, and depth
//! limits.

use std::io::Write;

use base64::Engine;
use mailauth::reports::IngestLimits;
use mailauth::reports::parse::{ParseError, Report, parse_all};

const XML: &str = "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>Mime Org</org_name>\
    <email>r@mime.example</email><report_id>mime-1</report_id><date_range><begin>1700000000</begin>\
    <end>1700086399</end></date_range></report_metadata><policy_published><domain>example.com</domain>\
    <p>none</p></policy_published><record><row><source_ip>2001:db8::1</source_ip><count>2</count>\
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>\
    </row><identifiers><header_from>example.com</header_from></identifiers><auth_results><spf>\
    <domain>example.com</domain><result>pass</result></spf></auth_results></record></feedback>";

fn b64(data: &[u8]) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(data);
    s.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn zip_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(name, zip::write::SimpleFileOptions::default())
        .expect("start");
    w.write_all(data).expect("write");
    w.finish().expect("finish").into_inner()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("write");
    e.finish().expect("finish")
}

fn one_aggregate(mail: &str) -> (String, usize) {
    let reports = parse_all(mail.as_bytes(), &IngestLimits::default())
        .unwrap_or_else(|e| panic!("{e}\n{mail}"));
    let [
        Report::Aggregate {
            header, records, ..
        },
    ] = reports.as_slice()
    else {
        panic!("expected one aggregate report, got {reports:?}");
    };
    (header.org_name.clone(), records.len())
}

#[test]
fn microsoft_preview_html_first_then_octet_stream_zip() {
    let mail = format!(
        "From: dmarcreport@microsoft.com\r\nSubject: [Preview] Report Domain: example.com\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><feedback>not this</feedback></body></html>\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"r.zip\"\r\n\
         Content-Disposition: attachment; filename=\"r.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --b1--\r\n",
        b64(&zip_of("r.xml", XML.as_bytes()))
    );
    assert_eq!(one_aggregate(&mail), ("Mime Org".to_owned(), 1));
}

#[test]
fn quoted_printable_text_xml_body() {
    let qp = XML.replace('=', "=3D");
    // Soft line breaks every 60 characters.
    let mut body = String::new();
    for (i, c) in qp.chars().enumerate() {
        if i > 0 && i % 60 == 0 && !body.ends_with('=') {
            body.push_str("=\r\n");
        }
        body.push(c);
    }
    let mail = format!(
        "From: r@mime.example\r\nSubject: Report\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/xml; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{body}\r\n"
    );
    assert_eq!(one_aggregate(&mail), ("Mime Org".to_owned(), 1));
}

fn wrap_rfc822(inner: &str, depth: usize) -> String {
    let mut mail = inner.to_owned();
    for i in 0..depth {
        mail = format!(
            "From: fwd{i}@example.net\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"n{i}\"\r\n\r\n\
             --n{i}\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n\
             --n{i}\r\nContent-Type: message/rfc822\r\n\r\n{mail}\r\n--n{i}--\r\n"
        );
    }
    mail
}

#[test]
fn nested_rfc822_with_gzip_attachment_and_depth_limit() {
    let inner = format!(
        "From: r@mime.example\r\nSubject: Report\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/gzip; name=\"r.xml.gz\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        b64(&gzip(XML.as_bytes()))
    );
    assert_eq!(
        one_aggregate(&wrap_rfc822(&inner, 1)),
        ("Mime Org".to_owned(), 1)
    );
    let limits = IngestLimits {
        max_mime_depth: 2,
        ..IngestLimits::default()
    };
    assert!(parse_all(wrap_rfc822(&inner, 2).as_bytes(), &limits).is_ok());
    let err = parse_all(wrap_rfc822(&inner, 4).as_bytes(), &limits).expect_err("too deep");
    assert!(matches!(err, ParseError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("MIME nesting depth"), "{err}");
}

#[test]
fn oversized_attachment_rejected() {
    let mail = format!(
        "From: r@mime.example\r\nSubject: Report\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/gzip; name=\"r.xml.gz\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        b64(&gzip(XML.as_bytes()))
    );
    let limits = IngestLimits {
        max_attachment_bytes: 64,
        ..IngestLimits::default()
    };
    let err = parse_all(mail.as_bytes(), &limits).expect_err("too big");
    assert!(err.to_string().contains("attachment \"r.xml.gz\""), "{err}");
}

#[test]
fn mail_without_a_report_is_rejected_with_a_reason() {
    let mail = "From: a@example.net\r\nSubject: hi\r\n\r\nhello\r\n";
    let err = parse_all(mail.as_bytes(), &IngestLimits::default()).expect_err("no report");
    assert!(matches!(err, ParseError::NotAReport { .. }), "{err}");
}
