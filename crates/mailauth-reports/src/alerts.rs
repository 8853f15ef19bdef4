//! `mailauth reports alerts`: rules over the report store (the config's
//! `alerts:` section, with defaults), each alert fired once per new
//! condition, printed as text or JSON and delivered to a webhook and by
//! email.
//!
//! Owns the rules, the alert keys that make an alert "the same" on the
//! next run, the state of fired alerts (through the store's
//! `alerts_fired_v1` table, via [`DashboardQueries`]) and the webhook body.
//! Leaves the identification and classification of sources to
//! `reports::sources`, the SQL to `reports::dashq`, and how an HTTP request
//! is sent (TLS, same-origin redirects, retries) to `http`.
//!
//! An alert is recorded as fired only after every notifier took it: a run
//! whose webhook fails prints the alerts, exits 1, and the next run tries
//! them again.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::reports::dashboard::{self, DashboardError, attribution::Attributor};
use crate::reports::dashq::{DashFilter, DashboardQueries};
use crate::reports::sources::{self, Catalogue, Class, Method};

pub use crate::config::alerts::{AlertsConfig, WebhookConfig};

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Alert {
    /// What makes it the same alert on a later run: rule, domain, subject
    /// (and the day for conditions that may come back).
    pub key: String,
    pub rule: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub message: String,
    /// The measured value and the threshold it crossed.
    pub value: f64,
    pub threshold: f64,
}

/// What one run found.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AlertsRun {
    /// RFC 3339 UTC.
    #[schemars(with = "crate::output::Rfc3339")]
    pub generated_at: String,
    /// RFC 3339 UTC start of the window looked at.
    #[schemars(with = "crate::output::Rfc3339")]
    pub since: String,
    /// New alerts (fired before: left out).
    pub alerts: Vec<Alert>,
}

/// Errors of alerts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertsError {
    #[error("alerts.window {value:?}: {msg}")]
    Window { value: String, msg: String },
    #[error("alerts.webhook: {0}")]
    Webhook(String),
    #[error(transparent)]
    Email(#[from] crate::reports::smtp::SmtpError),
    #[error(transparent)]
    Dashboard(#[from] DashboardError),
    #[error(transparent)]
    Store(#[from] crate::reports::store::StoreError),
}

/// Sources read per domain for the known-source rule.
const KNOWN_SOURCES: usize = 10_000;
/// Newest failure reports read per domain for the failure-report rule.
const FAILURE_REPORTS: usize = 1_000;

fn day(secs: i64) -> String {
    let (y, m, d) = crate::clock::civil(secs);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Evaluates the rules over `[now - window, now)`; returns every alert
/// whose condition holds, fired before or not (see [`new_alerts`]).
pub fn evaluate(
    store: &mut dyn DashboardQueries,
    attr: &Attributor,
    cfg: &AlertsConfig,
    now: i64,
) -> Result<(i64, Vec<Alert>), AlertsError> {
    let since = dashboard::parse_time(&cfg.window, now).map_err(|e| AlertsError::Window {
        value: cfg.window.clone(),
        msg: e.to_string(),
    })?;
    if since >= now {
        return Err(AlertsError::Window {
            value: cfg.window.clone(),
            msg: "must be a span back from now, e.g. 1d".to_owned(),
        });
    }
    store.refresh_rollup()?;
    let today = day(now);
    let f = DashFilter {
        since: Some(since),
        until: Some(now),
        ..DashFilter::default()
    };
    let cat = Catalogue::builtin();
    let mut out = Vec::new();
    for domain in store.dash_domains()? {
        let fd = DashFilter {
            domain: Some(domain.clone()),
            ..f.clone()
        };
        // RFC 7489 §6.6.2: a message passes DMARC when SPF or DKIM passes
        // aligned; the rate is over the window's messages.
        let (messages, pass) = store
            .dash_daily(&fd)?
            .iter()
            .fold((0i64, 0i64), |(m, p), d| {
                (m.saturating_add(d.messages), p.saturating_add(d.dmarc_pass))
            });
        if cfg.fail_rate_min_messages > 0 && messages >= cfg.fail_rate_min_messages {
            let rate = (messages - pass) as f64 * 100.0 / messages as f64;
            if rate > cfg.fail_rate_percent {
                out.push(Alert {
                    key: format!("fail_rate/{domain}/{today}"),
                    rule: "fail_rate",
                    domain: Some(domain.clone()),
                    message: format!(
                        "{domain}: {rate:.1}% of {messages} messages failed DMARC since {} (threshold {}%)",
                        crate::clock::format_time(since),
                        cfg.fail_rate_percent
                    ),
                    value: rate,
                    threshold: cfg.fail_rate_percent,
                });
            }
        }
        if cfg.pass_rate_drop_min_messages > 0 {
            // The last complete UTC day against the day before, each with
            // enough messages to mean something.
            let last = now.div_euclid(86_400) - 1;
            let f2 = DashFilter {
                domain: Some(domain.clone()),
                since: Some((last - 1) * 86_400),
                until: Some((last + 1) * 86_400),
                source: None,
            };
            let (mut m, mut p) = ([0i64; 2], [0i64; 2]);
            for d in store.dash_daily(&f2)? {
                if let Some(i) = [last - 1, last].iter().position(|x| *x == d.day) {
                    m[i] = m[i].saturating_add(d.messages);
                    p[i] = p[i].saturating_add(d.dmarc_pass);
                }
            }
            if m.iter().all(|n| *n >= cfg.pass_rate_drop_min_messages) {
                let rate = |i: usize| p[i] as f64 * 100.0 / m[i] as f64;
                let drop = rate(0) - rate(1);
                if drop > cfg.pass_rate_drop_points {
                    let d = day(last * 86_400);
                    out.push(Alert {
                        key: format!("pass_rate_drop/{domain}/{d}"),
                        rule: "pass_rate_drop",
                        domain: Some(domain.clone()),
                        message: format!(
                            "{domain}: DMARC pass rate fell from {:.1}% ({} messages) on {} to {:.1}% ({} messages) on {d}, {drop:.1} points (threshold {})",
                            rate(0),
                            m[0],
                            day((last - 1) * 86_400),
                            rate(1),
                            m[1],
                            cfg.pass_rate_drop_points
                        ),
                        value: drop,
                        threshold: cfg.pass_rate_drop_points,
                    });
                }
            }
        }
        if cfg.known_source_fail_messages > 0 {
            // Known: DMARC-passing messages in reports before the window.
            let before = DashFilter {
                domain: Some(domain.clone()),
                since: None,
                until: Some(since),
                source: None,
            };
            let known: std::collections::BTreeSet<String> = store
                .dash_sources(&before, false, KNOWN_SOURCES)?
                .into_iter()
                .filter(|s| s.dmarc_pass > 0)
                .map(|s| s.source_ip)
                .collect();
            for s in store.dash_sources(&fd, true, KNOWN_SOURCES)? {
                let fail = s.messages.saturating_sub(s.dmarc_pass);
                if fail >= cfg.known_source_fail_messages && known.contains(&s.source_ip) {
                    let ip = crate::reports::dashboard::text::clean(&s.source_ip);
                    out.push(Alert {
                        key: format!("known_source_fails/{domain}/{ip}"),
                        rule: "known_source_fails",
                        domain: Some(domain.clone()),
                        message: format!(
                            "{domain}: known source {ip}, passing DMARC before, has {fail} of {} messages failing since {} (threshold {})",
                            s.messages,
                            crate::clock::format_time(since),
                            cfg.known_source_fail_messages
                        ),
                        value: fail as f64,
                        threshold: cfg.known_source_fail_messages as f64,
                    });
                }
            }
        }
        if cfg.failure_reports {
            // By arrival date; a report without one (or unreadable) is
            // left out rather than guessed into the window.
            for r in store.dash_failures(&fd, FAILURE_REPORTS)? {
                let Some(at) = r
                    .arrival_date
                    .as_deref()
                    .and_then(crate::inspect::received::parse_date)
                else {
                    continue;
                };
                if at < since || at >= now {
                    continue;
                }
                let clean = crate::reports::dashboard::text::clean;
                out.push(Alert {
                    key: format!("failure_report/{domain}/{}", r.id),
                    rule: "failure_report",
                    domain: Some(domain.clone()),
                    message: format!(
                        "{domain}: failure report from {} at {}: {} failed for a message from {} (MAIL FROM {})",
                        clean(r.reporter.as_deref().unwrap_or("-")),
                        crate::clock::format_time(at),
                        clean(r.auth_failure.as_deref().unwrap_or("-")),
                        clean(r.source_ip.as_deref().unwrap_or("-")),
                        clean(r.original_mail_from.as_deref().unwrap_or("-")),
                    ),
                    value: 1.0,
                    threshold: 0.0,
                });
            }
        }
        let mut suspicious = 0i64;
        let mut services: BTreeMap<String, (String, i64)> = BTreeMap::new();
        for s in store.dash_sources(&fd, false, dashboard::SUMMARY_SOURCES)? {
            let a = attr.attribute(&domain, &s);
            let ptr = store
                .ptr_cached(&s.source_ip)
                .ok()
                .flatten()
                .and_then(|(n, _)| n);
            let asn = attr.asn(&s.source_ip);
            let id = sources::identify(cat, &domain, &s, &a, ptr.as_deref(), asn.as_ref());
            let class = sources::classify(&s, &id);
            let fail = s.messages.saturating_sub(s.dmarc_pass);
            if class.class == Class::Suspicious {
                suspicious = suspicious.saturating_add(fail);
            }
            if cfg.new_source_messages > 0
                && id.method == Method::Unknown
                && s.messages > cfg.new_source_messages
            {
                let ip = crate::reports::dashboard::text::clean(&s.source_ip);
                out.push(Alert {
                    key: format!("new_source/{domain}/{ip}"),
                    rule: "new_source",
                    domain: Some(domain.clone()),
                    message: format!(
                        "{domain}: unidentified source {ip} ({}) sent {} messages, {fail} failing DMARC (threshold {})",
                        crate::reports::dashboard::text::clean(id.group.as_deref().unwrap_or("-")),
                        s.messages,
                        cfg.new_source_messages
                    ),
                    value: s.messages as f64,
                    threshold: cfg.new_source_messages as f64,
                });
            }
            if cfg.unauthorised_service
                && class.class == Class::Misconfigured
                && id.method != Method::Config
                && let (Some(sid), Some(name)) = (&id.id, &id.service)
            {
                let e = services.entry(sid.clone()).or_insert((name.clone(), 0));
                e.1 = e.1.saturating_add(fail);
            }
        }
        for (sid, (name, fail)) in services {
            out.push(Alert {
                key: format!("unauthorised_service/{domain}/{sid}"),
                rule: "unauthorised_service",
                domain: Some(domain.clone()),
                message: format!(
                    "{domain}: {name} sends as the domain but is not authorised (not in its SPF record, no aligned DKIM): {fail} messages failed DMARC"
                ),
                value: fail as f64,
                threshold: 0.0,
            });
        }
        if cfg.suspicious_messages > 0 && suspicious > cfg.suspicious_messages {
            out.push(Alert {
                key: format!("suspicious_volume/{domain}/{today}"),
                rule: "suspicious_volume",
                domain: Some(domain.clone()),
                message: format!(
                    "{domain}: {suspicious} failing messages from suspicious sources (neither forwarding nor an own service) since {} (threshold {})",
                    crate::clock::format_time(since),
                    cfg.suspicious_messages
                ),
                value: suspicious as f64,
                threshold: cfg.suspicious_messages as f64,
            });
        }
    }
    if cfg.new_reporter {
        // All time, so that "first report" means first ever.
        let all = DashFilter::default();
        for r in dashboard::model::merge_reporters(store.dash_reporters(&all)?) {
            if r.first_begin >= since && r.first_begin < now {
                let key = crate::reports::dashboard::text::clean(&r.key);
                out.push(Alert {
                    key: format!("new_reporter/{key}"),
                    rule: "new_reporter",
                    domain: None,
                    message: format!(
                        "new reporter {} ({} reports, {} messages)",
                        crate::reports::dashboard::text::clean(&r.org),
                        r.reports,
                        r.messages
                    ),
                    value: r.reports as f64,
                    threshold: 0.0,
                });
            }
        }
    }
    if cfg.reporter_silent_days > 0 && cfg.reporter_silent_min_reports > 0 {
        let all = DashFilter::default();
        let quiet = cfg.reporter_silent_days.saturating_mul(86_400);
        for r in dashboard::model::merge_reporters(store.dash_reporters(&all)?) {
            let silent = now.saturating_sub(r.last_end);
            if r.reports >= cfg.reporter_silent_min_reports && silent > quiet {
                let key = crate::reports::dashboard::text::clean(&r.key);
                // The last report's day: a reporter that comes back and
                // stops again fires again.
                out.push(Alert {
                    key: format!("reporter_silent/{key}/{}", day(r.last_end)),
                    rule: "reporter_silent",
                    domain: None,
                    message: format!(
                        "reporter {} ({} reports) sent nothing since {}: {} days (threshold {})",
                        crate::reports::dashboard::text::clean(&r.org),
                        r.reports,
                        crate::clock::format_time(r.last_end),
                        silent / 86_400,
                        cfg.reporter_silent_days
                    ),
                    value: (silent / 86_400) as f64,
                    threshold: cfg.reporter_silent_days as f64,
                });
            }
        }
    }
    if cfg.tls_failed_sessions > 0 {
        let mut failed: BTreeMap<String, i64> = BTreeMap::new();
        for t in store.dash_tls(&f)? {
            let e = failed
                .entry(t.policy_domain.to_ascii_lowercase())
                .or_insert(0);
            *e = e.saturating_add(t.failed);
        }
        for (pd, n) in failed {
            if n >= cfg.tls_failed_sessions {
                let pd = crate::reports::dashboard::text::clean(&pd);
                out.push(Alert {
                    key: format!("tls_failures/{pd}/{today}"),
                    rule: "tls_failures",
                    domain: Some(pd.clone()),
                    message: format!(
                        "{pd}: {n} TLS sessions failed (TLS-RPT) since {} (threshold {})",
                        crate::clock::format_time(since),
                        cfg.tls_failed_sessions
                    ),
                    value: n as f64,
                    threshold: cfg.tls_failed_sessions as f64,
                });
            }
        }
    }
    Ok((since, out))
}

/// The alerts not fired before, by their keys in the store.
pub fn new_alerts(
    store: &dyn DashboardQueries,
    alerts: Vec<Alert>,
) -> Result<Vec<Alert>, AlertsError> {
    let mut out = Vec::new();
    for a in alerts {
        if !store.alert_fired(&a.key)? {
            out.push(a);
        }
    }
    Ok(out)
}

/// Records the alerts as fired at `now`.
pub fn remember(
    store: &dyn DashboardQueries,
    alerts: &[Alert],
    now: i64,
) -> Result<(), AlertsError> {
    for a in alerts {
        store.alert_remember(&a.key, a.rule, now)?;
    }
    Ok(())
}

/// The text form: one line per alert.
pub fn text(run: &AlertsRun) -> String {
    let mut out = String::new();
    for a in &run.alerts {
        // Domains and names come from reports: no control characters.
        out.push_str(&format!(
            "ALERT {}: {}\n",
            a.rule,
            crate::reports::dashboard::text::clean(&a.message)
        ));
    }
    if run.alerts.is_empty() {
        out.push_str(&format!("no new alerts since {}\n", run.since));
    }
    out
}

/// The webhook's token: from the environment variable or the file the
/// config names (never from the config itself).
fn token(w: &WebhookConfig, base: &std::path::Path) -> Result<Option<String>, AlertsError> {
    if let Some(var) = &w.token_env {
        return match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_owned())),
            _ => Err(AlertsError::Webhook(format!(
                "token_env names {var}, which is not set"
            ))),
        };
    }
    if let Some(f) = &w.token_file {
        let path = base.join(f);
        return std::fs::read_to_string(&path)
            .map(|t| Some(t.trim().to_owned()))
            .map_err(|e| AlertsError::Webhook(format!("token_file {}: {e}", path.display())));
    }
    Ok(None)
}

/// POSTs the run to the webhook: https (or http to loopback only, since
/// the request carries the token), redirects followed within the origin
/// only, retried with backoff while it surely was not delivered (refused
/// connection, 429). `base`: the config's directory.
pub fn deliver_webhook(
    w: &WebhookConfig,
    base: &std::path::Path,
    run: &AlertsRun,
) -> Result<(), AlertsError> {
    use crate::http::{HttpApi, RetryPolicy, is_loopback_host};
    // The URL may hold a secret (Slack's do, in the path): errors name
    // only its origin.
    let url = reqwest::Url::parse(&w.url)
        .map_err(|e| AlertsError::Webhook(format!("url is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or("").to_owned();
    let origin = format!("{}://{host}", url.scheme());
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&host) => {}
        _ => {
            return Err(AlertsError::Webhook(format!(
                "url {origin}: https is required (plain http only to loopback), since the request carries the token"
            )));
        }
    }
    let hide = |e: String| AlertsError::Webhook(e.replace(w.url.as_str(), &origin));
    let token = token(w, base)?;
    let body = if w.slack {
        serde_json::json!({ "text": text(run) })
    } else {
        serde_json::to_value(run).map_err(|e| AlertsError::Webhook(e.to_string()))?
    };
    let api = HttpApi::new(
        Duration::from_secs(15),
        RetryPolicy {
            retries: 4,
            base: Duration::from_millis(500),
            max_shift: 4,
            max_backoff: Duration::from_secs(8),
            max_retry_after: Some(Duration::from_secs(30)),
        },
    )
    .map_err(hide)?;
    let answer = api
        .send("POST", &w.url, Some(&body), |r| match &token {
            Some(t) => r.bearer_auth(t),
            None => r,
        })
        .map_err(|e| hide(e.to_string()))?;
    if !answer.status.is_success() {
        return Err(AlertsError::Webhook(format!(
            "{origin} answered HTTP {}",
            answer.status.as_u16()
        )));
    }
    Ok(())
}

/// Mails the run's text form (see `reports::smtp`).
pub fn deliver_email(
    e: &crate::reports::smtp::EmailConfig,
    base: &std::path::Path,
    run: &AlertsRun,
    now: i64,
) -> Result<(), AlertsError> {
    let subject = format!(
        "mailauth: {} new alert{}",
        run.alerts.len(),
        if run.alerts.len() == 1 { "" } else { "s" }
    );
    crate::reports::smtp::send(e, base, &subject, &text(run), now)?;
    Ok(())
}
