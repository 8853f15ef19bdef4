//! `mailauth inspect MESSAGE`: arguments, DNS set-up, output and exit code.
//! The analysis itself is [`super::inspect`].
//!
//! Exit codes: 0 when DMARC passes and no recorded result disagrees, 2 when
//! DMARC does not pass or a recorded result disagrees, 1 on errors.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::{Options, inspect, read_message, render_text, suggest_fixes};
use crate::workspace::Workspace;

#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// The message file (RFC 5322, LF or CRLF line endings, an mbox `From `
    /// line is skipped), or `-` for standard input.
    pub message: String,
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
    /// Print the full result as JSON.
    #[arg(long)]
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
    let raw = read_message(&args.message, args.embedded)?;
    let resolver = if args.nameservers.is_empty() {
        crate::dns::Resolver::system()
    } else {
        crate::dns::Resolver::with_nameservers(&args.nameservers, Duration::from_secs(3))
    }
    .context("setting up DNS")?;
    let opts = Options {
        trusted: args.trusted.clone(),
        ip: args.ip,
        now: u64::try_from(now).unwrap_or(0),
    };
    let mut result = inspect(&raw, &resolver, &opts);
    if let Some(ws) = ws {
        result.fixes = suggest_fixes(ws, &result);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).context("serialising the result")?
        );
    } else {
        print!("{}", render_text(&result));
    }
    Ok(if result.is_clean() { 0 } else { 2 })
}
