//! Reading PostgreSQL back: `reports list` and `reports show`, and the
//! checklist queries.

use super::*;
use crate::reports::dashq::pg_sum;
use crate::reports::store::{
    AggregateDetails, FailureDetails, PolicyPublished, ReportDetails, TlsDetails, TlsFailureDetail,
    TlsPolicyDetail, rfc3339_secs, rfc3339_text,
};

/// Every TLS report's list row, or only the one with `id` (one query
/// either way: `show` of one report does not list them all).
fn tls_rows(c: &mut Client, id: Option<i64>) -> Result<Vec<ReportRow>, PgError> {
    let mut out = Vec::new();
    for r in c
        .query(
            concat!(
                "SELECT t.id, t.org_name, t.report_id, \
             coalesce((SELECT min(policy_domain) FROM tls_policies p WHERE p.tls_report_id = t.id), ''), \
             t.date_begin, t.date_end, \
             (SELECT count(*) FROM tls_policies p WHERE p.tls_report_id = t.id), \
             coalesce((SELECT ",
                pg_sum!("successful_count::numeric + failure_count"),
                " FROM tls_policies p \
             WHERE p.tls_report_id = t.id), 0)::bigint \
             FROM tls_reports t WHERE $1::bigint IS NULL OR t.id = $1 \
             ORDER BY t.date_begin DESC, t.id DESC"
            ),
            &[&id],
        )
        .map_err(q("list TLS reports"))?
    {
        out.push(ReportRow {
            kind: ReportKind::Tls,
            id: r.get(0),
            org: r.get(1),
            report_id: r.get(2),
            domain: r.get(3),
            begin: rfc3339_text(&r.get::<_, String>(4)),
            end: rfc3339_text(&r.get::<_, String>(5)),
            records: r.get(6),
            messages: r.get(7),
        });
    }
    Ok(out)
}

impl PgStore {
    pub(super) fn list_pg(&self, domain: Option<&str>) -> Result<Vec<ReportRow>, PgError> {
        let mut c = self.client();
        let mut out = Vec::new();
        for r in c
            .query(
                "SELECT id, org_name, report_id, policy_domain, date_begin, date_end, \
                 record_count, message_count FROM reports \
                 WHERE $1::text IS NULL OR policy_domain = $1 ORDER BY date_begin DESC, id DESC",
                &[&domain],
            )
            .map_err(q("list reports"))?
        {
            out.push(ReportRow {
                kind: ReportKind::Aggregate,
                id: r.get(0),
                org: r.get(1),
                report_id: r.get(2),
                domain: r.get(3),
                begin: rfc3339_secs(r.get(4)),
                end: rfc3339_secs(r.get(5)),
                records: r.get(6),
                messages: r.get(7),
            });
        }
        for row in tls_rows(&mut c, None)? {
            if domain.is_none_or(|d| d == row.domain) {
                out.push(row);
            }
        }
        for r in c
            .query(
                "SELECT id, coalesce(reporter, ''), fingerprint, reported_domain, \
                 coalesce(arrival_date, '') FROM failure_reports \
                 WHERE $1::text IS NULL OR reported_domain = $1 ORDER BY id DESC",
                &[&domain],
            )
            .map_err(q("list failure reports"))?
        {
            let date: String = r.get(4);
            out.push(ReportRow {
                kind: ReportKind::Failure,
                id: r.get(0),
                org: r.get(1),
                report_id: r.get(2),
                domain: r.get(3),
                begin: rfc3339_text(&date),
                end: rfc3339_text(&date),
                records: 1,
                messages: 1,
            });
        }
        Ok(out)
    }

    pub(super) fn show_aggregate(&self, id: i64) -> Result<Option<ReportDetail>, PgError> {
        let mut c = self.client();
        let Some(r) = c
            .query_opt(
                "SELECT r.org_name, r.report_id, r.policy_domain, r.date_begin, r.date_end, \
                 r.record_count, r.message_count, r.email, r.extra_contact_info, r.version, \
                 r.namespace, r.generator, r.errors, r.warnings, r.extensions, r.origin, \
                 p.adkim, p.aspf, p.p, p.sp, p.np, p.pct, p.fo, p.testing, p.discovery_method \
                 FROM reports r LEFT JOIN policy_published p ON p.report_id = r.id WHERE r.id = $1",
                &[&id],
            )
            .map_err(q("show report"))?
        else {
            return Ok(None);
        };
        let row = ReportRow {
            kind: ReportKind::Aggregate,
            id,
            org: r.get(0),
            report_id: r.get(1),
            domain: r.get(2),
            begin: rfc3339_secs(r.get(3)),
            end: rfc3339_secs(r.get(4)),
            records: r.get(5),
            messages: r.get(6),
        };
        let details = ReportDetails::Aggregate(AggregateDetails {
            email: r.get(7),
            extra_contact_info: r.get(8),
            version: r.get(9),
            namespace: r.get(10),
            generator: r.get(11),
            errors: opt_json(r.get(12)),
            warnings: opt_json(r.get(13)),
            extensions: opt_json(r.get(14)),
            origin: r.get(15),
            policy_published: PolicyPublished {
                adkim: r.get(16),
                aspf: r.get(17),
                p: r.get(18),
                sp: r.get(19),
                np: r.get(20),
                pct: r.get(21),
                fo: r.get(22),
                testing: r.get(23),
                discovery_method: r.get(24),
            },
        });
        let records = c
            .query(
                "SELECT source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, \
                 envelope_from, envelope_to, reasons, dkim_results, spf_results \
                 FROM records WHERE report_id = $1 ORDER BY id",
                &[&id],
            )
            .map_err(q("show records"))?
            .into_iter()
            .map(|r| RecordRow {
                source_ip: r.get(0),
                count: r.get(1),
                disposition: r.get(2),
                dkim_aligned: r.get(3),
                spf_aligned: r.get(4),
                header_from: r.get(5),
                envelope_from: r.get(6),
                envelope_to: r.get(7),
                reasons: opt_json(r.get(8)),
                dkim_results: opt_json(r.get(9)),
                spf_results: opt_json(r.get(10)),
            })
            .collect();
        Ok(Some(ReportDetail {
            row,
            details,
            records,
        }))
    }

    pub(super) fn show_tls(&self, id: i64) -> Result<Option<ReportDetail>, PgError> {
        let mut c = self.client();
        let Some(row) = tls_rows(&mut c, Some(id))?.pop() else {
            return Ok(None);
        };
        let policies = c
            .query(
                "SELECT p.id, p.policy_type, p.policy_domain, p.policy_string, p.mx_host, \
                 p.successful_count, p.failure_count FROM tls_policies p \
                 WHERE p.tls_report_id = $1 ORDER BY p.id",
                &[&id],
            )
            .map_err(q("show TLS policies"))?;
        let failures = c
            .prepare(
                "SELECT result_type, sending_mta_ip, receiving_mx_hostname, receiving_ip, \
                 failed_session_count, failure_reason_code FROM tls_failures \
                 WHERE tls_policy_id = $1 ORDER BY id",
            )
            .map_err(q("show TLS failures"))?;
        let mut out = Vec::with_capacity(policies.len());
        for r in policies {
            let pid: i64 = r.get(0);
            let mut policy = TlsPolicyDetail {
                policy_type: r.get(1),
                policy_domain: r.get(2),
                policy_string: opt_json(r.get(3)),
                mx_host: opt_json(r.get(4)),
                successful: r.get(5),
                failed: r.get(6),
                failure_details: Vec::new(),
            };
            let details: Vec<TlsFailureDetail> = c
                .query(&failures, &[&pid])
                .map_err(q("show TLS failures"))?
                .into_iter()
                .map(|f| TlsFailureDetail {
                    result_type: f.get(0),
                    sending_mta_ip: f.get(1),
                    receiving_mx_hostname: f.get(2),
                    receiving_ip: f.get(3),
                    failed_session_count: f.get(4),
                    failure_reason_code: f.get(5),
                })
                .collect();
            policy.failure_details = details;
            out.push(policy);
        }
        Ok(Some(ReportDetail {
            row,
            details: ReportDetails::Tls(TlsDetails { policies: out }),
            records: Vec::new(),
        }))
    }

    pub(super) fn show_failure(&self, id: i64) -> Result<Option<ReportDetail>, PgError> {
        let Some(r) = self
            .client()
            .query_opt(
                "SELECT coalesce(reporter, ''), fingerprint, reported_domain, \
                 coalesce(arrival_date, ''), feedback_type, user_agent, source_ip, \
                 original_mail_from, authentication_results, dkim_domain, spf_dns, \
                 original_subject, original_headers, from_text FROM failure_reports WHERE id = $1",
                &[&id],
            )
            .map_err(q("show failure report"))?
        else {
            return Ok(None);
        };
        let date: String = r.get(3);
        Ok(Some(ReportDetail {
            row: ReportRow {
                kind: ReportKind::Failure,
                id,
                org: r.get(0),
                report_id: r.get(1),
                domain: r.get(2),
                begin: rfc3339_text(&date),
                end: rfc3339_text(&date),
                records: 1,
                messages: 1,
            },
            details: ReportDetails::Failure(FailureDetails {
                feedback_type: r.get(4),
                user_agent: r.get(5),
                source_ip: r.get(6),
                original_mail_from: r.get(7),
                authentication_results: opt_json(r.get(8)),
                dkim_domain: r.get(9),
                spf_dns: r.get(10),
                original_subject: r.get(11),
                original_headers: r.get(12),
                from_text: r.get(13),
            }),
            records: Vec::new(),
        }))
    }
}

impl ChecklistQueries for PgStore {
    fn aggregate_days(&self, domain: &str, since: i64) -> Result<i64, StoreError> {
        Ok(self
            .client()
            .query_one(
                "SELECT count(DISTINCT date_begin / 86400) FROM reports \
                 WHERE policy_domain = $1 AND date_begin >= $2",
                &[&domain, &since],
            )
            .map(|r| r.get(0))
            .map_err(q("checklist aggregate days"))?)
    }

    fn volume(&self, domain: &str, since: i64) -> Result<Volume, StoreError> {
        Ok(self
            .client()
            .query_one(
                concat!(
                    "SELECT coalesce(",
                    pg_sum!("r.count"),
                    ", 0), coalesce(",
                    pg_sum!(
                        "CASE WHEN r.dkim_aligned = 'pass' OR r.spf_aligned = 'pass' THEN r.count ELSE 0 END"
                    ),
                    ", 0) FROM records r JOIN reports p ON p.id = r.report_id \
                 WHERE p.policy_domain = $1 AND p.date_begin >= $2"
                ),
                &[&domain, &since],
            )
            .map(|r| Volume {
                messages: r.get(0),
                dmarc_pass: r.get(1),
            })
            .map_err(q("checklist volume"))?)
    }

    fn failing_sources(
        &self,
        domain: &str,
        since: i64,
        limit: usize,
    ) -> Result<Vec<FailingSource>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .query(
                concat!(
                    "SELECT r.source_ip, ",
                    pg_sum!("r.count"),
                    ", string_agg(DISTINCT r.spf_domain, ','), \
                 string_agg(DISTINCT r.dkim_domain, ','), string_agg(DISTINCT r.dkim_selector, ',') \
                 FROM records r JOIN reports p ON p.id = r.report_id \
                 WHERE p.policy_domain = $1 AND p.date_begin >= $2 \
                 AND coalesce(r.dkim_aligned, '') <> 'pass' AND coalesce(r.spf_aligned, '') <> 'pass' \
                 GROUP BY r.source_ip ORDER BY 2 DESC, r.source_ip LIMIT $3"
                ),
                &[&domain, &since, &limit],
            )
            .map_err(q("checklist failing sources"))?;
        Ok(rows
            .into_iter()
            .map(|r| FailingSource {
                source_ip: r.get(0),
                messages: r.get(1),
                spf_domains: split_set(r.get(2)),
                dkim_domains: split_set(r.get(3)),
                dkim_selectors: split_set(r.get(4)),
            })
            .collect())
    }
}
