//! `reports show`: one stored report, with its details and records, read
//! back from SQLite.

use super::*;

impl SqliteStore {
    pub(super) fn show_aggregate(&self, id: i64) -> Result<Option<ReportDetail>, StoreError> {
        let head = self
            .conn
            .query_row(
                "SELECT r.org_name, r.report_id, r.policy_domain, r.date_begin, r.date_end, \
                 r.record_count, r.message_count, r.email, r.extra_contact_info, r.version, \
                 r.namespace, r.generator, r.errors, r.warnings, r.extensions, r.origin, \
                 p.adkim, p.aspf, p.p, p.sp, p.np, p.pct, p.fo, p.testing, p.discovery_method \
                 FROM reports r LEFT JOIN policy_published p ON p.report_id = r.id WHERE r.id = ?1",
                [id],
                |r| {
                    let row = ReportRow {
                        kind: ReportKind::Aggregate,
                        id,
                        org: r.get(0)?,
                        report_id: r.get(1)?,
                        domain: r.get(2)?,
                        begin: rfc3339_secs(r.get(3)?),
                        end: rfc3339_secs(r.get(4)?),
                        records: r.get(5)?,
                        messages: r.get(6)?,
                    };
                    let details = ReportDetails::Aggregate(AggregateDetails {
                        email: r.get(7)?,
                        extra_contact_info: r.get(8)?,
                        version: r.get(9)?,
                        namespace: r.get(10)?,
                        generator: r.get(11)?,
                        errors: opt_json(r.get(12)?),
                        warnings: opt_json(r.get(13)?),
                        extensions: opt_json(r.get(14)?),
                        origin: r.get(15)?,
                        policy_published: PolicyPublished {
                            adkim: r.get(16)?,
                            aspf: r.get(17)?,
                            p: r.get(18)?,
                            sp: r.get(19)?,
                            np: r.get(20)?,
                            pct: r.get(21)?,
                            fo: r.get(22)?,
                            testing: r.get(23)?,
                            discovery_method: r.get(24)?,
                        },
                    });
                    Ok((row, details))
                },
            )
            .optional()
            .map_err(q("show report"))?;
        let Some((row, details)) = head else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, \
                 envelope_from, envelope_to, reasons, dkim_results, spf_results \
                 FROM records WHERE report_id = ?1 ORDER BY id",
            )
            .map_err(q("show records"))?;
        let records = stmt
            .query_map([id], |r| {
                Ok(RecordRow {
                    source_ip: r.get(0)?,
                    count: r.get(1)?,
                    disposition: r.get(2)?,
                    dkim_aligned: r.get(3)?,
                    spf_aligned: r.get(4)?,
                    header_from: r.get(5)?,
                    envelope_from: r.get(6)?,
                    envelope_to: r.get(7)?,
                    reasons: opt_json(r.get(8)?),
                    dkim_results: opt_json(r.get(9)?),
                    spf_results: opt_json(r.get(10)?),
                })
            })
            .map_err(q("show records"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q("show records"))?;
        Ok(Some(ReportDetail {
            row,
            details,
            records,
        }))
    }

    pub(super) fn show_tls(&self, id: i64) -> Result<Option<ReportDetail>, StoreError> {
        let Some(row) = self.tls_rows(Some(id))?.pop() else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.id, p.policy_type, p.policy_domain, p.policy_string, p.mx_host, \
                 p.successful_count, p.failure_count FROM tls_policies p \
                 WHERE p.tls_report_id = ?1 ORDER BY p.id",
            )
            .map_err(q("show TLS policies"))?;
        let policies = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    TlsPolicyDetail {
                        policy_type: r.get(1)?,
                        policy_domain: r.get(2)?,
                        policy_string: opt_json(r.get(3)?),
                        mx_host: opt_json(r.get(4)?),
                        successful: r.get(5)?,
                        failed: r.get(6)?,
                        failure_details: Vec::new(),
                    },
                ))
            })
            .map_err(q("show TLS policies"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q("show TLS policies"))?;
        let mut out = Vec::with_capacity(policies.len());
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT result_type, sending_mta_ip, receiving_mx_hostname, receiving_ip, \
                 failed_session_count, failure_reason_code FROM tls_failures \
                 WHERE tls_policy_id = ?1 ORDER BY id",
            )
            .map_err(q("show TLS failures"))?;
        for (pid, mut policy) in policies {
            let failures = stmt
                .query_map([pid], |r| {
                    Ok(TlsFailureDetail {
                        result_type: r.get(0)?,
                        sending_mta_ip: r.get(1)?,
                        receiving_mx_hostname: r.get(2)?,
                        receiving_ip: r.get(3)?,
                        failed_session_count: r.get(4)?,
                        failure_reason_code: r.get(5)?,
                    })
                })
                .map_err(q("show TLS failures"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(q("show TLS failures"))?;
            policy.failure_details = failures;
            out.push(policy);
        }
        Ok(Some(ReportDetail {
            row,
            details: ReportDetails::Tls(TlsDetails { policies: out }),
            records: Vec::new(),
        }))
    }

    pub(super) fn show_failure(&self, id: i64) -> Result<Option<ReportDetail>, StoreError> {
        self.conn
            .query_row(
                "SELECT coalesce(reporter, ''), fingerprint, reported_domain, \
                 coalesce(arrival_date, ''), feedback_type, user_agent, source_ip, \
                 original_mail_from, authentication_results, dkim_domain, spf_dns, \
                 original_subject, original_headers, from_text FROM failure_reports WHERE id = ?1",
                [id],
                |r| {
                    let date: String = r.get(3)?;
                    Ok(ReportDetail {
                        row: ReportRow {
                            kind: ReportKind::Failure,
                            id,
                            org: r.get(0)?,
                            report_id: r.get(1)?,
                            domain: r.get(2)?,
                            begin: rfc3339_text(&date),
                            end: rfc3339_text(&date),
                            records: 1,
                            messages: 1,
                        },
                        details: ReportDetails::Failure(FailureDetails {
                            feedback_type: r.get(4)?,
                            user_agent: r.get(5)?,
                            source_ip: r.get(6)?,
                            original_mail_from: r.get(7)?,
                            authentication_results: opt_json(r.get(8)?),
                            dkim_domain: r.get(9)?,
                            spf_dns: r.get(10)?,
                            original_subject: r.get(11)?,
                            original_headers: r.get(12)?,
                            from_text: r.get(13)?,
                        }),
                        records: Vec::new(),
                    })
                },
            )
            .optional()
            .map_err(q("show failure report"))
    }
}
