//! dnscontrol configuration (dnsconfig.js, dnscontrol v4): one
//! `D_EXTEND("domain", ...)` per domain, holding `TXT()`, `CNAME()` and `MX()`
//! records with a `TTL()` modifier each.
//!
//! `D_EXTEND` adds records to the `D()` a team already declares for the
//! domain (with its registrar and DNS providers), so the file is meant to be
//! `require()`d after those `D()` calls: mailauth owns its records, the
//! team's dnsconfig.js keeps everything else. TXT values are written whole:
//! dnscontrol v4 splits them into ≤ 255-octet strings itself. Strings are JSON
//! literals, which are JavaScript string literals.

use super::{BridgeError, DomainRecords, json_quote, txt_text, unsupported};
use crate::record::{RData, RType};

const FORMAT: &str = "dnscontrol";

pub(super) fn render(domains: &[DomainRecords]) -> Result<String, BridgeError> {
    let mut out = String::from(
        "// Records managed by mailauth: require() this file after the D() of each domain.\n",
    );
    for d in domains {
        out.push_str(&format!("D_EXTEND({},\n", json_quote(d.domain.as_str())));
        let mut lines = Vec::new();
        for set in &d.sets {
            let name = json_quote(&set.name.relative_to(&d.domain));
            for data in &set.data {
                let rec = match (&set.rtype, data) {
                    (RType::Txt, _) => {
                        format!("TXT({name}, {}", json_quote(&txt_text(FORMAT, set, data)?))
                    }
                    (RType::Cname, RData::Cname(t)) => {
                        format!("CNAME({name}, {}", json_quote(&t.fqdn()))
                    }
                    (
                        RType::Mx,
                        RData::Mx {
                            preference,
                            exchange,
                        },
                    ) => {
                        let ex = if exchange.as_str().is_empty() {
                            ".".to_string()
                        } else {
                            exchange.fqdn()
                        };
                        format!("MX({name}, {preference}, {}", json_quote(&ex))
                    }
                    _ => return Err(unsupported(FORMAT, set)),
                };
                lines.push(format!("    {rec}, TTL({}))", set.ttl));
            }
        }
        out.push_str(&lines.join(",\n"));
        out.push_str("\n);\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn records_are_js_calls_with_ttls() {
        let out = render(&[sample()]).unwrap();
        assert!(out.contains(r#"D_EXTEND("example.test","#), "{out}");
        assert!(
            out.contains(
                r#"TXT("_dmarc", "v=DMARC1; p=reject; rua=mailto:d@example.test", TTL(300))"#
            ),
            "{out}"
        );
        assert!(out.contains(r#"MX("@", 0, ".", TTL(300))"#), "{out}");
        assert!(
            out.contains(r#"CNAME("s2._domainkey", "s2.esp.example.", TTL(300))"#),
            "{out}"
        );
    }
}
