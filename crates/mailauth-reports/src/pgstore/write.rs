//! Writing items into PostgreSQL: the sink that stores one item in one
//! transaction, claiming each report by its natural key. A small report
//! (its header held back with up to [`WHOLE_REPORT_RECORDS`] records, each column
//! a binary array) is stored whole with one statement; a longer one has its
//! header stored, then its records buffered in the binary `COPY` format
//! and stored with one `COPY` per batch. Before the first
//! report of a month it has not seen, the sink has the month's partitions
//! created (`mailauth_month_partitions_v1` of `schema`), inside the item's
//! transaction, so they exist before the report's row and its `COPY`.

use postgres::types::{IsNull, ToSql, Type};

use super::*;

/// Aggregate records of one report, encoded as rows of PostgreSQL's
/// binary `COPY` format (PostgreSQL 15 §COPY, "Binary Format"): each row
/// is a 16-bit field count, then per field a 32-bit length (-1 for NULL)
/// and the value's binary form (`text`: its UTF-8 bytes; `bigint`: 8 bytes,
/// big-endian). One `COPY … FROM STDIN (FORMAT binary)` per batch stores
/// them: no per-row statement, no per-field allocation.
#[derive(Default)]
pub(super) struct RecordCols {
    buf: Vec<u8>,
    rows: usize,
}

/// Columns of `records` the COPY fills, in this order (`report_id` and the
/// report's `date_begin`, the partition key, first, then 18 per record).
const COPY_RECORDS: &str = "COPY records (report_id, date_begin, source_ip, count, \
     disposition, dkim_aligned, spf_aligned, reasons, header_from, envelope_from, envelope_to, \
     dkim_domain, dkim_selector, dkim_result, spf_domain, spf_scope, spf_result, dkim_results, \
     spf_results, extensions) FROM STDIN (FORMAT binary)";
const COPY_FIELDS: i16 = 20;
/// The binary COPY header: signature, flags, header extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// A record's 18 fields, each written where its column wants it: one
/// after the other in a `COPY` row ([`RecordCols`]), or each at the end of
/// its own column ([`RecordArrays`]). Both formats write a field the same
/// way: a 32-bit length (-1 for NULL), then the value's binary form.
trait Fields {
    /// Where field `i` (0 ..= 17) of a record goes.
    fn field(&mut self, i: usize) -> &mut Vec<u8>;

    fn text(&mut self, i: usize, v: Option<&str>) {
        let out = self.field(i);
        match v {
            Some(v) => {
                let n = i32::try_from(v.len()).unwrap_or(i32::MAX);
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(v.as_bytes());
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    fn int(&mut self, i: usize, v: i64) {
        put_int(self.field(i), v);
    }

    /// A list as JSON text (what `list` gives), written straight into its
    /// place: no string per field.
    fn list<T: Serialize>(&mut self, i: usize, v: &[T]) {
        if v.is_empty() {
            self.text(i, Some("[]"));
            return;
        }
        let out = self.field(i);
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        if serde_json::to_writer(&mut *out, v).is_err() {
            // As `json` does for a value serde cannot write (none of a
            // record's lists).
            out.truncate(at + 4);
            out.extend_from_slice(b"null");
        }
        let n = i32::try_from(out.len() - at - 4).unwrap_or(i32::MAX);
        out[at..at + 4].copy_from_slice(&n.to_be_bytes());
    }

    /// A text field written by `Display` straight into its place.
    fn display(&mut self, i: usize, v: impl std::fmt::Display) {
        use std::io::Write as _;
        let out = self.field(i);
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        let _ = write!(out, "{v}");
        let n = i32::try_from(out.len() - at - 4).unwrap_or(i32::MAX);
        out[at..at + 4].copy_from_slice(&n.to_be_bytes());
    }

    /// A record's fields as the SQLite store writes them: prepared on the
    /// thread that parsed it ([`PreparedRecords`]), or read from an SQLite
    /// store (`store copy`).
    fn values(&mut self, v: &RowValues<'_>) {
        self.text(0, Some(v.source_ip));
        self.int(1, v.count);
        self.text(2, Some(v.disposition));
        self.text(3, v.dkim_aligned);
        self.text(4, v.spf_aligned);
        self.text(5, Some(v.reasons));
        self.text(6, Some(v.header_from));
        self.text(7, v.envelope_from);
        self.text(8, v.envelope_to);
        self.text(9, v.dkim_domain);
        self.text(10, v.dkim_selector);
        self.text(11, v.dkim_result);
        self.text(12, v.spf_domain);
        self.text(13, v.spf_scope);
        self.text(14, v.spf_result);
        self.text(15, Some(v.dkim_results));
        self.text(16, Some(v.spf_results));
        self.text(17, Some(v.extensions));
    }

    /// A parsed record's fields.
    fn record(&mut self, r: &Record) {
        let dkim = r.dkim_results.first();
        let spf = r.spf_results.first();
        self.display(0, r.source_ip);
        self.int(1, big(r.count));
        self.text(2, Some(r.disposition.as_str()));
        self.text(3, r.dkim.map(|d| d.as_str()));
        self.text(4, r.spf.map(|d| d.as_str()));
        self.list(5, &r.reasons);
        self.text(6, Some(&r.header_from));
        self.text(7, r.envelope_from.as_deref());
        self.text(8, r.envelope_to.as_deref());
        self.text(9, dkim.map(|d| d.domain.as_str()));
        self.text(10, dkim.and_then(|d| d.selector.as_deref()));
        self.text(11, dkim.map(|d| d.result.as_str()));
        self.text(12, spf.map(|s| s.domain.as_str()));
        self.text(13, spf.and_then(|s| s.scope.map(|s| s.as_str())));
        self.text(14, spf.map(|s| s.result.as_str()));
        self.list(15, &r.dkim_results);
        self.list(16, &r.spf_results);
        self.list(17, &r.extensions);
    }
}

fn put_int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&v.to_be_bytes());
}

impl Fields for RecordCols {
    fn field(&mut self, _: usize) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl RecordCols {
    pub(super) fn len(&self) -> usize {
        self.rows
    }

    /// Starts a row of `report`'s records; `begin` is the report's
    /// `date_begin`.
    fn row(&mut self, report: i64, begin: i64) {
        self.rows += 1;
        self.buf.extend_from_slice(&COPY_FIELDS.to_be_bytes());
        put_int(&mut self.buf, report);
        put_int(&mut self.buf, begin);
    }

    pub(super) fn push(&mut self, report: i64, begin: i64, r: &Record) {
        self.row(report, begin);
        self.record(r);
    }

    pub(super) fn push_values(&mut self, report: i64, begin: i64, v: &RowValues<'_>) {
        self.row(report, begin);
        self.values(v);
    }

    /// Appends `held`'s records as rows of `report`'s, in order, and
    /// empties it: each row's fields taken in turn from the columns.
    fn push_held(&mut self, report: i64, begin: i64, held: &mut RecordArrays) {
        let mut at = [0usize; RECORD_FIELDS];
        for _ in 0..held.rows {
            self.row(report, begin);
            for (col, at) in held.cols.iter().zip(&mut at) {
                let n = field_len(&col[*at..]);
                self.buf.extend_from_slice(&col[*at..*at + n]);
                *at += n;
            }
        }
        held.clear();
    }

    /// Stores the buffered rows with one `COPY` and empties the buffer.
    pub(super) fn flush<C: GenericClient>(&mut self, tx: &mut C) -> Result<(), postgres::Error> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut w = tx.copy_in(COPY_RECORDS)?;
        // The header, the rows and the file trailer, each copied into the
        // writer's buffer (the rows' buffer is kept for the next batch: no
        // new one per batch). A write that sends what the writer holds can
        // fail with the server's error; a failed or truncated copy also
        // makes `finish` fail.
        let trailer = (-1i16).to_be_bytes();
        for part in [COPY_HEADER, &self.buf, &trailer] {
            if let Err(e) = std::io::Write::write_all(&mut w, part)
                && let Some(e) = e
                    .into_inner()
                    .and_then(|b| b.downcast::<postgres::Error>().ok())
            {
                return Err(*e);
            }
        }
        self.buf.clear();
        self.rows = 0;
        w.finish()?;
        Ok(())
    }
}

/// Fields of a record, as `COPY_RECORDS` and the whole-report statement list
/// them after the report's id and `date_begin`.
const RECORD_FIELDS: usize = 18;

/// The length of the field at the start of `buf` (as [`Fields`] wrote
/// it), its 4-byte length included.
fn field_len(buf: &[u8]) -> usize {
    let n = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    4 + usize::try_from(n).unwrap_or(0)
}

/// A report's records held column by column while its header waits, so
/// that a small report is stored with one statement: each column the
/// elements of a PostgreSQL binary array (`array_recv`), bound as one
/// parameter ([`ArrayParam`]) and taken apart with `unnest`.
#[derive(Default)]
pub(super) struct RecordArrays {
    cols: [Vec<u8>; RECORD_FIELDS],
    rows: usize,
}

impl Fields for RecordArrays {
    fn field(&mut self, i: usize) -> &mut Vec<u8> {
        &mut self.cols[i]
    }
}

impl RecordArrays {
    fn push(&mut self, r: &Record) {
        self.rows += 1;
        self.record(r);
    }

    fn push_values(&mut self, v: &RowValues<'_>) {
        self.rows += 1;
        self.values(v);
    }

    fn clear(&mut self) {
        self.cols.iter_mut().for_each(Vec::clear);
        self.rows = 0;
    }

    /// Column `i` as a statement parameter: `count` (1) is a `bigint[]`,
    /// the others `text[]`.
    fn param(&self, i: usize) -> ArrayParam<'_> {
        ArrayParam {
            elem: if i == 1 { Type::INT8 } else { Type::TEXT },
            rows: self.rows,
            elements: &self.cols[i],
        }
    }
}

/// A one-dimensional array parameter whose elements are already encoded:
/// PostgreSQL's binary array format (`array_recv`): the number of
/// dimensions, a has-NULLs flag, the element type, then per dimension its
/// length and lower bound (1), then the elements. No dimension for an
/// empty array.
#[derive(Debug)]
pub(super) struct ArrayParam<'a> {
    elem: Type,
    rows: usize,
    elements: &'a [u8],
}

impl ToSql for ArrayParam<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let rows = i32::try_from(self.rows)?;
        let dims: i32 = if rows == 0 { 0 } else { 1 };
        out.extend_from_slice(&dims.to_be_bytes());
        // Whether an element may be NULL: `array_recv` reads each
        // element's length whatever this says.
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&self.elem.oid().to_be_bytes());
        if rows > 0 {
            out.extend_from_slice(&rows.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
        }
        out.extend_from_slice(self.elements);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT_ARRAY || *ty == Type::INT8_ARRAY
    }

    postgres::types::to_sql_checked!();
}

/// Records of a report stored whole with one statement at most: a report
/// with more has its header stored when one more record arrives, and its
/// records with `COPY` from there.
pub const WHOLE_REPORT_RECORDS: usize = 1_000;

/// The sink that writes one item inside one transaction: its own
/// (`Transaction`), or a savepoint of a group's, written through the
/// client that holds it (`Client`).
pub(super) struct TxSink<'a, C: GenericClient> {
    pub(super) tx: &'a mut C,
    pub(super) stmts: &'a Stmts,
    pub(super) origin: &'a str,
    pub(super) now: i64,
    /// The report being stored: its id and `date_begin`.
    pub(super) report: Option<(i64, i64)>,
    pub(super) records: RecordCols,
    /// The header of the report being read, held back with its first
    /// records ([`WHOLE_REPORT_RECORDS`] at most) to store the report with one
    /// statement at its end.
    pub(super) held: Option<Box<AggregateHeader>>,
    pub(super) held_records: RecordArrays,
    /// The item's records prepared on the thread that parsed it, and where
    /// the sink is in them.
    pub(super) prepared: Option<Prepared<'a>>,
    /// The item is one small aggregate report, stored inside a group
    /// without a savepoint of its own: through the session's function
    /// (`whole_report_fn`), whose subtransaction stands for it.
    pub(super) whole_fn: bool,
    /// Months whose partitions are known to exist (committed).
    pub(super) months: &'a HashSet<i64>,
    /// Months whose partitions this transaction made sure of (in a group,
    /// the group's so far, and then this item's); known once it commits.
    pub(super) new_months: Vec<i64>,
}

/// Where a sink is in an item's [`PreparedRecords`]: the rows of the
/// current aggregate report still to come.
pub(super) struct Prepared<'a> {
    rows: &'a PreparedRecords,
    /// Aggregate report headers seen.
    headers: usize,
    next: usize,
    end: usize,
}

impl<'a> Prepared<'a> {
    pub(super) fn new(rows: &'a PreparedRecords) -> Self {
        Self {
            rows,
            headers: 0,
            next: 0,
            end: 0,
        }
    }
}

/// The first second of the month holding `t` (UTC), or `None` outside
/// 1970-01 .. 9999-12, whose reports go to the two fixed edge partitions.
pub(super) fn month_of(t: i64) -> Option<i64> {
    if !(0..MAX_MONTHLY).contains(&t) {
        return None;
    }
    let (y, m, _) = crate::clock::civil(t);
    Some(crate::clock::days_from_civil(y, i64::from(m), 1) * 86_400)
}

/// 10000-01-01T00:00:00Z: the first second of the upper edge partition.
pub(super) const MAX_MONTHLY: i64 = 253_402_300_800;

/// Makes sure the partitions of the month holding `begin` exist, inside
/// `tx`; `months` are those known to exist already.
pub(super) fn ensure_month<C: GenericClient>(
    tx: &mut C,
    months: &HashSet<i64>,
    new_months: &mut Vec<i64>,
    begin: i64,
) -> Result<(), postgres::Error> {
    let Some(month) = month_of(begin) else {
        return Ok(());
    };
    if months.contains(&month) || new_months.contains(&month) {
        return Ok(());
    }
    tx.execute("SELECT mailauth_month_partitions_v1($1)", &[&begin])?;
    new_months.push(month);
    Ok(())
}

impl<C: GenericClient> TxSink<'_, C> {
    pub(super) fn flush(&mut self) -> Result<(), postgres::Error> {
        match self.report {
            Some(_) => self.records.flush(self.tx),
            None => Ok(()),
        }
    }
}

impl<C: GenericClient> TxSink<'_, C> {
    /// Stores the held header, and has the records held so far stored with
    /// it: the report has more than [`WHOLE_REPORT_RECORDS`] records.
    fn release_header(&mut self) -> Result<(), SinkError> {
        let Some(h) = self.held.take() else {
            return Ok(());
        };
        if self.whole_fn {
            // Not expected (such an item is not handed over with
            // `whole_fn`): the month is made sure of here instead.
            ensure_month(self.tx, self.months, &mut self.new_months, h.date_begin)?;
        }
        let row = with_report_params(&h, self.origin, self.now, |params| {
            self.tx.query_opt(&self.stmts.insert_report, params)
        })?;
        let Some(row) = row else {
            self.held_records.clear();
            self.report = None;
            return Ok(());
        };
        let id: i64 = pg_get(&row, "store report", 0)?;
        self.report = Some((id, h.date_begin));
        self.records
            .push_held(id, h.date_begin, &mut self.held_records);
        Ok(())
    }
}

/// The parameters of `insert_report` ($1 .. $24: the report's row, then its
/// published policy), handed to `f`.
fn with_report_params<R>(
    h: &AggregateHeader,
    origin: &str,
    now: i64,
    f: impl FnOnce(&[&(dyn ToSql + Sync)]) -> R,
) -> R {
    let p = &h.policy;
    let (errors, warnings) = (json(&h.errors), json(&h.warnings));
    let (adkim, aspf) = (p.adkim.map(|a| a.as_str()), p.aspf.map(|a| a.as_str()));
    let (dp, sp, np) = (
        p.p.map(|a| a.as_str()),
        p.sp.map(|a| a.as_str()),
        p.np.map(|a| a.as_str()),
    );
    let pct = p.pct.map(i64::from);
    f(&[
        &h.org_name,
        &h.email,
        &h.extra_contact_info,
        &h.report_id,
        &h.date_begin,
        &h.date_end,
        &h.policy.domain,
        &h.version,
        &h.namespace,
        &h.generator,
        &errors,
        &warnings,
        &origin,
        &now,
        &p.domain,
        &adkim,
        &aspf,
        &dp,
        &sp,
        &np,
        &pct,
        &p.fo,
        &p.testing,
        &p.discovery_method,
    ])
}

impl<C: GenericClient> AggregateVisitor for TxSink<'_, C> {
    fn header(&mut self, h: &AggregateHeader) -> Result<bool, SinkError> {
        // RFC 7489 section 7.2.1.1: "The report MUST contain ... a unique
        // report identifier" — a report is identified by its reporter,
        // report id, domain and date range. The UNIQUE constraint decides
        // inside this transaction, when the header is stored; no row
        // returned means a duplicate. The header waits for the report's
        // first records (all of a small report's): `end` says whether the
        // report was new.
        if let Some(c) = &mut self.prepared {
            let rows = c.rows.report_rows(c.headers);
            c.headers += 1;
            (c.next, c.end) = (rows.start, rows.end);
        }
        self.flush()?;
        // With the session's function, the month's partitions are made
        // by it, in its subtransaction.
        if !self.whole_fn {
            ensure_month(self.tx, self.months, &mut self.new_months, h.date_begin)?;
        }
        self.report = None;
        self.held_records.clear();
        self.held = Some(Box::new(h.clone()));
        Ok(true)
    }

    fn record(&mut self, r: &Record) -> Result<(), SinkError> {
        // The record's prepared row, when the replay is the one the rows
        // were prepared from (always expected; otherwise the rest of the
        // item is encoded here).
        let row = match &mut self.prepared {
            Some(c) if c.next < c.end && c.rows.matches(c.next, r) => {
                c.next += 1;
                Some(c.rows.values(c.next - 1))
            }
            _ => None,
        };
        if row.is_none() {
            self.prepared = None;
        }
        if self.held.is_some() {
            if self.held_records.rows < WHOLE_REPORT_RECORDS {
                match &row {
                    Some(v) => self.held_records.push_values(v),
                    None => self.held_records.push(r),
                }
                return Ok(());
            }
            self.release_header()?;
        }
        let Some((report, begin)) = self.report else {
            return Ok(());
        };
        match &row {
            Some(v) => self.records.push_values(report, begin, v),
            None => self.records.push(report, begin, r),
        }
        if self.records.len() >= RECORD_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn end(&mut self, s: &AggregateSummary) -> Result<bool, SinkError> {
        let totals = (
            big(s.records),
            big(s.messages),
            list(&s.extensions),
            json(&s.header.warnings),
        );
        if self.held.take().is_some() {
            // The whole report in one statement: its row (with the final
            // header, totals and warnings), its policy and its records;
            // through the session's function when the item has no
            // savepoint of its own (`whole_fn`).
            let month = self
                .whole_fn
                .then(|| month_of(s.header.date_begin))
                .flatten()
                .filter(|m| !self.months.contains(m) && !self.new_months.contains(m));
            let ensure = month.is_some();
            let a = &self.held_records;
            let cols: [ArrayParam<'_>; RECORD_FIELDS] = std::array::from_fn(|i| a.param(i));
            let row = with_report_params(&s.header, self.origin, self.now, |params| {
                let mut all: Vec<&(dyn ToSql + Sync)> = params.to_vec();
                all.extend([&totals.0 as &(dyn ToSql + Sync), &totals.1, &totals.2]);
                all.extend(cols.iter().map(|c| c as &(dyn ToSql + Sync)));
                match (&self.stmts.whole_report_fn, self.whole_fn) {
                    (Some(call), true) => {
                        all.push(&ensure);
                        self.tx.query_one(call, &all).map(Some)
                    }
                    _ => self.tx.query_opt(&self.stmts.insert_whole_report, &all),
                }
            })?;
            self.held_records.clear();
            let Some(row) = row else {
                return Ok(false);
            };
            if self.whole_fn {
                if let Some(code) = pg_get::<Option<String>>(&row, "store report", 1)? {
                    return Err(Box::new(Undone { code }));
                }
                let id: Option<i64> = pg_get(&row, "store report", 0)?;
                if id.is_some() {
                    self.new_months.extend(month);
                }
                return Ok(id.is_some());
            }
            return Ok(true);
        }
        self.flush()?;
        let Some((report, _)) = self.report else {
            return Ok(false);
        };
        self.tx.execute(
            &self.stmts.update_report,
            &[&report, &totals.0, &totals.1, &totals.2, &totals.3],
        )?;
        Ok(true)
    }
}

impl<C: GenericClient> ReportSink for TxSink<'_, C> {
    fn failure(&mut self, r: &FailureReport) -> Result<bool, SinkError> {
        self.flush()?;
        self.report = None;
        let row = self.tx.query_opt(
            &self.stmts.insert_failure,
            &[
                &r.fingerprint(),
                &r.reporter,
                &r.feedback_type,
                &r.user_agent,
                &r.version,
                &r.auth_failure,
                &r.reported_domain,
                &r.source_ip.map(|i| i.to_string()),
                &r.arrival_date,
                &r.original_mail_from,
                &json(&r.original_rcpt_to),
                &json(&r.authentication_results),
                &r.delivery_result,
                &r.dkim_domain,
                &r.dkim_identity,
                &r.dkim_selector,
                &r.spf_dns,
                &r.identity_alignment,
                &r.original_subject,
                &r.original_message_id,
                &r.original_headers,
                &r.from_text,
                &self.origin,
                &self.now,
            ],
        )?;
        Ok(row.is_some())
    }

    fn tls(&mut self, r: &TlsReport) -> Result<bool, SinkError> {
        // RFC 8460 section 4.4: "report-id": a unique identifier for the
        // report; with the organisation and date range it names a report.
        self.flush()?;
        self.report = None;
        let row = self.tx.query_opt(
            &self.stmts.insert_tls,
            &[
                &r.organization_name,
                &r.report_id,
                &r.date_range.start_datetime,
                &r.date_range.end_datetime,
                &r.contact_info,
                &self.origin,
                &self.now,
            ],
        )?;
        let Some(row) = row else {
            return Ok(false);
        };
        let report: i64 = pg_get(&row, "store TLS report", 0)?;
        for p in &r.policies {
            let row = self.tx.query_one(
                &self.stmts.insert_tls_policy,
                &[
                    &report,
                    &p.policy.policy_type,
                    &p.policy.policy_domain,
                    &json(&p.policy.policy_string),
                    &json(&p.policy.mx_host),
                    &big(p.summary.total_successful_session_count),
                    &big(p.summary.total_failure_session_count),
                ],
            )?;
            let policy: i64 = pg_get(&row, "store TLS policy", 0)?;
            for f in &p.failure_details {
                self.tx.execute(
                    &self.stmts.insert_tls_failure,
                    &[
                        &policy,
                        &f.result_type,
                        &f.sending_mta_ip,
                        &f.receiving_mx_hostname,
                        &f.receiving_mx_helo,
                        &f.receiving_ip,
                        &big(f.failed_session_count),
                        &f.additional_information,
                        &f.failure_reason_code,
                    ],
                )?;
            }
        }
        Ok(true)
    }
}

/// What the session's function undid, and why: the SQLSTATE of a
/// deadlock, a serialization failure or a partition dropped meanwhile,
/// the item to be run again ([`retryable_code`]).
#[derive(Debug, thiserror::Error)]
#[error("the report was undone (SQLSTATE {code}); it is stored again")]
pub(super) struct Undone {
    pub(super) code: String,
}

/// Whether an item that failed with SQLSTATE `code` is run again: a
/// deadlock, a serialization failure (both safe to retry), or a partition
/// missing because a prune dropped it (see [`missing_partition`]).
pub(super) fn retryable_code(code: &SqlState) -> bool {
    *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::CHECK_VIOLATION
}

pub(super) fn retryable(e: &postgres::Error) -> bool {
    e.code().is_some_and(retryable_code)
}

/// "no partition of relation … found for row": a month's partitions that
/// were known to exist are gone (`reports prune` dropped them meanwhile).
/// Retried after forgetting the months known.
pub(super) fn missing_partition(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::CHECK_VIOLATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_begin_on_the_first_and_stop_at_the_edges() {
        // 2025-12-01T00:00:00Z and the second before it.
        assert_eq!(month_of(1_764_547_200), Some(1_764_547_200));
        assert_eq!(month_of(1_764_547_199), Some(1_761_955_200));
        assert_eq!(month_of(1_767_225_599), Some(1_764_547_200));
        assert_eq!(month_of(0), Some(0));
        assert_eq!(month_of(-1), None);
        assert_eq!(month_of(MAX_MONTHLY - 1), Some(253_399_622_400));
        assert_eq!(month_of(MAX_MONTHLY), None);
        assert_eq!(month_of(i64::MAX), None);
    }
}
