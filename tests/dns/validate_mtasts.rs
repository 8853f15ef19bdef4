//! `mailauth validate` fetching MTA-STS policies (RFC 8461 §3.3) from a
//! real HTTPS server on loopback, with certificates from a throwaway test
//! CA, and the `_mta-sts` TXT and MX records from a real BIND. Each domain
//! plants one problem; the binary is run with `--ca-file` and
//! `--connect-to`, as a user testing a policy host would.

use crate::support;
use crate::util;

use std::collections::HashMap;

use support::bind::Bind;
use support::https::{Answer, HttpsServer, TestCa};

const WELL_KNOWN: &str = "/.well-known/mta-sts.txt";

/// (domain, extra zone records, mta_sts config)
const DOMAINS: &[(&str, &str, &str)] = &[
    (
        "good.test",
        "",
        "{ id: \"20270101\", mode: enforce, mx: [mail.good.test], max_age: 86400 }",
    ),
    (
        "ctype.test",
        "",
        "{ id: \"1\", mode: enforce, mx: [mail.ctype.test], max_age: 86400 }",
    ),
    (
        "redirect.test",
        "",
        "{ id: \"1\", mode: enforce, mx: [mail.redirect.test], max_age: 86400 }",
    ),
    (
        "wrongcert.test",
        "",
        "{ id: \"1\", mode: enforce, mx: [mail.wrongcert.test], max_age: 86400 }",
    ),
    (
        "uncovered.test",
        "@ IN MX 20 backup.elsewhere.test.\n",
        "{ id: \"1\", mode: enforce, mx: [mail.uncovered.test], max_age: 86400 }",
    ),
    (
        "testing.test",
        "@ IN MX 20 backup.elsewhere.test.\n",
        "{ id: \"1\", mode: testing, mx: [mail.testing.test], max_age: 86400 }",
    ),
    (
        "mismatch.test",
        "",
        "{ id: \"1\", mode: enforce, mx: [mail.mismatch.test], max_age: 86400 }",
    ),
    (
        "badline.test",
        "",
        "{ id: \"1\", mode: enforce, mx: [mail.badline.test], max_age: 86400 }",
    ),
    (
        "big.test",
        "",
        "{ id: \"1\", mode: enforce, mx: [mail.big.test], max_age: 86400 }",
    ),
    (
        "down.test",
        "",
        "{ id: \"1\", mode: enforce, mx: [mail.down.test], max_age: 86400 }",
    ),
    (
        "notxt.test",
        "",
        "{ id: \"1\", mode: enforce, mx: [mail.notxt.test], max_age: 86400 }",
    ),
];

fn zone(domain: &str, extra: &str) -> String {
    let txt = if domain == "notxt.test" {
        String::new()
    } else {
        let id = if domain == "good.test" {
            "20270101"
        } else {
            "1"
        };
        format!("_mta-sts IN TXT \"v=STSv1; id={id}\"\n")
    };
    format!(
        "$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.1\n\
         @ IN MX 10 mail\nmail IN A 192.0.2.25\nmta-sts IN A 127.0.0.1\n{txt}{extra}"
    )
}

fn policy(mode: &str, mx: &[&str], max_age: u64) -> String {
    let mut p = format!("version: STSv1\r\nmode: {mode}\r\n");
    for m in mx {
        p.push_str(&format!("mx: {m}\r\n"));
    }
    p.push_str(&format!("max_age: {max_age}\r\n"));
    p
}

struct World {
    bind: Bind,
    ca: TestCa,
    good: HttpsServer,
    wrong: HttpsServer,
    /// A port nothing listens on.
    closed: u16,
    config: tempfile::TempDir,
}

fn route(host: &str, answer: Answer) -> ((String, String), Answer) {
    ((host.to_string(), WELL_KNOWN.to_string()), answer)
}

impl World {
    fn start() -> Option<World> {
        let zones: Vec<(String, String)> = DOMAINS
            .iter()
            .map(|(d, extra, _)| (d.to_string(), zone(d, extra)))
            .collect();
        let refs: Vec<(&str, &str)> = zones
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let bind = Bind::try_start(&refs)?;
        for (d, _) in &zones {
            assert!(
                support::wait_until(std::time::Duration::from_secs(15), || {
                    !bind.dig_short(d, "SOA").trim().is_empty()
                }),
                "BIND did not load {d}"
            );
        }
        let ca = TestCa::try_new()?;
        let names: Vec<String> = DOMAINS
            .iter()
            .filter(|(d, _, _)| *d != "wrongcert.test")
            .map(|(d, _, _)| format!("mta-sts.{d}"))
            .collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (cert, key) = ca.issue("policy-hosts", &name_refs);
        let text = |s: String| Answer::new(200, "text/plain", s);
        let routes: HashMap<_, _> = [
            route(
                "mta-sts.good.test",
                text(policy("enforce", &["mail.good.test"], 86400)),
            ),
            route(
                "mta-sts.ctype.test",
                Answer::new(
                    200,
                    "text/html; charset=utf-8",
                    policy("enforce", &["mail.ctype.test"], 86400),
                ),
            ),
            route(
                "mta-sts.redirect.test",
                Answer::new(301, "text/plain", "moved\n")
                    .header("Location", "https://mta-sts.good.test/.well-known/mta-sts.txt"),
            ),
            route(
                "mta-sts.uncovered.test",
                text(policy("enforce", &["mail.uncovered.test"], 86400)),
            ),
            route(
                "mta-sts.testing.test",
                text(policy("testing", &["mail.testing.test"], 86400)),
            ),
            route(
                "mta-sts.mismatch.test",
                text(policy("testing", &["*.mismatch.test"], 604800)),
            ),
            route(
                "mta-sts.badline.test",
                text(
                    "version: STSv1\r\nmode: enforce\r\nmx: mail.badline.test\r\nmax_age: 99999999999\r\n"
                        .to_string(),
                ),
            ),
            route(
                "mta-sts.big.test",
                text(
                    policy("enforce", &["mail.big.test"], 86400)
                        + &format!("comment: {}\r\n", "x".repeat(70 * 1024)),
                ),
            ),
            route(
                "mta-sts.notxt.test",
                text(policy("enforce", &["mail.notxt.test"], 86400)),
            ),
        ]
        .into_iter()
        .collect();
        let good = HttpsServer::start(&cert, &key, routes);
        // A certificate valid, from the same CA, but for another name.
        let (other_cert, other_key) = ca.issue("other", &["mta-sts.other.test"]);
        let wrong = HttpsServer::start(
            &other_cert,
            &other_key,
            [route(
                "mta-sts.wrongcert.test",
                text(policy("enforce", &["mail.wrongcert.test"], 86400)),
            )]
            .into_iter()
            .collect(),
        );
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let config = tempfile::tempdir().expect("temp dir");
        let mut yaml = String::from("domains:\n");
        for (d, _, sts) in DOMAINS {
            yaml.push_str(&format!("  {d}:\n    mta_sts: {sts}\n"));
        }
        std::fs::write(config.path().join("mailauth.yaml"), yaml).expect("write config");
        Some(World {
            bind,
            ca,
            good,
            wrong,
            closed,
            config,
        })
    }

    fn connect_to(&self) -> Vec<String> {
        DOMAINS
            .iter()
            .map(|(d, _, _)| {
                let port = match *d {
                    "wrongcert.test" => self.wrong.port(),
                    "down.test" => self.closed,
                    _ => self.good.port(),
                };
                format!("--connect-to=mta-sts.{d}:443:127.0.0.1:{port}")
            })
            .collect()
    }

    /// Runs `mailauth validate --json` on `domains`: (exit code, report).
    fn validate(&self, domains: &[&str], extra: &[&str]) -> (i32, serde_json::Value) {
        let out = util::Cmd::new()
            .arg("-c")
            .arg(self.config.path().join("mailauth.yaml"))
            .arg("validate")
            .arg("--json")
            .arg("--no-propagation")
            .arg(format!("--nameserver=127.0.0.1:{}", self.bind.port()))
            .arg("--ca-file")
            .arg(self.ca.cert())
            .args(self.connect_to())
            .args(["--policy-timeout", "5"])
            .args(extra)
            .args(domains)
            .output();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), json)
    }
}

/// The mta-sts findings of `domain` as (severity, message, details).
fn findings(report: &serde_json::Value, domain: &str) -> Vec<(String, String, String)> {
    let d = report["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["domain"] == domain)
        .unwrap_or_else(|| panic!("no report for {domain}: {report:#}"));
    d["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == "mta-sts")
        .map(|f| {
            (
                f["severity"].as_str().unwrap_or("").to_string(),
                f["message"].as_str().unwrap_or("").to_string(),
                f["details"].to_string(),
            )
        })
        .collect()
}

fn has(report: &serde_json::Value, domain: &str, severity: &str, needle: &str) {
    let f = findings(report, domain);
    assert!(
        f.iter()
            .any(|(s, m, _)| s == severity && m.contains(needle)),
        "{domain}: expected mta-sts {severity} containing {needle:?}, got {f:#?}"
    );
}

fn none_worse_than_info(report: &serde_json::Value, domain: &str) {
    let f = findings(report, domain);
    let bad: Vec<_> = f
        .iter()
        .filter(|(s, _, _)| !matches!(s.as_str(), "pass" | "info"))
        .collect();
    assert!(bad.is_empty(), "{domain}: {bad:#?}");
}

#[test]
fn policies_are_fetched_and_checked() {
    let Some(w) = World::start() else {
        return;
    };
    let all: Vec<&str> = DOMAINS.iter().map(|(d, _, _)| *d).collect();
    let (code, r) = w.validate(&all, &[]);
    assert_eq!(code, 3, "{r:#}");

    // A valid policy, as declared, covering the MX: all pass, and the JSON
    // carries the policy.
    none_worse_than_info(&r, "good.test");
    has(
        &r,
        "good.test",
        "pass",
        "policy fetched from https://mta-sts.good.test/.well-known/mta-sts.txt",
    );
    has(&r, "good.test", "pass", "policy matches the config");
    has(
        &r,
        "good.test",
        "pass",
        "every MX host matches the policy: mail.good.test",
    );
    has(&r, "good.test", "info", "policy id 20270101");
    let good = r["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["domain"] == "good.test")
        .expect("good.test");
    let fetched = good["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find_map(|f| f.get("mta_sts_policy"))
        .unwrap_or_else(|| panic!("no policy in the JSON: {good:#}"));
    assert_eq!(
        fetched["url"],
        "https://mta-sts.good.test/.well-known/mta-sts.txt"
    );
    assert_eq!(fetched["mode"], "enforce");
    assert_eq!(fetched["mx"], serde_json::json!(["mail.good.test"]));
    assert_eq!(fetched["max_age"], 86400);

    has(
        &r,
        "ctype.test",
        "fail",
        "Content-Type is \"text/html; charset=utf-8\"",
    );

    has(&r, "redirect.test", "fail", "HTTP 301 redirect");
    has(&r, "redirect.test", "fail", "must not be followed");
    // The redirect's target was never asked for on behalf of redirect.test:
    // the only request for good.test's policy is good.test's own.
    let reqs = w.good.requests();
    assert_eq!(
        reqs.iter()
            .filter(|q| q.starts_with("mta-sts.good.test "))
            .count(),
        1,
        "{reqs:?}"
    );

    // The certificate is from a trusted CA but for another name.
    let wrong = findings(&r, "wrongcert.test");
    assert!(
        wrong.iter().any(|(s, m, _)| s == "fail"
            && m.contains("https://mta-sts.wrongcert.test/.well-known/mta-sts.txt")
            && m.contains("certificate")),
        "{wrong:#?}"
    );
    assert!(
        w.wrong.requests().is_empty(),
        "no request after a bad handshake"
    );

    has(
        &r,
        "uncovered.test",
        "fail",
        "not matched by any policy `mx` pattern: backup.elsewhere.test",
    );
    has(&r, "testing.test", "warn", "backup.elsewhere.test");
    assert!(
        !findings(&r, "testing.test")
            .iter()
            .any(|(s, _, _)| s == "fail"),
        "{:#?}",
        findings(&r, "testing.test")
    );

    let mismatch = findings(&r, "mismatch.test");
    let diff = mismatch
        .iter()
        .find(|(s, m, _)| s == "fail" && m.contains("differs from the config"))
        .unwrap_or_else(|| panic!("{mismatch:#?}"));
    for needle in [
        "mode: served testing, config enforce",
        "mx: served [*.mismatch.test], config [mail.mismatch.test]",
        "max_age: served 604800, config 86400",
    ] {
        assert!(diff.2.contains(needle), "{needle}: {}", diff.2);
    }

    has(&r, "badline.test", "fail", "policy line 4");
    has(
        &r,
        "badline.test",
        "fail",
        "`max_age` has invalid value `99999999999`",
    );

    has(&r, "big.test", "fail", "larger than 65536 bytes");

    has(
        &r,
        "down.test",
        "fail",
        "policy unavailable: https://mta-sts.down.test/.well-known/mta-sts.txt",
    );

    // No TXT record: senders never fetch, so the TXT check fails and the
    // policy itself is fine.
    has(&r, "notxt.test", "fail", "no `v=STSv1` record");
    has(&r, "notxt.test", "pass", "policy fetched");
}

#[test]
fn without_the_test_ca_the_certificate_is_refused_and_the_opt_out_skips_https() {
    let Some(w) = World::start() else {
        return;
    };
    // Only the system roots: the test CA is unknown.
    let out = util::Cmd::new()
        .arg("-c")
        .arg(w.config.path().join("mailauth.yaml"))
        .args(["validate", "--json", "--no-propagation"])
        .arg(format!("--nameserver=127.0.0.1:{}", w.bind.port()))
        .args(w.connect_to())
        .arg("good.test")
        .output();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(out.status.code(), Some(3), "{r:#}");
    let f = findings(&r, "good.test");
    assert!(
        f.iter().any(|(s, m, _)| s == "fail"
            && m.contains("policy unavailable")
            && m.contains("certificate")),
        "{f:#?}"
    );

    // --no-mta-sts-policy: the TXT record alone, no HTTPS request at all.
    let before = w.good.requests().len();
    let (code, r) = w.validate(&["good.test"], &["--no-mta-sts-policy"]);
    assert_eq!(code, 0, "{r:#}");
    let f = findings(&r, "good.test");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].0, "pass");
    assert_eq!(w.good.requests().len(), before);

    // A --ca-file that holds no certificate is an error up front.
    let empty = w.config.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let out = util::Cmd::new()
        .arg("-c")
        .arg(w.config.path().join("mailauth.yaml"))
        .args(["validate", "--no-propagation", "--ca-file"])
        .arg(&empty)
        .arg("good.test")
        .output();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&*empty.display().to_string()) && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
}

/// Issue 16: `mailauth import --mta-sts-policy` fetches the policy the way
/// validate does and declares `mta_sts:` from it, so validate then finds
/// the policy matching; without the flag (or when the fetch fails) the
/// `_mta-sts` record is kept under `verbatim:`.
#[test]
fn import_declares_mta_sts_from_the_fetched_policy() {
    let Some(w) = World::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = format!("--nameserver=127.0.0.1:{}", w.bind.port());
    let import = |extra: &[&str], domain: &str| {
        let out = util::Cmd::new()
            .dir(dir.path())
            .args(["-c", "mailauth.yaml", "import", &ns])
            .args(extra)
            .arg(domain)
            .output();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ca = w.ca.cert().display().to_string();
    let mut fetch = vec!["--mta-sts-policy", "--ca-file", &ca];
    let connect = w.connect_to();
    fetch.extend(connect.iter().map(String::as_str));

    let (yaml, _) = import(&[&["--dry-run"][..], &fetch].concat(), "good.test");
    assert!(
        yaml.contains("    mta_sts:\n      id: \"20270101\"\n      mode: enforce\n      mx: [\"mail.good.test\"]\n      max_age: 86400\n"),
        "{yaml}"
    );
    let (yaml, _) = import(&["--dry-run"], "good.test");
    assert!(yaml.contains("mta_sts: \"v=STSv1; id=20270101\""), "{yaml}");
    let (yaml, err) = import(&[&["--dry-run"][..], &fetch].concat(), "wrongcert.test");
    assert!(yaml.contains("verbatim:"), "{yaml}");
    assert!(err.contains("MTA-STS policy not fetched"), "{err}");

    // Written, then validated: the policy matches what import declared.
    import(&fetch, "good.test");
    let out = util::Cmd::new()
        .dir(dir.path())
        .args([
            "-c",
            "mailauth.yaml",
            "validate",
            "--json",
            "--no-propagation",
            &ns,
            "--ca-file",
            &ca,
        ])
        .args(&connect)
        .arg("good.test")
        .output();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    has(&r, "good.test", "pass", "policy matches the config");
}
