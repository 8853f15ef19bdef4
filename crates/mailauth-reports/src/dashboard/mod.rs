//! Dashboards: the same views of the report store as terminal tables
//! (`reports summary`), a static self-contained HTML site (`reports html`)
//! and live pages with JSON endpoints (`mailauth serve`).
//!
//! Owns the view assembly ([`model`], pure), source attribution
//! ([`attribution`]) and the renderers ([`html`], [`text`]). Leaves SQL to
//! `reports::dashq` (the `dash_*` queries, for either store), the sender
//! catalogue, identification and classification to `reports::sources`, and
//! HTTP to `reports::serve`.

pub mod attribution;
pub mod html;
pub mod model;
pub mod text;

use std::collections::BTreeMap;

use crate::reports::dashq::{DashFilter, DashboardQueries};
use crate::reports::store::StoreError;
use attribution::Attributor;
use model::{DomainView, Overview, RangeView};

/// Sources listed per domain page.
pub const TOP_SOURCES: usize = 25;
/// Sources summarised per domain page (services, classes, unknown
/// groups); reverse DNS is asked only for the [`TOP_SOURCES`] listed.
pub const SUMMARY_SOURCES: usize = 5_000;
/// Failure reports listed.
pub const LATEST_FAILURES: usize = 20;

/// Errors of building a dashboard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "cannot read time {value:?}: use a duration like 30d, 12h, 2w, or a date like 2026-01-31"
    )]
    Time { value: String },
    /// `MAILAUTH_NOW` is set but is not a time.
    #[error("reading the clock: {0}")]
    Clock(String),
    #[error("cannot write the metrics: {0}")]
    Metrics(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Parses `--since`/`--until`: a duration back from `now` (`30d`, `12h`,
/// `2w`), a date (`2026-01-31`), RFC 3339 UTC or unix seconds.
pub fn parse_time(value: &str, now: i64) -> Result<i64, DashboardError> {
    let err = || DashboardError::Time {
        value: value.to_owned(),
    };
    let v = value.trim();
    if let Some(unit) = v.chars().last().filter(|c| "hdw".contains(*c))
        && let Ok(n) = v[..v.len() - 1].parse::<i64>()
    {
        let secs = match unit {
            'h' => 3_600,
            'd' => 86_400,
            _ => 7 * 86_400,
        };
        return n
            .checked_mul(secs)
            .and_then(|d| now.checked_sub(d))
            .ok_or_else(err);
    }
    crate::clock::parse_time(v).ok_or_else(err)
}

fn range(f: &DashFilter) -> RangeView {
    RangeView {
        since: f.since.map(crate::clock::format_time),
        until: f.until.map(crate::clock::format_time),
    }
}

/// The overview of every domain (the source filter is ignored).
pub fn overview(
    store: &mut dyn DashboardQueries,
    f: &DashFilter,
) -> Result<Overview, DashboardError> {
    store.refresh_rollup()?;
    let daily = store.dash_daily(f)?;
    let reporters = model::merge_reporters(store.dash_reporters(f)?);
    let tls = store.dash_tls(f)?;
    let failures = store.dash_failures(f, LATEST_FAILURES)?;
    Ok(model::overview(range(f), &daily, reporters, tls, failures))
}

/// One domain's page. `f.domain` names it; `f.source` narrows sources.
pub fn domain(
    store: &mut dyn DashboardQueries,
    attr: &Attributor,
    domain: &str,
    f: &DashFilter,
) -> Result<DomainView, DashboardError> {
    let f = DashFilter {
        domain: Some(domain.to_owned()),
        ..f.clone()
    };
    store.refresh_rollup()?;
    let daily = store.dash_daily(&f)?;
    let rows: Vec<_> = daily.iter().collect();
    let (totals, days) = model::series(&rows);
    let cat = crate::reports::sources::Catalogue::builtin();
    let now = crate::clock::now().map_err(DashboardError::Clock)?;
    let view = |store: &dyn DashboardQueries,
                rows: Vec<crate::reports::dashq::SourceRow>,
                ptr_for: usize| {
        rows.into_iter()
            .enumerate()
            .map(|(i, s)| {
                let a = attr.attribute(domain, &s);
                let ptr = if i < ptr_for {
                    reverse_dns(store, attr, &s.source_ip, now)
                } else {
                    None
                };
                let asn = attr.asn(&s.source_ip);
                let id = crate::reports::sources::identify(
                    cat,
                    domain,
                    &s,
                    &a,
                    ptr.as_deref(),
                    asn.as_ref(),
                );
                model::source_view(s, a, ptr, id)
            })
            .collect::<Vec<_>>()
    };
    // Both lists from one query: the source rollup, or with a time bound
    // the domain's records.
    let (all, failing) = store.dash_sources_split(&f, SUMMARY_SOURCES + 1, TOP_SOURCES)?;
    let truncated = all.len() > SUMMARY_SOURCES;
    let all = view(
        &*store,
        all.into_iter().take(SUMMARY_SOURCES).collect(),
        TOP_SOURCES,
    );
    let senders = model::senders(&all, truncated);
    let sources = all.into_iter().take(TOP_SOURCES).collect();
    let failing_sources = view(&*store, failing, TOP_SOURCES);
    Ok(DomainView {
        domain: domain.to_owned(),
        range: range(&f),
        source: f.source.clone(),
        totals,
        days,
        sources,
        failing_sources,
        senders,
        reporters: model::merge_reporters(store.dash_reporters(&f)?),
        policy: model::policy_views(store.dash_policy_rollup(&f)?),
        tls: store.dash_tls(&f)?,
        failures: store.dash_failures(&f, LATEST_FAILURES)?,
    })
}

/// Cached reverse DNS answers are asked again (when online) after this.
pub const PTR_TTL_SECS: i64 = 30 * 86_400;

/// The reverse DNS name of `ip`: from the store's cache when fresh (or
/// whatever its age when offline), else asked and remembered with its
/// time. A store that cannot write (read-only) still answers.
fn reverse_dns(
    store: &dyn DashboardQueries,
    attr: &Attributor,
    ip: &str,
    now: i64,
) -> Option<String> {
    let cached = store.ptr_cached(ip).ok().flatten();
    if let Some((name, at)) = &cached
        && (!attr.is_online() || now.saturating_sub(*at) < PTR_TTL_SECS)
    {
        return name.clone();
    }
    match attr.ptr_lookup(ip) {
        Some(answer) => {
            let _ = store.ptr_remember(ip, answer.as_deref(), now);
            answer
        }
        None => cached.and_then(|(name, _)| name),
    }
}

/// Configured SPF records per domain, from the workspace (for attribution).
pub fn configured_spf(ws: &crate::workspace::Workspace) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(domains) = ws.select(&[]) else {
        return out;
    };
    for d in domains {
        if let Ok(desired) = ws.desired(&d)
            && let Some(v) = desired.spf.as_ref().and_then(|(r, _)| r.txt_value())
        {
            out.insert(d.to_string(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_000_000_000;
        assert_eq!(parse_time("30d", now).expect("30d"), now - 30 * 86_400);
        assert_eq!(parse_time("2w", now).expect("2w"), now - 14 * 86_400);
        assert_eq!(parse_time("12h", now).expect("12h"), now - 12 * 3_600);
        assert_eq!(parse_time("2024-10-04", now).expect("date"), 1_728_000_000);
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("99999999999999999d", now).is_err());
        // No overflow on the way back either (debug builds panicked).
        assert!(parse_time("-106751991167300d", now).is_err());
    }
}
