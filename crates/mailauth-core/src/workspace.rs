//! A loaded configuration and what it implies: the providers each domain
//! is pushed to, and the desired records of each domain. The CLI commands
//! (plan, apply, emit, validate, …) start from here. For domains whose
//! SPF is flattened it also resolves the includes (through `spf.resolvers`
//! or the system resolver) and compares them with the upstream recorded by
//! the last apply, next to the config (`spf::flatten::state_path`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::TimeError;
use crate::clock::Timestamp;
use crate::config::KeyType;
use crate::config::{self, Config, ConfigError, ProviderConfig};
use crate::desired::{self, DesiredError, PublishedDkim};
use crate::diff::Desired;
use crate::keys::config::{Algorithm, FamilyConfig, KeysConfig};
use crate::keys::lifecycle::{self, Observer, Transition};
use crate::keys::observe::DnsObserver;
use crate::keys::store::{Keystore, State};
use crate::ownership::OwnedNames;
use crate::plan::{self, Plan};
use crate::provider::cloudflare::Cloudflare;
use crate::provider::powerdns::PowerDns;
use crate::provider::rfc2136::Rfc2136;
use crate::provider::zonefile::ZoneFileProvider;
use crate::provider::{Provider, ProviderError, ReadScope};
use crate::record::{Name, RType, RecordSet};
use crate::spf::flatten::{Flattened, UpstreamState};
use serde_saphyr::Spanned;

pub struct Workspace {
    pub config: Config,
    pub path: PathBuf,
    /// Directory of the config file; relative paths in it start here.
    pub base: PathBuf,
    /// The key observer, built once per run so its answers are shared
    /// (DNS, unless [`Workspace::with_observer`] gave another).
    observer: std::sync::OnceLock<Result<SharedObserver, String>>,
    /// The config's domain keys by name: [`Workspace::domain`] runs for
    /// every zone of a fleet, and parsing every key each time made planning
    /// quadratic.
    index: HashMap<Name, Spanned<String>>,
}

/// An observer the workspace's plans and applies share across threads.
type SharedObserver = Box<dyn Observer + Send + Sync>;

/// Zones are planned and applied this many at a time.
pub const CONCURRENCY: usize = 16;

/// A provider, or why it could not be built (e.g. a missing credential).
pub type ProviderResult = Result<Arc<dyn Provider>, String>;

/// The names a provider reads when it cannot list a zone are the ones
/// mailauth may own.
impl ReadScope for OwnedNames {
    fn initial(&self, origin: &Name) -> Vec<(Name, RType)> {
        OwnedNames::initial(self, origin)
    }
    fn follow(&self, origin: &Name, set: &RecordSet) -> Vec<(Name, RType)> {
        OwnedNames::follow(self, origin, set)
    }
}

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
    pub fn build_provider(&self, cfg: &ProviderConfig) -> Result<Arc<dyn Provider>, ProviderError> {
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
                // Which names to read when the server refuses AXFR is an
                // ownership question: the provider is told.
                Arc::new(Rfc2136::from_config(&c)?.with_read_scope(Arc::new(OwnedNames)))
            }
            ProviderConfig::Powerdns(c) => {
                let mut c = c.clone();
                c.secret_file = c.secret_file.map(|p| self.resolve_path(&p));
                Arc::new(PowerDns::from_config(&c)?)
            }
            ProviderConfig::Cloudflare(c) => {
                let mut c = c.clone();
                c.secret_file = c.secret_file.map(|p| self.resolve_path(&p));
                Arc::new(Cloudflare::from_config(&c)?)
            }
            ProviderConfig::Route53(c) => {
                Arc::new(crate::provider::route53::Route53::from_config(c)?)
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
            return vec![self.build_provider(&default).map_err(|e| e.to_string())];
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

    /// The config's block for `name`, if the config declares it.
    pub fn domain(&self, name: &Name) -> Option<&crate::config::Domain> {
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

    /// The observer that tells whether a key is served everywhere: queries
    /// to the `keys.authorities` (or the zone's NS set), unless
    /// [`Workspace::with_observer`] set another.
    pub fn observer(&self) -> Result<&dyn Observer, String> {
        self.observer
            .get_or_init(|| {
                let authorities = self
                    .keys_config()
                    .map(|k| k.authorities)
                    .unwrap_or_default();
                DnsObserver::new(&authorities, std::time::Duration::from_secs(2))
                    .map(|o| Box::new(o) as SharedObserver)
            })
            .as_ref()
            .map(|o| o.as_ref() as &dyn Observer)
            .map_err(Clone::clone)
    }

    /// This workspace with `observer` telling whether keys are served,
    /// instead of DNS queries (a fixed answer for a dry run, or a test's).
    pub fn with_observer(self, observer: impl Observer + Send + Sync + 'static) -> Workspace {
        let observer = std::sync::OnceLock::from(Ok(Box::new(observer) as SharedObserver));
        Workspace { observer, ..self }
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

    /// The flattening of `domain`'s SPF record over `dns` (`Ok(None)` when
    /// it is not flattened).
    pub fn flatten_with(
        &self,
        domain: &Name,
        dns: &dyn crate::spf::SpfDns,
    ) -> Result<Option<Flattened>, String> {
        let Some(d) = self.domain(domain) else {
            return Ok(None);
        };
        let Some(cfg) = &d.spf else {
            return Ok(None);
        };
        let settings = cfg.flatten_settings();
        if settings.mode == crate::spf::flatten::Mode::Never {
            return Ok(None);
        }
        let record = desired::declared_spf(d)?.expect("spf is declared");
        crate::spf::flatten::flatten(dns, domain.as_str(), &record, &settings)
    }

    /// The `spf.resolvers` of `domain` (empty: the system resolver).
    fn spf_servers(&self, domain: &Name) -> Vec<String> {
        self.domain(domain)
            .and_then(|d| d.spf.as_ref())
            .map(|s| s.resolvers.iter().map(|r| r.value.clone()).collect())
            .unwrap_or_default()
    }

    /// A resolver asking `servers`, or the system resolver.
    fn spf_resolver(servers: &[String]) -> Result<crate::dns::Resolver, String> {
        if servers.is_empty() {
            return crate::dns::Resolver::system().map_err(|e| e.to_string());
        }
        let addrs = servers
            .iter()
            .map(|s| crate::dns::parse_nameserver(s).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        crate::dns::Resolver::with_nameservers(&addrs, std::time::Duration::from_secs(5))
            .map_err(|e| e.to_string())
    }

    /// Flattens every selected domain that asks for it. Domains with the
    /// same `spf.resolvers` share one resolver (and its cache: a fleet's
    /// domains include the same ESPs).
    fn flatten_all(&self, domains: &[Name]) -> HashMap<Name, Result<Flattened, String>> {
        let wanted: Vec<Name> = domains
            .iter()
            .filter(|d| {
                self.domain(d)
                    .and_then(|x| x.spf.as_ref())
                    .is_some_and(|s| s.flatten != crate::spf::flatten::Mode::Never)
            })
            .cloned()
            .collect();
        let mut resolvers: HashMap<Vec<String>, Result<crate::dns::Resolver, String>> =
            HashMap::new();
        for d in &wanted {
            let servers = self.spf_servers(d);
            resolvers
                .entry(servers)
                .or_insert_with_key(|s| Self::spf_resolver(s));
        }
        let results = crate::par::map(&wanted, CONCURRENCY, |d| {
            match &resolvers[&self.spf_servers(d)] {
                Ok(r) => self.flatten_with(d, r),
                Err(e) => Err(format!("resolver: {e}")),
            }
        });
        wanted
            .into_iter()
            .zip(results)
            .filter_map(|(d, r)| r.transpose().map(|r| (d, r)))
            .collect()
    }

    /// The desired records of `domain` with its SPF flattened over `dns`,
    /// as `validate` compares them with what is published.
    pub fn desired_resolved(
        &self,
        domain: &Name,
        dns: &dyn crate::spf::SpfDns,
    ) -> Result<Desired, DesiredError> {
        let flat = self.flatten_with(domain, dns).map_err(|m| DesiredError {
            domain: domain.to_string(),
            field: "spf.flatten".into(),
            message: m,
        })?;
        let keys = self.published_keys(domain);
        let d = self.domain(domain).ok_or_else(|| DesiredError {
            domain: domain.to_string(),
            field: String::new(),
            message: "not in the config".into(),
        })?;
        desired::desired_flattened(&self.config, domain, d, &keys, flat.as_ref())
    }

    /// The desired records `zp` was planned for: its flattened SPF as
    /// planned (not resolved again), so that apply verifies exactly it.
    pub fn desired_planned(
        &self,
        domain: &Name,
        zp: &plan::ZonePlan,
    ) -> Result<Desired, DesiredError> {
        let keys = self.published_keys(domain);
        let d = self.domain(domain).ok_or_else(|| DesiredError {
            domain: domain.to_string(),
            field: String::new(),
            message: "not in the config".into(),
        })?;
        desired::desired_flattened(&self.config, domain, d, &keys, zp.spf_flattening.as_ref())
    }

    /// Records what the flattened includes of the applied zone plans
    /// resolved to, in the state file next to the config.
    pub fn record_upstream(&self, applied: &[&plan::ZonePlan]) -> Result<(), String> {
        let path = crate::spf::flatten::state_path(&self.path);
        let mut state = UpstreamState::load(&path)?;
        let before = state.clone();
        state.format = 1;
        for zp in applied {
            match &zp.spf_flattening {
                Some(f) => {
                    state.domains.insert(zp.zone.clone(), f.upstream.clone());
                }
                None => {
                    state.domains.remove(&zp.zone);
                }
            }
        }
        if state == before {
            return Ok(());
        }
        state.save(&path)
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
    fn key_plan(&self, now: Timestamp) -> KeyPlan {
        let mut kp = KeyPlan::default();
        let result = (|| {
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
        })();
        if let Err(e) = result {
            kp.error = Some(e);
        }
        kp
    }

    /// [`Workspace::plan_at`] the time the clock says (`MAILAUTH_NOW` when
    /// set); a `MAILAUTH_NOW` that is not a time is an error, never 1970.
    pub fn plan(&self, domains: &[Name]) -> Result<Plan, TimeError> {
        Ok(self.plan_at(domains, crate::clock::clock(None)?))
    }

    /// Plans the selected domains against each of their providers,
    /// concurrently, with the key steps due at `now`. A domain or provider
    /// that fails is reported in its own zone plan; the others go on.
    pub fn plan_at(&self, domains: &[Name], now: Timestamp) -> Plan {
        let keys = self.key_plan(now);
        let flats = self.flatten_all(domains);
        let upstream = if flats.is_empty() {
            Ok(UpstreamState::default())
        } else {
            UpstreamState::load(&crate::spf::flatten::state_path(&self.path))
        };
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
                spf_flattening: None,
            };
            let flat = match flats.get(name) {
                None => None,
                Some(Err(e)) => {
                    let id = provider.as_ref().map_or("?".into(), |p| p.id());
                    return failed(id, format!("spf.flatten: {e}"));
                }
                Some(Ok(f)) => Some(f),
            };
            let published = match &keys.state {
                Some(state) => published_from(state, name),
                None => self.published_keys(name),
            };
            let want = self
                .domain(name)
                .ok_or_else(|| "not in the config".to_string())
                .and_then(|d| {
                    desired::desired_flattened(&self.config, name, d, &published, flat)
                        .map_err(|e| e.to_string())
                });
            let mut zp = match (provider, want) {
                (Err(e), _) => return failed("?".into(), e.clone()),
                (Ok(p), Err(e)) => return failed(p.id(), e),
                (Ok(p), Ok(want)) => {
                    plan::plan_zone(p.as_ref(), &want, self.config.defaults.max_deletes)
                }
            };
            // MTA-STS `mode: enforce` against the zone's MX set.
            if let (Ok(p), None, Some(sts)) = (
                provider,
                &zp.error,
                self.domain(name).and_then(|d| d.mta_sts.as_ref()),
            ) && zp.changes.iter().any(|c| c.rtype == "TXT")
                && let Ok(fetched) = p.fetch(name)
                && let Some(msg) = crate::publish::enforce_guard(sts, &fetched.zone, &zp.changes)
            {
                zp.needs_force = Some(match zp.needs_force.take() {
                    Some(prev) => format!("{prev}; {msg}"),
                    None => msg,
                });
            }
            if let (Some(f), None) = (flat, &zp.error) {
                let recorded = match &upstream {
                    Ok(state) => state.domains.get(name.as_str()).cloned(),
                    Err(e) => {
                        zp.error = Some(format!("spf.flatten: {e}"));
                        return zp;
                    }
                };
                self.spf_notes(name, f, recorded.as_ref(), &mut zp);
                zp.spf_flattening = Some(f.clone());
            }
            zp
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
            created: now.to_string(),
            zones,
        }
    }
}

impl Workspace {
    /// The plan notes of a flattened SPF record: what was flattened (when
    /// the plan changes something), the drift of each include against the
    /// recorded upstream, and the shrink guard, which makes apply need
    /// `--force`.
    fn spf_notes(
        &self,
        name: &Name,
        f: &Flattened,
        recorded: Option<&std::collections::BTreeMap<String, Vec<String>>>,
        zp: &mut plan::ZonePlan,
    ) {
        let drift = recorded.map_or_else(Vec::new, |r| crate::spf::flatten::drift(r, &f.upstream));
        if !zp.changes.is_empty() || !drift.is_empty() {
            zp.notes.push(f.summary());
            for (n, why) in &f.kept {
                zp.notes.push(format!("spf: include:{n} kept: {why}"));
            }
        }
        for d in &drift {
            zp.notes.push(format!("spf drift: {d}"));
        }
        let max = self
            .domain(name)
            .and_then(|d| d.spf.as_ref())
            .map_or(crate::spf::flatten::DEFAULT_MAX_SHRINK, |s| s.max_shrink());
        let shrunk = recorded.map_or_else(Vec::new, |r| {
            crate::spf::flatten::shrunk(r, &f.upstream, max)
        });
        if !shrunk.is_empty() && !zp.changes.is_empty() {
            let msg = format!(
                "{}; apply needs --force (spf.max_shrink: {max})",
                shrunk.join("; ")
            );
            zp.needs_force = Some(match zp.needs_force.take() {
                Some(prev) => format!("{prev}; {msg}"),
                None => msg,
            });
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
