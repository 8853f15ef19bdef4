//! The SQL of the `rows` queries for SQLite, and running them.

use rusqlite::Connection;

use super::{Row, RowQuery, RowSource};
use crate::reports::dashq::sqlite::{sqlite_cell, sqlite_value};
use crate::reports::dashq::{Arg, sqlite_add, sqlite_sum};
use crate::reports::store::{SqliteStore, StoreError};

/// The SQL of each query; its result columns are named as `rows` reads
/// them. Sums of counts saturate ([`sqlite_sum!`]).
fn sql(q: RowQuery) -> &'static str {
    match q {
        RowQuery::ListAggregate => {
            "SELECT id, org_name, report_id, policy_domain, date_begin, date_end, \
             record_count, message_count FROM reports \
             WHERE ?1 IS NULL OR policy_domain = ?1 ORDER BY date_begin DESC, id DESC"
        }
        RowQuery::ListTls => concat!(
            "SELECT t.id AS id, t.org_name AS org_name, t.report_id AS report_id, \
             coalesce((SELECT min(policy_domain) FROM tls_policies p WHERE p.tls_report_id = t.id), '') \
             AS policy_domain, t.date_begin AS date_begin, t.date_end AS date_end, \
             (SELECT count(*) FROM tls_policies p WHERE p.tls_report_id = t.id) AS policies, \
             coalesce((SELECT ",
            sqlite_add!(
                sqlite_sum!("successful_count"),
                sqlite_sum!("failure_count")
            ),
            " FROM tls_policies p WHERE p.tls_report_id = t.id), 0) AS sessions \
             FROM tls_reports t WHERE ?1 IS NULL OR t.id = ?1 \
             ORDER BY t.date_begin DESC, t.id DESC",
        ),
        RowQuery::ListFailure => {
            "SELECT id, coalesce(reporter, '') AS reporter, fingerprint, reported_domain, \
             coalesce(arrival_date, '') AS arrival_date FROM failure_reports \
             WHERE ?1 IS NULL OR reported_domain = ?1 ORDER BY id DESC"
        }
        RowQuery::ShowAggregate => {
            "SELECT r.id AS id, r.org_name AS org_name, r.report_id AS report_id, \
             r.policy_domain AS policy_domain, r.date_begin AS date_begin, \
             r.date_end AS date_end, r.record_count AS record_count, \
             r.message_count AS message_count, r.email AS email, \
             r.extra_contact_info AS extra_contact_info, r.version AS version, \
             r.namespace AS namespace, r.generator AS generator, r.errors AS errors, \
             r.warnings AS warnings, r.extensions AS extensions, r.origin AS origin, \
             p.adkim AS adkim, p.aspf AS aspf, p.p AS p, p.sp AS sp, p.np AS np, p.pct AS pct, \
             p.fo AS fo, p.testing AS testing, p.discovery_method AS discovery_method \
             FROM reports r LEFT JOIN policy_published p ON p.report_id = r.id WHERE r.id = ?1"
        }
        RowQuery::ShowRecords => {
            "SELECT source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, \
             envelope_from, envelope_to, reasons, dkim_results, spf_results \
             FROM records WHERE report_id = ?1 ORDER BY id"
        }
        RowQuery::ShowTlsPolicies => {
            "SELECT id, policy_type, policy_domain, policy_string, mx_host, \
             successful_count, failure_count FROM tls_policies \
             WHERE tls_report_id = ?1 ORDER BY id"
        }
        RowQuery::ShowTlsFailures => {
            "SELECT result_type, sending_mta_ip, receiving_mx_hostname, receiving_ip, \
             failed_session_count, failure_reason_code FROM tls_failures \
             WHERE tls_policy_id = ?1 ORDER BY id"
        }
        RowQuery::ShowFailure => {
            "SELECT id, coalesce(reporter, '') AS reporter, fingerprint, reported_domain, \
             coalesce(arrival_date, '') AS arrival_date, feedback_type, user_agent, source_ip, \
             original_mail_from, authentication_results, dkim_domain, spf_dns, \
             original_subject, original_headers, from_text FROM failure_reports WHERE id = ?1"
        }
        RowQuery::ChecklistDays => {
            "SELECT count(DISTINCT date_begin / 86400) AS days FROM reports \
             WHERE policy_domain = ?1 AND date_begin >= ?2"
        }
        RowQuery::ChecklistVolume => concat!(
            "SELECT coalesce(",
            sqlite_sum!("r.count"),
            ", 0) AS messages, coalesce(",
            sqlite_sum!(
                "CASE WHEN r.dkim_aligned = 'pass' OR r.spf_aligned = 'pass' THEN r.count ELSE 0 END"
            ),
            ", 0) AS dmarc_pass FROM records r JOIN reports p ON p.id = r.report_id \
             WHERE p.policy_domain = ?1 AND p.date_begin >= ?2"
        ),
        RowQuery::ChecklistFailing => concat!(
            "SELECT r.source_ip AS source_ip, ",
            sqlite_sum!("r.count"),
            " AS messages, group_concat(DISTINCT r.spf_domain) AS spf_domains, \
             group_concat(DISTINCT r.dkim_domain) AS dkim_domains, \
             group_concat(DISTINCT r.dkim_selector) AS dkim_selectors \
             FROM records r JOIN reports p ON p.id = r.report_id \
             WHERE p.policy_domain = ?1 AND p.date_begin >= ?2 \
             AND coalesce(r.dkim_aligned, '') <> 'pass' AND coalesce(r.spf_aligned, '') <> 'pass' \
             GROUP BY r.source_ip ORDER BY messages DESC, r.source_ip LIMIT ?3"
        ),
        RowQuery::PruneCount => {
            "SELECT r.policy_domain AS policy_domain, count(*) AS reports, \
             CAST(sum((SELECT count(*) FROM records c WHERE c.report_id = r.id)) AS BIGINT) \
             AS records FROM reports r WHERE r.date_begin < ?1 \
             GROUP BY r.policy_domain ORDER BY r.policy_domain"
        }
    }
}

/// Runs `q` on `conn` (a store's connection, or a transaction on it) and
/// hands each row to `f`.
pub(crate) fn each_row(
    conn: &Connection,
    q: RowQuery,
    args: &[Arg],
    f: &mut dyn FnMut(Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let err = |source| StoreError::Query {
        what: q.what(),
        source,
    };
    let mut stmt = conn.prepare_cached(sql(q)).map_err(err)?;
    let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args.iter().map(sqlite_value)))
        .map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let cells = (0..names.len())
            .map(|i| r.get_ref(i).map(sqlite_cell))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        f(Row::new(q.what(), &names, cells))?;
    }
    Ok(())
}

impl RowSource for SqliteStore {
    fn each_row(
        &self,
        q: RowQuery,
        args: &[Arg],
        f: &mut dyn FnMut(Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        each_row(self.conn(), q, args, f)
    }
}
