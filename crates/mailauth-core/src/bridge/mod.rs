//! Bridges: the records mailauth manages, rendered in the native
//! configuration of another DNS tool (octoDNS YAML, dnscontrol JS, Terraform
//! HCL for the Cloudflare, Route 53 and Google Cloud DNS providers), so a team
//! that already pushes DNS with one of them keeps its pipeline and lets
//! mailauth own only the mail-authentication records.
//!
//! Owns: the text of each format and its quoting rules. Leaves alone: what
//! the records are (`desired.rs`), every provider API and every file on disk
//! (`emit` prints; the tool that reads the output does the pushing). Pure: no
//! I/O, output independent of insertion order (the sets arrive sorted).

mod dnscontrol;
mod octodns;
mod terraform;

use crate::record::{Name, RData, RType, RecordSet};

/// One output format of `mailauth emit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// octoDNS YamlProvider zone file (one zone per file).
    Octodns,
    /// dnscontrol `D_EXTEND()` blocks, to `require()` from dnsconfig.js.
    Dnscontrol,
    /// Terraform resources for one provider.
    Terraform(TerraformProvider),
}

/// The Terraform providers whose DNS record resources `emit` can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TerraformProvider {
    /// cloudflare/cloudflare (v5): `cloudflare_dns_record`, one per record.
    Cloudflare,
    /// hashicorp/aws: `aws_route53_record`, one per RRset.
    Route53,
    /// hashicorp/google: `google_dns_record_set`, one per RRset.
    Google,
}

/// The managed records of one domain (its zone apex), as `emit` prints them.
#[derive(Clone, Debug)]
pub struct DomainRecords {
    pub domain: Name,
    pub sets: Vec<RecordSet>,
}

/// Why a set of records cannot be written in a format.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    #[error("{format}: {name} {rtype}: {message}")]
    Record {
        format: &'static str,
        name: String,
        rtype: String,
        message: String,
    },
    #[error(
        "octodns: its YamlProvider keeps one zone per file, and {count} domains were selected: pass one -d DOMAIN per run"
    )]
    OneZonePerFile { count: usize },
}

/// Renders `domains` in `format`.
pub fn render(format: Format, domains: &[DomainRecords]) -> Result<String, BridgeError> {
    match format {
        Format::Octodns => match domains {
            [one] => octodns::render(one),
            _ => Err(BridgeError::OneZonePerFile {
                count: domains.len(),
            }),
        },
        Format::Dnscontrol => dnscontrol::render(domains),
        Format::Terraform(p) => terraform::render(p, domains),
    }
}

/// The joined TXT value as text. Managed values are ASCII; anything that is
/// not UTF-8 cannot be written in these text formats without loss.
fn txt_text(format: &'static str, set: &RecordSet, data: &RData) -> Result<String, BridgeError> {
    let RData::Txt(strings) = data else {
        return Err(unsupported(format, set));
    };
    String::from_utf8(crate::record::txt::join(strings)).map_err(|_| BridgeError::Record {
        format,
        name: set.name.to_string(),
        rtype: set.rtype.to_string(),
        message: "TXT value is not UTF-8 text".into(),
    })
}

fn unsupported(format: &'static str, set: &RecordSet) -> BridgeError {
    BridgeError::Record {
        format,
        name: set.name.to_string(),
        rtype: set.rtype.to_string(),
        message: "record type not supported by this bridge".into(),
    }
}

/// A double-quoted string with JSON escapes: valid as a JavaScript string
/// literal and as a YAML double-quoted scalar (YAML 1.2 is a superset of
/// JSON), so control characters never reach the output raw.
fn json_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Only the types mailauth manages reach a bridge.
fn is_managed_type(t: &RType) -> bool {
    matches!(t, RType::Txt | RType::Cname | RType::Mx)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sample() -> DomainRecords {
        let d = Name::parse("example.test").unwrap();
        let key = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA".repeat(8);
        DomainRecords {
            domain: d.clone(),
            sets: vec![
                RecordSet::new(
                    d.clone(),
                    RType::Txt,
                    300,
                    vec![RData::txt(
                        "v=spf1 exists:%{i}._spf.example.test include:${x} -all",
                    )],
                ),
                RecordSet::new(
                    d.clone(),
                    RType::Mx,
                    300,
                    vec![RData::Mx {
                        preference: 0,
                        exchange: Name::parse("").unwrap(),
                    }],
                ),
                RecordSet::new(
                    d.child("_dmarc"),
                    RType::Txt,
                    300,
                    vec![RData::txt("v=DMARC1; p=reject; rua=mailto:d@example.test")],
                ),
                RecordSet::new(
                    d.child("s1._domainkey"),
                    RType::Txt,
                    600,
                    vec![RData::txt(&format!("v=DKIM1; k=rsa; p={key}"))],
                ),
                RecordSet::new(
                    d.child("s2._domainkey"),
                    RType::Cname,
                    300,
                    vec![RData::Cname(Name::parse("s2.esp.example").unwrap())],
                ),
            ],
        }
    }

    #[test]
    fn octodns_needs_exactly_one_zone() {
        let err = render(Format::Octodns, &[sample(), sample()]).unwrap_err();
        assert!(err.to_string().contains("one -d DOMAIN"), "{err}");
    }

    #[test]
    fn json_quote_escapes_controls() {
        assert_eq!(json_quote("a\"b\\c\u{1b}"), r#""a\"b\\c\u001b""#);
    }
}
