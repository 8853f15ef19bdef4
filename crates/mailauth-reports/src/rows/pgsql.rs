//! The SQL of the `rows` queries for PostgreSQL, and running them. Sums
//! of BIGINT are NUMERIC there: cast back, saturating ([`pg_sum!`]).
//!
//! `reports` and `records` are partitioned by month of `date_begin`, and a
//! record carries its report's: the checklist queries state their time
//! bound on both tables (and join on `date_begin` too), so PostgreSQL
//! reads only the months asked for.

use postgres::GenericClient;
use postgres::types::ToSql;

use super::{Row, RowQuery, RowSource};
use crate::reports::dashq::pgsql::pg_cells;
use crate::reports::dashq::{Arg, pg_sum};
use crate::reports::pgstore::PgStore;
use crate::reports::store::StoreError;

/// The SQL of each query; its result columns are named as `rows` reads
/// them. Parameters are typed (a NULL needs its type here).
fn sql(q: RowQuery) -> &'static str {
    match q {
        RowQuery::ListAggregate => {
            "SELECT id, org_name, report_id, policy_domain, date_begin, date_end, \
             record_count, message_count FROM reports \
             WHERE $1::text IS NULL OR policy_domain = $1 ORDER BY date_begin DESC, id DESC"
        }
        RowQuery::ListTls => concat!(
            "SELECT t.id AS id, t.org_name AS org_name, t.report_id AS report_id, \
             coalesce((SELECT min(policy_domain) FROM tls_policies p WHERE p.tls_report_id = t.id), '') \
             AS policy_domain, t.date_begin AS date_begin, t.date_end AS date_end, \
             (SELECT count(*) FROM tls_policies p WHERE p.tls_report_id = t.id) AS policies, \
             coalesce((SELECT ",
            pg_sum!("successful_count::numeric + failure_count"),
            " FROM tls_policies p WHERE p.tls_report_id = t.id), 0)::bigint AS sessions \
             FROM tls_reports t WHERE $1::bigint IS NULL OR t.id = $1 \
             ORDER BY t.date_begin DESC, t.id DESC"
        ),
        RowQuery::ListFailure => {
            "SELECT id, coalesce(reporter, '') AS reporter, fingerprint, reported_domain, \
             coalesce(arrival_date, '') AS arrival_date FROM failure_reports \
             WHERE $1::text IS NULL OR reported_domain = $1 ORDER BY id DESC"
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
             FROM reports r LEFT JOIN policy_published p ON p.report_id = r.id \
             WHERE r.id = $1::bigint"
        }
        RowQuery::ShowRecords => {
            "SELECT source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, \
             envelope_from, envelope_to, reasons, dkim_results, spf_results \
             FROM records WHERE report_id = $1::bigint ORDER BY id"
        }
        RowQuery::ShowTlsPolicies => {
            "SELECT id, policy_type, policy_domain, policy_string, mx_host, \
             successful_count, failure_count FROM tls_policies \
             WHERE tls_report_id = $1::bigint ORDER BY id"
        }
        RowQuery::ShowTlsFailures => {
            "SELECT result_type, sending_mta_ip, receiving_mx_hostname, receiving_ip, \
             failed_session_count, failure_reason_code FROM tls_failures \
             WHERE tls_policy_id = $1::bigint ORDER BY id"
        }
        RowQuery::ShowFailure => {
            "SELECT id, coalesce(reporter, '') AS reporter, fingerprint, reported_domain, \
             coalesce(arrival_date, '') AS arrival_date, feedback_type, user_agent, source_ip, \
             original_mail_from, authentication_results, dkim_domain, spf_dns, \
             original_subject, original_headers, from_text FROM failure_reports \
             WHERE id = $1::bigint"
        }
        RowQuery::ChecklistDays => {
            "SELECT count(DISTINCT date_begin / 86400) AS days FROM reports \
             WHERE policy_domain = $1::text AND date_begin >= $2::bigint"
        }
        RowQuery::ChecklistVolume => concat!(
            "SELECT coalesce(",
            pg_sum!("r.count"),
            ", 0) AS messages, coalesce(",
            pg_sum!(
                "CASE WHEN r.dkim_aligned = 'pass' OR r.spf_aligned = 'pass' THEN r.count ELSE 0 END"
            ),
            ", 0) AS dmarc_pass FROM records r \
             JOIN reports p ON p.id = r.report_id AND p.date_begin = r.date_begin \
             WHERE p.policy_domain = $1::text AND p.date_begin >= $2::bigint \
             AND r.date_begin >= $2::bigint"
        ),
        RowQuery::ChecklistFailing => concat!(
            "SELECT r.source_ip AS source_ip, ",
            pg_sum!("r.count"),
            " AS messages, string_agg(DISTINCT r.spf_domain, ',') AS spf_domains, \
             string_agg(DISTINCT r.dkim_domain, ',') AS dkim_domains, \
             string_agg(DISTINCT r.dkim_selector, ',') AS dkim_selectors \
             FROM records r JOIN reports p ON p.id = r.report_id AND p.date_begin = r.date_begin \
             WHERE p.policy_domain = $1::text AND p.date_begin >= $2::bigint \
             AND r.date_begin >= $2::bigint \
             AND coalesce(r.dkim_aligned, '') <> 'pass' AND coalesce(r.spf_aligned, '') <> 'pass' \
             GROUP BY r.source_ip ORDER BY 2 DESC, r.source_ip LIMIT $3::bigint"
        ),
        // The domain in byte order (the "C" collation), as on SQLite.
        // The records of the reports that began before `$1` are the records
        // that began before it (a record carries its report's `date_begin`,
        // the partition key), counted once per report; both sides read only
        // the partitions before `$1`.
        RowQuery::PruneCount => {
            "SELECT r.policy_domain AS policy_domain, count(*) AS reports, \
             CAST(coalesce(sum(n.n), 0) AS BIGINT) AS records FROM reports r \
             LEFT JOIN (SELECT report_id, date_begin, count(*) AS n FROM records \
             WHERE date_begin < $1::bigint GROUP BY report_id, date_begin) n \
             ON n.report_id = r.id AND n.date_begin = r.date_begin \
             WHERE r.date_begin < $1::bigint \
             GROUP BY r.policy_domain ORDER BY r.policy_domain COLLATE \"C\""
        }
    }
}

/// Runs `q` on `c` (a client, or a transaction on it) and hands each row
/// to `f`; every cell is read with `try_get` (see `dashq::pgsql`), so a
/// column of another type is an error naming it, not a panic.
pub(crate) fn each_row(
    c: &mut impl GenericClient,
    q: RowQuery,
    args: &[Arg],
    f: &mut dyn FnMut(Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| match a {
            Arg::Text(t) => t as &(dyn ToSql + Sync),
            Arg::Int(n) => n as &(dyn ToSql + Sync),
        })
        .collect();
    let rows = c
        .query(sql(q), &params)
        .map_err(|source| StoreError::PgQuery {
            what: q.what(),
            source,
        })?;
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let names: Vec<String> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    for r in &rows {
        f(Row::new(q.what(), &names, pg_cells(q.what(), r)?))?;
    }
    Ok(())
}

impl RowSource for PgStore {
    fn each_row(
        &self,
        q: RowQuery,
        args: &[Arg],
        f: &mut dyn FnMut(Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        each_row(&mut *self.client(), q, args, f)
    }
}
