//! `mailauth inspect MESSAGE`: arguments, DNS set-up, output and exit code.
//! The analysis itself is [`super::inspect`].
//!
//! Exit codes: 0 when DMARC passes and no recorded result disagrees, 3
//! (findings, as for `validate`) when DMARC does not pass or a recorded
//! result disagrees; errors are [`InspectCliError`], whose exit codes are
//! `cli::exit`'s.
//! Output is sanitised for the terminal (control characters from the
//! message become U+FFFD; in JSON, escapes) like every report command's.

use std::io::Write as _;
use std::net::{AddrParseError, IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;

use super::{InspectError, Options, inspect, read_message, render_text, suggest_fixes};
use crate::clock::TimeError;
use crate::dns::ResolveError;
use crate::output::{self, OutputFormat};
use crate::reports::store::StoreError;
use crate::reports::store_cli::StoreCliError;
use crate::workspace::Workspace;

/// The formats of `inspect`.
const FORMATS: &[OutputFormat] = &[OutputFormat::Text, OutputFormat::Json];

#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// The message file (RFC 5322, LF or CRLF line endings, an mbox `From `
    /// line is skipped), or `-` for standard input.
    #[arg(required_unless_present = "failure_report")]
    pub message: Option<String>,
    /// Inspect the original message of stored DMARC failure report ID (see
    /// `mailauth reports list`): its header fields, with the source IP the
    /// reporter recorded as the connecting IP unless --ip is given.
    #[arg(long, value_name = "ID", value_parser = parse_failure_id, conflicts_with_all = ["message", "embedded"])]
    pub failure_report: Option<i64>,
    /// The report store for --failure-report.
    #[command(flatten)]
    pub store: crate::reports::store_cli::StoreOptions,
    /// Check SPF for this connecting IP instead of the one recorded by the
    /// trusted Received field.
    #[arg(long)]
    pub ip: Option<IpAddr>,
    /// Your organisation's receiving hosts and authserv-ids (repeatable or
    /// comma-separated; `.example.com` matches every host under it).
    #[arg(long, value_delimiter = ',')]
    pub trusted: Vec<String>,
    /// Ask this DNS server (IP or IP:PORT, repeatable) instead of the
    /// system resolver.
    #[arg(long = "nameserver", value_parser = parse_nameserver)]
    pub nameservers: Vec<SocketAddr>,
    /// Output format: text, or json (the full result).
    #[arg(long, default_value = "text", value_parser = output::parser(FORMATS))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Evaluate as of this time (RFC 3339 UTC or unix seconds) instead of
    /// now: signature expiry and SPF `%{t}`.
    #[arg(long)]
    pub now: Option<String>,
    /// The message is a DMARC failure report (RFC 6591) or a bounce:
    /// inspect the original message embedded in it.
    #[arg(long)]
    pub embedded: bool,
}

/// Why `inspect` stopped: the arguments (`--now`, no message), the clock,
/// the message, the report store of `--failure-report` and the report in
/// it, DNS, or the output.
#[derive(Debug, thiserror::Error)]
pub enum InspectCliError {
    /// A `--now` that is not a time.
    #[error("--now `{value}`: expected RFC 3339 UTC or unix seconds")]
    Now { value: String },
    /// Neither a message nor `--failure-report`.
    #[error("give a MESSAGE file, `-`, or --failure-report ID")]
    NoMessage,
    /// A `MAILAUTH_NOW` that is not a time.
    #[error("MAILAUTH_NOW")]
    Clock(#[source] TimeError),
    /// The message cannot be read, is not one, or embeds none.
    #[error(transparent)]
    Message(#[from] InspectError),
    /// The store options of `--failure-report`.
    #[error(transparent)]
    StoreCli(#[from] StoreCliError),
    /// `--failure-report` and no store where the options point (nothing is
    /// created).
    #[error("no report database at {0} (give --db or --store)")]
    NoStore(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No failure report with this id in the store.
    #[error("no failure report #{id} in the report store (see `mailauth reports list`)")]
    NoReport { id: i64 },
    /// The store answered with another kind of report.
    #[error("failure report #{id}: the store returned another kind of report")]
    WrongKind { id: i64 },
    /// The stored report has no header fields of the original message.
    #[error("failure report #{id} carries no original header fields to inspect")]
    NoHeaders { id: i64 },
    /// The stored report's Source-IP is not an address.
    #[error("failure report #{id}: Source-IP `{ip}` is not an IP address")]
    SourceIp {
        id: i64,
        ip: String,
        #[source]
        source: AddrParseError,
    },
    /// The resolver could not be built.
    #[error("setting up DNS")]
    Dns(#[source] ResolveError),
    /// Rendering `--format json`.
    #[error("serialising the result")]
    Json(#[source] serde_json::Error),
    /// Writing the command's output.
    #[error(transparent)]
    Output(#[from] std::io::Error),
}

/// `7` or `failure:7`, as `mailauth reports list` shows it.
fn parse_failure_id(s: &str) -> Result<i64, String> {
    s.strip_prefix("failure:")
        .unwrap_or(s)
        .parse::<i64>()
        .map_err(|_| format!("`{s}` is not a failure report id (like `7` or `failure:7`)"))
}

fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("`{s}` is neither IP nor IP:PORT"))
}

pub fn run(ws: Option<&Workspace>, args: InspectArgs) -> Result<i32, InspectCliError> {
    let now = match &args.now {
        Some(t) => {
            crate::clock::parse_time(t).ok_or_else(|| InspectCliError::Now { value: t.clone() })?
        }
        None => crate::clock::clock(None).map_err(InspectCliError::Clock)?.0,
    };
    let (original, report) = match (args.failure_report, &args.message) {
        (Some(id), _) => {
            let (original, report) = stored_failure(ws, &args, id)?;
            (original, Some(report))
        }
        (None, Some(path)) => (read_message(path, args.embedded)?, None),
        (None, None) => return Err(InspectCliError::NoMessage),
    };
    let resolver = if args.nameservers.is_empty() {
        crate::dns::Resolver::system()
    } else {
        crate::dns::Resolver::with_nameservers(&args.nameservers, Duration::from_secs(3))
    }
    .map_err(InspectCliError::Dns)?;
    let opts = Options {
        trusted: args.trusted.clone(),
        ip: args.ip.or(report.as_ref().and_then(|r| r.source_ip)),
        ip_source: (args.ip.is_none() && report.as_ref().is_some_and(|r| r.source_ip.is_some()))
            .then(|| "the failure report's Source-IP".to_string()),
        now: u64::try_from(now).unwrap_or(0),
        headers_only: original.headers_only,
    };
    let mut result = inspect(&original.bytes, &resolver, &opts);
    if let Some(r) = &report {
        result.notes.insert(0, r.describe());
    }
    if let Some(ws) = ws {
        result.fixes = suggest_fixes(ws, &result);
    }
    // Header fields and DNS answers are the sender's text: nothing of it
    // reaches the terminal as a control character.
    let mut out = crate::reports::cli::PipeStdout::lock();
    if OutputFormat::chosen(args.format, args.json) == OutputFormat::Json {
        let json = crate::output::json_for_terminal(&result).map_err(InspectCliError::Json)?;
        writeln!(out, "{json}")?;
    } else {
        write!(
            out,
            "{}",
            crate::reports::dashboard::text::terminal_safe(&render_text(&result))
        )?;
    }
    out.flush()?;
    Ok(if result.is_clean() {
        0
    } else {
        crate::validate::cli::FINDINGS
    })
}

/// What a stored failure report says about the message it carries.
struct StoredFailure {
    id: i64,
    reporter: String,
    reported_domain: String,
    feedback_type: Option<String>,
    arrival_date: Option<String>,
    source_ip: Option<IpAddr>,
}

impl StoredFailure {
    fn describe(&self) -> String {
        let mut out = format!(
            "failure report #{} from {} about {} ({}",
            self.id,
            if self.reporter.is_empty() {
                "an unnamed reporter"
            } else {
                &self.reporter
            },
            self.reported_domain,
            self.feedback_type.as_deref().unwrap_or("feedback"),
        );
        if let Some(d) = &self.arrival_date {
            out.push_str(&format!(", arrival {d}"));
        }
        if let Some(ip) = self.source_ip {
            out.push_str(&format!(", source IP {ip}"));
        }
        out.push_str("): evaluated now, not as of its arrival");
        out
    }
}

/// Loads failure report `id` from the report store: the original header
/// fields it carries (RFC 6591 §3) and the reporter's view of the message.
fn stored_failure(
    ws: Option<&Workspace>,
    args: &InspectArgs,
    id: i64,
) -> Result<(super::message::Original, StoredFailure), InspectCliError> {
    use crate::reports::parse::ReportKind;
    let choice = args.store.choose_in(ws)?;
    // Read-only: nothing is created (a typo must not make a file),
    // migrated or written.
    let Some(store) = choice.open_read_only()? else {
        return Err(InspectCliError::NoStore(choice.url.describe()));
    };
    let Some(detail) = store.show(ReportKind::Failure, id)? else {
        return Err(InspectCliError::NoReport { id });
    };
    let crate::reports::store::ReportDetails::Failure(details) = &detail.details else {
        return Err(InspectCliError::WrongKind { id });
    };
    let field = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let Some(headers) = field(&details.original_headers) else {
        return Err(InspectCliError::NoHeaders { id });
    };
    let source_ip = match field(&details.source_ip) {
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|source| InspectCliError::SourceIp { id, ip, source })?,
        ),
        None => None,
    };
    let mut bytes = headers.into_bytes();
    // The stored copy is the header section; end it like a message.
    while bytes.ends_with(b"\n") || bytes.ends_with(b"\r") {
        bytes.pop();
    }
    bytes.extend_from_slice(b"\r\n\r\n");
    let report = StoredFailure {
        id,
        reporter: detail.row.org.clone(),
        reported_domain: detail.row.domain.clone(),
        feedback_type: Some(details.feedback_type.clone()).filter(|s| !s.is_empty()),
        arrival_date: Some(detail.row.begin.clone()).filter(|d| !d.is_empty()),
        source_ip,
    };
    Ok((
        super::message::Original {
            bytes,
            headers_only: true,
        },
        report,
    ))
}
