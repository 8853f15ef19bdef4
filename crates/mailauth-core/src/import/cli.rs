//! The `import` command's arguments and driver: read each domain from its
//! source (a BIND zone file, a configured provider's `fetch`, or live DNS),
//! import it, print what is wrong with what is published to stderr, and
//! print the YAML (`--dry-run`) or merge it into the config file; with
//! `--format json`, standard output carries one JSON document instead (each
//! domain's entry, notes and, when written, outcome). The subcommand itself
//! is declared in `cli`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::merge::{Outcome, merge};
use super::{Imported, import, probe_list, read_live};
use crate::dns::Resolver;
use crate::output::{self, OutputFormat};
use crate::record::mtasts::MtaStsPolicy;
use crate::record::{Name, Zone};
use crate::validate::report::printable;
use crate::validate::{Severity, parse_nameserver};
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

fn json_domain(i: &Imported, outcome: Option<&Outcome>) -> anyhow::Result<JsonDomain> {
    // The entry is rendered once, as YAML, and read back: JSON and YAML
    // cannot disagree.
    let map: serde_json::Value = serde_saphyr::from_str(&i.yaml(0))
        .map_err(|e| anyhow::anyhow!("{}: the imported entry does not read back: {e}", i.domain))?;
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

fn print_json(doc: &JsonImport) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(doc)?;
    println!("{}", crate::output::json_terminal_safe(&text));
    Ok(())
}

/// Runs `mailauth import` against the config at `path` (`ws` when it
/// exists). Returns 0, or 1 when a domain could not be read (the others are
/// imported); errors that stop the run are the caller's.
pub fn run(path: &Path, ws: Option<&Workspace>, args: ImportArgs) -> anyhow::Result<i32> {
    let mut domains = args
        .domains
        .iter()
        .map(|d| parse_domain(d))
        .collect::<Result<Vec<Name>, String>>()
        .map_err(anyhow::Error::msg)?;
    domains.sort();
    domains.dedup();
    let default_ttl = ws.map_or(3600, |w| w.config.defaults.ttl);

    let zones: Vec<(Name, Result<Zone, String>)> = if let Some(file) = &args.zone_file {
        let [domain] = domains.as_slice() else {
            anyhow::bail!("--zone-file reads one zone: name exactly one domain");
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let parsed = crate::masterfile::parse(&text, domain)
            .map_err(|e| anyhow::anyhow!("{}:{}: {}", file.display(), e.line, e.msg))?;
        vec![(domain.clone(), Ok(parsed.zone(domain)))]
    } else if let Some(name) = &args.provider {
        let ws = ws.ok_or_else(|| {
            anyhow::anyhow!(
                "--provider reads a provider of the config, and {} does not exist",
                path.display()
            )
        })?;
        let cfg = if name.is_empty() {
            ws.config.provider.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no default `provider:` (name one with --provider NAME)",
                    path.display()
                )
            })?
        } else {
            ws.config.providers.get(name).cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no provider named `{name}` under `providers:`",
                    path.display()
                )
            })?
        };
        let provider = ws.build_provider(&cfg).map_err(anyhow::Error::msg)?;
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
                anyhow::bail!("--selector {s:?}: not a valid selector (DNS labels)");
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
            .collect::<anyhow::Result<Vec<_>>>()?;
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
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    };
    let mut text = existing.clone().unwrap_or_else(|| "domains:\n".to_string());
    let mut outcomes = Vec::new();
    for i in &imported {
        let (t, o) = merge(&text, &i.domain, |indent| i.yaml(indent), args.replace)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        text = t;
        outcomes.push((i.domain.clone(), o));
    }
    if existing.as_deref() != Some(text.as_str()) {
        // Nothing half-written: the merged file must load before it
        // replaces the old one.
        crate::config::load_str(&text, path).map_err(|e| {
            anyhow::anyhow!("the merged config would not load, nothing written: {e}")
        })?;
        crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if json {
        let domains = imported
            .iter()
            .zip(&outcomes)
            .map(|(i, (_, o))| json_domain(i, Some(o)))
            .collect::<anyhow::Result<Vec<_>>>()?;
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
) -> anyhow::Result<Vec<Option<Result<MtaStsPolicy, String>>>> {
    use crate::validate::mtasts::{ConnectTo, FetchSettings, PolicyFetcher};
    let timeout = Duration::from_secs_f64(args.timeout.max(0.1));
    let servers = args
        .nameservers
        .iter()
        .map(|s| parse_nameserver(s))
        .collect::<Result<Vec<_>, _>>()?;
    let resolver = if servers.is_empty() {
        Resolver::system_within(Some(timeout))?
    } else {
        Resolver::with_nameservers(&servers, timeout)?
    };
    let connect_to = args
        .connect_to
        .iter()
        .map(|s| s.parse::<ConnectTo>())
        .collect::<Result<Vec<_>, _>>()?;
    let fetcher = PolicyFetcher::new(FetchSettings {
        ca_files: args.ca_files.clone(),
        connect_to,
        ..FetchSettings::default()
    })?;
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
