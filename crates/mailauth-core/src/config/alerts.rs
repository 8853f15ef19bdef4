//! The `alerts:` section of the config (`mailauth reports alerts`): the
//! rules' thresholds, the webhook and the mail delivery settings, as the
//! config file states them. The rules themselves, their state and the
//! delivery live in the report pipeline (`mailauth-reports`: `alerts`,
//! `smtp`); secrets are named here (an environment variable or a file),
//! never given.

use serde::Deserialize;

/// The `alerts:` section of the config; every field has a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How far back each run looks: `1d`, `12h`, `2w`.
    pub window: String,
    /// An unidentified source sending more messages than this in the
    /// window (0 turns the rule off).
    pub new_source_messages: i64,
    /// A domain's DMARC fail rate over this percentage in the window …
    pub fail_rate_percent: f64,
    /// … once it has at least this many messages (0 turns the rule off).
    pub fail_rate_min_messages: i64,
    /// A reporter whose first report falls in the window.
    pub new_reporter: bool,
    /// A catalogue service sending as a domain without being authorised
    /// by its SPF record or aligned DKIM.
    pub unauthorised_service: bool,
    /// Failing messages from suspicious sources (not forwarding, not an
    /// own service) over this in the window (0 turns the rule off).
    pub suspicious_messages: i64,
    /// A known source (one with DMARC-passing messages before the window)
    /// failing DMARC for at least this many messages in the window (0
    /// turns the rule off).
    pub known_source_fail_messages: i64,
    /// A domain's DMARC pass rate on the last complete day (UTC) lower
    /// than on the day before by more than this many percentage points …
    pub pass_rate_drop_points: f64,
    /// … when both days have at least this many messages (0 turns the
    /// rule off).
    pub pass_rate_drop_min_messages: i64,
    /// A reporter that sent at least `reporter_silent_min_reports`
    /// reports and none for more than this many days (0 turns the rule
    /// off).
    pub reporter_silent_days: i64,
    /// See `reporter_silent_days` (0 turns the rule off).
    pub reporter_silent_min_reports: i64,
    /// A failure report (RUF) for a domain whose arrival date falls in
    /// the window.
    pub failure_reports: bool,
    /// A TLS-RPT policy domain with at least this many failed sessions in
    /// the window (0 turns the rule off).
    pub tls_failed_sessions: i64,
    /// Where alerts are POSTed as JSON.
    pub webhook: Option<WebhookConfig>,
    /// Where alerts are mailed (SMTP with STARTTLS).
    pub email: Option<EmailConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            window: "1d".to_owned(),
            new_source_messages: 10,
            fail_rate_percent: 20.0,
            fail_rate_min_messages: 20,
            new_reporter: true,
            unauthorised_service: true,
            suspicious_messages: 100,
            known_source_fail_messages: 10,
            pass_rate_drop_points: 20.0,
            pass_rate_drop_min_messages: 20,
            reporter_silent_days: 3,
            reporter_silent_min_reports: 10,
            failure_reports: true,
            tls_failed_sessions: 1,
            webhook: None,
            email: None,
        }
    }
}

/// A webhook: `url` (https, or http to loopback), the bearer token from
/// an environment variable or a file (never from the config itself), and
/// the body shape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the token (relative to the config's directory).
    #[serde(default)]
    pub token_file: Option<String>,
    /// `{"text": "..."}` (Slack incoming webhooks) instead of the alerts.
    #[serde(default)]
    pub slack: bool,
}

/// The `alerts.email` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `host:port` of the MTA or submission server (port 587 or 25).
    pub server: String,
    /// Envelope and header sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// User name for AUTH PLAIN (with a password from `password_env` or
    /// `password_file`).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
    /// PEM file of the CA that signed the server's certificate (default:
    /// the system's roots).
    #[serde(default)]
    pub ca_file: Option<String>,
}
