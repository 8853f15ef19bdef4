//! mailauth-records: DNS names, RRsets and zones, plus one typed value per
//! managed record kind (SPF with its macro strings, DMARC, DKIM key, MTA-STS
//! record and policy, TLS-RPT, BIMI) and the TXT character-string handling
//! they share; a [`change::Change`] to an RRset; and RFC 1035 master files
//! ([`masterfile`]: read, edit in place with changes, render). Everything
//! here parses and renders text; it is the vocabulary the other crates of
//! the workspace speak.
//!
//! Leaves alone everything that needs the world: no DNS queries, no files
//! (master files come and go as text), no network, no configuration, and no
//! knowledge of which provider a zone lives in. SPF evaluation
//! (`check_host()`, macro expansion, the include tree), fetching MTA-STS
//! policies, validation, computing the changes (the diff, ownership) and
//! plan/apply live in `mailauth-core`, which depends on this crate; this
//! crate depends on no other crate of the workspace (docs/architecture.md).
//!
//! Zones are sorted maps keyed by (owner name, type), so every rendering is
//! independent of insertion order.

#![forbid(unsafe_code)]

pub mod bimi;
pub mod change;
pub mod dkim;
pub mod dmarc;
pub mod masterfile;
pub mod mtasts;
pub mod spf;
pub mod tlsrpt;
pub mod txt;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An absolute domain name, lower-cased, stored without the trailing dot.
/// The root is the empty string.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Builds a name from presentation text (`example.com` or `example.com.`).
    /// Checks RFC 1035 §2.3.4 size limits: labels ≤ 63 octets, name ≤ 253.
    pub fn parse(s: &str) -> Result<Name, String> {
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Ok(Name(String::new()));
        }
        if s.len() > 253 {
            return Err(format!("name `{s}` is longer than 253 octets"));
        }
        for label in s.split('.') {
            if label.is_empty() {
                return Err(format!("name `{s}` has an empty label"));
            }
            if label.len() > 63 {
                return Err(format!("label `{label}` is longer than 63 octets"));
            }
            if label
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"')
            {
                return Err(format!("name `{s}` contains whitespace or quotes"));
            }
        }
        Ok(Name(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `label.self`
    pub fn child(&self, label: &str) -> Name {
        if self.0.is_empty() {
            Name(label.to_ascii_lowercase())
        } else {
            Name(format!("{}.{}", label.to_ascii_lowercase(), self.0))
        }
    }

    /// True when `self` is `zone` or below it.
    pub fn is_within(&self, zone: &Name) -> bool {
        zone.0.is_empty()
            || self.0 == zone.0
            || (self.0.len() > zone.0.len()
                && self.0.ends_with(&zone.0)
                && self.0.as_bytes()[self.0.len() - zone.0.len() - 1] == b'.')
    }

    /// The name relative to `origin` as written in a master file: `@` for the
    /// origin itself, the leading labels for names below it, the absolute name
    /// with a trailing dot otherwise.
    pub fn relative_to(&self, origin: &Name) -> String {
        if self == origin {
            "@".to_string()
        } else if self.is_within(origin) && !origin.0.is_empty() {
            self.0[..self.0.len() - origin.0.len() - 1].to_string()
        } else {
            format!("{}.", self.0)
        }
    }

    /// Absolute form with the trailing dot.
    pub fn fqdn(&self) -> String {
        format!("{}.", self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The record types mailauth reads and writes. Types it does not manage are
/// kept verbatim as `Other`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RType {
    Soa,
    Ns,
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Other(String),
}

impl RType {
    pub fn parse(s: &str) -> RType {
        match s.to_ascii_uppercase().as_str() {
            "SOA" => RType::Soa,
            "NS" => RType::Ns,
            "A" => RType::A,
            "AAAA" => RType::Aaaa,
            "CNAME" => RType::Cname,
            "MX" => RType::Mx,
            "TXT" => RType::Txt,
            other => RType::Other(other.to_string()),
        }
    }
}

impl fmt::Display for RType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RType::Soa => "SOA",
            RType::Ns => "NS",
            RType::A => "A",
            RType::Aaaa => "AAAA",
            RType::Cname => "CNAME",
            RType::Mx => "MX",
            RType::Txt => "TXT",
            RType::Other(s) => s,
        })
    }
}

/// One record's data, compared by value.
///
/// TXT data is kept as its list of character-strings (each ≤ 255 octets on
/// the wire, RFC 1035 §3.3.14); [`RData::txt_value`] joins them without
/// spaces as RFC 7208 §3.3 and RFC 6376 §3.6.2.2 require, and equality of
/// TXT rdata is on the joined value so that providers that split differently
/// do not show spurious changes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RData {
    Txt(Vec<Vec<u8>>),
    Cname(Name),
    Mx {
        preference: u16,
        exchange: Name,
    },
    /// Any other type, in master-file presentation form (kept verbatim).
    Raw(String),
}

impl RData {
    /// A TXT rdata for `value`, split into character-strings of ≤ 255 octets.
    pub fn txt(value: &str) -> RData {
        RData::Txt(txt::split(value.as_bytes()))
    }

    /// The joined TXT value (lossy UTF-8), or `None` for other types.
    pub fn txt_value(&self) -> Option<String> {
        match self {
            RData::Txt(strings) => Some(String::from_utf8_lossy(&txt::join(strings)).into_owned()),
            _ => None,
        }
    }

    /// Master-file presentation of the data (no owner, TTL or type).
    pub fn presentation(&self) -> String {
        match self {
            RData::Txt(strings) => txt::present(strings),
            RData::Cname(n) => n.fqdn(),
            RData::Mx {
                preference,
                exchange,
            } => {
                if exchange.as_str().is_empty() {
                    format!("{preference} .")
                } else {
                    format!("{preference} {}", exchange.fqdn())
                }
            }
            RData::Raw(s) => s.clone(),
        }
    }

    fn key(&self) -> (u8, Vec<u8>) {
        match self {
            RData::Txt(s) => (0, txt::join(s)),
            RData::Cname(n) => (1, n.as_str().as_bytes().to_vec()),
            RData::Mx {
                preference,
                exchange,
            } => {
                let mut v = preference.to_be_bytes().to_vec();
                v.extend_from_slice(exchange.as_str().as_bytes());
                (2, v)
            }
            RData::Raw(s) => (3, s.as_bytes().to_vec()),
        }
    }
}

impl PartialEq for RData {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for RData {}
impl PartialOrd for RData {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for RData {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// All records of one owner name and type (an RRset, RFC 2181 §5).
/// Data is kept sorted and de-duplicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSet {
    pub name: Name,
    pub rtype: RType,
    pub ttl: u32,
    pub data: Vec<RData>,
}

impl RecordSet {
    pub fn new(name: Name, rtype: RType, ttl: u32, mut data: Vec<RData>) -> RecordSet {
        data.sort();
        data.dedup();
        RecordSet {
            name,
            rtype,
            ttl,
            data,
        }
    }

    pub fn key(&self) -> RrKey {
        (self.name.clone(), self.rtype.clone())
    }
}

pub type RrKey = (Name, RType);

/// A zone: its origin and its RRsets, sorted by (name, type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub origin: Name,
    pub sets: BTreeMap<RrKey, RecordSet>,
}

impl Zone {
    pub fn new(origin: Name) -> Zone {
        Zone {
            origin,
            sets: BTreeMap::new(),
        }
    }

    pub fn get(&self, name: &Name, rtype: &RType) -> Option<&RecordSet> {
        self.sets.get(&(name.clone(), rtype.clone()))
    }

    /// Inserts an RRset, merging data with an existing set of the same key
    /// (the TTL of the first wins, as RFC 2181 §5.2 asks all to agree).
    pub fn insert(&mut self, set: RecordSet) {
        match self.sets.get_mut(&set.key()) {
            Some(existing) => {
                existing.data.extend(set.data);
                existing.data.sort();
                existing.data.dedup();
            }
            None => {
                self.sets.insert(set.key(), set);
            }
        }
    }

    pub fn remove(&mut self, name: &Name, rtype: &RType) -> Option<RecordSet> {
        self.sets.remove(&(name.clone(), rtype.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_relative() {
        let origin = Name::parse("Example.COM.").unwrap();
        assert_eq!(origin.as_str(), "example.com");
        let dmarc = origin.child("_dmarc");
        assert_eq!(dmarc.relative_to(&origin), "_dmarc");
        assert_eq!(origin.relative_to(&origin), "@");
        let other = Name::parse("example.org").unwrap();
        assert_eq!(other.relative_to(&origin), "example.org.");
        assert!(!Name::parse("badexample.com").unwrap().is_within(&origin));
        assert!(Name::parse("a.b.example.com").unwrap().is_within(&origin));
    }

    #[test]
    fn name_limits() {
        assert!(Name::parse(&"a".repeat(64)).is_err());
        assert!(Name::parse("a..b").is_err());
    }

    #[test]
    fn txt_equality_ignores_splitting() {
        let a = RData::Txt(vec![b"abc".to_vec(), b"def".to_vec()]);
        let b = RData::Txt(vec![b"abcdef".to_vec()]);
        assert_eq!(a, b);
    }
}
