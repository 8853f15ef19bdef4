//! `mailauth validate` against real BIND servers serving fixture zones
//! (tests/data/validate): each fixture domain plants one problem, and the
//! clean domain must produce no warning at all. A second BIND serves an
//! out-of-date copy of stale.test for the propagation check.

use crate::support;
use crate::util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailauth::dns::Resolver;
use mailauth::record::Name;
use mailauth::validate::{Check, DomainReport, Settings, Severity, Validator};
use mailauth::workspace::Workspace;
use support::bind::Bind;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/validate")
}

fn zones(dir: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(data().join(dir)).expect("zone dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".zone"))
            .expect("zone file name")
            .to_string();
        out.push((name, std::fs::read_to_string(&path).expect("zone text")));
    }
    out
}

/// The harness reports BIND ready once its log says "running", which the
/// start-up banner ("running on Linux ...") already does, before zones are
/// loaded (they answer SERVFAIL until then): wait for every zone's SOA.
fn wait_for_zones(bind: &Bind, zones: &[(String, String)]) {
    for (zone, _) in zones {
        let loaded = support::wait_until(Duration::from_secs(15), || {
            !bind.dig_short(zone, "SOA").trim().is_empty()
        });
        assert!(loaded, "BIND did not load {zone}");
    }
}

struct Servers {
    primary: Bind,
    secondary: Bind,
}

impl Servers {
    /// `None` (after a loud SKIP line) without `named`, unless CI=true.
    fn start() -> Option<Servers> {
        let start = |dir: &str| {
            let z = zones(dir);
            let refs: Vec<(&str, &str)> = z.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let bind = Bind::try_start(&refs)?;
            wait_for_zones(&bind, &z);
            Some(bind)
        };
        Some(Servers {
            primary: start("zones")?,
            secondary: start("zones-secondary")?,
        })
    }
    fn primary(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.primary.port()))
    }
    fn secondary(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.secondary.port()))
    }
}

fn workspace() -> Workspace {
    Workspace::load(&data().join("mailauth.yaml")).expect("fixture config loads")
}

fn run(resolver: &Resolver, settings: Settings, only: &[&str]) -> Vec<DomainReport> {
    let ws = workspace();
    let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
    let domains: Vec<(Name, Result<_, String>)> = ws
        .select(&only)
        .expect("fixture domains")
        .into_iter()
        .map(|d| {
            let want = ws.desired(&d).map_err(|e| e.to_string());
            (d, want)
        })
        .collect();
    Validator::new(resolver, settings).validate(&domains)
}

fn report<'a>(reports: &'a [DomainReport], domain: &str) -> &'a DomainReport {
    reports
        .iter()
        .find(|r| r.domain == domain)
        .unwrap_or_else(|| panic!("no report for {domain}"))
}

/// Asserts a finding of `check` with `severity` whose message contains
/// `needle`.
fn has(r: &DomainReport, check: Check, severity: Severity, needle: &str) {
    assert!(
        r.findings
            .iter()
            .any(|f| f.check == check && f.severity == severity && f.message.contains(needle)),
        "{}: expected {check} {severity} containing {needle:?}, got:\n{:#?}",
        r.domain,
        r.findings
    );
}

fn no_warnings(r: &DomainReport) {
    let bad: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Warn)
        .collect();
    assert!(bad.is_empty(), "{}: unexpected findings {bad:#?}", r.domain);
}

fn settings(s: &Servers) -> Settings {
    Settings {
        timeout: Duration::from_secs(2),
        concurrency: 8,
        authorities: vec![
            ("ns.test".to_string(), s.primary()),
            ("ns2.test".to_string(), s.secondary()),
        ],
        propagation: true,
    }
}

#[test]
fn every_fixture_problem_is_found_and_the_clean_domain_is_clean() {
    let Some(servers) = Servers::start() else {
        return;
    };
    let resolver =
        Resolver::with_nameservers(&[servers.primary()], Duration::from_secs(2)).expect("resolver");
    let reports = run(&resolver, settings(&servers), &[]);
    assert_eq!(reports.len(), 12);

    let clean = report(&reports, "clean.test");
    no_warnings(clean);
    for check in [
        Check::Spf,
        Check::Dkim,
        Check::Dmarc,
        Check::Mx,
        Check::MtaSts,
        Check::TlsRpt,
        Check::Propagation,
    ] {
        assert!(
            clean
                .findings
                .iter()
                .any(|f| f.check == check && f.severity == Severity::Pass),
            "clean.test: no pass for {check}: {:#?}",
            clean.findings
        );
    }
    has(clean, Check::Spf, Severity::Pass, "2 DNS lookups");
    has(clean, Check::Dkim, Severity::Pass, "matches the config");
    has(
        clean,
        Check::Dmarc,
        Severity::Pass,
        "authorised by clean.test._report._dmarc.reports.provider.test",
    );
    has(
        clean,
        Check::Dmarc,
        Severity::Info,
        "organizational domain clean.test",
    );

    has(
        report(&reports, "loop.test"),
        Check::Spf,
        Severity::Fail,
        "loop",
    );
    has(
        report(&reports, "lookups.test"),
        Check::Spf,
        Severity::Fail,
        "11 DNS-querying terms",
    );
    has(
        report(&reports, "void.test"),
        Check::Spf,
        Severity::Fail,
        "3 void lookups",
    );
    has(
        report(&reports, "multi.test"),
        Check::Spf,
        Severity::Fail,
        "2 SPF records",
    );

    let split = report(&reports, "split.test");
    // Its only warning is the unenforced DMARC policy, judged on its merits.
    has(
        split,
        Check::Dmarc,
        Severity::Warn,
        "p=none: the policy is not enforced",
    );
    assert_eq!(
        split
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::Warn)
            .count(),
        1,
        "{:#?}",
        split.findings
    );
    has(split, Check::Spf, Severity::Info, "2 character-strings");
    has(split, Check::Spf, Severity::Pass, "matches the config");
    has(
        report(&reports, "splitbad.test"),
        Check::Spf,
        Severity::Fail,
        "does not parse",
    );

    let noauth = report(&reports, "noauth.test");
    has(
        noauth,
        Check::Dmarc,
        Severity::Fail,
        "no `v=DMARC1` TXT at noauth.test._report._dmarc.reports.provider.test",
    );
    // The ruf address is inside the domain: nothing to authorise.
    assert!(
        !noauth
            .findings
            .iter()
            .any(|f| f.message.contains("reports to noauth.test")),
        "{:#?}",
        noauth.findings
    );

    let weak = report(&reports, "weak.test");
    has(weak, Check::Dkim, Severity::Warn, "1024-bit RSA key");
    assert_eq!(weak.status, Severity::Warn);
    has(
        report(&reports, "revoked.test"),
        Check::Dkim,
        Severity::Fail,
        "revoked in DNS",
    );

    let parked = report(&reports, "parked.test");
    no_warnings(parked);
    has(parked, Check::Mx, Severity::Pass, "null MX");
    has(
        parked,
        Check::Dkim,
        Severity::Info,
        "revoked (empty p=), as configured",
    );

    let stale = report(&reports, "stale.test");
    has(
        stale,
        Check::Propagation,
        Severity::Fail,
        "serves SOA serial 1, others serve 2",
    );
    has(
        stale,
        Check::Propagation,
        Severity::Fail,
        "disagree on _dmarc.stale.test TXT",
    );
    // What the primary serves matches the config: only propagation fails.
    has(stale, Check::Dmarc, Severity::Pass, "matches the config");
    assert!(
        stale
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Fail)
            .all(|f| f.check == Check::Propagation),
        "{:#?}",
        stale.findings
    );
}

#[test]
fn a_dead_server_gives_temperror_findings_without_hanging() {
    let Some(servers) = Servers::start() else {
        return;
    };
    // Sockets that are bound but never answer.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let dead = silent.local_addr().expect("addr");

    // One authoritative server of stale.test is dead: only its propagation
    // check is a temperror, the rest of the domain is checked normally.
    let resolver = Resolver::with_nameservers(&[servers.primary()], Duration::from_millis(300))
        .expect("resolver");
    let mut s = settings(&servers);
    s.timeout = Duration::from_millis(300);
    s.authorities[1].1 = dead;
    let start = Instant::now();
    let reports = run(&resolver, s, &["stale.test", "clean.test"]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let stale = report(&reports, "stale.test");
    has(stale, Check::Propagation, Severity::TempError, "ns2.test");
    has(stale, Check::Dmarc, Severity::Pass, "matches the config");
    assert_eq!(stale.status, Severity::TempError, "{:#?}", stale.findings);
    no_warnings(report(&reports, "clean.test"));

    // The resolver itself is dead: every domain ends in temperror, quickly.
    let resolver =
        Resolver::with_nameservers(&[dead], Duration::from_millis(200)).expect("resolver");
    let start = Instant::now();
    let reports = run(
        &resolver,
        Settings {
            timeout: Duration::from_millis(200),
            ..Settings::default()
        },
        &["clean.test", "loop.test", "parked.test"],
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    for r in &reports {
        assert_eq!(r.status, Severity::TempError, "{:#?}", r.findings);
        assert!(
            r.findings.iter().all(|f| f.severity == Severity::TempError),
            "{:#?}",
            r.findings
        );
    }
}

fn cli(servers: &Servers, args: &[&str]) -> (i32, String) {
    let primary = servers.primary().to_string();
    let ns = format!("ns.test={}", servers.primary());
    let ns2 = format!("ns2.test={}", servers.secondary());
    let out = util::Cmd::new()
        .arg("-c")
        .arg(data().join("mailauth.yaml"))
        .args([
            "validate",
            "--nameserver",
            &primary,
            "--authority",
            &ns,
            "--authority",
            &ns2,
            // The fixtures publish `_mta-sts` records but serve no policy
            // over HTTPS; policy fetching is tested in validate_mtasts.rs.
            "--no-mta-sts-policy",
        ])
        .args(args)
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.stderr.is_empty() || out.status.code() != Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

#[test]
fn command_line_report_json_and_exit_codes() {
    let Some(servers) = Servers::start() else {
        return;
    };
    let (code, text) = cli(&servers, &["clean.test", "parked.test"]);
    assert_eq!(code, 0, "{text}");
    // The organizational-domain note is an info finding.
    assert!(text.starts_with("clean.test [info]\n"), "{text}");
    assert!(text.contains("parked.test [info]\n"), "{text}");
    assert!(
        text.contains("2 domain(s): 0 pass, 2 info, 0 warn, 0 temperror, 0 fail"),
        "{text}"
    );

    let (code, text) = cli(&servers, &["loop.test"]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("FAIL spf"), "{text}");
    assert!(text.contains("fix: "), "{text}");

    // A warning alone passes, unless --fail-on warn.
    let (code, text) = cli(&servers, &["weak.test"]);
    assert_eq!(code, 0, "{text}");
    let (code, _) = cli(&servers, &["weak.test", "--fail-on", "warn"]);
    assert_eq!(code, 3);

    let (code, json) = cli(&servers, &["--json", "noauth.test", "clean.test"]);
    assert_eq!(code, 3, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["summary"]["domains"], 2);
    assert_eq!(v["summary"]["fail"], 1);
    assert_eq!(v["domains"][0]["domain"], "clean.test");
    assert_eq!(v["domains"][1]["domain"], "noauth.test");
    assert_eq!(v["domains"][1]["status"], "fail");
    let findings = v["domains"][1]["findings"].as_array().expect("findings");
    assert!(findings.iter().any(|f| {
        f["check"] == "dmarc"
            && f["severity"] == "fail"
            && f["fix"]
                .as_str()
                .is_some_and(|s| s.contains("noauth.test._report._dmarc.reports.provider.test"))
    }));

    // A malformed name is a usage error (exit 2, as the README's table and
    // `import` and `checklist` have it), not a crash.
    let (code, _) = cli(&servers, &["bad..test"]);
    assert_eq!(code, 2);
}

/// `mailauth validate` with `config` (None: no config file at all), JSON.
fn cli_json(servers: &Servers, config: Option<&Path>, args: &[&str]) -> (i32, serde_json::Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let absent = dir.path().join("absent.yaml");
    let out = util::Cmd::new()
        .dir(dir.path())
        .arg("-c")
        .arg(config.unwrap_or(&absent))
        .args([
            "validate",
            "--json",
            "--no-mta-sts-policy",
            "--no-propagation",
        ])
        .arg(format!("--nameserver={}", servers.primary()))
        .args(args)
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// (check, severity, message) of every finding of `domain`.
fn triples(v: &serde_json::Value, domain: &str) -> Vec<(String, String, String)> {
    let d = v["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .find(|d| d["domain"] == domain)
        .unwrap_or_else(|| panic!("no {domain} in {v:#}"));
    d["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap_or_default().to_string(),
                f["severity"].as_str().unwrap_or_default().to_string(),
                f["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn has_json(t: &[(String, String, String)], check: &str, severity: &str, needle: &str) {
    assert!(
        t.iter()
            .any(|(c, s, m)| c == check && s == severity && m.contains(needle)),
        "expected {check} {severity} containing {needle:?} in {t:#?}"
    );
}

/// Issue 16: a domain outside the config (and with no config file at all)
/// is judged on what it publishes, every record on its merits: before, the
/// command refused it ("domain is not in mailauth.yaml"), and an undeclared
/// `_mta-sts` or `_smtp._tls` record was not looked at.
#[test]
fn any_domain_without_a_config_is_judged_on_its_merits() {
    let Some(servers) = Servers::start() else {
        return;
    };
    let (code, v) = cli_json(&servers, None, &["undeclared.test"]);
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["summary"]["domains"], 1, "{v:#}");
    let t = triples(&v, "undeclared.test");
    has_json(&t, "spf", "warn", "+all");
    has_json(&t, "spf", "warn", "ptr");
    has_json(&t, "dmarc", "warn", "p=none: the policy is not enforced");
    has_json(&t, "dmarc", "warn", "pct=50, rf=afrf, ri=86400");
    // Found by probing the common selectors: nothing declares them.
    has_json(&t, "dkim", "warn", "selector `google`: 1024-bit RSA key");
    has_json(&t, "dkim", "warn", "selector `google`: t=y (testing)");
    has_json(&t, "dkim", "fail", "selector `selector1`: h=sha1");
    has_json(
        &t,
        "mta-sts",
        "fail",
        "_mta-sts.undeclared.test does not parse",
    );
    has_json(
        &t,
        "tls-rpt",
        "fail",
        "_smtp._tls.undeclared.test does not parse",
    );
    has_json(&t, "mx", "pass", "MX 10 mail.undeclared.test");
    let (_, v) = cli_json(&servers, None, &["upper.test"]);
    has_json(&triples(&v, "upper.test"), "spf", "warn", "not `v=spf1`");
    assert!(
        !t.iter().any(|(c, _, _)| c == "config"),
        "no config finding: {t:#?}"
    );

    // Published text is anyone's: no control character reaches the
    // terminal, from validate or from import.
    let (_, text) = cli(&servers, &["ctrl.test"]);
    assert!(text.contains("ctrl.test"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    // In JSON the override and the C1 CSI that serde_json leaves raw are
    // written as escapes: the same JSON value, nothing a terminal acts on.
    let (_, json) = cli(&servers, &["ctrl.test", "--json"]);
    for c in ['\u{1b}', '\u{202e}', '\u{9b}'] {
        assert!(!json.contains(c), "{c:?} in {json}");
    }
    assert!(
        json.contains("\\u202e") && json.contains("\\u009b"),
        "{json}"
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert!(v.to_string().contains('\u{202e}'), "the same value: {v}");
    let out = util::mailauth(["-c", "/nonexistent/mailauth.yaml", "import", "--dry-run"])
        .arg(format!("--nameserver={}", servers.primary()))
        .arg("ctrl.test")
        .output();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b),
        "{out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\\u001b"),
        "{out:?}"
    );
    // A domain that does not exist is reported; the others are imported.
    let out = util::mailauth(["-c", "/nonexistent/mailauth.yaml", "import", "--dry-run"])
        .arg(format!("--nameserver={}", servers.primary()))
        .args(["nope.test", "clean.test"])
        .output();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nope.test: error: cannot read the zone"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"clean.test\":") && !stdout.contains("nope.test"),
        "{stdout}"
    );

    // --selector adds a selector the probe list does not have.
    let (_, v) = cli_json(&servers, None, &["revoked.test", "--selector", "s1"]);
    has_json(
        &triples(&v, "revoked.test"),
        "dkim",
        "info",
        "selector `s1`: revoked",
    );

    // Without a config and without a domain there is nothing to check.
    let (code, _) = {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = util::Cmd::new()
            .dir(dir.path())
            .args(["-c", "absent.yaml", "validate"])
            .output();
        (out.status.code(), out)
    };
    assert_eq!(code, Some(1));
}

/// Issue 16: the verdicts on a published record are the same, word for
/// word, whether or not the config declares it; the comparison with the
/// config only adds findings.
#[test]
fn declared_or_not_the_same_verdicts_and_the_config_only_adds() {
    let Some(servers) = Servers::start() else {
        return;
    };
    let config = data().join("mailauth.yaml");
    for domain in ["clean.test", "weak.test", "noauth.test", "loop.test"] {
        let (_, free) = cli_json(&servers, None, &[domain]);
        let (_, declared) = cli_json(&servers, Some(&config), &[domain]);
        let free = triples(&free, domain);
        let declared = triples(&declared, domain);
        for f in &free {
            // Only what is about the config may differ: the DKIM probe
            // (a declared domain names its selectors) and the notes that
            // the config declares nothing.
            if f.2.contains("the config") || f.0 == "dkim" {
                continue;
            }
            // A match may be said in the same finding ("…, matches the
            // config").
            assert!(
                declared
                    .iter()
                    .any(|d| d.0 == f.0 && d.1 == f.1 && d.2.starts_with(&f.2)),
                "{domain}: {f:?} is missing when the config declares the domain:\n{declared:#?}"
            );
        }
    }
    // A declared record that differs is an extra finding next to the
    // verdict on the record itself.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("mailauth.yaml");
    std::fs::write(
        &cfg,
        "domains:\n  undeclared.test:\n    tls_rpt: { rua: [mailto:tls@undeclared.test] }\n    mta_sts: { id: \"1\", mode: testing, mx: [mx.undeclared.test] }\n",
    )
    .expect("write");
    let (_, v) = cli_json(&servers, Some(&cfg), &["undeclared.test"]);
    let t = triples(&v, "undeclared.test");
    has_json(
        &t,
        "tls-rpt",
        "fail",
        "_smtp._tls.undeclared.test does not parse",
    );
    has_json(
        &t,
        "mta-sts",
        "fail",
        "_mta-sts.undeclared.test does not parse",
    );
}

/// Every string under a key named `key` in `v` (recursively).
fn strings(v: &serde_json::Value, key: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, key, out)),
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                match x {
                    serde_json::Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings(x, key, out),
                }
            }
        }
        _ => {}
    }
}

/// Issue 16: `mailauth checklist` and `mailauth validate` agree on a domain
/// outside the config: every item the checklist leaves open because of live
/// DNS says why with a finding of validate, word for word.
#[test]
fn checklist_and_validate_agree_on_any_domain() {
    let Some(servers) = Servers::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for domain in ["undeclared.test", "clean.test", "weak.test"] {
        let (_, v) = cli_json(&servers, None, &[domain]);
        let messages: Vec<String> = triples(&v, domain).into_iter().map(|t| t.2).collect();
        let out = util::Cmd::new()
            .dir(dir.path())
            .args(["-c", "absent.yaml", "checklist", domain, "--format", "json"])
            .arg(format!("--nameserver={}", servers.primary()))
            .arg("--db")
            .arg(dir.path().join("none.db"))
            .output();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c: serde_json::Value = serde_json::from_slice(&out.stdout).expect("checklist JSON");
        let mut all = Vec::new();
        strings(&c, "why", &mut all);
        let live: Vec<&str> = all
            .iter()
            .filter_map(|s| s.strip_prefix("live DNS: "))
            .collect();
        if domain == "undeclared.test" {
            assert!(!live.is_empty(), "{domain}: {c:#}");
        }
        for l in live {
            assert!(
                messages.iter().any(|m| m == l),
                "{domain}: the checklist says {l:?}, validate does not:\n{messages:#?}"
            );
        }
    }
}
