//! A loaded configuration and what it implies: the providers each domain
//! is pushed to, and the desired records of each domain. The CLI commands
//! (plan, apply, emit, validate, …) start from here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde_saphyr::Spanned;

use crate::config::{self, Config, ConfigError, ProviderConfig};
use crate::desired::{self, DesiredError, PublishedDkim};
use crate::diff::Desired;
use crate::plan::{self, Plan};
use crate::provider::Provider;
use crate::provider::cloudflare::Cloudflare;
use crate::provider::powerdns::PowerDns;
use crate::provider::rfc2136::Rfc2136;
use crate::provider::zonefile::ZoneFileProvider;
use crate::record::Name;

pub struct Workspace {
    pub config: Config,
    pub path: PathBuf,
    /// Directory of the config file; relative paths in it start here.
    pub base: PathBuf,
    /// Config key of each domain by its parsed name, built on first use:
    /// a linear search per domain made fleet-wide commands quadratic
    /// (100,000 domains took hours).
    domain_index: OnceLock<HashMap<Name, Spanned<String>>>,
}

/// Zones are planned and applied this many at a time.
pub const CONCURRENCY: usize = 16;

/// A provider, or why it could not be built (e.g. a missing credential).
pub type ProviderResult = Result<Arc<dyn Provider>, String>;

impl Workspace {
    pub fn load(path: &Path) -> Result<Workspace, ConfigError> {
        let config = config::load(path)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(Workspace {
            config,
            path: path.to_path_buf(),
            base,
            domain_index: OnceLock::new(),
        })
    }

    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// Builds one provider from its config. Fails when credentials it
    /// refers to are missing.
    pub fn build_provider(&self, cfg: &ProviderConfig) -> Result<Arc<dyn Provider>, String> {
        Ok(match cfg {
            ProviderConfig::Zonefile { dir, nameservers } => Arc::new(
                ZoneFileProvider::new(
                    self.resolve(dir),
                    nameservers
                        .iter()
                        .filter_map(|n| Name::parse(n).ok())
                        .collect(),
                    self.config.defaults.ttl,
                )
                .with_label(dir),
            ),
            ProviderConfig::Rfc2136(c) => {
                let mut c = c.clone();
                c.secret_file = c.secret_file.map(|p| self.resolve_path(&p));
                Arc::new(Rfc2136::from_config(&c).map_err(|e| e.to_string())?)
            }
            ProviderConfig::Powerdns(c) => {
                let mut c = c.clone();
                c.secret_file = c.secret_file.map(|p| self.resolve_path(&p));
                Arc::new(PowerDns::from_config(&c).map_err(|e| e.to_string())?)
            }
            ProviderConfig::Cloudflare(c) => {
                let mut c = c.clone();
                c.secret_file = c.secret_file.map(|p| self.resolve_path(&p));
                Arc::new(Cloudflare::from_config(&c).map_err(|e| e.to_string())?)
            }
        })
    }

    fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// The providers `domain` is pushed to: the ones it names, or the
    /// default provider (zone files in `zones/` when none is configured).
    pub fn providers_for(&self, domain: &Name) -> Vec<ProviderResult> {
        let named = self
            .domain(domain)
            .map(|d| {
                d.providers
                    .iter()
                    .map(|p| p.value.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if named.is_empty() {
            let default = self
                .config
                .provider
                .clone()
                .unwrap_or(ProviderConfig::Zonefile {
                    dir: "zones".into(),
                    nameservers: Vec::new(),
                });
            return vec![self.build_provider(&default)];
        }
        named
            .iter()
            .map(|n| match self.config.providers.get(n) {
                Some(cfg) => self
                    .build_provider(cfg)
                    .map_err(|e| format!("provider `{n}`: {e}")),
                None => Err(format!("no provider named `{n}`")),
            })
            .collect()
    }

    fn domain(&self, name: &Name) -> Option<&crate::config::Domain> {
        let index = self.domain_index.get_or_init(|| {
            self.config
                .domains
                .keys()
                .filter_map(|k| Name::parse(&k.value).ok().map(|n| (n, k.clone())))
                .collect()
        });
        if let Some(d) = index.get(name).and_then(|k| self.config.domains.get(k)) {
            return Some(d);
        }
        // Not indexed: `config` was changed after the index was built.
        self.config
            .domains
            .iter()
            .find(|(k, _)| Name::parse(&k.value).ok().as_ref() == Some(name))
            .map(|(_, d)| d)
    }

    /// The domains selected by `only` (all when empty), sorted. An unknown
    /// name is an error.
    pub fn select(&self, only: &[String]) -> Result<Vec<Name>, String> {
        let all: Vec<Name> = desired::domains(&self.config)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        if only.is_empty() {
            return Ok(all);
        }
        only.iter()
            .map(|d| {
                let n = Name::parse(d)?;
                if all.contains(&n) {
                    Ok(n)
                } else {
                    Err(format!("domain `{d}` is not in {}", self.path.display()))
                }
            })
            .collect()
    }

    /// DKIM keys from the keystore that must be published for `domain`.
    pub fn published_keys(&self, _domain: &Name) -> Vec<PublishedDkim> {
        Vec::new()
    }

    pub fn desired(&self, domain: &Name) -> Result<Desired, DesiredError> {
        let d = self.domain(domain).ok_or_else(|| DesiredError {
            domain: domain.to_string(),
            field: String::new(),
            message: "not in the config".into(),
        })?;
        desired::desired(&self.config, domain, d, &self.published_keys(domain))
    }

    /// Plans the selected domains against each of their providers,
    /// concurrently. A domain or provider that fails is reported in its own
    /// zone plan; the others go on.
    pub fn plan(&self, domains: &[Name]) -> Plan {
        let jobs: Vec<(Name, ProviderResult)> = domains
            .iter()
            .flat_map(|d| {
                self.providers_for(d)
                    .into_iter()
                    .map(move |p| (d.clone(), p))
            })
            .collect();
        let zones = crate::par::map(&jobs, CONCURRENCY, |(name, provider)| {
            let failed = |provider: String, e: String| plan::ZonePlan {
                zone: name.to_string(),
                provider,
                version: String::new(),
                exists: false,
                changes: Vec::new(),
                conflicts: Vec::new(),
                notes: Vec::new(),
                needs_force: None,
                error: Some(e),
            };
            match (provider, self.desired(name)) {
                (Err(e), _) => failed("?".into(), e.clone()),
                (Ok(p), Err(e)) => failed(p.id(), e.to_string()),
                (Ok(p), Ok(want)) => {
                    plan::plan_zone(p.as_ref(), &want, self.config.defaults.max_deletes)
                }
            }
        });
        Plan {
            format: plan::FORMAT,
            created: crate::clock::format_time(crate::clock::now().unwrap_or(0)),
            zones,
        }
    }
}
