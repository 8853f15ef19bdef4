//! Regression tests for bugs found by the fuzzers (`fuzz/`) and by the
//! limit tests (`tests/limits_*.rs`). Each test names what found the bug
//! and what the input did before the fix.
//!
//! Owns nothing but these cases; the parsers under test live in
//! `src/record`, `src/config`, `src/masterfile` and `src/reports/parse`.

use crate::util;

use std::io::Write as _;
use std::path::Path;

use mailauth::reports::IngestLimits;
use mailauth::reports::parse::container;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// Found by `limits_reports::a_nested_gzip_bomb_is_refused_in_bounded_memory`:
/// a bomb of two gzip layers, each under the 1000:1 ratio cap (about 340:1
/// and 37:1) but 13,000:1 together, was accepted and inflated in full (up
/// to the 512 MiB decompression budget). The ratio is now also measured
/// against the whole item, during decompression.
#[test]
fn nested_gzip_bomb_fails_on_ratio_not_on_size() {
    let mut inner = b"<?xml version=\"1.0\"?><feedback>".to_vec();
    let mut i = 0u32;
    while inner.len() < 64 << 20 {
        inner.extend_from_slice(format!("<!-- {i} -->").as_bytes());
        inner.resize(inner.len() + 2000, b' ');
        i += 1;
    }
    let once = gzip(&inner);
    let bomb = gzip(&once);
    // Each layer alone is under the cap; together they are far over it.
    assert!(
        inner.len() / once.len() < 1000,
        "inner layer {}:1",
        inner.len() / once.len()
    );
    assert!(
        once.len() / bomb.len() < 1000,
        "outer layer {}:1",
        once.len() / bomb.len()
    );
    assert!(
        inner.len() / bomb.len() > 5000,
        "total {}:1",
        inner.len() / bomb.len()
    );
    let limits = IngestLimits::default();
    let err = container::unpack(&bomb, &limits).expect_err("a bomb must be refused");
    let msg = err.to_string();
    assert!(msg.contains("compression ratio"), "{msg}");
    assert!(msg.contains("1000"), "names the ratio limit: {msg}");
}

/// The early ratio stop must not refuse what the ratio check accepts: a
/// layer exactly at the cap is read in full.
#[test]
fn ratio_cap_boundary_accepts_legitimate_compression() {
    // Report-like XML compresses far below 1000:1 and must still unpack
    // when doubly compressed.
    let mut xml = String::from("<?xml version=\"1.0\"?>\n<feedback>\n");
    for i in 0..20_000u32 {
        xml.push_str(&format!(
            "<record><row><source_ip>10.0.{}.{}</source_ip><count>{}</count></row></record>\n",
            i >> 8,
            i & 0xff,
            i % 7 + 1
        ));
    }
    xml.push_str("</feedback>\n");
    let packed = gzip(&gzip(xml.as_bytes()));
    let payloads = container::unpack(&packed, &IngestLimits::default()).expect("unpacks");
    assert_eq!(payloads.len(), 1);
    match &payloads[0] {
        container::Payload::Xml(x) => assert_eq!(x.len(), xml.len()),
        other => panic!("want XML, got {other:?}"),
    }
}

/// Found by `limits_config::a_config_with_100000_domains_…`: the YAML
/// parser's default budget (250,000 nodes) refused any config past about
/// 19,000 domains with "budget breached: Nodes".
#[test]
fn a_30000_domain_config_loads() {
    let mut c = String::from("provider:\n  kind: zonefile\n  dir: zones\ndomains:\n");
    for i in 0..30_000 {
        c.push_str(&format!(
            "  d{i}.example:\n    spf: {{ ip4: [192.0.2.1/32], all: fail }}\n    dmarc: {{ p: reject }}\n"
        ));
    }
    let config = mailauth::config::load_str(&c, Path::new("mailauth.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.domains.len(), 30_000);
}

/// The raised budget is proportional to the input: a small alias bomb is
/// still refused.
#[test]
fn alias_bomb_is_still_refused() {
    let mut c = String::from("x0: &a0 [\"lol\"]\n");
    for i in 1..10 {
        let p = i - 1;
        c.push_str(&format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    c.push_str("domains: {}\n");
    assert!(mailauth::config::load_str(&c, Path::new("mailauth.yaml")).is_err());
}

/// Found by the `masterfile` fuzz target (60 s run, first crash): a `$TTL`
/// whose digit run overflows u64 (`$TTL 300111…1` with 30 digits, then
/// unit letters in a record TTL) panicked with "attempt to multiply with
/// overflow" in the TTL parser (and wrapped silently in release builds).
/// It is now an invalid TTL, reported with its line.
#[test]
fn zone_file_ttl_overflow_is_an_error_not_a_panic() {
    let origin = mailauth::record::Name::parse("example.test").expect("name");
    // A `$TTL` that does not fit is an error on its line.
    for input in [
        "$TTL 3001111111111111111111111111111111\n@ IN NS ns.test.\n",
        "$TTL 99999999999999999999w\n@ IN NS ns.test.\n",
        "$TTL 1w99999999999999999999d\n@ IN NS ns.test.\n",
        "$TTL 30000000000000w\n@ IN NS ns.test.\n",
    ] {
        let err = mailauth::masterfile::parse(input, &origin).expect_err(input);
        assert_eq!(err.line, 1, "{input:?}: {err}");
        assert!(err.msg.contains("bad $TTL"), "{input:?}: {err}");
    }
    // In a record, such a token is not a TTL: whatever the reader makes of
    // it, it does not panic and does not wrap it into a small TTL.
    for input in [
        "$TTL 300\n@ 99999999999999999999w IN NS ns.test.\n",
        "$TTL 300\n@ 1w99999999999999999999d IN NS ns.test.\n",
    ] {
        if let Ok(p) = mailauth::masterfile::parse(input, &origin) {
            assert!(
                p.records.iter().all(|r| r.ttl == 300),
                "{input:?}: {:?}",
                p.records
            );
        }
    }
    // The units themselves still work.
    let ok = mailauth::masterfile::parse("$TTL 1w2d3h4m5s\n@ IN NS ns.test.\n", &origin)
        .expect("unit TTL");
    assert_eq!(
        ok.ttl_at_end,
        Some(604_800 + 2 * 86_400 + 3 * 3_600 + 4 * 60 + 5)
    );
}

/// Found by the `report_container` fuzz target (40 s run): a failure
/// report mutated so that its multipart structure trips a `debug_assert!`
/// in mail-parser 0.11 ("Invalid part ID, could not find multipart"). With
/// debug assertions on, ingesting it panicked; now it is a broken item and
/// the batch goes on.
#[test]
fn malformed_multipart_is_an_error_not_a_panic() {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/regressions/mime-multipart-debug-assert.eml"),
    )
    .expect("regression input");
    // Any outcome but a panic is fine: the mutation may leave a readable
    // report or none at all.
    let _ = container::unpack(&bytes, &IngestLimits::default());
    let _ = mailauth::reports::parse::parse_all(&bytes, &IngestLimits::default());
}

/// The `inspect_message` fuzz target: a Received header whose date has a
/// 19-digit year made `mailauth inspect` panic ("attempt to multiply with
/// overflow" in the day arithmetic); the date is now simply unreadable.
#[test]
fn a_received_date_with_an_absurd_year_is_not_a_panic() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/regressions/inspect-received-year-overflow.eml");
    let out = util::mailauth(["inspect", "--json", "--nameserver", "127.0.0.1:9"])
        .arg(&file)
        .dir(std::env::temp_dir())
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    // The library path the fuzz target took.
    let raw = std::fs::read(&file).expect("regression input");
    let msg = mailauth::inspect::message::Message::parse(&raw);
    let values: Vec<String> = msg.all("Received").map(|h| h.value()).collect();
    let _ = mailauth::inspect::received::chain(&values, &[]);
    for v in &values {
        let _ = mailauth::inspect::received::parse_date(v);
    }
}
