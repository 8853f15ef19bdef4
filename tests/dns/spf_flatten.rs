//! SPF flattening against real BIND: one server holds the ESPs' include
//! trees (nested includes, ip6, `a`/`mx` inside includes, redirect, an
//! `exists` that cannot be flattened, a big ESP that needs three chained
//! records, an IPv6-heavy ESP) and the managed zones, which mailauth
//! updates over RFC 2136. Plans, applies, re-plans (byte-identical: no
//! changes), then changes the ESPs between plans for drift, shrink and
//! failing includes. `mailauth spf check` gives the same result before and
//! after flattening for addresses of every upstream range.

use crate::support;
use crate::util;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mailauth::dns::Resolver;
use mailauth::record::Name;
use mailauth::spf::flatten::{Net, UpstreamState};
use mailauth::spf::{CheckOptions, SpfResult, check_sender};
use mailauth::validate::{Check, Settings, Severity, Validator};
use mailauth::workspace::Workspace;
use support::bind::Bind;
use util::Case;

const SOA: &str =
    "$TTL 300\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n@ IN NS ns.test.\n";

/// The big ESP: 55 separate /24 networks (none adjacent), too many for
/// the apex and two chained records.
fn big_esp() -> String {
    let mut s = String::from("v=spf1");
    for i in 0..55 {
        s.push_str(&format!(" ip4:10.{}.{}.0/24", 20 + i / 50, (i % 50) * 2));
    }
    s.push_str(" -all");
    strings(&s)
}

/// A TXT value as the 255-octet quoted strings a master file needs.
fn strings(s: &str) -> String {
    let quoted: Vec<String> = s
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    quoted.join(" ")
}

/// IPv6-heavy ESP: 12 separate /48 networks and one IPv4 address.
fn v6_esp() -> String {
    let mut s = String::from("v=spf1");
    for i in 0..12 {
        s.push_str(&format!(" ip6:2001:db8:{:x}::/48", i * 2 + 0x100));
    }
    s.push_str(" ip4:198.51.100.200 -all");
    strings(&s)
}

fn esp_zone() -> String {
    format!(
        "{SOA}\
_spf.mail IN TXT \"v=spf1 include:_n1.mail.esp.test include:_n2.mail.esp.test ~all\"\n\
_n1.mail IN TXT \"v=spf1 ip4:192.0.2.0/25 ip4:192.0.2.128/25 ip4:198.51.100.0/26 ip6:2001:db8:aa::/48 -all\"\n\
_n2.mail IN TXT \"v=spf1 ip4:203.0.113.0/28 ip4:203.0.113.16/28 -all\"\n\
_am IN TXT \"v=spf1 a:out.esp.test mx:mx.esp.test -all\"\n\
out IN A 198.51.100.77\n\
out IN AAAA 2001:db8:77::7\n\
mx IN MX 10 mx1.esp.test.\n\
mx IN MX 20 mx2.esp.test.\n\
mx1 IN A 198.51.100.81\n\
mx2 IN A 198.51.100.82\n\
_r IN TXT \"v=spf1 redirect=_rt.esp.test\"\n\
_rt IN TXT \"v=spf1 ip4:100.64.0.0/24 ip4:100.64.1.0/24 -all\"\n\
_x IN TXT \"v=spf1 exists:%{{i}}.allow.esp.test -all\"\n\
_big IN TXT {}\n\
_v6 IN TXT {}\n\
_bad IN TXT \"v=spf1 ip4:192.0.2.0/99 -all\"\n",
        big_esp(),
        v6_esp()
    )
}

fn managed_zone(extra: &str) -> String {
    format!("{SOA}@ IN TXT \"google-site-verification=abc\"\n{extra}")
}

/// The unflattened record, published beside the flattened one for the
/// before/after comparison.
const ORIGINAL: &str = "v=spf1 include:_spf.mail.esp.test include:_r.esp.test include:_v6.esp.test include:_am.esp.test ~all";

fn start() -> Option<Bind> {
    let esp = esp_zone();
    let same = managed_zone(&format!("orig IN TXT \"{ORIGINAL}\"\n"));
    let plain = managed_zone("");
    let bind = Bind::try_start(&[
        ("esp.test", &esp),
        ("fleet.test", &plain),
        ("auto.test", &plain),
        ("same.test", &same),
    ])?;
    for zone in ["esp.test", "fleet.test", "auto.test", "same.test"] {
        let up = support::wait_until(Duration::from_secs(15), || {
            !bind.dig_short(zone, "SOA").trim().is_empty()
        });
        assert!(up, "BIND did not load {zone}");
    }
    Some(bind)
}

fn config(bind: &Bind, secret: &str) -> String {
    let r = format!("resolvers: [\"127.0.0.1:{}\"]", bind.port());
    format!(
        "provider:\n  kind: rfc2136\n  server: 127.0.0.1:{port}\n  key_name: {key}\n  algorithm: {alg}\n  secret_file: {secret}\n\
         domains:\n\
         \x20 fleet.test:\n    spf:\n      include: [_spf.mail.esp.test, _big.esp.test, _v6.esp.test, _am.esp.test, _r.esp.test, _x.esp.test]\n      all: fail\n      flatten: always\n      {r}\n\
         \x20 auto.test:\n    spf:\n      ip4: [192.0.2.10]\n      include: [_spf.mail.esp.test, _am.esp.test, _r.esp.test, _x.esp.test, _v6.esp.test, _big.esp.test]\n      all: softfail\n      flatten: auto\n      {r}\n\
         \x20 same.test:\n    spf:\n      include: [_spf.mail.esp.test, _r.esp.test, _v6.esp.test, _am.esp.test]\n      all: softfail\n      flatten: always\n      {r}\n",
        port = bind.port(),
        key = bind.admin_tsig().name,
        alg = bind.admin_tsig().algorithm,
    )
}

/// The TXT strings of `name` as served (`dig +short`), one record a line.
fn txt(bind: &Bind, name: &str) -> Vec<Vec<String>> {
    bind.dig_short(name, "TXT")
        .lines()
        .map(|l| {
            l.split("\" \"")
                .map(|s| s.trim_matches('"').to_string())
                .collect()
        })
        .collect()
}

fn spf_of(bind: &Bind, name: &str) -> Option<String> {
    txt(bind, name)
        .into_iter()
        .map(|strings| strings.concat())
        .find(|v| v.starts_with("v=spf1"))
}

fn resolver(bind: &Bind) -> Resolver {
    Resolver::with_nameservers(
        &[SocketAddr::from(([127, 0, 0, 1], bind.port()))],
        Duration::from_secs(3),
    )
    .expect("resolver")
}

/// The SPF findings `validate` gives `domain`.
fn validate_spf(case: &Case, bind: &Bind, domain: &str) -> Vec<(Severity, String)> {
    let ws = Workspace::load(&case.path().join("mailauth.yaml")).expect("config");
    let r = resolver(bind);
    let name = Name::parse(domain).unwrap();
    let want = ws.desired_resolved(&name, &r).map_err(|e| e.to_string());
    let settings = Settings {
        timeout: Duration::from_secs(2),
        concurrency: 1,
        authorities: Vec::new(),
        propagation: false,
    };
    let reports = Validator::new(&r, settings).validate(&[(name, want)]);
    reports[0]
        .findings
        .iter()
        .filter(|f| f.check == Check::Spf)
        .map(|f| (f.severity, f.message.clone()))
        .collect()
}

fn state(case: &Case) -> UpstreamState {
    serde_json::from_str(&case.read("mailauth.spf-upstream.json")).expect("state file")
}

fn addresses(ranges: &[String]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for r in ranges {
        let n: Net = r.parse().expect("range");
        let (first, last) = n.ends();
        out.push(first);
        out.push(last);
    }
    out
}

#[test]
fn flattening_plans_applies_replans_empty_and_reports_drift_on_bind() {
    let Some(bind) = start() else {
        return;
    };
    let secret = bind.secret_file(bind.admin_tsig());
    let case = Case::new().config(&config(&bind, &secret.display().to_string()));

    // Before: the declared records need more than 10 lookups.
    let plan = case.run(&["plan", "--detailed-exitcode"]).code(2).stdout;
    println!("{plan}");
    let mut planned = BTreeMap::new();
    for (domain, before) in [("fleet.test", 12), ("auto.test", 12), ("same.test", 9)] {
        let line = plan
            .lines()
            .find(|l| l.contains("spf: flattened") && plan_zone_of(&plan, l) == domain)
            .unwrap_or_else(|| panic!("{domain}: no flattening note in\n{plan}"));
        let after: usize = line
            .split(&format!("{before} DNS lookups -> "))
            .nth(1)
            .unwrap_or_else(|| panic!("{domain}: {line}"))
            .split(';')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(after <= 10, "{line}");
        planned.insert(domain, after);
    }
    assert!(
        plan.contains("spf: include:_x.esp.test kept: _x.esp.test has `exists`"),
        "{plan}"
    );
    // The big ESP needs three chained records.
    assert!(plan.contains("+ _spf3.fleet.test TXT"), "{plan}");
    assert!(!plan.contains("_spf4.fleet.test"), "{plan}");

    case.run(&["apply", "--auto-approve"]).ok();
    // Byte-identical on re-plan: nothing to do.
    let again = case.run(&["plan", "--detailed-exitcode"]).code(0).stdout;
    assert!(again.contains("No changes."), "{again}");

    // Every record within 450 octets, every string within 255; the
    // original `all` kept.
    for name in [
        "fleet.test",
        "_spf1.fleet.test",
        "_spf2.fleet.test",
        "_spf3.fleet.test",
        "auto.test",
        "same.test",
    ] {
        let rec: Vec<String> = txt(&bind, name)
            .into_iter()
            .find(|s| s.concat().starts_with("v=spf1"))
            .unwrap_or_else(|| panic!("{name}: no SPF record"));
        let joined = rec.concat();
        println!("{name}: {} octets in {} string(s)", joined.len(), rec.len());
        assert!(joined.len() <= 450, "{name}: {joined}");
        assert!(rec.iter().all(|s| s.len() <= 255), "{name}");
    }
    assert!(spf_of(&bind, "fleet.test").unwrap().ends_with(" -all"));
    assert!(spf_of(&bind, "auto.test").unwrap().ends_with(" ~all"));
    assert!(spf_of(&bind, "_spf3.fleet.test").is_some());
    assert!(
        txt(&bind, "fleet.test")
            .iter()
            .any(|s| s.concat() == "google-site-verification=abc"),
        "other apex TXT kept"
    );

    // validate counts the chain's lookups and finds the flattening whole.
    for domain in ["fleet.test", "auto.test", "same.test"] {
        let f = validate_spf(&case, &bind, domain);
        println!("{domain}: {f:#?}");
        let summary = f
            .iter()
            .find(|(_, m)| m.contains(" DNS lookups (limit 10)"))
            .unwrap_or_else(|| panic!("{domain}: {f:#?}"));
        let lookups: usize = summary
            .1
            .split(" DNS lookups (limit 10)")
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(lookups, planned[domain], "{domain}: {summary:?}");
        // auto.test fits its apex: no chain to check.
        assert_eq!(
            f.iter()
                .any(|(s, m)| *s == Severity::Pass && m.starts_with("flattened: ")),
            domain != "auto.test",
            "{domain}: {f:#?}"
        );
        assert!(
            f.iter()
                .any(|(s, m)| *s == Severity::Pass && m == "matches the config"),
            "{domain}: {f:#?}"
        );
    }

    // Property: spf check gives the same result before (the original
    // record at orig.same.test) and after flattening (same.test) for the
    // first and last address of every upstream range, and for addresses
    // outside them.
    let st = state(&case);
    let upstream = &st.domains["same.test"];
    assert_eq!(upstream.len(), 4, "{upstream:?}");
    let r = resolver(&bind);
    let opts = CheckOptions {
        receiver: "mx.example".into(),
        timestamp: Some(0),
        ..CheckOptions::default()
    };
    let mut ips: Vec<IpAddr> = upstream.values().flat_map(|v| addresses(v)).collect();
    ips.extend(
        [
            "203.0.113.32",
            "192.0.3.1",
            "2001:db8:ab::1",
            "10.20.1.1",
            "198.51.100.83",
        ]
        .iter()
        .map(|s| s.parse::<IpAddr>().unwrap()),
    );
    let mut passes = 0;
    for ip in &ips {
        let before = check_sender(&r, *ip, "someone@orig.same.test", None, &opts);
        let after = check_sender(&r, *ip, "someone@same.test", None, &opts);
        assert_eq!(before.result, after.result, "{ip}: {before}\n{after}");
        assert!(
            matches!(after.result, SpfResult::Pass | SpfResult::SoftFail),
            "{ip}: {after}"
        );
        passes += usize::from(after.result == SpfResult::Pass);
    }
    assert_eq!(passes, ips.len() - 5, "every upstream address passes");
    // The same through the binary, for one address per include and one
    // outside.
    let ns = format!("127.0.0.1:{}", bind.port());
    let mut sample: Vec<String> = upstream.values().map(|v| v[0].clone()).collect();
    sample.push("ip4:203.0.113.99".into());
    for range in &sample {
        let ip = addresses(std::slice::from_ref(range))[0].to_string();
        let run = |sender: &str| {
            let out = case.run(&[
                "spf",
                "check",
                "--ip",
                &ip,
                "--sender",
                sender,
                "--nameserver",
                &ns,
            ]);
            (
                out.code,
                out.stdout.lines().next().unwrap_or("").to_string(),
            )
        };
        let (code_before, before) = run("a@orig.same.test");
        let (code_after, after) = run("a@same.test");
        assert_eq!(code_before, code_after, "{ip}");
        assert_eq!(
            before.split(' ').next(),
            after.split(' ').next(),
            "{ip}: {before} / {after}"
        );
    }

    // Drift: the ESP adds two ranges and drops one.
    bind.nsupdate_admin(
        "update delete _n1.mail.esp.test TXT\n\
         update add _n1.mail.esp.test 300 TXT \"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8:aa::/48 ip4:172.16.5.0/24 ip4:172.16.9.0/24 -all\"\n",
    );
    let drift = case.run(&["plan", "--detailed-exitcode"]).code(2).stdout;
    println!("{drift}");
    assert!(
        drift.contains("note: spf drift: _spf.mail.esp.test: +2 ranges, -1 range"),
        "{drift}"
    );
    let f = validate_spf(&case, &bind, "same.test");
    assert!(
        f.iter().any(|(s, m)| *s == Severity::Fail
            && m.starts_with("the published flattening no longer covers the upstream: 2 range(s)")),
        "{f:#?}"
    );
    // The reviewed plan is what apply writes and records.
    case.run(&["plan", "--out", "drift.json"]).ok();
    assert!(case.read("drift.json").contains("\"spf_flattening\""));
    case.run(&["apply", "drift.json"]).ok();
    case.run(&["plan", "--detailed-exitcode"]).code(0);
    let st = state(&case);
    assert!(
        st.domains["same.test"]["_spf.mail.esp.test"].contains(&"ip4:172.16.5.0/24".to_string())
    );

    // Shrink: the redirect target loses both of its ranges but one: more
    // than 50% gone needs --force.
    bind.nsupdate_admin(
        "update delete _rt.esp.test TXT\n\
         update add _rt.esp.test 300 TXT \"v=spf1 ip4:100.64.9.1 -all\"\n",
    );
    let shrink = case.run(&["plan"]).ok().stdout;
    assert!(
        shrink.contains("! unsafe: _r.esp.test shrank: 1 of its 1 recorded ranges are gone"),
        "{shrink}"
    );
    let refused = case.run(&["apply", "--auto-approve"]).code(1);
    assert!(
        refused.stderr.contains("apply needs --force"),
        "{}",
        refused.stderr
    );
    assert!(
        spf_of(&bind, "same.test")
            .unwrap()
            .contains("100.64.0.0/23")
    );
    case.run(&["apply", "--auto-approve", "--force"]).ok();
    assert!(
        spf_of(&bind, "same.test")
            .unwrap()
            .contains("ip4:100.64.9.1")
    );
    case.run(&["plan", "--detailed-exitcode"]).code(0);

    // A failing include (NXDOMAIN, then a permerror) fails the plan of
    // its domain with the reason, and apply keeps what is published.
    let published: BTreeMap<&str, Option<String>> = ["fleet.test", "auto.test", "same.test"]
        .into_iter()
        .map(|d| (d, spf_of(&bind, d)))
        .collect();
    bind.nsupdate_admin("update delete _rt.esp.test TXT\n");
    let failed = case.run(&["plan", "--detailed-exitcode"]).code(1);
    assert!(
        failed.stdout.contains(
            "error: spf.flatten: include:_r.esp.test cannot be flattened: _rt.esp.test: no such domain (NXDOMAIN): permerror"
        ),
        "{}",
        failed.stdout
    );
    case.run(&["apply", "--auto-approve"]).code(1);
    bind.nsupdate_admin("update add _rt.esp.test 300 TXT \"v=spf1 include:_bad.esp.test -all\"\n");
    let failed = case.run(&["plan"]).code(1).stdout;
    assert!(
        failed.contains("include:_r.esp.test cannot be flattened: _bad.esp.test: permerror"),
        "{failed}"
    );
    case.run(&["apply", "--auto-approve"]).code(1);
    // A server that refuses the query (here: a name BIND is not
    // authoritative for, without recursion) is a temporary failure.
    bind.nsupdate_admin(
        "update delete _rt.esp.test TXT\n\
         update add _rt.esp.test 300 TXT \"v=spf1 include:_spf.elsewhere.example -all\"\n",
    );
    let failed = case.run(&["plan"]).code(1).stdout;
    assert!(
        failed.contains("include:_r.esp.test cannot be flattened: _spf.elsewhere.example TXT: temporary DNS failure"),
        "{failed}"
    );
    case.run(&["apply", "--auto-approve"]).code(1);
    for (d, before) in &published {
        assert_eq!(&spf_of(&bind, d), before, "{d} changed");
    }
}

/// The zone whose section of a text plan holds `line`.
fn plan_zone_of<'a>(plan: &'a str, line: &str) -> &'a str {
    let mut zone = "";
    for l in plan.lines() {
        if let Some(rest) = l.strip_prefix("# ") {
            zone = rest.split(' ').next().unwrap_or("");
        }
        if l == line {
            return zone;
        }
    }
    ""
}
