//! Streaming parser for DMARC aggregate (RUA) XML: RFC 7489 Appendix C and
//! RFC 9990 (namespace `urn:ietf:params:xml:ns:dmarc-2.0`).
//!
//! Owns XML → [`AggregateHeader`] + a stream of [`Record`]s handed to an
//! [`AggregateVisitor`] one at a time, so memory stays flat however many
//! records a report holds. Leaves containers (gzip, zip, MIME) to
//! `container.rs` and storage to the visitor.
//!
//! Recovery (what real reporters send): a UTF-8 BOM, invalid UTF-8 bytes
//! (replaced), stray unclosed or unmatched tags (end tags close back to
//! their matching start, unknown ends are ignored), mixed-case keywords,
//! "hardfail", trailing spaces in numbers, an empty `<org_name>` (taken
//! from the `<email>` domain). Unambiguously broken data (an empty
//! `<source_ip>`, a missing `<report_id>`) rejects the report. Entities are
//! never expanded beyond the five XML predefined ones and character
//! references.

use std::borrow::Cow;
use std::net::IpAddr;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ParseError;
use super::scan::{self, Scan, Token};
use super::types::{
    AggregateHeader, Alignment, Disposition, DkimAuth, DkimResult, DmarcResult, Extension,
    OverrideReason, PolicyAction, PolicyOverride, Record, SpfAuth, SpfResult, SpfScope,
};

/// Error a visitor may return; it aborts the parse as [`ParseError::Sink`].
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Receives a report as it is parsed.
pub trait AggregateVisitor {
    /// Called once, before the first record (or at the end for a report
    /// without records). Return `Ok(false)` to skip the records (for
    /// example, a duplicate report): parsing still validates them.
    fn header(&mut self, header: &AggregateHeader) -> Result<bool, SinkError>;
    /// Called for each `<record>`, in document order.
    fn record(&mut self, record: &Record) -> Result<(), SinkError>;
    /// [`record`](Self::record) with the record handed over, for a visitor
    /// that keeps it (the parser has no further use for it).
    fn record_owned(&mut self, record: Record) -> Result<(), SinkError> {
        self.record(&record)
    }
    /// Called once at the end of an accepted report with the totals, the
    /// report-level `<extensions>` and every warning (some are only known
    /// at the end of the document).
    fn end(&mut self, _summary: &AggregateSummary) -> Result<(), SinkError> {
        Ok(())
    }
}

/// What a parse produced, apart from the records themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateSummary {
    pub header: AggregateHeader,
    /// Number of `<record>` elements.
    pub records: u64,
    /// Sum of the records' `<count>`.
    pub messages: u64,
    /// False when the visitor asked to skip the records.
    pub accepted: bool,
    pub extensions: Vec<Extension>,
}

/// A visitor that collects every record; for tests and small reports only.
#[derive(Debug, Default)]
pub struct Collect {
    pub header: Option<AggregateHeader>,
    pub records: Vec<Record>,
    pub extensions: Vec<Extension>,
}

impl AggregateVisitor for Collect {
    fn header(&mut self, header: &AggregateHeader) -> Result<bool, SinkError> {
        self.header = Some(header.clone());
        Ok(true)
    }
    fn record(&mut self, record: &Record) -> Result<(), SinkError> {
        self.records.push(record.clone());
        Ok(())
    }
    fn end(&mut self, summary: &AggregateSummary) -> Result<(), SinkError> {
        self.extensions = summary.extensions.clone();
        if let Some(h) = &mut self.header {
            h.warnings = summary.header.warnings.clone();
        }
        Ok(())
    }
}

/// RFC 9990 section 4: the aggregate report namespace.
pub const DMARC2_NAMESPACE: &str = "urn:ietf:params:xml:ns:dmarc-2.0";

/// Element names the grammar knows; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Feedback,
    Version,
    ReportMetadata,
    OrgName,
    Email,
    ExtraContactInfo,
    ReportId,
    DateRange,
    Begin,
    End,
    Error,
    Generator,
    PolicyPublished,
    Domain,
    Adkim,
    Aspf,
    P,
    Sp,
    Np,
    Pct,
    Fo,
    Testing,
    DiscoveryMethod,
    Record,
    Row,
    SourceIp,
    Count,
    PolicyEvaluated,
    Disposition,
    Dkim,
    Spf,
    Reason,
    Type,
    Comment,
    Identifiers,
    EnvelopeTo,
    EnvelopeFrom,
    HeaderFrom,
    AuthResults,
    Selector,
    Result,
    HumanResult,
    Scope,
    Extensions,
    Other,
}

fn tag(local: &str) -> Tag {
    match local {
        "feedback" => Tag::Feedback,
        "version" => Tag::Version,
        "report_metadata" => Tag::ReportMetadata,
        "org_name" => Tag::OrgName,
        "email" => Tag::Email,
        "extra_contact_info" => Tag::ExtraContactInfo,
        "report_id" => Tag::ReportId,
        "date_range" => Tag::DateRange,
        "begin" => Tag::Begin,
        "end" => Tag::End,
        "error" => Tag::Error,
        "generator" => Tag::Generator,
        "policy_published" => Tag::PolicyPublished,
        "domain" => Tag::Domain,
        "adkim" => Tag::Adkim,
        "aspf" => Tag::Aspf,
        "p" => Tag::P,
        "sp" => Tag::Sp,
        "np" => Tag::Np,
        "pct" => Tag::Pct,
        "fo" => Tag::Fo,
        "testing" => Tag::Testing,
        "discovery_method" => Tag::DiscoveryMethod,
        "record" => Tag::Record,
        "row" => Tag::Row,
        "source_ip" => Tag::SourceIp,
        "count" => Tag::Count,
        "policy_evaluated" => Tag::PolicyEvaluated,
        "disposition" => Tag::Disposition,
        "dkim" => Tag::Dkim,
        "spf" => Tag::Spf,
        "reason" => Tag::Reason,
        "type" => Tag::Type,
        "comment" => Tag::Comment,
        "identifiers" => Tag::Identifiers,
        "envelope_to" => Tag::EnvelopeTo,
        "envelope_from" => Tag::EnvelopeFrom,
        "header_from" => Tag::HeaderFrom,
        "auth_results" => Tag::AuthResults,
        "selector" => Tag::Selector,
        "result" => Tag::Result,
        "human_result" => Tag::HumanResult,
        "scope" => Tag::Scope,
        "extensions" | "extension" => Tag::Extensions,
        _ => Tag::Other,
    }
}

fn local_name(qname: &str) -> &str {
    // A byte scan: names are short, and a `str` pattern search costs more
    // than the scan (it showed in profiles of large reports).
    match qname.bytes().rposition(|b| b == b':') {
        Some(i) => &qname[i + 1..],
        None => qname,
    }
}

/// The trimmed text of a field, `None` when empty; the buffer is reused
/// from record to record, so the values only parsed into numbers and
/// keywords cost no allocation.
#[derive(Default)]
struct Slot {
    buf: String,
    set: bool,
}

impl Slot {
    /// Takes the value out of `text` (what [`take`] does for a `String`).
    fn fill(&mut self, text: &mut String) {
        let t = text.trim();
        self.buf.clear();
        self.buf.push_str(t);
        self.set = !t.is_empty();
        text.clear();
    }

    fn get(&self) -> Option<&str> {
        self.set.then_some(self.buf.as_str())
    }

    fn clear(&mut self) {
        self.set = false;
    }
}

/// A record while it is being read; raw strings, checked on `</record>`.
#[derive(Default)]
struct RecordDraft {
    source_ip: Slot,
    count: Slot,
    disposition: Slot,
    dkim: Slot,
    spf: Slot,
    reasons: Vec<OverrideReason>,
    reason_type: Slot,
    reason_comment: Option<String>,
    envelope_to: Option<String>,
    envelope_from: Option<String>,
    header_from: Option<String>,
    dkim_results: Vec<DkimAuth>,
    spf_results: Vec<SpfAuth>,
    auth_domain: Option<String>,
    auth_selector: Option<String>,
    auth_result: Slot,
    auth_human: Option<String>,
    auth_scope: Slot,
    extensions: Vec<Extension>,
}

impl RecordDraft {
    /// Back to empty, keeping the buffers of the slots.
    fn reset(&mut self) {
        for slot in [
            &mut self.source_ip,
            &mut self.count,
            &mut self.disposition,
            &mut self.dkim,
            &mut self.spf,
            &mut self.reason_type,
            &mut self.auth_result,
            &mut self.auth_scope,
        ] {
            slot.clear();
        }
        self.reasons.clear();
        self.reason_comment = None;
        self.envelope_to = None;
        self.envelope_from = None;
        self.header_from = None;
        self.dkim_results.clear();
        self.spf_results.clear();
        self.auth_domain = None;
        self.auth_selector = None;
        self.auth_human = None;
        self.extensions.clear();
    }
}

struct State<'v, V: AggregateVisitor + ?Sized> {
    visitor: &'v mut V,
    stack: Vec<Tag>,
    text: String,
    header: AggregateHeader,
    begin: Option<String>,
    end: Option<String>,
    seen_feedback: bool,
    header_sent: bool,
    accepted: bool,
    record: RecordDraft,
    records: u64,
    messages: u64,
    /// Depth of the `<extensions>` element in `stack`, when inside one.
    ext_depth: Option<usize>,
    ext_name: String,
    report_extensions: Vec<Extension>,
    /// Tags closed implicitly or end tags ignored (recovery).
    repaired: u64,
}

/// Parses an aggregate report from raw bytes (any BOM and invalid UTF-8 are
/// tolerated), streaming records to `visitor`.
pub fn parse<V: AggregateVisitor + ?Sized>(
    bytes: &[u8],
    visitor: &mut V,
) -> Result<AggregateSummary, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut warnings = Vec::new();
    let text: Cow<'_, str> = match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            // Drop the bytes that are not UTF-8 (a stray Latin-1 byte in a
            // domain is noise; a replacement character would be worse).
            let mut s = String::with_capacity(bytes.len());
            let mut dropped = 0usize;
            for chunk in bytes.utf8_chunks() {
                s.push_str(chunk.valid());
                dropped += chunk.invalid().len();
            }
            warnings.push(format!("{dropped} invalid UTF-8 byte(s) dropped"));
            Cow::Owned(s)
        }
    };
    parse_str(&text, visitor, warnings, true)
}

fn configure<R>(reader: &mut Reader<R>) {
    let config = reader.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    config.allow_dangling_amp = true;
    config.trim_text(false);
}

fn xml_error<R>(reader: &Reader<R>, base: u64, e: &quick_xml::Error) -> ParseError {
    ParseError::Xml {
        position: base + reader.error_position(),
        msg: e.to_string(),
    }
}

/// `fast` false leaves the whole document to quick-xml (tests compare).
fn parse_str<V: AggregateVisitor + ?Sized>(
    xml: &str,
    visitor: &mut V,
    warnings: Vec<String>,
    fast: bool,
) -> Result<AggregateSummary, ParseError> {
    let mut st = State::new(visitor, warnings);
    // quick-xml drops one more BOM at the start without counting it in its
    // positions: leave that rare document to it entirely.
    let mut pos = 0;
    if fast && !xml.starts_with('\u{feff}') {
        // The last window never needs more: anything but a token falls
        // back.
        while let Scan::Token(token, end) = scan::next(xml, pos, true) {
            pos = end;
            if !st.token(token, end as u64)? {
                return st.finish_document();
            }
        }
    }
    // The rest from a token boundary, where a fresh reader starts in the
    // same state as one that read everything before it.
    let base = pos as u64;
    let mut reader = Reader::from_str(&xml[pos..]);
    configure(&mut reader);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| xml_error(&reader, base, &e))?;
        if !st.event(event, base + reader.buffer_position())? {
            break;
        }
    }
    st.finish_document()
}

/// Parses an aggregate report read from `input` as it arrives, holding one
/// window of the document at a time (at least one whole token): a 100 MB
/// report is parsed in constant memory. Same recovery as [`parse`]; a
/// warning about dropped invalid UTF-8 bytes is only known, and added, at
/// the end.
pub fn parse_reader<R: std::io::Read, V: AggregateVisitor + ?Sized>(
    input: R,
    visitor: &mut V,
) -> Result<AggregateSummary, ParseError> {
    use std::io::{BufRead as _, Read as _};
    let mut clean = Utf8Clean::new(input);
    let mut st = State::new(visitor, Vec::new());
    // The window: clean text not yet tokenized is `window[pos..]`, and
    // `window[0]` is at byte `base` of the (cleaned) document.
    let mut window = String::new();
    let mut pos = 0usize;
    let mut base = 0u64;
    let mut last = false;
    let mut started = false;
    let fallback = loop {
        if started {
            match scan::next(&window, pos, last) {
                Scan::Token(token, end) => {
                    pos = end;
                    if !st.token(token, base + end as u64)? {
                        break false;
                    }
                    continue;
                }
                Scan::Fallback => break true,
                Scan::NeedMore => {}
            }
        } else if window.len() >= 3 || last {
            // See `parse_str` about a second BOM.
            if window.starts_with('\u{feff}') {
                break true;
            }
            started = true;
            continue;
        }
        // Keep the unfinished token, read the next chunk after it.
        window.drain(..pos);
        base += pos as u64;
        pos = 0;
        let chunk = match clean.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) => {
                let e = clean.error.take().unwrap_or(e);
                return Err(ParseError::Container {
                    msg: format!("reading the report: {e}"),
                });
            }
        };
        if chunk.is_empty() {
            last = true;
        } else {
            let n = chunk.len();
            // `Utf8Clean` hands out whole characters only.
            let text = std::str::from_utf8(chunk).map_err(|e| ParseError::Container {
                msg: format!("reading the report: {e}"),
            })?;
            window.push_str(text);
            clean.consume(n);
        }
    };
    let clean = if fallback {
        // The rest of the window, then the rest of the input, to quick-xml.
        let rest = std::io::Cursor::new(window.split_off(pos).into_bytes());
        let base = base + pos as u64;
        let mut reader = Reader::from_reader(rest.chain(clean));
        configure(&mut reader);
        let mut buf = Vec::with_capacity(4096);
        loop {
            buf.clear();
            let event = match reader.read_event_into(&mut buf) {
                Ok(event) => event,
                Err(e) => {
                    if let Some(io) = reader.get_mut().get_mut().1.error.take() {
                        return Err(ParseError::Container {
                            msg: format!("reading the report: {io}"),
                        });
                    }
                    return Err(xml_error(&reader, base, &e));
                }
            };
            if !st.event(event, base + reader.buffer_position())? {
                break;
            }
        }
        reader.into_inner().into_inner().1
    } else {
        clean
    };
    let dropped = clean.dropped;
    if dropped > 0 {
        st.header
            .warnings
            .push(format!("{dropped} invalid UTF-8 byte(s) dropped"));
    }
    st.finish_document()
}

/// A `BufRead` over raw bytes that passes only valid UTF-8 on: a leading
/// BOM is skipped, invalid bytes are dropped and counted (as [`parse`] does
/// for a whole document), and a character split across two reads is kept
/// whole.
struct Utf8Clean<R> {
    inner: R,
    /// Clean bytes not yet consumed: `ready[pos..]`.
    ready: Vec<u8>,
    pos: usize,
    /// Raw bytes read but not yet cleaned (an incomplete character).
    carry: Vec<u8>,
    raw: Vec<u8>,
    dropped: u64,
    started: bool,
    eof: bool,
    /// A read error, kept for the caller (quick-xml wraps it).
    error: Option<std::io::Error>,
}

impl<R: std::io::Read> Utf8Clean<R> {
    const CHUNK: usize = 64 << 10;

    fn new(inner: R) -> Self {
        Self {
            inner,
            ready: Vec::with_capacity(Self::CHUNK + 4),
            pos: 0,
            carry: Vec::new(),
            raw: vec![0; Self::CHUNK],
            dropped: 0,
            started: false,
            eof: false,
            error: None,
        }
    }

    /// Reads and cleans raw bytes until some clean bytes are ready or the
    /// input ends.
    fn refill(&mut self) -> std::io::Result<()> {
        self.ready.clear();
        self.pos = 0;
        while self.ready.is_empty() && !self.eof {
            let n = match self.inner.read(&mut self.raw) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let kept = std::io::Error::new(e.kind(), e.to_string());
                    self.error = Some(e);
                    return Err(kept);
                }
            };
            if n == 0 {
                self.eof = true;
            }
            let mut data = std::mem::take(&mut self.carry);
            data.extend_from_slice(&self.raw[..n]);
            if !self.started {
                // Wait for three bytes before deciding about a BOM.
                if data.len() < 3 && !self.eof {
                    self.carry = data;
                    continue;
                }
                self.started = true;
                if data.starts_with(b"\xEF\xBB\xBF") {
                    data.drain(..3);
                }
            }
            let mut rest = &data[..];
            loop {
                match std::str::from_utf8(rest) {
                    Ok(_) => {
                        self.ready.extend_from_slice(rest);
                        break;
                    }
                    Err(e) => {
                        let good = e.valid_up_to();
                        self.ready.extend_from_slice(&rest[..good]);
                        match e.error_len() {
                            Some(bad) => {
                                self.dropped += bad as u64;
                                rest = &rest[good + bad..];
                            }
                            None if self.eof => {
                                self.dropped += (rest.len() - good) as u64;
                                break;
                            }
                            None => {
                                self.carry = rest[good..].to_vec();
                                break;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl<R: std::io::Read> std::io::Read for Utf8Clean<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::io::BufRead as _;
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(out.len());
            out[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: std::io::Read> std::io::BufRead for Utf8Clean<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos >= self.ready.len() {
            self.refill()?;
        }
        Ok(&self.ready[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.ready.len());
    }
}

impl<'v, V: AggregateVisitor + ?Sized> State<'v, V> {
    fn new(visitor: &'v mut V, warnings: Vec<String>) -> Self {
        State {
            visitor,
            stack: Vec::with_capacity(16),
            text: String::new(),
            header: AggregateHeader {
                warnings,
                ..AggregateHeader::default()
            },
            begin: None,
            end: None,
            seen_feedback: false,
            header_sent: false,
            accepted: true,
            record: RecordDraft::default(),
            records: 0,
            messages: 0,
            ext_depth: None,
            ext_name: String::new(),
            report_extensions: Vec::new(),
            repaired: 0,
        }
    }

    /// Handles one quick-xml event; false at the end of the document.
    fn event(&mut self, event: Event<'_>, position: u64) -> Result<bool, ParseError> {
        match event {
            Event::Start(e) => self.open(&e)?,
            Event::Empty(e) => {
                self.open(&e)?;
                self.close_top()?;
            }
            Event::End(e) => self.end_tag(e.name().into_inner())?,
            Event::Text(t) => self.text.push_str(&t),
            Event::CData(c) => self.text.push_str(&c),
            Event::GeneralRef(r) => self.general_ref(&r, position)?,
            Event::DocType(_) => {
                // A DTD could declare entities; they are never expanded
                // (unknown entity references are rejected above).
            }
            Event::Eof => return Ok(false),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
        Ok(true)
    }

    /// Handles one token of the fast tokenizer, which stands for the
    /// quick-xml event of the same name; false at the end of the document.
    fn token(&mut self, token: Token<'_>, position: u64) -> Result<bool, ParseError> {
        match token {
            Token::Start(e) => self.open(&e)?,
            Token::Empty(e) => {
                self.open(&e)?;
                self.close_top()?;
            }
            Token::End(name) => self.end_tag(name)?,
            Token::Text(t) => self.text.push_str(t),
            Token::Ref(r) => self.general_ref(r, position)?,
            Token::Decl => {}
            Token::Eof => return Ok(false),
        }
        Ok(true)
    }

    fn end_tag(&mut self, qname: &str) -> Result<(), ParseError> {
        let t = tag(local_name(qname));
        self.close(t)
    }

    fn general_ref(&mut self, name: &str, position: u64) -> Result<(), ParseError> {
        let resolved = resolve_ref(name).ok_or_else(|| ParseError::Xml {
            position,
            msg: format!("unknown entity &{name};"),
        })?;
        self.text.push(resolved);
        Ok(())
    }

    fn finish_document(mut self) -> Result<AggregateSummary, ParseError> {
        // Close whatever the reporter left open (recovery of truncated or
        // stray-tag documents), innermost first.
        while !self.stack.is_empty() {
            self.repaired += 1;
            self.close_top()?;
        }
        self.finish()
    }
}

/// XML 1.0 section 4.6 predefined entities and section 4.1 character references.
fn resolve_ref(r: &str) -> Option<char> {
    match r {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = r.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

fn take(text: &mut String) -> Option<String> {
    let t = text.trim();
    let out = if t.is_empty() {
        None
    } else {
        Some(t.to_owned())
    };
    text.clear();
    out
}

impl<V: AggregateVisitor + ?Sized> State<'_, V> {
    fn parent(&self) -> Option<Tag> {
        self.stack.last().copied()
    }

    fn grandparent(&self) -> Option<Tag> {
        self.stack.len().checked_sub(2).map(|i| self.stack[i])
    }

    fn open(&mut self, e: &BytesStart<'_>) -> Result<(), ParseError> {
        let qname = e.name().into_inner();
        let t = tag(local_name(qname));
        if self.ext_depth.is_some_and(|d| self.stack.len() == d + 1) {
            self.ext_name.clear();
            self.ext_name.push_str(local_name(qname));
        }
        match t {
            Tag::Feedback => {
                self.seen_feedback = true;
                // The namespace of <feedback> itself: the default one, or
                // the one bound to its prefix (`<dmarc:feedback>`).
                let ns_attr = match qname.split_once(':') {
                    Some((prefix, _)) => format!("xmlns:{prefix}"),
                    None => "xmlns".to_owned(),
                };
                for attr in e.attributes().flatten() {
                    if attr.key.into_inner() == ns_attr
                        && let Ok(v) = attr.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    {
                        self.header.namespace = Some(v.trim().to_owned());
                    }
                }
            }
            Tag::Record if self.ext_depth.is_none() => {
                self.send_header()?;
                self.record.reset();
            }
            Tag::Extensions if self.ext_depth.is_none() => {
                self.ext_depth = Some(self.stack.len());
            }
            _ => {}
        }
        self.stack.push(t);
        // Text before stray markup inside a value (`bad<xml.net`) stays
        // with the value; only known elements start a new one.
        if t != Tag::Other {
            self.text.clear();
        }
        Ok(())
    }

    /// An end tag: close back to the matching open element; ignore an end
    /// tag nothing matches (stray markup).
    fn close(&mut self, t: Tag) -> Result<(), ParseError> {
        let Some(pos) = self.stack.iter().rposition(|&s| s == t) else {
            self.repaired += 1;
            return Ok(());
        };
        while self.stack.len() > pos + 1 {
            self.repaired += 1;
            self.close_top()?;
        }
        self.close_top()
    }

    fn close_top(&mut self) -> Result<(), ParseError> {
        let Some(t) = self.stack.pop() else {
            return Ok(());
        };
        if let Some(d) = self.ext_depth {
            if self.stack.len() == d {
                self.ext_depth = None;
                self.text.clear();
                return Ok(());
            }
            if self.stack.len() == d + 1 {
                let ext = Extension {
                    name: std::mem::take(&mut self.ext_name),
                    value: take(&mut self.text).unwrap_or_default(),
                };
                if self.stack.contains(&Tag::Record) {
                    self.record.extensions.push(ext);
                } else {
                    self.report_extensions.push(ext);
                }
            }
            return Ok(());
        }
        let parent = self.parent();
        let grandparent = self.grandparent();
        let h = &mut self.header;
        let r = &mut self.record;
        match (parent, t) {
            (Some(Tag::Feedback), Tag::Version) => h.version = take(&mut self.text),
            (Some(Tag::ReportMetadata), Tag::OrgName) => {
                h.org_name = take(&mut self.text).unwrap_or_default();
            }
            (Some(Tag::ReportMetadata), Tag::Email) => h.email = take(&mut self.text),
            (Some(Tag::ReportMetadata), Tag::ExtraContactInfo) => {
                h.extra_contact_info = take(&mut self.text);
            }
            (Some(Tag::ReportMetadata), Tag::ReportId) => {
                h.report_id = take(&mut self.text).unwrap_or_default();
            }
            (Some(Tag::ReportMetadata), Tag::Error) => {
                if let Some(e) = take(&mut self.text) {
                    h.errors.push(e);
                }
            }
            (Some(Tag::ReportMetadata), Tag::Generator) => h.generator = take(&mut self.text),
            (Some(Tag::DateRange), Tag::Begin) => self.begin = take(&mut self.text),
            (Some(Tag::DateRange), Tag::End) => self.end = take(&mut self.text),
            (Some(Tag::PolicyPublished), _) => self.policy_field(t)?,
            (Some(Tag::Row), Tag::SourceIp) => r.source_ip.fill(&mut self.text),
            (Some(Tag::Row), Tag::Count) => r.count.fill(&mut self.text),
            (Some(Tag::PolicyEvaluated), Tag::Disposition) => {
                r.disposition.fill(&mut self.text);
            }
            (Some(Tag::PolicyEvaluated), Tag::Dkim) => r.dkim.fill(&mut self.text),
            (Some(Tag::PolicyEvaluated), Tag::Spf) => r.spf.fill(&mut self.text),
            (Some(Tag::PolicyEvaluated), Tag::Reason) => {
                let comment = r.reason_comment.take();
                let kind = match r.reason_type.get() {
                    // An empty <reason/> says nothing.
                    None if comment.is_none() => return Ok(()),
                    None => PolicyOverride::Other,
                    Some(raw) => PolicyOverride::parse(raw).unwrap_or_else(|| {
                        // An unknown override type is still an override:
                        // keep it as `other` and say what it was.
                        h.warnings.push(format!(
                            "record {}: unknown policy override type {raw:?} read as \"other\"",
                            self.records + 1
                        ));
                        PolicyOverride::Other
                    }),
                };
                r.reason_type.clear();
                r.reasons.push(OverrideReason { kind, comment });
            }
            (Some(Tag::Reason), Tag::Type) => r.reason_type.fill(&mut self.text),
            (Some(Tag::Reason), Tag::Comment) => r.reason_comment = take(&mut self.text),
            (Some(Tag::Identifiers), Tag::EnvelopeTo) => r.envelope_to = take(&mut self.text),
            (Some(Tag::Identifiers), Tag::EnvelopeFrom) => {
                r.envelope_from = take(&mut self.text);
            }
            (Some(Tag::Identifiers), Tag::HeaderFrom) => r.header_from = take(&mut self.text),
            (Some(Tag::Dkim | Tag::Spf), _) if grandparent == Some(Tag::AuthResults) => match t {
                Tag::Domain => r.auth_domain = take(&mut self.text),
                Tag::Selector => r.auth_selector = take(&mut self.text),
                Tag::Result => r.auth_result.fill(&mut self.text),
                Tag::HumanResult => r.auth_human = take(&mut self.text),
                Tag::Scope => r.auth_scope.fill(&mut self.text),
                _ => self.text.clear(),
            },
            (Some(Tag::AuthResults), Tag::Dkim) => self.push_dkim()?,
            (Some(Tag::AuthResults), Tag::Spf) => self.push_spf()?,
            (_, Tag::Record) => self.finish_record()?,
            (_, Tag::Other) => {}
            _ => self.text.clear(),
        }
        Ok(())
    }

    fn invalid(&self, field: &str, value: &str) -> ParseError {
        ParseError::InvalidValue {
            field: field.to_owned(),
            value: value.to_owned(),
            record: self.current_record(),
        }
    }

    fn current_record(&self) -> Option<u64> {
        self.stack
            .contains(&Tag::Record)
            .then_some(self.records + 1)
    }

    fn policy_field(&mut self, t: Tag) -> Result<(), ParseError> {
        let Some(v) = take(&mut self.text) else {
            return Ok(());
        };
        let p = &mut self.header.policy;
        let action = |field: &str| {
            PolicyAction::parse(&v).ok_or_else(|| ParseError::InvalidValue {
                field: format!("policy_published/{field}"),
                value: v.clone(),
                record: None,
            })
        };
        let align = |field: &str| {
            Alignment::parse(&v).ok_or_else(|| ParseError::InvalidValue {
                field: format!("policy_published/{field}"),
                value: v.clone(),
                record: None,
            })
        };
        match t {
            Tag::Domain => p.domain = v.trim_end_matches('.').to_ascii_lowercase(),
            Tag::Adkim => p.adkim = Some(align("adkim")?),
            Tag::Aspf => p.aspf = Some(align("aspf")?),
            Tag::P => p.p = Some(action("p")?),
            Tag::Sp => p.sp = Some(action("sp")?),
            Tag::Np => p.np = Some(action("np")?),
            Tag::Pct => {
                // Integer per the schema; "100.0" is seen too.
                let pct = v
                    .parse::<u8>()
                    .ok()
                    .or_else(|| {
                        v.parse::<f64>()
                            .ok()
                            .filter(|f| (0.0..=100.0).contains(f))
                            .map(|f| f.round() as u8)
                    })
                    .filter(|n| *n <= 100)
                    .ok_or_else(|| self.invalid("policy_published/pct", &v))?;
                self.header.policy.pct = Some(pct);
            }
            Tag::Fo => p.fo = Some(v),
            Tag::Testing => {
                p.testing = Some(match v.to_ascii_lowercase().as_str() {
                    "y" | "yes" | "true" => true,
                    "n" | "no" | "false" => false,
                    _ => return Err(self.invalid("policy_published/testing", &v)),
                });
            }
            Tag::DiscoveryMethod => p.discovery_method = Some(v.to_ascii_lowercase()),
            _ => {}
        }
        Ok(())
    }

    fn push_dkim(&mut self) -> Result<(), ParseError> {
        let r = &mut self.record;
        let domain = r.auth_domain.take().unwrap_or_default();
        let selector = r.auth_selector.take();
        let human_result = r.auth_human.take();
        r.auth_scope.clear();
        let result = match self.record.auth_result.get() {
            Some(v) => {
                DkimResult::parse(v).ok_or_else(|| self.invalid("auth_results/dkim/result", v))?
            }
            None => DkimResult::None,
        };
        self.record.auth_result.clear();
        self.record.dkim_results.push(DkimAuth {
            domain,
            selector,
            result,
            human_result,
        });
        Ok(())
    }

    fn push_spf(&mut self) -> Result<(), ParseError> {
        let r = &mut self.record;
        let domain = r.auth_domain.take().unwrap_or_default();
        let human_result = r.auth_human.take();
        r.auth_selector = None;
        let r = &self.record;
        let scope = match r.auth_scope.get() {
            Some(v) => {
                Some(SpfScope::parse(v).ok_or_else(|| self.invalid("auth_results/spf/scope", v))?)
            }
            None => None,
        };
        let result = match r.auth_result.get() {
            Some(v) => {
                SpfResult::parse(v).ok_or_else(|| self.invalid("auth_results/spf/result", v))?
            }
            None => SpfResult::None,
        };
        self.record.auth_scope.clear();
        self.record.auth_result.clear();
        self.record.spf_results.push(SpfAuth {
            domain,
            scope,
            result,
            human_result,
        });
        Ok(())
    }

    /// Checks the header once, then hands it to the visitor.
    fn send_header(&mut self) -> Result<(), ParseError> {
        if self.header_sent {
            return Ok(());
        }
        self.header_sent = true;
        let h = &mut self.header;
        if h.org_name.is_empty() {
            // parsedmarc does the same: the reporter is named by its address.
            let from_email = h
                .email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.trim_matches(['<', '>', ' ']).to_owned())
                .filter(|d| !d.is_empty());
            match from_email {
                Some(d) => {
                    h.warnings
                        .push("empty <org_name>: taken from the <email> domain".to_owned());
                    h.org_name = d;
                }
                None => {
                    return Err(ParseError::MissingField {
                        field: "report_metadata/org_name".to_owned(),
                    });
                }
            }
        }
        if h.report_id.is_empty() {
            return Err(ParseError::MissingField {
                field: "report_metadata/report_id".to_owned(),
            });
        }
        if h.policy.domain.is_empty() {
            return Err(ParseError::MissingField {
                field: "policy_published/domain".to_owned(),
            });
        }
        let ts = |v: &Option<String>, field: &str| -> Result<i64, ParseError> {
            let v = v.as_deref().ok_or_else(|| ParseError::MissingField {
                field: format!("report_metadata/date_range/{field}"),
            })?;
            // Some reporters write fractional seconds.
            let int = v.split('.').next().unwrap_or(v);
            int.parse::<i64>().map_err(|_| ParseError::InvalidValue {
                field: format!("report_metadata/date_range/{field}"),
                value: v.to_owned(),
                record: None,
            })
        };
        h.date_begin = ts(&self.begin, "begin")?;
        h.date_end = ts(&self.end, "end")?;
        if h.date_end < h.date_begin {
            return Err(ParseError::InvalidValue {
                field: "report_metadata/date_range".to_owned(),
                value: format!("{}..{}", h.date_begin, h.date_end),
                record: None,
            });
        }
        // RFC 7489 section 7.2: "reports ... SHOULD cover ... a 24-hour
        // period"; longer ranges are kept but noted.
        if h.date_end - h.date_begin > 86_400 + 1 {
            h.warnings.push(format!(
                "date range spans {} hours (more than 24)",
                (h.date_end - h.date_begin + 3599) / 3600
            ));
        }
        self.accepted = self
            .visitor
            .header(&self.header)
            .map_err(|source| ParseError::Sink { source })?;
        Ok(())
    }

    fn finish_record(&mut self) -> Result<(), ParseError> {
        let d = &mut self.record;
        let n = self.records + 1;
        let bad = |field: &str, value: &str| ParseError::InvalidValue {
            field: field.to_owned(),
            value: value.to_owned(),
            record: Some(n),
        };
        let ip = d
            .source_ip
            .get()
            .unwrap_or_default()
            .trim_matches(['[', ']']);
        let source_ip: IpAddr = ip.parse().map_err(|_| bad("row/source_ip", ip))?;
        let count_s = d.count.get().unwrap_or_default();
        let count: u64 = count_s.parse().map_err(|_| bad("row/count", count_s))?;
        let disp = d.disposition.get().unwrap_or_default();
        let disposition =
            Disposition::parse(disp).ok_or_else(|| bad("policy_evaluated/disposition", disp))?;
        let dmarc = |v: &Slot, field: &str| -> Result<Option<DmarcResult>, ParseError> {
            match v.get() {
                None => Ok(None),
                Some(v) => DmarcResult::parse(v).map(Some).ok_or_else(|| bad(field, v)),
            }
        };
        let dkim = dmarc(&d.dkim, "policy_evaluated/dkim")?;
        let spf = dmarc(&d.spf, "policy_evaluated/spf")?;
        let header_from = d
            .header_from
            .take()
            .ok_or_else(|| bad("identifiers/header_from", ""))?;
        let record = Record {
            source_ip,
            count,
            disposition,
            dkim,
            spf,
            reasons: std::mem::take(&mut d.reasons),
            envelope_to: d.envelope_to.take(),
            envelope_from: d.envelope_from.take(),
            header_from,
            dkim_results: std::mem::take(&mut d.dkim_results),
            spf_results: std::mem::take(&mut d.spf_results),
            extensions: std::mem::take(&mut d.extensions),
        };
        d.reset();
        self.records = n;
        self.messages = self.messages.saturating_add(count);
        if self.accepted {
            self.visitor
                .record_owned(record)
                .map_err(|source| ParseError::Sink { source })?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<AggregateSummary, ParseError> {
        if !self.seen_feedback {
            return Err(ParseError::NotAReport {
                detail: "no <feedback> element".to_owned(),
            });
        }
        self.send_header()?;
        if self.repaired > 0 {
            self.header.warnings.push(format!(
                "malformed XML: {} tag(s) closed or ignored to recover",
                self.repaired
            ));
        }
        let summary = AggregateSummary {
            header: self.header,
            records: self.records,
            messages: self.messages,
            accepted: self.accepted,
            extensions: self.report_extensions,
        };
        if summary.accepted {
            self.visitor
                .end(&summary)
                .map_err(|source| ParseError::Sink { source })?;
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(records: &str) -> String {
        format!(
            "<feedback><report_metadata><org_name>o</org_name><report_id>1</report_id>\
             <date_range><begin>0</begin><end>86400</end></date_range></report_metadata>\
             <policy_published><domain>Example.COM.</domain><p>Reject</p></policy_published>\
             {records}</feedback>"
        )
    }

    const REC: &str = "<record><row><source_ip>192.0.2.1</source_ip><count>3</count>\
        <policy_evaluated><disposition>None</disposition><dkim>Pass</dkim><spf>hardfail</spf>\
        </policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers>\
        <auth_results><spf><domain>a.example</domain><result>HardFail</result></spf></auth_results>\
        </record>";

    #[test]
    fn parses_and_normalises() {
        let mut c = Collect::default();
        let s = parse(report(REC).as_bytes(), &mut c).expect("parses");
        assert_eq!(s.records, 1);
        assert_eq!(s.messages, 3);
        let h = c.header.expect("header");
        assert_eq!(h.policy.domain, "example.com");
        assert_eq!(h.policy.p, Some(PolicyAction::Reject));
        let r = &c.records[0];
        assert_eq!(r.dkim, Some(DmarcResult::Pass));
        assert_eq!(r.spf, Some(DmarcResult::Fail));
        assert_eq!(r.spf_results[0].result, SpfResult::Fail);
        assert_eq!(r.disposition, Disposition::None);
    }

    #[test]
    fn table() {
        // (input records, expected error field or None)
        let cases: &[(&str, Option<&str>)] = &[
            (REC, None),
            (&REC.replace("192.0.2.1", ""), Some("row/source_ip")),
            (&REC.replace("<count>3", "<count>x3"), Some("row/count")),
            (
                &REC.replace("None</disp", "maybe</disp"),
                Some("policy_evaluated/disposition"),
            ),
            (
                &REC.replace("HardFail", "bogus"),
                Some("auth_results/spf/result"),
            ),
        ];
        for (input, want) in cases {
            let got = parse(report(input).as_bytes(), &mut Collect::default());
            match (want, got) {
                (None, Ok(_)) => {}
                (Some(f), Err(ParseError::InvalidValue { field, .. })) => assert_eq!(&field, f),
                (w, g) => panic!("{input}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn unknown_override_type_is_kept_as_other() {
        let rec = REC.replace(
            "</policy_evaluated>",
            "<reason><type>ARC</type><comment>c</comment></reason>\
             <reason><type>Mailing_List</type></reason></policy_evaluated>",
        );
        let mut c = Collect::default();
        let s = parse(report(&rec).as_bytes(), &mut c).expect("parses");
        let kinds: Vec<_> = c.records[0]
            .reasons
            .iter()
            .map(|r| (r.kind, r.comment.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                (PolicyOverride::Other, Some("c")),
                (PolicyOverride::MailingList, None)
            ]
        );
        assert!(
            s.header.warnings.iter().any(|w| w.contains("\"ARC\"")),
            "{:?}",
            s.header.warnings
        );
    }

    #[test]
    fn prefixed_namespace_and_extensions() {
        let rec = REC.replace(
            "</auth_results>",
            "</auth_results><extensions><x:arc xmlns:x=\"urn:x\">pass</x:arc></extensions>",
        );
        let xml = report(&rec)
            .replace(
                "<feedback>",
                &format!("<d:feedback xmlns:d=\"{DMARC2_NAMESPACE}\">"),
            )
            .replace(
                "</feedback>",
                "<extensions><y>1</y><z/></extensions></d:feedback>",
            );
        let mut c = Collect::default();
        let s = parse(xml.as_bytes(), &mut c).expect("parses");
        assert_eq!(s.header.namespace.as_deref(), Some(DMARC2_NAMESPACE));
        assert_eq!(
            c.records[0].extensions,
            vec![Extension {
                name: "arc".into(),
                value: "pass".into()
            }]
        );
        let names: Vec<&str> = c.extensions.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["y", "z"]);
        assert!(s.header.warnings.is_empty(), "{:?}", s.header.warnings);
    }

    #[test]
    fn records_before_metadata_rejected() {
        let xml = format!(
            "<feedback>{REC}<report_metadata><org_name>o</org_name></report_metadata></feedback>"
        );
        let err = parse(xml.as_bytes(), &mut Collect::default()).expect_err("rejects");
        assert!(matches!(err, ParseError::MissingField { .. }), "{err}");
    }

    #[test]
    fn entities_are_not_expanded() {
        let xml = "<!DOCTYPE f [<!ENTITY x \"boom\">]><feedback><report_metadata>\
                   <org_name>&x;</org_name></report_metadata></feedback>";
        let err = parse(xml.as_bytes(), &mut Collect::default()).expect_err("rejects");
        assert!(err.to_string().contains("unknown entity"), "{err}");
    }

    #[test]
    fn predefined_entities_resolve() {
        let xml = report(REC).replace("<org_name>o<", "<org_name>A &amp; B&#33;<");
        let s = parse(xml.as_bytes(), &mut Collect::default()).expect("parses");
        assert_eq!(s.header.org_name, "A & B!");
    }

    /// Hands out its bytes a few at a time, so that characters, tags and
    /// values are split across reads.
    struct Trickle<'a>(&'a [u8], usize);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn stream_and_slice_agree() {
        let xml = report(&REC.repeat(5)).replace("<org_name>o<", "<org_name>Ünïcødé &amp; ☃<");
        let mut with_junk = b"\xEF\xBB\xBF".to_vec();
        with_junk.extend_from_slice(xml.as_bytes());
        // Two invalid bytes inside a value, one at the very end.
        let at = with_junk
            .windows(2)
            .position(|w| w == [0xC3, 0x9C])
            .expect("Ü");
        with_junk.insert(at, 0xFF);
        with_junk.insert(at, 0xC3);
        with_junk.push(0xE2);
        for step in [1, 2, 3, 7, 4096] {
            let mut a = Collect::default();
            let mut b = Collect::default();
            let sa = parse(&with_junk, &mut a).expect("slice parses");
            let sb = parse_reader(Trickle(&with_junk, step), &mut b).expect("stream parses");
            assert_eq!(a.records, b.records, "step {step}");
            assert_eq!(b.records.len(), 5);
            assert_eq!(sa.records, sb.records);
            assert_eq!(sa.messages, sb.messages);
            assert_eq!(sb.header.org_name, "Ünïcødé & ☃");
            assert_eq!(sa.header.org_name, sb.header.org_name);
            // The dropped bytes are counted alike; the stream only knows
            // the count at the end.
            let dropped = |w: &[String]| w.iter().find(|w| w.contains("UTF-8")).cloned();
            assert_eq!(
                dropped(&sa.header.warnings),
                Some("3 invalid UTF-8 byte(s) dropped".into())
            );
            assert_eq!(dropped(&sa.header.warnings), dropped(&sb.header.warnings));
        }
    }

    /// Everything a parse produced, or its error, as text to compare.
    fn outcome(xml: &[u8], how: &str, step: usize) -> String {
        let mut c = Collect::default();
        let r = match how {
            "fast" => parse(xml, &mut c),
            "stream" => parse_reader(Trickle(xml, step), &mut c),
            _ => {
                let xml = xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml);
                let text = String::from_utf8_lossy(xml);
                parse_str(&text, &mut c, Vec::new(), false)
            }
        };
        match r {
            Ok(s) => format!("{s:?}\n{:?}\n{:?}", c.records, c.extensions),
            Err(e) => format!("error {e:?}"),
        }
    }

    /// The tokenizer and quick-xml agree on every sample report, on every
    /// prefix of one (truncated documents, tags cut anywhere), and on
    /// documents with the constructs only quick-xml handles put anywhere.
    #[test]
    fn fast_path_agrees_with_quick_xml() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reports");
        let mut samples = Vec::new();
        let mut pending = vec![dir];
        while let Some(d) = pending.pop() {
            for e in std::fs::read_dir(&d).expect("sample dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    pending.push(p);
                } else if p.extension().is_some_and(|x| x == "xml") {
                    samples.push(std::fs::read(&p).expect("sample"));
                }
            }
        }
        assert!(samples.len() > 20, "{} samples", samples.len());
        for xml in samples.iter().filter(|x| std::str::from_utf8(x).is_ok()) {
            assert_eq!(outcome(xml, "fast", 0), outcome(xml, "slow", 0));
            assert_eq!(outcome(xml, "stream", 4096), outcome(xml, "slow", 0));
        }
        let doc = report(&REC.repeat(2)).replace("<org_name>o<", "<org_name>A &amp; B&#33;<");
        for cut in 0..doc.len() {
            let xml = &doc.as_bytes()[..cut];
            let want = outcome(xml, "slow", 0);
            assert_eq!(outcome(xml, "fast", 0), want, "cut at {cut}");
            assert_eq!(outcome(xml, "stream", 7), want, "cut at {cut}");
        }
        let inserts = [
            "<!-- c -->",
            "<![CDATA[x]]>",
            " & ",
            "&bogus;",
            "<?pi x?>",
            "</stray>",
            "<x:y a='>'/>",
            "\u{feff}",
        ];
        for insert in inserts {
            for at in (0..doc.len()).filter(|&i| doc.is_char_boundary(i)) {
                let xml = format!("{}{insert}{}", &doc[..at], &doc[at..]);
                let want = outcome(xml.as_bytes(), "slow", 0);
                assert_eq!(outcome(xml.as_bytes(), "fast", 0), want, "{xml}");
                assert_eq!(outcome(xml.as_bytes(), "stream", 5), want, "{xml}");
            }
        }
    }

    #[test]
    fn stream_rejects_what_slice_rejects() {
        let bad = report(&REC.replace("192.0.2.1", "not-an-ip"));
        let a = parse(bad.as_bytes(), &mut Collect::default()).expect_err("slice rejects");
        let b = parse_reader(Trickle(bad.as_bytes(), 5), &mut Collect::default())
            .expect_err("stream rejects");
        assert_eq!(a.to_string(), b.to_string());
    }
}
