//! `mailauth serve`'s `/metrics`: the report store's state in the
//! Prometheus text exposition format, for scraping and alerting.
//!
//! Owns the choice of metrics and their names; the format itself is
//! written by the `prometheus-client` crate (which also escapes label
//! values, all of them text from reports). Reads through the dashboard
//! queries (the daily rollup, reporters, TLS): no report table is scanned
//! record by record, so a scrape costs what the overview costs. Leaves
//! HTTP to `reports::serve`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::reports::dashboard::{self, DashboardError};
use crate::reports::dashq::{DashFilter, DashboardQueries};

type Labels = Vec<(&'static str, String)>;

/// Renders the metrics of the store (all time, every domain).
pub fn render(store: &mut dyn DashboardQueries) -> Result<String, DashboardError> {
    let o = dashboard::overview(store, &DashFilter::default())?;
    let mut reg = Registry::with_prefix("mailauth");
    let messages = Family::<Labels, Gauge>::default();
    let passed = Family::<Labels, Gauge>::default();
    let pass_ratio = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let last_day = Family::<Labels, Gauge>::default();
    for d in &o.domains {
        let l = vec![("domain", d.domain.clone())];
        messages.get_or_create(&l).set(d.totals.messages);
        passed.get_or_create(&l).set(d.totals.dmarc_pass);
        if let Some(p) = d.totals.dmarc_pass_pct {
            pass_ratio.get_or_create(&l).set(p / 100.0);
        }
        if let Some(t) = d
            .days
            .last()
            .and_then(|day| crate::clock::parse_time(&day.date))
        {
            last_day.get_or_create(&l).set(t);
        }
    }
    reg.register(
        "dmarc_messages",
        "Messages in stored DMARC aggregate reports, per domain",
        messages,
    );
    reg.register(
        "dmarc_pass_messages",
        "Messages that passed DMARC (aligned DKIM or SPF), per domain",
        passed,
    );
    reg.register(
        "dmarc_pass_ratio",
        "Share of messages that passed DMARC (0 to 1), per domain",
        pass_ratio,
    );
    reg.register(
        "dmarc_last_report_day_timestamp_seconds",
        "Start (UTC) of the last day or bucket with aggregate data, per domain",
        last_day,
    );
    let reports = Family::<Labels, Gauge>::default();
    let reporter_last = Family::<Labels, Gauge>::default();
    for r in &o.reporters {
        let l = vec![("reporter", r.key.clone())];
        reports.get_or_create(&l).set(r.reports);
        reporter_last.get_or_create(&l).set(r.last_end);
    }
    reg.register(
        "reports_ingested",
        "Aggregate reports stored, per reporter (normalised key)",
        reports,
    );
    reg.register(
        "reporter_last_report_timestamp_seconds",
        "End of the latest report period, per reporter (normalised key)",
        reporter_last,
    );
    let tls_ok = Family::<Labels, Gauge>::default();
    let tls_failed = Family::<Labels, Gauge>::default();
    for t in &o.tls {
        let l = vec![
            ("policy_domain", t.policy_domain.clone()),
            ("policy_type", t.policy_type.clone()),
        ];
        tls_ok.get_or_create(&l).set(t.successful);
        tls_failed.get_or_create(&l).set(t.failed);
    }
    reg.register(
        "tlsrpt_successful_sessions",
        "Successful TLS sessions reported (TLS-RPT), per policy",
        tls_ok,
    );
    reg.register(
        "tlsrpt_failed_sessions",
        "Failed TLS sessions reported (TLS-RPT), per policy",
        tls_failed,
    );
    let failures = Gauge::<i64>::default();
    failures.set(i64::try_from(o.failures.len()).unwrap_or(i64::MAX));
    reg.register(
        "failure_reports_latest",
        "DMARC failure reports among the latest listed (at most 20)",
        failures,
    );
    let mut out = String::new();
    encode(&mut out, &reg).map_err(|e| DashboardError::Metrics(e.to_string()))?;
    Ok(out)
}
