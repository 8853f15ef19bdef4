//! `mailauth spf check`: evaluate RFC 7208 check_host() for one connection
//! over real DNS (the system resolver or `--nameserver`) and explain the
//! verdict. Only wiring: the evaluation is `spf::check_sender`. Its
//! errors are [`SpfCliError`]; which exit code each gets is the binary's.

use std::net::IpAddr;
use std::time::Duration;

use super::{CheckOptions, SpfResult, check_sender};
use crate::dns::{NameserverError, ResolveError, Resolver};
use crate::output::{self, OutputFormat};

/// The formats of `spf check`.
const FORMATS: &[OutputFormat] = &[OutputFormat::Text, OutputFormat::Json];

#[derive(Debug, clap::Args)]
pub struct SpfArgs {
    #[command(subcommand)]
    pub command: SpfCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SpfCommand {
    /// Evaluate SPF for a client IP and a MAIL FROM (or HELO) identity.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The SMTP client's IP address.
    #[arg(long)]
    pub ip: IpAddr,
    /// The MAIL FROM address (empty or `<>` checks the HELO identity).
    #[arg(long, default_value = "")]
    pub sender: String,
    /// The HELO/EHLO name.
    #[arg(long)]
    pub helo: Option<String>,
    /// Ask these servers instead of the system resolver (repeatable).
    #[arg(long = "nameserver", value_name = "IP[:PORT]")]
    pub nameservers: Vec<String>,
    /// Seconds per DNS query.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
    /// Output format: text, or json.
    #[arg(long, default_value = "text", value_parser = output::parser(FORMATS))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// Why `spf check` gave no result.
#[derive(Debug, thiserror::Error)]
pub enum SpfCliError {
    /// A `--nameserver` that is neither IP nor IP:PORT.
    #[error(transparent)]
    Nameserver(#[from] NameserverError),
    /// The resolver could not be built.
    #[error(transparent)]
    Resolver(#[from] ResolveError),
    /// Rendering `--format json`.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Exit code 0 for `pass`, 3 (findings) for any other result; errors are
/// the caller's.
pub fn run(args: SpfArgs) -> Result<i32, SpfCliError> {
    let SpfCommand::Check(args) = args.command;
    let resolver = if args.nameservers.is_empty() {
        Resolver::system()?
    } else {
        let servers = args
            .nameservers
            .iter()
            .map(|s| crate::dns::parse_nameserver(s))
            .collect::<Result<Vec<_>, _>>()?;
        Resolver::with_nameservers(&servers, Duration::from_secs(args.timeout))?
    };
    let outcome = check_sender(
        &resolver,
        args.ip,
        &args.sender,
        args.helo.as_deref(),
        &CheckOptions::default(),
    );
    if OutputFormat::chosen(args.format, args.json) == OutputFormat::Json {
        // The explanation quotes published records, which are anyone's text.
        println!("{}", crate::output::json_for_terminal(&outcome)?);
    } else {
        println!("{outcome}");
    }
    Ok(if outcome.result == SpfResult::Pass {
        0
    } else {
        crate::validate::cli::FINDINGS
    })
}
