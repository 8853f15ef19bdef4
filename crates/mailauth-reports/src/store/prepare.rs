//! The columns of an item's aggregate records, worked out from a
//! [`ParsedItem`] on the thread that parsed it: the source IP as text, the
//! JSON lists (reasons, DKIM and SPF results, extensions), the first DKIM
//! and SPF result spread over their own columns, the keywords as the text
//! SQLite stores. The thread that owns the store then only binds them,
//! one row per INSERT (`write`).
//!
//! Owns turning a [`Record`] into its column values, for both the prepared
//! rows and the sink that formats a record as it writes it, so that both
//! give the same text. Leaves parsing to `reports::parse`, SQL to `write`,
//! and what runs on which thread to `reports::ingest`.

use std::fmt::Write as _;

use serde::Serialize;

use super::super::parse::{
    AggregateHeader, AggregateVisitor, FailureReport, ParsedItem, Record, ReportSink, SinkError,
    TlsReport,
};

/// Where a text column lies in [`PreparedRecords::text`]; `start ==
/// u32::MAX` is NULL.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

const NULL: Span = Span {
    start: u32::MAX,
    end: u32::MAX,
};

/// The text columns of a record, in [`PreparedRecords::text`].
#[derive(Debug, Clone, Copy)]
enum Col {
    SourceIp,
    Reasons,
    HeaderFrom,
    EnvelopeFrom,
    EnvelopeTo,
    DkimDomain,
    DkimSelector,
    SpfDomain,
    DkimResults,
    SpfResults,
    Extensions,
}

const TEXT_COLS: usize = 11;

/// One record's columns.
#[derive(Debug, Clone)]
struct Row {
    count: i64,
    disposition: &'static str,
    dkim_aligned: Option<&'static str>,
    spf_aligned: Option<&'static str>,
    dkim_result: Option<&'static str>,
    spf_scope: Option<&'static str>,
    spf_result: Option<&'static str>,
    text: [Span; TEXT_COLS],
}

/// The `records` row of every aggregate record of one parsed item, in the
/// order [`ParsedItem::replay`] hands them out, whatever the store answers
/// to each report's header (the rows of a report the store already holds
/// are skipped by reading where the next report's rows start).
#[derive(Debug, Default)]
pub struct PreparedRecords {
    /// Every text column of every row, one after the other.
    text: String,
    rows: Vec<Row>,
    /// Per aggregate report header, in order: its first row.
    starts: Vec<usize>,
    /// Scratch space for one JSON list.
    json: Vec<u8>,
}

/// The values of one `records` row, borrowed from a [`PreparedRecords`]
/// or from the [`RecordText`] buffers of a record formatted as written.
/// In the column order of the records INSERT after `report_id`. The
/// PostgreSQL store writes the same values (`pgstore::write`), and copies
/// an SQLite store's rows as them.
pub(crate) struct RowValues<'a> {
    pub source_ip: &'a str,
    pub count: i64,
    pub disposition: &'a str,
    pub dkim_aligned: Option<&'a str>,
    pub spf_aligned: Option<&'a str>,
    pub reasons: &'a str,
    pub header_from: &'a str,
    pub envelope_from: Option<&'a str>,
    pub envelope_to: Option<&'a str>,
    pub dkim_domain: Option<&'a str>,
    pub dkim_selector: Option<&'a str>,
    pub dkim_result: Option<&'a str>,
    pub spf_domain: Option<&'a str>,
    pub spf_scope: Option<&'a str>,
    pub spf_result: Option<&'a str>,
    pub dkim_results: &'a str,
    pub spf_results: &'a str,
    pub extensions: &'a str,
}

impl PreparedRecords {
    /// The rows of every aggregate record in `item`. `None` when the text
    /// would not fit the offsets kept (4 GiB): the store then formats
    /// each record as it writes it.
    pub fn of(item: &ParsedItem) -> Option<Self> {
        let mut prepared = Self::default();
        item.replay(&mut prepared).ok()?;
        u32::try_from(prepared.text.len())
            .ok()
            .filter(|&n| n < u32::MAX)?;
        Some(prepared)
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the item holds no aggregate record.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows of the `report`th aggregate report header (counted from
    /// 0 in replay order).
    pub(crate) fn report_rows(&self, report: usize) -> std::ops::Range<usize> {
        let start = self.starts.get(report).copied().unwrap_or(self.rows.len());
        let end = self
            .starts
            .get(report + 1)
            .copied()
            .unwrap_or(self.rows.len());
        start..end
    }

    /// Whether row `i` was made from `r` (a cheap check that the replay
    /// the store sees is the one the rows were prepared from).
    pub(crate) fn matches(&self, i: usize, r: &Record) -> bool {
        self.rows
            .get(i)
            .is_some_and(|row| row.count == count(r) && row.disposition == r.disposition.as_str())
    }

    /// Row `i`'s values.
    pub(crate) fn values(&self, i: usize) -> RowValues<'_> {
        let row = &self.rows[i];
        let opt = |c: Col| {
            let s = row.text[c as usize];
            (s.start != u32::MAX).then(|| &self.text[s.start as usize..s.end as usize])
        };
        let text = |c: Col| opt(c).unwrap_or_default();
        RowValues {
            source_ip: text(Col::SourceIp),
            count: row.count,
            disposition: row.disposition,
            dkim_aligned: row.dkim_aligned,
            spf_aligned: row.spf_aligned,
            reasons: text(Col::Reasons),
            header_from: text(Col::HeaderFrom),
            envelope_from: opt(Col::EnvelopeFrom),
            envelope_to: opt(Col::EnvelopeTo),
            dkim_domain: opt(Col::DkimDomain),
            dkim_selector: opt(Col::DkimSelector),
            dkim_result: row.dkim_result,
            spf_domain: opt(Col::SpfDomain),
            spf_scope: row.spf_scope,
            spf_result: row.spf_result,
            dkim_results: text(Col::DkimResults),
            spf_results: text(Col::SpfResults),
            extensions: text(Col::Extensions),
        }
    }

    fn push_record(&mut self, r: &Record) {
        let mut text = [NULL; TEXT_COLS];
        let buf = &mut self.text;
        let json = &mut self.json;
        let mut put = |c: Col, write: &mut dyn FnMut(&mut String)| {
            // Offsets past u32 are caught by `of`, which then gives up.
            let start = u32::try_from(buf.len()).unwrap_or(u32::MAX);
            write(buf);
            let end = u32::try_from(buf.len()).unwrap_or(u32::MAX);
            text[c as usize] = Span { start, end };
        };
        let dkim = r.dkim_results.first();
        let spf = r.spf_results.first();
        put(Col::SourceIp, &mut |b| write_ip(b, r));
        put(Col::Reasons, &mut |b| push_list(b, json, &r.reasons));
        put(Col::HeaderFrom, &mut |b| b.push_str(&r.header_from));
        if let Some(v) = &r.envelope_from {
            put(Col::EnvelopeFrom, &mut |b| b.push_str(v));
        }
        if let Some(v) = &r.envelope_to {
            put(Col::EnvelopeTo, &mut |b| b.push_str(v));
        }
        if let Some(d) = dkim {
            put(Col::DkimDomain, &mut |b| b.push_str(&d.domain));
            if let Some(s) = &d.selector {
                put(Col::DkimSelector, &mut |b| b.push_str(s));
            }
        }
        if let Some(s) = spf {
            put(Col::SpfDomain, &mut |b| b.push_str(&s.domain));
        }
        put(Col::DkimResults, &mut |b| {
            push_list(b, json, &r.dkim_results)
        });
        put(Col::SpfResults, &mut |b| push_list(b, json, &r.spf_results));
        put(Col::Extensions, &mut |b| push_list(b, json, &r.extensions));
        self.rows.push(Row {
            count: count(r),
            disposition: r.disposition.as_str(),
            dkim_aligned: r.dkim.map(|d| d.as_str()),
            spf_aligned: r.spf.map(|d| d.as_str()),
            dkim_result: dkim.map(|d| d.result.as_str()),
            spf_scope: spf.and_then(|s| s.scope.map(|s| s.as_str())),
            spf_result: spf.map(|s| s.result.as_str()),
            text,
        });
    }
}

/// The stored message count: SQLite integers are signed.
fn count(r: &Record) -> i64 {
    i64::try_from(r.count).unwrap_or(i64::MAX)
}

fn write_ip(buf: &mut String, r: &Record) {
    // Writing to a String cannot fail.
    let _ = write!(buf, "{}", r.source_ip);
}

/// Appends the JSON of a list, `[]` for the empty one (the column
/// default), as `super::list` writes it; `json` is scratch space.
fn push_list<T: Serialize>(buf: &mut String, json: &mut Vec<u8>, v: &[T]) {
    if v.is_empty() {
        buf.push_str("[]");
        return;
    }
    json.clear();
    let written = serde_json::to_writer(&mut *json, v).is_ok();
    match std::str::from_utf8(json) {
        Ok(text) if written => buf.push_str(text),
        _ => buf.push_str(&super::json(v)),
    }
}

/// Buffers for the text columns of a record formatted as it is written
/// (an item parsed on the writing thread), reused from record to record.
#[derive(Default)]
pub(super) struct RecordText {
    ip: String,
    reasons: String,
    dkim_results: String,
    spf_results: String,
    extensions: String,
    json: Vec<u8>,
}

impl RecordText {
    /// `r`'s values, formatted as [`PreparedRecords`] formats them.
    pub(super) fn values<'a>(&'a mut self, r: &'a Record) -> RowValues<'a> {
        self.ip.clear();
        write_ip(&mut self.ip, r);
        self.reasons.clear();
        push_list(&mut self.reasons, &mut self.json, &r.reasons);
        self.dkim_results.clear();
        push_list(&mut self.dkim_results, &mut self.json, &r.dkim_results);
        self.spf_results.clear();
        push_list(&mut self.spf_results, &mut self.json, &r.spf_results);
        self.extensions.clear();
        push_list(&mut self.extensions, &mut self.json, &r.extensions);
        let dkim = r.dkim_results.first();
        let spf = r.spf_results.first();
        RowValues {
            source_ip: &self.ip,
            count: count(r),
            disposition: r.disposition.as_str(),
            dkim_aligned: r.dkim.map(|d| d.as_str()),
            spf_aligned: r.spf.map(|d| d.as_str()),
            reasons: &self.reasons,
            header_from: &r.header_from,
            envelope_from: r.envelope_from.as_deref(),
            envelope_to: r.envelope_to.as_deref(),
            dkim_domain: dkim.map(|d| d.domain.as_str()),
            dkim_selector: dkim.and_then(|d| d.selector.as_deref()),
            dkim_result: dkim.map(|d| d.result.as_str()),
            spf_domain: spf.map(|s| s.domain.as_str()),
            spf_scope: spf.and_then(|s| s.scope.map(|s| s.as_str())),
            spf_result: spf.map(|s| s.result.as_str()),
            dkim_results: &self.dkim_results,
            spf_results: &self.spf_results,
            extensions: &self.extensions,
        }
    }
}

// Replaying an item into the preparer: every report is taken (the store
// decides later which are new), every aggregate record becomes a row.
impl AggregateVisitor for PreparedRecords {
    fn header(&mut self, _: &AggregateHeader) -> Result<bool, SinkError> {
        self.starts.push(self.rows.len());
        Ok(true)
    }
    fn record(&mut self, r: &Record) -> Result<(), SinkError> {
        self.push_record(r);
        Ok(())
    }
}

impl ReportSink for PreparedRecords {
    fn failure(&mut self, _: &FailureReport) -> Result<bool, SinkError> {
        Ok(true)
    }
    fn tls(&mut self, _: &TlsReport) -> Result<bool, SinkError> {
        Ok(true)
    }
}
