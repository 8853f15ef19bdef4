//! The DNS an SPF evaluation needs, as a small synchronous trait
//! ([`SpfDns`]), and an in-memory implementation ([`MemoryDns`]) for tests
//! and offline checks. A resolver-backed implementation lives elsewhere and
//! plugs in through the same trait; nothing here opens a socket.
//!
//! RFC 7208 §4.6.4 needs to tell a "void lookup" (NXDOMAIN, or an answer
//! with no records) from a failure (timeout, SERVFAIL): the first counts
//! against the void-lookup limit, the second makes the result "temperror"
//! (§2.6.6). Implementations return `Err(DnsError::NxDomain)` or an empty
//! `Ok` for the first and `Err(DnsError::Temporary)` for the second.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The record types SPF evaluation queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QType {
    Txt,
    A,
    Aaaa,
    Mx,
    Ptr,
}

impl fmt::Display for QType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QType::Txt => "TXT",
            QType::A => "A",
            QType::Aaaa => "AAAA",
            QType::Mx => "MX",
            QType::Ptr => "PTR",
        })
    }
}

/// Why a query gave no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// RCODE 3: the name does not exist (a void lookup, RFC 7208 §4.6.4).
    #[error("{name}: no such domain (NXDOMAIN)")]
    NxDomain { name: String },
    /// Timeout, SERVFAIL, refused, a CNAME loop: try again later
    /// (RFC 7208 §2.6.6 "temperror").
    #[error("{name} {qtype}: temporary DNS failure: {detail}")]
    Temporary {
        name: String,
        qtype: QType,
        detail: String,
    },
}

/// One MX record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxRecord {
    pub preference: u16,
    /// The exchange without the trailing dot; empty for the null MX
    /// (RFC 7505 `0 .`).
    pub exchange: String,
}

/// The queries `check_host()` makes. Names are given without the trailing
/// dot and may hold any octet a macro expansion produced; an empty answer is
/// `Ok(vec![])`.
pub trait SpfDns {
    /// TXT records at `name`, each with its character-strings already
    /// concatenated without separators (RFC 7208 §3.3).
    fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, DnsError>;
    fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError>;
    fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError>;
    fn mx(&self, name: &str) -> Result<Vec<MxRecord>, DnsError>;
    /// PTR records of `ip` (the query for [`reverse_name`]`(ip)`), targets
    /// without the trailing dot.
    fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError>;
}

/// The reverse-mapping name of `ip`: `4.3.2.1.in-addr.arpa` or the 32
/// nibbles of an IPv6 address under `ip6.arpa` (RFC 3596 §2.5).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// One record for [`MemoryDns::insert`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemRecord {
    /// A TXT record as its character-strings.
    Txt(Vec<Vec<u8>>),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx(u16, String),
    Ptr(String),
    Cname(String),
}

#[derive(Clone, Debug, Default)]
struct Node {
    txt: Vec<Vec<u8>>,
    a: Vec<Ipv4Addr>,
    aaaa: Vec<Ipv6Addr>,
    mx: Vec<MxRecord>,
    ptr: Vec<String>,
    cname: Option<String>,
    timeouts: BTreeSet<QType>,
}

/// An in-memory DNS: names (case-insensitive) mapped to records, some of
/// which can be set to time out. A name that holds no records but was
/// mentioned answers "no data"; any other name is NXDOMAIN. CNAMEs are
/// followed (up to 8), a loop is a temporary failure as SERVFAIL would be.
/// Every query is logged so that tests can check what was asked.
#[derive(Debug, Default)]
pub struct MemoryDns {
    nodes: BTreeMap<String, Node>,
    log: RefCell<Vec<(QType, String)>>,
}

fn key(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl MemoryDns {
    pub fn new() -> MemoryDns {
        MemoryDns::default()
    }

    /// Adds one record at `name`.
    pub fn insert(&mut self, name: &str, record: MemRecord) -> &mut Self {
        let node = self.nodes.entry(key(name)).or_default();
        match record {
            MemRecord::Txt(strings) => node.txt.push(strings.concat()),
            MemRecord::A(a) => node.a.push(a),
            MemRecord::Aaaa(a) => node.aaaa.push(a),
            MemRecord::Mx(preference, exchange) => node.mx.push(MxRecord {
                preference,
                exchange: key(&exchange),
            }),
            MemRecord::Ptr(target) => node.ptr.push(key(&target)),
            MemRecord::Cname(target) => node.cname = Some(key(&target)),
        }
        self
    }

    /// Adds a single-string TXT record.
    pub fn add_txt(&mut self, name: &str, value: &str) -> &mut Self {
        self.insert(name, MemRecord::Txt(vec![value.as_bytes().to_vec()]))
    }

    /// Makes `name` exist without records (queries answer "no data").
    pub fn touch(&mut self, name: &str) -> &mut Self {
        self.nodes.entry(key(name)).or_default();
        self
    }

    /// Makes every query for `name` time out.
    pub fn timeout(&mut self, name: &str) -> &mut Self {
        let node = self.nodes.entry(key(name)).or_default();
        node.timeouts
            .extend([QType::Txt, QType::A, QType::Aaaa, QType::Mx, QType::Ptr]);
        self
    }

    /// Makes queries of one type for `name` time out.
    pub fn timeout_type(&mut self, name: &str, qtype: QType) -> &mut Self {
        self.nodes
            .entry(key(name))
            .or_default()
            .timeouts
            .insert(qtype);
        self
    }

    /// The queries made so far, in order.
    pub fn queries(&self) -> Vec<(QType, String)> {
        self.log.borrow().clone()
    }

    fn resolve(&self, name: &str, qtype: QType) -> Result<&Node, DnsError> {
        let mut current = key(name);
        self.log.borrow_mut().push((qtype, current.clone()));
        for _ in 0..8 {
            let Some(node) = self.nodes.get(&current) else {
                return Err(DnsError::NxDomain { name: current });
            };
            if node.timeouts.contains(&qtype) {
                return Err(DnsError::Temporary {
                    name: current,
                    qtype,
                    detail: "timed out".into(),
                });
            }
            match &node.cname {
                Some(target) => current = target.clone(),
                None => return Ok(node),
            }
        }
        Err(DnsError::Temporary {
            name: key(name),
            qtype,
            detail: "CNAME chain too long or looping".into(),
        })
    }
}

/// Builds a zone from `(name, record)` pairs.
impl<'a> FromIterator<(&'a str, MemRecord)> for MemoryDns {
    fn from_iter<I: IntoIterator<Item = (&'a str, MemRecord)>>(iter: I) -> MemoryDns {
        let mut dns = MemoryDns::new();
        for (name, record) in iter {
            dns.insert(name, record);
        }
        dns
    }
}

impl SpfDns for MemoryDns {
    fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, DnsError> {
        self.resolve(name, QType::Txt).map(|n| n.txt.clone())
    }
    fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        self.resolve(name, QType::A).map(|n| n.a.clone())
    }
    fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        self.resolve(name, QType::Aaaa).map(|n| n.aaaa.clone())
    }
    fn mx(&self, name: &str) -> Result<Vec<MxRecord>, DnsError> {
        self.resolve(name, QType::Mx).map(|n| n.mx.clone())
    }
    fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        self.resolve(&reverse_name(ip), QType::Ptr)
            .map(|n| n.ptr.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::cb01".parse().unwrap()),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn memory_dns_answers() {
        let mut dns = MemoryDns::new();
        dns.add_txt("Example.COM.", "v=spf1 -all")
            .insert("alias.example.com", MemRecord::Cname("example.com".into()))
            .insert(
                "loop.example.com",
                MemRecord::Cname("loop.example.com".into()),
            )
            .touch("empty.example.com")
            .timeout_type("slow.example.com", QType::Txt)
            .insert(
                "slow.example.com",
                MemRecord::A(Ipv4Addr::new(192, 0, 2, 1)),
            );
        assert_eq!(
            dns.txt("example.com").unwrap(),
            vec![b"v=spf1 -all".to_vec()]
        );
        assert_eq!(dns.txt("alias.example.com").unwrap().len(), 1);
        assert!(matches!(
            dns.txt("nope.example.com"),
            Err(DnsError::NxDomain { .. })
        ));
        assert!(dns.a("empty.example.com").unwrap().is_empty());
        assert!(matches!(
            dns.txt("loop.example.com"),
            Err(DnsError::Temporary { .. })
        ));
        assert!(matches!(
            dns.txt("slow.example.com"),
            Err(DnsError::Temporary { .. })
        ));
        assert_eq!(
            dns.a("slow.example.com").unwrap(),
            vec![Ipv4Addr::new(192, 0, 2, 1)]
        );
        assert_eq!(dns.queries()[0], (QType::Txt, "example.com".to_string()));
        let built: MemoryDns = [("a.example", MemRecord::Mx(10, "mx.example.".into()))]
            .into_iter()
            .collect();
        assert_eq!(
            built.mx("A.example").unwrap(),
            vec![MxRecord {
                preference: 10,
                exchange: "mx.example".into()
            }]
        );
    }
}
