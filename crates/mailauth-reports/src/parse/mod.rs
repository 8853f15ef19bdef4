//! Bytes → typed reports. Pure: no SQL, and no I/O but reading the input
//! it is handed (an item in memory, or read from where it lies).
//!
//! Owns report detection and parsing for every container
//! ([`container`]) and format ([`aggregate`], [`failure`], [`tlsrpt`]),
//! and hands what it finds to a [`ReportSink`] as it goes, with the C0
//! control characters (but tab, LF, CR) removed from every text field so
//! that every store holds the same text, and the item's time budget: one
//! deadline per item ([`IngestLimits::item_deadline`]), looked at in every
//! stage of every kind. An item can also be parsed whole into a
//! [`ParsedItem`] (`parsed`), to be handed to a sink later, on another
//! thread. Leaves where bytes come from to `reports::ingest` and storage
//! to `reports::store`.

pub mod aggregate;
pub mod container;
pub mod failure;
mod mime_stream;
pub mod parsed;
mod scan;
pub mod tlsrpt;
pub mod types;

use serde::Serialize;

pub use aggregate::{AggregateSummary, AggregateVisitor, SinkError};
pub use container::{Part, Payload, ReadSeek};
pub use failure::FailureReport;
pub use parsed::ParsedItem;
pub use tlsrpt::TlsReport;
pub use types::*;

use crate::reports::IngestLimits;

/// Removes the C0 controls (but tab, LF, CR) and DEL from a text field,
/// as the aggregate parser does: PostgreSQL refuses NUL in TEXT, and the
/// rest would reach terminals. Both stores then hold the same text.
pub(crate) fn clean_text(s: &mut String) {
    if let std::borrow::Cow::Owned(c) = aggregate::strip_controls(s) {
        *s = c;
    }
}

pub(crate) fn clean_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        clean_text(s);
    }
}

/// The aggregate parser's limits for one item, its deadline the item's
/// (or, when none is set yet, `item_time_budget` from now).
pub fn aggregate_options(limits: &IngestLimits) -> aggregate::Options {
    aggregate::Options {
        max_depth: limits.max_xml_depth,
        max_count: limits.max_record_count,
        max_messages: limits.max_report_messages,
        deadline: with_deadline(limits).item_deadline,
        budget_secs: limits.item_time_budget.as_secs(),
    }
}

/// `limits` with the item's deadline set: `item_time_budget` from now,
/// unless it is set already (the item started earlier).
pub(crate) fn with_deadline(limits: &IngestLimits) -> IngestLimits {
    let mut l = limits.clone();
    if l.item_deadline.is_none() {
        l.item_deadline = std::time::Instant::now().checked_add(l.item_time_budget);
    }
    l
}

/// Past the item's deadline: the item is set aside (`TimedOut`). Looked
/// at between the stages of every kind (each container layer, zip entry
/// and MIME message, before and after a failure report or a TLS report),
/// and on every read of a decompressor (`container`'s counting reader); the
/// aggregate
/// parser looks every 4,096 tokens.
pub(crate) fn check_deadline(limits: &IngestLimits) -> Result<(), ParseError> {
    match limits.item_deadline {
        Some(d) if std::time::Instant::now() > d => Err(ParseError::TimedOut {
            secs: limits.item_time_budget.as_secs(),
        }),
        _ => Ok(()),
    }
}

/// Why an item could not be read as a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("not a report: {detail}")]
    NotAReport { detail: String },
    #[error("malformed XML at byte {position}: {msg}")]
    Xml { position: u64, msg: String },
    #[error("malformed JSON at line {line}: {msg}")]
    Json { line: usize, msg: String },
    #[error("missing required field {field}")]
    MissingField { field: String },
    #[error("invalid {field} {value:?}{}", record.map(|n| format!(" in record {n}")).unwrap_or_default())]
    InvalidValue {
        field: String,
        value: String,
        record: Option<u64>,
    },
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge { what: String, limit: u64 },
    #[error("took longer than the per-item time budget of {secs} s (--item-timeout)")]
    TimedOut { secs: u64 },
    #[error("broken container: {msg}")]
    Container { msg: String },
    #[error("storing the report failed: {source}")]
    Sink { source: SinkError },
}

/// Kind of report.
#[derive(schemars::JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    Aggregate,
    Failure,
    Tls,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aggregate => "aggregate",
            Self::Failure => "failure",
            Self::Tls => "tls",
        }
    }
}

/// Receives every report of an item. Each method returns `Ok(true)` when
/// the report is new and `Ok(false)` when it is a duplicate.
pub trait ReportSink: AggregateVisitor {
    fn failure(&mut self, report: &FailureReport) -> Result<bool, SinkError>;
    fn tls(&mut self, report: &TlsReport) -> Result<bool, SinkError>;
}

/// One report found in an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub kind: ReportKind,
    /// Reporting organisation (`org_name`, `organization-name`, or the
    /// failure report's sender).
    pub org: String,
    pub report_id: String,
    /// Policy domain / reported domain.
    pub domain: String,
    /// Aggregate records, TLS policies, 1 for a failure report.
    pub records: u64,
    pub duplicate: bool,
    pub warnings: Vec<String>,
}

/// Parses one item (a file, a mail message) and streams its reports to
/// `sink`. Any error rejects the whole item: the caller rolls back.
pub fn parse_item<S: ReportSink + ?Sized>(
    bytes: &[u8],
    limits: &IngestLimits,
    sink: &mut S,
) -> Result<Vec<Found>, ParseError> {
    // One deadline for the whole item, every stage and kind.
    let limits = &with_deadline(limits);
    // The common case, a report as a plain-XML file, is parsed where it
    // lies: `container::unpack` would hand back a copy of it.
    let opts = aggregate_options(limits);
    if let Some(xml) = container::plain_xml(bytes, limits) {
        let s = aggregate::parse_with(xml?, sink, &opts)?;
        return Ok(vec![aggregate_found(s)]);
    }
    // Everything else is walked layer by layer; a compressed aggregate
    // report is parsed as it is decompressed, never held whole.
    let mut found = Vec::new();
    container::unpack_each(bytes, limits, &mut |part| {
        on_part(part, limits, &opts, sink, &mut found)
    })?;
    Ok(found)
}

/// [`parse_item`] for an item read from where it lies (`len` bytes of a
/// file) instead of held in memory: nothing of it is held whole but a
/// mail's headers and small parts (`container::unpack_input`). The same
/// limits hold, and the same reports reach the sink.
pub fn parse_input<S: ReportSink + ?Sized>(
    input: &mut dyn ReadSeek,
    len: u64,
    limits: &IngestLimits,
    sink: &mut S,
) -> Result<Vec<Found>, ParseError> {
    let limits = &with_deadline(limits);
    let opts = aggregate_options(limits);
    let read_err = |e: std::io::Error| ParseError::Container {
        msg: format!("reading the report: {e}"),
    };
    match container::input_is_xml(input).map_err(read_err)? {
        Some(true) => {
            if len > limits.max_decompressed_bytes {
                return Err(container::plain_xml_too_large(limits));
            }
            let s = aggregate::parse_reader_with(
                std::io::BufReader::new(std::io::Read::take(input, len)),
                sink,
                &opts,
            )?;
            return Ok(vec![aggregate_found(s)]);
        }
        Some(false) => {}
        // Its first bytes are white space: read whole, within the input
        // limit, and looked at as `parse_item` does.
        None => {
            if len > limits.max_input_bytes {
                return Err(ParseError::TooLarge {
                    what: "input".to_owned(),
                    limit: limits.max_input_bytes,
                });
            }
            let mut bytes = Vec::new();
            input.seek(std::io::SeekFrom::Start(0)).map_err(read_err)?;
            std::io::Read::read_to_end(&mut std::io::Read::take(input, len), &mut bytes)
                .map_err(read_err)?;
            return parse_item(&bytes, limits, sink);
        }
    }
    let mut found = Vec::new();
    container::unpack_input(input, len, limits, &mut |part| {
        on_part(part, limits, &opts, sink, &mut found)
    })?;
    Ok(found)
}

/// Hands one report found in an item's containers to `sink`.
fn on_part<S: ReportSink + ?Sized>(
    part: Part<'_>,
    limits: &IngestLimits,
    opts: &aggregate::Options,
    sink: &mut S,
    found: &mut Vec<Found>,
) -> Result<(), ParseError> {
    check_deadline(limits)?;
    match part {
        Part::Xml(xml) => {
            let s = aggregate::parse_with(xml, sink, opts)?;
            found.push(aggregate_found(s));
        }
        Part::XmlStream(xml) => {
            let s = aggregate::parse_reader_with(xml, sink, opts)?;
            found.push(aggregate_found(s));
        }
        Part::Json(json) => {
            let r = tlsrpt::parse(json)?;
            check_deadline(limits)?;
            let new = sink.tls(&r).map_err(|source| ParseError::Sink { source })?;
            found.push(Found {
                kind: ReportKind::Tls,
                org: r.organization_name.clone(),
                report_id: r.report_id.clone(),
                domain: r
                    .policies
                    .first()
                    .map(|p| p.policy.policy_domain.clone())
                    .unwrap_or_default(),
                records: r.policies.len() as u64,
                duplicate: !new,
                warnings: Vec::new(),
            });
        }
        Part::Failure(mut r) => {
            r.clean_text();
            let new = sink
                .failure(&r)
                .map_err(|source| ParseError::Sink { source })?;
            found.push(Found {
                kind: ReportKind::Failure,
                org: r.reporter.clone().unwrap_or_default(),
                report_id: r.fingerprint(),
                domain: r.reported_domain.clone(),
                records: 1,
                duplicate: !new,
                warnings: Vec::new(),
            });
        }
    }
    Ok(())
}

/// Parses one plain-XML aggregate report read from `input` as it arrives
/// (a file too large to hold in memory) and streams its records to `sink`.
/// At most `limits.max_decompressed_bytes` are read, the limit of any
/// decompressed report: a longer input is rejected, never truncated.
pub fn parse_xml_stream<S: ReportSink + ?Sized>(
    input: &mut dyn std::io::Read,
    limits: &IngestLimits,
    sink: &mut S,
) -> Result<Vec<Found>, ParseError> {
    let limit = limits.max_decompressed_bytes;
    let mut counted = Counted {
        inner: std::io::Read::take(input, limit.saturating_add(1)),
        n: 0,
    };
    let opts = aggregate_options(limits);
    let result = aggregate::parse_reader_with(&mut counted, sink, &opts);
    if counted.n > limit {
        return Err(container::plain_xml_too_large(limits));
    }
    Ok(vec![aggregate_found(result?)])
}

fn aggregate_found(s: AggregateSummary) -> Found {
    Found {
        kind: ReportKind::Aggregate,
        org: s.header.org_name,
        report_id: s.header.report_id,
        domain: s.header.policy.domain,
        records: s.records,
        duplicate: !s.accepted,
        warnings: s.header.warnings,
    }
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// A fully collected report, for golden files, `show` and small inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Report {
    Aggregate {
        header: Box<AggregateHeader>,
        records: Vec<Record>,
        extensions: Vec<Extension>,
    },
    Failure(Box<FailureReport>),
    Tls(TlsReport),
}

/// A sink that keeps every report in memory (tests, golden files).
#[derive(Debug, Default)]
pub struct CollectSink {
    pub reports: Vec<Report>,
}

impl AggregateVisitor for CollectSink {
    fn header(&mut self, header: &AggregateHeader) -> Result<bool, SinkError> {
        self.reports.push(Report::Aggregate {
            header: Box::new(header.clone()),
            records: Vec::new(),
            extensions: Vec::new(),
        });
        Ok(true)
    }
    fn record(&mut self, record: &Record) -> Result<(), SinkError> {
        if let Some(Report::Aggregate { records, .. }) = self.reports.last_mut() {
            records.push(record.clone());
        }
        Ok(())
    }
    fn end(&mut self, summary: &AggregateSummary) -> Result<bool, SinkError> {
        if let Some(Report::Aggregate {
            header, extensions, ..
        }) = self.reports.last_mut()
        {
            *extensions = summary.extensions.clone();
            header.warnings = summary.header.warnings.clone();
        }
        Ok(true)
    }
}

impl ReportSink for CollectSink {
    fn failure(&mut self, report: &FailureReport) -> Result<bool, SinkError> {
        self.reports.push(Report::Failure(Box::new(report.clone())));
        Ok(true)
    }
    fn tls(&mut self, report: &TlsReport) -> Result<bool, SinkError> {
        self.reports.push(Report::Tls(report.clone()));
        Ok(true)
    }
}

/// Parses one item fully into memory.
pub fn parse_all(bytes: &[u8], limits: &IngestLimits) -> Result<Vec<Report>, ParseError> {
    let mut sink = CollectSink::default();
    parse_item(bytes, limits, &mut sink)?;
    Ok(sink.reports)
}

/// An aggregate report for the crate's tests: `records` identical
/// records (one source, DKIM pass, SPF fail), then `tail` (more XML before
/// `</feedback>`).
#[cfg(test)]
pub(crate) fn test_report(id: &str, records: usize, tail: &str) -> String {
    let record = "<record><row><source_ip>192.0.2.1</source_ip><count>2</count>\
        <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf>\
        </policy_evaluated></row><identifiers><header_from>example.com</header_from>\
        </identifiers><auth_results><dkim><domain>example.com</domain><result>pass</result>\
        </dkim></auth_results></record>";
    format!(
        "<feedback><report_metadata><org_name>o</org_name><report_id>{id}</report_id>\
         <date_range><begin>0</begin><end>86400</end></date_range></report_metadata>\
         <policy_published><domain>example.com</domain><p>reject</p></policy_published>\
         {}{tail}</feedback>",
        record.repeat(records)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Issue 15: past the item's deadline, every stage gives the item's
    /// `TimedOut`: the container walk of a compressed report as well as
    /// the deadline check itself.
    #[test]
    fn past_the_deadline_is_timed_out() {
        let limits = IngestLimits {
            item_time_budget: Duration::from_secs(3),
            ..IngestLimits::default()
        };
        let past = IngestLimits {
            item_deadline: Instant::now().checked_sub(Duration::from_secs(1)),
            ..limits.clone()
        };
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"<feedback></feedback>").expect("gzip");
        let gz = gz.finish().expect("gzip");
        let e = container::unpack(&gz, &past).expect_err("past the deadline");
        assert!(matches!(e, ParseError::TimedOut { secs: 3 }), "{e}");
        let in_time = IngestLimits {
            item_deadline: Instant::now().checked_add(Duration::from_secs(3600)),
            ..limits
        };
        assert!(check_deadline(&in_time).is_ok());
        assert!(matches!(
            check_deadline(&past),
            Err(ParseError::TimedOut { secs: 3 })
        ));
        // A deadline set once is kept for the whole item.
        assert_eq!(with_deadline(&past).item_deadline, past.item_deadline);
    }
}
