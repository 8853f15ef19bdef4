//! A received message as raw bytes split into header fields and body, the
//! way DKIM needs it: every field keeps its exact bytes (name, colon, folded
//! value, CRLF) next to an unfolded string for reading. Also finds the
//! message embedded in a failure report (RFC 6591).
//!
//! This module does no MIME decoding beyond locating an embedded
//! `message/rfc822` or `text/rfc822-headers` part, and judges nothing.

/// One header field.
///
/// RFC 5322 §2.2: "Header fields are lines beginning with a field name,
/// followed by a colon (":"), followed by a field body, and terminated by
/// CRLF." §2.2.3: "Unfolding is accomplished by simply removing any CRLF
/// that is immediately followed by WSP."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The field name as written.
    pub name: String,
    /// The exact bytes of the field, from the name to the final CRLF.
    pub raw: Vec<u8>,
}

impl Header {
    /// The raw bytes after the colon, CRLF included.
    pub fn raw_value(&self) -> &[u8] {
        let colon = self.raw.iter().position(|&b| b == b':').unwrap_or(0);
        &self.raw[colon + 1..]
    }

    /// The unfolded value, trimmed, with invalid UTF-8 replaced.
    pub fn value(&self) -> String {
        let v = String::from_utf8_lossy(self.raw_value());
        v.replace("\r\n", "").replace('\n', "").trim().to_string()
    }

    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// A message: header fields in order (top first) and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<Header>,
    /// Everything after the blank line ending the header section, CRLF line
    /// endings.
    pub body: Vec<u8>,
    /// Only the header section is known (a `text/rfc822-headers` copy in a
    /// failure report): an empty body is not the signed body, and body
    /// hashes cannot be checked.
    pub headers_only: bool,
}

/// Converts bare LF (and bare CR) line endings to CRLF, as a message on disk
/// usually has LF only while DKIM canonicalisation is defined on CRLF
/// (RFC 5322 §2.1: "lines ... delimited by the two characters carriage-return
/// and line-feed").
pub fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

impl Message {
    /// Splits `raw` into header fields and body. Line endings are made CRLF
    /// first; an mbox `From ` separator line at the top is dropped. A line
    /// in the header section that is neither a field nor a continuation
    /// ends the header section, as most receivers treat it.
    pub fn parse(raw: &[u8]) -> Message {
        let data = to_crlf(raw);
        let mut pos = 0;
        if data.starts_with(b"From ") {
            pos = find(&data, b"\r\n", 0).map_or(data.len(), |i| i + 2);
        }
        let mut headers: Vec<Header> = Vec::new();
        loop {
            if pos >= data.len() {
                return Message {
                    headers,
                    body: Vec::new(),
                    headers_only: false,
                };
            }
            let end = find(&data, b"\r\n", pos).map_or(data.len(), |i| i + 2);
            let line = &data[pos..end];
            if line == b"\r\n" {
                pos = end;
                break;
            }
            if matches!(line[0], b' ' | b'\t') {
                match headers.last_mut() {
                    Some(h) => h.raw.extend_from_slice(line),
                    None => break,
                }
                pos = end;
                continue;
            }
            match line.iter().position(|&b| b == b':') {
                Some(colon)
                    if colon > 0
                        && line[..colon]
                            .iter()
                            .all(|&b| (33..=126).contains(&b) || b == b' ' || b == b'\t') =>
                {
                    let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
                    headers.push(Header {
                        name,
                        raw: line.to_vec(),
                    });
                    pos = end;
                }
                _ => break,
            }
        }
        Message {
            headers,
            body: data[pos..].to_vec(),
            headers_only: false,
        }
    }

    /// All fields called `name`, top first.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Header> + 'a {
        self.headers.iter().filter(move |h| h.is(name))
    }

    /// The first (topmost) field called `name`.
    pub fn first(&self, name: &str) -> Option<&Header> {
        self.headers.iter().find(|h| h.is(name))
    }

    /// The message embedded in a failure report (RFC 6591 §3: "a
    /// 'message/rfc822' or 'text/rfc822-headers' MIME part containing the
    /// original message"), when this message is a `multipart/report`. The
    /// part's bytes are returned as written (7bit / 8bit only; an encoded
    /// part is decoded from base64 when so labelled).
    pub fn embedded(&self) -> Option<Original> {
        let ct = self.first("Content-Type")?.value();
        if !ct.to_ascii_lowercase().starts_with("multipart/") {
            return None;
        }
        let boundary = param(&ct, "boundary")?;
        let delim = format!("--{boundary}");
        let body = &self.body;
        let mut starts = Vec::new();
        let mut i = 0;
        while let Some(p) = find(body, delim.as_bytes(), i) {
            if p == 0 || body[..p].ends_with(b"\r\n") {
                starts.push(p);
            }
            i = p + delim.len();
        }
        for w in starts.windows(2) {
            let part_start = find(body, b"\r\n", w[0]).map_or(w[1], |e| e + 2);
            let part_end = w[1].saturating_sub(2).max(part_start);
            let part = Message::parse(&body[part_start..part_end]);
            let pct = part
                .first("Content-Type")
                .map(|h| h.value().to_ascii_lowercase())
                .unwrap_or_default();
            let headers_only = pct.starts_with("text/rfc822-headers");
            if pct.starts_with("message/rfc822")
                || headers_only
                || pct.starts_with("message/global")
            {
                let cte = part
                    .first("Content-Transfer-Encoding")
                    .map(|h| h.value().to_ascii_lowercase())
                    .unwrap_or_default();
                if cte == "base64" {
                    use base64::Engine as _;
                    let clean: Vec<u8> = part
                        .body
                        .iter()
                        .copied()
                        .filter(|b| !b.is_ascii_whitespace())
                        .collect();
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(clean)
                        .ok()?;
                    return Some(Original {
                        bytes,
                        headers_only,
                    });
                }
                return Some(Original {
                    bytes: part.body,
                    headers_only,
                });
            }
        }
        None
    }
}

/// The bytes of a message to inspect: a whole message, or the original
/// found inside a failure report or bounce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Original {
    pub bytes: Vec<u8>,
    /// RFC 6591 §3 allows "a 'text/rfc822-headers' MIME part" instead of
    /// the whole message: the header fields without the body, so no body
    /// hash can be checked.
    pub headers_only: bool,
}

/// A parameter of a structured header value (`boundary="..."`).
fn param(value: &str, name: &str) -> Option<String> {
    for seg in value.split(';').skip(1) {
        let (k, v) = seg.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(name) {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .map_or(v, |s| s.split('"').next().unwrap_or(s));
            return Some(v.to_string());
        }
    }
    None
}

pub(crate) fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from >= hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The domain of the single mailbox in an address header (From,
/// Return-Path), lower-cased; `None` when there is none. More than one
/// mailbox gives all of them.
///
/// RFC 5322 §3.4: `mailbox = name-addr / addr-spec`, `name-addr =
/// [display-name] angle-addr`, `angle-addr = [CFWS] "<" addr-spec ">"
/// [CFWS]`.
pub fn mailboxes(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut depth = 0usize;
    let mut prev_backslash = false;
    let mut angle: Option<String> = None;
    let mut in_angle = false;
    let flush = |cur: &mut String, angle: &mut Option<String>, out: &mut Vec<String>| {
        let addr = angle.take().unwrap_or_else(|| cur.trim().to_string());
        if !addr.is_empty() {
            out.push(addr);
        }
        cur.clear();
    };
    for c in value.chars() {
        if prev_backslash {
            prev_backslash = false;
            continue;
        }
        match c {
            '\\' if in_quote || depth > 0 => prev_backslash = true,
            '"' if depth == 0 => in_quote = !in_quote,
            '(' if !in_quote => depth += 1,
            ')' if !in_quote && depth > 0 => depth -= 1,
            _ if in_quote || depth > 0 => {}
            '<' => {
                in_angle = true;
                angle = Some(String::new());
            }
            '>' => in_angle = false,
            ',' if !in_angle => flush(&mut cur, &mut angle, &mut out),
            _ if in_angle => {
                if let Some(a) = angle.as_mut() {
                    a.push(c)
                }
            }
            _ => cur.push(c),
        }
    }
    flush(&mut cur, &mut angle, &mut out);
    out.into_iter()
        .map(|a| a.split_whitespace().collect::<String>())
        .collect()
}

/// The lower-cased domain of an address (`user@Example.COM` →
/// `example.com`), without a trailing dot.
pub fn address_domain(addr: &str) -> Option<String> {
    let (_, d) = addr.rsplit_once('@')?;
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    (!d.is_empty()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_headers_and_body() {
        let m = Message::parse(b"From b@x\nSubject: a\n b\nTo: c\n\nbody\n");
        assert_eq!(m.headers.len(), 2);
        assert_eq!(m.headers[0].raw, b"Subject: a\r\n b\r\n");
        assert_eq!(m.headers[0].value(), "a b");
        assert_eq!(m.body, b"body\r\n");
    }

    #[test]
    fn mailbox_domains() {
        for (input, want) in [
            ("a@b.example", vec!["a@b.example"]),
            ("\"Doe, J\" <j@Ex.com>", vec!["j@Ex.com"]),
            ("J (c@x.y) <j@z.example>", vec!["j@z.example"]),
            (
                "a@x.example, B <b@y.example>",
                vec!["a@x.example", "b@y.example"],
            ),
            ("<>", vec![]),
        ] {
            assert_eq!(mailboxes(input), want, "{input}");
        }
        assert_eq!(address_domain("j@Ex.COM."), Some("ex.com".into()));
        assert_eq!(address_domain("nobody"), None);
    }

    #[test]
    fn finds_embedded_message() {
        let raw = b"Content-Type: multipart/report; report-type=feedback-report;\n boundary=\"XX\"\n\n--XX\nContent-Type: text/plain\n\nhello\n--XX\nContent-Type: message/rfc822\n\nFrom: a@b.example\n\nbody\n--XX--\n";
        let m = Message::parse(raw);
        let e = m.embedded().expect("embedded message");
        assert_eq!(e.bytes, b"From: a@b.example\r\n\r\nbody");
        assert!(!e.headers_only);
        assert_eq!(Message::parse(b"From: a@b\n\nx").embedded(), None);
        let headers = b"Content-Type: multipart/report; boundary=XX\n\n--XX\nContent-Type: text/plain\n\nhi\n--XX\nContent-Type: text/rfc822-headers\n\nFrom: a@b.example\nSubject: s\n\n--XX--\n";
        let e = Message::parse(headers)
            .embedded()
            .expect("embedded headers");
        assert!(e.headers_only);
        assert!(e.bytes.starts_with(b"From: a@b.example\r\nSubject: s\r\n"));
    }
}
