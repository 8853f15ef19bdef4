//! The `check_host()` engine of RFC 7208 §4–§7: record lookup and
//! selection, mechanism matching, include/redirect recursion, the lookup
//! and void-lookup limits, macro expansion, and the explanation of a
//! "fail". The public entry points and result types are in `spf/mod.rs`;
//! parsing is `record::spf`'s and DNS is behind [`SpfDns`].

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::{Ipv4Net, Ipv6Net};

use super::dns::{DnsError, SpfDns};
use super::macros::{ip_dotted, ip_version, is_valid_name, transform, truncate_name};
use super::{CheckOptions, Matched, SpfResult};
use crate::record::spf::{
    DomainSpec, MacroContext, MacroLetter, MacroString, MacroToken, Mechanism, Qualifier, Spf,
};

/// Why evaluation stopped early (RFC 7208 §2.6.6 and §2.6.7).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    #[error("temporary DNS failure: {detail}")]
    Temp { detail: String },
    #[error("{detail}")]
    Perm { detail: String },
}

fn perm(detail: impl Into<String>) -> EvalError {
    EvalError::Perm {
        detail: detail.into(),
    }
}

/// The result of evaluating one domain's record.
pub(crate) struct Eval {
    pub result: SpfResult,
    pub matched: Option<Matched>,
    /// The `exp=` of the record whose mechanism produced a "fail", with the
    /// domain it was evaluated for (§6.2: the explanation is evaluated in
    /// the context of that record).
    pub exp: Option<(String, DomainSpec)>,
}

impl Eval {
    fn plain(result: SpfResult) -> Eval {
        Eval {
            result,
            matched: None,
            exp: None,
        }
    }
}

pub(crate) struct Ctx<'a> {
    pub dns: &'a dyn SpfDns,
    pub opts: &'a CheckOptions,
    /// The client address, IPv4-mapped IPv6 already turned into IPv4
    /// (§5: "IPv4-mapped IPv6 addresses ... MUST still be considered an
    /// IPv4 address").
    pub ip: IpAddr,
    pub sender: String,
    pub local: String,
    pub sender_domain: String,
    pub helo: String,
    pub lookups: usize,
    pub voids: usize,
    pub trace: Vec<String>,
    depth: usize,
}

impl<'a> Ctx<'a> {
    pub fn new(
        dns: &'a dyn SpfDns,
        opts: &'a CheckOptions,
        ip: IpAddr,
        sender: &str,
        helo: &str,
    ) -> Ctx<'a> {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => ip,
            },
            v4 => v4,
        };
        // §4.3: "If the <sender> has no local-part, substitute the string
        // "postmaster" for the local-part."
        let (local, domain) = match sender.rsplit_once('@') {
            Some((l, d)) => (l, d),
            None => ("", sender),
        };
        let local = if local.is_empty() {
            "postmaster"
        } else {
            local
        };
        Ctx {
            dns,
            opts,
            ip,
            sender: format!("{local}@{domain}"),
            local: local.to_string(),
            sender_domain: domain.to_string(),
            helo: helo.to_string(),
            lookups: 0,
            voids: 0,
            trace: Vec::new(),
            depth: 0,
        }
    }

    fn note(&mut self, line: String) {
        self.trace
            .push(format!("{}{line}", "  ".repeat(self.depth)));
    }

    /// §4.6.4: "SPF implementations MUST limit the total number of those
    /// terms to 10 during SPF evaluation ... If this limit is exceeded, the
    /// implementation MUST return "permerror"."
    fn count_lookup(&mut self, term: &str) -> Result<(), EvalError> {
        self.lookups += 1;
        if self.lookups > self.opts.max_lookups {
            return Err(perm(format!(
                "`{term}` is DNS lookup {} of at most {} (RFC 7208 §4.6.4)",
                self.lookups, self.opts.max_lookups
            )));
        }
        Ok(())
    }

    /// §4.6.4: "SPF implementations SHOULD limit "void lookups" to two ...
    /// the number of DNS queries that either return a positive answer (RCODE
    /// 0) with an answer count of 0, or return "Name Error" (RCODE 3)".
    fn count_void(&mut self, name: &str) -> Result<(), EvalError> {
        self.voids += 1;
        self.note(format!("{name}: void lookup {}", self.voids));
        if self.voids > self.opts.max_void_lookups {
            return Err(perm(format!(
                "{name}: void lookup {} of at most {} (RFC 7208 §4.6.4)",
                self.voids, self.opts.max_void_lookups
            )));
        }
        Ok(())
    }

    /// The full `check_host()` for `domain` (§4).
    pub fn check_host(&mut self, domain: &str) -> Result<Eval, EvalError> {
        let domain = domain.strip_suffix('.').unwrap_or(domain).to_string();
        // §4.3: "If the <domain> is malformed (e.g., label longer than 63
        // characters, zero-length label not at the end, etc.) or is not a
        // multi-label domain name ... check_host() immediately returns the
        // result "none"."
        if !is_valid_name(&domain) || !domain.contains('.') || domain.starts_with('[') {
            self.note(format!("{domain}: not a usable domain name: none"));
            return Ok(Eval::plain(SpfResult::None));
        }
        // §4.4 / §4.5: TXT records beginning with "v=spf1".
        let records = match self.dns.txt(&domain) {
            Ok(r) => r,
            Err(DnsError::NxDomain { .. }) => {
                self.note(format!("{domain}: no such domain: none"));
                return Ok(Eval::plain(SpfResult::None));
            }
            Err(e) => {
                return Err(EvalError::Temp {
                    detail: e.to_string(),
                });
            }
        };
        let spf: Vec<&Vec<u8>> = records.iter().filter(|r| Spf::is_spf_record(r)).collect();
        let raw = match spf.as_slice() {
            [] => {
                self.note(format!("{domain}: no SPF record: none"));
                return Ok(Eval::plain(SpfResult::None));
            }
            [one] => *one,
            _ => {
                return Err(perm(format!(
                    "{domain} publishes {} SPF records; there must be exactly one (RFC 7208 §4.5)",
                    spf.len()
                )));
            }
        };
        let text = std::str::from_utf8(raw).map_err(|_| {
            perm(format!(
                "{domain}: the SPF record is not ASCII (RFC 7208 §3.1)"
            ))
        })?;
        let record: Spf = text.parse().map_err(|e| perm(format!("{domain}: {e}")))?;
        self.note(format!("{domain}: {text}"));
        self.evaluate(&domain, &record)
    }

    /// §4.6 / §4.7: directives left to right, then `redirect`, then
    /// "neutral".
    fn evaluate(&mut self, domain: &str, record: &Spf) -> Result<Eval, EvalError> {
        for d in record.directives() {
            let term = d.to_string();
            if d.mechanism.queries_dns() {
                self.count_lookup(&term)?;
            }
            self.depth += 1;
            let matched = self.matches(domain, &d.mechanism);
            self.depth -= 1;
            if matched? {
                let result = match d.qualifier {
                    Qualifier::Pass => SpfResult::Pass,
                    Qualifier::Fail => SpfResult::Fail,
                    Qualifier::SoftFail => SpfResult::SoftFail,
                    Qualifier::Neutral => SpfResult::Neutral,
                };
                self.note(format!("  {term}: match, {result}"));
                let exp = if result == SpfResult::Fail {
                    record.exp().map(|e| (domain.to_string(), e.clone()))
                } else {
                    None
                };
                return Ok(Eval {
                    result,
                    matched: Some(Matched {
                        domain: domain.to_string(),
                        term,
                    }),
                    exp,
                });
            }
            self.note(format!("  {term}: no match"));
        }
        // §6.1: "Any "redirect" modifier MUST be ignored if there is an
        // "all" mechanism anywhere in the record."
        if let Some(target) = record.redirect()
            && record.all().is_none()
        {
            let term = format!("redirect={target}");
            self.count_lookup(&term)?;
            let name = self.expand_domain(target, domain)?;
            self.note(format!("  {term}: to {name}"));
            self.depth += 1;
            let sub = self.check_host(&name);
            self.depth -= 1;
            let sub = sub?;
            // §6.1: "if no SPF record is found, or if the <target-name> is
            // malformed, the result is a "permerror" rather than "none"."
            if sub.result == SpfResult::None {
                return Err(perm(format!(
                    "redirect={target}: {name} has no SPF record (RFC 7208 §6.1)"
                )));
            }
            return Ok(sub);
        }
        self.note("  no mechanism matched: neutral".to_string());
        Ok(Eval::plain(SpfResult::Neutral))
    }

    fn matches(&mut self, domain: &str, m: &Mechanism) -> Result<bool, EvalError> {
        match m {
            Mechanism::All => Ok(true),
            Mechanism::Ip4 { addr, prefix } => Ok(match self.ip {
                IpAddr::V4(ip) => {
                    Ipv4Net::new(*addr, prefix.unwrap_or(32)).is_ok_and(|n| n.contains(&ip))
                }
                IpAddr::V6(_) => false,
            }),
            Mechanism::Ip6 { addr, prefix } => Ok(match self.ip {
                IpAddr::V6(ip) => {
                    Ipv6Net::new(*addr, prefix.unwrap_or(128)).is_ok_and(|n| n.contains(&ip))
                }
                IpAddr::V4(_) => false,
            }),
            Mechanism::Include(spec) => {
                let name = self.expand_domain(spec, domain)?;
                let sub = self.check_host(&name)?;
                // §5.2 table: pass → match; fail, softfail, neutral → not
                // match; temperror, permerror propagate; none → permerror.
                match sub.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::None => Err(perm(format!(
                        "include:{spec}: {name} has no SPF record (RFC 7208 §5.2)"
                    ))),
                    SpfResult::TempError => Err(EvalError::Temp {
                        detail: format!("include:{spec}: {name}"),
                    }),
                    SpfResult::PermError => Err(perm(format!("include:{spec}: {name}"))),
                }
            }
            Mechanism::A {
                domain: spec,
                cidr4,
                cidr6,
            } => {
                let Some(name) = self.target(spec.as_ref(), domain)? else {
                    return Ok(false);
                };
                self.address_match(&name, *cidr4, *cidr6, true)
            }
            Mechanism::Mx {
                domain: spec,
                cidr4,
                cidr6,
            } => {
                let Some(name) = self.target(spec.as_ref(), domain)? else {
                    return Ok(false);
                };
                let mxs = match self.dns.mx(&name) {
                    Ok(v) => v,
                    Err(DnsError::NxDomain { .. }) => Vec::new(),
                    Err(e) => {
                        return Err(EvalError::Temp {
                            detail: e.to_string(),
                        });
                    }
                };
                if mxs.is_empty() {
                    self.count_void(&name)?;
                    return Ok(false);
                }
                // §4.6.4: "the evaluation of each "MX" record MUST NOT
                // result in querying more than 10 address records ... If
                // this limit is exceeded, the "mx" mechanism MUST produce a
                // "permerror" result."
                if mxs.len() > self.opts.max_names_per_lookup {
                    return Err(perm(format!(
                        "mx:{name} has {} MX records, more than {} (RFC 7208 §4.6.4)",
                        mxs.len(),
                        self.opts.max_names_per_lookup
                    )));
                }
                for mx in mxs {
                    // RFC 7505 null MX: nothing to look up.
                    if mx.exchange.is_empty() {
                        continue;
                    }
                    if self.address_match(&mx.exchange, *cidr4, *cidr6, false)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                let Some(target) = self.target(spec.as_ref(), domain)? else {
                    return Ok(false);
                };
                let names = self.validated_names(true)?;
                let target = target.to_ascii_lowercase();
                Ok(names.iter().any(|n| {
                    let n = n.to_ascii_lowercase();
                    n == target || n.ends_with(&format!(".{target}"))
                }))
            }
            Mechanism::Exists(spec) => {
                let Some(name) = self.target(Some(spec), domain)? else {
                    return Ok(false);
                };
                // §5.7: "The lookup type is A even when the connection type
                // is IPv6."
                match self.dns.a(&name) {
                    Ok(v) if !v.is_empty() => Ok(true),
                    Ok(_) | Err(DnsError::NxDomain { .. }) => {
                        self.count_void(&name)?;
                        Ok(false)
                    }
                    Err(e) => Err(EvalError::Temp {
                        detail: e.to_string(),
                    }),
                }
            }
        }
    }

    /// The <target-name> of a mechanism: its domain-spec expanded, or the
    /// current domain. `None` when the expansion is not a usable DNS name
    /// (empty or over-long label), which RFC 7208 leaves undefined and this
    /// implementation treats as a mechanism that does not match.
    fn target(
        &mut self,
        spec: Option<&DomainSpec>,
        domain: &str,
    ) -> Result<Option<String>, EvalError> {
        let name = match spec {
            Some(s) => self.expand_domain(s, domain)?,
            None => domain.to_string(),
        };
        if is_valid_name(&name) {
            Ok(Some(name))
        } else {
            self.note(format!("{name}: not a valid DNS name, no match"));
            Ok(None)
        }
    }

    /// §5.3 / §5.4: A or AAAA records of `name` (by the client's family)
    /// compared with the client under the dual CIDR lengths.
    fn address_match(
        &mut self,
        name: &str,
        cidr4: Option<u8>,
        cidr6: Option<u8>,
        counts_void: bool,
    ) -> Result<bool, EvalError> {
        let (found, any) = match self.ip {
            IpAddr::V4(ip) => match self.dns.a(name) {
                Ok(addrs) => (
                    addrs.iter().any(|a| {
                        Ipv4Net::new(*a, cidr4.unwrap_or(32)).is_ok_and(|n| n.contains(&ip))
                    }),
                    !addrs.is_empty(),
                ),
                Err(DnsError::NxDomain { .. }) => (false, false),
                Err(e) => {
                    return Err(EvalError::Temp {
                        detail: e.to_string(),
                    });
                }
            },
            IpAddr::V6(ip) => match self.dns.aaaa(name) {
                Ok(addrs) => (
                    addrs.iter().any(|a| {
                        Ipv6Net::new(*a, cidr6.unwrap_or(128)).is_ok_and(|n| n.contains(&ip))
                    }),
                    !addrs.is_empty(),
                ),
                Err(DnsError::NxDomain { .. }) => (false, false),
                Err(e) => {
                    return Err(EvalError::Temp {
                        detail: e.to_string(),
                    });
                }
            },
        };
        if !any && counts_void {
            self.count_void(name)?;
        }
        Ok(found)
    }

    /// §5.5: the validated names of the client: PTR names (the first 10,
    /// §4.6.4 "all records other than the first 10 MUST be ignored") whose
    /// A/AAAA records include the client address. "If a DNS error occurs
    /// while doing the PTR RR lookup, then this mechanism fails to match";
    /// a DNS error on a name's address lookup skips that name.
    fn validated_names(&mut self, counts_void: bool) -> Result<Vec<String>, EvalError> {
        let names = match self.dns.ptr(self.ip) {
            Ok(n) => n,
            Err(DnsError::NxDomain { .. }) => Vec::new(),
            Err(_) => return Ok(Vec::new()),
        };
        if names.is_empty() {
            if counts_void {
                self.count_void(&super::dns::reverse_name(self.ip))?;
            }
            return Ok(Vec::new());
        }
        let mut valid = Vec::new();
        for name in names.into_iter().take(self.opts.max_names_per_lookup) {
            let ok = match self.ip {
                IpAddr::V4(ip) => self.dns.a(&name).is_ok_and(|v| v.contains(&ip)),
                IpAddr::V6(ip) => self.dns.aaaa(&name).is_ok_and(|v| v.contains(&ip)),
            };
            if ok {
                valid.push(name);
            }
        }
        Ok(valid)
    }

    /// §7.3 `p`: "If a subdomain of the <domain> is present, it SHOULD be
    /// used" (the domain itself first), otherwise any validated name, else
    /// "unknown".
    fn validated_name_for(&mut self, domain: &str) -> String {
        let names = self.validated_names(false).unwrap_or_default();
        let d = domain.to_ascii_lowercase();
        let exact = names.iter().find(|n| n.eq_ignore_ascii_case(&d));
        let sub = names
            .iter()
            .find(|n| n.to_ascii_lowercase().ends_with(&format!(".{d}")));
        exact
            .or(sub)
            .or(names.first())
            .cloned()
            .unwrap_or_else(|| "unknown".to_string())
    }

    fn expand_domain(&mut self, spec: &DomainSpec, domain: &str) -> Result<String, EvalError> {
        let s = self.expand(spec.macro_string(), domain)?;
        Ok(truncate_name(&s))
    }

    /// §7.3 macro expansion of a parsed macro string for the record of
    /// `domain`.
    pub fn expand(&mut self, ms: &MacroString, domain: &str) -> Result<String, EvalError> {
        let mut out = String::new();
        for t in &ms.tokens {
            match t {
                MacroToken::Literal(s) => out.push_str(s),
                MacroToken::Percent => out.push('%'),
                MacroToken::Space => out.push(' '),
                MacroToken::UrlSpace => out.push_str("%20"),
                MacroToken::Expand(e) => {
                    let value = match e.letter {
                        MacroLetter::Sender => self.sender.clone(),
                        MacroLetter::LocalPart => self.local.clone(),
                        MacroLetter::SenderDomain => self.sender_domain.clone(),
                        MacroLetter::Domain => domain.to_string(),
                        MacroLetter::Ip => ip_dotted(self.ip),
                        MacroLetter::ValidatedName => self.validated_name_for(domain),
                        MacroLetter::IpVersion => ip_version(self.ip).to_string(),
                        MacroLetter::Helo => self.helo.clone(),
                        MacroLetter::ClientIp => self.ip.to_string(),
                        MacroLetter::Receiver => self.opts.receiver.clone(),
                        MacroLetter::Timestamp => self
                            .opts
                            .timestamp
                            .unwrap_or_else(|| {
                                SystemTime::now()
                                    .duration_since(UNIX_EPOCH)
                                    .map(|d| d.as_secs())
                                    .unwrap_or(0)
                            })
                            .to_string(),
                    };
                    out.push_str(&transform(&value, e));
                }
            }
        }
        Ok(out)
    }

    /// §6.2: the explanation for a "fail". "If there are any DNS processing
    /// errors (any RCODE other than 0), or if no records are returned, or
    /// if more than one record is returned, or if there are syntax errors in
    /// the explanation string, then proceed as if no "exp" modifier was
    /// given." The lookup counts against no limit.
    pub fn explanation(&mut self, domain: &str, spec: &DomainSpec) -> Option<String> {
        let name = self.expand_domain(spec, domain).ok()?;
        if !is_valid_name(&name) {
            return None;
        }
        let records = self.dns.txt(&name).ok()?;
        let [one] = records.as_slice() else {
            self.note(format!(
                "exp={spec}: {} TXT records at {name}, ignored",
                records.len()
            ));
            return None;
        };
        // §6.2: "The fetched TXT record's strings are concatenated with no
        // spaces, and then treated as an explain-string" of US-ASCII.
        let text = std::str::from_utf8(one).ok().filter(|t| t.is_ascii())?;
        let ms = MacroString::parse(text, MacroContext::Explanation).ok()?;
        let out = self.expand(&ms, domain).ok()?;
        self.note(format!("exp={spec}: {out}"));
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::spf::macros::url_escape;

    #[test]
    fn url_escape_is_uppercase_hex() {
        assert_eq!(url_escape("a b/é"), "a%20b%2F%C3%A9");
    }
}
