//! The dashboard read queries, for both report stores: the
//! [`DashboardQueries`] trait, the row types the dashboards consume, the
//! Rust-side shaping of result rows (written once); the SQL of each query
//! and the store glue per dialect, the only part that differs, are in
//! `sqlite` and `pgsql`.
//!
//! Every sum of counts saturates at the bounds of a 64-bit integer on both
//! stores ([`sqlite_sum!`], [`pg_sum!`], also used by the list and
//! checklist queries): a store holding absurd counts (written before
//! ingest refused them) still answers.
//!
//! Everything here is read-only on the report tables. It writes the
//! reverse DNS cache (`ptr_cache_v1`: one answer per source IP with the
//! time it was looked up, so `--offline` runs can still name sources) and
//! the rollups, caches derived from `reports` + `records` and refreshed
//! together, incrementally (state in `dashboard_rollup_v1`), so that
//! neither the overview nor a domain page scans every record: they can be
//! emptied at any time (with the state) and are rebuilt. The daily rollup
//! (`dashboard_daily_v1`) has no per-source rows: with a source filter,
//! the daily counts and reporters are summed from the records instead
//! ([`DashQuery::DailySource`], [`DashQuery::ReportersSource`]). The source
//! rollup (`dashboard_sources_v1`, one row per domain and source IP) and
//! the policy rollup (`dashboard_policy_v1`, one row per group) have no
//! days: they answer a domain page without a time bound
//! ([`DashQuery::SourcesRollup`], [`DashQuery::PolicyRollup`]), and a
//! bounded one reads the records; the reporter rollup
//! (`dashboard_reporters_v1`, one row per domain and reporter) answers
//! the reporters of the overview and a domain page in the same way
//! ([`DashQuery::ReportersRollup`]). `reports prune` and `reports delete`
//! keep the rollups true in their own transaction (`remove_reports` of
//! each dialect, called by the stores) instead of leaving them to a
//! rebuild. The tables are created by schema migrations of each store.
//! Leaves ingestion, the removal of report rows and the schema to `reports::store` and `reports::pgstore`,
//! `reports list`/`show` and the checklist queries to `reports::rows`, and
//! view assembly to `reports::dashboard`. The PostgreSQL side (`pgsql`) is
//! built with the `postgres` feature.

use serde::Serialize;

use super::store::StoreError;

/// The per-record message counts the dashboard queries and rollups sum,
/// one `CASE` over `records c` each, written once for both dialects:
/// messages passing DMARC (an aligned DKIM or SPF pass), with aligned SPF,
/// with aligned DKIM, failing DMARC, failing with a forwarding override
/// reason (RFC 9990's `forwarded`, and `trusted_forwarder`,
/// `mailing_list`, `local_policy`), and failing with a passing ARC chain
/// noted in the override comment. `arc_pass` takes the dialect's
/// case-insensitive match (`LIKE` on SQLite, `ILIKE` on PostgreSQL).
macro_rules! count_case {
    (dmarc_pass) => {
        "CASE WHEN c.dkim_aligned = 'pass' OR c.spf_aligned = 'pass' THEN c.count ELSE 0 END"
    };
    (spf_aligned) => {
        "CASE WHEN c.spf_aligned = 'pass' THEN c.count ELSE 0 END"
    };
    (dkim_aligned) => {
        "CASE WHEN c.dkim_aligned = 'pass' THEN c.count ELSE 0 END"
    };
    (failing) => {
        "CASE WHEN c.dkim_aligned = 'pass' OR c.spf_aligned = 'pass' THEN 0 ELSE c.count END"
    };
    (forwarded) => {
        "CASE WHEN c.dkim_aligned = 'pass' OR c.spf_aligned = 'pass' THEN 0 \
         WHEN c.reasons LIKE '%\"forwarded\"%' OR c.reasons LIKE '%\"trusted_forwarder\"%' \
         OR c.reasons LIKE '%\"mailing_list\"%' OR c.reasons LIKE '%\"local_policy\"%' \
         THEN c.count ELSE 0 END"
    };
    (arc_pass, $like:literal) => {
        concat!(
            "CASE WHEN c.dkim_aligned = 'pass' OR c.spf_aligned = 'pass' THEN 0 WHEN c.reasons ",
            $like,
            " '%arc=pass%' THEN c.count ELSE 0 END"
        )
    };
}

/// The start of the source rollup's query, the same in both dialects: the
/// `base` rows (domain, source IP, reporter, the DKIM signer and SPF
/// result of each record, as Sources shows them, and the columns the
/// counts read) of the records of `$from` (a `FROM` and `WHERE` text
/// naming `records c` and `reports r`), and the opening of the `sums`
/// that group them by domain and source IP.
macro_rules! source_rows {
    ($from:literal) => {
        concat!(
            "WITH base AS MATERIALIZED (SELECT r.policy_domain AS domain, \
               c.source_ip AS source_ip, r.org_name AS org, \
               CASE WHEN c.dkim_result = 'pass' THEN \
                 c.dkim_domain || coalesce('/' || c.dkim_selector, '') END AS dk, \
               CASE WHEN c.spf_domain IS NOT NULL THEN \
                 c.spf_domain || '=' || coalesce(c.spf_result, '?') END AS sp, \
               c.count AS count, c.dkim_aligned AS dkim_aligned, c.spf_aligned AS spf_aligned, \
               c.reasons AS reasons FROM ",
            $from,
            "), sums AS (SELECT c.domain, c.source_ip, "
        )
    };
}

/// The sums both rollups keep of the records `c`: messages, and those
/// passing DMARC, SPF-aligned and DKIM-aligned, each named as its column,
/// with the dialect's saturating sum (`$sum`), a comma after the last.
macro_rules! alignment_sums {
    ($sum:ident) => {
        concat!(
            $sum!("c.count"),
            " AS messages, ",
            $sum!(count_case!(dmarc_pass)),
            " AS dmarc_pass, ",
            $sum!(count_case!(spf_aligned)),
            " AS spf_aligned, ",
            $sum!(count_case!(dkim_aligned)),
            " AS dkim_aligned, "
        )
    };
}

/// The daily rollup's sums of the records `c`, each named as its column,
/// with the dialect's saturating sum (`$sum`: `sqlite_sum` or `pg_sum`):
/// written once for the rollup's fill and for the removal of records, in
/// both dialects.
macro_rules! daily_sums {
    ($sum:ident) => {
        concat!(
            alignment_sums!($sum),
            $sum!("CASE WHEN c.disposition IN ('quarantine', 'reject') THEN 0 ELSE c.count END"),
            " AS disp_none, ",
            $sum!("CASE WHEN c.disposition = 'quarantine' THEN c.count ELSE 0 END"),
            " AS quarantine, ",
            $sum!("CASE WHEN c.disposition = 'reject' THEN c.count ELSE 0 END"),
            " AS reject, count(*) AS records"
        )
    };
}

/// The source rollup's rows of the records of `$from` up to their lists:
/// the `base` rows ([`source_rows!`]), their `sums` by domain and source IP
/// with the dialect's saturating sum (`$sum`) and case-insensitive match
/// (`$like`), and the `vals` whose counts make the lists, which each
/// dialect then aggregates its own way.
macro_rules! source_sums {
    ($from:literal, $sum:ident, $like:literal) => {
        concat!(
            source_rows!($from),
            alignment_sums!($sum),
            $sum!(count_case!(forwarded)),
            " AS forwarded_reason, ",
            // RFC 8617 §7.2: receivers note a passing ARC chain in the
            // override comment (`arc=pass`), as in Sources.
            $sum!(count_case!(arc_pass, $like)),
            " AS arc_pass, ",
            $sum!(count_case!(failing)),
            " AS failing, count(*) AS records FROM base c GROUP BY 1, 2), \
             vals AS (SELECT domain, source_ip, 1 AS k, org AS v, count(*) AS n FROM base \
               GROUP BY 1, 2, 4 \
               UNION ALL SELECT domain, source_ip, 2, dk, count(*) FROM base \
               WHERE dk IS NOT NULL GROUP BY 1, 2, 4 \
               UNION ALL SELECT domain, source_ip, 3, sp, count(*) FROM base \
               WHERE sp IS NOT NULL GROUP BY 1, 2, 4), "
        )
    };
}

/// SQLite: `sum(e)` that saturates at the bounds of a 64-bit integer
/// instead of failing the whole query with "integer overflow" (SQLite's
/// `sum`), and stays exact below them (`total` is a float). The high and
/// low 32 bits are summed apart (neither sum can overflow), then joined:
/// SQLite turns an overflowing `*` or `+` into a float, which the clamp
/// brings back to the bound. NULL when every `e` is NULL, as `sum`.
macro_rules! sqlite_sum {
    ($e:expr) => {
        concat!(
            "max(min(sum((",
            $e,
            ") >> 32) * 4294967296 + sum((",
            $e,
            ") & 4294967295), 9223372036854775807), -9223372036854775808)"
        )
    };
}
pub(crate) use sqlite_sum;

/// SQLite: `a + b` of two integers, saturating (an overflowing `+` is a
/// float there, which the clamp brings back to the bound).
macro_rules! sqlite_add {
    ($a:expr, $b:expr) => {
        concat!(
            "max(min((",
            $a,
            ") + (",
            $b,
            "), 9223372036854775807), -9223372036854775808)"
        )
    };
}
pub(crate) use sqlite_add;

#[cfg(feature = "postgres")]
/// PostgreSQL: `sum(e)` as a BIGINT that saturates instead of failing
/// with "bigint out of range" (the sum of BIGINTs is NUMERIC, exact; only
/// the cast back could overflow).
macro_rules! pg_sum {
    ($e:expr) => {
        concat!(
            "least(greatest(sum((",
            $e,
            ")::numeric), -9223372036854775808), 9223372036854775807)::bigint"
        )
    };
}
#[cfg(feature = "postgres")]
pub(crate) use pg_sum;

#[cfg(feature = "postgres")]
/// PostgreSQL: `a + b` of two BIGINTs, saturating.
macro_rules! pg_add {
    ($a:expr, $b:expr) => {
        concat!(
            "least(greatest((",
            $a,
            ")::numeric + (",
            $b,
            "), -9223372036854775808), 9223372036854775807)::bigint"
        )
    };
}

/// A date range and optional domain / source filter for dashboard queries.
/// Times are unix seconds, compared with the report's `date_begin`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DashFilter {
    pub domain: Option<String>,
    /// Inclusive lower bound.
    pub since: Option<i64>,
    /// Exclusive upper bound.
    pub until: Option<i64>,
    /// One source IP (text as stored).
    pub source: Option<String>,
}

/// Messages of one domain and day (from the rollup), by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DailyRow {
    pub domain: String,
    /// Days since the Unix epoch (UTC) of the report's begin.
    pub day: i64,
    pub messages: i64,
    /// DKIM or SPF aligned (policy_evaluated).
    pub dmarc_pass: i64,
    pub spf_aligned: i64,
    pub dkim_aligned: i64,
    /// Applied disposition; `none` also counts unknown values.
    pub none: i64,
    pub quarantine: i64,
    pub reject: i64,
}

/// Traffic of one source IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRow {
    pub domain: String,
    pub source_ip: String,
    pub messages: i64,
    /// Messages passing DMARC (DKIM or SPF aligned).
    pub dmarc_pass: i64,
    pub spf_aligned: i64,
    pub dkim_aligned: i64,
    /// Failing messages for which the receiver gave a forwarding override
    /// reason (`forwarded`, `trusted_forwarder`, `mailing_list`,
    /// `local_policy`: RFC 7489 Appendix C `PolicyOverrideType`).
    pub forwarded_reason: i64,
    /// Failing messages whose override comment says the receiver found a
    /// passing ARC chain (`arc=pass`, RFC 8617 §7.2).
    pub arc_pass: i64,
    /// Distinct reporters, sorted.
    pub reporters: Vec<String>,
    /// Distinct `domain/selector` (or `domain`) of passing DKIM results.
    pub dkim_signers: Vec<String>,
    /// Distinct (SPF domain, result) pairs as `domain=result`.
    pub spf_reported: Vec<String>,
}

/// One reporter's contribution.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReporterRow {
    /// The name shown: the reporter's `org_name` as sent.
    pub org: String,
    /// Stable grouping key (`reports::sources::reporter_key`).
    pub key: String,
    /// Other spellings merged under the same key.
    pub aliases: Vec<String>,
    pub reports: i64,
    pub messages: i64,
    /// Unix seconds; RFC 3339 UTC in JSON, like every time mailauth prints.
    #[serde(serialize_with = "rfc3339_secs")]
    #[schemars(with = "crate::output::Rfc3339")]
    pub first_begin: i64,
    #[serde(serialize_with = "rfc3339_secs")]
    #[schemars(with = "crate::output::Rfc3339")]
    pub last_end: i64,
}

fn rfc3339_secs<S: serde::Serializer>(secs: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::reports::store::rfc3339_secs(*secs))
}

fn rfc3339_opt_text<S: serde::Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match text {
        Some(t) => s.serialize_str(&crate::reports::store::rfc3339_text(t)),
        None => s.serialize_none(),
    }
}

/// Published policy against applied disposition and override reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyRow {
    pub domain: String,
    /// Published `p=` as reported (None when the report omits it).
    pub published: Option<String>,
    pub pct: Option<i64>,
    pub disposition: String,
    /// The stored override reasons (JSON list of `{kind, comment}`).
    pub reasons: serde_json::Value,
    pub messages: i64,
}

/// TLS-RPT totals for one policy (RFC 8460 `policy`).
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsPolicyRow {
    pub policy_domain: String,
    pub policy_type: String,
    pub successful: i64,
    pub failed: i64,
    pub reports: i64,
    /// Failed sessions per `result-type`, most first.
    pub failure_types: Vec<(String, i64)>,
}

/// A DMARC failure report, as the dashboard lists it.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureRow {
    /// In JSON, the id `reports show` and `inspect --failure-report`
    /// accept: `failure:N`.
    #[serde(serialize_with = "failure_id")]
    #[schemars(with = "String")]
    pub id: i64,
    pub reported_domain: String,
    pub reporter: Option<String>,
    /// As the report wrote it (RFC 5322); RFC 3339 UTC in JSON.
    #[serde(serialize_with = "rfc3339_opt_text")]
    #[schemars(with = "Option<crate::output::Rfc3339>")]
    pub arrival_date: Option<String>,
    pub source_ip: Option<String>,
    pub auth_failure: Option<String>,
    pub original_mail_from: Option<String>,
    pub dkim_domain: Option<String>,
    pub original_subject: Option<String>,
    /// Forwarding evidence in the reported message's ARC header fields
    /// (`reports::sources::arc_evidence`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arc: Option<String>,
}

fn failure_id<S: serde::Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::store::display_id(
        super::parse::ReportKind::Failure,
        *id,
    ))
}

/// The dashboard queries; each backend has one SQL text per query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DashQuery {
    /// Params: domain, since, until.
    Daily,
    /// The daily counts of [`Daily`](Self::Daily) for one source IP, read
    /// from the records (the rollup has no sources). Params: domain,
    /// since, until, source.
    DailySource,
    /// Params: domain, since, until, source, failing_only (0/1), limit.
    /// The last column, the messages failing DMARC, is read by
    /// [`DashboardQueries::dash_sources_split`] only.
    Sources,
    /// [`Sources`](Self::Sources) over all time, from the source rollup
    /// (`dashboard_sources_v1`). Same params (since and until NULL) and
    /// columns.
    SourcesRollup,
    /// Params: domain, since, until.
    Reporters,
    /// [`Reporters`](Self::Reporters) over all time, from the reporter
    /// rollup (`dashboard_reporters_v1`). Same params (since and until
    /// NULL) and columns.
    ReportersRollup,
    /// [`Reporters`](Self::Reporters) counting one source IP's records
    /// only. Params: domain, since, until, source.
    ReportersSource,
    /// Params: domain, since, until, source.
    Policy,
    /// [`Policy`](Self::Policy) over all time and every source, from the
    /// policy rollup (`dashboard_policy_v1`). Same params (since, until
    /// and source NULL) and columns.
    PolicyRollup,
    /// Params: domain, since and until as RFC 3339 text.
    Tls,
    /// Params: domain, source, limit.
    Failures,
    /// No params.
    Domains,
    /// The cached reverse DNS name of one source. Params: ip. Row: name
    /// (NULL: no PTR record), looked-up time (unix seconds).
    PtrGet,
    /// Remembers one reverse DNS answer (the one write besides the
    /// rollup). Params: ip, name, looked-up time.
    PtrPut,
    /// Whether an alert was fired (`reports::alerts`). Params: key. Row:
    /// fired time.
    AlertGet,
    /// Records a fired alert. Params: key, rule, fired time.
    AlertPut,
}

impl DashQuery {
    /// What the query is, for error messages.
    pub fn what(self) -> &'static str {
        match self {
            Self::Daily => "read rollup",
            Self::DailySource => "daily counts of one source",
            Self::Sources => "top sources",
            Self::Reporters => "reporters",
            Self::ReportersRollup => "reporters (rollup)",
            Self::ReportersSource => "reporters of one source",
            Self::Policy => "policy",
            Self::SourcesRollup => "top sources (rollup)",
            Self::PolicyRollup => "policy (rollup)",
            Self::Tls => "TLS summary",
            Self::Failures => "failure reports",
            Self::Domains => "domains",
            Self::PtrGet => "read PTR cache",
            Self::PtrPut => "write PTR cache",
            Self::AlertGet => "read fired alerts",
            Self::AlertPut => "record a fired alert",
        }
    }
}

/// A typed query parameter (typed even when NULL: PostgreSQL needs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
}

/// One result cell, whatever the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "NULL",
            Cell::Int(_) => "an integer",
            Cell::Text(_) => "text",
        }
    }
}

/// Reads the cells of one row in order, typed.
struct Cols {
    what: &'static str,
    cells: std::vec::IntoIter<Cell>,
    index: usize,
}

impl Cols {
    fn new(what: &'static str, row: Vec<Cell>) -> Self {
        Self {
            what,
            cells: row.into_iter(),
            index: 0,
        }
    }

    fn next(&mut self) -> Cell {
        self.index += 1;
        self.cells.next().unwrap_or(Cell::Null)
    }

    fn err(&self, expected: &'static str, found: &Cell) -> StoreError {
        StoreError::Column {
            what: self.what,
            column: (self.index - 1).to_string(),
            problem: format!("is {}, expected {expected}", found.kind()),
        }
    }

    fn int(&mut self) -> Result<i64, StoreError> {
        match self.next() {
            Cell::Int(n) => Ok(n),
            other => Err(self.err("an integer", &other)),
        }
    }

    fn opt_int(&mut self) -> Result<Option<i64>, StoreError> {
        match self.next() {
            Cell::Int(n) => Ok(Some(n)),
            Cell::Null => Ok(None),
            other => Err(self.err("an integer or NULL", &other)),
        }
    }

    fn text(&mut self) -> Result<String, StoreError> {
        match self.next() {
            Cell::Text(s) => Ok(s),
            other => Err(self.err("text", &other)),
        }
    }

    fn opt_text(&mut self) -> Result<Option<String>, StoreError> {
        match self.next() {
            Cell::Text(s) => Ok(Some(s)),
            Cell::Null => Ok(None),
            other => Err(self.err("text or NULL", &other)),
        }
    }
}

/// Shapes every row of a result with `f`.
fn shape<T>(
    q: DashQuery,
    rows: Vec<Vec<Cell>>,
    mut f: impl FnMut(&mut Cols) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.into_iter()
        .map(|r| f(&mut Cols::new(q.what(), r)))
        .collect()
}

fn split_list(s: Option<String>) -> Vec<String> {
    // Items are aggregated as `x || U+001F` joined with ',': every item
    // ends in U+001F, and every item but the first starts with ','.
    let mut v: Vec<String> = s
        .unwrap_or_default()
        .split('\u{1f}')
        .enumerate()
        .map(|(i, p)| {
            if i > 0 {
                p.strip_prefix(',').unwrap_or(p)
            } else {
                p
            }
        })
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// `type U+001E count` items joined by U+001F, most sessions first (ties
/// by name, so both stores answer alike).
fn failure_types(s: Option<String>) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = s
        .unwrap_or_default()
        .split('\u{1f}')
        .filter_map(|p| {
            let (t, n) = p.split_once('\u{1e}')?;
            Some((t.to_owned(), n.parse().ok()?))
        })
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The first columns of a [`DashQuery::Sources`] row.
fn source_row(c: &mut Cols) -> Result<SourceRow, StoreError> {
    Ok(SourceRow {
        domain: c.text()?,
        source_ip: c.text()?,
        messages: c.int()?,
        dmarc_pass: c.int()?,
        spf_aligned: c.int()?,
        dkim_aligned: c.int()?,
        forwarded_reason: c.int()?,
        arc_pass: c.int()?,
        reporters: split_list(c.opt_text()?),
        dkim_signers: split_list(c.opt_text()?),
        spf_reported: split_list(c.opt_text()?),
    })
}

/// A [`DashQuery::Policy`] row.
fn policy_row(c: &mut Cols) -> Result<PolicyRow, StoreError> {
    Ok(PolicyRow {
        domain: c.text()?,
        published: c.opt_text()?,
        pct: c.opt_int()?,
        disposition: c.text()?,
        reasons: opt_json(c.opt_text()?),
        messages: c.int()?,
    })
}

fn opt_json(s: Option<String>) -> serde_json::Value {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn limit_arg(limit: usize) -> Arg {
    Arg::Int(Some(i64::try_from(limit).unwrap_or(i64::MAX)))
}

/// The daily query rounds `until` up to a whole day (`until + 86399`):
/// an extreme bound (`--until 9223372036854775807`) must not overflow
/// that sum (PostgreSQL fails "bigint out of range"). Nothing is stored
/// that late, so the clamp changes no answer.
const LATEST_UNTIL: i64 = i64::MAX - 86_400;

fn range_args(f: &DashFilter) -> [Arg; 3] {
    [
        Arg::Text(f.domain.clone()),
        Arg::Int(f.since),
        Arg::Int(f.until.map(|u| u.min(LATEST_UNTIL))),
    ]
}

/// The read queries behind `reports summary`, `reports html` and
/// `mailauth serve`. A backend supplies [`dash_rows`](Self::dash_rows)
/// (its SQL) and [`refresh_rollup`](Self::refresh_rollup); the typed
/// queries are written once on top of them.
pub trait DashboardQueries {
    /// Runs one query with its parameters (in the order [`DashQuery`]
    /// documents) and returns the rows as cells.
    fn dash_rows(&self, q: DashQuery, args: &[Arg]) -> Result<Vec<Vec<Cell>>, StoreError>;

    /// Brings the rollups up to date with the stored reports: adds the
    /// reports stored since the last refresh, or rebuilds them when the
    /// state does not match the reports (no state yet, or reports committed
    /// out of id order; `reports prune` and `delete` keep the rollups and
    /// their state themselves). Returns the number of reports folded in.
    fn refresh_rollup(&mut self) -> Result<i64, StoreError>;

    /// Daily outcome counts from the rollup (call
    /// [`refresh_rollup`](Self::refresh_rollup) first); with a source
    /// filter, the same counts for that source IP, summed from its records
    /// (same day bounds), so totals and charts follow the filter.
    fn dash_daily(&self, f: &DashFilter) -> Result<Vec<DailyRow>, StoreError> {
        let (q, rows) = match &f.source {
            None => (
                DashQuery::Daily,
                self.dash_rows(DashQuery::Daily, &range_args(f))?,
            ),
            Some(ip) => {
                let [d, s, u] = range_args(f);
                let q = DashQuery::DailySource;
                (
                    q,
                    self.dash_rows(q, &[d, s, u, Arg::Text(Some(ip.clone()))])?,
                )
            }
        };
        shape(q, rows, |c| {
            Ok(DailyRow {
                domain: c.text()?,
                day: c.int()?,
                messages: c.int()?,
                dmarc_pass: c.int()?,
                spf_aligned: c.int()?,
                dkim_aligned: c.int()?,
                none: c.int()?,
                quarantine: c.int()?,
                reject: c.int()?,
            })
        })
    }

    /// The `limit` source IPs sending the most messages; `failing_only`
    /// keeps sources with at least one message failing DMARC, ordered by
    /// failing messages.
    fn dash_sources(
        &self,
        f: &DashFilter,
        failing_only: bool,
        limit: usize,
    ) -> Result<Vec<SourceRow>, StoreError> {
        let q = DashQuery::Sources;
        let [d, s, u] = range_args(f);
        let args = [
            d,
            s,
            u,
            Arg::Text(f.source.clone()),
            Arg::Int(Some(i64::from(failing_only))),
            limit_arg(limit),
        ];
        shape(q, self.dash_rows(q, &args)?, source_row)
    }

    /// [`dash_sources`](Self::dash_sources) with `failing_only` false
    /// and `limit`, and with it true and `failing_limit`, from one query:
    /// every source is read once, in the order of the first list, and the
    /// failing ones are then ordered as the query orders them (failing
    /// messages, most first; then source IP, domain). Without a time bound
    /// the sources are read from the source rollup (call
    /// [`refresh_rollup`](Self::refresh_rollup) first), not the records.
    fn dash_sources_split(
        &self,
        f: &DashFilter,
        limit: usize,
        failing_limit: usize,
    ) -> Result<(Vec<SourceRow>, Vec<SourceRow>), StoreError> {
        let q = if f.since.is_none() && f.until.is_none() {
            DashQuery::SourcesRollup
        } else {
            DashQuery::Sources
        };
        let [d, s, u] = range_args(f);
        let args = [
            d,
            s,
            u,
            Arg::Text(f.source.clone()),
            Arg::Int(Some(0)),
            Arg::Int(Some(i64::MAX)),
        ];
        let rows = shape(q, self.dash_rows(q, &args)?, |c| {
            let row = source_row(c)?;
            Ok((row, c.int()?))
        })?;
        let mut failing: Vec<&(SourceRow, i64)> = rows.iter().filter(|(_, n)| *n > 0).collect();
        failing.sort_by(|(a, an), (b, bn)| {
            bn.cmp(an)
                .then_with(|| a.source_ip.cmp(&b.source_ip))
                .then_with(|| a.domain.cmp(&b.domain))
        });
        let failing = failing
            .into_iter()
            .take(failing_limit)
            .map(|(r, _)| r.clone())
            .collect();
        let all = rows.into_iter().take(limit).map(|(r, _)| r).collect();
        Ok((all, failing))
    }

    /// Reporters (aggregate report senders), most messages first; with a
    /// source filter, the reporters that saw that source IP and the
    /// messages they reported from it. Without a time bound nor a source
    /// they are read from the reporter rollup (call
    /// [`refresh_rollup`](Self::refresh_rollup) first), not the reports.
    fn dash_reporters(&self, f: &DashFilter) -> Result<Vec<ReporterRow>, StoreError> {
        let (q, rows) = match &f.source {
            None if f.since.is_none() && f.until.is_none() => (
                DashQuery::ReportersRollup,
                self.dash_rows(DashQuery::ReportersRollup, &range_args(f))?,
            ),
            None => (
                DashQuery::Reporters,
                self.dash_rows(DashQuery::Reporters, &range_args(f))?,
            ),
            Some(ip) => {
                let [d, s, u] = range_args(f);
                let q = DashQuery::ReportersSource;
                (
                    q,
                    self.dash_rows(q, &[d, s, u, Arg::Text(Some(ip.clone()))])?,
                )
            }
        };
        shape(q, rows, |c| {
            let org = c.text()?;
            Ok(ReporterRow {
                key: crate::reports::sources::reporter_key(&org),
                aliases: Vec::new(),
                org,
                reports: c.int()?,
                messages: c.int()?,
                first_begin: c.int()?,
                last_end: c.int()?,
            })
        })
    }

    /// Published policy against applied disposition, with override reasons.
    fn dash_policy(&self, f: &DashFilter) -> Result<Vec<PolicyRow>, StoreError> {
        let q = DashQuery::Policy;
        let [d, s, u] = range_args(f);
        let args = [d, s, u, Arg::Text(f.source.clone())];
        shape(q, self.dash_rows(q, &args)?, policy_row)
    }

    /// [`dash_policy`](Self::dash_policy), read from the policy rollup
    /// when there is no time bound and no source filter (call
    /// [`refresh_rollup`](Self::refresh_rollup) first).
    fn dash_policy_rollup(&self, f: &DashFilter) -> Result<Vec<PolicyRow>, StoreError> {
        if f.since.is_some() || f.until.is_some() || f.source.is_some() {
            return self.dash_policy(f);
        }
        let q = DashQuery::PolicyRollup;
        let [d, s, u] = range_args(f);
        shape(
            q,
            self.dash_rows(q, &[d, s, u, Arg::Text(None)])?,
            policy_row,
        )
    }

    /// TLS-RPT successes and failures per policy. The range compares the
    /// report's RFC 3339 start with the bounds rendered the same way.
    fn dash_tls(&self, f: &DashFilter) -> Result<Vec<TlsPolicyRow>, StoreError> {
        let q = DashQuery::Tls;
        let args = [
            Arg::Text(f.domain.clone()),
            Arg::Text(f.since.map(crate::clock::format_time)),
            Arg::Text(f.until.map(crate::clock::format_time)),
        ];
        shape(q, self.dash_rows(q, &args)?, |c| {
            Ok(TlsPolicyRow {
                policy_domain: c.text()?,
                policy_type: c.text()?,
                successful: c.int()?,
                failed: c.int()?,
                reports: c.int()?,
                failure_types: failure_types(c.opt_text()?),
            })
        })
    }

    /// The latest DMARC failure reports (by ingestion order).
    fn dash_failures(&self, f: &DashFilter, limit: usize) -> Result<Vec<FailureRow>, StoreError> {
        let q = DashQuery::Failures;
        let args = [
            Arg::Text(f.domain.clone()),
            Arg::Text(f.source.clone()),
            limit_arg(limit),
        ];
        shape(q, self.dash_rows(q, &args)?, |c| {
            Ok(FailureRow {
                id: c.int()?,
                reported_domain: c.text()?,
                reporter: c.opt_text()?,
                arrival_date: c.opt_text()?,
                source_ip: c.opt_text()?,
                auth_failure: c.opt_text()?,
                original_mail_from: c.opt_text()?,
                dkim_domain: c.opt_text()?,
                original_subject: c.opt_text()?,
                arc: c
                    .opt_text()?
                    .and_then(|h| crate::reports::sources::arc_evidence(&h)),
            })
        })
    }

    /// Every domain with any stored report (aggregate, failure or TLS).
    fn dash_domains(&self) -> Result<Vec<String>, StoreError> {
        let q = DashQuery::Domains;
        shape(q, self.dash_rows(q, &[])?, |c| c.text())
    }

    /// The cached reverse DNS answer for `ip`: `Some((name, looked_up_at))`
    /// with `name` `None` when the address has no PTR record.
    #[allow(clippy::type_complexity)]
    fn ptr_cached(&self, ip: &str) -> Result<Option<(Option<String>, i64)>, StoreError> {
        let q = DashQuery::PtrGet;
        let rows = shape(
            q,
            self.dash_rows(q, &[Arg::Text(Some(ip.to_owned()))])?,
            |c| Ok((c.opt_text()?, c.int()?)),
        )?;
        Ok(rows.into_iter().next())
    }

    /// Whether the alert `key` was fired before.
    fn alert_fired(&self, key: &str) -> Result<bool, StoreError> {
        let q = DashQuery::AlertGet;
        Ok(!self
            .dash_rows(q, &[Arg::Text(Some(key.to_owned()))])?
            .is_empty())
    }

    /// Records the alert `key` of `rule` as fired at `at` (once: a key
    /// recorded before keeps its first time).
    fn alert_remember(&self, key: &str, rule: &str, at: i64) -> Result<(), StoreError> {
        let q = DashQuery::AlertPut;
        self.dash_rows(
            q,
            &[
                Arg::Text(Some(key.to_owned())),
                Arg::Text(Some(rule.to_owned())),
                Arg::Int(Some(at)),
            ],
        )?;
        Ok(())
    }

    /// Remembers a reverse DNS answer for `ip` at time `at`.
    fn ptr_remember(&self, ip: &str, name: Option<&str>, at: i64) -> Result<(), StoreError> {
        let q = DashQuery::PtrPut;
        self.dash_rows(
            q,
            &[
                Arg::Text(Some(ip.to_owned())),
                Arg::Text(name.map(str::to_owned)),
                Arg::Int(Some(at)),
            ],
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The rollup: which reports to fold in, decided once for both stores.
// ---------------------------------------------------------------------------

/// The aggregate reports a removal takes out of the store, whose
/// records the rollups must give back (`remove_reports` of each dialect).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Gone<'a> {
    /// `reports prune`: every report that began before this time.
    Before(i64),
    /// `reports delete`: these report ids.
    Ids(&'a [i64]),
}

/// What a refresh does, given the reports now and the rollup's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RollupStep {
    /// Nothing changed since the last refresh.
    Current,
    /// Only reports with an id above `after` are new; `before` reports
    /// were folded in already.
    Fold { after: i64, before: i64 },
    /// First run, or reports were removed without the rollup being told
    /// (or committed below the last folded id): empty the rollup and fold
    /// in everything.
    Rebuild,
}

/// `now` and `saved` are (highest report id, report count).
/// `older(max)` counts the reports with an id at most `max`.
fn rollup_step<E>(
    now: (i64, i64),
    saved: Option<(i64, i64)>,
    older: impl FnOnce(i64) -> Result<i64, E>,
) -> Result<RollupStep, E> {
    Ok(match saved {
        Some(s) if s == now => RollupStep::Current,
        Some((max, n)) if max < now.0 && n < now.1 && older(max)? == n => RollupStep::Fold {
            after: max,
            before: n,
        },
        _ => RollupStep::Rebuild,
    })
}

#[cfg(feature = "postgres")]
pub(crate) mod pgsql;
pub(crate) mod sqlite;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_and_sort() {
        assert_eq!(
            split_list(Some("b\u{1f},a\u{1f},b\u{1f}".into())),
            vec!["a", "b"]
        );
        assert!(split_list(None).is_empty());
        assert_eq!(
            failure_types(Some("x\u{1e}2\u{1f}b\u{1e}5\u{1f}a\u{1e}5\u{1f}bad".into())),
            vec![("a".into(), 5), ("b".into(), 5), ("x".into(), 2)]
        );
    }

    #[test]
    fn rollup_steps() {
        let never = |_| -> Result<i64, ()> { panic!("not asked") };
        assert_eq!(rollup_step((0, 0), None, never), Ok(RollupStep::Rebuild));
        assert_eq!(
            rollup_step((5, 5), Some((5, 5)), never),
            Ok(RollupStep::Current)
        );
        // New reports above the last id, none below it: fold in.
        assert_eq!(
            rollup_step((9, 7), Some((5, 5)), |max| {
                assert_eq!(max, 5);
                Ok::<_, ()>(5)
            }),
            Ok(RollupStep::Fold {
                after: 5,
                before: 5
            })
        );
        // A report committed late below the last id: rebuild.
        assert_eq!(
            rollup_step((9, 7), Some((5, 5)), |_| Ok::<_, ()>(6)),
            Ok(RollupStep::Rebuild)
        );
        // Reports removed.
        assert_eq!(
            rollup_step((9, 3), Some((5, 5)), never),
            Ok(RollupStep::Rebuild)
        );
    }

    #[test]
    fn shaping_checks_types() {
        let rows = vec![vec![Cell::Text("a".into()), Cell::Null]];
        let got = shape(DashQuery::Reporters, rows, |c| {
            c.text()?;
            c.int()
        });
        let err = got.expect_err("NULL is not an integer").to_string();
        assert!(
            err.contains("column 1 is NULL, expected an integer"),
            "{err}"
        );
    }
}
