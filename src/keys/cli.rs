//! `mailauth keys list|show|generate|rotate|import|export`: the command-line
//! face of the keystore. Owns argument shapes and what each command prints;
//! leaves parsing the config file and choosing the clock to the binary,
//! which passes them in. Nothing here prints private key material: only
//! selectors, states, dates and public keys. Its errors are
//! [`KeysCliError`]; which exit code each gets is `cli::exit`'s.

use std::io::Write;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::config::{ConfigError, FamilyConfig, KeysConfig};
use super::export::{self, ExportError};
use super::generate::key_record_value;
use super::lifecycle::{Import, LifecycleError, generate_key, import_key};
use super::store::{KeyRecord, KeyState, Keystore, StoreError};
use crate::clock::Timestamp;
use crate::output::{self, OutputFormat};

/// The formats of `keys list`.
const LIST_FORMATS: &[OutputFormat] = &[OutputFormat::Text, OutputFormat::Json, OutputFormat::Csv];

/// The formats of `keys show`.
const SHOW_FORMATS: &[OutputFormat] = &[OutputFormat::Text, OutputFormat::Json];

/// Why a `keys` command stopped: the config's `keys:` block and families,
/// the arguments (a domain, `--prefix`, a selector), the keystore, the key
/// file of `keys import`, the export, or the output.
#[derive(Debug, thiserror::Error)]
pub enum KeysCliError {
    /// An invalid `keys:` block or key family.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The domain has no family with the `--prefix` given.
    #[error("domain {domain} has no dkim selector family `{prefix}` in the config")]
    NoSuchFamily { domain: String, prefix: String },
    /// The domain has no family at all.
    #[error("domain {domain} has no dkim selector families in the config")]
    NoFamily { domain: String },
    /// The domain has several families and no `--prefix` chose one.
    #[error(
        "domain {domain} has several dkim selector families ({}); choose one with --prefix",
        prefixes.join(", ")
    )]
    SeveralFamilies {
        domain: String,
        prefixes: Vec<String>,
    },
    /// `keys show`: no key has the selector (in the `--domain` given).
    #[error("no key with selector {selector}")]
    NoKey { selector: String },
    /// `keys show`: the selector is in several domains and no `--domain`
    /// chose one.
    #[error("selector {selector} exists in several domains; add --domain")]
    SeveralKeys { selector: String },
    /// `keys export` with no `keys.export` in the config.
    #[error("keys.export is not configured")]
    NoExport,
    /// `keys export` with no active key: nothing is written.
    #[error(
        "no active key to export (nothing was written to {}): keys become active through `mailauth apply`; see `mailauth keys list`",
        dir.display()
    )]
    NothingToExport { dir: PathBuf },
    /// The `--key` file of `keys import` cannot be read.
    #[error("reading {}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Generating or adopting a key.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Export(#[from] ExportError),
    /// Writing the command's output.
    #[error(transparent)]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// One key as `keys list --json` prints it (an array of these).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct KeyListEntry<'a> {
    pub domain: &'a str,
    /// The family (config `prefix`) the key belongs to.
    pub prefix: &'a str,
    pub selector: &'a str,
    pub algorithm: super::config::Algorithm,
    /// RSA key size; null for Ed25519.
    pub bits: Option<u32>,
    pub state: KeyState,
    pub created: Timestamp,
    pub activated: Option<Timestamp>,
    pub retired: Option<Timestamp>,
}

impl<'a> KeyListEntry<'a> {
    fn of(k: &'a KeyRecord) -> Self {
        KeyListEntry {
            domain: &k.domain,
            prefix: &k.prefix,
            selector: &k.selector,
            algorithm: k.algorithm,
            bits: k.bits,
            state: k.state,
            created: k.created,
            activated: k.activated,
            retired: k.retired,
        }
    }
}

/// One key as `keys show --json` prints it: the fields of `keys list
/// --json`, then every other date, the public key and the DNS record.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct KeyShowJson<'a> {
    #[serde(flatten)]
    pub key: KeyListEntry<'a>,
    pub published: Option<Timestamp>,
    pub revoked: Option<Timestamp>,
    /// Base64 of the public key as the record's `p=` carries it.
    pub public_key: String,
    /// The key's TXT record as a master-file line.
    pub record: String,
}

/// `mailauth keys …`
#[derive(clap::Args, Debug, Clone)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum KeysCommand {
    /// List every key with its state and dates (public data only).
    List {
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Output format: text (a table), json (an array), or csv.
        #[arg(long, default_value = "text", value_parser = output::parser(LIST_FORMATS))]
        format: OutputFormat,
        /// Same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Show one key and the DNS record that publishes it.
    Show {
        /// The key's selector, e.g. `mail-2027-05`.
        selector: String,
        /// The domain, when the selector exists in several.
        #[arg(long)]
        domain: Option<String>,
        /// Output format: text, or json.
        #[arg(long, default_value = "text", value_parser = output::parser(SHOW_FORMATS))]
        format: OutputFormat,
        /// Same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Generate a key for a family now, outside its schedule. It starts
    /// pending; the next apply publishes it.
    Generate {
        /// The domain whose family gets the key.
        domain: String,
        /// The family; optional when the domain has one.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Start a rotation now: generate the successor of the active key.
    Rotate {
        /// The domain whose family rotates.
        domain: String,
        /// The family (its `prefix`); optional when the domain has one.
        #[arg(long)]
        prefix: Option<String>,
        /// Emergency (e.g. a leaked key): the new key activates as soon as
        /// it is served and its TTL has passed. The old key still signs
        /// until then, so mail keeps verifying.
        #[arg(long)]
        now: bool,
    },
    /// Adopt a key already published under SELECTOR: it becomes the
    /// family's active key and is rotated on schedule from then on.
    Import {
        /// The domain the key signs for.
        domain: String,
        /// The family that adopts the key; optional when the domain has one.
        #[arg(long)]
        prefix: Option<String>,
        /// The selector the key is published under now.
        #[arg(long)]
        selector: String,
        /// PEM private key (PKCS#8, or PKCS#1 RSA as opendkim-genkey writes).
        #[arg(long)]
        key: PathBuf,
    },
    /// Write the active keys for the signer configured in `keys.export`.
    Export,
}

fn family<'a>(
    families: &'a [(String, FamilyConfig)],
    domain: &str,
    prefix: Option<&str>,
) -> Result<&'a FamilyConfig, KeysCliError> {
    let mine: Vec<&FamilyConfig> = families
        .iter()
        .filter(|(d, _)| d == domain)
        .map(|(_, f)| f)
        .filter(|f| prefix.is_none_or(|p| f.prefix == p))
        .collect();
    match (mine.as_slice(), prefix) {
        ([one], _) => Ok(one),
        ([], Some(p)) => Err(KeysCliError::NoSuchFamily {
            domain: domain.to_string(),
            prefix: p.to_string(),
        }),
        ([], None) => Err(KeysCliError::NoFamily {
            domain: domain.to_string(),
        }),
        (_, _) => Err(KeysCliError::SeveralFamilies {
            domain: domain.to_string(),
            prefixes: mine.iter().map(|f| f.prefix.clone()).collect(),
        }),
    }
}

fn opt(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
}

/// Runs a `keys` command, printing to stdout. Returns the exit code.
pub fn run(
    args: KeysArgs,
    keys_cfg: &KeysConfig,
    families: &[(String, FamilyConfig)],
    now: Timestamp,
) -> Result<i32, KeysCliError> {
    // A closed standard output ends the command quietly (exit 141).
    let mut out = crate::reports::cli::PipeStdout::lock();
    let code = run_to(args, keys_cfg, families, now, &mut out)?;
    out.flush()?;
    Ok(code)
}

/// [`run`], printing to `out`.
pub fn run_to(
    args: KeysArgs,
    keys_cfg: &KeysConfig,
    families: &[(String, FamilyConfig)],
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<i32, KeysCliError> {
    keys_cfg.validate()?;
    for (_, f) in families {
        for w in f.validate()? {
            // On stderr: standard output carries the data (JSON, CSV).
            eprintln!("warning: {w}");
        }
    }
    let dir = &keys_cfg.dir;
    match args.command {
        KeysCommand::List {
            domain,
            format,
            json,
        } => {
            let format = OutputFormat::chosen(format, json);
            let store = Keystore::open_public(dir)?;
            if format == OutputFormat::Text {
                writeln!(
                    out,
                    "{:<24} {:<18} {:<8} {:<10} {:<21} {:<21} {:<21}",
                    "DOMAIN", "SELECTOR", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED"
                )?;
            }
            let keys = store
                .state()
                .keys
                .iter()
                .filter(|k| domain.as_ref().is_none_or(|d| *d == k.domain));
            if format == OutputFormat::Csv {
                let mut line = |fields: &[&str]| -> std::io::Result<()> {
                    let cells: Vec<String> = fields
                        .iter()
                        .map(|f| crate::reports::cli::csv_field(f))
                        .collect();
                    write!(out, "{}\r\n", cells.join(","))
                };
                line(&[
                    "domain",
                    "prefix",
                    "selector",
                    "algorithm",
                    "bits",
                    "state",
                    "created",
                    "activated",
                    "retired",
                ])?;
                let time = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
                for k in keys {
                    line(&[
                        &k.domain,
                        &k.prefix,
                        &k.selector,
                        &k.algorithm.to_string(),
                        &k.bits.map(|b| b.to_string()).unwrap_or_default(),
                        &k.state.to_string(),
                        &k.created.to_string(),
                        &time(k.activated),
                        &time(k.retired),
                    ])?;
                }
                return Ok(0);
            }
            if format == OutputFormat::Json {
                // One JSON document (an array), as every command prints.
                let list: Vec<KeyListEntry> = keys.map(KeyListEntry::of).collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
                return Ok(0);
            }
            for k in keys {
                let alg = match k.bits {
                    Some(b) => format!("{}{b}", k.algorithm),
                    None => k.algorithm.to_string(),
                };
                writeln!(
                    out,
                    "{:<24} {:<18} {:<8} {:<10} {:<21} {:<21} {:<21}",
                    k.domain,
                    k.selector,
                    alg,
                    k.state.to_string(),
                    k.created.to_string(),
                    opt(k.activated),
                    opt(k.retired)
                )?;
            }
            Ok(0)
        }
        KeysCommand::Show {
            selector,
            domain,
            format,
            json,
        } => {
            let store = Keystore::open_public(dir)?;
            let found: Vec<_> = store
                .state()
                .keys
                .iter()
                .filter(|k| k.selector == selector)
                .filter(|k| domain.as_ref().is_none_or(|d| *d == k.domain))
                .collect();
            let k = match found.as_slice() {
                [k] => *k,
                [] => return Err(KeysCliError::NoKey { selector }),
                _ => return Err(KeysCliError::SeveralKeys { selector }),
            };
            let p = (k.state != KeyState::Revoked).then_some(k.public_key.as_slice());
            let record = format!(
                "{}._domainkey.{} TXT \"{}\"",
                k.selector,
                k.domain,
                key_record_value(k.algorithm, p)
            );
            if OutputFormat::chosen(format, json) == OutputFormat::Json {
                // The fields of `keys list --json`, with every date, the
                // public key and the record.
                let doc = KeyShowJson {
                    key: KeyListEntry::of(k),
                    published: k.published,
                    revoked: k.revoked,
                    public_key: STANDARD.encode(&k.public_key),
                    record,
                };
                writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
                return Ok(0);
            }
            writeln!(out, "domain:     {}", k.domain)?;
            writeln!(out, "family:     {}", k.prefix)?;
            writeln!(out, "selector:   {}", k.selector)?;
            match k.bits {
                Some(b) => writeln!(out, "algorithm:  {} ({b} bits)", k.algorithm)?,
                None => writeln!(out, "algorithm:  {}", k.algorithm)?,
            }
            writeln!(out, "state:      {}", k.state)?;
            writeln!(out, "created:    {}", k.created)?;
            writeln!(out, "published:  {}", opt(k.published))?;
            writeln!(out, "activated:  {}", opt(k.activated))?;
            writeln!(out, "retired:    {}", opt(k.retired))?;
            writeln!(out, "revoked:    {}", opt(k.revoked))?;
            writeln!(out, "public key: {}", STANDARD.encode(&k.public_key))?;
            writeln!(out, "record:     {record}")?;
            Ok(0)
        }
        KeysCommand::Generate { domain, prefix } => {
            let cfg = family(families, &domain, prefix.as_deref())?;
            let mut store = Keystore::open(dir)?;
            let sel = generate_key(&mut store, &domain, cfg, now, false)?;
            writeln!(
                out,
                "generated {sel} for {domain} (pending; the next apply publishes it)"
            )?;
            Ok(0)
        }
        KeysCommand::Rotate {
            domain,
            prefix,
            now: emergency,
        } => {
            let cfg = family(families, &domain, prefix.as_deref())?;
            let mut store = Keystore::open(dir)?;
            if !emergency
                && let Some(k) = store
                    .state()
                    .family(&domain, &cfg.prefix)
                    .find(|k| matches!(k.state, KeyState::Pending | KeyState::Published))
            {
                writeln!(
                    out,
                    "{domain}: {} is already the next key ({}); nothing to do",
                    k.selector, k.state
                )?;
                return Ok(0);
            }
            let sel = generate_key(&mut store, &domain, cfg, now, emergency)?;
            if emergency {
                writeln!(
                    out,
                    "generated {sel} for {domain} (emergency): apply publishes it; it becomes active once served everywhere and its TTL ({}s) has passed; the current key signs until then",
                    cfg.ttl
                )?;
            } else {
                writeln!(
                    out,
                    "generated {sel} for {domain} (pending; the next apply publishes it)"
                )?;
            }
            Ok(0)
        }
        KeysCommand::Import {
            domain,
            prefix,
            selector,
            key,
        } => {
            let cfg = family(families, &domain, prefix.as_deref())?;
            let pem = std::fs::read_to_string(&key).map_err(|source| KeysCliError::KeyFile {
                path: key.clone(),
                source,
            })?;
            let mut store = Keystore::open(dir)?;
            let origin = key.display().to_string();
            import_key(
                &mut store,
                cfg,
                Import {
                    domain: &domain,
                    selector: &selector,
                    pem: &pem,
                    origin: &origin,
                },
                now,
                None,
            )?;
            writeln!(
                out,
                "imported {selector} for {domain} as the active `{}` key",
                cfg.prefix
            )?;
            Ok(0)
        }
        KeysCommand::Export => {
            let Some(ecfg) = &keys_cfg.export else {
                return Err(KeysCliError::NoExport);
            };
            let store = Keystore::open(dir)?;
            // Empty tables would make the signer stop signing: refuse, and
            // leave what it has in place.
            if crate::keys::lifecycle::signing_keys(store.state()).is_empty() {
                return Err(KeysCliError::NothingToExport {
                    dir: ecfg.dir.clone(),
                });
            }
            let report = export::export(&store, ecfg)?;
            for (d, s) in &report.keys {
                writeln!(out, "exported {s} ({d})")?;
            }
            for p in &report.deleted {
                writeln!(out, "deleted {}", p.display())?;
            }
            if report.hook_ran {
                writeln!(out, "hook ran")?;
            }
            Ok(0)
        }
    }
}
