//! Writing items into PostgreSQL: records buffered in the binary `COPY`
//! format and stored with one `COPY` per batch, and the sink that stores one item in one
//! transaction, claiming each report by its natural key. Before the first
//! report of a month it has not seen, the sink has the month's partitions
//! created (`mailauth_month_partitions_v1` of `schema`), inside the item's
//! transaction, so they exist before the report's row and its `COPY`.

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

/// One record's 18 fields as the SQLite store keeps them (`store copy`).
pub(super) struct RawRecord<'a> {
    pub(super) source_ip: &'a str,
    pub(super) count: i64,
    pub(super) disposition: &'a str,
    pub(super) dkim_aligned: Option<&'a str>,
    pub(super) spf_aligned: Option<&'a str>,
    pub(super) reasons: &'a str,
    pub(super) header_from: &'a str,
    pub(super) envelope_from: Option<&'a str>,
    pub(super) envelope_to: Option<&'a str>,
    pub(super) dkim_domain: Option<&'a str>,
    pub(super) dkim_selector: Option<&'a str>,
    pub(super) dkim_result: Option<&'a str>,
    pub(super) spf_domain: Option<&'a str>,
    pub(super) spf_scope: Option<&'a str>,
    pub(super) spf_result: Option<&'a str>,
    pub(super) dkim_results: &'a str,
    pub(super) spf_results: &'a str,
    pub(super) extensions: &'a str,
}

impl RecordCols {
    pub(super) fn len(&self) -> usize {
        self.rows
    }

    fn text(&mut self, v: Option<&str>) {
        match v {
            Some(v) => {
                let n = i32::try_from(v.len()).unwrap_or(i32::MAX);
                self.buf.extend_from_slice(&n.to_be_bytes());
                self.buf.extend_from_slice(v.as_bytes());
            }
            None => self.buf.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    fn int(&mut self, v: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A text field written by `Display` straight into the buffer.
    fn display(&mut self, v: impl std::fmt::Display) {
        use std::io::Write as _;
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        let _ = write!(self.buf, "{v}");
        let n = i32::try_from(self.buf.len() - at - 4).unwrap_or(i32::MAX);
        self.buf[at..at + 4].copy_from_slice(&n.to_be_bytes());
    }

    /// Starts a row of `report`'s records; `begin` is the report's
    /// `date_begin`.
    fn row(&mut self, report: i64, begin: i64) {
        self.rows += 1;
        self.buf.extend_from_slice(&COPY_FIELDS.to_be_bytes());
        self.int(report);
        self.int(begin);
    }

    pub(super) fn push(&mut self, report: i64, begin: i64, r: &Record) {
        let dkim = r.dkim_results.first();
        let spf = r.spf_results.first();
        self.row(report, begin);
        self.display(r.source_ip);
        self.int(big(r.count));
        self.text(Some(r.disposition.as_str()));
        self.text(r.dkim.map(|d| d.as_str()));
        self.text(r.spf.map(|d| d.as_str()));
        self.text(Some(&list(&r.reasons)));
        self.text(Some(&r.header_from));
        self.text(r.envelope_from.as_deref());
        self.text(r.envelope_to.as_deref());
        self.text(dkim.map(|d| d.domain.as_str()));
        self.text(dkim.and_then(|d| d.selector.as_deref()));
        self.text(dkim.map(|d| d.result.as_str()));
        self.text(spf.map(|s| s.domain.as_str()));
        self.text(spf.and_then(|s| s.scope.map(|s| s.as_str())));
        self.text(spf.map(|s| s.result.as_str()));
        self.text(Some(&list(&r.dkim_results)));
        self.text(Some(&list(&r.spf_results)));
        self.text(Some(&list(&r.extensions)));
    }

    pub(super) fn push_raw(&mut self, report: i64, begin: i64, r: &RawRecord<'_>) {
        self.row(report, begin);
        self.text(Some(r.source_ip));
        self.int(r.count);
        self.text(Some(r.disposition));
        self.text(r.dkim_aligned);
        self.text(r.spf_aligned);
        self.text(Some(r.reasons));
        self.text(Some(r.header_from));
        self.text(r.envelope_from);
        self.text(r.envelope_to);
        self.text(r.dkim_domain);
        self.text(r.dkim_selector);
        self.text(r.dkim_result);
        self.text(r.spf_domain);
        self.text(r.spf_scope);
        self.text(r.spf_result);
        self.text(Some(r.dkim_results));
        self.text(Some(r.spf_results));
        self.text(Some(r.extensions));
    }

    /// Stores the buffered rows with one `COPY` and empties the buffer.
    pub(super) fn flush<C: GenericClient>(&mut self, tx: &mut C) -> Result<(), postgres::Error> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut out = Vec::with_capacity(COPY_HEADER.len() + self.buf.len() + 2);
        out.extend_from_slice(COPY_HEADER);
        out.extend_from_slice(&self.buf);
        out.extend_from_slice(&(-1i16).to_be_bytes()); // file trailer
        *self = Self::default();
        let mut w = tx.copy_in(COPY_RECORDS)?;
        // One write into the writer's empty buffer cannot fail (it sends
        // nothing before `finish`); were it to, the truncated data makes
        // `finish` fail with the server's error.
        if let Err(e) = std::io::Write::write_all(&mut w, &out)
            && let Some(e) = e
                .into_inner()
                .and_then(|b| b.downcast::<postgres::Error>().ok())
        {
            return Err(*e);
        }
        w.finish()?;
        Ok(())
    }
}

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
    /// Months whose partitions are known to exist (committed).
    pub(super) months: &'a HashSet<i64>,
    /// Months whose partitions this transaction made sure of (in a group,
    /// the group's so far, and then this item's); known once it commits.
    pub(super) new_months: Vec<i64>,
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

impl<C: GenericClient> AggregateVisitor for TxSink<'_, C> {
    fn header(&mut self, h: &AggregateHeader) -> Result<bool, SinkError> {
        // RFC 7489 section 7.2.1.1: "The report MUST contain ... a unique
        // report identifier" — a report is identified by its reporter,
        // report id, domain and date range. The UNIQUE constraint decides
        // inside this transaction; no row returned means a duplicate.
        self.flush()?;
        ensure_month(self.tx, self.months, &mut self.new_months, h.date_begin)?;
        let p = &h.policy;
        let row = self.tx.query_opt(
            &self.stmts.insert_report,
            &[
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
                &json(&h.errors),
                &json(&h.warnings),
                &self.origin,
                &self.now,
                &p.domain,
                &p.adkim.map(|a| a.as_str()),
                &p.aspf.map(|a| a.as_str()),
                &p.p.map(|a| a.as_str()),
                &p.sp.map(|a| a.as_str()),
                &p.np.map(|a| a.as_str()),
                &p.pct.map(i64::from),
                &p.fo,
                &p.testing,
                &p.discovery_method,
            ],
        )?;
        let Some(row) = row else {
            self.report = None;
            return Ok(false);
        };
        let id: i64 = pg_get(&row, "store report", 0)?;
        self.report = Some((id, h.date_begin));
        Ok(true)
    }

    fn record(&mut self, r: &Record) -> Result<(), SinkError> {
        let Some((report, begin)) = self.report else {
            return Ok(());
        };
        self.records.push(report, begin, r);
        if self.records.len() >= RECORD_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn end(&mut self, s: &AggregateSummary) -> Result<(), SinkError> {
        self.flush()?;
        if let Some((report, _)) = self.report {
            self.tx.execute(
                &self.stmts.update_report,
                &[
                    &report,
                    &big(s.records),
                    &big(s.messages),
                    &list(&s.extensions),
                    &json(&s.header.warnings),
                ],
            )?;
        }
        Ok(())
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

pub(super) fn retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    ) || missing_partition(e)
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
