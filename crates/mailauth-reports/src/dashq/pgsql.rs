//! The PostgreSQL side of the dashboard queries: each query's SQL, the
//! cell conversions, the rollup refresh, and [`DashboardQueries`] for
//! [`PgStore`]. The row shaping is the parent's, shared with SQLite.
//!
//! Partition pruning: `reports`, `records` and `policy_published` are
//! partitioned by month of `date_begin` (`pgstore::schema`). Every query
//! bounded by time states its bounds on each of those tables it reads (a
//! record's `date_begin` is its report's), so PostgreSQL reads only the
//! months asked for. The bounds are `($2 IS NULL OR … >= $2)`; the client
//! binds parameters to an unnamed statement, which PostgreSQL plans with
//! their values, so the `IS NULL` folds away and the planner prunes.
//! Checked with `EXPLAIN` (auto_explain) of `reports summary --domain
//! a.test --since 2026-10-01` on ten months: the sources query scans
//! `records_p2026_10`, `records_p2026_11` and the empty upper edge, and the
//! same months of `reports` by their index. The rollup refresh folds in
//! the reports above the last folded id: it first reads their earliest and
//! latest `date_begin` (by the id index of each month) and bounds the fill
//! with them, so a refresh after new reports reads only their months; a
//! rebuild reads every month. A removal (`remove_reports`) reads the
//! removed reports' records within their months in the same way.

use postgres::types::{FromSql, ToSql, Type};

use super::*;
use crate::reports::pgstore::{PgStore, pg_get};

fn pg_sql(q: DashQuery) -> &'static str {
    match q {
        DashQuery::Daily => {
            "SELECT domain, day, messages, dmarc_pass, spf_aligned, dkim_aligned, \
             disp_none, quarantine, reject FROM dashboard_daily_v1 \
             WHERE ($1::text IS NULL OR domain = $1) \
             AND ($2::bigint IS NULL OR day >= $2 / 86400) \
             AND ($3::bigint IS NULL OR day < ($3 + 86399) / 86400) \
             ORDER BY domain COLLATE \"C\", day"
        }
        DashQuery::DailySource => {
            // The rollup's sums (ROLLUP_FILL_PG) and day bounds (Daily).
            concat!(
                "SELECT r.policy_domain, r.date_begin / 86400 AS day, ",
                pg_sum!("c.count"),
                ", ",
                pg_sum!(count_case!(dmarc_pass)),
                ", ",
                pg_sum!(count_case!(spf_aligned)),
                ", ",
                pg_sum!(count_case!(dkim_aligned)),
                ", ",
                pg_sum!(
                    "CASE WHEN c.disposition IN ('quarantine', 'reject') THEN 0 ELSE c.count END"
                ),
                ", ",
                pg_sum!("CASE WHEN c.disposition = 'quarantine' THEN c.count ELSE 0 END"),
                ", ",
                pg_sum!("CASE WHEN c.disposition = 'reject' THEN c.count ELSE 0 END"),
                " FROM records c JOIN reports r ON r.id = c.report_id AND r.date_begin = c.date_begin \
             WHERE ($1::text IS NULL OR r.policy_domain = $1) \
             AND ($2::bigint IS NULL OR r.date_begin / 86400 >= $2 / 86400) \
             AND ($3::bigint IS NULL OR r.date_begin / 86400 < ($3 + 86399) / 86400) \
             AND ($2::bigint IS NULL OR $2 < 86400 OR c.date_begin >= $2 / 86400 * 86400) \
             AND ($3::bigint IS NULL OR ($3 + 86399) / 86400 < 1 \
                  OR c.date_begin < ($3 + 86399) / 86400 * 86400) \
             AND c.source_ip = $4::text \
             GROUP BY 1, 2 ORDER BY r.policy_domain COLLATE \"C\", 2"
            )
        }
        DashQuery::ReportersSource => {
            concat!(
                "SELECT r.org_name, count(DISTINCT r.id), ",
                pg_sum!("c.count"),
                ", min(r.date_begin), max(r.date_end) \
             FROM records c JOIN reports r ON r.id = c.report_id AND r.date_begin = c.date_begin \
             WHERE ($1::text IS NULL OR r.policy_domain = $1) \
             AND ($2::bigint IS NULL OR r.date_begin >= $2) AND ($3::bigint IS NULL OR r.date_begin < $3) \
             AND ($2::bigint IS NULL OR c.date_begin >= $2) AND ($3::bigint IS NULL OR c.date_begin < $3) \
             AND c.source_ip = $4::text \
             GROUP BY r.org_name ORDER BY 3 DESC, r.org_name COLLATE \"C\""
            )
        }
        DashQuery::Sources => {
            concat!(
                "SELECT r.policy_domain, c.source_ip, ",
                pg_sum!("c.count"),
                ", ",
                pg_sum!(count_case!(dmarc_pass)),
                ", ",
                pg_sum!(count_case!(spf_aligned)),
                ", ",
                pg_sum!(count_case!(dkim_aligned)),
                ", ",
                pg_sum!(count_case!(forwarded)),
                ", ",
                // RFC 8617 §7.2: receivers note a passing ARC chain in the
                // override comment (`arc=pass`, Google and Microsoft).
                pg_sum!(count_case!(arc_pass, "ILIKE")),
                ", \
               string_agg(DISTINCT r.org_name || chr(31), ','), \
               string_agg(DISTINCT CASE WHEN c.dkim_result = 'pass' THEN \
                   c.dkim_domain || coalesce('/' || c.dkim_selector, '') || chr(31) END, ','), \
               string_agg(DISTINCT CASE WHEN c.spf_domain IS NOT NULL THEN \
                   c.spf_domain || '=' || coalesce(c.spf_result, '?') || chr(31) END, ','), ",
                // The messages failing DMARC, last (`dash_sources_split`).
                pg_sum!(count_case!(failing)),
                " FROM records c JOIN reports r ON r.id = c.report_id AND r.date_begin = c.date_begin \
             WHERE ($1::text IS NULL OR r.policy_domain = $1) \
             AND ($2::bigint IS NULL OR r.date_begin >= $2) AND ($3::bigint IS NULL OR r.date_begin < $3) \
             AND ($2::bigint IS NULL OR c.date_begin >= $2) AND ($3::bigint IS NULL OR c.date_begin < $3) \
             AND ($4::text IS NULL OR c.source_ip = $4) \
             GROUP BY r.policy_domain, c.source_ip \
             HAVING $5::bigint = 0 OR ",
                pg_sum!(count_case!(failing)),
                " > 0 ORDER BY CASE WHEN $5::bigint = 0 THEN ",
                pg_sum!("c.count"),
                " ELSE ",
                pg_sum!(count_case!(failing)),
                " END DESC, \
               c.source_ip COLLATE \"C\", r.policy_domain COLLATE \"C\" \
             LIMIT $6::bigint"
            )
        }
        DashQuery::SourcesRollup => {
            // The columns of Sources, from the source rollup (no time
            // bound: $2 and $3 are NULL). Lists (the keys of the
            // rollup's objects) as Sources writes them.
            "SELECT domain, source_ip, messages, dmarc_pass, spf_aligned, dkim_aligned, \
               forwarded_reason, arc_pass, \
               (SELECT string_agg(v || chr(31), ',') FROM jsonb_object_keys(reporters) v), \
               (SELECT string_agg(v || chr(31), ',') FROM jsonb_object_keys(dkim_signers) v), \
               (SELECT string_agg(v || chr(31), ',') FROM jsonb_object_keys(spf_reported) v), \
               failing \
             FROM dashboard_sources_v1 \
             WHERE ($1::text IS NULL OR domain = $1) AND $2::bigint IS NULL AND $3::bigint IS NULL \
             AND ($4::text IS NULL OR source_ip = $4) AND ($5::bigint = 0 OR failing > 0) \
             ORDER BY CASE WHEN $5::bigint = 0 THEN messages ELSE failing END DESC, \
               source_ip COLLATE \"C\", domain COLLATE \"C\" \
             LIMIT $6::bigint"
        }
        DashQuery::PolicyRollup => {
            concat!(
                "SELECT domain, p, pct, disposition, reasons, ",
                pg_sum!("messages"),
                " FROM dashboard_policy_v1 \
             WHERE ($1::text IS NULL OR domain = $1) AND $2::bigint IS NULL AND $3::bigint IS NULL \
             AND $4::text IS NULL \
             GROUP BY 1, 2, 3, 4, 5 \
             ORDER BY domain COLLATE \"C\", 6 DESC, p COLLATE \"C\" NULLS FIRST, \
               pct NULLS FIRST, disposition COLLATE \"C\", reasons COLLATE \"C\" \
             LIMIT 200"
            )
        }
        DashQuery::ReportersRollup => {
            // The columns of Reporters, from the reporter rollup (no time
            // bound: $2 and $3 are NULL).
            concat!(
                "SELECT org_name, ",
                pg_sum!("reports"),
                ", ",
                pg_sum!("messages"),
                ", min(first_begin), max(last_end) FROM dashboard_reporters_v1 \
             WHERE ($1::text IS NULL OR domain = $1) AND $2::bigint IS NULL AND $3::bigint IS NULL \
             GROUP BY org_name ORDER BY 3 DESC, org_name COLLATE \"C\""
            )
        }
        DashQuery::Reporters => {
            concat!(
                "SELECT org_name, count(*), ",
                pg_sum!("message_count"),
                ", min(date_begin), max(date_end) \
             FROM reports r \
             WHERE ($1::text IS NULL OR r.policy_domain = $1) \
             AND ($2::bigint IS NULL OR r.date_begin >= $2) AND ($3::bigint IS NULL OR r.date_begin < $3) \
             GROUP BY org_name ORDER BY 3 DESC, org_name COLLATE \"C\""
            )
        }
        DashQuery::Policy => {
            concat!(
                "SELECT r.policy_domain, p.p, p.pct, c.disposition, c.reasons, ",
                pg_sum!("c.count"),
                " FROM records c JOIN reports r ON r.id = c.report_id AND r.date_begin = c.date_begin \
             LEFT JOIN policy_published p ON p.report_id = r.id AND p.date_begin = r.date_begin \
               AND ($2::bigint IS NULL OR p.date_begin >= $2) AND ($3::bigint IS NULL OR p.date_begin < $3) \
             WHERE ($1::text IS NULL OR r.policy_domain = $1) \
             AND ($2::bigint IS NULL OR r.date_begin >= $2) AND ($3::bigint IS NULL OR r.date_begin < $3) \
             AND ($2::bigint IS NULL OR c.date_begin >= $2) AND ($3::bigint IS NULL OR c.date_begin < $3) \
             AND ($4::text IS NULL OR c.source_ip = $4) \
             GROUP BY 1, 2, 3, 4, 5 \
             ORDER BY r.policy_domain COLLATE \"C\", 6 DESC, p.p COLLATE \"C\" NULLS FIRST, \
               p.pct NULLS FIRST, c.disposition COLLATE \"C\", c.reasons COLLATE \"C\" \
             LIMIT 200"
            )
        }
        DashQuery::Tls => {
            concat!(
                "SELECT p.policy_domain, p.policy_type, ",
                pg_sum!("p.successful_count"),
                ", ",
                pg_sum!("p.failure_count"),
                ", count(DISTINCT t.id), \
               (SELECT string_agg(x.result_type || chr(30) || x.n::text, chr(31)) FROM \
                 (SELECT f.result_type, ",
                pg_sum!("f.failed_session_count"),
                " AS n FROM tls_failures f \
                  JOIN tls_policies p2 ON p2.id = f.tls_policy_id \
                  JOIN tls_reports t2 ON t2.id = p2.tls_report_id \
                  WHERE p2.policy_domain = p.policy_domain AND p2.policy_type = p.policy_type \
                  AND ($2::text IS NULL OR t2.date_begin COLLATE \"C\" >= $2) \
                  AND ($3::text IS NULL OR t2.date_begin COLLATE \"C\" < $3) \
                  GROUP BY f.result_type) x) \
             FROM tls_policies p JOIN tls_reports t ON t.id = p.tls_report_id \
             WHERE ($1::text IS NULL OR p.policy_domain = $1) \
             AND ($2::text IS NULL OR t.date_begin COLLATE \"C\" >= $2) \
             AND ($3::text IS NULL OR t.date_begin COLLATE \"C\" < $3) \
             GROUP BY 1, 2 ORDER BY p.policy_domain COLLATE \"C\", p.policy_type COLLATE \"C\""
            )
        }
        DashQuery::Failures => {
            "SELECT id, reported_domain, reporter, arrival_date, source_ip, auth_failure, \
             original_mail_from, dkim_domain, original_subject, original_headers FROM failure_reports \
             WHERE ($1::text IS NULL OR reported_domain = $1) AND ($2::text IS NULL OR source_ip = $2) \
             ORDER BY id DESC LIMIT $3::bigint"
        }
        DashQuery::Domains => {
            "SELECT d FROM (SELECT policy_domain AS d FROM reports \
             UNION SELECT reported_domain FROM failure_reports \
             UNION SELECT policy_domain FROM tls_policies) u ORDER BY d COLLATE \"C\""
        }
        DashQuery::AlertGet => "SELECT fired_at FROM alerts_fired_v1 WHERE key = $1::text",
        DashQuery::AlertPut => {
            "INSERT INTO alerts_fired_v1 (key, rule, fired_at) VALUES ($1::text, $2::text, $3::bigint) ON CONFLICT (key) DO NOTHING RETURNING key"
        }
        DashQuery::PtrGet => "SELECT name, looked_up_at FROM ptr_cache_v1 WHERE ip = $1::text",
        DashQuery::PtrPut => {
            "INSERT INTO ptr_cache_v1 (ip, name, looked_up_at) VALUES ($1::text, $2::text, $3::bigint) \
             ON CONFLICT (ip) DO UPDATE SET name = excluded.name, \
             looked_up_at = excluded.looked_up_at RETURNING ip"
        }
    }
}

/// The cells of one row, each read with `try_get` in the Rust type of
/// its column's type: a column of a type no query reads (a store altered
/// by hand) is an error naming it, never a panic.
pub(crate) fn pg_cells(what: &'static str, row: &postgres::Row) -> Result<Vec<Cell>, StoreError> {
    fn get<'a, T: FromSql<'a>>(
        what: &'static str,
        row: &'a postgres::Row,
        i: usize,
    ) -> Result<Option<T>, StoreError> {
        pg_get(row, what, i)
    }
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let ty = col.type_();
        let cell = if *ty == Type::INT8 {
            get::<i64>(what, row, i)?.map(Cell::Int)
        } else if *ty == Type::INT4 {
            get::<i32>(what, row, i)?.map(|n| Cell::Int(n.into()))
        } else if *ty == Type::INT2 {
            get::<i16>(what, row, i)?.map(|n| Cell::Int(n.into()))
        } else if *ty == Type::BOOL {
            get::<bool>(what, row, i)?.map(|b| Cell::Int(b.into()))
        } else if *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::NAME {
            get::<String>(what, row, i)?.map(Cell::Text)
        } else {
            return Err(StoreError::Column {
                what,
                column: col.name().to_owned(),
                problem: format!("has the PostgreSQL type {ty}, which no query reads"),
            });
        };
        out.push(cell.unwrap_or(Cell::Null));
    }
    Ok(out)
}

/// Saturating sums (see [`pg_sum!`]), as on SQLite.
const ROLLUP_FILL_PG: &str = concat!(
    "INSERT INTO dashboard_daily_v1 AS d (domain, day, messages, \
    dmarc_pass, spf_aligned, dkim_aligned, disp_none, quarantine, reject, records) \
 SELECT r.policy_domain, r.date_begin / 86400, ",
    daily_sums!(pg_sum),
    // $2 and $3 bound the `date_begin` of the reports folded in, on both
    // partitioned tables, so that PostgreSQL reads only their months.
    " FROM records c JOIN reports r ON r.id = c.report_id AND r.date_begin = c.date_begin \
 WHERE r.id > $1 \
 AND r.date_begin >= $2 AND r.date_begin <= $3 AND c.date_begin >= $2 AND c.date_begin <= $3 \
 GROUP BY 1, 2 \
 ON CONFLICT (domain, day) DO UPDATE SET records = d.records + excluded.records, messages = ",
    pg_add!("d.messages", "excluded.messages"),
    ", dmarc_pass = ",
    pg_add!("d.dmarc_pass", "excluded.dmarc_pass"),
    ", spf_aligned = ",
    pg_add!("d.spf_aligned", "excluded.spf_aligned"),
    ", dkim_aligned = ",
    pg_add!("d.dkim_aligned", "excluded.dkim_aligned"),
    ", disp_none = ",
    pg_add!("d.disp_none", "excluded.disp_none"),
    ", quarantine = ",
    pg_add!("d.quarantine", "excluded.quarantine"),
    ", reject = ",
    pg_add!("d.reject", "excluded.reject"),
);

/// The rows of the source rollup for the records of `$from`, as on SQLite
/// (`sources_groups_sqlite!`), the lists as JSONB objects.
macro_rules! sources_groups_pg {
    ($from:literal) => {
        concat!(
            source_sums!($from, pg_sum, "ILIKE"),
            "lists AS (SELECT domain, source_ip, \
               coalesce(jsonb_object_agg(v, n) FILTER (WHERE k = 1), '{}') AS reporters, \
               coalesce(jsonb_object_agg(v, n) FILTER (WHERE k = 2), '{}') AS dkim_signers, \
               coalesce(jsonb_object_agg(v, n) FILTER (WHERE k = 3), '{}') AS spf_reported \
               FROM vals GROUP BY 1, 2) \
             SELECT s.domain, s.source_ip, s.messages, s.dmarc_pass, s.spf_aligned, \
               s.dkim_aligned, s.forwarded_reason, s.arc_pass, s.failing, s.records, \
               l.reporters, l.dkim_signers, l.spf_reported \
             FROM sums s JOIN lists l ON l.domain = s.domain AND l.source_ip = s.source_ip"
        )
    };
}

/// The counts of each value of the JSONB objects `$old` and `$new` (each
/// times `$sign`) added, values reaching 0 left out.
macro_rules! pg_merge {
    ($old:literal, $new:literal, $sign:literal) => {
        concat!(
            "(SELECT coalesce(jsonb_object_agg(key, n), '{}') FROM \
               (SELECT key, sum(n) AS n FROM (SELECT key, value::bigint AS n FROM jsonb_each_text(",
            $old,
            ") UNION ALL SELECT key, ",
            $sign,
            "value::bigint FROM jsonb_each_text(",
            $new,
            ")) u GROUP BY key HAVING sum(n) > 0) m)"
        )
    };
}

/// The source rollup, as on SQLite (`ROLLUP_SOURCES_SQLITE`); bounded by
/// `date_begin` as [`ROLLUP_FILL_PG`].
const ROLLUP_SOURCES_PG: &str = concat!(
    "INSERT INTO dashboard_sources_v1 AS d (domain, source_ip, messages, dmarc_pass, \
    spf_aligned, dkim_aligned, forwarded_reason, arc_pass, failing, records, \
    reporters, dkim_signers, spf_reported) ",
    sources_groups_pg!(
        "records c JOIN reports r ON r.id = c.report_id AND r.date_begin = c.date_begin \
         WHERE r.id > $1 \
         AND r.date_begin >= $2 AND r.date_begin <= $3 AND c.date_begin >= $2 AND c.date_begin <= $3"
    ),
    " ON CONFLICT (domain, source_ip) DO UPDATE SET messages = ",
    pg_add!("d.messages", "excluded.messages"),
    ", dmarc_pass = ",
    pg_add!("d.dmarc_pass", "excluded.dmarc_pass"),
    ", spf_aligned = ",
    pg_add!("d.spf_aligned", "excluded.spf_aligned"),
    ", dkim_aligned = ",
    pg_add!("d.dkim_aligned", "excluded.dkim_aligned"),
    ", forwarded_reason = ",
    pg_add!("d.forwarded_reason", "excluded.forwarded_reason"),
    ", arc_pass = ",
    pg_add!("d.arc_pass", "excluded.arc_pass"),
    ", failing = ",
    pg_add!("d.failing", "excluded.failing"),
    ", records = d.records + excluded.records, reporters = ",
    pg_merge!("d.reporters", "excluded.reporters", ""),
    ", dkim_signers = ",
    pg_merge!("d.dkim_signers", "excluded.dkim_signers", ""),
    ", spf_reported = ",
    pg_merge!("d.spf_reported", "excluded.spf_reported", ""),
);

/// Subtracts the removed records from the source rollup, as on SQLite.
const FORGET_SOURCES_PG: &str = concat!(
    "UPDATE dashboard_sources_v1 AS d SET messages = d.messages - g.messages, \
   dmarc_pass = d.dmarc_pass - g.dmarc_pass, spf_aligned = d.spf_aligned - g.spf_aligned, \
   dkim_aligned = d.dkim_aligned - g.dkim_aligned, \
   forwarded_reason = d.forwarded_reason - g.forwarded_reason, \
   arc_pass = d.arc_pass - g.arc_pass, failing = d.failing - g.failing, \
   records = d.records - g.records, reporters = ",
    pg_merge!("d.reporters", "g.reporters", "-"),
    ", dkim_signers = ",
    pg_merge!("d.dkim_signers", "g.dkim_signers", "-"),
    ", spf_reported = ",
    pg_merge!("d.spf_reported", "g.spf_reported", "-"),
    " FROM (",
    sources_groups_pg!(
        "rollup_gone x JOIN reports r ON r.id = x.id AND r.date_begin = x.date_begin \
         AND r.date_begin >= $1 AND r.date_begin <= $2 \
         JOIN records c ON c.report_id = r.id AND c.date_begin = r.date_begin \
         AND c.date_begin >= $1 AND c.date_begin <= $2"
    ),
    ") AS g WHERE d.domain = g.domain AND d.source_ip = g.source_ip"
);

/// The policy rollup, as on SQLite (`ROLLUP_POLICY_SQLITE`): one row per
/// group, upserted; bounded by `date_begin` as [`ROLLUP_FILL_PG`].
const ROLLUP_POLICY_PG: &str = concat!(
    "INSERT INTO dashboard_policy_v1 AS d (domain, p, pct, disposition, reasons, messages, records) \
 SELECT r.policy_domain, p.p, p.pct, c.disposition, c.reasons, ",
    pg_sum!("c.count"),
    ", count(*) FROM records c JOIN reports r ON r.id = c.report_id AND r.date_begin = c.date_begin \
 LEFT JOIN policy_published p ON p.report_id = r.id AND p.date_begin = r.date_begin \
   AND p.date_begin >= $2 AND p.date_begin <= $3 \
 WHERE r.id > $1 \
 AND r.date_begin >= $2 AND r.date_begin <= $3 AND c.date_begin >= $2 AND c.date_begin <= $3 \
 GROUP BY 1, 2, 3, 4, 5 \
 ON CONFLICT (domain, (p IS NULL), (coalesce(p, '')), (pct IS NULL), (coalesce(pct, 0)), \
   disposition, reasons) DO UPDATE SET records = d.records + excluded.records, messages = ",
    pg_add!("d.messages", "excluded.messages"),
);

/// The reporter rollup, as on SQLite (`ROLLUP_REPORTERS_SQLITE`), bounded
/// by `date_begin` as [`ROLLUP_FILL_PG`].
const ROLLUP_REPORTERS_PG: &str = concat!(
    "INSERT INTO dashboard_reporters_v1 AS d (domain, org_name, reports, messages, \
    first_begin, last_end) \
 SELECT policy_domain, org_name, count(*), ",
    pg_sum!("message_count"),
    ", min(date_begin), max(date_end) FROM reports r \
 WHERE r.id > $1 AND r.date_begin >= $2 AND r.date_begin <= $3 \
 GROUP BY 1, 2 \
 ON CONFLICT (domain, org_name) DO UPDATE SET reports = d.reports + excluded.reports, \
   messages = ",
    pg_add!("d.messages", "excluded.messages"),
    ", first_begin = least(d.first_begin, excluded.first_begin), \
   last_end = greatest(d.last_end, excluded.last_end)",
);

/// The records of the reports being removed (`rollup_gone`, folded in
/// already), bounded by their months ($1, $2) so that PostgreSQL reads
/// only those partitions.
macro_rules! gone_records_pg {
    () => {
        "rollup_gone x JOIN reports r ON r.id = x.id AND r.date_begin = x.date_begin \
         AND r.date_begin >= $1 AND r.date_begin <= $2 \
         JOIN records c ON c.report_id = r.id AND c.date_begin = r.date_begin \
         AND c.date_begin >= $1 AND c.date_begin <= $2"
    };
}

/// Subtracts the removed records from the daily rollup.
const FORGET_DAILY_PG: &str = concat!(
    "UPDATE dashboard_daily_v1 AS d SET messages = d.messages - g.messages, \
   dmarc_pass = d.dmarc_pass - g.dmarc_pass, spf_aligned = d.spf_aligned - g.spf_aligned, \
   dkim_aligned = d.dkim_aligned - g.dkim_aligned, disp_none = d.disp_none - g.disp_none, \
   quarantine = d.quarantine - g.quarantine, reject = d.reject - g.reject, \
   records = d.records - g.records \
 FROM (SELECT r.policy_domain AS domain, r.date_begin / 86400 AS day, ",
    daily_sums!(pg_sum),
    " FROM ",
    gone_records_pg!(),
    " GROUP BY 1, 2) AS g \
 WHERE d.domain = g.domain AND d.day = g.day"
);

/// Subtracts the removed records from the policy rollup.
const FORGET_POLICY_PG: &str = concat!(
    "UPDATE dashboard_policy_v1 AS d SET messages = d.messages - g.messages, \
   records = d.records - g.records \
 FROM (SELECT r.policy_domain AS domain, p.p AS p, p.pct AS pct, c.disposition AS disposition, \
   c.reasons AS reasons, ",
    pg_sum!("c.count"),
    " AS messages, count(*) AS records FROM ",
    gone_records_pg!(),
    " LEFT JOIN policy_published p ON p.report_id = r.id AND p.date_begin = r.date_begin \
   AND p.date_begin >= $1 AND p.date_begin <= $2 \
   GROUP BY 1, 2, 3, 4, 5) AS g \
 WHERE d.domain = g.domain AND d.p IS NOT DISTINCT FROM g.p \
 AND d.pct IS NOT DISTINCT FROM g.pct \
 AND d.disposition = g.disposition AND d.reasons = g.reasons"
);

/// Takes the advisory lock of the rollup refresh for the rest of the
/// transaction `tx`, which is about to remove reports: taken before any
/// table lock, in the order a refresh takes them, so that neither waits
/// for the other in a cycle.
pub(crate) fn lock_rollup(tx: &mut postgres::Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ROLLUP_LOCK])
        .map_err(|source| StoreError::PgQuery {
            what: "lock rollup",
            source,
        })?;
    Ok(())
}

/// As on SQLite (`dashq::sqlite::remove_reports`, which says what is
/// kept and how): in the transaction `tx` that removes the reports
/// (holding [`lock_rollup`]), `delete` removing their rows.
pub(crate) fn remove_reports(
    tx: &mut postgres::Transaction<'_>,
    gone: &Gone<'_>,
    delete: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let q = |what: &'static str| move |source| StoreError::PgQuery { what, source };
    let pair =
        |what, r: &postgres::Row| Ok::<_, StoreError>((pg_get(r, what, 0)?, pg_get(r, what, 1)?));
    let saved: Option<(i64, i64)> = tx
        .query_opt(
            "SELECT max_report, reports FROM dashboard_rollup_v1 WHERE one = 1",
            &[],
        )
        .map_err(q("read rollup state"))?
        .map(|r| pair("read rollup state", &r))
        .transpose()?;
    let Some((max, n)) = saved else {
        return delete(tx);
    };
    let r = tx
        .query_one("SELECT count(*) FROM reports WHERE id <= $1", &[&max])
        .map_err(q("read report ids"))?;
    let folded: i64 = pg_get(&r, "read report ids", 0)?;
    tx.batch_execute(
        "CREATE TEMP TABLE rollup_gone (id BIGINT PRIMARY KEY, date_begin BIGINT NOT NULL) \
           ON COMMIT DROP; \
         CREATE TEMP TABLE rollup_touched_reporters (domain TEXT NOT NULL, \
           org_name TEXT NOT NULL, PRIMARY KEY (domain, org_name)) ON COMMIT DROP;",
    )
    .map_err(q("prepare rollup removal"))?;
    match gone {
        Gone::Before(cutoff) => tx.execute(
            "INSERT INTO rollup_gone SELECT id, date_begin FROM reports \
             WHERE date_begin < $1 AND id <= $2",
            &[cutoff, &max],
        ),
        Gone::Ids(ids) => tx.execute(
            "INSERT INTO rollup_gone SELECT id, date_begin FROM reports \
             WHERE id = ANY($1) AND id <= $2 ON CONFLICT DO NOTHING",
            &[ids, &max],
        ),
    }
    .map_err(q("list removed reports"))?;
    let r = tx
        .query_one(
            "SELECT coalesce(min(date_begin), 0), coalesce(max(date_begin), -1) FROM rollup_gone",
            &[],
        )
        .map_err(q("read report dates"))?;
    let (first, last): (i64, i64) = pair("read report dates", &r)?;
    const BOUNDS: &str = "IN (9223372036854775807, -9223372036854775808)";
    let r = tx
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM dashboard_daily_v1 WHERE messages {BOUNDS} \
                 OR dmarc_pass {BOUNDS} OR spf_aligned {BOUNDS} OR dkim_aligned {BOUNDS} \
                 OR disp_none {BOUNDS} OR quarantine {BOUNDS} OR reject {BOUNDS}) \
                 OR EXISTS (SELECT 1 FROM dashboard_policy_v1 WHERE messages {BOUNDS}) \
                 OR EXISTS (SELECT 1 FROM dashboard_sources_v1 WHERE messages {BOUNDS} \
                 OR dmarc_pass {BOUNDS} OR spf_aligned {BOUNDS} OR dkim_aligned {BOUNDS} \
                 OR forwarded_reason {BOUNDS} OR arc_pass {BOUNDS} OR failing {BOUNDS}) \
                 OR EXISTS (SELECT 1 FROM {} WHERE c.count < 0)",
                gone_records_pg!()
            ),
            &[&first, &last],
        )
        .map_err(q("read rollup sums"))?;
    let saturated: bool = pg_get(&r, "read rollup sums", 0)?;
    if folded != n || saturated {
        tx.execute("DELETE FROM dashboard_rollup_v1", &[])
            .map_err(q("reset rollup"))?;
        return delete(tx);
    }
    tx.execute(FORGET_DAILY_PG, &[&first, &last])
        .map_err(q("subtract from rollup"))?;
    tx.execute(FORGET_POLICY_PG, &[&first, &last])
        .map_err(q("subtract from policy rollup"))?;
    tx.execute(FORGET_SOURCES_PG, &[&first, &last])
        .map_err(q("subtract from source rollup"))?;
    tx.batch_execute(
        "DELETE FROM dashboard_daily_v1 WHERE records = 0; \
         DELETE FROM dashboard_policy_v1 WHERE records = 0; \
         DELETE FROM dashboard_sources_v1 WHERE records = 0; \
         INSERT INTO rollup_touched_reporters SELECT DISTINCT r.policy_domain, r.org_name \
           FROM rollup_gone x JOIN reports r ON r.id = x.id AND r.date_begin = x.date_begin; \
         DELETE FROM dashboard_reporters_v1 WHERE (domain, org_name) IN \
           (SELECT domain, org_name FROM rollup_touched_reporters);",
    )
    .map_err(q("subtract from rollup"))?;
    delete(tx)?;
    // The touched reporter rows again, from the reports kept that were
    // folded in (their first and last times cannot be subtracted).
    tx.execute(
        &ROLLUP_REPORTERS_PG.replace(
            "WHERE r.id > $1",
            "WHERE r.id <= $1 AND (r.policy_domain, r.org_name) IN \
               (SELECT domain, org_name FROM rollup_touched_reporters)",
        ),
        &[&max, &i64::MIN, &i64::MAX],
    )
    .map_err(q("fill reporter rollup"))?;
    tx.execute(
        "INSERT INTO dashboard_rollup_v1 (one, max_report, reports) \
         SELECT 1, coalesce(max(id), 0), count(*) FROM reports WHERE id <= $1 \
         ON CONFLICT (one) DO UPDATE SET max_report = excluded.max_report, \
           reports = excluded.reports",
        &[&max],
    )
    .map_err(q("save rollup state"))?;
    tx.batch_execute("DROP TABLE rollup_gone; DROP TABLE rollup_touched_reporters;")
        .map_err(q("end rollup removal"))?;
    Ok(())
}

/// Key of the advisory lock that serialises rollup refreshes between
/// dashboard processes sharing one database.
const ROLLUP_LOCK: i64 = 0x6d61_6461_7368_7275; // "madashru"

fn pg_refresh(c: &mut postgres::Client) -> Result<i64, StoreError> {
    let q = |what: &'static str| move |source| StoreError::PgQuery { what, source };
    // REPEATABLE READ: every statement sees the same reports, so the state
    // saved matches exactly what was folded in, while workers go on
    // committing. The advisory lock is taken before the snapshot, so a
    // refresh waiting for another one sees what that one saved.
    let mut tx = c
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .map_err(q("begin rollup"))?;
    let pair =
        |what, r: &postgres::Row| Ok::<_, StoreError>((pg_get(r, what, 0)?, pg_get(r, what, 1)?));
    let now: (i64, i64) = pair(
        "read report ids",
        &tx.query_one(
            "SELECT coalesce(max(id), 0)::bigint, count(*) FROM reports",
            &[],
        )
        .map_err(q("read report ids"))?,
    )?;
    let saved: Option<(i64, i64)> = tx
        .query_opt(
            "SELECT max_report, reports FROM dashboard_rollup_v1 WHERE one = 1",
            &[],
        )
        .map_err(q("read rollup state"))?
        .map(|r| pair("read rollup state", &r))
        .transpose()?;
    let step = rollup_step(now, saved, |max| {
        let r = tx
            .query_one("SELECT count(*) FROM reports WHERE id <= $1", &[&max])
            .map_err(q("read report ids"))?;
        pg_get::<i64>(&r, "read report ids", 0)
    })?;
    let (after, before) = match step {
        RollupStep::Current => return Ok(0),
        RollupStep::Fold { after, before } => (after, before),
        RollupStep::Rebuild => {
            tx.batch_execute(
                "DELETE FROM dashboard_daily_v1; DELETE FROM dashboard_sources_v1; \
                 DELETE FROM dashboard_policy_v1; DELETE FROM dashboard_reporters_v1;",
            )
            .map_err(q("clear rollup"))?;
            (i64::MIN, 0)
        }
    };
    // The months of the reports to fold in: a fold of new reports reads
    // only their partitions, a rebuild every one.
    let r = tx
        .query_one(
            "SELECT min(date_begin), max(date_begin) FROM reports WHERE id > $1",
            &[&after],
        )
        .map_err(q("read report dates"))?;
    let first: Option<i64> = pg_get(&r, "read report dates", 0)?;
    let last: Option<i64> = pg_get(&r, "read report dates", 1)?;
    if let (Some(first), Some(last)) = (first, last) {
        tx.execute(ROLLUP_FILL_PG, &[&after, &first, &last])
            .map_err(q("fill rollup"))?;
        tx.execute(ROLLUP_SOURCES_PG, &[&after, &first, &last])
            .map_err(q("fill source rollup"))?;
        tx.execute(ROLLUP_POLICY_PG, &[&after, &first, &last])
            .map_err(q("fill policy rollup"))?;
        tx.execute(ROLLUP_REPORTERS_PG, &[&after, &first, &last])
            .map_err(q("fill reporter rollup"))?;
    }
    tx.execute(
        "INSERT INTO dashboard_rollup_v1 (one, max_report, reports) VALUES (1, $1, $2) \
         ON CONFLICT (one) DO UPDATE SET max_report = $1, reports = $2",
        &[&now.0, &now.1],
    )
    .map_err(q("save rollup state"))?;
    tx.commit().map_err(q("commit rollup"))?;
    Ok(now.1 - before)
}

impl DashboardQueries for PgStore {
    fn dash_rows(&self, q: DashQuery, args: &[Arg]) -> Result<Vec<Vec<Cell>>, StoreError> {
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| match a {
                Arg::Text(t) => t as &(dyn ToSql + Sync),
                Arg::Int(n) => n as &(dyn ToSql + Sync),
            })
            .collect();
        let rows =
            self.client()
                .query(pg_sql(q), &params)
                .map_err(|source| StoreError::PgQuery {
                    what: q.what(),
                    source,
                })?;
        rows.iter().map(|r| pg_cells(q.what(), r)).collect()
    }

    fn refresh_rollup(&mut self) -> Result<i64, StoreError> {
        let c = self.client_mut();
        c.execute("SELECT pg_advisory_lock($1)", &[&ROLLUP_LOCK])
            .map_err(|source| StoreError::PgQuery {
                what: "lock rollup",
                source,
            })?;
        let result = pg_refresh(c);
        let unlocked = c
            .execute("SELECT pg_advisory_unlock($1)", &[&ROLLUP_LOCK])
            .map_err(|source| StoreError::PgQuery {
                what: "unlock rollup",
                source,
            });
        let n = result?;
        unlocked?;
        Ok(n)
    }
}
