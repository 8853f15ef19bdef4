//! `mailauth inspect MESSAGE`: arguments, DNS set-up, output and exit code.
//! The analysis itself is [`super::inspect`].
//!
//! Exit codes: 0 when DMARC passes and no recorded result disagrees, 3
//! (findings, as for `validate`) when DMARC does not pass or a recorded
//! result disagrees, 1 on errors.
//! Output is sanitised for the terminal (control characters from the
//! message become U+FFFD; in JSON, escapes) like every report command's.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;

use super::{Options, inspect, read_message, render_text, suggest_fixes};
use crate::output::{self, OutputFormat};
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

pub fn run(ws: Option<&Workspace>, args: InspectArgs) -> anyhow::Result<i32> {
    let now = match &args.now {
        Some(t) => crate::clock::parse_time(t)
            .with_context(|| format!("--now `{t}`: expected RFC 3339 UTC or unix seconds"))?,
        None => crate::clock::now().map_err(anyhow::Error::msg)?,
    };
    let (original, report) = match (args.failure_report, &args.message) {
        (Some(id), _) => {
            let (original, report) = stored_failure(ws, &args, id)?;
            (original, Some(report))
        }
        (None, Some(path)) => (read_message(path, args.embedded)?, None),
        (None, None) => bail!("give a MESSAGE file, `-`, or --failure-report ID"),
    };
    let resolver = if args.nameservers.is_empty() {
        crate::dns::Resolver::system()
    } else {
        crate::dns::Resolver::with_nameservers(&args.nameservers, Duration::from_secs(3))
    }
    .context("setting up DNS")?;
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
        let json = serde_json::to_string_pretty(&result).context("serialising the result")?;
        writeln!(out, "{}", crate::reports::cli::json_terminal_safe(&json))?;
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
) -> anyhow::Result<(super::message::Original, StoredFailure)> {
    use crate::reports::parse::ReportKind;
    let choice = args.store.choose_in(ws)?;
    // Read-only: nothing is created (a typo must not make a file),
    // migrated or written.
    let Some(store) = choice.open_read_only()? else {
        bail!(
            "no report database at {} (give --db or --store)",
            choice.url.describe()
        );
    };
    let Some(detail) = store.show(ReportKind::Failure, id)? else {
        bail!("no failure report #{id} in the report store (see `mailauth reports list`)");
    };
    let crate::reports::store::ReportDetails::Failure(details) = &detail.details else {
        bail!("failure report #{id}: the store returned another kind of report");
    };
    let field = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let Some(headers) = field(&details.original_headers) else {
        bail!("failure report #{id} carries no original header fields to inspect");
    };
    let source_ip = match field(&details.source_ip) {
        Some(ip) => Some(ip.parse::<IpAddr>().with_context(|| {
            format!("failure report #{id}: Source-IP `{ip}` is not an IP address")
        })?),
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
