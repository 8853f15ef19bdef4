//! Containers around reports: gzip (multi-member, nested), zip, MIME
//! messages (attachments or body, base64 / quoted-printable, nested
//! `message/rfc822`), detected by content, not by file name.
//!
//! Owns bytes → [`Payload`]s (aggregate XML, TLS-RPT JSON, failure
//! reports) under the size, ratio and depth caps of [`IngestLimits`]; a
//! zip's entry count and directory size are checked from its end record
//! before the zip crate reads the directory.
//! Leaves the report formats to `aggregate.rs`, `tlsrpt.rs`, `failure.rs`.

use std::io::Read;

use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::ParseError;
use super::failure::{self, FailureReport};
use crate::reports::IngestLimits;

/// A report found inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// DMARC aggregate XML (bytes as sent, possibly not UTF-8).
    Xml(Vec<u8>),
    /// SMTP TLS report JSON.
    Json(Vec<u8>),
    /// A failure report taken from a message.
    Failure(Box<FailureReport>),
}

/// What the first bytes say the content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniff {
    Gzip,
    Zip,
    Xml,
    Json,
    Mime,
    Unknown,
}

fn sniff(bytes: &[u8]) -> Sniff {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Sniff::Gzip;
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Sniff::Zip;
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &body[i..]);
    match start.first() {
        Some(b'<') => return Sniff::Xml,
        Some(b'{') => return Sniff::Json,
        _ => {}
    }
    // RFC 5322 section 2.2: a header field is "name ':' body", the name
    // printable ASCII without colon; mbox adds a "From " line.
    let first_line = start.split(|&b| b == b'\n').next().unwrap_or_default();
    let looks_like_header = first_line.starts_with(b"From ")
        || first_line
            .iter()
            .position(|&b| b == b':')
            .is_some_and(|i| i > 0 && first_line[..i].iter().all(|b| b.is_ascii_graphic()));
    if looks_like_header {
        Sniff::Mime
    } else {
        Sniff::Unknown
    }
}

/// Most output `compressed_len` bytes may inflate to before the ratio cap
/// is exceeded: the largest `n` that [`check_ratio`] accepts.
fn ratio_cap(compressed_len: usize, max_ratio: u64) -> u64 {
    let compressed = (compressed_len as u64).max(1);
    compressed
        .saturating_mul(max_ratio.saturating_add(1))
        .saturating_sub(1)
        .max(1 << 20)
}

/// The output cap of one decompression: the size budget, or the ratio cap
/// of the layer and of the whole item (`origin_len` bytes), whichever is
/// smallest. Stopping there keeps a bomb from inflating to the size
/// budget before the ratio is checked; measuring against the whole item
/// catches bombs nested in layers that are each under the ratio.
fn output_cap(limit: u64, compressed_len: usize, origin_len: usize, max_ratio: u64) -> u64 {
    limit
        .min(ratio_cap(compressed_len, max_ratio))
        .min(ratio_cap(origin_len, max_ratio))
}

/// The error for output past `cap` (see [`output_cap`]).
fn over_cap(cap: u64, limit: u64, max_ratio: u64, what: &str) -> ParseError {
    if cap >= limit {
        ParseError::TooLarge {
            what: format!("{what} decompressed size"),
            limit,
        }
    } else {
        ParseError::TooLarge {
            what: format!("{what} compression ratio"),
            limit: max_ratio,
        }
    }
}

/// Reads at most `limit` bytes; more is a bomb (or just too big).
fn read_capped(
    reader: impl Read,
    limit: u64,
    compressed_len: usize,
    origin_len: usize,
    max_ratio: u64,
    what: &str,
) -> Result<Vec<u8>, ParseError> {
    let cap = output_cap(limit, compressed_len, origin_len, max_ratio);
    let mut out = Vec::new();
    reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| ParseError::Container {
            msg: format!("{what}: {e}"),
        })?;
    let n = out.len() as u64;
    if n > cap {
        return Err(over_cap(cap, limit, max_ratio, what));
    }
    check_ratio(n, compressed_len, max_ratio, what)?;
    Ok(out)
}

/// Decompresses every gzip member.
///
/// RFC 1952 section 2.2: "A gzip file consists of a series of members
/// (compressed data sets)". This is `MultiGzDecoder`, member by member, so
/// that trailing line breaks after the last member (Mimecast sends them)
/// are tolerated instead of failing as a broken next member.
fn gunzip(
    bytes: &[u8],
    limit: u64,
    origin_len: usize,
    max_ratio: u64,
) -> Result<Vec<u8>, ParseError> {
    let cap = output_cap(limit, bytes.len(), origin_len, max_ratio);
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.starts_with(&[0x1f, 0x8b]) {
        let room = cap.saturating_sub(out.len() as u64);
        let mut member = flate2::bufread::GzDecoder::new(rest).take(room.saturating_add(1));
        member
            .read_to_end(&mut out)
            .map_err(|e| ParseError::Container {
                msg: format!("gzip: {e}"),
            })?;
        if out.len() as u64 > cap {
            return Err(over_cap(cap, limit, max_ratio, "gzip"));
        }
        rest = member.into_inner().into_inner();
    }
    if !rest.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
        return Err(ParseError::Container {
            msg: format!("gzip: {} bytes of trailing garbage", rest.len()),
        });
    }
    check_ratio(out.len() as u64, bytes.len(), max_ratio, "gzip")?;
    Ok(out)
}

fn check_ratio(
    n: u64,
    compressed_len: usize,
    max_ratio: u64,
    what: &str,
) -> Result<(), ParseError> {
    // A ratio check only means something past a few pages of output.
    let compressed = (compressed_len as u64).max(1);
    if n > 1 << 20 && n / compressed > max_ratio {
        return Err(ParseError::TooLarge {
            what: format!("{what} compression ratio ({}:1)", n / compressed),
            limit: max_ratio,
        });
    }
    Ok(())
}

fn too_many_zip_entries(limits: &IngestLimits) -> ParseError {
    ParseError::TooLarge {
        what: "zip entries (max_zip_entries)".to_owned(),
        limit: limits.max_zip_entries as u64,
    }
}

/// Largest central directory accepted, per entry allowed: a header is 46
/// bytes plus the name, extra field and comment (a report's entry needs
/// about 150 bytes).
const ZIP_CD_BYTES_PER_ENTRY: u64 = 4 << 10;

fn le16(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le32(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u32::from_le_bytes(
        b.get(at..at + 4)?.try_into().ok()?,
    )))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Checks the entry count and the central directory's size that the zip
/// says it has, before the zip crate reads the directory into memory (a
/// 64 MiB zip can list 1.4 million entries).
///
/// APPNOTE.TXT 4.3.16, end of central directory record: signature
/// 0x06054b50, disk numbers (2 + 2), "total number of entries in the
/// central dir on this disk" (2), "total number of entries in the central
/// dir" (2), "size of the central directory" (4), its offset (4), comment
/// length (2) and the comment (at most 65,535 bytes), so the record starts
/// in the last 65,557 bytes. 4.3.14/4.3.15: when a field is all ones, the
/// ZIP64 end of central directory record (0x06064b50), found through its
/// locator (0x07064b50, 20 bytes before the record above), holds the
/// 8-byte values (entries at 24 and 32, size at 40). Every candidate
/// record in the window is checked, so a comment that imitates one cannot
/// hide the real one.
fn check_zip_directory(bytes: &[u8], limits: &IngestLimits) -> Result<(), ParseError> {
    const EOCD: &[u8] = b"PK\x05\x06";
    let max_entries = limits.max_zip_entries as u64;
    let max_cd = max_entries.saturating_mul(ZIP_CD_BYTES_PER_ENTRY);
    let from = bytes.len().saturating_sub(22 + 0xFFFF);
    let mut found = false;
    for at in (from..bytes.len().saturating_sub(21)).rev() {
        if &bytes[at..at + 4] != EOCD {
            continue;
        }
        found = true;
        let rec = &bytes[at..];
        let (mut this_disk, mut total, mut size) = (
            le16(rec, 8).unwrap_or(0),
            le16(rec, 10).unwrap_or(0),
            le32(rec, 12).unwrap_or(0),
        );
        if (this_disk == 0xFFFF || total == 0xFFFF || size == 0xFFFF_FFFF)
            && let Some(loc) = at.checked_sub(20).map(|l| &bytes[l..at])
            && loc.starts_with(b"PK\x06\x07")
        {
            let z64 = le64(loc, 8)
                .and_then(|o| usize::try_from(o).ok())
                .and_then(|o| bytes.get(o..))
                .filter(|r| r.starts_with(b"PK\x06\x06"));
            match z64 {
                Some(r) => {
                    this_disk = le64(r, 24).unwrap_or(u64::MAX);
                    total = le64(r, 32).unwrap_or(u64::MAX);
                    size = le64(r, 40).unwrap_or(u64::MAX);
                }
                None => {
                    return Err(ParseError::Container {
                        msg: "zip: the ZIP64 end of central directory record is missing".into(),
                    });
                }
            }
        }
        if this_disk.max(total) > max_entries {
            return Err(too_many_zip_entries(limits));
        }
        if size > max_cd {
            return Err(ParseError::TooLarge {
                what: format!("zip central directory size ({size} bytes, max_zip_entries)"),
                limit: max_cd,
            });
        }
    }
    if !found {
        return Err(ParseError::Container {
            msg: "zip: no end of central directory record".into(),
        });
    }
    Ok(())
}

/// Unpacks `bytes` into the reports it contains.
pub fn unpack(bytes: &[u8], limits: &IngestLimits) -> Result<Vec<Payload>, ParseError> {
    if bytes.len() as u64 > limits.max_input_bytes {
        return Err(ParseError::TooLarge {
            what: "input".to_owned(),
            limit: limits.max_input_bytes,
        });
    }
    let mut out = Vec::new();
    let mut budget = limits.max_decompressed_bytes;
    unpack_into(bytes, bytes.len(), limits, 0, &mut budget, &mut out)?;
    if out.is_empty() {
        return Err(ParseError::NotAReport {
            detail: "no report found in the message".to_owned(),
        });
    }
    Ok(out)
}

fn unpack_into(
    bytes: &[u8],
    origin_len: usize,
    limits: &IngestLimits,
    depth: usize,
    budget: &mut u64,
    out: &mut Vec<Payload>,
) -> Result<(), ParseError> {
    if depth > limits.max_nesting {
        return Err(ParseError::TooLarge {
            what: "container nesting depth".to_owned(),
            limit: limits.max_nesting as u64,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::NotAReport {
            detail: "empty input".to_owned(),
        });
    }
    match sniff(bytes) {
        Sniff::Gzip => {
            let data = gunzip(bytes, *budget, origin_len, limits.max_ratio)?;
            *budget = budget.saturating_sub(data.len() as u64);
            unpack_owned(data, origin_len, limits, depth + 1, budget, out)
        }
        Sniff::Zip => {
            check_zip_directory(bytes, limits)?;
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
                ParseError::Container {
                    msg: format!("zip: {e}"),
                }
            })?;
            if archive.len() > limits.max_zip_entries {
                return Err(too_many_zip_entries(limits));
            }
            for i in 0..archive.len() {
                let mut entry = archive.by_index(i).map_err(|e| ParseError::Container {
                    msg: format!("zip entry {i}: {e}"),
                })?;
                if entry.is_dir() {
                    continue;
                }
                let compressed = usize::try_from(entry.compressed_size()).unwrap_or(usize::MAX);
                let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
                let data = read_capped(
                    &mut entry,
                    *budget,
                    compressed,
                    origin_len,
                    limits.max_ratio,
                    &format!("zip entry {name:?}"),
                )?;
                *budget = budget.saturating_sub(data.len() as u64);
                match unpack_owned(data, origin_len, limits, depth + 1, budget, out) {
                    // A README or `__MACOSX/` entry beside the report.
                    Ok(()) | Err(ParseError::NotAReport { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
        Sniff::Xml => {
            out.push(Payload::Xml(bytes.to_vec()));
            Ok(())
        }
        Sniff::Json => {
            out.push(Payload::Json(bytes.to_vec()));
            Ok(())
        }
        Sniff::Mime => unpack_message(bytes, origin_len, limits, depth, budget, out),
        Sniff::Unknown => Err(ParseError::NotAReport {
            detail: "not XML, JSON, gzip, zip or a mail message".to_owned(),
        }),
    }
}

/// [`unpack_into`] for bytes this module decompressed itself: a report
/// found in them is kept as it is instead of being copied. The checks are
/// those of `unpack_into`, in the same order.
fn unpack_owned(
    data: Vec<u8>,
    origin_len: usize,
    limits: &IngestLimits,
    depth: usize,
    budget: &mut u64,
    out: &mut Vec<Payload>,
) -> Result<(), ParseError> {
    if depth <= limits.max_nesting && !data.iter().all(u8::is_ascii_whitespace) {
        match sniff(&data) {
            Sniff::Xml => {
                out.push(Payload::Xml(data));
                return Ok(());
            }
            Sniff::Json => {
                out.push(Payload::Json(data));
                return Ok(());
            }
            _ => {}
        }
    }
    unpack_into(&data, origin_len, limits, depth, budget, out)
}

/// The item itself when it is a plain-XML document within the input
/// limit: [`unpack`] would return it as the only payload, copied.
pub(super) fn plain_xml<'a>(bytes: &'a [u8], limits: &IngestLimits) -> Option<&'a [u8]> {
    let plain = bytes.len() as u64 <= limits.max_input_bytes && sniff(bytes) == Sniff::Xml;
    plain.then_some(bytes)
}

fn header_block(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len());
    &raw[..end]
}

/// Walks a MIME message.
///
/// RFC 7489 section 7.2.1.1: the aggregate report "MUST be ... compressed
/// using gzip or zip" and attached with a suitable media type
/// ("application/gzip"), but reporters also send the XML as the body or as
/// `text/xml`, name `.zip` attachments `application/octet-stream`, and put
/// an HTML "[Preview]" part first: every part is sniffed.
/// RFC 6591 / RFC 5965 section 2: a failure report is "multipart/report"
/// with a "message/feedback-report" part and the original message or
/// headers.
fn unpack_message(
    bytes: &[u8],
    origin_len: usize,
    limits: &IngestLimits,
    depth: usize,
    budget: &mut u64,
    out: &mut Vec<Payload>,
) -> Result<(), ParseError> {
    if depth > limits.max_mime_depth {
        return Err(ParseError::TooLarge {
            what: "MIME nesting depth".to_owned(),
            limit: limits.max_mime_depth as u64,
        });
    }
    // mail-parser 0.11 has a `debug_assert!` that some malformed multipart
    // structures trip (found by fuzzing `report_container`): with debug
    // assertions on, hostile mail would panic. Treat it as a broken message.
    let parsed =
        std::panic::catch_unwind(|| MessageParser::default().parse(bytes)).map_err(|_| {
            ParseError::Container {
                msg: "malformed MIME structure".to_owned(),
            }
        })?;
    let message = parsed.ok_or_else(|| ParseError::NotAReport {
        detail: "not a mail message (no headers)".to_owned(),
    })?;

    // Failure reports first: if there is a feedback-report part, the rest
    // of the message is the reported mail, never a report of its own.
    let arf = message.parts.iter().find(|p| {
        p.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("feedback-report"))
        })
    });
    let reporter = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_owned)
        .or_else(|| message.header_raw("From").map(|s| s.trim().to_owned()));
    if let Some(arf) = arf {
        let text = String::from_utf8_lossy(arf.contents());
        let mut report = failure::parse_arf(&text)?;
        report.reporter = reporter;
        for part in &message.parts {
            let is_headers = part.content_type().is_some_and(|ct| {
                ct.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
            });
            if let PartType::Message(original) = &part.body {
                let headers = String::from_utf8_lossy(header_block(original.raw_message()));
                report.original_headers = Some(cap(&headers, limits.max_original_headers));
                report.original_subject = original.subject().map(str::to_owned);
                report.original_message_id = original.message_id().map(str::to_owned);
                break;
            } else if is_headers {
                let headers = String::from_utf8_lossy(part.contents());
                report.original_headers = Some(cap(&headers, limits.max_original_headers));
                break;
            }
        }
        out.push(Payload::Failure(Box::new(report)));
        return Ok(());
    }

    let found_before = out.len();
    let mut first_error = None;
    for (i, part) in message.parts.iter().enumerate() {
        let data: &[u8] = match &part.body {
            PartType::Binary(b) | PartType::InlineBinary(b) => b,
            PartType::Text(t) => {
                let is_xml_type = part.content_type().is_some_and(|ct| {
                    ct.subtype().is_some_and(|s| {
                        s.eq_ignore_ascii_case("xml") || s.to_ascii_lowercase().ends_with("+xml")
                    })
                });
                let trimmed = t.trim_start_matches('\u{feff}').trim_start();
                if is_xml_type
                    || trimmed.starts_with("<?xml")
                    || trimmed.starts_with("<feedback")
                    || trimmed.starts_with('{')
                {
                    t.as_bytes()
                } else {
                    continue;
                }
            }
            PartType::Message(nested) => {
                let raw = nested.raw_message();
                if let Err(e) = unpack_message(raw, origin_len, limits, depth + 1, budget, out) {
                    first_error.get_or_insert(e);
                }
                continue;
            }
            PartType::Html(_) | PartType::Multipart(_) => continue,
        };
        if i == 0 && data.is_empty() {
            continue;
        }
        if data.len() as u64 > limits.max_attachment_bytes {
            return Err(ParseError::TooLarge {
                what: format!(
                    "attachment {:?}",
                    part.attachment_name().unwrap_or("(unnamed)")
                ),
                limit: limits.max_attachment_bytes,
            });
        }
        match unpack_into(data, origin_len, limits, depth + 1, budget, out) {
            Ok(()) => {}
            // A logo or a signature is not a report; keep looking.
            Err(ParseError::NotAReport { .. }) => {}
            Err(e @ ParseError::TooLarge { .. }) => return Err(e),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if out.len() > found_before {
        return Ok(());
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    // Text-only failure reports (no ARF part).
    let subject = message.subject().unwrap_or_default().to_ascii_lowercase();
    if subject.contains("dmarc")
        && (subject.contains("forensic") || subject.contains("failure"))
        && let Some(text) = message.body_text(0)
        && let Some(mut report) = failure::parse_text(&text)
    {
        report.reporter = reporter;
        out.push(Payload::Failure(Box::new(report)));
    }
    Ok(())
}

fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_table() {
        let cases: &[(&[u8], Sniff)] = &[
            (b"\x1f\x8b\x08", Sniff::Gzip),
            (b"PK\x03\x04", Sniff::Zip),
            (b"\xEF\xBB\xBF  <?xml", Sniff::Xml),
            (b"\n{\"a\":1}", Sniff::Json),
            (b"Received: from x\r\n", Sniff::Mime),
            (b"From a@b Sat Jan  1\n", Sniff::Mime),
            (b"%PDF-1.4", Sniff::Unknown),
        ];
        for (input, want) in cases {
            assert_eq!(sniff(input), *want, "{input:?}");
        }
    }

    fn zip_with(n: usize) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for i in 0..n {
            w.start_file(format!("r{i}.json"), opts).expect("start");
            w.write_all(b"{}").expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    /// `max_zip_entries`: 16 entries are read, 17 refused; the count comes
    /// from the end of central directory record, before the zip crate
    /// reads the directory: a record that claims a million entries is
    /// refused for its count (the zip crate would first have failed on, or
    /// read, the directory it points to).
    #[test]
    fn max_zip_entries() {
        let limits = IngestLimits::default();
        assert_eq!(
            unpack(&zip_with(16), &limits).expect("16 entries").len(),
            16
        );
        let err = unpack(&zip_with(17), &limits).expect_err("17 entries");
        assert_eq!(
            err.to_string(),
            "zip entries (max_zip_entries) exceeds the limit of 16"
        );
        // One real entry, then a directory record that claims 0xFFFF
        // entries on this disk and in all, and the ZIP64 form of a million.
        let mut fake = zip_with(1);
        let eocd = fake.len() - 22;
        fake[eocd + 8..eocd + 12].copy_from_slice(&[0xFF; 4]);
        let err = unpack(&fake, &limits).expect_err("claims 65535");
        assert_eq!(
            err.to_string(),
            "zip entries (max_zip_entries) exceeds the limit of 16"
        );
        let mut z64 = zip_with(1);
        let eocd = z64.len() - 22;
        let at = eocd as u64;
        let mut rec = b"PK\x06\x06".to_vec();
        rec.extend_from_slice(&44u64.to_le_bytes());
        rec.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        rec.extend_from_slice(&1_000_000u64.to_le_bytes());
        rec.extend_from_slice(&1_000_000u64.to_le_bytes());
        rec.extend_from_slice(&50u64.to_le_bytes());
        rec.extend_from_slice(&0u64.to_le_bytes());
        let mut loc = b"PK\x06\x07".to_vec();
        loc.extend_from_slice(&0u32.to_le_bytes());
        loc.extend_from_slice(&at.to_le_bytes());
        loc.extend_from_slice(&1u32.to_le_bytes());
        let mut tail = z64.split_off(eocd);
        tail[8..12].copy_from_slice(&[0xFF; 4]);
        z64.extend_from_slice(&rec);
        z64.extend_from_slice(&loc);
        z64.extend_from_slice(&tail);
        let err = unpack(&z64, &limits).expect_err("claims a million");
        assert_eq!(
            err.to_string(),
            "zip entries (max_zip_entries) exceeds the limit of 16"
        );
        // A huge directory for few entries.
        let mut big_cd = zip_with(1);
        let eocd = big_cd.len() - 22;
        big_cd[eocd + 12..eocd + 16].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let err = unpack(&big_cd, &limits).expect_err("1 GiB directory");
        assert!(err.to_string().contains("central directory size"), "{err}");
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    const XML: &[u8] =
        b"<feedback><report_metadata><org_name>o</org_name></report_metadata></feedback>";

    /// `max_nesting`: a report in six gzip layers is read, in seven it is
    /// refused.
    #[test]
    fn max_nesting() {
        let limits = IngestLimits::default();
        let mut data = XML.to_vec();
        for _ in 0..6 {
            data = gzip(&data);
        }
        assert_eq!(
            unpack(&data, &limits).expect("6 layers"),
            vec![Payload::Xml(XML.to_vec())]
        );
        let err = unpack(&gzip(&data), &limits).expect_err("7 layers");
        assert_eq!(
            err.to_string(),
            "container nesting depth exceeds the limit of 6"
        );
    }

    fn mail_with_attachment(name: &str, data: &[u8]) -> Vec<u8> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        format!(
            "From: r@example.com\r\nSubject: Report\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nhello\r\n--b\r\n\
             Content-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{b64}\r\n--b--\r\n"
        )
        .into_bytes()
    }

    /// `max_attachment_bytes`: an attachment of more decoded bytes than
    /// the limit is refused with its name; one within it is read.
    #[test]
    fn max_attachment_bytes() {
        let gz = gzip(XML);
        let mail = mail_with_attachment("r.xml.gz", &gz);
        let fits = IngestLimits {
            max_attachment_bytes: gz.len() as u64,
            ..IngestLimits::default()
        };
        assert_eq!(
            unpack(&mail, &fits).expect("fits"),
            vec![Payload::Xml(XML.to_vec())]
        );
        let small = IngestLimits {
            max_attachment_bytes: gz.len() as u64 - 1,
            ..IngestLimits::default()
        };
        let err = unpack(&mail, &small).expect_err("too large");
        assert_eq!(
            err.to_string(),
            format!(
                "attachment \"r.xml.gz\" exceeds the limit of {}",
                gz.len() - 1
            )
        );
    }

    /// `max_original_headers`: the original headers of a failure report
    /// are cut to the limit (on a character boundary); the report is kept.
    #[test]
    fn max_original_headers() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/reports/forensic/dmarc_ruf_report_linkedin.eml"
        );
        let mail = std::fs::read(path).expect("sample");
        let headers = |limits: &IngestLimits| match unpack(&mail, limits).expect("parses").pop() {
            Some(Payload::Failure(r)) => r.original_headers.unwrap_or_default(),
            other => panic!("{other:?}"),
        };
        let full = headers(&IngestLimits::default());
        assert!(full.len() > 200, "{full}");
        let cut = headers(&IngestLimits {
            max_original_headers: 100,
            ..IngestLimits::default()
        });
        assert_eq!(cut, full[..100]);
    }

    #[test]
    fn zip_entries_that_are_not_reports_are_skipped() {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("__MACOSX/._r.xml", opts).expect("start");
        w.write_all(b"\x00\x05\x16\x07binary").expect("write");
        w.start_file("r.json", opts).expect("start");
        w.write_all(b"{}").expect("write");
        let zip = w.finish().expect("finish").into_inner();
        let got = unpack(&zip, &IngestLimits::default()).expect("unpacks");
        assert_eq!(got, vec![Payload::Json(b"{}".to_vec())]);
    }

    #[test]
    fn gzip_bomb_rejected() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b'<'; 8 << 20]).expect("compress");
        let gz = enc.finish().expect("finish");
        let limits = IngestLimits {
            max_decompressed_bytes: 4 << 20,
            ..IngestLimits::default()
        };
        let err = unpack(&gz, &limits).expect_err("bomb");
        assert!(matches!(err, ParseError::TooLarge { .. }), "{err}");
        // Within the size cap the ratio cap still catches it.
        let err = unpack(&gz, &IngestLimits::default()).expect_err("ratio");
        assert!(err.to_string().contains("ratio"), "{err}");
    }
}
