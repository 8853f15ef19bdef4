//! A mail message read from where it lies, its large attachments left
//! there: the message's MIME structure is scanned as it is read, and a
//! skeleton of it is built in which every large base64 attachment is
//! replaced by a short marker. mail-parser then parses the skeleton (every
//! header, every text part, the structure it sees), and each marker stands
//! for an attachment that is decoded as it is read ([`Base64Part`]).
//!
//! Owns the structure scan, the skeleton and the streaming base64 decoder.
//! Leaves what a message means (which part is a report, failure reports,
//! nesting) to `container`, which checks that mail-parser found every
//! marker as the whole body of an attachment and otherwise reads the
//! message whole, as it does any message held in memory. Reads only from
//! the input it is handed.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use super::container::ReadSeek;

/// One attachment left out of the skeleton.
#[derive(Debug, Clone)]
pub(super) struct BodyRange {
    /// What mail-parser decodes the skeleton's stand-in body to.
    pub marker: Vec<u8>,
    /// The base64 body in the input: `start..end` (line breaks included).
    pub start: u64,
    pub end: u64,
    /// Its size decoded.
    pub decoded_len: u64,
}

/// A message with its large attachments replaced by markers.
#[derive(Debug)]
pub(super) struct Skeleton {
    pub bytes: Vec<u8>,
    pub parts: Vec<BodyRange>,
}

/// Lines kept of a body line (enough for any boundary delimiter) and of a
/// header field, whose longer values end the scan (the message is then
/// read whole).
const KEEP_LINE: usize = 1024;
const MAX_HEADER: usize = 16 << 10;
/// Multipart nesting followed; deeper, the message is read whole.
const MAX_DEPTH: usize = 16;

/// One line of the input: where it starts, its length (line break
/// included), its first `KEEP_LINE` bytes and what its bytes are, seen as
/// base64.
struct Line {
    start: u64,
    len: u64,
    head: Vec<u8>,
    alpha: u64,
    pad: u64,
    /// Base64 digits after a '=' in the line.
    digit_after_pad: bool,
    /// A byte that is neither a base64 digit, '=', CR nor LF.
    other: bool,
}

impl Line {
    /// The line without its line break.
    fn text(&self) -> &[u8] {
        let t = self.head.strip_suffix(b"\n").unwrap_or(&self.head);
        t.strip_suffix(b"\r").unwrap_or(t)
    }
}

/// How an entity ended.
enum End {
    Eof,
    /// A delimiter line of the boundary at this place in the stack.
    Delim {
        depth: usize,
        close: bool,
    },
}

/// The scan: `None` anywhere means "read this message whole".
struct Scan<'a> {
    r: BufReader<&'a mut dyn ReadSeek>,
    offset: u64,
    min_body: u64,
    parts: Vec<(u64, u64, u64)>,
}

impl Scan<'_> {
    fn line(&mut self) -> std::io::Result<Line> {
        let mut line = Line {
            start: self.offset,
            len: 0,
            head: Vec::new(),
            alpha: 0,
            pad: 0,
            digit_after_pad: false,
            other: false,
        };
        loop {
            let buf = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                break;
            }
            let (n, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = KEEP_LINE.saturating_sub(line.head.len());
            line.head.extend_from_slice(&buf[..n.min(room)]);
            for &b in &buf[..n] {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => {
                        line.alpha += 1;
                        line.digit_after_pad |= line.pad > 0;
                    }
                    b'=' => line.pad += 1,
                    b'\r' | b'\n' => {}
                    _ => line.other = true,
                }
            }
            self.r.consume(n);
            line.len += n as u64;
            self.offset += n as u64;
            if done {
                break;
            }
        }
        Ok(line)
    }

    /// Which boundary of `stack` the line delimits, if any.
    ///
    /// RFC 2046 section 5.1.1: the delimiter is a line of "--" and the
    /// boundary, "--" after it for the last one, then optional linear
    /// white space.
    fn delimiter(line: &Line, stack: &[Vec<u8>]) -> Option<End> {
        let text = line.text();
        let rest = text.strip_prefix(b"--")?;
        let trimmed = rest
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t'))
            .map_or(&rest[..0], |i| &rest[..=i]);
        for (depth, b) in stack.iter().enumerate().rev() {
            if trimmed == b.as_slice() {
                return Some(End::Delim {
                    depth,
                    close: false,
                });
            }
            if trimmed.strip_suffix(b"--") == Some(b.as_slice()) {
                return Some(End::Delim { depth, close: true });
            }
        }
        None
    }

    /// Lines up to the next delimiter of `stack` (or the end).
    fn skip(&mut self, stack: &[Vec<u8>]) -> std::io::Result<End> {
        loop {
            let line = self.line()?;
            if line.len == 0 {
                return Ok(End::Eof);
            }
            if let Some(end) = Self::delimiter(&line, stack) {
                return Ok(end);
            }
        }
    }

    /// One entity (the message, or a part): its header, then its body.
    fn entity(&mut self, stack: &mut Vec<Vec<u8>>) -> std::io::Result<Option<End>> {
        let mut fields: Vec<Vec<u8>> = Vec::new();
        loop {
            let line = self.line()?;
            if line.len == 0 {
                return Ok(Some(End::Eof));
            }
            if let Some(end) = Self::delimiter(&line, stack) {
                return Ok(Some(end));
            }
            let text = line.text();
            if text.is_empty() {
                break;
            }
            if line.len as usize > KEEP_LINE {
                return Ok(None);
            }
            // RFC 5322 section 2.2.3: a line that starts with white space
            // continues the field above.
            match fields.last_mut() {
                Some(f) if text[0] == b' ' || text[0] == b'\t' => {
                    if f.len() + text.len() > MAX_HEADER {
                        return Ok(None);
                    }
                    f.extend_from_slice(text);
                }
                _ => fields.push(text.to_vec()),
            }
        }
        let field = |name: &str| {
            fields.iter().rev().find_map(|f| {
                let colon = f.iter().position(|&b| b == b':')?;
                f[..colon]
                    .trim_ascii()
                    .eq_ignore_ascii_case(name.as_bytes())
                    .then(|| String::from_utf8_lossy(&f[colon + 1..]).trim().to_owned())
            })
        };
        let ctype = field("content-type").unwrap_or_default();
        let cte = field("content-transfer-encoding").unwrap_or_default();
        let mut params = ctype.split(';');
        let media = params
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let major = media.split('/').next().unwrap_or_default().to_owned();
        if major == "multipart" {
            let Some(boundary) = params.find_map(|p| {
                let (name, value) = p.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("boundary")
                    .then(|| value.trim().trim_matches('"').to_owned())
            }) else {
                return Ok(None);
            };
            if boundary.is_empty() || stack.len() >= MAX_DEPTH {
                return Ok(None);
            }
            stack.push(boundary.into_bytes());
            let here = stack.len() - 1;
            // The preamble.
            let mut end = self.skip(stack)?;
            loop {
                match end {
                    End::Delim { depth, close } if depth == here => {
                        if close {
                            stack.pop();
                            // The epilogue, up to the enclosing delimiter.
                            return self.skip(stack).map(Some);
                        }
                        match self.entity(stack)? {
                            Some(e) => end = e,
                            None => return Ok(None),
                        }
                    }
                    other => {
                        stack.pop();
                        return Ok(Some(other));
                    }
                }
            }
        }
        // A leaf: its body runs to the next delimiter.
        let start = self.offset;
        let (mut alpha, mut pad, mut strict) = (0u64, 0u64, true);
        let (end, at) = loop {
            let line = self.line()?;
            if line.len == 0 {
                break (End::Eof, self.offset);
            }
            if let Some(end) = Self::delimiter(&line, stack) {
                break (end, line.start);
            }
            // Canonical base64 only: digits, then at most two '=' at the
            // very end, in whole groups of four. Any decoder reads that
            // the same way; anything else is left to mail-parser.
            strict &= !line.other && !line.digit_after_pad && (pad == 0 || line.alpha == 0);
            alpha += line.alpha;
            pad += line.pad;
        };
        let eligible = !matches!(major.as_str(), "text" | "message" | "multipart" | "")
            && cte.eq_ignore_ascii_case("base64")
            && at - start >= self.min_body
            && strict
            && pad <= 2
            && (alpha + pad) % 4 == 0;
        if eligible {
            let decoded = (alpha + pad) / 4 * 3 - pad;
            self.parts.push((start, at, decoded));
        }
        Ok(Some(end))
    }
}

/// Scans the message in `input` (`len` bytes) and builds its skeleton,
/// leaving out every base64 attachment of at least `min_body` bytes.
/// `None` when there is none, or when the structure is one the scan does
/// not follow: the message is then read whole.
pub(super) fn skeleton(
    input: &mut dyn ReadSeek,
    len: u64,
    min_body: u64,
) -> std::io::Result<Option<Skeleton>> {
    input.seek(SeekFrom::Start(0))?;
    let mut scan = Scan {
        r: BufReader::with_capacity(64 << 10, &mut *input),
        offset: 0,
        min_body,
        parts: Vec::new(),
    };
    let mut stack = Vec::new();
    if scan.entity(&mut stack)?.is_none() || scan.parts.is_empty() {
        return Ok(None);
    }
    let ranges = std::mem::take(&mut scan.parts);
    drop(scan);
    // A marker no message holds by chance: the process's random hash keys.
    let nonce = {
        use std::hash::{BuildHasher as _, Hasher as _};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let mut bytes = Vec::new();
    let mut parts = Vec::with_capacity(ranges.len());
    let mut at = 0u64;
    input.seek(SeekFrom::Start(0))?;
    for (i, (start, end, decoded_len)) in ranges.into_iter().enumerate() {
        (&mut *input).take(start - at).read_to_end(&mut bytes)?;
        let marker = format!("\0mailauth streamed part {nonce:016x} {i}\0").into_bytes();
        use base64::Engine as _;
        bytes.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(&marker)
                .as_bytes(),
        );
        bytes.extend_from_slice(b"\r\n");
        input.seek(SeekFrom::Start(end))?;
        at = end;
        parts.push(BodyRange {
            marker,
            start,
            end,
            decoded_len,
        });
    }
    (&mut *input)
        .take(len - at.min(len))
        .read_to_end(&mut bytes)?;
    Ok(Some(Skeleton { bytes, parts }))
}

/// Base64 digit values, 0xFF for anything else.
const fn decode_table() -> [u8; 256] {
    let mut t = [0xFF; 256];
    let mut v = 0u8;
    while v < 64 {
        let c = match v {
            0..=25 => b'A' + v,
            26..=51 => b'a' + (v - 26),
            52..=61 => b'0' + (v - 52),
            62 => b'+',
            _ => b'/',
        };
        t[c as usize] = v;
        v += 1;
    }
    t
}

static DECODE: [u8; 256] = decode_table();

/// An attachment decoded as it is read from its place in the input, and
/// seekable (zip reads its directory first): seeking back starts the
/// decoding over, seeking forward decodes and drops.
///
/// RFC 2045 section 6.8: each group of four base64 characters is three
/// bytes; "=" pads the last group; line breaks are ignored. The body was
/// checked to be canonical when the skeleton was built.
pub(super) struct Base64Part<'a> {
    input: &'a mut dyn ReadSeek,
    start: u64,
    end: u64,
    len: u64,
    /// Where in the input the next encoded byte is.
    at: u64,
    /// Decoded bytes handed out so far.
    pos: u64,
    positioned: bool,
    quad: [u8; 4],
    nq: usize,
    pad: usize,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
}

impl<'a> Base64Part<'a> {
    pub(super) fn new(input: &'a mut dyn ReadSeek, range: &BodyRange) -> Self {
        Self {
            input,
            start: range.start,
            end: range.end,
            len: range.decoded_len,
            at: range.start,
            pos: 0,
            positioned: false,
            quad: [0; 4],
            nq: 0,
            pad: 0,
            inbuf: vec![0; 64 << 10],
            out: Vec::with_capacity(48 << 10),
            out_pos: 0,
        }
    }

    /// Decodes the next chunk of the body into `out`; false at its end.
    fn refill(&mut self) -> std::io::Result<bool> {
        self.out.clear();
        self.out_pos = 0;
        while self.out.is_empty() {
            if self.at >= self.end {
                return Ok(false);
            }
            if !self.positioned {
                self.input.seek(SeekFrom::Start(self.at))?;
                self.positioned = true;
            }
            let want = usize::try_from(self.end - self.at)
                .unwrap_or(usize::MAX)
                .min(self.inbuf.len());
            let n = match self.input.read(&mut self.inbuf[..want]) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the attachment ends early",
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.at += n as u64;
            for &c in &self.inbuf[..n] {
                let v = DECODE[c as usize];
                if v < 64 {
                    self.quad[self.nq] = v;
                } else if c == b'=' {
                    self.quad[self.nq] = 0;
                    self.pad += 1;
                } else {
                    continue;
                }
                self.nq += 1;
                if self.nq == 4 {
                    let q = self.quad;
                    let w = (u32::from(q[0]) << 18)
                        | (u32::from(q[1]) << 12)
                        | (u32::from(q[2]) << 6)
                        | u32::from(q[3]);
                    let bytes = w.to_be_bytes();
                    self.out.extend_from_slice(&bytes[1..4 - self.pad.min(2)]);
                    self.nq = 0;
                    self.pad = 0;
                }
            }
        }
        Ok(true)
    }
}

impl Read for Base64Part<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.out_pos == self.out.len() && !self.refill()? {
            return Ok(0);
        }
        let n = (self.out.len() - self.out_pos).min(buf.len());
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Base64Part<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        let buffered = (self.out.len() - self.out_pos) as u64;
        if target < self.pos || target > self.pos + buffered {
            if target < self.pos {
                // Back: decode again from the start.
                self.at = self.start;
                self.pos = 0;
                self.positioned = false;
                self.nq = 0;
                self.pad = 0;
                self.out.clear();
                self.out_pos = 0;
            }
            let mut sink = [0u8; 8 << 10];
            while self.pos < target {
                let step = usize::try_from(target - self.pos)
                    .unwrap_or(usize::MAX)
                    .min(sink.len());
                if self.read(&mut sink[..step])? == 0 {
                    break;
                }
            }
        } else {
            self.out_pos += usize::try_from(target - self.pos).unwrap_or(0);
            self.pos = target;
        }
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn mail(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut m = b"From: r@example.com\r\nSubject: Report\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\npreamble\r\n"
            .to_vec();
        for (ctype, data) in parts {
            let b64 = base64::engine::general_purpose::STANDARD.encode(data);
            m.extend_from_slice(
                format!(
                    "--b\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                )
                .as_bytes(),
            );
            for line in b64.as_bytes().chunks(76) {
                m.extend_from_slice(line);
                m.extend_from_slice(b"\r\n");
            }
        }
        m.extend_from_slice(b"--b--\r\n");
        m
    }

    #[test]
    fn large_attachments_are_left_out_and_decode_as_read() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let m = mail(&[("text/plain", b"hello"), ("application/gzip", &big)]);
        let mut input = std::io::Cursor::new(m.clone());
        let sk = skeleton(&mut input, m.len() as u64, 4096)
            .expect("reads")
            .expect("a part left out");
        assert_eq!(sk.parts.len(), 1);
        assert!(sk.bytes.len() < 1000, "{}", sk.bytes.len());
        assert_eq!(sk.parts[0].decoded_len, big.len() as u64);
        // mail-parser finds the marker as the attachment's body.
        let parsed = mail_parser::MessageParser::default()
            .parse(&sk.bytes)
            .expect("parses");
        assert!(
            parsed
                .parts
                .iter()
                .any(|p| p.contents() == sk.parts[0].marker.as_slice())
        );
        let mut part = Base64Part::new(&mut input, &sk.parts[0]);
        let mut got = Vec::new();
        part.read_to_end(&mut got).expect("decodes");
        assert_eq!(got, big);
        // Seeking back and forth gives the same bytes.
        part.seek(SeekFrom::End(-10)).expect("seeks");
        let mut tail = Vec::new();
        part.read_to_end(&mut tail).expect("reads");
        assert_eq!(tail, big[big.len() - 10..]);
        part.seek(SeekFrom::Start(5)).expect("seeks");
        let mut five = [0u8; 5];
        part.read_exact(&mut five).expect("reads");
        assert_eq!(five, big[5..10]);
    }

    #[test]
    fn small_text_or_odd_bodies_stay_in_the_skeleton() {
        let big = vec![b'x'; 10_000];
        for m in [
            mail(&[("application/gzip", b"small")]),
            mail(&[("text/xml", &big)]),
        ] {
            let mut input = std::io::Cursor::new(m.clone());
            assert!(
                skeleton(&mut input, m.len() as u64, 4096)
                    .expect("reads")
                    .is_none()
            );
        }
        // Not canonical base64 (a stray character): read whole.
        let mut m = mail(&[("application/gzip", &big)]);
        let at = m.len() / 2;
        m[at] = b'*';
        let mut input = std::io::Cursor::new(m.clone());
        assert!(
            skeleton(&mut input, m.len() as u64, 4096)
                .expect("reads")
                .is_none()
        );
    }
}
