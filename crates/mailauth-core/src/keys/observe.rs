//! The lifecycle's [`Observer`] over real DNS: a key counts as served when
//! every authoritative server of its domain answers its selector with the
//! same public key. Asked only when a key's activation time has come.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use super::lifecycle::Observer;
use crate::dns::{ResolveError, Resolver};
use crate::record::dkim::DkimKey;

/// (domain, selector, public key)
type KeyId = (String, String, Vec<u8>);

pub struct DnsObserver {
    /// Servers to ask instead of the zone's NS set (from `keys.authorities`).
    authorities: Vec<SocketAddr>,
    timeout: Duration,
    /// Answers already obtained in this run: a lifecycle pass asks about
    /// the same key several times, and DNS does not change under it.
    seen: Mutex<HashMap<KeyId, Result<bool, String>>>,
}

impl DnsObserver {
    pub fn new(authorities: &[String], timeout: Duration) -> Result<DnsObserver, String> {
        let authorities = authorities
            .iter()
            .map(|a| crate::dns::parse_nameserver(a).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(DnsObserver {
            authorities,
            timeout,
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// The authoritative servers of `domain`'s zone: the configured ones,
    /// or each address of each name in the closest enclosing NS set.
    fn servers(&self, domain: &str) -> Result<Vec<SocketAddr>, String> {
        if !self.authorities.is_empty() {
            return Ok(self.authorities.clone());
        }
        let system = Resolver::system().map_err(|e| e.to_string())?;
        let mut zone = domain;
        let hosts = loop {
            match system.ns(zone) {
                Ok(h) if !h.is_empty() => break h,
                Ok(_) | Err(ResolveError::NxDomain { .. }) => match zone.split_once('.') {
                    Some((_, parent)) if parent.contains('.') => zone = parent,
                    _ => return Err(format!("no NS records for {domain}")),
                },
                Err(e) => return Err(format!("NS lookup for {zone}: {e}")),
            }
        };
        let mut out = Vec::new();
        for host in hosts {
            let ips = system
                .addresses(&host)
                .map_err(|e| format!("address of {host}: {e}"))?;
            out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, 53)));
        }
        Ok(out)
    }
}

impl Observer for DnsObserver {
    fn served_everywhere(
        &self,
        domain: &str,
        selector: &str,
        public_key: &[u8],
    ) -> Result<bool, String> {
        let key = (
            domain.to_string(),
            selector.to_string(),
            public_key.to_vec(),
        );
        if let Some(answer) = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return answer.clone();
        }
        let answer = self.ask(domain, selector, public_key);
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, answer.clone());
        answer
    }
}

impl DnsObserver {
    fn ask(&self, domain: &str, selector: &str, public_key: &[u8]) -> Result<bool, String> {
        let name = format!("{selector}._domainkey.{domain}");
        for server in self.servers(domain)? {
            let direct = Resolver::direct(server, self.timeout).map_err(|e| e.to_string())?;
            let records = match direct.txt(&name) {
                Ok(r) => r,
                Err(ResolveError::NxDomain { .. }) => return Ok(false),
                Err(e) => return Err(format!("{name} at {server}: {e}")),
            };
            let served = records.iter().any(|r| {
                std::str::from_utf8(r)
                    .ok()
                    .and_then(|t| t.parse::<DkimKey>().ok())
                    .is_some_and(|k| k.p == public_key)
            });
            if !served {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
