//! The whole pipeline through the binary against a real BIND over RFC 2136
//! with TSIG: plan → apply → plan shows no changes, records served, a stale
//! plan refused, a primary refusing AXFR read name by name, a wrong key
//! rejected with a clear message, and many zones read and written over a
//! few reused connections.

use crate::support;
use crate::util;

use std::sync::atomic::Ordering;

use mailauth::provider::rfc2136::MAX_CONNECTIONS;
use support::TcpProxy;
use support::bind::Bind;
use util::Case;

const ZONE: &str = "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 900 1209600 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n@ IN MX 10 mx1\nmx1 IN A 192.0.2.25\n@ IN TXT \"google-site-verification=abc\"\n";

fn config(bind: &Bind, secret_file: &str) -> String {
    format!(
        "provider:\n  kind: rfc2136\n  server: 127.0.0.1:{}\n  key_name: {}\n  algorithm: {}\n  secret_file: {secret_file}\n\
         domains:\n  example.test:\n    spf: {{ mx: true, all: softfail }}\n    dmarc: {{ p: quarantine, rua: [mailto:dmarc@example.test] }}\n    dkim:\n      selectors:\n        - {{ name: esp, cname: esp.dkim.example.net }}\n",
        bind.port(),
        bind.tsig().name,
        bind.tsig().algorithm,
    )
}

#[test]
fn plan_apply_replan_against_bind() {
    let Some(bind) = Bind::try_start(&[("example.test", ZONE)]) else {
        return;
    };
    let secret = bind.secret_file(bind.tsig());
    let case = Case::new().config(&config(&bind, &secret.display().to_string()));
    let plan = case.run(&["plan", "--detailed-exitcode"]).code(2).stdout;
    assert!(plan.contains("+ _dmarc.example.test TXT"), "{plan}");
    assert!(
        plan.contains(&format!("(rfc2136:127.0.0.1:{})", bind.port())),
        "{plan}"
    );
    case.run(&["apply", "--auto-approve"]).ok();
    assert_eq!(
        bind.dig_short("_dmarc.example.test", "TXT").trim(),
        "\"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.test\""
    );
    let apex = bind.dig_short("example.test", "TXT");
    assert!(apex.contains("\"v=spf1 mx ~all\""), "{apex}");
    assert!(apex.contains("\"google-site-verification=abc\""), "{apex}");
    assert_eq!(
        bind.dig_short("esp._domainkey.example.test", "CNAME")
            .trim(),
        "esp.dkim.example.net."
    );
    case.run(&["plan", "--detailed-exitcode"]).code(0);

    // A saved plan goes stale when someone else changes the zone.
    let case = case.config(
        &config(&bind, &secret.display().to_string()).replace("p: quarantine", "p: reject"),
    );
    case.run(&["plan", "--out", "plan.json"]).ok();
    bind.nsupdate_admin("update add www.example.test. 300 IN A 192.0.2.80\nsend\n");
    let r = case.run(&["apply", "plan.json"]).code(1);
    assert!(
        r.stderr.contains("changed since the plan read it"),
        "{}",
        r.stderr
    );
    assert!(
        bind.dig_short("_dmarc.example.test", "TXT")
            .contains("p=quarantine")
    );
}

/// A primary that refuses AXFR to mailauth's key: plan reads the zone name
/// by name (the SOA, the names mailauth owns, and those its registry
/// lists), apply writes, the re-plan is empty, and the apex TXT mailauth
/// does not own stays.
#[test]
fn a_primary_refusing_transfers_is_read_name_by_name() {
    let Some(bind) = Bind::try_start_refusing_transfers(&[("example.test", ZONE)]) else {
        return;
    };
    let key = bind.tsig();
    let axfr = std::process::Command::new("dig")
        .args([
            "-p",
            &bind.port().to_string(),
            "@127.0.0.1",
            "example.test",
            "AXFR",
            "-y",
            &format!("{}:{}:{}", key.algorithm, key.name, key.secret),
        ])
        .output()
        .expect("run dig");
    let axfr = String::from_utf8_lossy(&axfr.stdout);
    assert!(axfr.contains("Transfer failed"), "AXFR not refused: {axfr}");

    let secret = bind.secret_file(key);
    let case = Case::new().config(&config(&bind, &secret.display().to_string()));
    let plan = case.run(&["plan", "--detailed-exitcode"]).code(2).stdout;
    assert!(plan.contains("+ _dmarc.example.test TXT"), "{plan}");
    case.run(&["apply", "--auto-approve"]).ok();
    assert_eq!(
        bind.dig_short("_dmarc.example.test", "TXT").trim(),
        "\"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.test\""
    );
    let apex = bind.dig_short("example.test", "TXT");
    assert!(apex.contains("\"v=spf1 mx ~all\""), "{apex}");
    assert!(apex.contains("\"google-site-verification=abc\""), "{apex}");
    case.run(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn a_wrong_tsig_key_is_a_clear_error_and_changes_nothing() {
    let Some(bind) = Bind::try_start(&[("example.test", ZONE)]) else {
        return;
    };
    let case = Case::new().file(
        "wrong.key",
        "c2VjcmV0LXRoYXQtaXMtd3JvbmctMzItYnl0ZXMtbG9uZyE=\n",
    );
    let case = case.config(&config(&bind, "wrong.key"));
    let r = case.run(&["plan"]).code(1);
    assert!(
        r.stdout.contains("TSIG key rejected by server"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(bind.dig_short("_dmarc.example.test", "TXT").trim(), "");
}

/// Issue 21: one TCP connection per zone (1,000 for 1,000 zones, 16 connects
/// at a time) overflowed BIND's listen queue and stalled plans for the 1 s
/// SYN retransmission timeout. Plan, apply and re-plan of 40 zones now go
/// over at most `MAX_CONNECTIONS` connections, reused from zone to zone
/// (AXFRs and UPDATEs alike), never more open at once.
#[test]
fn many_zones_share_a_few_connections() {
    const ZONES: usize = 40;
    let names: Vec<String> = (0..ZONES).map(|i| format!("z{i:02}.test")).collect();
    let zones: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), ZONE)).collect();
    let Some(bind) = Bind::try_start(&zones) else {
        return;
    };
    let proxy = TcpProxy::start(bind.port(), 0);
    let secret = bind.secret_file(bind.tsig());
    let mut cfg = format!(
        "provider:\n  kind: rfc2136\n  server: 127.0.0.1:{}\n  key_name: {}\n  algorithm: {}\n  secret_file: {}\ndomains:\n",
        proxy.port(),
        bind.tsig().name,
        bind.tsig().algorithm,
        secret.display(),
    );
    for n in &names {
        cfg.push_str(&format!(
            "  {n}:\n    spf: {{ mx: true, all: fail }}\n    dmarc: {{ p: reject }}\n"
        ));
    }
    let case = Case::new().config(&cfg);
    let plan = case.run(&["plan", "--json"]).ok().stdout;
    let plan: serde_json::Value = serde_json::from_str(&plan).expect("plan JSON");
    let zones = plan["zones"].as_array().expect("zones");
    assert_eq!(zones.len(), ZONES);
    for z in zones {
        assert!(z["error"].is_null(), "{z}");
        assert_eq!(z["changes"].as_array().map(Vec::len), Some(3), "{z}");
    }
    let after_plan = proxy.connections.load(Ordering::SeqCst);
    assert!(
        (1..=MAX_CONNECTIONS).contains(&after_plan),
        "{after_plan} connections for {ZONES} zone transfers"
    );

    case.run(&["apply", "--auto-approve"]).ok();
    assert_eq!(
        bind.dig_short("_dmarc.z39.test", "TXT").trim(),
        "\"v=DMARC1; p=reject\""
    );
    case.run(&["plan", "--detailed-exitcode"]).code(0);
    // Two more processes (apply re-reads each zone after writing it, the
    // re-plan reads them again): each opens at most MAX_CONNECTIONS.
    let total = proxy.connections.load(Ordering::SeqCst);
    assert!(
        total <= after_plan + 2 * MAX_CONNECTIONS,
        "{total} connections for 3 runs over {ZONES} zones"
    );
    let peak = proxy.peak_open.load(Ordering::SeqCst);
    assert!(
        peak <= MAX_CONNECTIONS,
        "{peak} connections open at once (limit {MAX_CONNECTIONS})"
    );
}
