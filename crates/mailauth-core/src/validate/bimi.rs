//! The BIMI check (draft-brand-indicators-for-message-identification): the
//! `<selector>._bimi` TXT record, and, when the validator fetches over
//! HTTPS, the logo and the evidence document it names.
//!
//! - The logo (`l=`) is fetched with the strict MTA-STS client (certificate
//!   checked, no redirects, status 200, size cap) and checked against the
//!   SVG Tiny Portable/Secure profile as far as a receiver can tell without
//!   rendering: root `svg` with `version="1.2"` and `baseProfile="tiny-ps"`,
//!   a `title`, no scripts or event handlers, no references outside the
//!   document, no raster images, a square view box, at most 32 KiB.
//! - The evidence document (`a=`, a VMC or CMC as PEM) is parsed: the
//!   chain is verified (signatures, validity dates, the BIMI extended key
//!   usage) against the roots given with `--bimi-ca-file`, the subject's
//!   names must cover the domain, and the SVG embedded in the logotype
//!   extension (RFC 3709) must be the logo `l=` serves.
//!
//! Not checked: revocation (CRLs, OCSP), certificate transparency, the
//! issuers' policies (no VMC root program is built in: without
//! `--bimi-ca-file` a chain that ends in a root mailauth was not given is
//! reported, not trusted), the logotype hash, and SVG features beyond the
//! list above. The record syntax is `record::bimi`'s; the HTTPS client is
//! [`super::mtasts::PolicyFetcher`]'s.

use std::io::Read;
use std::path::PathBuf;

use super::mtasts::{PolicyError, PolicyFetcher};
use super::{Check, Finding, Validator};
use crate::diff::Desired;
use crate::dns::ResolveError;
use crate::record::RType;
use crate::record::bimi::Bimi;

/// The BIMI Group's guidance: "SVG files should be no larger than 32
/// kilobytes".
pub const MAX_LOGO_SIZE: usize = 32 * 1024;
/// An evidence document is a short chain of PEM certificates.
pub const MAX_EVIDENCE_SIZE: usize = 256 * 1024;
/// An SVG unpacked from the logotype extension is held to the same cap.
const MAX_EMBEDDED_SIZE: usize = MAX_LOGO_SIZE;

/// id-kp-BrandIndicatorforMessageIdentification, 1.3.6.1.5.5.7.3.31,
/// as DER OID content.
const BIMI_EKU: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x1f];
/// id-pe-logotype (RFC 3709 §4.1), 1.3.6.1.5.5.7.1.12, as a DER OID.
const LOGOTYPE_OID: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x0c];

/// What the BIMI check needs besides the resolver.
pub struct BimiCheck {
    pub fetcher: PolicyFetcher,
    /// `--bimi-ca-file`: roots trusted to issue evidence documents.
    pub roots: Vec<Vec<u8>>,
}

impl BimiCheck {
    /// Reads the PEM roots of `--bimi-ca-file`.
    pub fn new(fetcher: PolicyFetcher, ca_files: &[PathBuf]) -> Result<BimiCheck, PolicyError> {
        let mut roots = Vec::new();
        for path in ca_files {
            let ca_file = |detail: String| PolicyError::CaFile {
                path: path.clone(),
                detail,
            };
            let pem = std::fs::read(path).map_err(|e| ca_file(e.to_string()))?;
            let certs = pem_certificates(&pem);
            if certs.is_empty() {
                return Err(ca_file("no PEM certificate in the file".to_string()));
            }
            roots.extend(certs);
        }
        Ok(BimiCheck { fetcher, roots })
    }
}

/// The record name this domain's BIMI check looks at: the config's
/// selector, else `default`.
fn record_name(desired: &Desired) -> String {
    desired
        .sets
        .iter()
        .find(|s| {
            s.rtype == RType::Txt
                && s.name.as_str().split('.').nth(1) == Some("_bimi")
                && s.name.as_str().ends_with(desired.origin.as_str())
        })
        .map(|s| s.name.to_string())
        .unwrap_or_else(|| format!("default._bimi.{}", desired.origin))
}

pub(super) fn check(v: &Validator, desired: &Desired) -> Vec<Finding> {
    let name = record_name(desired);
    let declared = desired
        .sets
        .iter()
        .any(|s| s.name.to_string() == name && s.rtype == RType::Txt);
    let texts = match v.resolver.txt(&name) {
        Ok(t) => t,
        Err(ResolveError::NxDomain { .. }) => Vec::new(),
        Err(e) => return vec![Finding::dns(Check::Bimi, &format!("{name} TXT"), &e)],
    };
    let records: Vec<String> = texts
        .iter()
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .filter(|t| t.trim_start().to_ascii_lowercase().starts_with("v=bimi"))
        .collect();
    let record = match records.as_slice() {
        [] if declared => {
            return vec![Finding::fail(
                Check::Bimi,
                format!("no BIMI record at {name}"),
                "run `mailauth apply`",
            )];
        }
        [] => return Vec::new(),
        [one] => one,
        _ => {
            return vec![Finding::fail(
                Check::Bimi,
                format!(
                    "{} BIMI records at {name}; receivers ignore them all",
                    records.len()
                ),
                "keep exactly one",
            )];
        }
    };
    let bimi = match record.parse::<Bimi>() {
        Ok(b) => b,
        Err(e) => {
            return vec![Finding::fail(
                Check::Bimi,
                format!("{name}: {e}"),
                "publish `v=BIMI1; l=https://…/logo.svg; a=https://…/vmc.pem`",
            )];
        }
    };
    if bimi.is_declined() {
        return vec![Finding::pass(
            Check::Bimi,
            format!("{name}: declination record: no logo is shown"),
        )];
    }
    let mut out = vec![Finding::pass(Check::Bimi, format!("{name}: {bimi}"))];
    let Some(check) = v.bimi.as_ref() else {
        return out;
    };
    let logo_url = &bimi.l[0];
    let logo = match fetch(check, v, logo_url, MAX_LOGO_SIZE, "logo") {
        Ok((ctype, body)) => {
            let mut problems = Vec::new();
            if !media_type_is(&ctype, "image/svg+xml") {
                problems.push(format!("Content-Type is {ctype:?}, not image/svg+xml"));
            }
            problems.extend(svg_problems(&body));
            if problems.is_empty() {
                out.push(Finding::pass(
                    Check::Bimi,
                    format!("logo {logo_url}: SVG Tiny PS, square, {} bytes", body.len()),
                ));
            } else {
                out.push(
                    Finding::fail(
                        Check::Bimi,
                        format!("logo {logo_url} is not a valid BIMI SVG"),
                        "export the logo as SVG Tiny Portable/Secure (version 1.2, baseProfile tiny-ps)",
                    )
                    .with_details(problems),
                );
            }
            Some(body)
        }
        Err(f) => {
            out.push(f);
            None
        }
    };
    if let Some(a) = &bimi.a {
        out.extend(check_evidence(
            check,
            v,
            desired.origin.as_str(),
            a,
            logo.as_deref(),
        ));
    }
    out
}

fn fetch(
    check: &BimiCheck,
    v: &Validator,
    url: &str,
    limit: usize,
    what: &str,
) -> Result<(String, Vec<u8>), Finding> {
    check
        .fetcher
        .fetch_https(v.resolver, url, limit)
        .map_err(|e| {
            let message = match e {
                PolicyError::TooLarge { url, limit } => {
                    format!("{what} {url} is larger than {limit} bytes")
                }
                other => format!("{what} unavailable: {other}"),
            };
            Finding::fail(
                Check::Bimi,
                message,
                format!(
                    "serve the {what} over HTTPS with a valid certificate, status 200, no redirect"
                ),
            )
        })
}

fn media_type_is(content_type: &str, want: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(want))
}

/// The SVG Tiny PS checks (BIMI Group, "SVG Tiny Portable/Secure"), each
/// problem named; empty when the file passes.
pub fn svg_problems(svg: &[u8]) -> Vec<String> {
    use quick_xml::events::Event;
    let mut problems = Vec::new();
    if svg.len() > MAX_LOGO_SIZE {
        problems.push(format!("{} bytes: larger than {MAX_LOGO_SIZE}", svg.len()));
        return problems;
    }
    let Ok(text) = std::str::from_utf8(svg) else {
        return vec!["not UTF-8 text".into()];
    };
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut title = false;
    let mut view: Option<(f64, f64)> = None;
    let mut size: (Option<f64>, Option<f64>) = (None, None);
    let add = |p: String, problems: &mut Vec<String>| {
        if !problems.contains(&p) {
            problems.push(p);
        }
    };
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                add(format!("not well-formed XML: {e}"), &mut problems);
                break;
            }
        };
        let (start, empty) = match &event {
            Event::Start(s) => (Some(s.clone()), false),
            Event::Empty(s) => (Some(s.clone()), true),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                continue;
            }
            Event::DocType(d) => {
                if AsRef::<str>::as_ref(&**d).contains("ENTITY") {
                    add("the DOCTYPE declares entities".into(), &mut problems);
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let Some(el) = start else { continue };
        let local = el.local_name().as_ref().to_string();
        let mut attrs = Vec::new();
        for a in el.attributes().with_checks(false).flatten() {
            let key = a.key.as_ref().to_string();
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| a.value.to_string());
            attrs.push((key, value));
        }
        let attr = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if depth == 0 {
            if root_seen {
                add("more than one root element".into(), &mut problems);
            }
            root_seen = true;
            if local != "svg" {
                add(
                    format!("the root element is `{local}`, not `svg`"),
                    &mut problems,
                );
            }
            if attr("version") != Some("1.2") {
                add(
                    format!(
                        "root `svg` has version {:?}, not \"1.2\"",
                        attr("version").unwrap_or("")
                    ),
                    &mut problems,
                );
            }
            if attr("baseProfile") != Some("tiny-ps") {
                add(
                    format!(
                        "root `svg` has baseProfile {:?}, not \"tiny-ps\"",
                        attr("baseProfile").unwrap_or("")
                    ),
                    &mut problems,
                );
            }
            if attr("x").is_some() || attr("y").is_some() {
                add("root `svg` has x or y attributes".into(), &mut problems);
            }
            if let Some(vb) = attr("viewBox") {
                let n: Vec<f64> = vb
                    .split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .filter_map(|s| s.parse().ok())
                    .collect();
                if n.len() == 4 {
                    view = Some((n[2], n[3]));
                }
            }
            let num =
                |s: Option<&str>| s.and_then(|v| v.trim_end_matches("px").parse::<f64>().ok());
            size = (num(attr("width")), num(attr("height")));
        }
        if depth == 1 && local == "title" {
            title = true;
        }
        match local.as_str() {
            "script" => add("a `script` element".into(), &mut problems),
            "image" => add(
                "an `image` element (raster images are not allowed)".into(),
                &mut problems,
            ),
            "foreignObject" => add("a `foreignObject` element".into(), &mut problems),
            "a" => add(
                "an `a` element (links are not allowed)".into(),
                &mut problems,
            ),
            _ => {}
        }
        for (key, value) in &attrs {
            let k = key.to_ascii_lowercase();
            if k.starts_with("on") {
                add(format!("an event handler attribute `{key}`"), &mut problems);
            }
            if (k == "href" || k.ends_with(":href")) && !value.starts_with('#') {
                add(
                    format!("an external reference `{key}=\"{value}\"`"),
                    &mut problems,
                );
            }
            if value.contains("url(") && !value.replace(' ', "").contains("url(#") {
                add(format!("an external reference in `{key}`"), &mut problems);
            }
        }
        if !empty {
            depth += 1;
        }
    }
    if !root_seen {
        add("no root element".into(), &mut problems);
    }
    if root_seen && !title {
        add("no `title` element under the root".into(), &mut problems);
    }
    let square = match (view, size) {
        (Some((w, h)), _) => {
            Some(w > 0.0 && (w - h).abs() < f64::EPSILON * w.max(h).max(1.0) * 4.0)
        }
        (None, (Some(w), Some(h))) => Some(w > 0.0 && w == h),
        _ => None,
    };
    match square {
        Some(true) => {}
        Some(false) => add(
            "the logo is not square (viewBox width differs from height)".into(),
            &mut problems,
        ),
        None => add(
            "no viewBox: the aspect ratio is unknown".into(),
            &mut problems,
        ),
    }
    problems
}

/// The DER certificates of a PEM text, in order.
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .map(|c| c.as_ref().to_vec())
        .collect()
}

fn check_evidence(
    check: &BimiCheck,
    v: &Validator,
    domain: &str,
    url: &str,
    logo: Option<&[u8]>,
) -> Vec<Finding> {
    let (_, body) = match fetch(check, v, url, MAX_EVIDENCE_SIZE, "evidence document") {
        Ok(b) => b,
        Err(f) => return vec![f],
    };
    let certs = pem_certificates(&body);
    if certs.is_empty() {
        return vec![Finding::fail(
            Check::Bimi,
            format!("evidence document {url}: no PEM certificate in it"),
            "serve the VMC or CMC as PEM, the certificate first, then its intermediates",
        )];
    }
    let fix = "get a VMC or CMC from a BIMI certificate authority for this domain";
    let mut out = Vec::new();
    match verify_chain(&certs, &check.roots, domain) {
        Ok(()) => out.push(Finding::pass(
            Check::Bimi,
            format!(
                "evidence document {url}: chain verified to a --bimi-ca-file root, valid now, BIMI key usage, names cover {domain}"
            ),
        )),
        Err(e) => out.push(Finding::fail(Check::Bimi, format!("evidence document {url}: {e}"), fix)),
    }
    match embedded_svg(&certs[0]) {
        Err(e) => out.push(Finding::fail(
            Check::Bimi,
            format!("evidence document {url}: {e}"),
            fix,
        )),
        Ok(svg) => match logo {
            Some(logo) if logo == svg.as_slice() => out.push(Finding::pass(
                Check::Bimi,
                "the logotype extension's SVG is the logo `l=` serves",
            )),
            Some(_) => out.push(Finding::fail(
                Check::Bimi,
                format!(
                    "evidence document {url}: the SVG in its logotype extension differs from the logo `l=` serves"
                ),
                "serve at `l=` exactly the SVG the certificate was issued for",
            )),
            None => {}
        },
    }
    out
}

/// Chain (signatures, dates, BIMI EKU) to one of `roots`, and the leaf's
/// names covering `domain`.
fn verify_chain(certs: &[Vec<u8>], roots: &[Vec<u8>], domain: &str) -> Result<(), String> {
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let eku_oid = [&[0x06, BIMI_EKU.len() as u8][..], BIMI_EKU].concat();
    if !certs[0]
        .windows(eku_oid.len())
        .any(|w| w == eku_oid.as_slice())
    {
        return Err(
            "the certificate lacks the BIMI extended key usage (1.3.6.1.5.5.7.3.31)".to_string(),
        );
    }
    let leaf_der = CertificateDer::from(certs[0].as_slice());
    let leaf = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| format!("the first certificate does not parse: {e}"))?;
    let intermediates: Vec<CertificateDer> = certs[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let root_ders: Vec<CertificateDer> = roots
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let anchors: Vec<_> = root_ders
        .iter()
        .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
        .collect();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        UnixTime::now(),
        webpki::KeyUsage::required(BIMI_EKU),
        None,
        None,
    )
    .map_err(|e| match e {
        webpki::Error::UnknownIssuer if anchors.is_empty() => {
            "the chain cannot be verified: no BIMI root was given (--bimi-ca-file)".to_string()
        }
        // The leaf has the EKU (checked above): an EKU complaint comes
        // from a path through a certificate that is not a given root.
        webpki::Error::UnknownIssuer | webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the chain does not lead to a --bimi-ca-file root (unknown issuer)".to_string()
        }
        webpki::Error::CertExpired { .. } => "the certificate has expired".to_string(),
        webpki::Error::CertNotValidYet { .. } => "the certificate is not valid yet".to_string(),
        other => format!("the chain does not verify: {other}"),
    })?;
    let name = ServerName::try_from(domain.to_string())
        .map_err(|_| format!("`{domain}` is not a DNS name"))?;
    leaf.verify_is_valid_for_subject_name(&name)
        .map_err(|_| format!("the certificate's names do not cover {domain}"))
}

/// One DER TLV: (tag, content, rest). Definite lengths only (DER).
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The first IA5String under `data` (walking constructed values) that is a
/// `data:` URI. Depth-bounded.
fn find_data_uri(mut data: &[u8], depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    while let Some((tag, content, rest)) = tlv(data) {
        if tag == 0x16 && content.starts_with(b"data:") {
            return Some(String::from_utf8_lossy(content).into_owned());
        }
        if tag & 0x20 != 0
            && let Some(found) = find_data_uri(content, depth + 1)
        {
            return Some(found);
        }
        data = rest;
    }
    None
}

/// The SVG of the leaf's logotype extension (RFC 3709 §4.1:
/// `id-pe-logotype`, a `LogotypeExtn` whose `LogotypeDetails.logotypeURI`
/// holds, for BIMI, a `data:image/svg+xml;base64,` URI of the SVG, usually
/// gzip-compressed).
pub fn embedded_svg(cert: &[u8]) -> Result<Vec<u8>, String> {
    let at = cert
        .windows(LOGOTYPE_OID.len())
        .position(|w| w == LOGOTYPE_OID)
        .ok_or("the certificate has no logotype extension (RFC 3709, 1.3.6.1.5.5.7.1.12)")?;
    // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
    let mut rest = &cert[at + LOGOTYPE_OID.len()..];
    let value = loop {
        let (tag, content, next) = tlv(rest).ok_or("the logotype extension is malformed")?;
        match tag {
            0x01 => rest = next,
            0x04 => break content,
            _ => return Err("the logotype extension is malformed".into()),
        }
    };
    let uri = find_data_uri(value, 0).ok_or("the logotype extension holds no data: URI")?;
    let (meta, payload) = uri
        .split_once(',')
        .ok_or("the logotype data: URI has no comma")?;
    if !meta.to_ascii_lowercase().starts_with("data:image/svg+xml") {
        return Err(format!("the logotype is `{meta}`, not image/svg+xml"));
    }
    if !meta.to_ascii_lowercase().ends_with(";base64") {
        return Err("the logotype data: URI is not base64".into());
    }
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|e| format!("the logotype data: URI is not valid base64: {e}"))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .take(MAX_EMBEDDED_SIZE as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("the logotype's gzip data is corrupt: {e}"))?;
        if out.len() > MAX_EMBEDDED_SIZE {
            return Err(format!(
                "the logotype SVG is larger than {MAX_EMBEDDED_SIZE} bytes"
            ));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.2" baseProfile="tiny-ps" viewBox="0 0 100 100">
  <title>Example</title>
  <circle cx="50" cy="50" r="40" fill="#0a0"/>
</svg>"##;

    #[test]
    fn a_tiny_ps_logo_passes() {
        assert_eq!(svg_problems(GOOD.as_bytes()), Vec::<String>::new());
    }

    #[test]
    fn each_broken_logo_names_its_problem() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "version=\"1.2\"",
                "version=\"1.1\"",
                "version \"1.1\", not \"1.2\"",
            ),
            (
                "baseProfile=\"tiny-ps\"",
                "baseProfile=\"tiny\"",
                "baseProfile \"tiny\"",
            ),
            ("<title>Example</title>", "", "no `title` element"),
            (
                "<circle",
                "<script>alert(1)</script><circle",
                "a `script` element",
            ),
            (
                "<circle",
                "<circle onclick=\"x()\"",
                "event handler attribute `onclick`",
            ),
            (
                "<circle",
                "<use href=\"https://evil.test/a.svg#x\"/><circle",
                "an external reference",
            ),
            (
                "<circle",
                "<image href=\"data:image/png;base64,AAAA\"/><circle",
                "an `image` element",
            ),
            ("0 0 100 100", "0 0 100 50", "not square"),
        ];
        for (from, to, needle) in cases {
            let svg = GOOD.replace(from, to);
            let problems = svg_problems(svg.as_bytes());
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
        let big = GOOD.replace(
            "<title>",
            &format!("<desc>{}</desc><title>", "x".repeat(MAX_LOGO_SIZE)),
        );
        assert!(svg_problems(big.as_bytes())[0].contains("larger than"));
    }
}
