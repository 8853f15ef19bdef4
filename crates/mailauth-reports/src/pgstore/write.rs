//! Writing items into PostgreSQL: records buffered as column arrays for
//! multi-row inserts, and the sink that stores one item in one
//! transaction, claiming each report by its natural key.

use super::*;

/// Aggregate records of one report, as column arrays for one insert.
#[derive(Default)]
pub(super) struct RecordCols {
    pub(super) source_ip: Vec<String>,
    pub(super) count: Vec<i64>,
    pub(super) disposition: Vec<String>,
    pub(super) dkim_aligned: Vec<Option<String>>,
    pub(super) spf_aligned: Vec<Option<String>>,
    pub(super) reasons: Vec<String>,
    pub(super) header_from: Vec<String>,
    pub(super) envelope_from: Vec<Option<String>>,
    pub(super) envelope_to: Vec<Option<String>>,
    pub(super) dkim_domain: Vec<Option<String>>,
    pub(super) dkim_selector: Vec<Option<String>>,
    pub(super) dkim_result: Vec<Option<String>>,
    pub(super) spf_domain: Vec<Option<String>>,
    pub(super) spf_scope: Vec<Option<String>>,
    pub(super) spf_result: Vec<Option<String>>,
    pub(super) dkim_results: Vec<String>,
    pub(super) spf_results: Vec<String>,
    pub(super) extensions: Vec<String>,
}

impl RecordCols {
    pub(super) fn len(&self) -> usize {
        self.source_ip.len()
    }

    pub(super) fn push(&mut self, r: &Record) {
        let dkim = r.dkim_results.first();
        let spf = r.spf_results.first();
        self.source_ip.push(r.source_ip.to_string());
        self.count.push(big(r.count));
        self.disposition.push(r.disposition.as_str().to_owned());
        self.dkim_aligned
            .push(r.dkim.map(|d| d.as_str().to_owned()));
        self.spf_aligned.push(r.spf.map(|d| d.as_str().to_owned()));
        self.reasons.push(list(&r.reasons));
        self.header_from.push(r.header_from.clone());
        self.envelope_from.push(r.envelope_from.clone());
        self.envelope_to.push(r.envelope_to.clone());
        self.dkim_domain.push(dkim.map(|d| d.domain.clone()));
        self.dkim_selector
            .push(dkim.and_then(|d| d.selector.clone()));
        self.dkim_result
            .push(dkim.map(|d| d.result.as_str().to_owned()));
        self.spf_domain.push(spf.map(|s| s.domain.clone()));
        self.spf_scope
            .push(spf.and_then(|s| s.scope.map(|s| s.as_str().to_owned())));
        self.spf_result
            .push(spf.map(|s| s.result.as_str().to_owned()));
        self.dkim_results.push(list(&r.dkim_results));
        self.spf_results.push(list(&r.spf_results));
        self.extensions.push(list(&r.extensions));
    }

    /// Inserts the buffered rows for `report` and empties the buffer.
    pub(super) fn flush(
        &mut self,
        tx: &mut Transaction<'_>,
        stmt: &Statement,
        report: i64,
    ) -> Result<(), postgres::Error> {
        if self.len() == 0 {
            return Ok(());
        }
        tx.execute(
            stmt,
            &[
                &report,
                &self.source_ip,
                &self.count,
                &self.disposition,
                &self.dkim_aligned,
                &self.spf_aligned,
                &self.reasons,
                &self.header_from,
                &self.envelope_from,
                &self.envelope_to,
                &self.dkim_domain,
                &self.dkim_selector,
                &self.dkim_result,
                &self.spf_domain,
                &self.spf_scope,
                &self.spf_result,
                &self.dkim_results,
                &self.spf_results,
                &self.extensions,
            ],
        )?;
        *self = Self::default();
        Ok(())
    }
}

/// The sink that writes one item inside one transaction.
pub(super) struct TxSink<'a, 't> {
    pub(super) tx: &'a mut Transaction<'t>,
    pub(super) stmts: &'a Stmts,
    pub(super) origin: &'a str,
    pub(super) now: i64,
    pub(super) report: Option<i64>,
    pub(super) records: RecordCols,
}

impl TxSink<'_, '_> {
    pub(super) fn flush(&mut self) -> Result<(), postgres::Error> {
        match self.report {
            Some(report) => self
                .records
                .flush(self.tx, &self.stmts.insert_records, report),
            None => Ok(()),
        }
    }
}

impl AggregateVisitor for TxSink<'_, '_> {
    fn header(&mut self, h: &AggregateHeader) -> Result<bool, SinkError> {
        // RFC 7489 section 7.2.1.1: "The report MUST contain ... a unique
        // report identifier" — a report is identified by its reporter,
        // report id, domain and date range. The UNIQUE constraint decides
        // inside this transaction; no row returned means a duplicate.
        self.flush()?;
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
            ],
        )?;
        let Some(row) = row else {
            self.report = None;
            return Ok(false);
        };
        let id: i64 = row.get(0);
        self.report = Some(id);
        let p = &h.policy;
        self.tx.execute(
            &self.stmts.insert_policy,
            &[
                &id,
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
        Ok(true)
    }

    fn record(&mut self, r: &Record) -> Result<(), SinkError> {
        if self.report.is_none() {
            return Ok(());
        }
        self.records.push(r);
        if self.records.len() >= RECORD_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn end(&mut self, s: &AggregateSummary) -> Result<(), SinkError> {
        self.flush()?;
        if let Some(report) = self.report {
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

impl ReportSink for TxSink<'_, '_> {
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
        let report: i64 = row.get(0);
        for p in &r.policies {
            let policy: i64 = self
                .tx
                .query_one(
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
                )?
                .get(0);
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
    )
}
