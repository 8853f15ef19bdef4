//! The body of every fuzz target, one function each, named as the target
//! (`fuzz/fuzz_targets/<name>.rs` is only libFuzzer's entry point calling
//! it), and [`TARGETS`], the list of them. Each function takes arbitrary
//! bytes and must return: a panic is the finding, whether libFuzzer finds
//! it (`scripts/fuzz.sh`) or the ordinary test build does, by replaying
//! every target's seeds (`tests/seeds.rs`, the seeds listed in
//! `fuzz/seeds.txt`). Leaves the fuzzing itself, the corpora and crash
//! artifacts to cargo-fuzz and `scripts/fuzz.sh`, and what libFuzzer alone
//! needs (its panic hook) to the entry points.

use std::fmt::{Debug, Display};
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use mailauth_core::inspect::{arc, authres, dkim, message, received};
use mailauth_core::record;
use mailauth_reports::IngestLimits;
use mailauth_reports::parse::aggregate::{self, Collect};

/// A target's name (the cargo-fuzz binary's) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("config", config),
    ("http_date", http_date),
    ("imap_url", imap_url),
    ("inspect_message", inspect_message),
    ("masterfile", masterfile),
    ("mmdb", mmdb),
    ("parse_reader", parse_reader),
    ("record_bimi", record_bimi),
    ("record_dkim", record_dkim),
    ("record_dmarc", record_dmarc),
    ("record_mtasts", record_mtasts),
    ("record_mtasts_policy", record_mtasts_policy),
    ("record_spf", record_spf),
    ("record_tlsrpt", record_tlsrpt),
    ("report_aggregate", report_aggregate),
    ("report_container", report_container),
    ("report_failure", report_failure),
    ("report_tlsrpt", report_tlsrpt),
    ("roundtrip_dkim", roundtrip_dkim),
    ("roundtrip_dmarc", roundtrip_dmarc),
    ("roundtrip_mtasts", roundtrip_mtasts),
    ("roundtrip_mtasts_policy", roundtrip_mtasts_policy),
    ("roundtrip_spf", roundtrip_spf),
    ("roundtrip_tlsrpt", roundtrip_tlsrpt),
    ("serve_request", serve_request),
];

/// `text` when `data` is UTF-8: the record parsers take text.
fn utf8(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The YAML config loader (`config::load_str`): parse, then check.
pub fn config(data: &[u8]) {
    if let Some(text) = utf8(data) {
        let _ = mailauth_core::config::load_str(text, Path::new("mailauth.yaml"));
    }
}

/// An HTTP `Retry-After` value (RFC 9110 §10.2.3: a delay in seconds or an
/// HTTP-date, in any of the three date forms of §5.6.7) as the Cloudflare
/// provider reads it: a date never asks for a wait beyond the latest date
/// a four-digit year allows, and no clock overflows.
pub fn http_date(data: &[u8]) {
    // 2026-01-01T00:00:00Z.
    const NOW: i64 = 1_767_225_600;
    // 9999-12-31T23:59:60Z, the latest a four-digit year allows.
    const LATEST: i64 = 253_402_300_800;
    let Some(text) = utf8(data) else {
        return;
    };
    let wait = mailauth_core::provider::cloudflare::retry_after_secs(text, NOW);
    let all_digits = !text.trim().is_empty() && text.trim().bytes().all(|b| b.is_ascii_digit());
    if let Some(secs) = wait
        && !all_digits
    {
        assert!(secs <= (LATEST - NOW) as u64, "{text:?} asks for {secs} s");
    }
    // Extreme clocks must not overflow either.
    let _ = mailauth_core::provider::cloudflare::retry_after_secs(text, i64::MIN);
    let _ = mailauth_core::provider::cloudflare::retry_after_secs(text, i64::MAX);
}

/// The `--imap` URL parser (RFC 5092 IMAP URLs).
pub fn imap_url(data: &[u8]) {
    if let Some(text) = utf8(data)
        && let Ok(url) = text.parse::<mailauth_reports::ingest::imap::ImapUrl>()
    {
        let _ = url.is_loopback();
        let _ = format!("{url:?}");
    }
}

/// A received message as `inspect` reads it: header fields, the Received
/// chain and its dates, DKIM signatures, Authentication-Results and
/// ARC-Authentication-Results, From/Sender mailboxes, and verification
/// of every DKIM signature and the ARC chain against an empty DNS.
pub fn inspect_message(data: &[u8]) {
    let msg = message::Message::parse(data);
    let _ = msg.embedded();
    let values: Vec<String> = msg.all("Received").map(|h| h.value()).collect();
    let hops = received::chain(&values, &["mx.example.com".to_string()]);
    let _ = received::boundary(&hops);
    for v in &values {
        let _ = received::parse_date(v);
    }
    for (i, h) in msg.headers.iter().enumerate() {
        let value = h.value();
        if h.is("DKIM-Signature") {
            let _ = dkim::Signature::parse(&value);
        } else if h.is("Authentication-Results") {
            let _ = authres::parse(i, &value, false);
        } else if h.is("ARC-Authentication-Results") {
            let _ = authres::parse(i, &value, true);
        } else if h.is("From") || h.is("Sender") {
            for m in message::mailboxes(&value) {
                let _ = message::address_domain(&m);
            }
        }
    }
    let dns = mailauth_core::spf::MemoryDns::new();
    let _ = dkim::verify_all(&dns, &msg, 0);
    let _ = arc::verify_chain(&dns, &msg);
}

/// The zone file (master file) parser and the in-place editor over what
/// it parsed.
pub fn masterfile(data: &[u8]) {
    let Some(text) = utf8(data) else {
        return;
    };
    let Ok(origin) = record::Name::parse("example.com") else {
        return;
    };
    if let Ok(parsed) = mailauth_core::masterfile::parse(text, &origin) {
        let zone = parsed.zone(&origin);
        let _ = mailauth_core::masterfile::apply_edits(text, &parsed, &[], Some(1));
        drop(zone);
    }
}

/// A MaxMind DB file (the ASN database), then lookups of edge addresses.
pub fn mmdb(data: &[u8]) {
    let Ok(db) = mailauth_reports::mmdb::Mmdb::from_bytes(Path::new("fuzz.mmdb"), data.to_vec())
    else {
        return;
    };
    for ip in [
        "192.0.2.1",
        "0.0.0.0",
        "255.255.255.255",
        "2001:db8::1",
        "::",
        "ffff::1",
    ] {
        let _ = db.lookup(ip.parse().expect("ip"));
    }
}

/// Hands out its bytes `step` at a time.
struct Trickle<'a>(&'a [u8], usize);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.1.min(buf.len()).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// The streaming aggregate-report parser, fed a few bytes at a time, must
/// agree with the parser of a whole document.
pub fn parse_reader(data: &[u8]) {
    let doc = data;
    let step = 1 + doc.len() % 64;
    let mut streamed = Collect::default();
    let got = aggregate::parse_reader(Trickle(doc, step), &mut streamed);
    if std::str::from_utf8(doc).is_err() {
        // Dropped bytes are counted at the end of a stream and at the
        // start of a whole document: only the outcome is compared.
        let mut whole = Collect::default();
        let want = aggregate::parse(doc, &mut whole);
        assert_eq!(got.is_ok(), want.is_ok(), "{got:?} / {want:?}");
        assert_eq!(streamed.records, whole.records);
        return;
    }
    let mut whole = Collect::default();
    let want = aggregate::parse(doc, &mut whole);
    match (&got, &want) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        _ => panic!("stream {got:?}, whole document {want:?}"),
    }
    assert_eq!(streamed.records, whole.records);
    assert_eq!(streamed.extensions, whole.extensions);
}

/// The BIMI record parser (its canonical rendering reads back as the same
/// record), and the SVG Tiny PS checks of an indicator.
pub fn record_bimi(data: &[u8]) {
    if let Some(text) = utf8(data)
        && let Ok(r) = text.parse::<record::bimi::Bimi>()
    {
        assert_eq!(r.to_string().parse::<record::bimi::Bimi>().ok(), Some(r));
    }
    let _ = mailauth_core::validate::bimi::svg_problems(data);
    let _ = mailauth_core::validate::bimi::embedded_svg(data);
}

/// Arbitrary text through `T`'s parser; it must return, never panic.
fn parses<T: FromStr>(data: &[u8]) {
    if let Some(text) = utf8(data) {
        let _ = text.parse::<T>();
    }
}

/// The DKIM key record parser.
pub fn record_dkim(data: &[u8]) {
    parses::<record::dkim::DkimKey>(data);
}

/// The DMARC record parser.
pub fn record_dmarc(data: &[u8]) {
    parses::<record::dmarc::Dmarc>(data);
}

/// The MTA-STS TXT record parser.
pub fn record_mtasts(data: &[u8]) {
    parses::<record::mtasts::MtaSts>(data);
}

/// The MTA-STS policy file parser.
pub fn record_mtasts_policy(data: &[u8]) {
    parses::<record::mtasts::MtaStsPolicy>(data);
}

/// The SPF record parser.
pub fn record_spf(data: &[u8]) {
    parses::<record::spf::Spf>(data);
}

/// The TLS-RPT record parser.
pub fn record_tlsrpt(data: &[u8]) {
    parses::<record::tlsrpt::TlsRpt>(data);
}

/// The aggregate report parser over a whole document.
pub fn report_aggregate(data: &[u8]) {
    let mut sink = Collect::default();
    let _ = aggregate::parse(data, &mut sink);
}

/// The container decoder (gzip, zip, MIME, nesting) and the whole item
/// pipeline, with the default limits.
pub fn report_container(data: &[u8]) {
    let limits = IngestLimits::default();
    let _ = mailauth_reports::parse::container::unpack(data, &limits);
    let _ = mailauth_reports::parse::parse_all(data, &limits);
}

/// The DMARC failure report (ARF, RFC 5965) field parser and the
/// free-text fallback.
pub fn report_failure(data: &[u8]) {
    if let Some(text) = utf8(data) {
        let _ = mailauth_reports::parse::failure::parse_arf(text);
        let _ = mailauth_reports::parse::failure::parse_text(text);
    }
}

/// The SMTP TLS report (RFC 8460) JSON parser.
pub fn report_tlsrpt(data: &[u8]) {
    let _ = mailauth_reports::parse::tlsrpt::parse(data);
}

/// Whatever `T` accepts must render to text that parses back to the same
/// value, and rendering must be a fixed point after one round. Panics
/// otherwise; input `T` rejects is ignored.
pub fn roundtrip<T>(data: &[u8])
where
    T: FromStr + Display + PartialEq + Debug,
    T::Err: Display,
{
    let Some(text) = utf8(data) else {
        return;
    };
    let Ok(first) = text.parse::<T>() else {
        return;
    };
    let rendered = first.to_string();
    let second = match rendered.parse::<T>() {
        Ok(v) => v,
        Err(e) => panic!("rendered {rendered:?} (from {text:?}) does not parse: {e}"),
    };
    assert_eq!(
        first, second,
        "round trip changed the value: {text:?} -> {rendered:?}"
    );
    assert_eq!(rendered, second.to_string());
}

/// The DKIM key record: parse, render, parse.
pub fn roundtrip_dkim(data: &[u8]) {
    roundtrip::<record::dkim::DkimKey>(data);
}

/// The DMARC record: parse, render, parse.
pub fn roundtrip_dmarc(data: &[u8]) {
    roundtrip::<record::dmarc::Dmarc>(data);
}

/// The MTA-STS TXT record: parse, render, parse.
pub fn roundtrip_mtasts(data: &[u8]) {
    roundtrip::<record::mtasts::MtaSts>(data);
}

/// The MTA-STS policy file: parse, render, parse.
pub fn roundtrip_mtasts_policy(data: &[u8]) {
    roundtrip::<record::mtasts::MtaStsPolicy>(data);
}

/// The SPF record: parse, render, parse.
pub fn roundtrip_spf(data: &[u8]) {
    roundtrip::<record::spf::Spf>(data);
}

/// The TLS-RPT record: parse, render, parse.
pub fn roundtrip_tlsrpt(data: &[u8]) {
    roundtrip::<record::tlsrpt::TlsRpt>(data);
}

/// What a client sends to `mailauth serve`: the request line and header
/// fields are parsed (at most 16 KiB read), and an origin-form target is
/// routed against an empty in-memory store (path segments,
/// percent-decoding, query filters). Every answer has a known status.
pub fn serve_request(data: &[u8]) {
    use mailauth_reports::dashboard::attribution::Attributor;
    use mailauth_reports::serve::{State, read_head, route};
    use mailauth_reports::store::SqliteStore;

    fn state() -> &'static State {
        static STATE: OnceLock<State> = OnceLock::new();
        STATE.get_or_init(|| {
            let store = SqliteStore::open_in_memory().expect("in-memory store");
            State::new(
                Box::new(store),
                Box::new(Attributor::offline),
                "127.0.0.1:8080".parse().expect("address"),
                false,
            )
        })
    }

    let Ok(head) = read_head(data) else {
        return;
    };
    if head.target.starts_with('/') {
        let r = route(state(), &head.target);
        assert!(
            [200, 400, 404, 500].contains(&r.status),
            "{:?} answered {}",
            head.target,
            r.status
        );
    }
}
