//! Runs the openspf RFC 7208 test suite (`tests/data/spf/rfc7208-tests.yml`)
//! through `check_sender` over an in-memory DNS built from each section's
//! zonedata, and asserts every test's result (one of the accepted results)
//! and, where the suite gives one, its explanation.
//!
//! Zonedata follows the suite's reference driver: `SPF:` (type 99) entries
//! are copied to TXT unless the name has a `TXT:` entry (`TXT: NONE` means
//! "no TXT record"); `TIMEOUT` makes every query type that has no record
//! listed before it time out.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mailauth::spf::{CheckOptions, MemRecord, MemoryDns, QType, check_sender};
use serde_json::Value;

const SUITE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/spf/rfc7208-tests.yml"
));

fn strings(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::String(s) => vec![s.as_bytes().to_vec()],
        Value::Array(a) => a
            .iter()
            .map(|s| s.as_str().unwrap_or_default().as_bytes().to_vec())
            .collect(),
        other => panic!("unexpected TXT value {other:?}"),
    }
}

fn qtype_of(t: &str) -> Option<QType> {
    Some(match t {
        "TXT" => QType::Txt,
        "A" => QType::A,
        "AAAA" => QType::Aaaa,
        "MX" => QType::Mx,
        "PTR" => QType::Ptr,
        _ => return None,
    })
}

fn load_zone(zonedata: &serde_json::Map<String, Value>) -> MemoryDns {
    let mut dns = MemoryDns::new();
    for (name, entries) in zonedata {
        dns.touch(name);
        let entries = entries.as_array().cloned().unwrap_or_default();
        let has_txt = entries
            .iter()
            .any(|e| e.as_object().is_some_and(|m| m.contains_key("TXT")));
        let mut seen: Vec<QType> = Vec::new();
        let mut generated = Vec::new();
        for entry in &entries {
            if entry.as_str() == Some("TIMEOUT") {
                for q in [QType::Txt, QType::A, QType::Aaaa, QType::Mx, QType::Ptr] {
                    if !seen.contains(&q) {
                        dns.timeout_type(name, q);
                    }
                }
                continue;
            }
            let map = entry
                .as_object()
                .unwrap_or_else(|| panic!("{name}: unexpected zonedata entry {entry:?}"));
            for (rtype, value) in map {
                if let Some(q) = qtype_of(rtype)
                    && value.as_str() != Some("NONE")
                {
                    seen.push(q);
                }
                match rtype.as_str() {
                    "SPF" => {
                        if !has_txt {
                            generated.push(strings(value));
                        }
                    }
                    "TXT" => {
                        if value.as_str() != Some("NONE") {
                            dns.insert(name, MemRecord::Txt(strings(value)));
                        }
                    }
                    "A" => {
                        let a: Ipv4Addr = value
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or_else(|| panic!("{name}: A {value}"));
                        dns.insert(name, MemRecord::A(a));
                    }
                    "AAAA" => {
                        let a: Ipv6Addr = value
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or_else(|| panic!("{name}: AAAA {value}"));
                        dns.insert(name, MemRecord::Aaaa(a));
                    }
                    "MX" => {
                        let pref = value[0]
                            .as_u64()
                            .unwrap_or_else(|| panic!("{name}: MX {value}"));
                        let exchange = value[1]
                            .as_str()
                            .unwrap_or_else(|| panic!("{name}: MX {value}"));
                        dns.insert(name, MemRecord::Mx(pref as u16, exchange.to_string()));
                    }
                    "PTR" => {
                        dns.insert(
                            name,
                            MemRecord::Ptr(value.as_str().unwrap_or_default().to_string()),
                        );
                    }
                    "CNAME" => {
                        dns.insert(
                            name,
                            MemRecord::Cname(value.as_str().unwrap_or_default().to_string()),
                        );
                    }
                    other => panic!("{name}: record type {other} not handled by the driver"),
                }
            }
        }
        for txt in generated {
            dns.insert(name, MemRecord::Txt(txt));
        }
    }
    dns
}

#[test]
fn rfc7208_conformance_suite() {
    let docs: Vec<Value> = serde_saphyr::from_multiple(SUITE).expect("the suite parses as YAML");
    let declared = SUITE
        .lines()
        .filter(|l| l.starts_with("    result:"))
        .count();
    let mut run = 0;
    let mut passed = 0;
    let mut failures = Vec::new();
    let mut by_section: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for doc in &docs {
        let section = doc["description"].as_str().unwrap_or("?").to_string();
        let zone = doc["zonedata"].as_object().cloned().unwrap_or_default();
        let tests = doc["tests"].as_object().expect("a section has tests");
        for (id, t) in tests {
            run += 1;
            let dns = load_zone(&zone);
            let host: IpAddr = t["host"]
                .as_str()
                .and_then(|h| h.parse().ok())
                .unwrap_or_else(|| panic!("{id}: bad host {}", t["host"]));
            let helo = t["helo"].as_str().unwrap_or_default();
            let mailfrom = t["mailfrom"].as_str().unwrap_or_default();
            let accepted: Vec<String> = match &t["result"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                other => panic!("{id}: bad result {other:?}"),
            };
            let out = check_sender(&dns, host, mailfrom, Some(helo), &CheckOptions::default());
            let mut problems = Vec::new();
            if !accepted.iter().any(|r| r == out.result.as_str()) {
                problems.push(format!("result {} not in {accepted:?}", out.result));
            }
            if let Some(expected) = t.get("explanation").and_then(Value::as_str) {
                let got = out.explanation.as_deref();
                let ok = if expected == "DEFAULT" {
                    got.is_none()
                } else {
                    got == Some(expected)
                };
                if !ok {
                    problems.push(format!("explanation {got:?}, expected {expected:?}"));
                }
            }
            let entry = by_section.entry(section.clone()).or_default();
            entry.0 += 1;
            if problems.is_empty() {
                passed += 1;
                entry.1 += 1;
            } else {
                failures.push(format!("{section} / {id}: {}\n{out}", problems.join("; ")));
            }
        }
    }
    for (section, (n, ok)) in &by_section {
        println!("{section}: {ok}/{n}");
    }
    println!("RFC 7208 conformance: {passed}/{run} tests pass");
    assert_eq!(run, declared, "every test in the suite file was run");
    assert!(
        failures.is_empty(),
        "{} of {run} conformance tests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
