//! Checklist queries (`mailauth checklist`, the `mailauth plan` hint):
//! read-only summaries of aggregate data for one policy domain over a time
//! window, on SQLite.

use super::*;
use crate::reports::dashq::sqlite_sum;

// ---------------------------------------------------------------------------
// Checklist queries (`mailauth checklist`, `mailauth plan` hint): read-only
// summaries of aggregate data for one policy domain over a time window.
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

impl ChecklistQueries for SqliteStore {
    fn aggregate_days(&self, domain: &str, since: i64) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT count(DISTINCT date_begin / 86400) FROM reports \
                 WHERE policy_domain = ?1 AND date_begin >= ?2",
            )
            .and_then(|mut s| s.query_row(params![domain, since], |r| r.get(0)))
            .map_err(q("checklist aggregate days"))
    }

    fn volume(&self, domain: &str, since: i64) -> Result<Volume, StoreError> {
        self.conn
            .prepare_cached(
                concat!(
                "SELECT coalesce(",
                sqlite_sum!("r.count"),
                ", 0), coalesce(",
                sqlite_sum!("CASE WHEN r.dkim_aligned = 'pass' OR r.spf_aligned = 'pass' THEN r.count ELSE 0 END"),
                ", 0) FROM records r JOIN reports p ON p.id = r.report_id \
                 WHERE p.policy_domain = ?1 AND p.date_begin >= ?2"),
            )
            .and_then(|mut s| {
                s.query_row(params![domain, since], |r| {
                    Ok(Volume {
                        messages: r.get(0)?,
                        dmarc_pass: r.get(1)?,
                    })
                })
            })
            .map_err(q("checklist volume"))
    }

    fn failing_sources(
        &self,
        domain: &str,
        since: i64,
        limit: usize,
    ) -> Result<Vec<FailingSource>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                concat!(
                "SELECT r.source_ip, ",
                sqlite_sum!("r.count"),
                " AS n, group_concat(DISTINCT r.spf_domain), \
                 group_concat(DISTINCT r.dkim_domain), group_concat(DISTINCT r.dkim_selector) \
                 FROM records r JOIN reports p ON p.id = r.report_id \
                 WHERE p.policy_domain = ?1 AND p.date_begin >= ?2 \
                 AND coalesce(r.dkim_aligned, '') <> 'pass' AND coalesce(r.spf_aligned, '') <> 'pass' \
                 GROUP BY r.source_ip ORDER BY n DESC, r.source_ip LIMIT ?3"),
            )
            .map_err(q("checklist failing sources"))?;
        let rows = stmt
            .query_map(
                params![domain, since, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    Ok(FailingSource {
                        source_ip: r.get(0)?,
                        messages: r.get(1)?,
                        spf_domains: split_set(r.get(2)?),
                        dkim_domains: split_set(r.get(3)?),
                        dkim_selectors: split_set(r.get(4)?),
                    })
                },
            )
            .map_err(q("checklist failing sources"))?;
        rows.collect::<Result<_, _>>()
            .map_err(q("checklist failing sources"))
    }
}
// --- end of checklist queries ----------------------------------------------
