//! A loaded configuration and what it implies: the providers each domain
//! is pushed to, and the desired records of each domain. The CLI commands
//! (plan, apply, emit, validate, …) start from here.

use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigError, ProviderConfig};
use crate::desired::{self, DesiredError, PublishedDkim};
use crate::diff::Desired;
use crate::plan::{self, Plan};
use crate::provider::Provider;
use crate::provider::zonefile::ZoneFileProvider;
use crate::record::Name;

pub struct Workspace {
    pub config: Config,
    pub path: PathBuf,
    /// Directory of the config file; relative paths in it start here.
    pub base: PathBuf,
}

/// Zones are planned and applied this many at a time.
pub const CONCURRENCY: usize = 16;

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

    /// The provider of a domain (the config's default provider; the
    /// embedded zone-file provider on `./zones` when none is configured).
    pub fn provider(&self) -> Box<dyn Provider> {
        match &self.config.provider {
            Some(ProviderConfig::Zonefile { dir, nameservers }) => Box::new(ZoneFileProvider::new(
                self.resolve(dir),
                nameservers
                    .iter()
                    .filter_map(|n| Name::parse(n).ok())
                    .collect(),
                self.config.defaults.ttl,
            )),
            None => Box::new(
                ZoneFileProvider::new(self.resolve("zones"), Vec::new(), self.config.defaults.ttl)
                    .with_label("zones"),
            ),
        }
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
        let d = self
            .config
            .domains
            .iter()
            .find(|(k, _)| Name::parse(&k.value).ok().as_ref() == Some(domain))
            .map(|(_, d)| d)
            .ok_or_else(|| DesiredError {
                domain: domain.to_string(),
                field: String::new(),
                message: "not in the config".into(),
            })?;
        desired::desired(&self.config, domain, d, &self.published_keys(domain))
    }

    /// Plans the selected domains, concurrently.
    pub fn plan(&self, domains: &[Name]) -> Plan {
        let provider = self.provider();
        let zones = crate::par::map(domains, CONCURRENCY, |name| match self.desired(name) {
            Ok(want) => plan::plan_zone(provider.as_ref(), &want, self.config.defaults.max_deletes),
            Err(e) => plan::ZonePlan {
                zone: name.to_string(),
                provider: provider.id(),
                version: String::new(),
                exists: false,
                changes: Vec::new(),
                conflicts: Vec::new(),
                notes: Vec::new(),
                needs_force: None,
                error: Some(e.to_string()),
            },
        });
        Plan {
            format: plan::FORMAT,
            created: crate::clock::format_time(crate::clock::now().unwrap_or(0)),
            zones,
        }
    }
}
