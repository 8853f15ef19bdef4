//! A loaded configuration and what it implies: the providers each domain
//! is pushed to, and the desired records of each domain. The CLI commands
//! (plan, apply, emit, validate, …) start from here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::KeyType;
use crate::config::{self, Config, ConfigError, ProviderConfig};
use crate::desired::{self, DesiredError, PublishedDkim};
use crate::diff::Desired;
use crate::keys::config::{Algorithm, FamilyConfig, KeysConfig};
use crate::keys::lifecycle::{self, Transition};
use crate::keys::observe::DnsObserver;
use crate::keys::store::{Keystore, State};
use crate::keys::time::Timestamp;
use crate::plan::{self, Plan};
use crate::provider::Provider;
use crate::provider::cloudflare::Cloudflare;
use crate::provider::powerdns::PowerDns;
use crate::provider::rfc2136::Rfc2136;
use crate::provider::zonefile::ZoneFileProvider;
use crate::record::Name;
use serde_saphyr::Spanned;

pub struct Workspace {
    pub config: Config,
    pub path: PathBuf,
    /// Directory of the config file; relative paths in it start here.
    pub base: PathBuf,
    /// The key observer, built once per run so its answers are shared.
    observer: std::sync::OnceLock<Result<DnsObserver, String>>,
    /// The config's domain keys by name: [`Workspace::domain`] runs for
    /// every zone of a fleet, and parsing every key each time made planning
    /// quadratic.
    index: HashMap<Name, Spanned<String>>,
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
        let mut index = HashMap::with_capacity(config.domains.len());
        for key in config.domains.keys() {
            if let Ok(name) = Name::parse(&key.value) {
                index.entry(name).or_insert_with(|| key.clone());
            }
        }
        Ok(Workspace {
            config,
            path: path.to_path_buf(),
            base,
            observer: std::sync::OnceLock::new(),
            index,
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
        if let Some(d) = self
            .index
            .get(name)
            .and_then(|k| self.config.domains.get(k))
        {
            return Some(d);
        }
        // The config may have changed since `load`.
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

    /// The domains named in `only` (all of the config's when empty),
    /// whether or not the config declares them: for the commands that judge
    /// what is published (validate). Only a malformed name is an error.
    pub fn select_any(&self, only: &[String]) -> Result<Vec<Name>, String> {
        if only.is_empty() {
            return self.select(only);
        }
        only.iter().map(|d| parse_domain(d)).collect()
    }

    /// Whether the config declares `name`.
    pub fn in_config(&self, name: &Name) -> bool {
        self.domain(name).is_some()
    }

    /// The keys block with its directories resolved against the config's
    /// directory.
    pub fn keys_config(&self) -> Option<KeysConfig> {
        self.config.keys.as_ref().map(|k| {
            let mut k = k.clone();
            k.dir = self.resolve_path(&k.dir);
            if let Some(e) = &mut k.export {
                e.dir = self.resolve_path(&e.dir);
            }
            k
        })
    }

    /// Every rotated DKIM family of the config, with its domain.
    pub fn families(&self) -> Vec<(String, FamilyConfig)> {
        let mut out = Vec::new();
        for (name, d) in desired::domains(&self.config) {
            let ttl = d.ttl.unwrap_or(self.config.defaults.ttl);
            for sel in d.dkim.iter().flat_map(|k| &k.selectors) {
                if let Some(Ok(f)) = sel.family(ttl) {
                    out.push((name.to_string(), f));
                }
            }
        }
        out
    }

    /// The keystore's public state (no private key is read), or an empty
    /// state when no keystore exists yet.
    pub fn key_state(&self) -> Result<State, String> {
        let Some(k) = self.keys_config() else {
            return Ok(State::default());
        };
        if !k.dir.join("state.json").exists() {
            return Ok(State::default());
        }
        Keystore::open_public(&k.dir)
            .map(|s| s.state().clone())
            .map_err(|e| format!("keystore {}: {e}", k.dir.display()))
    }

    /// DKIM keys from the keystore that must be published for `domain`.
    pub fn published_keys(&self, domain: &Name) -> Vec<PublishedDkim> {
        match self.key_state() {
            Ok(state) => published_from(&state, domain),
            Err(_) => Vec::new(),
        }
    }

    /// The observer that tells whether a key is served everywhere.
    pub fn observer(&self) -> Result<&DnsObserver, String> {
        self.observer
            .get_or_init(|| {
                let authorities = self
                    .keys_config()
                    .map(|k| k.authorities)
                    .unwrap_or_default();
                DnsObserver::new(&authorities, std::time::Duration::from_secs(2))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The key lifecycle transitions of every family, due now or waiting.
    pub fn key_transitions(&self, now: Timestamp) -> Result<Vec<Transition>, String> {
        let families = self.families();
        let state = self.key_state()?;
        if families.is_empty() && state.keys.is_empty() {
            return Ok(Vec::new());
        }
        let observer = self.observer()?;
        Ok(lifecycle::plan(&families, &state, now, observer))
    }

    pub fn desired(&self, domain: &Name) -> Result<Desired, DesiredError> {
        let keys = self.published_keys(domain);
        self.desired_with(domain, &keys)
    }

    fn desired_with(&self, domain: &Name, keys: &[PublishedDkim]) -> Result<Desired, DesiredError> {
        let d = self.domain(domain).ok_or_else(|| DesiredError {
            domain: domain.to_string(),
            field: String::new(),
            message: "not in the config".into(),
        })?;
        desired::desired(&self.config, domain, d, keys)
    }

    /// What apply would do to the keystore now ([`lifecycle::simulate_due`]):
    /// the state it would leave and the steps it would take, in order.
    /// `None` when there are no key families and no keys.
    pub fn simulate_keys(
        &self,
        now: Timestamp,
    ) -> Result<Option<(State, Vec<Transition>)>, String> {
        let families = self.families();
        let state = self.key_state()?;
        if families.is_empty() && state.keys.is_empty() {
            return Ok(None);
        }
        let observer = self.observer()?;
        Ok(Some(lifecycle::simulate_due(
            &families, &state, now, observer,
        )))
    }

    /// The key part of a plan: the steps apply would take now (with the
    /// key state they leave, from which the plan's DKIM records come), and
    /// the steps still waiting, with what they wait for.
    fn key_plan(&self) -> KeyPlan {
        let mut kp = KeyPlan::default();
        let result = crate::keys::time::clock(None)
            .map_err(|e| e.to_string())
            .and_then(|now| {
                let Some((state, due)) = self.simulate_keys(now)? else {
                    return Ok(());
                };
                let observer = self.observer()?;
                kp.waiting = lifecycle::plan(&self.families(), &state, now, observer)
                    .into_iter()
                    .filter(|t| !t.is_due())
                    .collect();
                kp.state = Some(state);
                kp.due = due;
                Ok(())
            });
        if let Err(e) = result {
            kp.error = Some(e);
        }
        kp
    }

    /// Plans the selected domains against each of their providers,
    /// concurrently. A domain or provider that fails is reported in its own
    /// zone plan; the others go on.
    pub fn plan(&self, domains: &[Name]) -> Plan {
        let keys = self.key_plan();
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
                keys: Vec::new(),
                needs_force: None,
                error: Some(e),
            };
            let want = match &keys.state {
                Some(state) => self.desired_with(name, &published_from(state, name)),
                None => self.desired(name),
            };
            match (provider, want) {
                (Err(e), _) => failed("?".into(), e.clone()),
                (Ok(p), Err(e)) => failed(p.id(), e.to_string()),
                (Ok(p), Ok(want)) => {
                    plan::plan_zone(p.as_ref(), &want, self.config.defaults.max_deletes)
                }
            }
        });
        let mut zones = zones;
        // Key steps show on their domain's first zone plan: due ones as
        // steps apply takes (their records are among the changes), the
        // others as notes with what they wait for.
        if let Some(e) = &keys.error {
            for z in zones.iter_mut() {
                z.notes.push(format!("key rotation cannot be planned: {e}"));
            }
        }
        for t in keys.due {
            if let Some(z) = zones.iter_mut().find(|z| z.zone == t.domain) {
                z.keys.push(t);
            }
        }
        for t in keys.waiting {
            if let Some(z) = zones.iter_mut().find(|z| z.zone == t.domain) {
                z.notes.push(format!("key: {t}"));
            }
        }
        Plan {
            format: plan::FORMAT,
            created: crate::clock::format_time(crate::clock::now().unwrap_or(0)),
            zones,
        }
    }
}

/// The key part of a plan ([`Workspace::key_plan`]).
#[derive(Default)]
struct KeyPlan {
    state: Option<State>,
    due: Vec<Transition>,
    waiting: Vec<Transition>,
    error: Option<String>,
}

/// The DKIM records `state` puts in DNS for `domain`; a key apply has yet
/// to generate is `unknown`.
fn published_from(state: &State, domain: &Name) -> Vec<PublishedDkim> {
    lifecycle::published_keys(state, domain.as_str())
        .into_iter()
        .map(|k| PublishedDkim {
            selector: k.selector,
            key_type: match k.algorithm {
                Algorithm::Rsa => KeyType::Rsa,
                Algorithm::Ed25519 => KeyType::Ed25519,
            },
            unknown: !k.revoked && k.public_key.is_empty(),
            public_key: k.public_key,
            revoked: k.revoked,
        })
        .collect()
}

/// A domain named on the command line: a valid name, not the root.
pub fn parse_domain(d: &str) -> Result<Name, String> {
    let n = Name::parse(d)?;
    if n.as_str().is_empty() {
        return Err(format!("`{d}` is not a domain name"));
    }
    Ok(n)
}
