//! Golden JSON for a representative set of samples: parse, serialize,
//! compare with `tests/golden/reports/<name>.json`. On a mismatch the
//! actual output is written next to it as `.actual` and a line diff is
//! printed; `MAILAUTH_BLESS=1` rewrites the golden files.

use std::path::Path;

use mailauth::reports::IngestLimits;
use mailauth::reports::parse::parse_all;

const CASES: &[(&str, &str)] = &[
    ("rfc9990-sample", "aggregate/rfc9990-sample.xml"),
    (
        "rfc9990-no-namespace",
        "aggregate/rfc9990-example.net!example.com!1700000000!1700086399.xml",
    ),
    ("gmx-namespace", "aggregate/gmxnet.xml"),
    (
        "ikea-stray-tag",
        "aggregate/ikea.com!example.de!1538690400!1538776800.xml",
    ),
    ("invalid-utf8", "aggregate/invalid_utf_8.xml"),
    ("invalid-xml-recovered", "aggregate/invalid_xml.xml"),
    ("hardfail", "aggregate/hardfail.xml"),
    (
        "upper-cased-pass",
        "aggregate/report_with_upper_cased_pass.xml",
    ),
    ("empty-reason", "aggregate/empty_reason.xml"),
    ("outlook", "aggregate/outlook.xml"),
    ("double-gzip", "aggregate/test.xml.gz.gz"),
    (
        "zip",
        "aggregate/estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml.zip",
    ),
    ("google-eml", "aggregate/twilight.eml"),
    ("mimecast-eml", "aggregate/mimecast-weird-gzip.eml"),
    ("arf-linkedin", "forensic/dmarc_ruf_report_linkedin.eml"),
    (
        "arf-netease-base64",
        "forensic/[Netease DMARC Failure Report] Rent Reminder.eml",
    ),
    (
        "failure-text-only",
        "forensic/exim_plain_text_only_no_arf_part.eml",
    ),
    ("tlsrpt-rfc8460", "tlsrpt/rfc8460.json"),
    ("tlsrpt-microsoft", "tlsrpt/microsoft.json"),
    ("tlsrpt-eml", "tlsrpt/google.com_smtp_tls_report.eml"),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn line_diff(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..w.len().max(g.len()) {
        match (w.get(i), g.get(i)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => {
                if let Some(a) = a {
                    out.push_str(&format!("{:>4} - {a}\n", i + 1));
                }
                if let Some(b) = b {
                    out.push_str(&format!("{:>4} + {b}\n", i + 1));
                }
            }
        }
    }
    out
}

#[test]
fn golden_json() {
    let bless = std::env::var_os("MAILAUTH_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for (name, rel) in CASES {
        let bytes = std::fs::read(root().join("tests/data/reports").join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        let reports =
            parse_all(&bytes, &IngestLimits::default()).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let got = serde_json::to_string_pretty(&reports).expect("json") + "\n";
        let golden = root()
            .join("tests/golden/reports")
            .join(format!("{name}.json"));
        let actual = golden.with_extension("json.actual");
        if bless {
            std::fs::write(&golden, &got).expect("bless");
            let _ = std::fs::remove_file(&actual);
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if want == got {
            let _ = std::fs::remove_file(&actual);
        } else {
            std::fs::write(&actual, &got).expect("write .actual");
            failures.push(format!(
                "{name} ({rel}) differs from {}:\n{}",
                golden.display(),
                line_diff(&want, &got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nrun with MAILAUTH_BLESS=1 to accept",
        failures.join("\n")
    );
}
