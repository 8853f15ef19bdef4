//! The report stores' own read queries, for both stores: `reports list`
//! and `reports show`, the checklist queries ([`ChecklistQueries`]) and
//! the count of `reports prune`. The rows are shaped here once, by column
//! name, into the store's row types (the JSON of `list` and `show`); the
//! SQL of each query and the glue to each driver, the only part that
//! differs, are in `sqlite` and `pgsql`, as in `reports::dashq`.
//!
//! Read-only. Leaves the schema, ingestion, `delete` and `prune` itself
//! to `reports::store` and `reports::pgstore`, the dashboard queries to
//! `reports::dashq`, and the choice of a store to `reports::store_cli`.

use serde::Serialize;

use crate::reports::dashq::{Arg, Cell};
use crate::reports::parse::ReportKind;
use crate::reports::store::{
    AggregateDetails, FailureDetails, PolicyPublished, PrunedDomain, RecordRow, ReportDetail,
    ReportDetails, ReportRow, StoreError, TlsDetails, TlsFailureDetail, TlsPolicyDetail,
    rfc3339_secs, rfc3339_text,
};

#[cfg(feature = "postgres")]
pub(crate) mod pgsql;
pub(crate) mod sqlite;

/// The read queries of this module; each store has one SQL text per
/// query, whose result columns carry the names the shaping reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowQuery {
    /// Params: domain (NULL: all). Aggregate reports, newest first.
    ListAggregate,
    /// Params: id (NULL: all). TLS reports, newest first.
    ListTls,
    /// Params: domain (NULL: all). Failure reports, latest stored first.
    ListFailure,
    /// Params: id. One aggregate report with its published policy.
    ShowAggregate,
    /// Params: report id. Its records, in stored order.
    ShowRecords,
    /// Params: TLS report id. Its policies, in stored order.
    ShowTlsPolicies,
    /// Params: TLS policy id. Its failure details, in stored order.
    ShowTlsFailures,
    /// Params: id. One failure report.
    ShowFailure,
    /// Params: domain, since.
    ChecklistDays,
    /// Params: domain, since.
    ChecklistVolume,
    /// Params: domain, since, limit.
    ChecklistFailing,
    /// Params: cutoff. Per policy domain, what `prune` removes.
    PruneCount,
}

impl RowQuery {
    /// What the query is, for error messages.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Self::ListAggregate => "list reports",
            Self::ListTls => "list TLS reports",
            Self::ListFailure => "list failure reports",
            Self::ShowAggregate => "show report",
            Self::ShowRecords => "show records",
            Self::ShowTlsPolicies => "show TLS policies",
            Self::ShowTlsFailures => "show TLS failures",
            Self::ShowFailure => "show failure report",
            Self::ChecklistDays => "checklist aggregate days",
            Self::ChecklistVolume => "checklist volume",
            Self::ChecklistFailing => "checklist failing sources",
            Self::PruneCount => "count pruned",
        }
    }
}

/// One result row: its cells, read by column name.
pub(crate) struct Row<'a> {
    what: &'static str,
    names: &'a [String],
    cells: Vec<Cell>,
}

impl<'a> Row<'a> {
    pub(crate) fn new(what: &'static str, names: &'a [String], cells: Vec<Cell>) -> Self {
        Self { what, names, cells }
    }

    fn err(&self, column: &str, problem: String) -> StoreError {
        StoreError::Column {
            what: self.what,
            column: column.to_owned(),
            problem,
        }
    }

    /// Takes the cell of `column` (a column read twice is NULL the
    /// second time).
    fn take(&mut self, column: &str) -> Result<Cell, StoreError> {
        match self.names.iter().position(|n| n == column) {
            Some(i) => Ok(std::mem::replace(&mut self.cells[i], Cell::Null)),
            None => Err(self.err(column, "is missing from the result".into())),
        }
    }

    fn wrong(&self, column: &str, expected: &str, found: &Cell) -> StoreError {
        self.err(column, format!("is {}, expected {expected}", found.kind()))
    }

    pub(crate) fn int(&mut self, column: &str) -> Result<i64, StoreError> {
        match self.take(column)? {
            Cell::Int(n) => Ok(n),
            other => Err(self.wrong(column, "an integer", &other)),
        }
    }

    pub(crate) fn opt_int(&mut self, column: &str) -> Result<Option<i64>, StoreError> {
        match self.take(column)? {
            Cell::Int(n) => Ok(Some(n)),
            Cell::Null => Ok(None),
            other => Err(self.wrong(column, "an integer or NULL", &other)),
        }
    }

    /// A flag: stored as 0/1 by SQLite, BOOLEAN by PostgreSQL.
    pub(crate) fn opt_bool(&mut self, column: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.opt_int(column)?.map(|n| n != 0))
    }

    pub(crate) fn bool(&mut self, column: &str) -> Result<bool, StoreError> {
        Ok(self.int(column)? != 0)
    }

    pub(crate) fn text(&mut self, column: &str) -> Result<String, StoreError> {
        match self.take(column)? {
            Cell::Text(s) => Ok(s),
            other => Err(self.wrong(column, "text", &other)),
        }
    }

    pub(crate) fn opt_text(&mut self, column: &str) -> Result<Option<String>, StoreError> {
        match self.take(column)? {
            Cell::Text(s) => Ok(Some(s)),
            Cell::Null => Ok(None),
            other => Err(self.wrong(column, "text or NULL", &other)),
        }
    }

    /// A value stored as JSON text, as that JSON (NULL or text that is
    /// not JSON: `null`).
    pub(crate) fn json(&mut self, column: &str) -> Result<serde_json::Value, StoreError> {
        Ok(opt_json(self.opt_text(column)?))
    }
}

/// JSON text as its value; `null` for NULL or text that is not JSON.
pub(crate) fn opt_json(s: Option<String>) -> serde_json::Value {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// A comma-joined set (SQL `group_concat` / `string_agg`) as sorted,
/// distinct values.
pub(crate) fn split_set(s: Option<String>) -> Vec<String> {
    let mut v: Vec<String> = s
        .unwrap_or_default()
        .split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A store that answers the [`RowQuery`]s: runs one with its parameters
/// (in the order [`RowQuery`] documents) and hands each row to `f`.
pub(crate) trait RowSource {
    fn each_row(
        &self,
        q: RowQuery,
        args: &[Arg],
        f: &mut dyn FnMut(Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

/// Every row of `q`, shaped by `f`.
fn collect<T>(
    src: &(impl RowSource + ?Sized),
    q: RowQuery,
    args: &[Arg],
    mut f: impl FnMut(&mut Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    src.each_row(q, args, &mut |mut r| {
        out.push(f(&mut r)?);
        Ok(())
    })?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// `reports list` and `reports show`.
// ---------------------------------------------------------------------------

/// The list row of an aggregate report. Columns: `id`, `org_name`,
/// `report_id`, `policy_domain`, `date_begin`, `date_end` (unix seconds),
/// `record_count`, `message_count`.
fn aggregate_row(r: &mut Row<'_>) -> Result<ReportRow, StoreError> {
    Ok(ReportRow {
        kind: ReportKind::Aggregate,
        id: r.int("id")?,
        org: r.text("org_name")?,
        report_id: r.text("report_id")?,
        domain: r.text("policy_domain")?,
        begin: rfc3339_secs(r.int("date_begin")?),
        end: rfc3339_secs(r.int("date_end")?),
        records: r.int("record_count")?,
        messages: r.int("message_count")?,
    })
}

/// The list row of a TLS report. Columns: `id`, `org_name`, `report_id`,
/// `policy_domain` (the first policy's), `date_begin`, `date_end` (RFC
/// 3339 text), `policies`, `sessions`.
fn tls_row(r: &mut Row<'_>) -> Result<ReportRow, StoreError> {
    Ok(ReportRow {
        kind: ReportKind::Tls,
        id: r.int("id")?,
        org: r.text("org_name")?,
        report_id: r.text("report_id")?,
        domain: r.text("policy_domain")?,
        begin: rfc3339_text(&r.text("date_begin")?),
        end: rfc3339_text(&r.text("date_end")?),
        records: r.int("policies")?,
        messages: r.int("sessions")?,
    })
}

/// The list row of a failure report. Columns: `id`, `reporter`,
/// `fingerprint`, `reported_domain`, `arrival_date` (text as reported).
fn failure_row(r: &mut Row<'_>) -> Result<ReportRow, StoreError> {
    let date = r.text("arrival_date")?;
    Ok(ReportRow {
        kind: ReportKind::Failure,
        id: r.int("id")?,
        org: r.text("reporter")?,
        report_id: r.text("fingerprint")?,
        domain: r.text("reported_domain")?,
        begin: rfc3339_text(&date),
        end: rfc3339_text(&date),
        records: 1,
        messages: 1,
    })
}

/// `reports list`: aggregate reports, then TLS reports, then failure
/// reports, each newest first, optionally of one domain.
pub(crate) fn list(
    src: &(impl RowSource + ?Sized),
    domain: Option<&str>,
) -> Result<Vec<ReportRow>, StoreError> {
    let d = || Arg::Text(domain.map(str::to_owned));
    let mut out = collect(src, RowQuery::ListAggregate, &[d()], aggregate_row)?;
    for row in collect(src, RowQuery::ListTls, &[Arg::Int(None)], tls_row)? {
        if domain.is_none_or(|d| d == row.domain) {
            out.push(row);
        }
    }
    out.extend(collect(src, RowQuery::ListFailure, &[d()], failure_row)?);
    Ok(out)
}

/// `reports show`: one report with its details, `None` when there is no
/// report of `kind` with `id`.
pub(crate) fn show(
    src: &(impl RowSource + ?Sized),
    kind: ReportKind,
    id: i64,
) -> Result<Option<ReportDetail>, StoreError> {
    match kind {
        ReportKind::Aggregate => show_aggregate(src, id),
        ReportKind::Tls => show_tls(src, id),
        ReportKind::Failure => show_failure(src, id),
    }
}

fn show_aggregate(
    src: &(impl RowSource + ?Sized),
    id: i64,
) -> Result<Option<ReportDetail>, StoreError> {
    let id_arg = [Arg::Int(Some(id))];
    let head = collect(src, RowQuery::ShowAggregate, &id_arg, |r| {
        let row = aggregate_row(r)?;
        let details = ReportDetails::Aggregate(AggregateDetails {
            email: r.opt_text("email")?,
            extra_contact_info: r.opt_text("extra_contact_info")?,
            version: r.opt_text("version")?,
            namespace: r.opt_text("namespace")?,
            generator: r.opt_text("generator")?,
            errors: r.json("errors")?,
            warnings: r.json("warnings")?,
            extensions: r.json("extensions")?,
            origin: r.text("origin")?,
            policy_published: PolicyPublished {
                adkim: r.opt_text("adkim")?,
                aspf: r.opt_text("aspf")?,
                p: r.opt_text("p")?,
                sp: r.opt_text("sp")?,
                np: r.opt_text("np")?,
                pct: r.opt_int("pct")?,
                fo: r.opt_text("fo")?,
                testing: r.opt_bool("testing")?,
                discovery_method: r.opt_text("discovery_method")?,
            },
        });
        Ok((row, details))
    })?;
    let Some((row, details)) = head.into_iter().next() else {
        return Ok(None);
    };
    let records = collect(src, RowQuery::ShowRecords, &id_arg, |r| {
        Ok(RecordRow {
            source_ip: r.text("source_ip")?,
            count: r.int("count")?,
            disposition: r.text("disposition")?,
            dkim_aligned: r.opt_text("dkim_aligned")?,
            spf_aligned: r.opt_text("spf_aligned")?,
            header_from: r.text("header_from")?,
            envelope_from: r.opt_text("envelope_from")?,
            envelope_to: r.opt_text("envelope_to")?,
            reasons: r.json("reasons")?,
            dkim_results: r.json("dkim_results")?,
            spf_results: r.json("spf_results")?,
        })
    })?;
    Ok(Some(ReportDetail {
        row,
        details,
        records,
    }))
}

fn show_tls(src: &(impl RowSource + ?Sized), id: i64) -> Result<Option<ReportDetail>, StoreError> {
    let id_arg = [Arg::Int(Some(id))];
    let Some(row) = collect(src, RowQuery::ListTls, &id_arg, tls_row)?.pop() else {
        return Ok(None);
    };
    let policies = collect(src, RowQuery::ShowTlsPolicies, &id_arg, |r| {
        Ok((
            r.int("id")?,
            TlsPolicyDetail {
                policy_type: r.text("policy_type")?,
                policy_domain: r.text("policy_domain")?,
                policy_string: r.json("policy_string")?,
                mx_host: r.json("mx_host")?,
                successful: r.int("successful_count")?,
                failed: r.int("failure_count")?,
                failure_details: Vec::new(),
            },
        ))
    })?;
    let mut out = Vec::with_capacity(policies.len());
    for (pid, mut policy) in policies {
        policy.failure_details = collect(
            src,
            RowQuery::ShowTlsFailures,
            &[Arg::Int(Some(pid))],
            |r| {
                Ok(TlsFailureDetail {
                    result_type: r.text("result_type")?,
                    sending_mta_ip: r.opt_text("sending_mta_ip")?,
                    receiving_mx_hostname: r.opt_text("receiving_mx_hostname")?,
                    receiving_ip: r.opt_text("receiving_ip")?,
                    failed_session_count: r.int("failed_session_count")?,
                    failure_reason_code: r.opt_text("failure_reason_code")?,
                })
            },
        )?;
        out.push(policy);
    }
    Ok(Some(ReportDetail {
        row,
        details: ReportDetails::Tls(TlsDetails { policies: out }),
        records: Vec::new(),
    }))
}

fn show_failure(
    src: &(impl RowSource + ?Sized),
    id: i64,
) -> Result<Option<ReportDetail>, StoreError> {
    let rows = collect(src, RowQuery::ShowFailure, &[Arg::Int(Some(id))], |r| {
        Ok(ReportDetail {
            row: failure_row(r)?,
            details: ReportDetails::Failure(FailureDetails {
                feedback_type: r.text("feedback_type")?,
                user_agent: r.opt_text("user_agent")?,
                source_ip: r.opt_text("source_ip")?,
                original_mail_from: r.opt_text("original_mail_from")?,
                authentication_results: r.json("authentication_results")?,
                dkim_domain: r.opt_text("dkim_domain")?,
                spf_dns: r.opt_text("spf_dns")?,
                original_subject: r.opt_text("original_subject")?,
                original_headers: r.opt_text("original_headers")?,
                from_text: r.bool("from_text")?,
            }),
            records: Vec::new(),
        })
    })?;
    Ok(rows.into_iter().next())
}

// ---------------------------------------------------------------------------
// Checklist queries (`mailauth checklist`, the `mailauth plan` hint):
// read-only summaries of aggregate data for one policy domain over a time
// window.
// ---------------------------------------------------------------------------

/// DMARC aggregate volume of one domain over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// Messages reported.
    pub messages: i64,
    /// Messages whose evaluated DKIM or SPF result was an aligned pass.
    pub dmarc_pass: i64,
}

/// One source IP whose mail did not pass DMARC, with the identities it used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailingSource {
    pub source_ip: String,
    /// Messages from this IP that did not pass DMARC.
    pub messages: i64,
    /// Distinct SPF-checked domains (MAIL FROM or HELO), sorted.
    pub spf_domains: Vec<String>,
    /// Distinct DKIM `d=` domains, sorted.
    pub dkim_domains: Vec<String>,
    /// Distinct DKIM selectors, sorted.
    pub dkim_selectors: Vec<String>,
}

/// The read queries the onboarding checklist needs. `since` is unix
/// seconds; a report counts when its `date_begin` is at or after it.
pub trait ChecklistQueries {
    /// Distinct UTC days on which an aggregate report period for `domain`
    /// began.
    fn aggregate_days(&self, domain: &str, since: i64) -> Result<i64, StoreError>;
    /// Total and DMARC-pass message counts for `domain`.
    fn volume(&self, domain: &str, since: i64) -> Result<Volume, StoreError>;
    /// Sources with mail that did not pass DMARC, most messages first.
    fn failing_sources(
        &self,
        domain: &str,
        since: i64,
        limit: usize,
    ) -> Result<Vec<FailingSource>, StoreError>;
}

/// Each store answers the checklist through its [`RowSource`]: the
/// shaping is the same for both, only the SQL differs.
impl<S: RowSource> ChecklistQueries for S {
    fn aggregate_days(&self, domain: &str, since: i64) -> Result<i64, StoreError> {
        aggregate_days(self, domain, since)
    }

    fn volume(&self, domain: &str, since: i64) -> Result<Volume, StoreError> {
        volume(self, domain, since)
    }

    fn failing_sources(
        &self,
        domain: &str,
        since: i64,
        limit: usize,
    ) -> Result<Vec<FailingSource>, StoreError> {
        failing_sources(self, domain, since, limit)
    }
}

fn one<T>(q: RowQuery, rows: Vec<T>) -> Result<T, StoreError> {
    rows.into_iter().next().ok_or(StoreError::Column {
        what: q.what(),
        column: "(any)".into(),
        problem: "is missing: the query returned no row".into(),
    })
}

/// [`ChecklistQueries::aggregate_days`]. Column: `days`.
pub(crate) fn aggregate_days(
    src: &(impl RowSource + ?Sized),
    domain: &str,
    since: i64,
) -> Result<i64, StoreError> {
    let q = RowQuery::ChecklistDays;
    let args = [Arg::Text(Some(domain.to_owned())), Arg::Int(Some(since))];
    one(q, collect(src, q, &args, |r| r.int("days"))?)
}

/// [`ChecklistQueries::volume`]. Columns: `messages`, `dmarc_pass`.
pub(crate) fn volume(
    src: &(impl RowSource + ?Sized),
    domain: &str,
    since: i64,
) -> Result<Volume, StoreError> {
    let q = RowQuery::ChecklistVolume;
    let args = [Arg::Text(Some(domain.to_owned())), Arg::Int(Some(since))];
    let rows = collect(src, q, &args, |r| {
        Ok(Volume {
            messages: r.int("messages")?,
            dmarc_pass: r.int("dmarc_pass")?,
        })
    })?;
    one(q, rows)
}

/// [`ChecklistQueries::failing_sources`]. Columns: `source_ip`,
/// `messages`, and the comma-joined sets `spf_domains`, `dkim_domains`,
/// `dkim_selectors`.
pub(crate) fn failing_sources(
    src: &(impl RowSource + ?Sized),
    domain: &str,
    since: i64,
    limit: usize,
) -> Result<Vec<FailingSource>, StoreError> {
    let args = [
        Arg::Text(Some(domain.to_owned())),
        Arg::Int(Some(since)),
        Arg::Int(Some(i64::try_from(limit).unwrap_or(i64::MAX))),
    ];
    collect(src, RowQuery::ChecklistFailing, &args, |r| {
        Ok(FailingSource {
            source_ip: r.text("source_ip")?,
            messages: r.int("messages")?,
            spf_domains: split_set(r.opt_text("spf_domains")?),
            dkim_domains: split_set(r.opt_text("dkim_domains")?),
            dkim_selectors: split_set(r.opt_text("dkim_selectors")?),
        })
    })
}

/// One row of [`RowQuery::PruneCount`]. Columns: `policy_domain`,
/// `reports`, `records`.
pub(crate) fn pruned_domain(r: &mut Row<'_>) -> Result<PrunedDomain, StoreError> {
    Ok(PrunedDomain {
        domain: r.text("policy_domain")?,
        reports: r.int("reports")?.max(0) as u64,
        records: r.opt_int("records")?.unwrap_or(0).max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows handed out as given, whatever the query.
    struct Fixed(Vec<String>, Vec<Vec<Cell>>);

    impl RowSource for Fixed {
        fn each_row(
            &self,
            q: RowQuery,
            _: &[Arg],
            f: &mut dyn FnMut(Row<'_>) -> Result<(), StoreError>,
        ) -> Result<(), StoreError> {
            for cells in &self.1 {
                f(Row::new(q.what(), &self.0, cells.clone()))?;
            }
            Ok(())
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn shapes_by_column_name_in_any_order() {
        let src = Fixed(
            names(&["dmarc_pass", "messages"]),
            vec![vec![Cell::Int(3), Cell::Int(10)]],
        );
        let v = volume(&src, "example.com", 0).expect("volume");
        assert_eq!(
            v,
            Volume {
                messages: 10,
                dmarc_pass: 3
            }
        );
    }

    #[test]
    fn a_cell_of_another_type_names_its_column() {
        let src = Fixed(
            names(&["messages", "dmarc_pass"]),
            vec![vec![Cell::Int(10), Cell::Text("3".into())]],
        );
        let err = volume(&src, "example.com", 0).expect_err("text is not a count");
        assert!(
            matches!(&err, StoreError::Column { column, .. } if column == "dmarc_pass"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "report store query checklist volume: column dmarc_pass is text, expected an integer"
        );
    }

    #[test]
    fn a_missing_column_is_an_error_naming_it() {
        let src = Fixed(names(&["messages"]), vec![vec![Cell::Int(10)]]);
        let err = volume(&src, "example.com", 0).expect_err("no dmarc_pass");
        assert!(
            err.to_string().contains("column dmarc_pass is missing"),
            "{err}"
        );
    }

    #[test]
    fn sets_split_and_sort() {
        assert_eq!(split_set(Some("b,a,,b".into())), vec!["a", "b"]);
        assert!(split_set(None).is_empty());
    }
}
