//! Issue 16: `mailauth import` round trip on real servers. Zones seeded
//! with real-world record shapes (the sample domains of the public DMARC
//! reports in the shared samples among them) are imported through the
//! provider (BIND over RFC 2136/AXFR, PowerDNS over its HTTP API); the next
//! plan then changes no imported record (only the ownership registry is
//! written, by the first apply); after that apply the plan is empty; and
//! validate finds nothing that differs from the config. A record shape
//! import cannot represent is printed by import, and is the only kind of
//! domain whose plan may still change.

use crate::support;
use crate::util;

use std::collections::BTreeSet;

use support::bind::Bind;
use support::pdns::Pdns;
use util::{Case, Run};

const RSA2048: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4q7irsLGRN4FACs2IzIlaqdSNW/U0yNd2hIzTHvpTGDcjIKwsXuV0MQnCDnDMXDr11SmqwCHoZZXFA2btZUjA3WUbHLP2C0GAmY4lgT/I3+cilx3GPXFZb77c93AjSQMuBJsCK0e5w7Hjp8Gh2r74iz1qz7QeyEf3x4X9cSPVEwolEffqx4iU9okJw+H8dfJw0c5PqrAK0UzUJuU/OyBkmKWYx8aql1OZvBFCZQb/fa5dzJfsMNT0sv/6KJkocMudCuCc3VJfSx5xz6G/OU0mzjg9gkfx2gEO5eQ7eJsRjd7DFw49iDJSALuR0yZ00YbGd33tBSSyYgKeW/iOBVOdwIDAQAB";
const RSA1024: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDO95ffiy2HNGAPdyw+AGJJbzPnqfFI/j8aPGKRfYNUzI8UpHZd6ISVBhyDN++GNeku204CVi9rOwrFay/yVWarX3NYRxo6knzDDjHXYJq1hcpHfvt6VEaK2sKZLLZQHh/xaATWXVB1lQftZTie6Jp7G+sp6OYf70kERcLwo8XnkQIDAQAB";
const RSA512: &str = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAOt9ZG26ByslTzrCeub2HAzKf4RxdR/bOrNN0OugQ95tkdX0IFSq2W4pAdbX7CZtkMf2A0ntCVqgeOzoGW+ALU8CAwEAAQ==";
const ED25519: &str = "gplSdfRWIry0JQk9gUgKVQ3+h9W2mIBLn3Ysz3SXxGs=";

/// A TXT value in master-file syntax, split into strings of 255 octets.
fn txt(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One record: owner, type, data.
type Line = (String, &'static str, String);
/// A seeded domain.
type Shape = (&'static str, Vec<Line>, bool);

/// (domain, records after the SOA/NS, whether import must call something
/// not representable). Record lines are `owner TYPE data` with TXT values
/// given raw (split by [`txt`]).
fn shapes() -> Vec<Shape> {
    let t = |o: &str, v: &str| (o.to_string(), "TXT", txt(v));
    let c = |o: &str, v: &str| (o.to_string(), "CNAME", v.to_string());
    let mx = |v: &str| ("@".to_string(), "MX", v.to_string());
    let key = |k: &str| format!("v=DKIM1; k=rsa; p={k}");
    vec![
        // The sample domains of the public aggregate reports, with the
        // policies those reports say they published.
        (
            "example.com",
            vec![
                t("@", "v=spf1 include:_spf.google.com ~all"),
                t("@", "google-site-verification=abc"),
                t("_dmarc", "v=DMARC1; p=none; rua=mailto:dmarc@example.com"),
                t("google._domainkey", &key(RSA2048)),
                mx("10 mx1.example.com."),
            ],
            false,
        ),
        (
            "example.de",
            vec![
                t("@", "v=spf1 mx -all"),
                t("_dmarc", "v=DMARC1; p=none; sp=none; pct=100"),
            ],
            false,
        ),
        (
            "foobar.de",
            vec![t("_dmarc", "v=DMARC1; p=reject; sp=reject; pct=100")],
            false,
        ),
        (
            "foo-bar.io",
            vec![
                t("@", "v=spf1 mx -all"),
                t("_dmarc", "v=DMARC1; p=reject; sp=reject; np=reject"),
            ],
            false,
        ),
        (
            "myserver.com",
            vec![t("_dmarc", "v=DMARC1; p=reject; sp=reject; psd=n")],
            false,
        ),
        (
            "random.net",
            vec![t("_dmarc", "v=DMARC1; p=reject; sp=reject; pct=100; fo=0")],
            false,
        ),
        (
            "random.org",
            vec![t("_dmarc", "v=DMARC1; p=reject; adkim=r; aspf=r")],
            false,
        ),
        (
            "website.com",
            vec![t("_dmarc", "v=DMARC1; p=reject; sp=reject")],
            false,
        ),
        (
            "test.net",
            vec![
                t("@", "v=spf1 ip4:198.51.100.0/24 a mx -all"),
                t("_dmarc", "v=DMARC1; p=none; pct=100"),
            ],
            false,
        ),
        (
            "test1.net",
            vec![
                t(
                    "@",
                    "v=spf1 ip4:192.0.2.1 ip4:192.0.2.2 ip6:2001:db8::/32 include:spf.protection.outlook.com -all",
                ),
                c(
                    "selector1._domainkey",
                    "selector1-test1-net._domainkey.test1.onmicrosoft.com.",
                ),
                c(
                    "selector2._domainkey",
                    "selector2-test1-net._domainkey.test1.onmicrosoft.com.",
                ),
                t("_dmarc", "v=DMARC1; p=quarantine; rua=mailto:d@test1.net"),
            ],
            false,
        ),
        (
            "test2.net",
            vec![
                t("@", "v=spf1 include:sendgrid.net ~all"),
                c("s1._domainkey", "s1.domainkey.u1234.wl.sendgrid.net."),
                c("s2._domainkey", "s2.domainkey.u1234.wl.sendgrid.net."),
                t("_dmarc", "v=DMARC1; p=none"),
            ],
            false,
        ),
        (
            "mydomain.org",
            vec![t(
                "_dmarc",
                "v=DMARC1; p=quarantine; sp=quarantine; pct=100",
            )],
            false,
        ),
        (
            "bix-business.com",
            vec![t(
                "_dmarc",
                "v=DMARC1; p=none; sp=none; pct=100; adkim=r; aspf=r",
            )],
            false,
        ),
        (
            "foobar.com",
            vec![t("_dmarc", "v=DMARC1; p=reject; sp=none; psd=n")],
            false,
        ),
        (
            "indemed.com",
            vec![t("_dmarc", "v=DMARC1; p=none; sp=none; fo=0")],
            false,
        ),
        (
            "rphvac.com",
            vec![
                t("@", "v=spf1 include:spf.protection.outlook.com -all"),
                t(
                    "_dmarc",
                    "v=DMARC1; p=none; rua=mailto:reports@dmarc.example.net",
                ),
            ],
            false,
        ),
        (
            "connectivityu.com",
            vec![
                t("@", "v=spf1 redirect=_spf.connectivityu.com"),
                t("_spf", "v=spf1 ip4:203.0.113.0/24 -all"),
            ],
            false,
        ),
        (
            "borschow.com",
            vec![
                t(
                    "@",
                    "v=spf1 include:_spf.google.com include:mailgun.org ~all",
                ),
                c("k1._domainkey", "dkim.mcsv.net."),
                t("mailo._domainkey", &key(RSA2048)),
            ],
            false,
        ),
        (
            "addisonfoods.com",
            vec![t("_dmarc", "v=DMARC1;p=none;rua=mailto:a@addisonfoods.com")],
            false,
        ),
        (
            "amazonses.com",
            vec![
                t("@", "v=spf1 ip4:199.255.192.0/22 ip4:199.127.232.0/22 -all"),
                t(
                    "_dmarc",
                    "v=DMARC1; p=quarantine; pct=100; rua=mailto:d@amazonses.com",
                ),
            ],
            false,
        ),
        // SPF shapes.
        ("plusall.test", vec![t("@", "v=spf1 +all")], false),
        ("qall.test", vec![t("@", "v=spf1 mx ?all")], false),
        ("ptr.test", vec![t("@", "v=spf1 ptr -all")], false),
        (
            "twospf.test",
            vec![t("@", "v=spf1 mx -all"), t("@", "v=spf1 a -all")],
            true,
        ),
        (
            "lookups.test",
            vec![t(
                "@",
                "v=spf1 include:a.example include:b.example include:c.example include:d.example include:e.example include:f.example include:g.example include:h.example include:i.example include:j.example include:k.example -all",
            )],
            false,
        ),
        (
            "exp.test",
            vec![t("@", "v=spf1 mx -all exp=explain.exp.test")],
            false,
        ),
        (
            "macro.test",
            vec![t("@", "v=spf1 exists:%{i}._spf.macro.test -all")],
            false,
        ),
        ("cidr.test", vec![t("@", "v=spf1 a/24 mx/26 -all")], false),
        ("upper.test", vec![t("@", "V=SPF1 MX -ALL")], false),
        ("noall.test", vec![t("@", "v=spf1 mx")], false),
        (
            "long.test",
            vec![t(
                "@",
                &format!(
                    "v=spf1 {} -all",
                    (1..=20)
                        .map(|i| format!("ip4:192.0.2.{i}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            )],
            false,
        ),
        ("badspf.test", vec![t("@", "v=spf1 include: -all")], false),
        // DMARC shapes.
        (
            "baddmarc.test",
            vec![t("_dmarc", "v=DMARC1; p=bogus")],
            false,
        ),
        (
            "twodmarc.test",
            vec![
                t("_dmarc", "v=DMARC1; p=none"),
                t("_dmarc", "v=DMARC1; p=reject"),
            ],
            true,
        ),
        (
            "testing-dmarc.test",
            vec![t(
                "_dmarc",
                "v=DMARC1; p=quarantine; t=y; rua=mailto:d@testing-dmarc.test",
            )],
            false,
        ),
        (
            "ruf.test",
            vec![t(
                "_dmarc",
                "v=DMARC1; p=reject; rua=mailto:a@ruf.test,mailto:b@ruf.test!10m; ruf=mailto:f@ruf.test; fo=1:d",
            )],
            false,
        ),
        (
            "rfri.test",
            vec![t("_dmarc", "v=DMARC1; p=none; rf=afrf; ri=3600")],
            false,
        ),
        // DKIM shapes.
        (
            "weak.test",
            vec![t("default._domainkey", &key(RSA1024))],
            false,
        ),
        ("tiny.test", vec![t("dkim._domainkey", &key(RSA512))], false),
        (
            "revoked.test",
            vec![t("mail._domainkey", "v=DKIM1; k=rsa; p=")],
            false,
        ),
        (
            "ed.test",
            vec![
                t(
                    "ed2026._domainkey",
                    &format!("v=DKIM1; k=ed25519; p={ED25519}"),
                ),
                t("rsa2026._domainkey", &key(RSA2048)),
            ],
            false,
        ),
        (
            "testing.test",
            vec![t(
                "s1._domainkey",
                &format!("v=DKIM1; k=rsa; t=y; p={RSA2048}"),
            )],
            false,
        ),
        (
            "sha1.test",
            vec![t(
                "s1._domainkey",
                &format!("v=DKIM1; k=rsa; h=sha1; p={RSA2048}"),
            )],
            false,
        ),
        (
            "nov.test",
            vec![t("k2._domainkey", &format!("k=rsa; p={RSA2048}"))],
            false,
        ),
        (
            "badb64.test",
            vec![t("k3._domainkey", "v=DKIM1; k=rsa; p=!!notbase64")],
            false,
        ),
        (
            "twokeys.test",
            vec![
                t("s2._domainkey", &key(RSA2048)),
                t("s2._domainkey", &key(RSA1024)),
            ],
            true,
        ),
        // MTA-STS and TLS-RPT shapes.
        (
            "mtasts.test",
            vec![
                t("_mta-sts", "v=STSv1; id=20240101T000000;"),
                t("_smtp._tls", "v=TLSRPTv1; rua=mailto:tls@mtasts.test"),
                mx("10 mx.mtasts.test."),
            ],
            false,
        ),
        (
            "badsts.test",
            vec![
                t("_mta-sts", "v=STSv1; id=bad-id!"),
                t("_smtp._tls", "v=TLSRPTv1;"),
            ],
            false,
        ),
        (
            "tlshttps.test",
            vec![t(
                "_smtp._tls",
                "v=TLSRPTv1; rua=https://reports.example.net/tlsrpt,mailto:t@tlshttps.test",
            )],
            false,
        ),
        // Whole-domain shapes.
        (
            "parked.test",
            vec![
                t("@", "v=spf1 -all"),
                t("_dmarc", "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s"),
                t("*._domainkey", "v=DKIM1; k=rsa; p="),
                mx("0 ."),
            ],
            false,
        ),
        (
            "nullmx.test",
            vec![
                t("@", "v=spf1 -all"),
                t("_dmarc", "v=DMARC1; p=reject"),
                mx("0 ."),
            ],
            false,
        ),
        (
            "ttlmix.test",
            vec![
                t("_dmarc", "v=DMARC1; p=none"),
                ("s1._domainkey 3600".to_string(), "TXT", txt(&key(RSA2048))),
            ],
            true,
        ),
        ("empty.test", vec![mx("10 mail.empty.test.")], false),
    ]
}

fn zone_text(records: &[Line]) -> String {
    let mut z = "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 900 1209600 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n".to_string();
    for (owner, rtype, data) in records {
        z.push_str(&format!("{owner} IN {rtype} {data}\n"));
    }
    z
}

fn zones() -> Vec<(String, String)> {
    shapes()
        .into_iter()
        .map(|(d, r, _)| (d.to_string(), zone_text(&r)))
        .collect()
}

/// (zone, change) of every change other than creating the registry.
fn record_changes(plan: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for z in plan["zones"].as_array().expect("zones") {
        assert!(z["error"].is_null(), "{z:#}");
        let zone = z["zone"].as_str().unwrap_or_default().to_string();
        for c in z["changes"].as_array().expect("changes") {
            let name = c["name"].as_str().unwrap_or_default();
            if name.starts_with("_mailauth.") && c["action"] == "create" {
                continue;
            }
            out.push((
                zone.clone(),
                format!("{} {name} {}", c["action"], c["type"]),
            ));
        }
    }
    out
}

fn plan_json(case: &Case) -> serde_json::Value {
    let run = case.run(&["plan", "--json"]);
    assert!(run.code == 0, "plan: {}\n{}", run.stdout, run.stderr);
    serde_json::from_str(&run.stdout).expect("plan JSON")
}

/// The round trip through `provider_yaml` (a config's `provider:` block).
fn round_trip(label: &str, provider_yaml: &str, nameserver: &str) {
    let shapes = shapes();
    let domains: Vec<&str> = shapes.iter().map(|(d, _, _)| *d).collect();
    let expect_unrepresentable: BTreeSet<&str> = shapes
        .iter()
        .filter(|(_, _, u)| *u)
        .map(|(d, _, _)| *d)
        .collect();
    let config = format!("# the fleet\n{provider_yaml}domains: {{}}\n# end\n");
    let case = Case::new().config(&config);

    let mut args = vec!["import", "--provider"];
    args.extend(&domains);
    let first: Run = case.run(&args).ok();
    let written = case.read("mailauth.yaml");
    assert!(
        written.starts_with(&format!("# the fleet\n{provider_yaml}domains:\n")),
        "{written}"
    );
    assert!(written.ends_with("# end\n"), "{written}");

    // What import says it cannot represent is exactly the planted set.
    let unrepresentable: BTreeSet<&str> = first
        .stderr
        .lines()
        .filter(|l| l.contains("not representable"))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(
        unrepresentable, expect_unrepresentable,
        "{label}: {}",
        first.stderr
    );
    // Broken and unsafe records are reported with their fix.
    for needle in [
        "plusall.test: fail: SPF ends in `+all`",
        "twospf.test: fail: 2 SPF records",
        "lookups.test: fail: SPF has 11 DNS-querying terms",
        "baddmarc.test: fail: the DMARC record does not parse",
        "tiny.test: fail: selector `dkim`: 512-bit RSA key",
        "revoked.test: info: selector `mail`: revoked",
        "sha1.test: fail: selector `s1`: h=sha1",
        "badsts.test: fail: the `_mta-sts` record is invalid",
        "badsts.test: fail: the `_smtp._tls` record is invalid",
        "example.de: warn: pct=100",
    ] {
        assert!(
            first.stderr.contains(needle),
            "{label}: no {needle:?} in\n{}",
            first.stderr
        );
    }
    assert!(first.stderr.contains("    fix: "), "{}", first.stderr);
    assert!(written.contains("parked: true"), "{written}");
    assert!(written.contains("verbatim:"), "{written}");
    assert!(
        written.contains("cname: \"selector1-test1-net._domainkey.test1.onmicrosoft.com\""),
        "{written}"
    );

    // Idempotent: a second import changes no byte.
    let second = case.run(&args).ok();
    assert_eq!(case.read("mailauth.yaml"), written, "{}", second.stderr);
    assert!(
        second.stderr.contains("already imported, unchanged"),
        "{}",
        second.stderr
    );

    // The next plan changes no imported record: only the registry, and the
    // records import said it cannot represent.
    let plan = plan_json(&case);
    let changes = record_changes(&plan);
    let changed: BTreeSet<&str> = changes.iter().map(|(z, _)| z.as_str()).collect();
    assert!(
        changed.is_subset(&expect_unrepresentable),
        "{label}: {changes:#?}"
    );
    // The planted mixed TTL is the one change left.
    assert!(changed.contains("ttlmix.test"), "{label}: {changes:#?}");
    // The test PowerDNS keeps its zones in SQLite, which answers some of
    // apply's concurrent writes with HTTP 500 "database is locked"; those
    // zones are reported and left as they were, and apply again writes
    // them (at most once per zone: the zones are about 50).
    let mut applied = case.run(&["apply", "--auto-approve"]);
    for _ in 0..5 {
        if applied.code == 0
            || !applied.stderr.contains("database is locked")
                && !applied.stderr.contains("HTTP 500")
        {
            break;
        }
        applied = case.run(&["apply", "--auto-approve"]);
    }
    let applied = applied.ok();
    // Apply wrote no imported record: its only changes were registries.
    for line in applied
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(['~', '-']))
    {
        assert!(
            expect_unrepresentable.iter().any(|d| line.contains(d)),
            "{label}: apply changed {line}"
        );
    }
    let after = plan_json(&case);
    let left = record_changes(&after);
    assert!(left.is_empty(), "{label}: after apply: {left:#?}");
    let run = case.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(run.code, 0, "{label}: {}", run.stdout);

    // validate agrees with what is published: nothing differs from the
    // config, for every domain that import could represent.
    let mut vargs = vec![
        "validate",
        "--json",
        "--no-propagation",
        "--no-mta-sts-policy",
        "--nameserver",
        nameserver,
    ];
    vargs.extend(&domains);
    let v = case.run(&vargs);
    let report: serde_json::Value = serde_json::from_str(&v.stdout).expect("validate JSON");
    for d in report["domains"].as_array().expect("domains") {
        let name = d["domain"].as_str().unwrap_or_default();
        if expect_unrepresentable.contains(name) {
            continue;
        }
        for f in d["findings"].as_array().expect("findings") {
            let m = f["message"].as_str().unwrap_or_default();
            assert!(
                !(f["severity"] == "fail" && m.contains("config")),
                "{label}: {name}: {f:#}"
            );
        }
    }
    eprintln!(
        "{label}: {} domains imported, {} plan-clean after import, {} with a record left unmanaged or not representable, {} with a verbatim entry",
        domains.len(),
        domains.len() - changed.len(),
        expect_unrepresentable.len(),
        written.matches("\n    verbatim:\n").count()
    );
}

#[test]
fn import_round_trip_on_bind() {
    let z = zones();
    let refs: Vec<(&str, &str)> = z.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let Some(bind) = Bind::try_start(&refs) else {
        return;
    };
    for (zone, _) in &z {
        assert!(
            support::wait_until(std::time::Duration::from_secs(15), || !bind
                .dig_short(zone, "SOA")
                .trim()
                .is_empty()),
            "BIND did not load {zone}"
        );
    }
    let secret = bind.secret_file(bind.tsig());
    let provider = format!(
        "provider:\n  kind: rfc2136\n  server: 127.0.0.1:{}\n  key_name: {}\n  algorithm: {}\n  secret_file: {}\n",
        bind.port(),
        bind.tsig().name,
        bind.tsig().algorithm,
        secret.display()
    );
    round_trip("BIND", &provider, &format!("127.0.0.1:{}", bind.port()));
}

#[test]
fn import_round_trip_on_powerdns() {
    let z = zones();
    let refs: Vec<(&str, &str)> = z.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let Some(pdns) = Pdns::try_start(&refs) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("pdns.key");
    std::fs::write(&key, pdns.api_key()).expect("write key");
    let provider = format!(
        "provider:\n  kind: powerdns\n  url: {}\n  secret_file: {}\n",
        pdns.api_url(),
        key.display()
    );
    round_trip(
        "PowerDNS",
        &provider,
        &format!("127.0.0.1:{}", pdns.dns_port()),
    );
}

/// Live DNS (probing the common selectors) and a BIND zone file give the
/// same entries as the provider, which lists every name; `--dry-run`
/// prints them and writes nothing; an existing domain is kept unless
/// `--replace`.
#[test]
fn live_dns_zone_file_and_provider_agree() {
    let picked = [
        "example.com",
        "test1.net",
        "borschow.com",
        "ed.test",
        "parked.test",
        "badsts.test",
    ];
    let all = zones();
    let z: Vec<(String, String)> = all
        .into_iter()
        .filter(|(d, _)| picked.contains(&d.as_str()))
        .collect();
    let refs: Vec<(&str, &str)> = z.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let Some(bind) = Bind::try_start(&refs) else {
        return;
    };
    for (zone, _) in &z {
        assert!(support::wait_until(
            std::time::Duration::from_secs(15),
            || !bind.dig_short(zone, "SOA").trim().is_empty()
        ));
    }
    let secret = bind.secret_file(bind.tsig());
    let provider = format!(
        "provider:\n  kind: rfc2136\n  server: 127.0.0.1:{}\n  key_name: {}\n  algorithm: {}\n  secret_file: {}\n",
        bind.port(),
        bind.tsig().name,
        bind.tsig().algorithm,
        secret.display()
    );
    let ns = format!("127.0.0.1:{}", bind.port());
    let case = Case::new().config(&format!("{provider}domains: {{}}\n"));
    // ed.test's selectors are not common ones: name them.
    let mut live = vec![
        "import",
        "--dry-run",
        "--nameserver",
        &ns,
        "--selector",
        "ed2026",
        "--selector",
        "RSA2026",
    ];
    live.extend(picked);
    let live = case.run(&live).ok().stdout;
    let mut prov = vec!["import", "--dry-run", "--provider"];
    prov.extend(picked);
    let prov = case.run(&prov).ok().stdout;
    assert_eq!(live, prov);
    assert_eq!(
        case.read("mailauth.yaml"),
        format!("{provider}domains: {{}}\n"),
        "dry run wrote nothing"
    );
    assert!(
        live.contains("\"ed2026\"") && live.contains("key_type: ed25519"),
        "{live}"
    );

    for (d, text) in &z {
        let case = case_with_zone(d, text);
        let out = case
            .run(&["import", "--dry-run", "--zone-file", "zone.db", d])
            .ok()
            .stdout;
        let one = prov_entry(&prov, d);
        assert_eq!(out, format!("domains:\n{one}"), "{d}");
    }

    // An existing entry is kept as it is; --replace rewrites only it.
    let case = Case::new().config(&format!(
        "{provider}domains:\n  example.com: {{ spf: {{ all: fail }} }}  # mine\n"
    ));
    let run = case.run(&["import", "--provider", "example.com"]).ok();
    assert!(run.stderr.contains("kept as it is"), "{}", run.stderr);
    assert!(case.read("mailauth.yaml").contains("# mine"));
    case.run(&["import", "--provider", "--replace", "example.com"])
        .ok();
    let text = case.read("mailauth.yaml");
    assert!(
        !text.contains("# mine") && text.starts_with(&provider),
        "{text}"
    );
    assert!(text.contains("include: [\"_spf.google.com\"]"), "{text}");
}

fn case_with_zone(_d: &str, text: &str) -> Case {
    Case::new().file("zone.db", text)
}

/// The entry of `domain` in a `--dry-run` output.
fn prov_entry(out: &str, domain: &str) -> String {
    let mut lines = out
        .lines()
        .skip_while(|l| !l.starts_with(&format!("  \"{domain}\":")));
    let mut entry = String::new();
    if let Some(first) = lines.next() {
        entry.push_str(first);
        entry.push('\n');
    }
    for l in lines {
        if l.starts_with("  \"") {
            break;
        }
        entry.push_str(l);
        entry.push('\n');
    }
    entry
}
