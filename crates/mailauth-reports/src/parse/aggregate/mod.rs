//! Streaming parser for DMARC aggregate (RUA) XML: RFC 7489 Appendix C and
//! RFC 9990 (namespace `urn:ietf:params:xml:ns:dmarc-2.0`).
//!
//! Owns XML → [`AggregateHeader`] + a stream of [`Record`]s handed to an
//! [`AggregateVisitor`] one at a time, so memory stays flat however many
//! records a report holds. Leaves containers (gzip, zip, MIME) to
//! `container.rs` and storage to the visitor. Parts: `tags` (element
//! names), `draft` (a record being read), `elements` (the grammar), `utf8`
//! (byte-level recovery for the streaming reader).
//!
//! Recovery (what real reporters send): a UTF-8 BOM, invalid UTF-8 bytes
//! (replaced), stray unclosed or unmatched tags (end tags close back to
//! their matching start, unknown ends are ignored), mixed-case keywords,
//! "hardfail", trailing spaces in numbers, an empty `<org_name>` (taken
//! from the `<email>` domain). Unambiguously broken data (an empty
//! `<source_ip>`, a missing `<report_id>`) rejects the report. Entities are
//! never expanded beyond the five XML predefined ones and character
//! references.
//!
//! Hostile input (see docs/limits.md): the work per token is constant
//! whatever the tag soup. An end tag finds its start through per-tag counts
//! of the open elements, so a stray end tag costs O(1) and a matched one
//! pops what it closes; the element stack is capped at
//! [`Options::max_depth`]; the streaming reader doubles what it reads
//! before scanning an unfinished token again, so one huge text or tag costs
//! O(its size); attributes are read without quick-xml's duplicate check
//! (quadratic in their number). Counts are capped per record and per report
//! ([`Options::max_count`], [`Options::max_messages`]), and a deadline is
//! checked every few thousand tokens. C0 control characters other than
//! tab, line feed and carriage return (and DEL) are removed from every
//! text value, whether written raw or as a character reference (`&#0;`),
//! and counted in a warning: every store then holds the same text.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Instant;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

mod draft;
mod elements;
mod tags;
mod utf8;

use draft::{RecordDraft, Slot};
use tags::{Tag, local_name, tag};
use utf8::Utf8Clean;

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
    /// at the end of the document). Returns whether the report was new to
    /// the visitor: `true`, unless the visitor held the header back (to
    /// store the whole report at once) and only now found the report a
    /// duplicate. The summary's `accepted` says so after the parse.
    fn end(&mut self, _summary: &AggregateSummary) -> Result<bool, SinkError> {
        Ok(true)
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
    /// False when the visitor asked to skip the records, or said at the
    /// end that the report was a duplicate.
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
    fn end(&mut self, summary: &AggregateSummary) -> Result<bool, SinkError> {
        self.extensions = summary.extensions.clone();
        if let Some(h) = &mut self.header {
            h.warnings = summary.header.warnings.clone();
        }
        Ok(true)
    }
}

/// What a parse may cost and accept (from [`crate::reports::IngestLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Deepest element nesting accepted (`max_xml_depth`).
    pub max_depth: usize,
    /// Largest `<count>` of one record (`max_record_count`).
    pub max_count: u64,
    /// Largest sum of the records' counts in one report
    /// (`max_report_messages`).
    pub max_messages: u64,
    /// When the parse gives up (the per-item time budget).
    pub deadline: Option<Instant>,
    /// The budget in seconds, for the message.
    pub budget_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        let l = crate::reports::IngestLimits::default();
        Self {
            max_depth: l.max_xml_depth,
            max_count: l.max_record_count,
            max_messages: l.max_report_messages,
            deadline: None,
            budget_secs: l.item_time_budget.as_secs(),
        }
    }
}

/// Tokens handled between two looks at the clock.
const DEADLINE_EVERY: u32 = 4096;

/// RFC 9990 section 4: the aggregate report namespace.
pub const DMARC2_NAMESPACE: &str = "urn:ietf:params:xml:ns:dmarc-2.0";

struct State<'v, V: AggregateVisitor + ?Sized> {
    visitor: &'v mut V,
    opts: Options,
    stack: Vec<Tag>,
    /// How many elements of each [`Tag`] are on `stack`: an end tag with
    /// nothing to close is known at once, without a scan of the stack.
    open_counts: [u32; tags::COUNT],
    /// Stack entries looked at by end tags (linear in the input: the
    /// regression check for quadratic tag soup).
    stack_steps: u64,
    /// Tokens since the clock was last read.
    tick: u32,
    /// Control characters removed from text.
    controls: u64,
    /// Bytes of unfinished tokens scanned and scanned again (streaming).
    rescanned: u64,
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
    parse_with(bytes, visitor, &Options::default())
}

/// [`parse`] with the given limits.
pub fn parse_with<V: AggregateVisitor + ?Sized>(
    bytes: &[u8],
    visitor: &mut V,
    opts: &Options,
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
    parse_str(&text, visitor, warnings, true, opts)
}

/// [`parse_with`] for a document this program owns (decompressed): a BOM
/// and invalid UTF-8 bytes are removed in place, so a decompressed report
/// is never copied whole a second time.
pub fn parse_owned_with<V: AggregateVisitor + ?Sized>(
    bytes: Vec<u8>,
    visitor: &mut V,
    opts: &Options,
) -> Result<AggregateSummary, ParseError> {
    let (text, dropped) = into_utf8(bytes);
    let mut warnings = Vec::new();
    if dropped > 0 {
        warnings.push(format!("{dropped} invalid UTF-8 byte(s) dropped"));
    }
    parse_str(&text, visitor, warnings, true, opts)
}

/// The bytes without a leading BOM and without the bytes that are not
/// UTF-8, in the same buffer; and how many were dropped (the BOM is not
/// counted).
fn into_utf8(mut bytes: Vec<u8>) -> (String, usize) {
    let mut read = usize::from(bytes.starts_with(b"\xEF\xBB\xBF")) * 3;
    let mut write = 0;
    let mut dropped = 0;
    loop {
        let (valid, bad) = match std::str::from_utf8(&bytes[read..]) {
            Ok(_) => (bytes.len() - read, 0),
            Err(e) => (
                e.valid_up_to(),
                e.error_len()
                    .unwrap_or(bytes.len() - read - e.valid_up_to()),
            ),
        };
        bytes.copy_within(read..read + valid, write);
        write += valid;
        read += valid + bad;
        dropped += bad;
        if bad == 0 {
            break;
        }
    }
    bytes.truncate(write);
    // Only whole characters were kept.
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (text, dropped)
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
    opts: &Options,
) -> Result<AggregateSummary, ParseError> {
    let mut st = State::new(visitor, warnings, *opts);
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
    parse_reader_with(input, visitor, &Options::default())
}

/// [`parse_reader`] with the given limits.
pub fn parse_reader_with<R: std::io::Read, V: AggregateVisitor + ?Sized>(
    input: R,
    visitor: &mut V,
    opts: &Options,
) -> Result<AggregateSummary, ParseError> {
    use std::io::{BufRead as _, Read as _};
    let mut clean = Utf8Clean::new(input);
    let mut st = State::new(visitor, Vec::new(), *opts);
    // The window: clean text not yet tokenized is `window[pos..]`, and
    // `window[0]` is at byte `base` of the (cleaned) document.
    let mut window = String::new();
    let mut pos = 0usize;
    let mut base = 0u64;
    let mut last = false;
    let mut started = false;
    // After an unfinished token, read until the unscanned part of the
    // window has doubled before scanning it again: a token of n bytes is
    // then scanned O(n) times in all, not once per chunk (O(n^2)).
    let mut need = 0usize;
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
                Scan::NeedMore => {
                    st.rescanned += (window.len() - pos) as u64;
                    need = (window.len() - pos).saturating_mul(2);
                }
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
        loop {
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
                break;
            }
            let n = chunk.len();
            // `Utf8Clean` hands out whole characters only.
            let text = std::str::from_utf8(chunk).map_err(|e| ParseError::Container {
                msg: format!("reading the report: {e}"),
            })?;
            window.push_str(text);
            clean.consume(n);
            if window.len() >= need {
                break;
            }
            st.check_deadline()?;
        }
        need = 0;
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

impl<'v, V: AggregateVisitor + ?Sized> State<'v, V> {
    fn new(visitor: &'v mut V, warnings: Vec<String>, opts: Options) -> Self {
        State {
            visitor,
            opts,
            stack: Vec::with_capacity(16),
            open_counts: [0; tags::COUNT],
            stack_steps: 0,
            tick: 0,
            controls: 0,
            rescanned: 0,
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

    /// Every [`DEADLINE_EVERY`] tokens: past the deadline, the parse ends.
    fn tick(&mut self) -> Result<(), ParseError> {
        self.tick += 1;
        if self.tick >= DEADLINE_EVERY {
            self.tick = 0;
            self.check_deadline()?;
        }
        Ok(())
    }

    fn check_deadline(&self) -> Result<(), ParseError> {
        match self.opts.deadline {
            Some(d) if Instant::now() > d => Err(ParseError::TimedOut {
                secs: self.opts.budget_secs,
            }),
            _ => Ok(()),
        }
    }

    /// Adds text to the value being read, without C0 controls other than
    /// tab, LF and CR, and without DEL (see the module comment). Text of
    /// more than [`MAX_TEXT`] bytes between two tags is refused: no field
    /// of a report comes near it, and memory then stays flat however long
    /// a run of text an input holds.
    fn push_text(&mut self, t: &str) -> Result<(), ParseError> {
        // White space before any other text is not kept: every value is
        // read trimmed, so it changes nothing, and white space between
        // elements (or a bomb of it) then takes no memory at all.
        if self.text.is_empty() && t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
            return Ok(());
        }
        self.room_for(t.len())?;
        if t.bytes().any(is_stripped_byte) {
            for c in t.chars() {
                if is_stripped(c) {
                    self.controls += 1;
                } else {
                    self.text.push(c);
                }
            }
        } else {
            self.text.push_str(t);
        }
        Ok(())
    }

    /// [`MAX_TEXT`] is not passed by `n` more bytes of text.
    fn room_for(&self, n: usize) -> Result<(), ParseError> {
        if self.text.len().saturating_add(n) > MAX_TEXT {
            return Err(ParseError::TooLarge {
                what: "the text between two tags".to_owned(),
                limit: MAX_TEXT as u64,
            });
        }
        Ok(())
    }

    /// Handles one quick-xml event; false at the end of the document.
    fn event(&mut self, event: Event<'_>, position: u64) -> Result<bool, ParseError> {
        self.tick()?;
        match event {
            Event::Start(e) => self.open(&e)?,
            Event::Empty(e) => {
                self.open(&e)?;
                self.close_top()?;
            }
            Event::End(e) => self.end_tag(e.name().into_inner())?,
            Event::Text(t) => self.push_text(&t)?,
            Event::CData(c) => self.push_text(&c)?,
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
        self.tick()?;
        match token {
            Token::Start(e) => self.open(&e)?,
            Token::Empty(e) => {
                self.open(&e)?;
                self.close_top()?;
            }
            Token::End(name) => self.end_tag(name)?,
            Token::Text(t) => self.push_text(t)?,
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
        if is_stripped(resolved) {
            self.controls += 1;
        } else {
            self.room_for(resolved.len_utf8())?;
            self.text.push(resolved);
        }
        Ok(())
    }

    fn finish_document(mut self) -> Result<AggregateSummary, ParseError> {
        // Close whatever the reporter left open (recovery of truncated or
        // stray-tag documents), innermost first.
        while !self.stack.is_empty() {
            self.repaired += 1;
            self.close_top()?;
        }
        #[cfg(test)]
        tests::WORK.with(|w| w.set((self.stack_steps, self.rescanned)));
        self.finish()
    }
}

/// Longest text between two tags, in bytes (`State::push_text`).
pub(crate) const MAX_TEXT: usize = 1 << 20;

/// C0 controls but tab, LF and CR, and DEL: never kept in a value (a NUL
/// is refused by PostgreSQL's TEXT; the rest would reach terminals).
fn is_stripped(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}'
}

fn is_stripped_byte(b: u8) -> bool {
    (b < b' ' && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f
}

/// `s` without the characters [`is_stripped`] removes.
pub(crate) fn strip_controls(s: &str) -> Cow<'_, str> {
    if s.bytes().any(is_stripped_byte) {
        Cow::Owned(s.chars().filter(|&c| !is_stripped(c)).collect())
    } else {
        Cow::Borrowed(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// (stack entries looked at by end tags, bytes rescanned) of the
        /// last parse on this thread that reached the end of its document.
        pub(super) static WORK: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }

    /// Issue 15: `<feedback>`, many open `<a>` and many stray `</p>` (a
    /// known tag that is not open) scanned the whole stack for each `</p>`:
    /// O(open × stray). Now each end tag looks at what it closes only.
    #[test]
    fn stray_end_tags_do_not_scan_the_stack() {
        let open = 250;
        let stray = 100_000;
        let xml = format!(
            "<feedback>{}{}</feedback>",
            "<a>".repeat(open),
            "</p>".repeat(stray)
        );
        let err = parse(xml.as_bytes(), &mut Collect::default()).expect_err("no metadata");
        assert!(matches!(err, ParseError::MissingField { .. }), "{err}");
        let (steps, _) = WORK.with(std::cell::Cell::get);
        // `</feedback>` closes the 251 open elements; no `</p>` looks at
        // any (before: 250 × 100,000 = 25 million).
        assert!(steps <= (open + 1) as u64, "{steps} stack steps");
        let mut b = Collect::default();
        parse_reader(Trickle(xml.as_bytes(), 4096), &mut b).expect_err("no metadata");
        let (steps, _) = WORK.with(std::cell::Cell::get);
        assert!(steps <= (open + 1) as u64, "{steps} stack steps (stream)");
    }

    /// Issue 15: one invalid UTF-8 byte made a second full copy of a
    /// decompressed report. Now it is cleaned in its own buffer.
    #[test]
    fn invalid_utf8_is_removed_in_place() {
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice(
            report(REC)
                .replace("<org_name>o<", "<org_name>o\u{e9}<")
                .as_bytes(),
        );
        let clean_len = bytes.len() - 3;
        let at = bytes.len() / 2;
        bytes.insert(at, 0xFF);
        bytes.extend_from_slice(b"\xE2\x82");
        let ptr = bytes.as_ptr();
        let (text, dropped) = into_utf8(bytes.clone());
        assert_eq!(dropped, 3);
        assert_eq!(text.len(), clean_len);
        let (text2, _) = into_utf8(bytes);
        assert_eq!(text2.as_ptr(), ptr, "the same buffer");
        let mut a = Collect::default();
        let mut b = Collect::default();
        let with_junk = {
            let mut v = text.into_bytes();
            v.insert(10, 0xC3);
            v
        };
        let sa = parse(&with_junk, &mut a).expect("slice");
        let sb = parse_owned_with(with_junk, &mut b, &Options::default()).expect("owned");
        assert_eq!(sa, sb);
        assert_eq!(a.records, b.records);
    }

    #[test]
    fn element_depth_is_limited() {
        let nested = |n: usize| {
            report(REC).replace(
                "<report_metadata>",
                &format!("{}{}<report_metadata>", "<x>".repeat(n), "</x>".repeat(n)),
            )
        };
        parse(nested(200).as_bytes(), &mut Collect::default()).expect("200 levels parse");
        for (how, r) in [
            (
                "slice",
                parse(nested(300).as_bytes(), &mut Collect::default()),
            ),
            (
                "stream",
                parse_reader(Trickle(nested(300).as_bytes(), 64), &mut Collect::default()),
            ),
        ] {
            let err = r.expect_err("300 levels refused");
            assert_eq!(
                err.to_string(),
                "XML element nesting (max_xml_depth) exceeds the limit of 256",
                "{how}"
            );
        }
    }

    /// One text token of 4 MiB read 4 KiB at a time was scanned again
    /// after every read (about 2 GB of scanning); now the window doubles
    /// before a rescan. (Text is now refused past `MAX_TEXT`, 1 MiB, and
    /// reaches the parser in pieces: the longest text kept is what is
    /// checked.)
    #[test]
    fn a_huge_token_is_scanned_a_bounded_number_of_times() {
        let big = 4 << 20;
        for (name, filler) in [
            ("text", "y".repeat(MAX_TEXT - 1)),
            ("tag", format!("<x {}/>", "a='1' ".repeat(big / 6))),
        ] {
            let xml = report(REC).replace("<org_name>o<", &format!("<org_name>o{filler}<"));
            let mut c = Collect::default();
            parse_reader(Trickle(xml.as_bytes(), 4096), &mut c).expect(name);
            let (_, rescanned) = WORK.with(std::cell::Cell::get);
            assert!(
                rescanned <= 4 * xml.len() as u64,
                "{name}: {rescanned} bytes rescanned for {} bytes",
                xml.len()
            );
        }
    }

    #[test]
    fn counts_are_capped_per_record_and_per_report() {
        let big = REC.replace("<count>3", "<count>9223372036854775807");
        let err = parse(report(&big).as_bytes(), &mut Collect::default()).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "row/count 9223372036854775807 in record 1 (max_record_count) exceeds the limit of 4294967296"
        );
        let at_cap = REC.replace("<count>3", "<count>4294967296");
        parse(report(&at_cap).as_bytes(), &mut Collect::default()).expect("2^32 is accepted");
        let opts = Options {
            max_messages: 5,
            ..Options::default()
        };
        let err = parse_with(
            report(&REC.repeat(2)).as_bytes(),
            &mut Collect::default(),
            &opts,
        )
        .expect_err("total refused");
        assert!(
            err.to_string().contains("max_report_messages") && err.to_string().contains("record 2"),
            "{err}"
        );
    }

    #[test]
    fn control_characters_are_removed_from_text() {
        let xml = report(REC)
            .replace("<org_name>o<", "<org_name>o&#0;&#27;]0;x&#7;\u{1}\t\u{7f}<")
            .replace(
                "<header_from>example.com<",
                "<header_from>exa&#x0;mple.com<",
            );
        for how in ["fast", "stream", "slow"] {
            let got = outcome(xml.as_bytes(), how, 3);
            assert!(got.contains("org_name: \"o]0;x\""), "{how}: {got}");
            assert!(got.contains("header_from: \"example.com\""), "{how}: {got}");
            assert!(
                got.contains("6 control character(s) removed from text"),
                "{how}: {got}"
            );
        }
    }

    #[test]
    fn a_parse_past_its_deadline_stops() {
        let opts = Options {
            deadline: Some(Instant::now()),
            budget_secs: 7,
            ..Options::default()
        };
        let xml = report(&REC.repeat(2000));
        std::thread::sleep(std::time::Duration::from_millis(2));
        for r in [
            parse_with(xml.as_bytes(), &mut Collect::default(), &opts),
            parse_reader_with(
                Trickle(xml.as_bytes(), 4096),
                &mut Collect::default(),
                &opts,
            ),
        ] {
            let err = r.expect_err("stopped");
            assert!(matches!(err, ParseError::TimedOut { secs: 7 }), "{err}");
        }
    }

    fn report(records: &str) -> String {
        format!(
            "<feedback><report_metadata><org_name>o</org_name><report_id>1</report_id>\
             <date_range><begin>0</begin><end>86400</end></date_range></report_metadata>\
             <policy_published><domain>Example.COM.</domain><p>Reject</p></policy_published>\
             {records}</feedback>"
        )
    }

    /// Text of up to `MAX_TEXT` bytes between two tags is kept, one byte
    /// more is refused, the same whether the document is parsed whole or
    /// streamed (where a long run of text reaches the parser in pieces of
    /// the window, joined again).
    #[test]
    fn text_past_its_limit_is_refused_whole_or_streamed() {
        for (n, ok) in [(MAX_TEXT, true), (MAX_TEXT + 1, false)] {
            let org = "y".repeat(n);
            let xml = report(REC).replacen("<org_name>o<", &format!("<org_name>{org}<"), 1);
            let (mut a, mut b) = (Collect::default(), Collect::default());
            let whole = parse(xml.as_bytes(), &mut a);
            let streamed = parse_reader(Trickle(xml.as_bytes(), 4096), &mut b);
            if ok {
                whole.expect("whole");
                streamed.expect("streamed");
                let (ha, hb) = (a.header.expect("header"), b.header.expect("header"));
                assert_eq!(ha.org_name.len(), MAX_TEXT);
                assert_eq!(ha, hb);
            } else {
                for e in [whole.expect_err("whole"), streamed.expect_err("streamed")] {
                    assert!(
                        matches!(&e, ParseError::TooLarge { what, limit }
                            if what == "the text between two tags" && *limit == MAX_TEXT as u64),
                        "{e}"
                    );
                }
            }
        }
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
                parse_str(&text, &mut c, Vec::new(), false, &Options::default())
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
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/reports");
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
