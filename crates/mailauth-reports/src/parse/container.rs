//! Containers around reports: gzip (multi-member, nested), zip, MIME
//! messages (attachments or body, base64 / quoted-printable, nested
//! `message/rfc822`), detected by content, not by file name.
//!
//! Owns walking an item's layers and handing each report found to a
//! callback as a [`Part`] (aggregate XML, TLS-RPT JSON, failure reports)
//! under the size, ratio and depth caps of [`IngestLimits`] and within the
//! item's time budget (looked at on every layer and every read of a
//! decompressor). Aggregate XML
//! inside gzip and zip is handed on as a stream, decompressed as the
//! parser reads it: a 100 MB report compressed to 3 MB never needs 100 MB
//! of memory. Each decompression layer is counted as it is read (the
//! item's decompressed budget, the layer's and the whole item's ratio), so
//! a bomb stops at the cap, before or after the report it hides behind.
//! An item read from where it lies ([`unpack_input`], a file) is not held
//! either: gzip is decompressed as it is read from the item, a zip is read
//! entry by entry through its directory, and a mail keeps its large base64
//! attachments in the item, each decoded as it is read (`mime_stream`).
//! What cannot be streamed is read into memory within those caps: a zip
//! inside another layer (its directory is at its end), a mail message held
//! in memory or inside another layer (mail-parser decodes a whole message:
//! the attachment is held once, decoded, bounded by the message size),
//! TLS-RPT JSON. A zip's entry count and directory size are checked from
//! its end record before the zip crate reads the directory.
//! Leaves the report formats to `aggregate`, `tlsrpt`, `failure`.

use std::cell::{Cell, RefCell};
use std::io::{BufRead, Read, Seek, SeekFrom};

use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::ParseError;
use super::failure::{self, FailureReport};
use super::mime_stream::{self, Base64Part, BodyRange};
use crate::reports::IngestLimits;

/// An item read from where it lies (a file), not held in memory: read as
/// it is parsed, with random access for a zip's directory and a mail's
/// attachments.
pub trait ReadSeek: Read + Seek {}

impl<T: Read + Seek + ?Sized> ReadSeek for T {}

/// A mail's base64 attachments of at least this many bytes are decoded as
/// they are read from the item ([`mime_stream`]), not held.
const STREAM_PART_ABOVE: u64 = 64 << 10;

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

impl Payload {
    /// `part` held in memory (a streamed XML document read whole).
    fn held(part: Part<'_>) -> Result<Payload, ParseError> {
        Ok(match part {
            Part::Xml(xml) => Payload::Xml(xml.to_vec()),
            Part::XmlStream(r) => {
                let mut xml = Vec::new();
                r.read_to_end(&mut xml).map_err(|e| ParseError::Container {
                    msg: format!("reading the report: {e}"),
                })?;
                Payload::Xml(xml)
            }
            Part::Json(json) => Payload::Json(json.to_vec()),
            Part::Failure(r) => Payload::Failure(r),
        })
    }
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
/// is exceeded: the largest `n` with `n / compressed_len <= max_ratio`,
/// and never less than 1 MiB (a ratio only means something past a few
/// pages of output).
fn ratio_cap(compressed_len: u64, max_ratio: u64) -> u64 {
    let compressed = compressed_len.max(1);
    compressed
        .saturating_mul(max_ratio.saturating_add(1))
        .saturating_sub(1)
        .max(1 << 20)
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
fn check_zip_directory<R: Read + Seek + ?Sized>(
    input: &mut R,
    len: u64,
    limits: &IngestLimits,
) -> Result<(), ParseError> {
    const EOCD: &[u8] = b"PK\x05\x06";
    let io_err = |e: std::io::Error| ParseError::Container {
        msg: format!("zip: {e}"),
    };
    let max_entries = limits.max_zip_entries as u64;
    let max_cd = max_entries.saturating_mul(ZIP_CD_BYTES_PER_ENTRY);
    // The window the record may start in, and the 20 bytes of a ZIP64
    // locator before it: the only part of the zip read here.
    let from_abs = len.saturating_sub(22 + 0xFFFF);
    let base = from_abs.saturating_sub(20);
    let mut bytes = Vec::new();
    input.seek(SeekFrom::Start(base)).map_err(io_err)?;
    input
        .take(len - base)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    let from = usize::try_from(from_abs - base).unwrap_or(0);
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
            let z64 = match le64(loc, 8).filter(|&o| o < len) {
                Some(o) => {
                    let mut r = Vec::new();
                    input.seek(SeekFrom::Start(o)).map_err(io_err)?;
                    input.take(56).read_to_end(&mut r).map_err(io_err)?;
                    Some(r)
                }
                None => None,
            }
            .filter(|r| r.starts_with(b"PK\x06\x06"));
            match z64.as_deref() {
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

/// A report found inside a container, handed on as soon as it is found.
pub enum Part<'a> {
    /// Aggregate XML held in memory (bytes as sent, possibly not UTF-8).
    Xml(&'a [u8]),
    /// Aggregate XML decompressed as it is read: never held whole. A read
    /// error here may stand for a limit hit below; the error returned from
    /// the callback is then replaced by that limit's error.
    XmlStream(&'a mut dyn Read),
    /// SMTP TLS report JSON.
    Json(&'a [u8]),
    /// A failure report taken from a message.
    Failure(Box<FailureReport>),
}

/// What one item's walk shares across its layers.
struct Ctx<'l> {
    limits: &'l IngestLimits,
    /// Size of the whole item, for the item-wide ratio cap.
    origin_len: u64,
    /// Decompressed bytes the item may still produce, all layers together
    /// (`max_decompressed_bytes` at the start).
    budget: Cell<u64>,
    /// The first limit or container error met by a reader deep in the
    /// stack. The reader fails with an `io::Error` that the layers above
    /// (flate2, zip, the XML parser) pass on or wrap; the walk then reports
    /// this error instead of theirs.
    failed: RefCell<Option<ParseError>>,
    /// Reports handed to the callback so far.
    found: Cell<usize>,
}

impl Ctx<'_> {
    fn fail(&self, e: ParseError) -> std::io::Error {
        let mut failed = self.failed.borrow_mut();
        if failed.is_none() {
            *failed = Some(e);
        }
        std::io::Error::other("container limit")
    }

    /// `e`, or the error of the reader that caused it.
    fn cause(&self, e: ParseError) -> ParseError {
        self.failed.take().unwrap_or(e)
    }

    fn read_error(&self, what: &str, e: &std::io::Error) -> ParseError {
        self.cause(ParseError::Container {
            msg: format!("{what}: {e}"),
        })
    }
}

/// Why a walk stopped.
enum Stop {
    /// A layer is not a report, is broken or too large; nothing of it has
    /// reached the callback.
    Container(ParseError),
    /// The callback failed, or the stream it was reading did: the item is
    /// rejected whatever else it holds.
    Fatal(ParseError),
}

impl From<ParseError> for Stop {
    fn from(e: ParseError) -> Self {
        Self::Container(e)
    }
}

impl Stop {
    fn into_inner(self) -> ParseError {
        match self {
            Self::Container(e) | Self::Fatal(e) => e,
        }
    }
}

type Emit<'e> = dyn FnMut(Part<'_>) -> Result<(), ParseError> + 'e;

fn emit_part(ctx: &Ctx<'_>, emit: &mut Emit<'_>, part: Part<'_>) -> Result<(), Stop> {
    ctx.found.set(ctx.found.get() + 1);
    emit(part).map_err(|e| Stop::Fatal(ctx.cause(e)))
}

/// The output of one decompression layer, counted against the item's
/// budget and the ratio caps as it is read: a bomb stops at the cap, never
/// inflated past it.
struct Capped<'c, R> {
    inner: R,
    ctx: &'c Ctx<'c>,
    what: String,
    out: u64,
    /// The ratio caps known beforehand: the whole item's, and the layer's
    /// own when its compressed size is known.
    cap: u64,
    /// Bytes read into the layer so far, when its compressed size is not
    /// known beforehand (a layer inside a stream): its ratio is checked
    /// against what it has read.
    read_in: Option<&'c Cell<u64>>,
}

impl<'c, R: Read> Capped<'c, R> {
    fn new(
        ctx: &'c Ctx<'c>,
        inner: R,
        what: String,
        compressed_len: Option<u64>,
        read_in: Option<&'c Cell<u64>>,
    ) -> Self {
        let r = ctx.limits.max_ratio;
        let mut cap = ratio_cap(ctx.origin_len, r);
        if let Some(n) = compressed_len {
            cap = cap.min(ratio_cap(n, r));
        }
        Self {
            inner,
            ctx,
            what,
            out: 0,
            cap,
            read_in,
        }
    }

    fn ratio_error(&self) -> ParseError {
        ParseError::TooLarge {
            what: format!("{} compression ratio", self.what),
            limit: self.ctx.limits.max_ratio,
        }
    }
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let ctx = self.ctx;
        // The item's time budget, on every read of a decompressor: a slow
        // decompression stops mid-stream.
        if let Err(e) = super::check_deadline(ctx.limits) {
            return Err(ctx.fail(e));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if ctx.failed.borrow().is_some() => return Err(e),
            Err(e) => {
                return Err(ctx.fail(ParseError::Container {
                    msg: format!("{}: {e}", self.what),
                }));
            }
        };
        self.out += n as u64;
        let left = ctx.budget.get();
        if n as u64 > left {
            ctx.budget.set(0);
            return Err(ctx.fail(ParseError::TooLarge {
                what: format!("{} decompressed size", self.what),
                limit: ctx.limits.max_decompressed_bytes,
            }));
        }
        ctx.budget.set(left - n as u64);
        if self.out > self.cap
            || self
                .read_in
                .is_some_and(|c| self.out > ratio_cap(c.get(), ctx.limits.max_ratio))
        {
            return Err(ctx.fail(self.ratio_error()));
        }
        Ok(n)
    }
}

/// Counts the bytes read through it into a cell the layer above reads.
struct Counting<'c, R> {
    inner: R,
    n: &'c Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n.set(self.n.get() + n as u64);
        Ok(n)
    }
}

/// A buffered reader that can look a few bytes ahead across its reads
/// (the next gzip member's magic number).
struct Peek<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
}

impl<R: Read> Peek<R> {
    const SIZE: usize = 32 << 10;

    fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; Self::SIZE].into_boxed_slice(),
            pos: 0,
            len: 0,
        }
    }

    /// At least `n` bytes ahead, fewer only at the end of the input.
    fn peek(&mut self, n: usize) -> std::io::Result<&[u8]> {
        if self.len - self.pos < n {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
            while self.len < n {
                let k = self.inner.read(&mut self.buf[self.len..])?;
                if k == 0 {
                    break;
                }
                self.len += k;
            }
        }
        Ok(&self.buf[self.pos..self.len])
    }
}

impl<R: Read> Read for Peek<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Peek<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos == self.len {
            self.pos = 0;
            self.len = self.inner.read(&mut self.buf)?;
        }
        Ok(&self.buf[self.pos..self.len])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len);
    }
}

type GzInput<'a> = Peek<Counting<'a, Box<dyn Read + 'a>>>;

/// Every gzip member, decompressed as it is read.
///
/// RFC 1952 section 2.2: "A gzip file consists of a series of members
/// (compressed data sets)". Member by member rather than flate2's
/// `MultiGzDecoder`, so that trailing line breaks after the last member
/// (Mimecast sends them) are tolerated instead of failing as a broken
/// next member; anything else after the last member is an error.
struct Gunzip<'a> {
    member: Option<flate2::bufread::GzDecoder<GzInput<'a>>>,
}

impl Read for Gunzip<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(member) = self.member.take() else {
                return Ok(0);
            };
            let mut rest = member.into_inner();
            if rest.peek(2)?.starts_with(&[0x1f, 0x8b]) {
                self.member = Some(flate2::bufread::GzDecoder::new(rest));
                continue;
            }
            let (mut len, mut garbage) = (0u64, false);
            loop {
                let chunk = rest.fill_buf()?;
                if chunk.is_empty() {
                    break;
                }
                garbage |= !chunk.iter().all(|b| b.is_ascii_whitespace() || *b == 0);
                len += chunk.len() as u64;
                let n = chunk.len();
                rest.consume(n);
            }
            if garbage {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{len} bytes of trailing garbage"),
                ));
            }
            return Ok(0);
        }
    }
}

/// Decompresses a gzip layer (`compressed_len` bytes when known) as its
/// content is walked.
fn gunzip<'a>(
    ctx: &Ctx<'_>,
    input: Box<dyn Read + 'a>,
    compressed_len: Option<u64>,
    depth: usize,
    emit: &mut Emit<'_>,
) -> Result<(), Stop> {
    let read_in = Cell::new(0);
    let input = Peek::new(Counting {
        inner: input,
        n: &read_in,
    });
    let gz = Gunzip {
        member: Some(flate2::bufread::GzDecoder::new(input)),
    };
    let by_input = compressed_len.is_none().then_some(&read_in);
    let mut out = Capped::new(ctx, gz, "gzip".to_owned(), compressed_len, by_input);
    walk_stream(ctx, &mut out, depth + 1, emit)
}

/// Reads a zip archive's entries one by one, each decompressed as it is
/// walked. The entry count and directory size are checked first.
fn unzip<R: Read + Seek>(
    ctx: &Ctx<'_>,
    mut input: R,
    len: u64,
    depth: usize,
    emit: &mut Emit<'_>,
) -> Result<(), Stop> {
    let limits = ctx.limits;
    check_zip_directory(&mut input, len, limits)?;
    let mut archive = zip::ZipArchive::new(input).map_err(|e| ParseError::Container {
        msg: format!("zip: {e}"),
    })?;
    if archive.len() > limits.max_zip_entries {
        return Err(too_many_zip_entries(limits).into());
    }
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| ParseError::Container {
            msg: format!("zip entry {i}: {e}"),
        })?;
        if entry.is_dir() {
            continue;
        }
        let compressed = entry.compressed_size();
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        let mut out = Capped::new(
            ctx,
            &mut entry,
            format!("zip entry {name:?}"),
            Some(compressed),
            None,
        );
        match walk_stream(ctx, &mut out, depth + 1, emit) {
            // A README or `__MACOSX/` entry beside the report.
            Ok(()) | Err(Stop::Container(ParseError::NotAReport { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn check_depth(limits: &IngestLimits, depth: usize) -> Result<(), ParseError> {
    if depth > limits.max_nesting {
        return Err(ParseError::TooLarge {
            what: "container nesting depth".to_owned(),
            limit: limits.max_nesting as u64,
        });
    }
    Ok(())
}

fn empty_input() -> ParseError {
    ParseError::NotAReport {
        detail: "empty input".to_owned(),
    }
}

/// Walks a layer held in memory.
fn walk_bytes(ctx: &Ctx<'_>, bytes: &[u8], depth: usize, emit: &mut Emit<'_>) -> Result<(), Stop> {
    check_depth(ctx.limits, depth)?;
    // Every layer, zip entry and MIME message: the item's time budget.
    super::check_deadline(ctx.limits)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(empty_input().into());
    }
    match sniff(bytes) {
        Sniff::Gzip => gunzip(ctx, Box::new(bytes), Some(bytes.len() as u64), depth, emit),
        Sniff::Zip => unzip(
            ctx,
            std::io::Cursor::new(bytes),
            bytes.len() as u64,
            depth,
            emit,
        ),
        Sniff::Xml => emit_part(ctx, emit, Part::Xml(bytes)),
        Sniff::Json => emit_part(ctx, emit, Part::Json(bytes)),
        Sniff::Mime => unpack_message(ctx, bytes, depth, emit, None),
        Sniff::Unknown => Err(not_a_container().into()),
    }
}

fn not_a_container() -> ParseError {
    ParseError::NotAReport {
        detail: "not XML, JSON, gzip, zip or a mail message".to_owned(),
    }
}

/// How much of a stream is looked at to tell what it is.
const HEAD: usize = 8 << 10;

/// Walks a decompressed layer as it is read. Aggregate XML and gzip stay
/// streams; zip (which needs its end first), JSON and mail are read into
/// memory, within the budget the layers below enforce.
fn walk_stream(
    ctx: &Ctx<'_>,
    input: &mut dyn Read,
    depth: usize,
    emit: &mut Emit<'_>,
) -> Result<(), Stop> {
    check_depth(ctx.limits, depth)?;
    super::check_deadline(ctx.limits)?;
    // The first bytes, to sniff. Leading white space past the first HEAD
    // bytes is counted, not kept (the parser gets as many spaces back, so
    // positions do not move), so that a layer of nothing but spaces does
    // not fill memory.
    let read_err = |e: std::io::Error| Stop::Container(ctx.read_error("reading the report", &e));
    let mut head = vec![0; HEAD];
    let mut len = 0;
    let mut skipped = 0u64;
    let bom = loop {
        while len < HEAD {
            match input.read(&mut head[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(e)),
            }
        }
        let bom = if head[..len].starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        if len < HEAD || !head[bom..len].iter().all(u8::is_ascii_whitespace) {
            break bom;
        }
        skipped += (len - bom) as u64;
        len = bom;
    };
    head.truncate(len);
    if head[bom..].iter().all(u8::is_ascii_whitespace) {
        return Err(empty_input().into());
    }
    let kind = sniff(&head);
    let spaces = std::io::repeat(b' ').take(skipped);
    let mut whole = (&head[..bom])
        .chain(spaces)
        .chain(&head[bom..])
        .chain(input);
    match kind {
        Sniff::Gzip => gunzip(ctx, Box::new(whole), None, depth, emit),
        Sniff::Xml => {
            emit_part(ctx, emit, Part::XmlStream(&mut whole))?;
            // The rest of the layer, past the report's end: a broken
            // gzip trailer or a bomb behind the report still rejects
            // the item.
            std::io::copy(&mut whole, &mut std::io::sink())
                .map_err(|e| Stop::Fatal(ctx.read_error("reading the report", &e)))?;
            Ok(())
        }
        Sniff::Zip | Sniff::Json | Sniff::Mime => {
            let mut data = Vec::new();
            whole.read_to_end(&mut data).map_err(read_err)?;
            walk_bytes(ctx, &data, depth, emit)
        }
        Sniff::Unknown => Err(not_a_container().into()),
    }
}

/// Reads the first bytes of `input` (at most [`HEAD`]) and goes back to
/// its start.
fn read_head(input: &mut dyn ReadSeek) -> std::io::Result<Vec<u8>> {
    input.seek(SeekFrom::Start(0))?;
    let mut head = Vec::with_capacity(HEAD);
    (&mut *input).take(HEAD as u64).read_to_end(&mut head)?;
    input.seek(SeekFrom::Start(0))?;
    Ok(head)
}

/// Reads all of `input` (`len` bytes, within the item's limits) into
/// memory.
fn read_whole(input: &mut dyn ReadSeek, len: u64) -> std::io::Result<Vec<u8>> {
    input.seek(SeekFrom::Start(0))?;
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    (&mut *input).take(len).read_to_end(&mut data)?;
    Ok(data)
}

/// Walks a layer read from `input` (`len` bytes) where it lies: the item
/// itself, or an attachment decoded as it is read. Gzip and aggregate XML
/// stay streams, a zip is read entry by entry through its directory, and
/// the item's own mail keeps its large attachments where they are
/// ([`mime_stream`]). JSON, a mail inside an attachment, and a layer its
/// first bytes do not tell apart are read into memory and walked as
/// [`walk_bytes`] walks them, within the same limits.
fn walk_input(
    ctx: &Ctx<'_>,
    input: &mut dyn ReadSeek,
    len: u64,
    depth: usize,
    emit: &mut Emit<'_>,
    top: bool,
) -> Result<(), Stop> {
    check_depth(ctx.limits, depth)?;
    super::check_deadline(ctx.limits)?;
    let read_err = |e: std::io::Error| Stop::Container(ctx.read_error("reading the report", &e));
    let head = read_head(input).map_err(read_err)?;
    let kind = sniff(&head);
    let whole = head.iter().all(u8::is_ascii_whitespace)
        || kind == Sniff::Json
        || (kind == Sniff::Mime && !top)
        || (kind == Sniff::Unknown && len > head.len() as u64);
    if whole {
        let data = read_whole(input, len).map_err(read_err)?;
        return walk_bytes(ctx, &data, depth, emit);
    }
    match kind {
        Sniff::Gzip => gunzip(ctx, Box::new(input), Some(len), depth, emit),
        Sniff::Zip => unzip(ctx, input, len, depth, emit),
        Sniff::Xml => emit_part(ctx, emit, Part::XmlStream(&mut (&mut *input).take(len))),
        Sniff::Mime => {
            match mime_stream::skeleton(input, len, STREAM_PART_ABOVE).map_err(read_err)? {
                Some(sk) => unpack_message(
                    ctx,
                    &sk.bytes,
                    depth,
                    emit,
                    Some(Streamed {
                        input,
                        len,
                        parts: &sk.parts,
                    }),
                ),
                None => {
                    let data = read_whole(input, len).map_err(read_err)?;
                    walk_bytes(ctx, &data, depth, emit)
                }
            }
        }
        Sniff::Json | Sniff::Unknown => Err(not_a_container().into()),
    }
}

/// [`unpack_each`] for an item read from where it lies (a file of `len`
/// bytes) instead of held in memory: a compressed report is decompressed
/// as it is read from the item, a zip read entry by entry, a mail's large
/// attachments decoded as they are read. The same limits hold, the item's
/// size (`max_input_bytes`) first.
pub fn unpack_input(
    input: &mut dyn ReadSeek,
    len: u64,
    limits: &IngestLimits,
    emit: &mut dyn FnMut(Part<'_>) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    if len > limits.max_input_bytes {
        return Err(ParseError::TooLarge {
            what: "input".to_owned(),
            limit: limits.max_input_bytes,
        });
    }
    let ctx = Ctx {
        limits,
        origin_len: len,
        budget: Cell::new(limits.max_decompressed_bytes),
        failed: RefCell::new(None),
        found: Cell::new(0),
    };
    walk_input(&ctx, input, len, 0, emit, true).map_err(Stop::into_inner)?;
    if ctx.found.get() == 0 {
        return Err(ParseError::NotAReport {
            detail: "no report found in the message".to_owned(),
        });
    }
    Ok(())
}

/// Whether the item in `input` is a plain-XML document (as
/// [`plain_xml`] tells of one in memory); `None` when its first bytes
/// are all white space and do not tell.
pub(super) fn input_is_xml(input: &mut dyn ReadSeek) -> std::io::Result<Option<bool>> {
    let head = read_head(input)?;
    if head.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(Some(sniff(&head) == Sniff::Xml))
}

/// A top-level mail whose large attachments were left in the item.
struct Streamed<'s> {
    input: &'s mut dyn ReadSeek,
    len: u64,
    parts: &'s [BodyRange],
}

/// Walks `bytes` and hands every report in it to `emit` as it is found:
/// aggregate XML inside gzip and zip layers as a stream
/// ([`Part::XmlStream`]), decompressed as the callback reads it, so a
/// compressed report never needs its decompressed size in memory. The
/// limits of [`IngestLimits`] hold as for [`unpack`]; an error returned by
/// `emit` ends the walk with that error.
pub fn unpack_each(
    bytes: &[u8],
    limits: &IngestLimits,
    emit: &mut dyn FnMut(Part<'_>) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    if bytes.len() as u64 > limits.max_input_bytes {
        return Err(ParseError::TooLarge {
            what: "input".to_owned(),
            limit: limits.max_input_bytes,
        });
    }
    let ctx = Ctx {
        limits,
        origin_len: bytes.len() as u64,
        budget: Cell::new(limits.max_decompressed_bytes),
        failed: RefCell::new(None),
        found: Cell::new(0),
    };
    walk_bytes(&ctx, bytes, 0, emit).map_err(Stop::into_inner)?;
    if ctx.found.get() == 0 {
        return Err(ParseError::NotAReport {
            detail: "no report found in the message".to_owned(),
        });
    }
    Ok(())
}

/// Unpacks `bytes` into the reports it contains, each held in memory
/// (tests, fuzzing; ingestion streams with [`unpack_each`]).
pub fn unpack(bytes: &[u8], limits: &IngestLimits) -> Result<Vec<Payload>, ParseError> {
    let mut out = Vec::new();
    unpack_each(bytes, limits, &mut |part| {
        out.push(Payload::held(part)?);
        Ok(())
    })?;
    Ok(out)
}
/// The item itself when it is a plain-XML document: [`unpack`] would
/// return it as the only payload, copied. A plain-XML report is a report
/// already decompressed, so its size is held to `max_decompressed_bytes`
/// (as the same report inside gzip or zip is), not to `max_input_bytes`.
pub(super) fn plain_xml<'a>(
    bytes: &'a [u8],
    limits: &IngestLimits,
) -> Option<Result<&'a [u8], ParseError>> {
    if sniff(bytes) != Sniff::Xml {
        return None;
    }
    if bytes.len() as u64 > limits.max_decompressed_bytes {
        return Some(Err(plain_xml_too_large(limits)));
    }
    Some(Ok(bytes))
}

/// The error for a plain-XML report over `max_decompressed_bytes`.
pub fn plain_xml_too_large(limits: &IngestLimits) -> ParseError {
    ParseError::TooLarge {
        what: "plain XML report size (max_decompressed_bytes)".to_owned(),
        limit: limits.max_decompressed_bytes,
    }
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
    ctx: &Ctx<'_>,
    bytes: &[u8],
    depth: usize,
    emit: &mut Emit<'_>,
    mut streamed: Option<Streamed<'_>>,
) -> Result<(), Stop> {
    let limits = ctx.limits;
    if depth > limits.max_mime_depth {
        return Err(Stop::Container(ParseError::TooLarge {
            what: "MIME nesting depth".to_owned(),
            limit: limits.max_mime_depth as u64,
        }));
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
    super::check_deadline(limits)?;
    // A skeleton whose markers mail-parser did not find, each once, as the
    // whole body of an attachment: the scan read the structure otherwise,
    // and the message is read whole.
    if let Some(s) = streamed.take() {
        let once = s.parts.iter().all(|r| {
            let bodies = message.parts.iter().filter(|p| match &p.body {
                PartType::Binary(b) | PartType::InlineBinary(b) => b.as_ref() == r.marker,
                _ => false,
            });
            bodies.count() == 1
        });
        if !once {
            let whole = read_whole(s.input, s.len)
                .map_err(|e| Stop::Container(ctx.read_error("reading the message", &e)))?;
            return unpack_message(ctx, &whole, depth, emit, None);
        }
        streamed = Some(s);
    }

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
        super::check_deadline(limits)?;
        let mut report = failure::parse_arf(&text)?;
        super::check_deadline(limits)?;
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
        return emit_part(ctx, emit, Part::Failure(Box::new(report)));
    }

    let found_before = ctx.found.get();
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
                match unpack_message(ctx, raw, depth + 1, emit, None) {
                    Ok(()) => {}
                    Err(Stop::Container(e)) => {
                        first_error.get_or_insert(e);
                    }
                    Err(fatal) => return Err(fatal),
                }
                continue;
            }
            PartType::Html(_) | PartType::Multipart(_) => continue,
        };
        // An attachment left in the item: decoded as it is read.
        let left = streamed
            .as_ref()
            .and_then(|s| s.parts.iter().find(|r| r.marker == data))
            .cloned();
        let size = left.as_ref().map_or(data.len() as u64, |r| r.decoded_len);
        if i == 0 && size == 0 {
            continue;
        }
        if size > limits.max_attachment_bytes {
            return Err(Stop::Container(ParseError::TooLarge {
                what: format!(
                    "attachment {:?}",
                    part.attachment_name().unwrap_or("(unnamed)")
                ),
                limit: limits.max_attachment_bytes,
            }));
        }
        let walked = match (&left, streamed.as_mut()) {
            (Some(range), Some(s)) => {
                let mut part = Base64Part::new(&mut *s.input, range);
                walk_input(ctx, &mut part, range.decoded_len, depth + 1, emit, false)
            }
            _ => walk_bytes(ctx, data, depth + 1, emit),
        };
        match walked {
            Ok(()) => {}
            // A logo or a signature is not a report; keep looking.
            Err(Stop::Container(ParseError::NotAReport { .. })) => {}
            Err(Stop::Container(e @ ParseError::TooLarge { .. })) => {
                return Err(Stop::Container(e));
            }
            Err(Stop::Container(e)) => {
                first_error.get_or_insert(e);
            }
            // Part of a report already went to the callback.
            Err(fatal) => return Err(fatal),
        }
    }
    if ctx.found.get() > found_before {
        return Ok(());
    }
    if let Some(e) = first_error {
        return Err(Stop::Container(e));
    }
    // Text-only failure reports (no ARF part).
    let subject = message.subject().unwrap_or_default().to_ascii_lowercase();
    if subject.contains("dmarc")
        && (subject.contains("forensic") || subject.contains("failure"))
        && let Some(text) = message.body_text(0)
        && let Some(mut report) = failure::parse_text(&text)
    {
        report.reporter = reporter;
        return emit_part(ctx, emit, Part::Failure(Box::new(report)));
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

    /// [`unpack`] through [`unpack_input`]: the item read from where it
    /// lies (here a cursor) instead of held.
    fn unpack_from_input(bytes: &[u8], limits: &IngestLimits) -> Result<Vec<Payload>, ParseError> {
        let mut out = Vec::new();
        let mut input = std::io::Cursor::new(bytes);
        unpack_input(&mut input, bytes.len() as u64, limits, &mut |part| {
            out.push(Payload::held(part)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// A report of about `n` KB of XML, stored (not compressed) in gzip,
    /// so that an attachment of it is large.
    fn stored_gzip(n: usize) -> (Vec<u8>, Vec<u8>) {
        use std::io::Write;
        let mut xml =
            b"<feedback><report_metadata><org_name>o</org_name></report_metadata>".to_vec();
        for i in 0..n {
            xml.extend_from_slice(format!("<!-- {i:01000} -->").as_bytes());
        }
        xml.extend_from_slice(b"</feedback>");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        e.write_all(&xml).expect("gzip");
        (xml, e.finish().expect("gzip"))
    }

    fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in entries {
            w.start_file(*name, opts).expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    /// Issue 21: an item read from where it lies gives what the same item
    /// held in memory gives: gzip, zip, a mail whose large attachment (a
    /// gzip, or a zip read through its directory) is decoded as it is
    /// read, and a mail whose attachment is not canonical base64 (read
    /// whole).
    #[test]
    fn an_item_read_from_where_it_lies_unpacks_as_held() {
        let limits = IngestLimits::default();
        let (xml, gz) = stored_gzip(200);
        let zip = stored_zip(&[("r.xml", &xml), ("r.json", b"{}")]);
        let mut broken = mail_with_attachment("r.xml.gz", &gz);
        let at = broken.len() - 200;
        broken.insert(at, b'*');
        let cases = [
            gzip(XML),
            gz.clone(),
            zip.clone(),
            mail_with_attachment("r.xml.gz", &gz),
            mail_with_attachment("r.zip", &zip),
            broken,
            XML.to_vec(),
        ];
        for (i, item) in cases.iter().enumerate() {
            let held = unpack(item, &limits);
            let read = unpack_from_input(item, &limits);
            match (&held, &read) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "case {i}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "case {i}"),
                _ => panic!("case {i}: held {held:?}, read {read:?}"),
            }
        }
        let mail = mail_with_attachment("r.zip", &zip);
        assert_eq!(
            unpack_from_input(&mail, &limits).expect("reads"),
            vec![Payload::Xml(xml.clone()), Payload::Json(b"{}".to_vec())]
        );
        // The limits hold as for an item held in memory: the attachment's
        // decoded size, the zip's entries, the item's size.
        let small = IngestLimits {
            max_attachment_bytes: gz.len() as u64 - 1,
            ..IngestLimits::default()
        };
        let mail = mail_with_attachment("r.xml.gz", &gz);
        assert_eq!(
            unpack_from_input(&mail, &small)
                .expect_err("too large")
                .to_string(),
            format!(
                "attachment \"r.xml.gz\" exceeds the limit of {}",
                gz.len() - 1
            )
        );
        assert_eq!(
            unpack_from_input(&zip_with(17), &limits)
                .expect_err("17 entries")
                .to_string(),
            "zip entries (max_zip_entries) exceeds the limit of 16"
        );
        let tiny = IngestLimits {
            max_input_bytes: gz.len() as u64 - 1,
            ..IngestLimits::default()
        };
        assert_eq!(
            unpack_from_input(&gz, &tiny)
                .expect_err("too large")
                .to_string(),
            format!("input exceeds the limit of {}", gz.len() - 1)
        );
    }

    /// The large attachment of a mail read from where it lies is never
    /// held: the largest single read of the item is a buffer's worth, and
    /// the item is read in pieces rather than whole.
    #[test]
    fn a_mails_large_attachment_is_read_in_pieces() {
        struct Reads<'a> {
            inner: std::io::Cursor<&'a [u8]>,
            largest: usize,
        }
        impl Read for Reads<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.inner.read(buf)?;
                self.largest = self.largest.max(n);
                Ok(n)
            }
        }
        impl Seek for Reads<'_> {
            fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
                self.inner.seek(to)
            }
        }
        let (xml, gz) = stored_gzip(2_000);
        let mail = mail_with_attachment("r.xml.gz", &gz);
        assert!(mail.len() > 2_000_000);
        let mut input = Reads {
            inner: std::io::Cursor::new(&mail),
            largest: 0,
        };
        let mut got = Vec::new();
        unpack_input(
            &mut input,
            mail.len() as u64,
            &IngestLimits::default(),
            &mut |part| {
                if let Part::XmlStream(r) = part {
                    r.read_to_end(&mut got).expect("reads");
                }
                Ok(())
            },
        )
        .expect("unpacks");
        assert_eq!(got, xml);
        assert!(input.largest <= 64 << 10, "{}", input.largest);
    }
}
