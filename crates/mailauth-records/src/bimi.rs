//! BIMI (Brand Indicators for Message Identification,
//! draft-brand-indicators-for-message-identification): the
//! `<selector>._bimi.<domain>` TXT record ([`Bimi`]), parsed and rendered
//! canonically, including the declination record `v=BIMI1; l=; a=;`.
//!
//! This module does not fetch the logo or the evidence document and knows
//! nothing of SVG or certificates (see `validate::bimi` in `mailauth-core`);
//! it only reads and writes the record text.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Errors from parsing a BIMI record; each names the tag and value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BimiError {
    #[error("a BIMI record must start with `v=BIMI1`, found `{found}`")]
    Version { found: String },
    #[error("malformed BIMI tag `{tag}`: expected `name=value`")]
    Syntax { tag: String },
    #[error("BIMI tag `{tag}` appears more than once")]
    Duplicate { tag: String },
    #[error("BIMI record has no `l=` tag")]
    NoLogo,
    #[error("BIMI tag `{tag}` has invalid value `{value}`: expected an https:// URL")]
    NotHttps { tag: String, value: String },
    #[error("a BIMI record with an empty `l=` declines to show a logo; its `a=` must be empty too")]
    DeclinedWithAuthority,
}

/// The BIMI assertion record.
///
/// draft-brand-indicators-for-message-identification §4.2:
/// ```text
/// bimi-record = bimi-version (bimi-sep bimi-logo-uris)
///               [bimi-sep bimi-evidence-uri] [bimi-sep]
/// bimi-version = %x76 *WSP "=" *WSP %x42.49.4d.49 1DIGIT
/// bimi-sep = *WSP %x3b *WSP
/// bimi-evidence-uri = %x61 *WSP "=" bimi-uri
/// bimi-logo-uris = %x6c *WSP "=" bimi-uri *("," bimi-uri)
/// bimi-uri = *WSP [URI] *WSP
/// ```
/// "Unknown tags MUST be ignored"; the URIs are HTTPS only (§4.3). An
/// empty `l=` (and `a=`) is a declination to publish (§4.3 "Declination
/// to Publish"). Canonical rendering: `v=BIMI1; l=<logo>` then
/// `; a=<evidence>` when there is one; the declination renders as
/// `v=BIMI1; l=; a=;`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bimi {
    /// Logo URLs (`l=`), usually one; empty for the declination record.
    pub l: Vec<String>,
    /// The evidence document URL (`a=`), if any.
    pub a: Option<String>,
}

impl Bimi {
    /// `v=BIMI1; l=; a=;`: the domain shows no logo.
    pub fn declined() -> Bimi {
        Bimi {
            l: Vec::new(),
            a: None,
        }
    }

    pub fn is_declined(&self) -> bool {
        self.l.is_empty()
    }
}

fn https(tag: &str, value: &str) -> Result<String, BimiError> {
    let lower = value.to_ascii_lowercase();
    let ok = lower.starts_with("https://")
        && value.len() > "https://".len()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
    if ok {
        Ok(value.to_string())
    } else {
        Err(BimiError::NotHttps {
            tag: tag.to_string(),
            value: value.to_string(),
        })
    }
}

impl FromStr for Bimi {
    type Err = BimiError;

    fn from_str(s: &str) -> Result<Bimi, BimiError> {
        let mut tags = s.split(';').map(|t| t.trim_matches([' ', '\t']));
        let first = tags.next().unwrap_or("");
        let version = first
            .split_once('=')
            .map(|(n, v)| (n.trim_matches([' ', '\t']), v.trim_matches([' ', '\t'])));
        if version != Some(("v", "BIMI1")) {
            return Err(BimiError::Version {
                found: first.to_string(),
            });
        }
        let mut l: Option<Vec<String>> = None;
        let mut a: Option<Option<String>> = None;
        for tag in tags {
            if tag.is_empty() {
                continue;
            }
            let Some((name, value)) = tag.split_once('=') else {
                return Err(BimiError::Syntax {
                    tag: tag.to_string(),
                });
            };
            let name = name.trim_matches([' ', '\t']);
            let value = value.trim_matches([' ', '\t']);
            let dup = |tag: &str| BimiError::Duplicate {
                tag: tag.to_string(),
            };
            match name {
                "l" => {
                    if l.is_some() {
                        return Err(dup("l"));
                    }
                    l = Some(if value.is_empty() {
                        Vec::new()
                    } else {
                        value
                            .split(',')
                            .map(|u| https("l", u.trim_matches([' ', '\t'])))
                            .collect::<Result<_, _>>()?
                    });
                }
                "a" => {
                    if a.is_some() {
                        return Err(dup("a"));
                    }
                    a = Some(if value.is_empty() {
                        None
                    } else {
                        Some(https("a", value)?)
                    });
                }
                "v" => return Err(dup("v")),
                // "Unknown tags MUST be ignored."
                _ => {}
            }
        }
        let l = l.ok_or(BimiError::NoLogo)?;
        let a = a.flatten();
        if l.is_empty() && a.is_some() {
            return Err(BimiError::DeclinedWithAuthority);
        }
        Ok(Bimi { l, a })
    }
}

impl fmt::Display for Bimi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_declined() {
            return write!(f, "v=BIMI1; l=; a=;");
        }
        write!(f, "v=BIMI1; l={}", self.l.join(","))?;
        if let Some(a) = &self.a {
            write!(f, "; a={a}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        for (input, canonical) in [
            (
                "v=BIMI1; l=https://example.com/logo.svg; a=https://example.com/vmc.pem",
                "v=BIMI1; l=https://example.com/logo.svg; a=https://example.com/vmc.pem",
            ),
            (
                "v = BIMI1;l=https://example.com/logo.svg;",
                "v=BIMI1; l=https://example.com/logo.svg",
            ),
            (
                "v=BIMI1; l=https://example.com/logo.svg; a=; x=ignored",
                "v=BIMI1; l=https://example.com/logo.svg",
            ),
            ("v=BIMI1; l=; a=;", "v=BIMI1; l=; a=;"),
            ("v=BIMI1;l=", "v=BIMI1; l=; a=;"),
        ] {
            let r: Bimi = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), canonical, "{input}");
            assert_eq!(canonical.parse::<Bimi>().unwrap(), r);
        }
        assert!("v=BIMI1; l=; a=;".parse::<Bimi>().unwrap().is_declined());
    }

    #[test]
    fn bad_records() {
        for (input, needle) in [
            ("v=BIMI2; l=https://e.test/l.svg", "found `v=BIMI2`"),
            ("l=https://e.test/l.svg", "must start with `v=BIMI1`"),
            ("v=BIMI1", "no `l=` tag"),
            ("v=BIMI1; a=https://e.test/a.pem", "no `l=` tag"),
            (
                "v=BIMI1; l=http://e.test/l.svg",
                "`l` has invalid value `http://e.test/l.svg`",
            ),
            (
                "v=BIMI1; l=https://e.test/l.svg; a=ftp://e.test/a",
                "`a` has invalid value",
            ),
            (
                "v=BIMI1; l=https://e.test/l.svg; l=https://e.test/m.svg",
                "`l` appears more than once",
            ),
            (
                "v=BIMI1; l=; a=https://e.test/a.pem",
                "its `a=` must be empty",
            ),
            (
                "v=BIMI1; l=https://e.test/l.svg; junk",
                "malformed BIMI tag `junk`",
            ),
        ] {
            let e = input.parse::<Bimi>().expect_err(input);
            assert!(
                e.to_string().contains(needle),
                "{input}: `{e}` lacks `{needle}`"
            );
        }
    }
}
