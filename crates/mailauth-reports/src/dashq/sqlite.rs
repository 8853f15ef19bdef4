//! The SQLite side of the dashboard queries: each query's SQL, the value
//! and cell conversions, and [`DashboardQueries`] for [`SqliteStore`]
//! (rollup refresh included). The row shaping is the parent's, shared with
//! PostgreSQL.

use rusqlite::OptionalExtension;

use super::*;
use crate::reports::store::SqliteStore;

fn sqlite_sql(q: DashQuery) -> &'static str {
    match q {
        DashQuery::Daily => {
            "SELECT domain, day, messages, dmarc_pass, spf_aligned, dkim_aligned, \
             disp_none, quarantine, reject FROM dashboard_daily_v1 \
             WHERE (?1 IS NULL OR domain = ?1) \
             AND (?2 IS NULL OR day >= ?2 / 86400) AND (?3 IS NULL OR day < (?3 + 86399) / 86400) \
             ORDER BY domain, day"
        }
        DashQuery::DailySource => {
            // The rollup's sums (ROLLUP_FILL_SQLITE) and day bounds (Daily).
            concat!(
                "SELECT r.policy_domain, r.date_begin / 86400 AS day, ",
                sqlite_sum!("c.count"),
                ", ",
                sqlite_sum!(count_case!(dmarc_pass)),
                ", ",
                sqlite_sum!(count_case!(spf_aligned)),
                ", ",
                sqlite_sum!(count_case!(dkim_aligned)),
                ", ",
                sqlite_sum!(
                    "CASE WHEN c.disposition IN ('quarantine', 'reject') THEN 0 ELSE c.count END"
                ),
                ", ",
                sqlite_sum!("CASE WHEN c.disposition = 'quarantine' THEN c.count ELSE 0 END"),
                ", ",
                sqlite_sum!("CASE WHEN c.disposition = 'reject' THEN c.count ELSE 0 END"),
                " FROM records c JOIN reports r ON r.id = c.report_id \
             WHERE (?1 IS NULL OR r.policy_domain = ?1) \
             AND (?2 IS NULL OR r.date_begin / 86400 >= ?2 / 86400) \
             AND (?3 IS NULL OR r.date_begin / 86400 < (?3 + 86399) / 86400) \
             AND c.source_ip = ?4 \
             GROUP BY 1, 2 ORDER BY 1, 2"
            )
        }
        DashQuery::ReportersSource => {
            concat!(
                "SELECT r.org_name, count(DISTINCT r.id), ",
                sqlite_sum!("c.count"),
                ", min(r.date_begin), max(r.date_end) \
             FROM records c JOIN reports r ON r.id = c.report_id \
             WHERE (?1 IS NULL OR r.policy_domain = ?1) \
             AND (?2 IS NULL OR r.date_begin >= ?2) AND (?3 IS NULL OR r.date_begin < ?3) \
             AND c.source_ip = ?4 \
             GROUP BY r.org_name ORDER BY 3 DESC, 1"
            )
        }
        DashQuery::Sources => {
            concat!(
                "SELECT r.policy_domain, c.source_ip, ",
                sqlite_sum!("c.count"),
                " AS n, ",
                sqlite_sum!(count_case!(dmarc_pass)),
                " AS ok, ",
                sqlite_sum!(count_case!(spf_aligned)),
                ", ",
                sqlite_sum!(count_case!(dkim_aligned)),
                ", ",
                sqlite_sum!(count_case!(forwarded)),
                ", ",
                // RFC 8617 §7.2: receivers note a passing ARC chain in the
                // override comment (`arc=pass`, Google and Microsoft).
                sqlite_sum!(count_case!(arc_pass, "LIKE")),
                ", \
               group_concat(DISTINCT r.org_name || char(31)), \
               group_concat(DISTINCT CASE WHEN c.dkim_result = 'pass' THEN \
                   c.dkim_domain || coalesce('/' || c.dkim_selector, '') || char(31) END), \
               group_concat(DISTINCT CASE WHEN c.spf_domain IS NOT NULL THEN \
                   c.spf_domain || '=' || coalesce(c.spf_result, '?') || char(31) END), ",
                // The messages failing DMARC, last (`dash_sources_split`).
                sqlite_sum!(count_case!(failing)),
                " FROM records c JOIN reports r ON r.id = c.report_id \
             WHERE (?1 IS NULL OR r.policy_domain = ?1) \
             AND (?2 IS NULL OR r.date_begin >= ?2) AND (?3 IS NULL OR r.date_begin < ?3) \
             AND (?4 IS NULL OR c.source_ip = ?4) \
             GROUP BY r.policy_domain, c.source_ip \
             HAVING ?5 = 0 OR ",
                sqlite_sum!(count_case!(failing)),
                " > 0 ORDER BY CASE WHEN ?5 = 0 THEN n ELSE ",
                sqlite_sum!(count_case!(failing)),
                " END DESC, c.source_ip, r.policy_domain \
             LIMIT ?6"
            )
        }
        DashQuery::SourcesRollup => {
            // The columns of Sources, from the source rollup (no time
            // bound: ?2 and ?3 are NULL). Lists (the values of the
            // rollup's objects) as Sources writes them.
            "SELECT domain, source_ip, messages, dmarc_pass, spf_aligned, dkim_aligned, \
               forwarded_reason, arc_pass, \
               (SELECT group_concat(key || char(31)) FROM json_each(reporters)), \
               (SELECT group_concat(key || char(31)) FROM json_each(dkim_signers)), \
               (SELECT group_concat(key || char(31)) FROM json_each(spf_reported)), \
               failing \
             FROM dashboard_sources_v1 \
             WHERE (?1 IS NULL OR domain = ?1) AND ?2 IS NULL AND ?3 IS NULL \
             AND (?4 IS NULL OR source_ip = ?4) AND (?5 = 0 OR failing > 0) \
             ORDER BY CASE WHEN ?5 = 0 THEN messages ELSE failing END DESC, source_ip, domain \
             LIMIT ?6"
        }
        DashQuery::PolicyRollup => {
            concat!(
                "SELECT domain, p, pct, disposition, reasons, ",
                sqlite_sum!("messages"),
                " FROM dashboard_policy_v1 \
             WHERE (?1 IS NULL OR domain = ?1) AND ?2 IS NULL AND ?3 IS NULL AND ?4 IS NULL \
             GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 6 DESC, 2, 3, 4, 5 LIMIT 200"
            )
        }
        DashQuery::ReportersRollup => {
            // The columns of Reporters, from the reporter rollup (no time
            // bound: ?2 and ?3 are NULL).
            concat!(
                "SELECT org_name, ",
                sqlite_sum!("reports"),
                ", ",
                sqlite_sum!("messages"),
                ", min(first_begin), max(last_end) FROM dashboard_reporters_v1 \
             WHERE (?1 IS NULL OR domain = ?1) AND ?2 IS NULL AND ?3 IS NULL \
             GROUP BY org_name ORDER BY 3 DESC, 1"
            )
        }
        DashQuery::Reporters => {
            concat!(
                "SELECT org_name, count(*), ",
                sqlite_sum!("message_count"),
                ", min(date_begin), max(date_end) \
             FROM reports r \
             WHERE (?1 IS NULL OR r.policy_domain = ?1) \
             AND (?2 IS NULL OR r.date_begin >= ?2) AND (?3 IS NULL OR r.date_begin < ?3) \
             GROUP BY org_name ORDER BY 3 DESC, 1"
            )
        }
        DashQuery::Policy => {
            concat!(
                "SELECT r.policy_domain, p.p, p.pct, c.disposition, c.reasons, ",
                sqlite_sum!("c.count"),
                " FROM records c JOIN reports r ON r.id = c.report_id \
             LEFT JOIN policy_published p ON p.report_id = r.id \
             WHERE (?1 IS NULL OR r.policy_domain = ?1) \
             AND (?2 IS NULL OR r.date_begin >= ?2) AND (?3 IS NULL OR r.date_begin < ?3) \
             AND (?4 IS NULL OR c.source_ip = ?4) \
             GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 6 DESC, 2, 3, 4, 5 LIMIT 200"
            )
        }
        DashQuery::Tls => {
            concat!(
                "SELECT p.policy_domain, p.policy_type, ",
                sqlite_sum!("p.successful_count"),
                ", ",
                sqlite_sum!("p.failure_count"),
                ", count(DISTINCT t.id), \
               (SELECT group_concat(x.result_type || char(30) || x.n, char(31)) FROM \
                 (SELECT f.result_type, ",
                sqlite_sum!("f.failed_session_count"),
                " AS n FROM tls_failures f \
                  JOIN tls_policies p2 ON p2.id = f.tls_policy_id \
                  JOIN tls_reports t2 ON t2.id = p2.tls_report_id \
                  WHERE p2.policy_domain = p.policy_domain AND p2.policy_type = p.policy_type \
                  AND (?2 IS NULL OR t2.date_begin >= ?2) AND (?3 IS NULL OR t2.date_begin < ?3) \
                  GROUP BY f.result_type) x) \
             FROM tls_policies p JOIN tls_reports t ON t.id = p.tls_report_id \
             WHERE (?1 IS NULL OR p.policy_domain = ?1) \
             AND (?2 IS NULL OR t.date_begin >= ?2) AND (?3 IS NULL OR t.date_begin < ?3) \
             GROUP BY 1, 2 ORDER BY 1, 2"
            )
        }
        DashQuery::Failures => {
            "SELECT id, reported_domain, reporter, arrival_date, source_ip, auth_failure, \
             original_mail_from, dkim_domain, original_subject, original_headers FROM failure_reports \
             WHERE (?1 IS NULL OR reported_domain = ?1) AND (?2 IS NULL OR source_ip = ?2) \
             ORDER BY id DESC LIMIT ?3"
        }
        DashQuery::Domains => {
            "SELECT DISTINCT policy_domain FROM reports \
             UNION SELECT reported_domain FROM failure_reports \
             UNION SELECT policy_domain FROM tls_policies ORDER BY 1"
        }
        DashQuery::AlertGet => "SELECT fired_at FROM alerts_fired_v1 WHERE key = ?1",
        DashQuery::AlertPut => {
            "INSERT INTO alerts_fired_v1 (key, rule, fired_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO NOTHING RETURNING key"
        }
        DashQuery::PtrGet => "SELECT name, looked_up_at FROM ptr_cache_v1 WHERE ip = ?1",
        DashQuery::PtrPut => {
            "INSERT INTO ptr_cache_v1 (ip, name, looked_up_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (ip) DO UPDATE SET name = excluded.name, \
             looked_up_at = excluded.looked_up_at RETURNING ip"
        }
    }
}

/// `(?1 IS NULL OR x = ?1)` keeps SQLite from using an index on `x`: with
/// a domain given, the condition is written plainly instead.
fn by_domain(sql: &'static str, domain_given: bool) -> std::borrow::Cow<'static, str> {
    if domain_given {
        sql.replace(
            "(?1 IS NULL OR r.policy_domain = ?1)",
            "r.policy_domain = ?1",
        )
        .replace(
            "(?1 IS NULL OR p.policy_domain = ?1)",
            "p.policy_domain = ?1",
        )
        .replace(
            "(?1 IS NULL OR reported_domain = ?1)",
            "reported_domain = ?1",
        )
        .replace("(?1 IS NULL OR domain = ?1)", "domain = ?1")
        .into()
    } else {
        sql.into()
    }
}

pub(crate) fn sqlite_value(a: &Arg) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match a {
        Arg::Text(Some(s)) => Value::Text(s.clone()),
        Arg::Int(Some(n)) => Value::Integer(*n),
        Arg::Text(None) | Arg::Int(None) => Value::Null,
    }
}

pub(crate) fn sqlite_cell(v: rusqlite::types::ValueRef<'_>) -> Cell {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(n) => Cell::Int(n),
        // sum() of integers stays an integer; a real here is a bug
        // upstream, and its integer part is the least surprising value.
        ValueRef::Real(f) => Cell::Int(f as i64),
        ValueRef::Text(b) | ValueRef::Blob(b) => {
            Cell::Text(String::from_utf8_lossy(b).into_owned())
        }
    }
}

/// Saturating sums (see [`sqlite_sum!`]): a store holding absurd counts
/// (written before ingest refused them) still gets a rollup.
const ROLLUP_FILL_SQLITE: &str = concat!(
    "INSERT INTO dashboard_daily_v1 (domain, day, messages, \
    dmarc_pass, spf_aligned, dkim_aligned, disp_none, quarantine, reject, records) \
 SELECT r.policy_domain, r.date_begin / 86400, ",
    daily_sums!(sqlite_sum),
    " FROM records c JOIN reports r ON r.id = c.report_id \
 WHERE r.id > ?1 \
 GROUP BY 1, 2 \
 ON CONFLICT (domain, day) DO UPDATE SET records = records + excluded.records, messages = ",
    sqlite_add!("messages", "excluded.messages"),
    ", dmarc_pass = ",
    sqlite_add!("dmarc_pass", "excluded.dmarc_pass"),
    ", spf_aligned = ",
    sqlite_add!("spf_aligned", "excluded.spf_aligned"),
    ", dkim_aligned = ",
    sqlite_add!("dkim_aligned", "excluded.dkim_aligned"),
    ", disp_none = ",
    sqlite_add!("disp_none", "excluded.disp_none"),
    ", quarantine = ",
    sqlite_add!("quarantine", "excluded.quarantine"),
    ", reject = ",
    sqlite_add!("reject", "excluded.reject"),
);

/// The rows of the source rollup for the records of `$from` (a `FROM`
/// and `WHERE` text naming `records c` and `reports r`): the sums of
/// Sources per domain and source IP, the number of records, and its three
/// lists as JSON objects of each distinct value and the number of records
/// giving it (missing values left out, as `group_concat` skips them), so
/// that removed records are subtracted from a list as from a sum.
macro_rules! sources_groups_sqlite {
    ($from:literal) => {
        concat!(
            source_sums!($from, sqlite_sum, "LIKE"),
            "lists AS (SELECT domain, source_ip, \
               json_group_object(v, n) FILTER (WHERE k = 1) AS reporters, \
               json_group_object(v, n) FILTER (WHERE k = 2) AS dkim_signers, \
               json_group_object(v, n) FILTER (WHERE k = 3) AS spf_reported \
               FROM vals GROUP BY 1, 2) \
             SELECT s.domain, s.source_ip, s.messages, s.dmarc_pass, s.spf_aligned, \
               s.dkim_aligned, s.forwarded_reason, s.arc_pass, s.failing, s.records, \
               l.reporters, l.dkim_signers, l.spf_reported \
             FROM sums s JOIN lists l ON l.domain = s.domain AND l.source_ip = s.source_ip"
        )
    };
}

/// The counts of each value of the JSON objects `$old` and `$new` (each
/// times `$sign`) added, values reaching 0 left out.
macro_rules! sqlite_merge {
    ($old:literal, $new:literal, $sign:literal) => {
        concat!(
            "(SELECT coalesce(json_group_object(key, n), '{}') FROM \
               (SELECT key, sum(value) AS n FROM (SELECT key, value FROM json_each(",
            $old,
            ") UNION ALL SELECT key, ",
            $sign,
            "value FROM json_each(",
            $new,
            ")) GROUP BY key HAVING sum(value) > 0))"
        )
    };
}

/// The source rollup: a source seen again adds its sums and the counts of
/// its lists' values.
const ROLLUP_SOURCES_SQLITE: &str = concat!(
    "INSERT INTO dashboard_sources_v1 (domain, source_ip, messages, dmarc_pass, \
    spf_aligned, dkim_aligned, forwarded_reason, arc_pass, failing, records, \
    reporters, dkim_signers, spf_reported) SELECT * FROM (",
    sources_groups_sqlite!("records c JOIN reports r ON r.id = c.report_id WHERE r.id > ?1"),
    ") WHERE true \
 ON CONFLICT (domain, source_ip) DO UPDATE SET messages = ",
    sqlite_add!("messages", "excluded.messages"),
    ", dmarc_pass = ",
    sqlite_add!("dmarc_pass", "excluded.dmarc_pass"),
    ", spf_aligned = ",
    sqlite_add!("spf_aligned", "excluded.spf_aligned"),
    ", dkim_aligned = ",
    sqlite_add!("dkim_aligned", "excluded.dkim_aligned"),
    ", forwarded_reason = ",
    sqlite_add!("forwarded_reason", "excluded.forwarded_reason"),
    ", arc_pass = ",
    sqlite_add!("arc_pass", "excluded.arc_pass"),
    ", failing = ",
    sqlite_add!("failing", "excluded.failing"),
    ", records = records + excluded.records, reporters = ",
    sqlite_merge!("dashboard_sources_v1.reporters", "excluded.reporters", ""),
    ", dkim_signers = ",
    sqlite_merge!(
        "dashboard_sources_v1.dkim_signers",
        "excluded.dkim_signers",
        ""
    ),
    ", spf_reported = ",
    sqlite_merge!(
        "dashboard_sources_v1.spf_reported",
        "excluded.spf_reported",
        ""
    ),
);

/// Subtracts the removed records from the source rollup: sums, record
/// counts and the counts of each list value.
const FORGET_SOURCES_SQLITE: &str = concat!(
    "UPDATE dashboard_sources_v1 AS d SET messages = d.messages - g.messages, \
   dmarc_pass = d.dmarc_pass - g.dmarc_pass, spf_aligned = d.spf_aligned - g.spf_aligned, \
   dkim_aligned = d.dkim_aligned - g.dkim_aligned, \
   forwarded_reason = d.forwarded_reason - g.forwarded_reason, \
   arc_pass = d.arc_pass - g.arc_pass, failing = d.failing - g.failing, \
   records = d.records - g.records, reporters = ",
    sqlite_merge!("d.reporters", "g.reporters", "-"),
    ", dkim_signers = ",
    sqlite_merge!("d.dkim_signers", "g.dkim_signers", "-"),
    ", spf_reported = ",
    sqlite_merge!("d.spf_reported", "g.spf_reported", "-"),
    " FROM (",
    sources_groups_sqlite!(
        "temp.rollup_gone x JOIN reports r ON r.id = x.id JOIN records c ON c.report_id = r.id"
    ),
    ") AS g WHERE d.domain = g.domain AND d.source_ip = g.source_ip"
);

/// The policy rollup: one row per Policy group (the unique index
/// `dashboard_policy_v1_group` tells a missing `p` or `pct` apart from
/// any value), the messages and records of the reports folded in added.
const ROLLUP_POLICY_SQLITE: &str = concat!(
    "INSERT INTO dashboard_policy_v1 (domain, p, pct, disposition, reasons, messages, records) \
 SELECT r.policy_domain, p.p, p.pct, c.disposition, c.reasons, ",
    sqlite_sum!("c.count"),
    ", count(*) FROM records c JOIN reports r ON r.id = c.report_id \
 LEFT JOIN policy_published p ON p.report_id = r.id \
 WHERE r.id > ?1 \
 GROUP BY 1, 2, 3, 4, 5 \
 ON CONFLICT (domain, p IS NULL, coalesce(p, ''), pct IS NULL, coalesce(pct, 0), \
   disposition, reasons) DO UPDATE SET records = records + excluded.records, messages = ",
    sqlite_add!("messages", "excluded.messages"),
);

/// The reporter rollup: the Reporters sums per domain and reporter.
const ROLLUP_REPORTERS_SQLITE: &str = concat!(
    "INSERT INTO dashboard_reporters_v1 (domain, org_name, reports, messages, \
    first_begin, last_end) \
 SELECT policy_domain, org_name, count(*), ",
    sqlite_sum!("message_count"),
    ", min(date_begin), max(date_end) FROM reports r \
 WHERE r.id > ?1 \
 GROUP BY 1, 2 \
 ON CONFLICT (domain, org_name) DO UPDATE SET reports = reports + excluded.reports, \
   messages = ",
    sqlite_add!("messages", "excluded.messages"),
    ", first_begin = min(first_begin, excluded.first_begin), \
   last_end = max(last_end, excluded.last_end)",
);

/// The records of the reports being removed (`temp.rollup_gone`, folded
/// in already), for the subtractions below.
const GONE_RECORDS_SQLITE: &str = "temp.rollup_gone x JOIN reports r ON r.id = x.id \
     JOIN records c ON c.report_id = r.id";

/// Subtracts the removed records from the daily rollup.
const FORGET_DAILY_SQLITE: &str = concat!(
    "UPDATE dashboard_daily_v1 AS d SET messages = d.messages - g.messages, \
   dmarc_pass = d.dmarc_pass - g.dmarc_pass, spf_aligned = d.spf_aligned - g.spf_aligned, \
   dkim_aligned = d.dkim_aligned - g.dkim_aligned, disp_none = d.disp_none - g.disp_none, \
   quarantine = d.quarantine - g.quarantine, reject = d.reject - g.reject, \
   records = d.records - g.records \
 FROM (SELECT r.policy_domain AS domain, r.date_begin / 86400 AS day, ",
    daily_sums!(sqlite_sum),
    " FROM temp.rollup_gone x JOIN reports r ON r.id = x.id \
   JOIN records c ON c.report_id = r.id GROUP BY 1, 2) AS g \
 WHERE d.domain = g.domain AND d.day = g.day"
);

/// Subtracts the removed records from the policy rollup.
const FORGET_POLICY_SQLITE: &str = concat!(
    "UPDATE dashboard_policy_v1 AS d SET messages = d.messages - g.messages, \
   records = d.records - g.records \
 FROM (SELECT r.policy_domain AS domain, p.p AS p, p.pct AS pct, c.disposition AS disposition, \
   c.reasons AS reasons, ",
    sqlite_sum!("c.count"),
    " AS messages, count(*) AS records FROM temp.rollup_gone x JOIN reports r ON r.id = x.id \
   JOIN records c ON c.report_id = r.id LEFT JOIN policy_published p ON p.report_id = r.id \
   GROUP BY 1, 2, 3, 4, 5) AS g \
 WHERE d.domain = g.domain AND d.p IS g.p AND d.pct IS g.pct \
 AND d.disposition = g.disposition AND d.reasons = g.reasons"
);

/// Keeps the rollups true while aggregate reports are removed, in the
/// transaction `tx` that removes them (`reports prune`, `reports delete`,
/// `reports::store`): `delete` removes the reports' rows. Only reports
/// folded in already (id at most the state's highest) are taken out of
/// the rollups; newer ones are folded in by the next refresh as before.
/// The daily, policy and source rollups get the removed records' sums,
/// record counts and (sources) counts of each list value subtracted: a
/// row whose last record goes is removed, as the records' query would not
/// show it, and a list value whose last record goes leaves its list. The
/// reporter rows the removed reports touched are summed again from the
/// reports kept (a first or last time cannot be subtracted). The state
/// then holds the highest id and count of the reports kept at or below
/// it, so the next refresh finds the rollups current, or folds in what is
/// newer. Without a state (no refresh yet, or one pending rebuild) there
/// is nothing to keep; a rollup that no longer matches its state, or
/// holds a saturated sum (which subtraction cannot undo), is left to a
/// rebuild.
pub(crate) fn remove_reports(
    tx: &rusqlite::Transaction<'_>,
    gone: &Gone<'_>,
    delete: impl FnOnce() -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let q = |what: &'static str| move |source| StoreError::Query { what, source };
    let saved: Option<(i64, i64)> = tx
        .query_row(
            "SELECT max_report, reports FROM dashboard_rollup_v1 WHERE one = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(q("read rollup state"))?;
    let Some((max, n)) = saved else {
        return delete();
    };
    let folded: i64 = tx
        .query_row("SELECT count(*) FROM reports WHERE id <= ?1", [max], |r| {
            r.get(0)
        })
        .map_err(q("read report ids"))?;
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS rollup_gone (id INTEGER PRIMARY KEY); \
         CREATE TEMP TABLE IF NOT EXISTS rollup_touched_reporters (domain TEXT NOT NULL, \
           org_name TEXT NOT NULL, PRIMARY KEY (domain, org_name)) WITHOUT ROWID; \
         DELETE FROM temp.rollup_gone; \
         DELETE FROM temp.rollup_touched_reporters;",
    )
    .map_err(q("prepare rollup removal"))?;
    match gone {
        Gone::Before(cutoff) => tx.execute(
            "INSERT INTO temp.rollup_gone SELECT id FROM reports WHERE date_begin < ?1 AND id <= ?2",
            [*cutoff, max],
        ),
        Gone::Ids(ids) => tx.execute(
            "INSERT OR IGNORE INTO temp.rollup_gone SELECT id FROM reports \
             WHERE id IN (SELECT value FROM json_each(?1)) AND id <= ?2",
            rusqlite::params![serde_json::to_string(ids).unwrap_or_default(), max],
        ),
    }
    .map_err(q("list removed reports"))?;
    const BOUNDS: &str = "IN (9223372036854775807, -9223372036854775808)";
    let saturated: bool = tx
        .query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM dashboard_daily_v1 WHERE messages {BOUNDS} \
                 OR dmarc_pass {BOUNDS} OR spf_aligned {BOUNDS} OR dkim_aligned {BOUNDS} \
                 OR disp_none {BOUNDS} OR quarantine {BOUNDS} OR reject {BOUNDS}) \
                 OR EXISTS (SELECT 1 FROM dashboard_policy_v1 WHERE messages {BOUNDS}) \
                 OR EXISTS (SELECT 1 FROM dashboard_sources_v1 WHERE messages {BOUNDS} \
                 OR dmarc_pass {BOUNDS} OR spf_aligned {BOUNDS} OR dkim_aligned {BOUNDS} \
                 OR forwarded_reason {BOUNDS} OR arc_pass {BOUNDS} OR failing {BOUNDS}) \
                 OR EXISTS (SELECT 1 FROM {GONE_RECORDS_SQLITE} WHERE c.count < 0)"
            ),
            [],
            |r| r.get(0),
        )
        .map_err(q("read rollup sums"))?;
    if folded != n || saturated {
        tx.execute("DELETE FROM dashboard_rollup_v1", [])
            .map_err(q("reset rollup"))?;
        return delete();
    }
    tx.execute(FORGET_DAILY_SQLITE, [])
        .map_err(q("subtract from rollup"))?;
    tx.execute(FORGET_POLICY_SQLITE, [])
        .map_err(q("subtract from policy rollup"))?;
    tx.execute(FORGET_SOURCES_SQLITE, [])
        .map_err(q("subtract from source rollup"))?;
    tx.execute_batch(
        "DELETE FROM dashboard_daily_v1 WHERE records = 0; \
         DELETE FROM dashboard_policy_v1 WHERE records = 0; \
         DELETE FROM dashboard_sources_v1 WHERE records = 0; \
         INSERT OR IGNORE INTO temp.rollup_touched_reporters \
           SELECT r.policy_domain, r.org_name FROM temp.rollup_gone x JOIN reports r ON r.id = x.id; \
         DELETE FROM dashboard_reporters_v1 WHERE (domain, org_name) IN \
           (SELECT domain, org_name FROM temp.rollup_touched_reporters);",
    )
    .map_err(q("subtract from rollup"))?;
    delete()?;
    // The touched reporter rows again, from the reports kept that were
    // folded in (their first and last times cannot be subtracted).
    tx.execute(
        &ROLLUP_REPORTERS_SQLITE.replace(
            "WHERE r.id > ?1",
            "WHERE r.id <= ?1 AND (r.policy_domain, r.org_name) IN \
               (SELECT domain, org_name FROM temp.rollup_touched_reporters)",
        ),
        [max],
    )
    .map_err(q("fill reporter rollup"))?;
    tx.execute(
        "INSERT INTO dashboard_rollup_v1 (one, max_report, reports) \
         SELECT 1, coalesce(max(id), 0), count(*) FROM reports WHERE id <= ?1 \
         ON CONFLICT (one) DO UPDATE SET max_report = excluded.max_report, \
           reports = excluded.reports",
        [max],
    )
    .map_err(q("save rollup state"))?;
    tx.execute_batch("DROP TABLE temp.rollup_gone; DROP TABLE temp.rollup_touched_reporters;")
        .map_err(q("end rollup removal"))?;
    Ok(())
}

impl DashboardQueries for SqliteStore {
    fn dash_rows(&self, q: DashQuery, args: &[Arg]) -> Result<Vec<Vec<Cell>>, StoreError> {
        let err = |source| StoreError::Query {
            what: q.what(),
            source,
        };
        let domain_given = matches!(args.first(), Some(Arg::Text(Some(_))));
        let mut stmt = self
            .conn()
            .prepare_cached(&by_domain(sqlite_sql(q), domain_given))
            .map_err(err)?;
        let n = stmt.column_count();
        let rows = stmt
            .query_map(
                rusqlite::params_from_iter(args.iter().map(sqlite_value)),
                |r| (0..n).map(|i| r.get_ref(i).map(sqlite_cell)).collect(),
            )
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    fn refresh_rollup(&mut self) -> Result<i64, StoreError> {
        let q = |what: &'static str| move |source| StoreError::Query { what, source };
        let tx = self.conn_mut().transaction().map_err(q("begin rollup"))?;
        let now: (i64, i64) = tx
            .query_row(
                "SELECT coalesce(max(id), 0), count(*) FROM reports",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(q("read report ids"))?;
        let saved: Option<(i64, i64)> = tx
            .query_row(
                "SELECT max_report, reports FROM dashboard_rollup_v1 WHERE one = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(q("read rollup state"))?;
        let step = rollup_step(now, saved, |max| {
            tx.query_row("SELECT count(*) FROM reports WHERE id <= ?1", [max], |r| {
                r.get(0)
            })
            .map_err(q("read report ids"))
        })?;
        let (after, before) = match step {
            RollupStep::Current => return Ok(0),
            RollupStep::Fold { after, before } => (after, before),
            RollupStep::Rebuild => {
                tx.execute_batch(
                    "DELETE FROM dashboard_daily_v1; DELETE FROM dashboard_sources_v1; \
                     DELETE FROM dashboard_policy_v1; DELETE FROM dashboard_reporters_v1;",
                )
                .map_err(q("clear rollup"))?;
                (i64::MIN, 0)
            }
        };
        tx.execute(ROLLUP_FILL_SQLITE, [after])
            .map_err(q("fill rollup"))?;
        tx.execute(ROLLUP_SOURCES_SQLITE, [after])
            .map_err(q("fill source rollup"))?;
        tx.execute(ROLLUP_POLICY_SQLITE, [after])
            .map_err(q("fill policy rollup"))?;
        tx.execute(ROLLUP_REPORTERS_SQLITE, [after])
            .map_err(q("fill reporter rollup"))?;
        tx.execute(
            "INSERT INTO dashboard_rollup_v1 (one, max_report, reports) VALUES (1, ?1, ?2) \
             ON CONFLICT (one) DO UPDATE SET max_report = ?1, reports = ?2",
            [now.0, now.1],
        )
        .map_err(q("save rollup state"))?;
        tx.commit().map_err(q("commit rollup"))?;
        Ok(now.1 - before)
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL. Sums of BIGINT are NUMERIC there: cast back, saturating. Text is sorted
// and compared with the "C" collation (byte order, as SQLite does) and
// NULLs first (as SQLite does), so both stores answer in the same order
// whatever the database's locale.
// ---------------------------------------------------------------------------
