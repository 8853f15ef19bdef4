//! The `import` command's arguments and driver: read each domain from its
//! source (a BIND zone file, a configured provider's `fetch`, or live DNS),
//! import it, print what is wrong with what is published to stderr, and
//! print the YAML (`--dry-run`) or merge it into the config file; with
//! `--format json`, standard output carries one JSON document instead (each
//! domain's entry, notes and, when written, outcome). The subcommand itself
//! is declared in `cli`. Its errors are [`ImportCliError`]; which exit code
//! each gets is the binary's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::merge::{MergeError, Outcome, merge};
use super::{Imported, import, probe_list, read_live};
use crate::config::ConfigError;
use crate::dns::Resolver;
use crate::masterfile::ParseError;
use crate::output::{self, OutputFormat};
use crate::provider::ProviderError;
use crate::record::mtasts::MtaStsPolicy;
use crate::record::{Name, Zone};
use crate::validate::mtasts::PolicyError;
use crate::validate::report::printable;
use crate::validate::{ResolverFlagsError, Severity};
use crate::workspace::{Workspace, parse_domain};

/// The formats of `import`.
const FORMATS: &[OutputFormat] = &[OutputFormat::Text, OutputFormat::Json];

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// Domains to import.
    #[arg(required = true)]
    pub domains: Vec<String>,
    /// Read the domain from this BIND master file (one domain only).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["provider", "nameservers"])]
    pub zone_file: Option<PathBuf>,
    /// Read through a configured provider's API: the default `provider:`,
    /// or the one named under `providers:` (`--provider=NAME`). Lists every
    /// DKIM selector.
    #[arg(
        long,
        value_name = "NAME",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    pub provider: Option<String>,
    /// Read live DNS through this server instead of the system resolver:
    /// IP or IP:PORT. Repeatable.
    #[arg(long = "nameserver", value_name = "IP[:PORT]")]
    pub nameservers: Vec<String>,
    /// A DKIM selector to look for in live DNS besides the common ones.
    /// Repeatable.
    #[arg(long = "selector", value_name = "SELECTOR")]
    pub selectors: Vec<String>,
    /// Print the YAML instead of writing the config file.
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite the entry of a domain the config already has.
    #[arg(long)]
    pub replace: bool,
    /// Fetch each MTA-STS policy over HTTPS (as `validate` does) and
    /// declare `mta_sts:` from it; without it the `_mta-sts` record is kept
    /// under `verbatim:`.
    #[arg(long)]
    pub mta_sts_policy: bool,
    /// Trust the PEM certificates in FILE too when fetching policies.
    /// Repeatable.
    #[arg(long = "ca-file", value_name = "FILE", requires = "mta_sts_policy")]
    pub ca_files: Vec<PathBuf>,
    /// Fetch from ADDR:PORT what a URL names as HOST:PORT (like curl's
    /// option). Repeatable.
    #[arg(
        long = "connect-to",
        value_name = "HOST:PORT:ADDR:PORT",
        requires = "mta_sts_policy"
    )]
    pub connect_to: Vec<String>,
    /// Seconds one DNS query may take.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Output format: text (the YAML with `--dry-run`; notes on stderr), or
    /// json (every domain's entry, notes and outcome, on stdout).
    #[arg(long, default_value = "text", value_parser = output::parser(FORMATS))]
    pub format: OutputFormat,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// Why `import` stopped: the arguments (the domains, `--zone-file`,
/// `--provider`, `--selector`, `--nameserver`, `--timeout`, `--connect-to`),
/// the source it reads, or the config file it writes. A domain that cannot
/// be read is not one: it is reported and the others are imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportCliError {
    /// A name on the command line that is not a domain.
    #[error("{0}")]
    Domain(String),
    /// `--zone-file` with more than one domain.
    #[error("--zone-file reads one zone: name exactly one domain")]
    ZoneFileDomains,
    /// The `--zone-file` that cannot be read.
    #[error("{}", path.display())]
    ZoneFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The `--zone-file` that is not a master file, at `error.line`.
    #[error("{}:{}: {}", path.display(), error.line, error.msg)]
    ZoneFile { path: PathBuf, error: ParseError },
    /// `--provider` without a config file.
    #[error("--provider reads a provider of the config, and {} does not exist", config.display())]
    NoConfig { config: PathBuf },
    /// A bare `--provider`, and the config has no default `provider:`.
    #[error("{}: no default `provider:` (name one with --provider NAME)", config.display())]
    NoDefaultProvider { config: PathBuf },
    /// `--provider=NAME`, and the config has no such provider.
    #[error("{}: no provider named `{name}` under `providers:`", config.display())]
    NoSuchProvider { config: PathBuf, name: String },
    /// The provider could not be set up (its credentials, most often).
    /// Its message already says why: the error is not repeated as a cause.
    #[error("{0}")]
    Provider(ProviderError),
    /// A `--selector` that is not DNS labels.
    #[error("--selector {value:?}: not a valid selector (DNS labels)")]
    Selector { value: String },
    /// `--nameserver` and `--timeout`, and the resolver they make.
    #[error(transparent)]
    Resolver(#[from] ResolverFlagsError),
    /// A `--connect-to` that is not HOST:PORT:ADDR:PORT.
    #[error(transparent)]
    ConnectTo(PolicyError),
    /// The HTTPS client of `--mta-sts-policy` (a `--ca-file` that cannot be
    /// read, or the client itself).
    #[error(transparent)]
    Fetcher(PolicyError),
    /// An imported entry that is not YAML `--format json` can read back.
    #[error("{domain}: the imported entry does not read back: {error}")]
    ReadBack {
        domain: Name,
        error: Box<serde_saphyr::Error>,
    },
    /// Rendering `--format json`.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The config file cannot be read (it need not exist).
    #[error("{}", path.display())]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The config file has no block-style `domains:` to add to.
    #[error("{}", path.display())]
    Merge {
        path: PathBuf,
        #[source]
        source: MergeError,
    },
    /// The config with the entries merged does not load: nothing is
    /// written.
    #[error("the merged config would not load, nothing written: {0}")]
    MergedInvalid(ConfigError),
    /// The config file cannot be written.
    #[error("{}", path.display())]
    ConfigWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One domain in `import --format json`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct JsonDomain {
    domain: String,
    /// The config entry, as `--dry-run` prints it in YAML.
    entry: serde_json::Value,
    notes: Vec<JsonNote>,
    /// Records the config cannot represent: the next plan changes them.
    unrepresented: Vec<String>,
    /// What happened to the config file: `added`, `replaced`, `unchanged`
    /// or `kept`; absent with `--dry-run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct JsonNote {
    severity: Severity,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

/// The JSON document of `import --format json`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct JsonImport {
    domains: Vec<JsonDomain>,
    /// Domains that could not be read (the exit code is then 1).
    failed: usize,
}

fn json_domain(i: &Imported, outcome: Option<&Outcome>) -> Result<JsonDomain, ImportCliError> {
    // The entry is rendered once, as YAML, and read back: JSON and YAML
    // cannot disagree.
    let map: serde_json::Value =
        serde_saphyr::from_str(&i.yaml(0)).map_err(|error| ImportCliError::ReadBack {
            domain: i.domain.clone(),
            error: Box::new(error),
        })?;
    let entry = map
        .get(i.domain.as_str())
        .or_else(|| map.as_object().and_then(|m| m.values().next()))
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    Ok(JsonDomain {
        domain: i.domain.as_str().to_string(),
        entry,
        notes: i
            .notes
            .iter()
            .filter(|n| n.severity != Severity::Pass)
            .map(|n| JsonNote {
                severity: n.severity,
                message: n.message.clone(),
                fix: n.fix.clone(),
            })
            .collect(),
        unrepresented: i.unrepresented.clone(),
        outcome: outcome.map(|o| match o {
            Outcome::Added => "added",
            Outcome::Replaced => "replaced",
            Outcome::Unchanged => "unchanged",
            Outcome::Kept => "kept",
        }),
    })
}

fn print_json(doc: &JsonImport) -> Result<(), ImportCliError> {
    println!("{}", crate::output::json_for_terminal(doc)?);
    Ok(())
}

/// Runs `mailauth import` against the config at `path` (`ws` when it
/// exists). Returns 0, or 1 when a domain could not be read (the others are
/// imported); errors that stop the run are the caller's.
pub fn run(path: &Path, ws: Option<&Workspace>, args: ImportArgs) -> Result<i32, ImportCliError> {
    let mut domains = args
        .domains
        .iter()
        .map(|d| parse_domain(d))
        .collect::<Result<Vec<Name>, String>>()
        .map_err(ImportCliError::Domain)?;
    domains.sort();
    domains.dedup();
    let default_ttl = ws.map_or(3600, |w| w.config.defaults.ttl);

    let zones: Vec<(Name, Result<Zone, String>)> = if let Some(file) = &args.zone_file {
        let [domain] = domains.as_slice() else {
            return Err(ImportCliError::ZoneFileDomains);
        };
        let text =
            std::fs::read_to_string(file).map_err(|source| ImportCliError::ZoneFileRead {
                path: file.clone(),
                source,
            })?;
        let parsed =
            crate::masterfile::parse(&text, domain).map_err(|error| ImportCliError::ZoneFile {
                path: file.clone(),
                error,
            })?;
        vec![(domain.clone(), Ok(parsed.zone(domain)))]
    } else if let Some(name) = &args.provider {
        let ws = ws.ok_or_else(|| ImportCliError::NoConfig {
            config: path.to_path_buf(),
        })?;
        let cfg = if name.is_empty() {
            ws.config
                .provider
                .clone()
                .ok_or_else(|| ImportCliError::NoDefaultProvider {
                    config: path.to_path_buf(),
                })?
        } else {
            ws.config.providers.get(name).cloned().ok_or_else(|| {
                ImportCliError::NoSuchProvider {
                    config: path.to_path_buf(),
                    name: name.clone(),
                }
            })?
        };
        let provider = ws.build_provider(&cfg).map_err(ImportCliError::Provider)?;
        domains
            .iter()
            .map(|d| {
                let zone = match provider.fetch(d) {
                    Ok(f) if f.exists => Ok(f.zone),
                    Ok(_) => Err(format!("{}: zone {d} does not exist", provider.id())),
                    Err(e) => Err(e.to_string()),
                };
                (d.clone(), zone)
            })
            .collect()
    } else {
        let (resolver, _) = crate::validate::resolver_from_flags(&args.nameservers, args.timeout)?;
        for s in &args.selectors {
            if s.is_empty() || Name::parse(s).is_err() {
                return Err(ImportCliError::Selector { value: s.clone() });
            }
        }
        let probe = probe_list(&args.selectors);
        domains
            .iter()
            .map(|d| {
                (
                    d.clone(),
                    read_live(&resolver, d, &probe).map_err(|e| e.to_string()),
                )
            })
            .collect()
    };
    // A domain that cannot be read is reported; the others go on.
    let mut failed = 0;
    let zones: Vec<(Name, Zone)> = zones
        .into_iter()
        .filter_map(|(d, z)| match z {
            Ok(z) => Some((d, z)),
            Err(e) => {
                eprintln!("{d}: error: cannot read the zone: {}", printable(&e));
                failed += 1;
                None
            }
        })
        .collect();

    let policies = if args.mta_sts_policy {
        fetch_policies(&args, &zones)?
    } else {
        vec![None; zones.len()]
    };
    let imported: Vec<Imported> = zones
        .iter()
        .zip(&policies)
        .map(|((d, z), p)| import(d, z, default_ttl, p.as_ref().and_then(|p| p.as_ref().ok())))
        .collect();
    for ((d, _), p) in zones.iter().zip(&policies) {
        if let Some(Err(e)) = p {
            eprintln!(
                "{d}: warn: MTA-STS policy not fetched ({e}): the `_mta-sts` record is kept under `verbatim:`"
            );
        }
    }
    for i in &imported {
        for n in &i.notes {
            if n.severity == Severity::Pass {
                continue;
            }
            // Record text is anyone's: no control character reaches the
            // terminal.
            eprintln!("{}: {}: {}", i.domain, n.severity, printable(&n.message));
            if let Some(fix) = &n.fix {
                eprintln!("    fix: {}", printable(fix));
            }
        }
        for u in &i.unrepresented {
            eprintln!(
                "{}: not representable, the next plan changes it: {}",
                i.domain,
                printable(u)
            );
        }
    }

    let json = OutputFormat::chosen(args.format, args.json) == OutputFormat::Json;
    if args.dry_run && json {
        let domains = imported
            .iter()
            .map(|i| json_domain(i, None))
            .collect::<Result<Vec<_>, _>>()?;
        print_json(&JsonImport { domains, failed })?;
        return Ok(if failed > 0 { 1 } else { 0 });
    }
    if args.dry_run {
        println!("domains:");
        for i in &imported {
            print!("{}", i.yaml(2));
        }
        return Ok(if failed > 0 { 1 } else { 0 });
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(ImportCliError::ConfigRead {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut text = existing.clone().unwrap_or_else(|| "domains:\n".to_string());
    let mut outcomes = Vec::new();
    for i in &imported {
        let (t, o) =
            merge(&text, &i.domain, |indent| i.yaml(indent), args.replace).map_err(|source| {
                ImportCliError::Merge {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        text = t;
        outcomes.push((i.domain.clone(), o));
    }
    if existing.as_deref() != Some(text.as_str()) {
        // Nothing half-written: the merged file must load before it
        // replaces the old one.
        crate::config::load_str(&text, path).map_err(ImportCliError::MergedInvalid)?;
        crate::fsutil::write_atomic(path, text.as_bytes(), 0o644).map_err(|source| {
            ImportCliError::ConfigWrite {
                path: path.to_path_buf(),
                source,
            }
        })?;
    }
    if json {
        let domains = imported
            .iter()
            .zip(&outcomes)
            .map(|(i, (_, o))| json_domain(i, Some(o)))
            .collect::<Result<Vec<_>, _>>()?;
        print_json(&JsonImport { domains, failed })?;
    }
    for (d, o) in outcomes {
        let what = match o {
            Outcome::Added => "added".to_string(),
            Outcome::Replaced => "replaced".to_string(),
            Outcome::Unchanged => "already imported, unchanged".to_string(),
            Outcome::Kept => format!(
                "already in {}: kept as it is (--replace overwrites it)",
                path.display()
            ),
        };
        eprintln!("{d}: {what}");
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// The MTA-STS policy of each zone that publishes one valid `_mta-sts`
/// record, fetched the way `validate` fetches it (RFC 8461 §3.3).
fn fetch_policies(
    args: &ImportArgs,
    zones: &[(Name, Zone)],
) -> Result<Vec<Option<Result<MtaStsPolicy, String>>>, ImportCliError> {
    use crate::validate::mtasts::{ConnectTo, FetchSettings, PolicyFetcher};
    let timeout = Duration::from_secs_f64(args.timeout.max(0.1));
    let servers = args
        .nameservers
        .iter()
        .map(|s| crate::dns::parse_nameserver(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ResolverFlagsError::from)?;
    let resolver = if servers.is_empty() {
        Resolver::system_within(Some(timeout))
    } else {
        Resolver::with_nameservers(&servers, timeout)
    }
    .map_err(ResolverFlagsError::from)?;
    let connect_to = args
        .connect_to
        .iter()
        .map(|s| s.parse::<ConnectTo>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(ImportCliError::ConnectTo)?;
    let fetcher = PolicyFetcher::new(FetchSettings {
        ca_files: args.ca_files.clone(),
        connect_to,
        ..FetchSettings::default()
    })
    .map_err(ImportCliError::Fetcher)?;
    Ok(zones
        .iter()
        .map(|(d, z)| {
            let set = z.get(&d.child("_mta-sts"), &crate::record::RType::Txt)?;
            let [one] = set.data.as_slice() else {
                return None;
            };
            one.txt_value()?
                .parse::<crate::record::mtasts::MtaSts>()
                .ok()?;
            Some(
                fetcher
                    .fetch(&resolver, d.as_str())
                    .map(|f| f.policy)
                    .map_err(|e| e.to_string()),
            )
        })
        .collect())
}
