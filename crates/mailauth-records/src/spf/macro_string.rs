//! SPF macro strings and domain-specs (RFC 7208 §7.1) as typed values:
//! parse, render, and the literal form of a spec without macros.
//!
//! Owns the §7.1 grammar only. Expansion against a message lives in the
//! `spf::macros` module of `mailauth-core`; the record and its terms live
//! in the parent module.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::SpfError;

/// RFC 7208 §7.1:
/// `macro-letter = "s" / "l" / "o" / "d" / "i" / "p" / "h" / "c" / "r" / "t" / "v"`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum MacroLetter {
    /// `s`: <sender>
    Sender,
    /// `l`: local-part of <sender>
    LocalPart,
    /// `o`: domain of <sender>
    SenderDomain,
    /// `d`: <domain>
    Domain,
    /// `i`: <ip>
    Ip,
    /// `p`: the validated domain name of <ip> (do not use)
    ValidatedName,
    /// `v`: the string "in-addr" if <ip> is ipv4, or "ip6" if <ip> is ipv6
    IpVersion,
    /// `h`: HELO/EHLO domain
    Helo,
    /// `c`: SMTP client IP (easily readable format), exp only
    ClientIp,
    /// `r`: domain name of host performing the check, exp only
    Receiver,
    /// `t`: current timestamp, exp only
    Timestamp,
}

impl MacroLetter {
    fn from_char(c: char) -> Option<MacroLetter> {
        Some(match c.to_ascii_lowercase() {
            's' => MacroLetter::Sender,
            'l' => MacroLetter::LocalPart,
            'o' => MacroLetter::SenderDomain,
            'd' => MacroLetter::Domain,
            'i' => MacroLetter::Ip,
            'p' => MacroLetter::ValidatedName,
            'v' => MacroLetter::IpVersion,
            'h' => MacroLetter::Helo,
            'c' => MacroLetter::ClientIp,
            'r' => MacroLetter::Receiver,
            't' => MacroLetter::Timestamp,
            _ => return None,
        })
    }

    /// The lower-case letter.
    pub fn as_char(self) -> char {
        match self {
            MacroLetter::Sender => 's',
            MacroLetter::LocalPart => 'l',
            MacroLetter::SenderDomain => 'o',
            MacroLetter::Domain => 'd',
            MacroLetter::Ip => 'i',
            MacroLetter::ValidatedName => 'p',
            MacroLetter::IpVersion => 'v',
            MacroLetter::Helo => 'h',
            MacroLetter::ClientIp => 'c',
            MacroLetter::Receiver => 'r',
            MacroLetter::Timestamp => 't',
        }
    }

    /// RFC 7208 §7.3: "The following macro letters are allowed only in
    /// "exp" text: c, r, t".
    pub fn exp_only(self) -> bool {
        matches!(
            self,
            MacroLetter::ClientIp | MacroLetter::Receiver | MacroLetter::Timestamp
        )
    }
}

/// RFC 7208 §7.1:
/// `macro-expand = ( "%{" macro-letter transformers *delimiter "}" ) / "%%" / "%_" / "%-"`,
/// `transformers = *DIGIT [ "r" ]`,
/// `delimiter = "." / "-" / "+" / "," / "/" / "_" / "="`
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MacroExpand {
    pub letter: MacroLetter,
    /// Upper-case letter: "Uppercase macros expand exactly as their lowercase
    /// equivalents, and are then URL escaped" (§7.3).
    pub url_escape: bool,
    /// Number of right-hand parts to keep (never zero).
    pub digits: Option<u32>,
    pub reverse: bool,
    /// Delimiter characters to split on; empty means ".".
    pub delimiters: String,
}

/// One piece of a macro string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum MacroToken {
    /// `macro-literal = %x21-24 / %x26-7E` (and SP in explanation strings).
    Literal(String),
    Expand(MacroExpand),
    /// `%%`
    Percent,
    /// `%_`
    Space,
    /// `%-` (URL-encoded space, `%20`)
    UrlSpace,
}

/// Where a macro string appears decides which letters and characters it may
/// hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacroContext {
    /// A domain-spec: no `c`, `r`, `t` (§7.3), no spaces.
    Domain,
    /// The value of an unknown modifier: any letter, no spaces.
    Modifier,
    /// An explanation string fetched by `exp=` (§6.2):
    /// `explain-string = *( macro-string / SP )`.
    Explanation,
}

/// A parsed macro string (§7.1 `macro-string = *( macro-expand / macro-literal )`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MacroString {
    pub tokens: Vec<MacroToken>,
}

impl MacroString {
    /// Parses `s` for the given context; the error carries the byte offset
    /// within `s`.
    pub fn parse(s: &str, ctx: MacroContext) -> Result<MacroString, SpfError> {
        parse_macro_string(s, ctx).map_err(|(offset, reason)| SpfError::Macro {
            text: s.to_string(),
            offset,
            reason,
        })
    }

    /// True when the string holds `%{...}` expansions (so its value depends
    /// on the message being checked).
    pub fn has_macros(&self) -> bool {
        self.tokens
            .iter()
            .any(|t| matches!(t, MacroToken::Expand(_)))
    }
}

pub(super) fn parse_macro_string(
    s: &str,
    ctx: MacroContext,
) -> Result<MacroString, (usize, String)> {
    let bytes = s.as_bytes();
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let Some(&next) = bytes.get(i + 1) else {
                return Err((
                    i,
                    "a `%` must be followed by `{`, `%`, `_` or `-` (§7.1)".into(),
                ));
            };
            let token = match next {
                b'%' => {
                    i += 2;
                    MacroToken::Percent
                }
                b'_' => {
                    i += 2;
                    MacroToken::Space
                }
                b'-' => {
                    i += 2;
                    MacroToken::UrlSpace
                }
                b'{' => {
                    let (expand, len) = parse_expand(&s[i..], ctx).map_err(|(o, r)| (i + o, r))?;
                    i += len;
                    MacroToken::Expand(expand)
                }
                _ => {
                    return Err((
                        i,
                        format!(
                            "`%{}` is not a macro: a `%` must be followed by `{{`, `%`, `_` or `-` (§7.1)",
                            char::from(next)
                        ),
                    ));
                }
            };
            if !literal.is_empty() {
                tokens.push(MacroToken::Literal(std::mem::take(&mut literal)));
            }
            tokens.push(token);
            continue;
        }
        let allowed = matches!(b, 0x21..=0x7e) || (b == b' ' && ctx == MacroContext::Explanation);
        if !allowed {
            let c = s[i..].chars().next().unwrap_or('\u{fffd}');
            return Err((
                i,
                format!("character {c:?} is not allowed here (§7.1 macro-literal)"),
            ));
        }
        literal.push(char::from(b));
        i += 1;
    }
    if !literal.is_empty() {
        tokens.push(MacroToken::Literal(literal));
    }
    Ok(MacroString { tokens })
}

/// Parses `%{...}` at the start of `s`; returns the expansion and its length.
fn parse_expand(s: &str, ctx: MacroContext) -> Result<(MacroExpand, usize), (usize, String)> {
    let Some(end) = s.find('}') else {
        return Err((0, "unterminated `%{` (missing `}`)".into()));
    };
    let body = &s[2..end];
    let mut chars = body.chars();
    let Some(lc) = chars.next() else {
        return Err((0, "`%{}` has no macro letter".into()));
    };
    let Some(letter) = MacroLetter::from_char(lc) else {
        return Err((
            2,
            format!("`{lc}` is not a macro letter (one of s l o d i p v h, and c r t in exp text)"),
        ));
    };
    if letter.exp_only() && ctx == MacroContext::Domain {
        return Err((
            2,
            format!(
                "macro letter `{lc}` is allowed only in explanation text (§7.3), not in a domain-spec"
            ),
        ));
    }
    let rest = chars.as_str();
    let digit_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let digits = if digit_len == 0 {
        None
    } else {
        let n = rest[..digit_len].bytes().fold(0u32, |acc, d| {
            acc.saturating_mul(10).saturating_add(u32::from(d - b'0'))
        });
        if n == 0 {
            return Err((
                3,
                "the number of parts to keep must be nonzero (§7.3)".into(),
            ));
        }
        Some(n)
    };
    let mut rest = &rest[digit_len..];
    let mut reverse = false;
    if let Some(r) = rest.strip_prefix(['r', 'R']) {
        reverse = true;
        rest = r;
    }
    if let Some(bad) = rest.chars().find(|c| !".-+,/_=".contains(*c)) {
        return Err((
            2,
            format!("`{bad}` is not a delimiter (one of . - + , / _ =) in `%{{{body}}}`"),
        ));
    }
    Ok((
        MacroExpand {
            letter,
            url_escape: lc.is_ascii_uppercase(),
            digits,
            reverse,
            delimiters: rest.to_string(),
        },
        end + 1,
    ))
}

impl fmt::Display for MacroString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tokens {
            match t {
                MacroToken::Literal(s) => f.write_str(s)?,
                MacroToken::Percent => f.write_str("%%")?,
                MacroToken::Space => f.write_str("%_")?,
                MacroToken::UrlSpace => f.write_str("%-")?,
                MacroToken::Expand(e) => {
                    let c = if e.url_escape {
                        e.letter.as_char().to_ascii_uppercase()
                    } else {
                        e.letter.as_char()
                    };
                    write!(f, "%{{{c}")?;
                    if let Some(d) = e.digits {
                        write!(f, "{d}")?;
                    }
                    if e.reverse {
                        f.write_str("r")?;
                    }
                    write!(f, "{}}}", e.delimiters)?;
                }
            }
        }
        Ok(())
    }
}

impl Serialize for MacroString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// RFC 7208 §7.1:
/// ```text
/// domain-spec      = macro-string domain-end
/// domain-end       = ( "." toplabel [ "." ] ) / macro-expand
/// toplabel         = ( *alphanum ALPHA *alphanum ) /
///                    ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainSpec(MacroString);

impl DomainSpec {
    /// A domain-spec naming exactly `domain` (no macros): `%` and spaces are
    /// escaped. Fails when `domain` does not end in a valid top label.
    pub fn literal(domain: &str) -> Result<DomainSpec, SpfError> {
        let escaped = domain.replace('%', "%%").replace(' ', "%_");
        escaped.parse()
    }

    pub fn macro_string(&self) -> &MacroString {
        &self.0
    }

    /// True when the target depends on the message (`%{...}`).
    pub fn has_macros(&self) -> bool {
        self.0.has_macros()
    }

    /// The domain this spec names when it holds no `%{...}` expansion, with
    /// `%%`, `%_`, `%-` resolved and a trailing dot removed.
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for t in &self.0.tokens {
            match t {
                MacroToken::Literal(s) => out.push_str(s),
                MacroToken::Percent => out.push('%'),
                MacroToken::Space => out.push(' '),
                MacroToken::UrlSpace => out.push_str("%20"),
                MacroToken::Expand(_) => return None,
            }
        }
        if out.ends_with('.') {
            out.pop();
        }
        Some(out)
    }
}

fn valid_toplabel(label: &str) -> bool {
    let b = label.as_bytes();
    if b.is_empty() || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') {
        return false;
    }
    if b.contains(&b'-') {
        // 1*alphanum "-" *( alphanum / "-" ) alphanum
        b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric()
    } else {
        // *alphanum ALPHA *alphanum
        b.iter().any(u8::is_ascii_alphabetic)
    }
}

impl FromStr for DomainSpec {
    type Err = SpfError;

    fn from_str(s: &str) -> Result<DomainSpec, SpfError> {
        let err = |offset: usize, reason: String| SpfError::Macro {
            text: s.to_string(),
            offset,
            reason,
        };
        if s.is_empty() {
            return Err(err(0, "the domain-spec is empty".into()));
        }
        let ms = parse_macro_string(s, MacroContext::Domain).map_err(|(o, r)| err(o, r))?;
        match ms.tokens.last() {
            Some(MacroToken::Literal(last)) => {
                let trimmed = last.strip_suffix('.').unwrap_or(last);
                let ok = match trimmed.rfind('.') {
                    Some(dot) => valid_toplabel(&trimmed[dot + 1..]),
                    None => false,
                };
                if !ok {
                    return Err(err(
                        s.len() - last.len(),
                        "a domain-spec must end in a macro or in `.` and a top label of letters, digits and inner dashes, not all digits (§7.1)".into(),
                    ));
                }
            }
            Some(_) => {}
            None => return Err(err(0, "the domain-spec is empty".into())),
        }
        Ok(DomainSpec(ms))
    }
}

impl fmt::Display for DomainSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for DomainSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
