//! Terraform (HCL) resources for the managed records, for one of three
//! providers:
//!
//! - cloudflare/cloudflare v5: one `cloudflare_dns_record` per record (the
//!   Cloudflare API stores records, not RRsets); TXT `content` in quoted
//!   character-strings as the Cloudflare provider of mailauth sends it.
//! - hashicorp/aws: one `aws_route53_record` per RRset; a TXT value longer
//!   than 255 octets is written with `\"\"` between its strings, the form the
//!   provider's documentation gives for DKIM keys.
//! - hashicorp/google: one `google_dns_record_set` per RRset, names absolute
//!   with the trailing dot, TXT `rrdatas` in master-file presentation.
//!
//! The zone is an input variable per domain (Cloudflare zone id, Route 53
//! hosted zone id, Cloud DNS managed zone name), so the output validates
//! without reaching any API. Strings follow HCL's template escaping: `\`,
//! `"`, control characters, and the template openers `${` and `%{` (which
//! SPF macros such as `%{i}` contain) are escaped.

use std::collections::BTreeSet;

use super::{BridgeError, DomainRecords, TerraformProvider, txt_text, unsupported};
use crate::record::{Name, RData, RType, RecordSet, txt};

const FORMAT: &str = "terraform";

pub(super) fn render(
    p: TerraformProvider,
    domains: &[DomainRecords],
) -> Result<String, BridgeError> {
    let (source, what) = match p {
        TerraformProvider::Cloudflare => ("cloudflare/cloudflare", "Cloudflare zone id"),
        TerraformProvider::Route53 => ("hashicorp/aws", "Route 53 hosted zone id"),
        TerraformProvider::Google => ("hashicorp/google", "Cloud DNS managed zone name"),
    };
    let local = source.split('/').nth(1).unwrap_or(source);
    let mut out = format!(
        "# Records managed by mailauth.\n\nterraform {{\n  required_providers {{\n    {local} = {{\n      source = \"{source}\"\n    }}\n  }}\n}}\n"
    );
    let mut labels = BTreeSet::new();
    for d in domains {
        let var = format!("mailauth_zone_{}", ident(d.domain.as_str()));
        out.push_str(&format!(
            "\nvariable \"{var}\" {{\n  type        = string\n  description = {}\n}}\n",
            hcl(&format!("{what} of {}", d.domain))
        ));
        for set in &d.sets {
            if !super::is_managed_type(&set.rtype) {
                return Err(unsupported(FORMAT, set));
            }
            let base = format!(
                "mailauth_{}_{}",
                ident(set.name.as_str()),
                set.rtype.to_string().to_ascii_lowercase()
            );
            match p {
                TerraformProvider::Cloudflare => {
                    for (i, data) in set.data.iter().enumerate() {
                        let label = unique(&mut labels, &format!("{base}_{i}"));
                        out.push_str(&cloudflare(&label, &var, set, data)?);
                    }
                }
                TerraformProvider::Route53 => {
                    let label = unique(&mut labels, &base);
                    out.push_str(&route53(&label, &var, set)?);
                }
                TerraformProvider::Google => {
                    let label = unique(&mut labels, &base);
                    out.push_str(&google(&label, &var, set)?);
                }
            }
        }
    }
    Ok(out)
}

fn cloudflare(
    label: &str,
    var: &str,
    set: &RecordSet,
    data: &RData,
) -> Result<String, BridgeError> {
    let mut body = vec![
        ("zone_id", format!("var.{var}")),
        ("name", hcl(set.name.as_str())),
        ("type", hcl(&set.rtype.to_string())),
        ("ttl", set.ttl.to_string()),
    ];
    match (&set.rtype, data) {
        (RType::Txt, RData::Txt(strings)) => {
            txt_text(FORMAT, set, data)?;
            body.push(("content", hcl(&txt::present(strings))));
        }
        (RType::Cname, RData::Cname(t)) => body.push(("content", hcl(t.as_str()))),
        (
            RType::Mx,
            RData::Mx {
                preference,
                exchange,
            },
        ) => {
            body.push(("content", hcl(mx_host(exchange, false).as_str())));
            body.push(("priority", preference.to_string()));
        }
        _ => return Err(unsupported(FORMAT, set)),
    }
    Ok(block("cloudflare_dns_record", label, &body))
}

fn route53(label: &str, var: &str, set: &RecordSet) -> Result<String, BridgeError> {
    let mut values = Vec::new();
    for data in &set.data {
        values.push(match (&set.rtype, data) {
            (RType::Txt, RData::Txt(strings)) => {
                txt_text(FORMAT, set, data)?;
                // `first255""rest`: the provider adds the outer quotes.
                let quoted = txt::present(strings);
                let inner = &quoted[1..quoted.len() - 1];
                hcl(&inner.replace("\" \"", "\"\""))
            }
            (RType::Cname, RData::Cname(t)) => hcl(t.as_str()),
            (
                RType::Mx,
                RData::Mx {
                    preference,
                    exchange,
                },
            ) => hcl(&format!("{preference} {}", mx_host(exchange, false))),
            _ => return Err(unsupported(FORMAT, set)),
        });
    }
    Ok(block(
        "aws_route53_record",
        label,
        &[
            ("zone_id", format!("var.{var}")),
            ("name", hcl(set.name.as_str())),
            ("type", hcl(&set.rtype.to_string())),
            ("ttl", set.ttl.to_string()),
            ("records", list(&values)),
        ],
    ))
}

fn google(label: &str, var: &str, set: &RecordSet) -> Result<String, BridgeError> {
    let mut values = Vec::new();
    for data in &set.data {
        values.push(match (&set.rtype, data) {
            (RType::Txt, RData::Txt(strings)) => {
                txt_text(FORMAT, set, data)?;
                hcl(&txt::present(strings))
            }
            (RType::Cname, RData::Cname(t)) => hcl(&t.fqdn()),
            (
                RType::Mx,
                RData::Mx {
                    preference,
                    exchange,
                },
            ) => hcl(&format!("{preference} {}", mx_host(exchange, true))),
            _ => return Err(unsupported(FORMAT, set)),
        });
    }
    Ok(block(
        "google_dns_record_set",
        label,
        &[
            ("managed_zone", format!("var.{var}")),
            ("name", hcl(&set.name.fqdn())),
            ("type", hcl(&set.rtype.to_string())),
            ("ttl", set.ttl.to_string()),
            ("rrdatas", list(&values)),
        ],
    ))
}

/// RFC 7505 null MX: the exchange is the root, written `.`.
fn mx_host(exchange: &Name, dot: bool) -> String {
    match (exchange.as_str().is_empty(), dot) {
        (true, _) => ".".into(),
        (false, true) => exchange.fqdn(),
        (false, false) => exchange.to_string(),
    }
}

/// A resource block with `=` aligned as `terraform fmt` aligns it.
fn block(kind: &str, label: &str, attrs: &[(&str, String)]) -> String {
    let width = attrs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = format!("\nresource \"{kind}\" \"{label}\" {{\n");
    for (k, v) in attrs {
        out.push_str(&format!("  {k:<width$} = {v}\n"));
    }
    out.push_str("}\n");
    out
}

fn list(values: &[String]) -> String {
    format!("[{}]", values.join(", "))
}

/// An HCL quoted template that evaluates to exactly `s`.
pub(super) fn hcl(s: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Terraform identifier from a DNS name: letters, digits, `_` and `-`,
/// starting with a letter (the caller prefixes `mailauth_`).
fn ident(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' => c,
            '*' => 'x',
            _ => '_',
        })
        .collect()
}

fn unique(taken: &mut BTreeSet<String>, base: &str) -> String {
    let mut label = base.to_string();
    let mut n = 2;
    while !taken.insert(label.clone()) {
        label = format!("{base}_{n}");
        n += 1;
    }
    label
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn templates_are_escaped() {
        assert_eq!(hcl("a%{i}b${x}$y\"\\"), r#""a%%{i}b$${x}$y\"\\""#);
    }

    #[test]
    fn route53_long_txt_uses_the_documented_split() {
        let out = render(TerraformProvider::Route53, &[sample()]).unwrap();
        assert!(out.contains(r#"\"\""#), "{out}");
        assert!(out.contains("exists:%%{i}._spf"), "{out}");
        assert!(out.contains(r#"records = ["0 ."]"#), "{out}");
    }

    #[test]
    fn google_names_are_absolute() {
        let out = render(TerraformProvider::Google, &[sample()]).unwrap();
        assert!(
            out.contains(r#"name         = "_dmarc.example.test.""#),
            "{out}"
        );
        assert!(
            out.contains(r#"rrdatas      = ["\"v=DMARC1; p=reject; rua=mailto:d@example.test\""]"#),
            "{out}"
        );
    }
}
