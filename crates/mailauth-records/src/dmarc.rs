//! The DMARC policy record published at `_dmarc.<domain>` (RFC 9989, which
//! obsoletes RFC 7489): its typed value [`Dmarc`], the report URI type
//! [`ReportUri`], parsing from a joined TXT value and canonical rendering.
//!
//! This module owns the record syntax only. It does not look records up,
//! walk the DNS tree, evaluate alignment or decide whether an external report
//! destination is authorized; it only names the domains that need checking
//! ([`Dmarc::report_domains`], [`report_authorization_name`]).
//!
//! Tags that RFC 9989 removed (`pct`, `rf`, `ri`) are still parsed and
//! rendered when present, because RFC 7489 receivers still read them.
//! Unknown tags are ignored on parse ("Unknown tags MUST be ignored") and so
//! are not kept in the value: rendering a parsed record drops them.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::Name;
use super::dkim::tag_list;

/// Errors from parsing a DMARC record or a report URI. Every message names
/// the tag and the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DmarcError {
    #[error("a DMARC record must start with `v=DMARC1`, found `{found}`")]
    Version { found: String },
    #[error("malformed DMARC tag `{segment}`: expected `name=value`")]
    Syntax { segment: String },
    #[error("DMARC tag `{tag}` appears more than once")]
    Duplicate { tag: String },
    #[error("DMARC tag `{tag}` has invalid value `{value}`: expected {expected}")]
    Value {
        tag: String,
        value: String,
        expected: &'static str,
    },
    #[error("report URI `{uri}` {reason}")]
    ReportUri { uri: String, reason: &'static str },
    #[error("DMARC tag `{tag}`: report URI `{uri}` {reason}")]
    TagUri {
        tag: String,
        uri: String,
        reason: &'static str,
    },
}

/// RFC 9989 §4.7: `dmarc-request = "none" / "quarantine" / "reject"`.
#[derive(
    schemars::JsonSchema,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    None,
    Quarantine,
    Reject,
}

impl Policy {
    fn parse(tag: &str, v: &str) -> Result<Policy, DmarcError> {
        match v.to_ascii_lowercase().as_str() {
            "none" => Ok(Policy::None),
            "quarantine" => Ok(Policy::Quarantine),
            "reject" => Ok(Policy::Reject),
            _ => Err(value_err(tag, v, "`none`, `quarantine` or `reject`")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 9989 §4.7: `dmarc-rors = "r" / "s"` (adkim, aspf); relaxed is the
/// default.
#[derive(schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Alignment {
    #[default]
    Relaxed,
    Strict,
}

impl Alignment {
    fn parse(tag: &str, v: &str) -> Result<Alignment, DmarcError> {
        match v.to_ascii_lowercase().as_str() {
            "r" => Ok(Alignment::Relaxed),
            "s" => Ok(Alignment::Strict),
            _ => Err(value_err(tag, v, "`r` or `s`")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alignment::Relaxed => "r",
            Alignment::Strict => "s",
        }
    }
}

/// RFC 9989 §4.7: `dmarc-psd = "y" / "n" / "u"`. `y`: this is a Public
/// Suffix Domain; `n`: this is an Organizational Domain; `u` (the default):
/// determine it by the DNS tree walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Psd {
    Yes,
    No,
    #[default]
    Unknown,
}

impl Psd {
    fn parse(v: &str) -> Result<Psd, DmarcError> {
        match v.to_ascii_lowercase().as_str() {
            "y" => Ok(Psd::Yes),
            "n" => Ok(Psd::No),
            "u" => Ok(Psd::Unknown),
            _ => Err(value_err("psd", v, "`y`, `n` or `u`")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Psd::Yes => "y",
            Psd::No => "n",
            Psd::Unknown => "u",
        }
    }
}

/// RFC 7489 §6.3 `fo`: "0" / "1" / "d" / "s", colon-separated. RFC 9989
/// keeps the tag for failure reports (RFC 9991).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum FailureOption {
    /// `0`: report when all mechanisms fail to produce an aligned pass.
    All,
    /// `1`: report when any mechanism fails to produce an aligned pass.
    Any,
    /// `d`: report any DKIM signature that failed to verify.
    Dkim,
    /// `s`: report any SPF evaluation that failed.
    Spf,
}

impl FailureOption {
    fn parse(v: &str) -> Option<FailureOption> {
        match v.to_ascii_lowercase().as_str() {
            "0" => Some(FailureOption::All),
            "1" => Some(FailureOption::Any),
            "d" => Some(FailureOption::Dkim),
            "s" => Some(FailureOption::Spf),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureOption::All => "0",
            FailureOption::Any => "1",
            FailureOption::Dkim => "d",
            FailureOption::Spf => "s",
        }
    }
}

/// The size limit suffix of an RFC 7489 report URI (`!10m`). RFC 9989 §4.7
/// makes it obsolete ("report generators MUST ignore" it), but records still
/// carry it, so it is kept to render records unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ReportSize {
    pub value: u64,
    /// `k`, `m`, `g` or `t` (lower-case), or none for bytes.
    pub unit: Option<char>,
}

/// A DMARC report destination: a `mailto:` URI whose address has a domain,
/// with RFC 7489's optional size limit.
///
/// RFC 7489 §6.4:
/// ```text
/// dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ]
///             ; "URI" is imported from [RFC3986]; commas (ASCII
///             ; 0x2C) and exclamation points (ASCII 0x21)
///             ; MUST be encoded
/// ```
/// RFC 9989 §4.7 (`rua`): "Any valid URI can be specified. A Mail Receiver
/// MUST implement support for a "mailto:" URI". Only `mailto:` is accepted
/// here, because that is the only scheme receivers are required to use.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ReportUri {
    /// The address after `mailto:`, as written (local part is case-sensitive).
    pub address: String,
    pub size: Option<ReportSize>,
}

impl ReportUri {
    /// The domain of the address, lower-cased.
    pub fn domain(&self) -> String {
        match self.address.rsplit_once('@') {
            Some((_, d)) => d.to_ascii_lowercase(),
            None => String::new(),
        }
    }
}

impl FromStr for ReportUri {
    type Err = DmarcError;

    fn from_str(s: &str) -> Result<ReportUri, DmarcError> {
        let err = |reason| DmarcError::ReportUri {
            uri: s.to_string(),
            reason,
        };
        let s_trim = s.trim();
        let Some((scheme, rest)) = s_trim.split_once(':') else {
            return Err(err("is not a URI: expected `mailto:user@domain`"));
        };
        if !scheme.eq_ignore_ascii_case("mailto") {
            return Err(err(
                "is not a mailto: URI (DMARC reports are delivered by mail: use `mailto:user@domain`)",
            ));
        }
        let (address, size) = match rest.split_once('!') {
            Some((a, sz)) => (a, Some(parse_size(sz).ok_or_else(|| err("has an invalid size limit: expected `!` digits and an optional k, m, g or t"))?)),
            None => (rest, None),
        };
        if address.contains(['?', ',', ';', '!'])
            || address.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(err(
                "contains a character that must be percent-encoded, or a query",
            ));
        }
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(err("has no `@domain` in its address"));
        };
        if local.is_empty() {
            return Err(err("has an empty local part"));
        }
        if domain.is_empty() || domain.ends_with('.') || Name::parse(domain).is_err() {
            return Err(err("has an invalid domain in its address"));
        }
        Ok(ReportUri {
            address: address.to_string(),
            size,
        })
    }
}

fn parse_size(s: &str) -> Option<ReportSize> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], Some(c.to_ascii_lowercase())),
        _ => (s, None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(u) = unit
        && !matches!(u, 'k' | 'm' | 'g' | 't')
    {
        return None;
    }
    // "the numeric portion MUST fit within an unsigned 64-bit integer"
    let value = digits.parse::<u64>().ok()?;
    Some(ReportSize { value, unit })
}

impl fmt::Display for ReportUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mailto:{}", self.address)?;
        if let Some(size) = self.size {
            write!(f, "!{}", size.value)?;
            if let Some(u) = size.unit {
                write!(f, "{u}")?;
            }
        }
        Ok(())
    }
}

/// A DMARC policy record.
///
/// RFC 9989 §4.8 (formal definition):
/// ```text
/// dmarc-record  = dmarc-version *(dmarc-sep dmarc-tag) [dmarc-sep] *WSP
/// dmarc-tag     = 1*ALPHA equals 1*dmarc-value
/// dmarc-value   = %x20-3A / %x3C-7E ; any printing characters but semicolon
/// dmarc-version = "v" equals %s"DMARC1"
/// dmarc-sep     = *WSP ";" *WSP
/// equals        = *WSP "=" *WSP
/// dmarc-request = "none" / "quarantine" / "reject"
/// dmarc-yorn    = "y" / "n"
/// dmarc-psd     = "y" / "n" / "u"
/// dmarc-rors    = "r" / "s"
/// dmarc-urilist = dmarc-uri *(*WSP "," *WSP dmarc-uri)
/// ```
/// and RFC 7489 §6.4 for the tags RFC 9989 removed:
/// ```text
/// dmarc-percent = "pct" *WSP "=" *WSP 1*3DIGIT
/// dmarc-rfmt    = "rf"  *WSP "=" *WSP Keyword *(*WSP ":" Keyword)
/// dmarc-ainterval = "ri" *WSP "=" *WSP 1*DIGIT
/// dmarc-fo      = "fo" *WSP "=" *WSP
///                 ( "0" / "1" / "d" / "s" )
///                 *(*WSP ":" *WSP ( "0" / "1" / "d" / "s" ))
/// ```
/// Quoted ABNF strings are case-insensitive, so tag names and the values
/// above are matched without regard to case; `DMARC1` (`%s`) is not.
///
/// Every tag is optional and absent tags stay absent (`None` / empty), so a
/// parsed record renders back to the same tags. Canonical rendering is
/// `v, p, sp, np, psd, t, adkim, aspf, pct, fo, rf, ri, rua, ruf`, joined
/// with `; `, no trailing separator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Dmarc {
    pub p: Option<Policy>,
    pub sp: Option<Policy>,
    pub np: Option<Policy>,
    pub psd: Option<Psd>,
    /// `t=y` / `t=n` (RFC 9989 testing mode).
    pub t: Option<bool>,
    pub adkim: Option<Alignment>,
    pub aspf: Option<Alignment>,
    /// RFC 7489 only: 0..=100.
    pub pct: Option<u8>,
    /// Empty when absent.
    pub fo: Vec<FailureOption>,
    /// RFC 7489 only: report formats (`afrf`), lower-cased. Empty when absent.
    pub rf: Vec<String>,
    /// RFC 7489 only: aggregate report interval in seconds.
    pub ri: Option<u32>,
    /// Empty when absent.
    pub rua: Vec<ReportUri>,
    /// Empty when absent.
    pub ruf: Vec<ReportUri>,
}

fn value_err(tag: &str, value: &str, expected: &'static str) -> DmarcError {
    DmarcError::Value {
        tag: tag.to_string(),
        value: value.to_string(),
        expected,
    }
}

fn parse_uris(tag: &str, v: &str) -> Result<Vec<ReportUri>, DmarcError> {
    v.split(',')
        .map(|u| {
            u.trim().parse::<ReportUri>().map_err(|e| match e {
                DmarcError::ReportUri { uri, reason } => DmarcError::TagUri {
                    tag: tag.to_string(),
                    uri,
                    reason,
                },
                other => other,
            })
        })
        .collect()
}

impl Dmarc {
    /// The policy a receiver applies to the domain itself.
    ///
    /// RFC 9989 §4.7 makes `p` optional: a policy record without a valid `p`
    /// is treated as `p=none` (RFC 7489 §6.6.3 did the same only when `rua`
    /// held a valid URI, and otherwise skipped DMARC, which also amounts to no
    /// action). `t=y` does not change the published policy; it only asks
    /// receivers that they MAY apply a weaker one, see [`Dmarc::testing`].
    pub fn effective_policy(&self) -> Policy {
        self.p.unwrap_or(Policy::None)
    }

    /// The policy for existing subdomains: RFC 9989 §4.7 `sp`: "If absent,
    /// the policy specified by the p tag MUST be applied for subdomains."
    pub fn subdomain_policy(&self) -> Policy {
        self.sp.unwrap_or_else(|| self.effective_policy())
    }

    /// The policy for non-existent subdomains: RFC 9989 §4.7 `np`: "If the
    /// np tag is absent, the policy specified by the sp tag (if the sp tag
    /// is present) or the policy specified by the p tag (if the sp tag is
    /// absent) MUST be applied for non-existent subdomains."
    pub fn nonexistent_policy(&self) -> Policy {
        self.np.unwrap_or_else(|| self.subdomain_policy())
    }

    /// Whether the record asks for testing mode (`t=y`, RFC 9989), or the
    /// RFC 7489 equivalent `pct` below 100.
    pub fn testing(&self) -> bool {
        self.t == Some(true) || self.pct.is_some_and(|p| p < 100)
    }

    /// The lower-cased domains of all `rua` and `ruf` addresses, each once,
    /// in order of first appearance. Each domain outside the policy's
    /// organizational domain must authorize reports with a record at
    /// [`report_authorization_name`] (RFC 9989 §3.2 / RFC 7489 §7.1).
    pub fn report_domains(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for uri in self.rua.iter().chain(&self.ruf) {
            let d = uri.domain();
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }
}

/// RFC 7489 §7.1: "the Mail Receiver ... MUST query the DNS for a TXT
/// record at `<target-domain>._report._dmarc.<report-domain>`" (kept in
/// RFC 9990 §3). `target` is the domain the policy is published for.
pub fn report_authorization_name(target: &Name, report_domain: &Name) -> Name {
    let mut labels = report_domain.child("_dmarc").child("_report");
    for label in target.as_str().rsplit('.') {
        if !label.is_empty() {
            labels = labels.child(label);
        }
    }
    labels
}

impl FromStr for Dmarc {
    type Err = DmarcError;

    fn from_str(s: &str) -> Result<Dmarc, DmarcError> {
        let tags = tag_list(s).map_err(|segment| DmarcError::Syntax {
            segment: segment.to_string(),
        })?;
        // "the "v" tag MUST be present and MUST appear first" (RFC 9989 §4.7)
        match tags.first() {
            Some((name, value)) if name.eq_ignore_ascii_case("v") && *value == "DMARC1" => {}
            Some((name, value)) => {
                return Err(DmarcError::Version {
                    found: format!("{name}={value}"),
                });
            }
            None => {
                return Err(DmarcError::Version {
                    found: s.trim().to_string(),
                });
            }
        }
        let mut d = Dmarc::default();
        let mut seen: Vec<String> = Vec::new();
        for &(name, v) in &tags[1..] {
            let tag = name.to_ascii_lowercase();
            if seen.contains(&tag) {
                return Err(DmarcError::Duplicate { tag });
            }
            seen.push(tag.clone());
            let t = tag.as_str();
            match t {
                "v" => return Err(DmarcError::Duplicate { tag }),
                "p" => d.p = Some(Policy::parse(t, v)?),
                "sp" => d.sp = Some(Policy::parse(t, v)?),
                "np" => d.np = Some(Policy::parse(t, v)?),
                "psd" => d.psd = Some(Psd::parse(v)?),
                "t" => {
                    d.t = Some(match v.to_ascii_lowercase().as_str() {
                        "y" => true,
                        "n" => false,
                        _ => return Err(value_err(t, v, "`y` or `n`")),
                    })
                }
                "adkim" => d.adkim = Some(Alignment::parse(t, v)?),
                "aspf" => d.aspf = Some(Alignment::parse(t, v)?),
                "pct" => {
                    let n =
                        (!v.is_empty() && v.len() <= 3 && v.bytes().all(|b| b.is_ascii_digit()))
                            .then(|| v.parse::<u8>().ok())
                            .flatten()
                            .filter(|&n| n <= 100)
                            .ok_or_else(|| value_err(t, v, "an integer from 0 to 100"))?;
                    d.pct = Some(n);
                }
                "fo" => {
                    d.fo = v
                        .split(':')
                        .map(|o| FailureOption::parse(o.trim()))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| value_err(t, v, "`0`, `1`, `d` or `s`, separated by `:`"))?;
                }
                "rf" => {
                    d.rf = v
                        .split(':')
                        .map(|k| {
                            let k = k.trim();
                            let ok = !k.is_empty()
                                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                            ok.then(|| k.to_ascii_lowercase())
                        })
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| value_err(t, v, "report format keywords such as `afrf`"))?;
                }
                "ri" => {
                    let n = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| v.parse::<u32>().ok())
                        .flatten()
                        .ok_or_else(|| value_err(t, v, "a number of seconds (32-bit)"))?;
                    d.ri = Some(n);
                }
                "rua" => d.rua = parse_uris(t, v)?,
                "ruf" => d.ruf = parse_uris(t, v)?,
                // "Unknown tags MUST be ignored." (RFC 9989 §4.7)
                _ => {}
            }
        }
        Ok(d)
    }
}

impl fmt::Display for Dmarc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=DMARC1")?;
        let mut tag = |name: &str, value: &dyn fmt::Display| write!(f, "; {name}={value}");
        if let Some(p) = self.p {
            tag("p", &p)?;
        }
        if let Some(p) = self.sp {
            tag("sp", &p)?;
        }
        if let Some(p) = self.np {
            tag("np", &p)?;
        }
        if let Some(p) = self.psd {
            tag("psd", &p.as_str())?;
        }
        if let Some(t) = self.t {
            tag("t", &if t { "y" } else { "n" })?;
        }
        if let Some(a) = self.adkim {
            tag("adkim", &a.as_str())?;
        }
        if let Some(a) = self.aspf {
            tag("aspf", &a.as_str())?;
        }
        if let Some(p) = self.pct {
            tag("pct", &p)?;
        }
        if !self.fo.is_empty() {
            let fo: Vec<&str> = self.fo.iter().map(|o| o.as_str()).collect();
            tag("fo", &fo.join(":"))?;
        }
        if !self.rf.is_empty() {
            tag("rf", &self.rf.join(":"))?;
        }
        if let Some(ri) = self.ri {
            tag("ri", &ri)?;
        }
        for (name, uris) in [("rua", &self.rua), ("ruf", &self.ruf)] {
            if !uris.is_empty() {
                let list: Vec<String> = uris.iter().map(|u| u.to_string()).collect();
                tag(name, &list.join(","))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (published record, canonical rendering). Records in the form large
    /// mail senders publish them, and RFC-style examples.
    const TABLE: &[(&str, &str)] = &[
        // google.com
        (
            "v=DMARC1; p=reject; rua=mailto:mailauth-reports@google.com",
            "v=DMARC1; p=reject; rua=mailto:mailauth-reports@google.com",
        ),
        // gmail.com
        (
            "v=DMARC1; p=none; sp=quarantine; rua=mailto:mailauth-reports@google.com",
            "v=DMARC1; p=none; sp=quarantine; rua=mailto:mailauth-reports@google.com",
        ),
        // microsoft.com
        (
            "v=DMARC1; p=reject; pct=100; rua=mailto:d@rua.agari.com; ruf=mailto:d@ruf.agari.com; fo=1",
            "v=DMARC1; p=reject; pct=100; fo=1; rua=mailto:d@rua.agari.com; ruf=mailto:d@ruf.agari.com",
        ),
        // yahoo.com
        (
            "v=DMARC1; p=reject; pct=100; rua=mailto:d@rua.agari.com; ruf=mailto:d@ruf.agari.com;",
            "v=DMARC1; p=reject; pct=100; rua=mailto:d@rua.agari.com; ruf=mailto:d@ruf.agari.com",
        ),
        // outlook.com
        (
            "v=DMARC1; p=none; pct=100; rua=mailto:rua@dmarc.microsoft; ruf=mailto:ruf@dmarc.microsoft; fo=1",
            "v=DMARC1; p=none; pct=100; fo=1; rua=mailto:rua@dmarc.microsoft; ruf=mailto:ruf@dmarc.microsoft",
        ),
        // all failure options
        (
            "v=DMARC1; p=none; fo=1:s:d:0; ruf=mailto:ruf@example.com",
            "v=DMARC1; p=none; fo=1:s:d:0; ruf=mailto:ruf@example.com",
        ),
        // RFC 7489 Appendix B.2.4 style, sizes and several URIs
        (
            "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,mailto:tld-test@thirdparty.example.net!10m; pct=25",
            "v=DMARC1; p=quarantine; pct=25; rua=mailto:dmarc-feedback@example.com,mailto:tld-test@thirdparty.example.net!10m",
        ),
        // RFC 9989 tags, odd case and spacing, unknown tag dropped
        (
            "V = DMARC1 ;P=Reject ; NP=quarantine;psd=N; t=Y ; adkim=S;aspf=r; future_tag=1 ;",
            "v=DMARC1; p=reject; np=quarantine; psd=n; t=y; adkim=s; aspf=r",
        ),
        // apple.com shape: sp stricter than p, trailing separator
        (
            "v=DMARC1; p=quarantine; sp=reject; rua=mailto:d@rua.agari.com; ruf=mailto:d@ruf.agari.com;",
            "v=DMARC1; p=quarantine; sp=reject; rua=mailto:d@rua.agari.com; ruf=mailto:d@ruf.agari.com",
        ),
        // no spaces at all, strict alignment (common for banks)
        (
            "v=DMARC1;p=reject;sp=reject;adkim=s;aspf=s;rua=mailto:dmarc@example.com",
            "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s; rua=mailto:dmarc@example.com",
        ),
        // what record generators emit: every RFC 7489 default spelled out
        (
            "v=DMARC1; p=none; rua=mailto:x@example.com; ruf=mailto:x@example.com; rf=afrf; pct=100; ri=86400",
            "v=DMARC1; p=none; pct=100; rf=afrf; ri=86400; rua=mailto:x@example.com; ruf=mailto:x@example.com",
        ),
        // RFC 9989 Public Suffix Domain operator (e.g. a TLD)
        ("v=DMARC1; p=reject; psd=y", "v=DMARC1; p=reject; psd=y"),
        // hosted DMARC services: several rua, percent-encoded local part
        (
            "v=DMARC1; p=quarantine; pct=50; rua=mailto:abc123@inbox.ondmarc.com,mailto:re+x%2Cy@ag.dmarcian.com",
            "v=DMARC1; p=quarantine; pct=50; rua=mailto:abc123@inbox.ondmarc.com,mailto:re+x%2Cy@ag.dmarcian.com",
        ),
        // leading zeros and whitespace inside lists are not kept
        (
            "v=DMARC1; p=none; pct=050; fo = 0 : 1; rua = mailto:a@example.com ,mailto:b@example.com",
            "v=DMARC1; p=none; pct=50; fo=0:1; rua=mailto:a@example.com,mailto:b@example.com",
        ),
        // third-party reporting record (no p)
        ("v=DMARC1", "v=DMARC1"),
        (
            "v=DMARC1; p=none; rf=AFRF; ri=3600; rua=mailto:a@example.com , MAILTO:b@Example.org!5",
            "v=DMARC1; p=none; rf=afrf; ri=3600; rua=mailto:a@example.com,mailto:b@Example.org!5",
        ),
    ];

    #[test]
    fn real_world_records_parse_and_render_canonically() {
        for (input, expected) in TABLE {
            let d: Dmarc = input
                .parse()
                .unwrap_or_else(|e| panic!("`{input}` did not parse: {e}"));
            assert_eq!(d.to_string(), *expected, "rendering of `{input}`");
            let again: Dmarc = expected.parse().expect("canonical form parses");
            assert_eq!(again, d, "round trip of `{input}`");
        }
    }

    #[test]
    fn fields_of_a_full_record() {
        let d: Dmarc = "v=DMARC1; p=quarantine; sp=reject; np=reject; psd=y; t=n; adkim=s; aspf=s; fo=0:d; rua=mailto:r@example.com!10m"
            .parse()
            .unwrap();
        assert_eq!(d.p, Some(Policy::Quarantine));
        assert_eq!(d.sp, Some(Policy::Reject));
        assert_eq!(d.np, Some(Policy::Reject));
        assert_eq!(d.psd, Some(Psd::Yes));
        assert_eq!(d.t, Some(false));
        assert_eq!(d.adkim, Some(Alignment::Strict));
        assert_eq!(d.fo, vec![FailureOption::All, FailureOption::Dkim]);
        assert_eq!(
            d.rua,
            vec![ReportUri {
                address: "r@example.com".into(),
                size: Some(ReportSize {
                    value: 10,
                    unit: Some('m')
                })
            }]
        );
        assert!(!d.testing());
    }

    /// (input, substring the error message must contain)
    const BAD: &[(&str, &str)] = &[
        ("p=reject; v=DMARC1", "v=DMARC1"),
        ("v=DMARC2; p=reject", "v=DMARC2"),
        ("v=dmarc1; p=reject", "v=dmarc1"),
        ("", "v=DMARC1"),
        ("v=spf1 -all", "v=spf1 -all"),
        ("v=DMARC1; p=block", "`p` has invalid value `block`"),
        (
            "v=DMARC1; p=none; sp=maybe",
            "`sp` has invalid value `maybe`",
        ),
        ("v=DMARC1; psd=x", "`psd` has invalid value `x`"),
        ("v=DMARC1; t=yes", "`t` has invalid value `yes`"),
        ("v=DMARC1; adkim=x", "`adkim` has invalid value `x`"),
        ("v=DMARC1; pct=101", "`pct` has invalid value `101`"),
        ("v=DMARC1; pct=-1", "`pct` has invalid value `-1`"),
        ("v=DMARC1; ri=1h", "`ri` has invalid value `1h`"),
        ("v=DMARC1; fo=2", "`fo` has invalid value `2`"),
        ("v=DMARC1; p=none; p=reject", "`p` appears more than once"),
        ("v=DMARC1; p", "malformed DMARC tag `p`"),
        (
            "v=DMARC1; rua=https://example.com/r",
            "`rua`: report URI `https://example.com/r` is not a mailto: URI",
        ),
        (
            "v=DMARC1; ruf=mailto:nobody",
            "`ruf`: report URI `mailto:nobody` has no `@domain`",
        ),
        ("v=DMARC1; rua=mailto:a@b..c", "invalid domain"),
        ("v=DMARC1; rua=mailto:a@example.com!10x", "invalid size"),
        ("v=DMARC1; rua=", "`rua`: report URI ``"),
    ];

    #[test]
    fn invalid_records_name_the_tag_and_value() {
        for (input, needle) in BAD {
            match input.parse::<Dmarc>() {
                Ok(d) => panic!("`{input}` parsed as {d:?}"),
                Err(e) => assert!(
                    e.to_string().contains(needle),
                    "error for `{input}` was `{e}`, expected it to contain `{needle}`"
                ),
            }
        }
    }

    #[test]
    fn report_uri_from_str_for_config_validation() {
        let u: ReportUri = "mailto:dmarc@Reports.Example.NET".parse().unwrap();
        assert_eq!(u.domain(), "reports.example.net");
        assert_eq!(u.size, None);
        let e = "https://example.com/reports"
            .parse::<ReportUri>()
            .unwrap_err();
        assert!(matches!(e, DmarcError::ReportUri { .. }));
        assert!(e.to_string().contains("not a mailto: URI"), "{e}");
        assert!("mailto:@example.com".parse::<ReportUri>().is_err());
        assert!("dmarc@example.com".parse::<ReportUri>().is_err());
    }

    #[test]
    fn effective_policy_follows_rfc_9989() {
        let cases = [
            ("v=DMARC1; p=reject", Policy::Reject),
            ("v=DMARC1; p=quarantine; t=y", Policy::Quarantine),
            ("v=DMARC1; rua=mailto:a@example.com", Policy::None),
            ("v=DMARC1", Policy::None),
        ];
        for (input, want) in cases {
            let d: Dmarc = input.parse().unwrap();
            assert_eq!(d.effective_policy(), want, "{input}");
        }
        let inherit = [
            ("v=DMARC1; p=reject", Policy::Reject, Policy::Reject),
            ("v=DMARC1; p=reject; sp=none", Policy::None, Policy::None),
            ("v=DMARC1; p=none; np=reject", Policy::None, Policy::Reject),
            (
                "v=DMARC1; p=none; sp=quarantine; np=reject",
                Policy::Quarantine,
                Policy::Reject,
            ),
            (
                "v=DMARC1; sp=quarantine",
                Policy::Quarantine,
                Policy::Quarantine,
            ),
        ];
        for (input, sp, np) in inherit {
            let d: Dmarc = input.parse().unwrap();
            assert_eq!(
                (d.subdomain_policy(), d.nonexistent_policy()),
                (sp, np),
                "{input}"
            );
        }
        let d: Dmarc = "v=DMARC1; p=reject; t=y".parse().unwrap();
        assert!(d.testing());
        let d: Dmarc = "v=DMARC1; p=reject; pct=0".parse().unwrap();
        assert!(d.testing());
    }

    #[test]
    fn report_domains_are_deduplicated_and_lowercased() {
        let d: Dmarc = "v=DMARC1; p=none; rua=mailto:a@Example.com,mailto:b@third.example.net; ruf=mailto:c@example.com,mailto:d@other.example"
            .parse()
            .unwrap();
        assert_eq!(
            d.report_domains(),
            vec!["example.com", "third.example.net", "other.example"]
        );
        let target = Name::parse("example.com").unwrap();
        let report = Name::parse("third.example.net").unwrap();
        assert_eq!(
            report_authorization_name(&target, &report).as_str(),
            "example.com._report._dmarc.third.example.net"
        );
    }

    fn policy() -> impl Strategy<Value = Policy> {
        prop_oneof![
            Just(Policy::None),
            Just(Policy::Quarantine),
            Just(Policy::Reject)
        ]
    }

    fn alignment() -> impl Strategy<Value = Alignment> {
        prop_oneof![Just(Alignment::Relaxed), Just(Alignment::Strict)]
    }

    fn report_uri() -> impl Strategy<Value = ReportUri> {
        (
            "[a-zA-Z0-9._+-]{1,12}",
            "[a-z0-9]{1,10}(\\.[a-z0-9-]{0,8}[a-z0-9]){1,3}",
            proptest::option::of((
                any::<u64>(),
                proptest::option::of(prop_oneof![Just('k'), Just('m'), Just('g'), Just('t')]),
            )),
        )
            .prop_map(|(local, domain, size)| ReportUri {
                address: format!("{local}@{domain}"),
                size: size.map(|(value, unit)| ReportSize { value, unit }),
            })
    }

    prop_compose! {
        fn dmarc()(
            p in proptest::option::of(policy()),
            sp in proptest::option::of(policy()),
            np in proptest::option::of(policy()),
            psd in proptest::option::of(prop_oneof![Just(Psd::Yes), Just(Psd::No), Just(Psd::Unknown)]),
            t in proptest::option::of(any::<bool>()),
            adkim in proptest::option::of(alignment()),
            aspf in proptest::option::of(alignment()),
            pct in proptest::option::of(0u8..=100),
            fo in proptest::collection::vec(prop_oneof![
                Just(FailureOption::All), Just(FailureOption::Any),
                Just(FailureOption::Dkim), Just(FailureOption::Spf)], 0..4),
            rf in proptest::collection::vec("[a-z][a-z0-9-]{0,6}", 0..3),
            ri in proptest::option::of(any::<u32>()),
            rua in proptest::collection::vec(report_uri(), 0..4),
            ruf in proptest::collection::vec(report_uri(), 0..3),
        ) -> Dmarc {
            Dmarc { p, sp, np, psd, t, adkim, aspf, pct, fo, rf, ri, rua, ruf }
        }
    }

    proptest! {
        #[test]
        fn parse_render_round_trip(d in dmarc()) {
            let text = d.to_string();
            let back: Dmarc = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&back, &d);
            prop_assert_eq!(back.to_string(), text);
        }

        #[test]
        fn render_is_stable_on_arbitrary_text(s in "v=DMARC1(; ?[a-z]{1,5}=[a-z0-9:,@.!]{1,20}){0,6};?") {
            if let Ok(d) = s.parse::<Dmarc>() {
                let once = d.to_string();
                let again: Dmarc = once.parse().map_err(|e| TestCaseError::fail(format!("{once}: {e}")))?;
                prop_assert_eq!(again.to_string(), once);
            }
        }
    }
}
