//! The `validate` command's arguments and driver: pick the domains (any
//! domain, with or without a config file), build
//! the resolver (system, or `--nameserver`) and the MTA-STS policy fetcher
//! (`--ca-file`, `--connect-to`), run the checks, print the report, and
//! turn it into an exit code. The subcommand itself is declared in `cli`.
//! Its errors are [`ValidateCliError`]; which exit code each gets is the
//! binary's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::mtasts::{
    ConnectTo, DeclaredPolicy, FetchSettings, PolicyCheck, PolicyError, PolicyFetcher,
};
use super::{ResolverFlagsError, Settings, Severity, ValidateError, Validator, parse_authority};
use crate::output::{self, OutputFormat};
use crate::record::Name;
use crate::workspace::Workspace;

/// Which findings make the exit code non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Failures and temperrors.
    Fail,
    /// Warnings too.
    Warn,
}

/// The formats of `validate`.
const FORMATS: &[OutputFormat] = &[
    OutputFormat::Text,
    OutputFormat::Json,
    OutputFormat::Markdown,
];

#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Domains to check, in the config or not (all domains of the config
    /// when none is given). Works without a config file.
    pub domains: Vec<String>,
    /// Also probe this DKIM selector in every domain. Repeatable. A domain
    /// that declares no selector has the common selectors probed too.
    #[arg(long = "selector", value_name = "SELECTOR")]
    pub selectors: Vec<String>,
    /// Resolve through this server instead of the system resolver:
    /// IP or IP:PORT (IPv6 with a port as [::1]:5353). Repeatable.
    #[arg(long = "nameserver", value_name = "IP[:PORT]")]
    pub nameservers: Vec<String>,
    /// Use this address for an authoritative name server in the
    /// propagation check instead of resolving its name: NAME=IP[:PORT].
    /// Repeatable; useful for servers on other ports or split horizons.
    #[arg(long = "authority", value_name = "NAME=IP[:PORT]")]
    pub authorities: Vec<String>,
    /// Output format: text, json, or markdown (a pull-request or issue
    /// comment).
    #[arg(long, default_value = "text", value_parser = output::parser(FORMATS))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Exit non-zero on failures only (default), or on warnings too.
    #[arg(long, value_enum, default_value_t = FailOn::Fail)]
    pub fail_on: FailOn,
    /// Seconds one DNS query may take in all (its attempts share them).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Domains checked at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub concurrency: usize,
    /// Skip the propagation check (querying every authoritative server).
    #[arg(long)]
    pub no_propagation: bool,
    /// Check only the `_mta-sts` TXT record; do not fetch the MTA-STS
    /// policy over HTTPS.
    #[arg(long)]
    pub no_mta_sts_policy: bool,
    /// Trust the PEM certificates in FILE, in addition to the system's
    /// roots, when fetching MTA-STS policies (a private PKI). Repeatable.
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,
    /// Fetch from ADDR:PORT what a URL names as HOST:PORT, keeping HOST for
    /// the certificate check, like curl's option: for testing a policy host
    /// before DNS points at it, and for split horizons. Repeatable; IPv6 as
    /// [::1].
    #[arg(long = "connect-to", value_name = "HOST:PORT:ADDR:PORT")]
    pub connect_to: Vec<String>,
    /// Check only the BIMI record; do not fetch its logo and evidence
    /// document over HTTPS.
    #[arg(long)]
    pub no_bimi_fetch: bool,
    /// Trust the PEM certificates in FILE as roots of BIMI evidence
    /// documents (VMC/CMC issuers); none are built in. Repeatable.
    #[arg(long = "bimi-ca-file", value_name = "FILE")]
    pub bimi_ca_files: Vec<PathBuf>,
    /// Seconds allowed for fetching one MTA-STS policy.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub policy_timeout: f64,
    /// Show the details of passing checks too.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Why `validate` stopped before checking any domain: the arguments (the
/// domains, `--selector`, `--timeout`, `--nameserver`, `--authority`,
/// `--policy-timeout`, `--connect-to`), or the resolver, the CA files and
/// the HTTPS client it needs.
#[derive(Debug, thiserror::Error)]
pub enum ValidateCliError {
    /// No config file and no domain named: nothing to check.
    #[error(
        "no config file and no domain named: name the domains to check (`mailauth validate example.com`)"
    )]
    NoDomain,
    /// A name that is not a domain ([`ValidateError::Selection`]).
    #[error(transparent)]
    Selection(ValidateError),
    /// A `--selector` that is not DNS labels.
    #[error("--selector {value:?}: not a valid selector (DNS labels)")]
    Selector { value: String },
    /// `--nameserver` and `--timeout`, and the resolver they make.
    #[error(transparent)]
    Resolver(#[from] ResolverFlagsError),
    /// An `--authority` that is not NAME=IP[:PORT]
    /// ([`ValidateError::Authority`]).
    #[error(transparent)]
    Authority(ValidateError),
    /// `--policy-timeout` zero, negative or not a number.
    #[error("--policy-timeout must be a positive number of seconds")]
    PolicyTimeout,
    /// A `--connect-to` that is not HOST:PORT:ADDR:PORT.
    #[error(transparent)]
    ConnectTo(PolicyError),
    /// The HTTPS client of the MTA-STS and BIMI fetches: a `--ca-file` or
    /// `--bimi-ca-file` that cannot be read or holds no certificate, or
    /// the client itself.
    #[error(transparent)]
    Fetcher(PolicyError),
}

/// Exit code of a run that found problems (the same for every command that
/// reports findings: validate, inspect, spf check).
pub const FINDINGS: i32 = 3;

/// Runs `mailauth validate`: prints the report and returns the exit code
/// (0 clean, [`FINDINGS`] when something fails, or warns with `--fail-on
/// warn`; errors that stop the run are the caller's). `color` is the
/// global `--color` resolved.
pub fn run(
    ws: Option<&Workspace>,
    args: ValidateArgs,
    color: bool,
) -> Result<i32, ValidateCliError> {
    let mut domains = match ws {
        Some(ws) => ws.select_any(&args.domains),
        None if args.domains.is_empty() => return Err(ValidateCliError::NoDomain),
        None => args
            .domains
            .iter()
            .map(|d| crate::workspace::parse_domain(d))
            .collect(),
    }
    .map_err(|message| ValidateCliError::Selection(ValidateError::Selection { message }))?;
    // The report is in name order whatever order the domains were given in.
    domains.sort();
    domains.dedup();
    for s in &args.selectors {
        if s.is_empty() || Name::parse(s).is_err() {
            return Err(ValidateCliError::Selector { value: s.clone() });
        }
    }
    let (resolver, timeout) = super::resolver_from_flags(&args.nameservers, args.timeout)?;
    // Domains of a fleet share SPF includes, MX hosts and DMARC parents:
    // each question is asked once per run.
    // Each domain's checks run on a thread of their own (`Validator::
    // validate`), which drives its queries itself: no hand-off to the
    // shared runtime's workers and back for each of the ~20 questions of a
    // domain (see `Resolver::per_thread`). With one `--nameserver`, the
    // thread sends each question and reads its answer on a plain UDP
    // socket, hickory handling only the rest (see `Resolver::plain_udp`).
    let resolver = resolver.with_run_cache().per_thread().plain_udp();
    let authorities = args
        .authorities
        .iter()
        .map(|s| parse_authority(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ValidateCliError::Authority)?;
    let settings = Settings {
        timeout,
        concurrency: args.concurrency.max(1),
        authorities,
        propagation: !args.no_propagation,
    };
    // A domain outside the config is judged on what it publishes alone,
    // exactly as `mailauth checklist` judges it.
    let desired: Vec<_> = domains
        .iter()
        .map(|d| {
            let want = match ws {
                Some(ws) if ws.in_config(d) => {
                    ws.desired_resolved(d, &resolver).map_err(|e| e.to_string())
                }
                _ => Ok(crate::diff::Desired {
                    origin: d.clone(),
                    sets: Vec::new(),
                    spf: None,
                }),
            };
            (d.clone(), want)
        })
        .collect();
    let selectors = args
        .selectors
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let mut validator = Validator::new(&resolver, settings).with_selectors(selectors, true);
    if !args.no_mta_sts_policy {
        if !(args.policy_timeout.is_finite() && args.policy_timeout > 0.0) {
            return Err(ValidateCliError::PolicyTimeout);
        }
        let connect_to = args
            .connect_to
            .iter()
            .map(|s| s.parse::<ConnectTo>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ValidateCliError::ConnectTo)?;
        let fetcher = PolicyFetcher::new(FetchSettings {
            ca_files: args.ca_files.clone(),
            connect_to,
            timeout: Duration::from_secs_f64(args.policy_timeout),
            ..FetchSettings::default()
        })
        .map_err(ValidateCliError::Fetcher)?;
        let declared: HashMap<String, DeclaredPolicy> = ws
            .iter()
            .flat_map(|ws| ws.config.domains.iter())
            .filter_map(|(name, d)| {
                let name = Name::parse(&name.value).ok()?;
                let cfg = d.mta_sts.as_ref()?;
                Some((name.as_str().to_string(), DeclaredPolicy::from_config(cfg)))
            })
            .collect();
        validator = validator.with_mta_sts_policy(PolicyCheck { fetcher, declared });
    }
    if !args.no_bimi_fetch {
        let connect_to = args
            .connect_to
            .iter()
            .map(|s| s.parse::<ConnectTo>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ValidateCliError::ConnectTo)?;
        let fetcher = PolicyFetcher::new(FetchSettings {
            ca_files: args.ca_files.clone(),
            connect_to,
            timeout: Duration::from_secs_f64(args.policy_timeout.max(0.001)),
            ..FetchSettings::default()
        })
        .map_err(ValidateCliError::Fetcher)?;
        let check = super::bimi::BimiCheck::new(fetcher, &args.bimi_ca_files)
            .map_err(ValidateCliError::Fetcher)?;
        validator = validator.with_bimi(check);
    }
    let reports = validator.validate(&desired);
    match OutputFormat::chosen(args.format, args.json) {
        OutputFormat::Json => print!("{}", super::report::render_json(&reports)),
        OutputFormat::Markdown => print!("{}", super::report::render_markdown(&reports)),
        _ => print!(
            "{}",
            super::report::render_text(&reports, color, args.verbose)
        ),
    }
    let threshold = match args.fail_on {
        FailOn::Fail => Severity::TempError,
        FailOn::Warn => Severity::Warn,
    };
    Ok(if reports.iter().any(|r| r.status >= threshold) {
        FINDINGS
    } else {
        0
    })
}
