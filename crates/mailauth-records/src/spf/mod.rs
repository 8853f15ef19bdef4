//! The SPF record as a typed value (RFC 7208 §4.5, §4.6, §5, §6, §7.1 and the
//! collected grammar of §12): parse a TXT value into [`Spf`], render it back
//! in canonical form, and answer the static questions other modules ask
//! (how many DNS-querying terms, which `all`, which includes).
//!
//! This module does no DNS and evaluates nothing: `check_host()` and the
//! include-tree analysis live in the `spf` module of `mailauth-core`. Macro
//! strings are parsed here (so that a syntax error anywhere in a record is
//! found before evaluation, §4.6) but expanded there.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::Serialize;

mod macro_string;

use macro_string::parse_macro_string;
pub use macro_string::{
    DomainSpec, MacroContext, MacroExpand, MacroLetter, MacroString, MacroToken,
};

/// Why a TXT value is not a valid SPF record. Every variant names the
/// offending term and where it starts, so that a user can find it in a long
/// record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpfError {
    /// RFC 7208 §4.5: the record must begin with `v=spf1` followed by a space
    /// or the end of the record.
    #[error(
        "not an SPF record: it must start with `v=spf1` followed by a space or the end (found `{found}`)"
    )]
    NotSpf { found: String },
    /// RFC 7208 §3.1 / §4.6.1: records are 7-bit ASCII and terms are
    /// separated by spaces only.
    #[error(
        "byte {offset}: character {found:?} is not allowed in an SPF record (only printable ASCII separated by spaces)"
    )]
    BadCharacter { offset: usize, found: char },
    /// A term that does not match the grammar of any mechanism or modifier.
    #[error("term {index} `{term}` at byte {offset}: {reason}")]
    Term {
        index: usize,
        offset: usize,
        term: String,
        reason: String,
    },
    /// RFC 7208 §6: `redirect` and `exp` MUST NOT appear more than once.
    #[error("term {index} `{term}` at byte {offset}: the `{name}` modifier appears more than once")]
    DuplicateModifier {
        index: usize,
        offset: usize,
        term: String,
        name: String,
    },
    /// A domain-spec or macro string on its own (outside a record).
    #[error("`{text}` at byte {offset}: {reason}")]
    Macro {
        text: String,
        offset: usize,
        reason: String,
    },
}

// ---------------------------------------------------------------------------
// Terms (§4.6.1, §5, §6)
// ---------------------------------------------------------------------------

/// RFC 7208 §4.6.2: `qualifier = "+" / "-" / "?" / "~"`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

impl Qualifier {
    fn from_byte(b: u8) -> Option<Qualifier> {
        Some(match b {
            b'+' => Qualifier::Pass,
            b'-' => Qualifier::Fail,
            b'~' => Qualifier::SoftFail,
            b'?' => Qualifier::Neutral,
            _ => return None,
        })
    }

    pub fn as_char(self) -> char {
        match self {
            Qualifier::Pass => '+',
            Qualifier::Fail => '-',
            Qualifier::SoftFail => '~',
            Qualifier::Neutral => '?',
        }
    }
}

/// RFC 7208 §12:
/// ```text
/// mechanism        = ( all / include / a / mx / ptr / ip4 / ip6 / exists )
/// all              = "all"
/// include          = "include"  ":" domain-spec
/// a                = "a"      [ ":" domain-spec ] [ dual-cidr-length ]
/// mx               = "mx"     [ ":" domain-spec ] [ dual-cidr-length ]
/// ptr              = "ptr"    [ ":" domain-spec ]
/// ip4              = "ip4"      ":" ip4-network   [ ip4-cidr-length ]
/// ip6              = "ip6"      ":" ip6-network   [ ip6-cidr-length ]
/// exists           = "exists"   ":" domain-spec
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Mechanism {
    All,
    Include(DomainSpec),
    A {
        domain: Option<DomainSpec>,
        cidr4: Option<u8>,
        cidr6: Option<u8>,
    },
    Mx {
        domain: Option<DomainSpec>,
        cidr4: Option<u8>,
        cidr6: Option<u8>,
    },
    Ptr(Option<DomainSpec>),
    Ip4 {
        addr: Ipv4Addr,
        prefix: Option<u8>,
    },
    Ip6 {
        addr: Ipv6Addr,
        prefix: Option<u8>,
    },
    Exists(DomainSpec),
}

impl Mechanism {
    /// RFC 7208 §4.6.4: "the following terms cause DNS queries: the
    /// "include", "a", "mx", "ptr", and "exists" mechanisms, and the
    /// "redirect" modifier".
    pub fn queries_dns(&self) -> bool {
        matches!(
            self,
            Mechanism::Include(_)
                | Mechanism::A { .. }
                | Mechanism::Mx { .. }
                | Mechanism::Ptr(_)
                | Mechanism::Exists(_)
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Mechanism::All => "all",
            Mechanism::Include(_) => "include",
            Mechanism::A { .. } => "a",
            Mechanism::Mx { .. } => "mx",
            Mechanism::Ptr(_) => "ptr",
            Mechanism::Ip4 { .. } => "ip4",
            Mechanism::Ip6 { .. } => "ip6",
            Mechanism::Exists(_) => "exists",
        }
    }
}

/// RFC 7208 §4.6.1: `directive = [ qualifier ] mechanism`
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Directive {
    pub qualifier: Qualifier,
    pub mechanism: Mechanism,
}

/// RFC 7208 §12:
/// ```text
/// modifier         = redirect / explanation / unknown-modifier
/// redirect         = "redirect" "=" domain-spec
/// explanation      = "exp" "=" domain-spec
/// unknown-modifier = name "=" macro-string
/// name             = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Modifier {
    Redirect(DomainSpec),
    Exp(DomainSpec),
    /// Kept so a record round-trips; ignored by evaluation (§6).
    Unknown {
        name: String,
        value: MacroString,
    },
}

/// RFC 7208 §4.6.1: `terms = *( 1*SP ( directive / modifier ) )`
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Term {
    Directive(Directive),
    Modifier(Modifier),
}

/// An SPF record. RFC 7208 §4.5 / §12:
/// ```text
/// record           = version terms *SP
/// version          = "v=spf1"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Spf {
    pub terms: Vec<Term>,
}

impl Spf {
    /// RFC 7208 §4.5: a record is selected when it "begins with a version
    /// section of exactly "v=spf1"" followed by a space or the end; the
    /// version is case-insensitive (test suite `case-insensitive`).
    pub fn is_spf_record(txt: &[u8]) -> bool {
        txt.len() >= 6
            && txt[..6].eq_ignore_ascii_case(b"v=spf1")
            && (txt.len() == 6 || txt[6] == b' ')
    }

    /// The directives, in order.
    pub fn directives(&self) -> impl Iterator<Item = &Directive> {
        self.terms.iter().filter_map(|t| match t {
            Term::Directive(d) => Some(d),
            Term::Modifier(_) => None,
        })
    }

    /// RFC 7208 §4.6.4: terms that cause DNS queries (include, a, mx, ptr,
    /// exists, redirect) in this record alone, not counting what included
    /// records add.
    pub fn dns_mechanism_count(&self) -> usize {
        self.terms
            .iter()
            .filter(|t| match t {
                Term::Directive(d) => d.mechanism.queries_dns(),
                Term::Modifier(Modifier::Redirect(_)) => true,
                Term::Modifier(_) => false,
            })
            .count()
    }

    /// The qualifier of the first `all` mechanism, if any.
    pub fn all(&self) -> Option<Qualifier> {
        self.directives()
            .find(|d| d.mechanism == Mechanism::All)
            .map(|d| d.qualifier)
    }

    /// The `redirect=` target, if any.
    pub fn redirect(&self) -> Option<&DomainSpec> {
        self.terms.iter().find_map(|t| match t {
            Term::Modifier(Modifier::Redirect(d)) => Some(d),
            _ => None,
        })
    }

    /// The `exp=` target, if any.
    pub fn exp(&self) -> Option<&DomainSpec> {
        self.terms.iter().find_map(|t| match t {
            Term::Modifier(Modifier::Exp(d)) => Some(d),
            _ => None,
        })
    }

    /// The `include:` targets, in order.
    pub fn includes(&self) -> Vec<&DomainSpec> {
        self.directives()
            .filter_map(|d| match &d.mechanism {
                Mechanism::Include(t) => Some(t),
                _ => None,
            })
            .collect()
    }
}

impl FromStr for Spf {
    type Err = SpfError;

    fn from_str(s: &str) -> Result<Spf, SpfError> {
        if !Spf::is_spf_record(s.as_bytes()) {
            return Err(SpfError::NotSpf {
                found: s.chars().take(16).collect(),
            });
        }
        // §3.1 and §4.6.1: 7-bit ASCII only; terms are separated by SP, not
        // by any other whitespace or control character.
        if let Some((offset, found)) = s.char_indices().find(|(_, c)| !matches!(c, ' '..='~')) {
            return Err(SpfError::BadCharacter { offset, found });
        }
        let mut terms = Vec::new();
        let mut seen_redirect = false;
        let mut seen_exp = false;
        let mut offset = 6;
        let mut index = 0;
        for raw in s[6..].split(' ') {
            let here = offset;
            offset += raw.len() + 1;
            if raw.is_empty() {
                continue;
            }
            index += 1;
            let term = parse_term(raw).map_err(|reason| SpfError::Term {
                index,
                offset: here,
                term: raw.to_string(),
                reason,
            })?;
            let dup = match &term {
                Term::Modifier(Modifier::Redirect(_)) => {
                    std::mem::replace(&mut seen_redirect, true).then_some("redirect")
                }
                Term::Modifier(Modifier::Exp(_)) => {
                    std::mem::replace(&mut seen_exp, true).then_some("exp")
                }
                _ => None,
            };
            if let Some(name) = dup {
                return Err(SpfError::DuplicateModifier {
                    index,
                    offset: here,
                    term: raw.to_string(),
                    name: name.to_string(),
                });
            }
            terms.push(term);
        }
        Ok(Spf { terms })
    }
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

fn parse_term(raw: &str) -> Result<Term, String> {
    let b = raw.as_bytes();
    let name_len = b.iter().take_while(|c| is_name_char(**c)).count();
    if b.get(name_len) == Some(&b'=') {
        let name = &raw[..name_len];
        if !name.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
            return Err("a modifier name must start with a letter: name = ALPHA *( ALPHA / DIGIT / \"-\" / \"_\" / \".\" ) (§12)".into());
        }
        let value = &raw[name_len + 1..];
        let spec = |what: &str| {
            value
                .parse::<DomainSpec>()
                .map_err(|e| format!("{what}= needs a domain-spec: {e}"))
        };
        return Ok(Term::Modifier(if name.eq_ignore_ascii_case("redirect") {
            Modifier::Redirect(spec("redirect")?)
        } else if name.eq_ignore_ascii_case("exp") {
            Modifier::Exp(spec("exp")?)
        } else {
            let value = parse_macro_string(value, MacroContext::Modifier)
                .map_err(|(o, r)| format!("value of `{name}=` at byte {o}: {r}"))?;
            Modifier::Unknown {
                name: name.to_string(),
                value,
            }
        }));
    }
    let (qualifier, body) = match b.first().and_then(|c| Qualifier::from_byte(*c)) {
        Some(q) => (q, &raw[1..]),
        None => (Qualifier::Pass, raw),
    };
    let split = body.find([':', '/']).unwrap_or(body.len());
    let (name, args) = body.split_at(split);
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" => {
            if !args.is_empty() {
                return Err("`all` takes no argument (§5.1: all = \"all\")".into());
            }
            Mechanism::All
        }
        "include" => Mechanism::Include(required_spec("include", args)?),
        "exists" => Mechanism::Exists(required_spec("exists", args)?),
        "a" | "mx" => {
            let (rest, cidr4, cidr6) = split_dual_cidr(args)?;
            let domain = optional_spec(name, rest)?;
            if name.eq_ignore_ascii_case("a") {
                Mechanism::A {
                    domain,
                    cidr4,
                    cidr6,
                }
            } else {
                Mechanism::Mx {
                    domain,
                    cidr4,
                    cidr6,
                }
            }
        }
        "ptr" => Mechanism::Ptr(optional_spec("ptr", args)?),
        "ip4" => {
            let v = args.strip_prefix(':').ok_or(
                "ip4 needs an address: ip4 = \"ip4\" \":\" ip4-network [ ip4-cidr-length ]",
            )?;
            let (addr, prefix) = match v.split_once('/') {
                Some((a, p)) => (a, Some(parse_cidr(p, 32)?)),
                None => (v, None),
            };
            Mechanism::Ip4 {
                addr: parse_ip4_network(addr)?,
                prefix,
            }
        }
        "ip6" => {
            let v = args.strip_prefix(':').ok_or(
                "ip6 needs an address: ip6 = \"ip6\" \":\" ip6-network [ ip6-cidr-length ]",
            )?;
            let (addr, prefix) = match v.split_once('/') {
                Some((a, p)) => (a, Some(parse_cidr(p, 128)?)),
                None => (v, None),
            };
            let addr = addr
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("`{addr}` is not an IPv6 address (§5.6 ip6-network)"))?;
            Mechanism::Ip6 { addr, prefix }
        }
        "redirect" | "exp" => {
            return Err(format!(
                "`{name}` is a modifier and is written `{name}=domain` (§6)"
            ));
        }
        _ => {
            return Err(format!(
                "unknown mechanism `{name}` (§5: all, include, a, mx, ptr, ip4, ip6, exists)"
            ));
        }
    };
    Ok(Term::Directive(Directive {
        qualifier,
        mechanism,
    }))
}

fn required_spec(mech: &str, args: &str) -> Result<DomainSpec, String> {
    let v = args
        .strip_prefix(':')
        .ok_or_else(|| format!("`{mech}` needs a domain: {mech} = \"{mech}\" \":\" domain-spec"))?;
    v.parse().map_err(|e| format!("{mech}: {e}"))
}

fn optional_spec(mech: &str, args: &str) -> Result<Option<DomainSpec>, String> {
    if args.is_empty() {
        return Ok(None);
    }
    let v = args
        .strip_prefix(':')
        .ok_or_else(|| format!("unexpected `{args}` after `{mech}`"))?;
    v.parse().map(Some).map_err(|e| format!("{mech}: {e}"))
}

/// RFC 7208 §5.6:
/// ```text
/// ip4-cidr-length  = "/" ("0" / %x31-39 0*1DIGIT) ; value range 0-32
/// ip6-cidr-length  = "/" ("0" / %x31-39 0*2DIGIT) ; value range 0-128
/// dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ]
/// ```
fn parse_cidr(digits: &str, max: u8) -> Result<u8, String> {
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    let n = if ok { digits.parse::<u16>().ok() } else { None };
    match n {
        Some(n) if n <= u16::from(max) => Ok(n as u8),
        _ => Err(format!(
            "`/{digits}` is not a prefix length from 0 to {max} without leading zeros (§5.6)"
        )),
    }
}

fn split_dual_cidr(args: &str) -> Result<(&str, Option<u8>, Option<u8>), String> {
    let mut rest = args;
    let mut cidr6 = None;
    if let Some(pos) = rest.rfind("//") {
        let tail = &rest[pos + 2..];
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            cidr6 = Some(parse_cidr(tail, 128)?);
            rest = &rest[..pos];
        }
    }
    let mut cidr4 = None;
    if let Some(pos) = rest.rfind('/') {
        let tail = &rest[pos + 1..];
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            cidr4 = Some(parse_cidr(tail, 32)?);
            rest = &rest[..pos];
        }
    }
    Ok((rest, cidr4, cidr6))
}

/// RFC 7208 §5.6: `ip4-network = qnum "." qnum "." qnum "." qnum`, where
/// `qnum` is 0-255 without leading zeros; "It is not permitted to omit
/// parts of the IP address instead of using CIDR notations."
fn parse_ip4_network(s: &str) -> Result<Ipv4Addr, String> {
    let err = || format!("`{s}` is not a dotted-quad IPv4 address (§5.6 ip4-network)");
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return Err(err());
    }
    let mut octets = [0u8; 4];
    for (o, p) in octets.iter_mut().zip(&parts) {
        let ok = !p.is_empty()
            && p.len() <= 3
            && p.bytes().all(|b| b.is_ascii_digit())
            && (*p == "0" || !p.starts_with('0'));
        *o = if ok {
            p.parse().map_err(|_| err())?
        } else {
            return Err(err());
        };
    }
    Ok(Ipv4Addr::from(octets))
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

fn write_dual_cidr(f: &mut fmt::Formatter<'_>, c4: Option<u8>, c6: Option<u8>) -> fmt::Result {
    if let Some(c) = c4 {
        write!(f, "/{c}")?;
    }
    if let Some(c) = c6 {
        write!(f, "//{c}")?;
    }
    Ok(())
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            Mechanism::All => Ok(()),
            Mechanism::Include(d) | Mechanism::Exists(d) => write!(f, ":{d}"),
            Mechanism::A {
                domain,
                cidr4,
                cidr6,
            }
            | Mechanism::Mx {
                domain,
                cidr4,
                cidr6,
            } => {
                if let Some(d) = domain {
                    write!(f, ":{d}")?;
                }
                write_dual_cidr(f, *cidr4, *cidr6)
            }
            Mechanism::Ptr(d) => match d {
                Some(d) => write!(f, ":{d}"),
                None => Ok(()),
            },
            Mechanism::Ip4 { addr, prefix } => {
                write!(f, ":{addr}")?;
                match prefix {
                    Some(p) => write!(f, "/{p}"),
                    None => Ok(()),
                }
            }
            Mechanism::Ip6 { addr, prefix } => {
                write!(f, ":{addr}")?;
                match prefix {
                    Some(p) => write!(f, "/{p}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.qualifier != Qualifier::Pass {
            write!(f, "{}", self.qualifier)?;
        }
        write!(f, "{}", self.mechanism)
    }
}

impl fmt::Display for Modifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Modifier::Redirect(d) => write!(f, "redirect={d}"),
            Modifier::Exp(d) => write!(f, "exp={d}"),
            Modifier::Unknown { name, value } => write!(f, "{name}={value}"),
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Directive(d) => d.fmt(f),
            Term::Modifier(m) => m.fmt(f),
        }
    }
}

impl fmt::Display for Spf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=spf1")?;
        for t in &self.terms {
            write!(f, " {t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(s: &str) -> DomainSpec {
        s.parse().unwrap()
    }

    #[test]
    fn real_records_parse_and_render_canonically() {
        // (published value, canonical rendering, DNS-querying terms, all)
        let table: &[(&str, &str, usize, Option<Qualifier>)] = &[
            (
                "v=spf1 include:_spf.google.com ~all",
                "v=spf1 include:_spf.google.com ~all",
                1,
                Some(Qualifier::SoftFail),
            ),
            (
                "v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip4:52.100.0.0/15 ip4:52.102.0.0/16 ip4:52.103.0.0/16 ip4:104.47.0.0/17 ip6:2a01:111:f400::/48 ip6:2a01:111:f403::/49 ip6:2a01:111:f403:8000::/51 ip6:2a01:111:f403:c000::/51 ip6:2a01:111:f403:f000::/52 -all",
                "v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip4:52.100.0.0/15 ip4:52.102.0.0/16 ip4:52.103.0.0/16 ip4:104.47.0.0/17 ip6:2a01:111:f400::/48 ip6:2a01:111:f403::/49 ip6:2a01:111:f403:8000::/51 ip6:2a01:111:f403:c000::/51 ip6:2a01:111:f403:f000::/52 -all",
                0,
                Some(Qualifier::Fail),
            ),
            (
                "v=spf1 ip4:199.255.192.0/22 ip4:199.127.232.0/22 ip4:54.240.0.0/18 ip4:69.169.224.0/20 ip4:23.249.208.0/20 ip4:23.251.224.0/19 ip4:76.223.176.0/20 ip4:54.240.64.0/19 ip4:54.240.96.0/19 ip4:52.82.172.0/22 -all",
                "v=spf1 ip4:199.255.192.0/22 ip4:199.127.232.0/22 ip4:54.240.0.0/18 ip4:69.169.224.0/20 ip4:23.249.208.0/20 ip4:23.251.224.0/19 ip4:76.223.176.0/20 ip4:54.240.64.0/19 ip4:54.240.96.0/19 ip4:52.82.172.0/22 -all",
                0,
                Some(Qualifier::Fail),
            ),
            (
                "v=spf1 include:amazonses.com include:spf.protection.outlook.com include:_spf.google.com -all",
                "v=spf1 include:amazonses.com include:spf.protection.outlook.com include:_spf.google.com -all",
                3,
                Some(Qualifier::Fail),
            ),
            (
                "V=SPF1  +MX  A:mail.Example.com/24//64   ?PTR -Exists:%{ir}.%{l1r+-}._spf.%{d} Redirect=_spf.example.net exp=explain._spf.%{d} ",
                "v=spf1 mx a:mail.Example.com/24//64 ?ptr -exists:%{ir}.%{l1r+-}._spf.%{d} redirect=_spf.example.net exp=explain._spf.%{d}",
                5,
                None,
            ),
            ("v=spf1", "v=spf1", 0, None),
            (
                "v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all",
                "v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all",
                0,
                Some(Qualifier::Fail),
            ),
        ];
        for (input, canonical, lookups, all) in table {
            let spf: Spf = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(spf.to_string(), *canonical, "{input}");
            assert_eq!(spf.dns_mechanism_count(), *lookups, "{input}");
            assert_eq!(spf.all(), *all, "{input}");
            assert_eq!(spf.to_string().parse::<Spf>().unwrap(), spf, "{input}");
        }
    }

    #[test]
    fn helpers() {
        let spf: Spf =
            "v=spf1 include:a.example include:b.example redirect=c.example exp=d.example"
                .parse()
                .unwrap();
        let inc: Vec<String> = spf.includes().iter().map(|d| d.to_string()).collect();
        assert_eq!(inc, ["a.example", "b.example"]);
        assert_eq!(spf.redirect(), Some(&spec("c.example")));
        assert_eq!(spf.exp(), Some(&spec("d.example")));
        assert_eq!(spf.dns_mechanism_count(), 3);
        assert_eq!(
            DomainSpec::literal("_spf.example.com")
                .unwrap()
                .as_literal()
                .as_deref(),
            Some("_spf.example.com")
        );
        assert!(DomainSpec::literal("localhost").is_err());
        assert!(spec("%{d}.example.com").has_macros());
    }

    #[test]
    fn parsed_structure() {
        let spf: Spf = "v=spf1 a/24 mx:m.example.com//64 ip4:192.0.2.0/24 ip6:2001:db8::/32 ?exists:%{i}.x.example -all"
            .parse()
            .unwrap();
        assert_eq!(
            spf.terms[0],
            Term::Directive(Directive {
                qualifier: Qualifier::Pass,
                mechanism: Mechanism::A {
                    domain: None,
                    cidr4: Some(24),
                    cidr6: None
                }
            })
        );
        assert_eq!(
            spf.terms[1],
            Term::Directive(Directive {
                qualifier: Qualifier::Pass,
                mechanism: Mechanism::Mx {
                    domain: Some(spec("m.example.com")),
                    cidr4: None,
                    cidr6: Some(64)
                }
            })
        );
        assert_eq!(
            spf.terms[2],
            Term::Directive(Directive {
                qualifier: Qualifier::Pass,
                mechanism: Mechanism::Ip4 {
                    addr: Ipv4Addr::new(192, 0, 2, 0),
                    prefix: Some(24)
                }
            })
        );
        let Term::Directive(Directive {
            qualifier: Qualifier::Neutral,
            mechanism: Mechanism::Exists(d),
        }) = &spf.terms[4]
        else {
            panic!("{:?}", spf.terms[4]);
        };
        assert_eq!(
            d.macro_string().tokens[0],
            MacroToken::Expand(MacroExpand {
                letter: MacroLetter::Ip,
                url_escape: false,
                digits: None,
                reverse: false,
                delimiters: String::new()
            })
        );
    }

    #[test]
    fn errors_name_the_term_and_position() {
        let cases: &[(&str, usize, &str)] = &[
            ("v=spf1 ip4:1.2.3.4 -all moo", 3, "moo"),
            ("v=spf1 -all.", 1, "-all."),
            ("v=spf1 all:foobar", 1, "all:foobar"),
            ("v=spf1 a/33", 1, "a/33"),
            ("v=spf1 a//129", 1, "a//129"),
            ("v=spf1 a/24/64", 1, "a/24/64"),
            ("v=spf1 ip4:1.2.3.4/032", 1, "ip4:1.2.3.4/032"),
            ("v=spf1 ip4:1.2.3", 1, "ip4:1.2.3"),
            ("v=spf1 ip4:01.2.3.4", 1, "ip4:01.2.3.4"),
            ("v=spf1 ip4:1.2.3.4//32", 1, "ip4:1.2.3.4//32"),
            ("v=spf1 ip6::CAFE::BABE", 1, "ip6::CAFE::BABE"),
            ("v=spf1 a:museum", 1, "a:museum"),
            ("v=spf1 a:museum.", 1, "a:museum."),
            ("v=spf1 a:111.222.33.44", 1, "a:111.222.33.44"),
            ("v=spf1 a:example.-com", 1, "a:example.-com"),
            ("v=spf1 include:", 1, "include:"),
            ("v=spf1 include", 1, "include"),
            (
                "v=spf1 exists:a.example.com/24",
                1,
                "exists:a.example.com/24",
            ),
            ("v=spf1 ptr/0", 1, "ptr/0"),
            ("v=spf1 1up=foo", 1, "1up=foo"),
            ("v=spf1 =all", 1, "=all"),
            ("v=spf1 -all foo=%abc", 2, "foo=%abc"),
            ("v=spf1 redirect:x.example.com", 1, "redirect:x.example.com"),
            ("v=spf1 exp=", 1, "exp="),
            ("v=spf1 a:%{x}.example.com", 1, "a:%{x}.example.com"),
            (
                "v=spf1 -all exp=%{r}.example.com",
                2,
                "exp=%{r}.example.com",
            ),
            ("v=spf1 a:%{d0}.example.com", 1, "a:%{d0}.example.com"),
            (
                "v=spf1 exists:%(ir).sbl.example.com",
                1,
                "exists:%(ir).sbl.example.com",
            ),
            (
                "v=spf1 moo.cow/far_out=man:dog/cat",
                1,
                "moo.cow/far_out=man:dog/cat",
            ),
        ];
        for (input, index, term) in cases {
            match input.parse::<Spf>() {
                Err(SpfError::Term {
                    index: i,
                    term: t,
                    offset,
                    ..
                }) => {
                    assert_eq!((i, t.as_str()), (*index, *term), "{input}");
                    assert_eq!(&input[offset..offset + term.len()], *term, "{input}");
                }
                other => panic!("{input}: expected a term error, got {other:?}"),
            }
        }
        assert!(matches!(
            "v=spf1 redirect=a.example redirect=b.example".parse::<Spf>(),
            Err(SpfError::DuplicateModifier { index: 2, .. })
        ));
        assert!(matches!(
            "v=spf1 exp=a.example -all exp=b.example".parse::<Spf>(),
            Err(SpfError::DuplicateModifier { index: 3, .. })
        ));
        assert!(matches!(
            "v=spf1 a:ctrl.example.com\rptr -all".parse::<Spf>(),
            Err(SpfError::BadCharacter { offset: 25, .. })
        ));
        assert!(matches!(
            "v=spf10".parse::<Spf>(),
            Err(SpfError::NotSpf { .. })
        ));
        assert!(matches!(
            "v=spf1mx".parse::<Spf>(),
            Err(SpfError::NotSpf { .. })
        ));
    }

    #[test]
    fn accepted_oddities() {
        for ok in [
            "v=spf1 a:foo:bar/baz.example.com",
            "v=spf1 a:foo.example.xn--zckzah -all",
            "v=spf1 a:mail.example...com -all",
            "v=spf1 a:macro%%percent%_%_space%-url-space.example.com -all",
            "v=spf1 default=+",
            "v=spf1 exists:%{l2r+-}.user.%{d2}",
            "v=spf1 ip6:::1.1.1.1/0",
            "v=spf1 a:%{H}.bar -all",
        ] {
            let spf: Spf = ok.parse().unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(spf.to_string().parse::<Spf>().unwrap(), spf, "{ok}");
        }
    }

    fn domain_spec() -> impl Strategy<Value = DomainSpec> {
        (
            proptest::collection::vec(
                prop_oneof![
                    "[a-z0-9_-]{1,8}",
                    "%\\{[slodipvhSLODIPVH][1-9]?r?[-.+,/_=]{0,2}\\}",
                    Just("%%".to_string()),
                    Just("%_".to_string()),
                    Just("%-".to_string()),
                ],
                0..4,
            ),
            "[a-z][a-z0-9]{0,5}",
            any::<bool>(),
        )
            .prop_map(|(parts, top, dot)| {
                let mut s = parts.join(".");
                s.push('.');
                s.push_str(&top);
                if dot {
                    s.push('.');
                }
                s.parse().unwrap()
            })
    }

    fn qualifier() -> impl Strategy<Value = Qualifier> {
        prop_oneof![
            Just(Qualifier::Pass),
            Just(Qualifier::Fail),
            Just(Qualifier::SoftFail),
            Just(Qualifier::Neutral)
        ]
    }

    fn mechanism() -> impl Strategy<Value = Mechanism> {
        prop_oneof![
            Just(Mechanism::All),
            domain_spec().prop_map(Mechanism::Include),
            domain_spec().prop_map(Mechanism::Exists),
            (
                proptest::option::of(domain_spec()),
                proptest::option::of(0u8..=32),
                proptest::option::of(0u8..=128)
            )
                .prop_map(|(domain, cidr4, cidr6)| Mechanism::A {
                    domain,
                    cidr4,
                    cidr6
                }),
            (
                proptest::option::of(domain_spec()),
                proptest::option::of(0u8..=32),
                proptest::option::of(0u8..=128)
            )
                .prop_map(|(domain, cidr4, cidr6)| Mechanism::Mx {
                    domain,
                    cidr4,
                    cidr6
                }),
            proptest::option::of(domain_spec()).prop_map(Mechanism::Ptr),
            (any::<[u8; 4]>(), proptest::option::of(0u8..=32)).prop_map(|(a, prefix)| {
                Mechanism::Ip4 {
                    addr: Ipv4Addr::from(a),
                    prefix,
                }
            }),
            (any::<[u8; 16]>(), proptest::option::of(0u8..=128)).prop_map(|(a, prefix)| {
                Mechanism::Ip6 {
                    addr: Ipv6Addr::from(a),
                    prefix,
                }
            }),
        ]
    }

    fn spf() -> impl Strategy<Value = Spf> {
        (
            proptest::collection::vec((qualifier(), mechanism()), 0..8),
            proptest::option::of(domain_spec()),
            proptest::option::of(domain_spec()),
            proptest::option::of(("[a-z][a-z0-9._-]{0,6}", "[a-z0-9.+]{0,8}")),
        )
            .prop_map(|(dirs, redirect, exp, unknown)| {
                let mut terms: Vec<Term> = dirs
                    .into_iter()
                    .map(|(qualifier, mechanism)| {
                        Term::Directive(Directive {
                            qualifier,
                            mechanism,
                        })
                    })
                    .collect();
                if let Some((name, value)) = unknown
                    && !name.eq_ignore_ascii_case("redirect")
                    && !name.eq_ignore_ascii_case("exp")
                {
                    terms.push(Term::Modifier(Modifier::Unknown {
                        name,
                        value: MacroString::parse(&value, MacroContext::Modifier).unwrap(),
                    }));
                }
                if let Some(r) = redirect {
                    terms.push(Term::Modifier(Modifier::Redirect(r)));
                }
                if let Some(e) = exp {
                    terms.push(Term::Modifier(Modifier::Exp(e)));
                }
                Spf { terms }
            })
    }

    proptest! {
        #[test]
        fn round_trip(v in spf()) {
            let text = v.to_string();
            let parsed: Spf = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&parsed, &v);
            // Canonical: rendering is a fixed point, single spaces, no `+`.
            prop_assert_eq!(parsed.to_string(), text.clone());
            prop_assert!(!text.contains("  "));
            prop_assert!(!text.contains(" +"));
        }

        #[test]
        fn never_panics(s in "v=spf1( [ -~]{0,20}){0,4}") {
            let _ = s.parse::<Spf>();
        }
    }
}
