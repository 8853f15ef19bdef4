//! `inspect` on the original messages embedded in real DMARC failure
//! reports (tests/data/inspect, see its SOURCES.md), with DNS served from
//! memory: the Received chain, the trust boundary, identities, and the
//! comparison with the Authentication-Results the reporter recorded.

use crate::support;
use crate::util;

use std::path::Path;

use mailauth::inspect::dmarc::DmarcResult;
use mailauth::inspect::message::Message;
use mailauth::inspect::{Inspection, Options, inspect, render_text};
use mailauth::record::dmarc::Policy;
use mailauth::spf::{MemoryDns, SpfResult};

fn embedded(file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/inspect")
        .join(file);
    let raw = std::fs::read(&path).expect("sample");
    Message::parse(&raw)
        .embedded()
        .unwrap_or_else(|| panic!("{file}: no embedded message"))
        .bytes
}

fn run(raw: &[u8], dns: &MemoryDns, trusted: &str) -> Inspection {
    let opts = Options {
        trusted: vec![trusted.to_string()],
        ip: None,
        now: 1_700_000_000,
        headers_only: false,
        ip_source: None,
    };
    inspect(raw, dns, &opts)
}

fn linkedin_dns(helo_spf: &str) -> MemoryDns {
    let mut dns = MemoryDns::new();
    dns.add_txt("_dmarc.example.com", "v=DMARC1; p=none")
        .add_txt("mail02.someserver.com", helo_spf);
    dns
}

#[test]
fn linkedin_report_both_line_endings() {
    for file in [
        "dmarc_ruf_report_linkedin.eml",
        "dmarc_ruf_report_linkedin.crlf.eml",
    ] {
        let raw = embedded(file);
        let i = run(
            &raw,
            &linkedin_dns("v=spf1 ?all"),
            "mail516.prod.linkedin.com",
        );

        assert_eq!(i.hops.len(), 3, "{file}");
        assert!(i.hops[0].trusted);
        assert!(!i.hops[1].trusted && !i.hops[2].trusted);
        assert_eq!(
            i.first_outside.as_deref(),
            Some("[10.10.10.10] (HELO mail02.someserver.com)")
        );
        assert_eq!(i.hops[1].from_ip, Some("10.156.68.14".parse().unwrap()));
        // 02:09:00Z at LinkedIn, 02:09:09Z (04:09:09 +0200) below it.
        assert_eq!(i.hops[0].delay, Some(-9));
        assert!(
            i.notes
                .iter()
                .any(|n| n.contains("9s before the hop below")),
            "{:?}",
            i.notes
        );

        // Null reverse-path: SPF checks the HELO name (RFC 7208 §2.4).
        let spf = i.spf.as_ref().expect("spf evaluated");
        assert_eq!(spf.ip, "10.10.10.10".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(spf.domain, "mail02.someserver.com");
        assert_eq!(spf.outcome.result, SpfResult::Neutral);
        let helo = i.identities.iter().find(|x| x.kind == "smtp.helo").unwrap();
        assert_eq!(helo.value, "mail02.someserver.com");
        assert!(!helo.recorded);

        assert!(i.dkim.is_empty());
        let d = i.dmarc.as_ref().expect("dmarc");
        assert_eq!(d.from_domain, "example.com");
        assert_eq!(d.result, DmarcResult::Fail);
        assert_eq!(d.policy, Some(Policy::None));
        assert!(
            d.reason.contains("SPF neutral for mail02.someserver.com"),
            "{}",
            d.reason
        );

        // LinkedIn recorded spf=neutral, dkim=none, dmarc=fail: all agree.
        assert_eq!(i.recorded.len(), 1);
        assert!(i.recorded[0].trusted);
        assert!(i.disagreements.is_empty(), "{file}: {:?}", i.disagreements);

        // With a different SPF record today, the recorded result disagrees.
        let i = run(
            &raw,
            &linkedin_dns("v=spf1 ip4:10.10.10.10 -all"),
            "mail516.prod.linkedin.com",
        );
        assert_eq!(i.spf.as_ref().unwrap().outcome.result, SpfResult::Pass);
        assert!(
            i.disagreements
                .iter()
                .any(|x| x.contains("spf=neutral") && x.contains("now gives pass")),
            "{:?}",
            i.disagreements
        );
        let text = render_text(&i);
        assert!(text.contains("Disagreements"), "{text}");
    }
}

#[test]
fn domain_de_report_without_envelope_sender() {
    let raw = embedded(
        "DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml",
    );
    let mut dns = MemoryDns::new();
    dns.add_txt("_dmarc.domain.de", "v=DMARC1; p=none");
    let i = run(&raw, &dns, "mailrelay.de");
    assert_eq!(i.hops.len(), 1);
    assert_eq!(i.hops[0].from_ip, Some("10.10.10.10".parse().unwrap()));
    assert_eq!(
        i.hops[0].from_rdns.as_deref(),
        Some("Servernameone.domain.local")
    );
    assert_eq!(i.from_domain.as_deref(), Some("domain.de"));
    assert!(i.spf.is_none());
    assert!(
        i.notes.iter().any(|n| n.contains("no envelope sender")),
        "{:?}",
        i.notes
    );
    let d = i.dmarc.as_ref().unwrap();
    // The report says: dmarc=fail (p=none).
    assert_eq!(
        (d.result, d.policy),
        (DmarcResult::Fail, Some(Policy::None))
    );
}

#[test]
fn netease_report_internal_hop_and_no_dmarc_record() {
    let raw = embedded("[Netease DMARC Failure Report] Rent Reminder.eml");
    let dns = MemoryDns::new();
    let i = run(&raw, &dns, ".sendgrid.net");
    assert_eq!(i.hops.len(), 2);
    // The filter hop has no `from`: a hand-off inside SendGrid.
    assert!(i.hops[0].trusted && i.hops[1].trusted);
    assert_eq!(i.boundary, Some(1));
    assert_eq!(i.hops[1].from_ip, Some("198.190.14.10".parse().unwrap()));
    assert_eq!(i.from_domain.as_deref(), Some("cardinal.com"));
    let d = i.dmarc.as_ref().unwrap();
    assert_eq!(d.result, DmarcResult::None);
    assert!(d.reason.contains("no DMARC record"), "{}", d.reason);
}

#[test]
fn cli_inspects_the_embedded_message() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/inspect/dmarc_ruf_report_linkedin.eml");
    let soa =
        "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";
    let example = format!("{soa}_dmarc IN TXT \"v=DMARC1; p=quarantine\"\n");
    let someserver = format!("{soa}mail02 IN TXT \"v=spf1 ?all\"\n");
    let Some(bind) = support::bind::Bind::try_start(&[
        ("example.com", example.as_str()),
        ("someserver.com", someserver.as_str()),
    ]) else {
        return;
    };
    let out = util::Cmd::new()
        .args([
            "inspect",
            "--embedded",
            "--json",
            "--trusted",
            "mail516.prod.linkedin.com",
        ])
        .arg("--nameserver")
        .arg(format!("127.0.0.1:{}", bind.port()))
        .arg(&file)
        .dir(std::env::temp_dir())
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["from_domain"], "example.com");
    assert_eq!(json["spf"]["outcome"]["result"], "neutral");
    assert_eq!(json["dmarc"]["result"], "fail");
    assert_eq!(json["dmarc"]["policy"], "quarantine");
    assert_eq!(json["hops"][0]["by"], "mail516.prod.linkedin.com");
    // LinkedIn recorded p=none at the time; the result words still agree.
    assert_eq!(json["disagreements"], serde_json::json!([]));

    let out = util::mailauth(["inspect", "--embedded"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .dir(std::env::temp_dir())
        .output();
    assert_eq!(out.status.code(), Some(1));
}

/// `inspect --failure-report ID` reads the original header fields of a
/// stored failure report and checks SPF for the reporter's Source-IP.
#[test]
fn cli_inspects_a_stored_failure_report() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/inspect/dmarc_ruf_report_linkedin.eml");
    let soa =
        "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";
    let example = format!("{soa}_dmarc IN TXT \"v=DMARC1; p=reject\"\n");
    // Passes only for the reporter's Source-IP, not for the address the
    // trusted Received field recorded.
    let someserver = format!("{soa}mail02 IN TXT \"v=spf1 ip4:10.10.10.10 -all\"\n");
    let Some(bind) = support::bind::Bind::try_start(&[
        ("example.com", example.as_str()),
        ("someserver.com", someserver.as_str()),
    ]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("reports.db");
    let mailauth = |args: &[&str]| util::mailauth(args).dir(dir.path()).output();
    let db_arg = db.to_str().expect("utf-8 path");
    let out = mailauth(&[
        "reports",
        "--db",
        db_arg,
        "ingest",
        file.to_str().expect("path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = mailauth(&["reports", "--db", db_arg, "list", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list json");
    // The id as listed (`failure:N`) is what --failure-report takes.
    let id_arg = rows
        .as_array()
        .and_then(|r| r.iter().find(|r| r["kind"] == "failure"))
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("no failure report listed: {rows}"))
        .to_owned();
    let id = id_arg.strip_prefix("failure:").expect("failure:N");
    let ns = format!("127.0.0.1:{}", bind.port());
    let out = mailauth(&[
        "inspect",
        "--failure-report",
        &id_arg,
        "--db",
        db_arg,
        "--json",
        "--trusted",
        "mail516.prod.linkedin.com",
        "--nameserver",
        &ns,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let note = json["notes"][0].as_str().unwrap_or_default();
    assert!(
        note.starts_with(&format!("failure report #{id} from ")),
        "{note}"
    );
    assert!(note.contains("example.com"), "{note}");
    assert_eq!(json["from_domain"], "example.com");
    assert_eq!(json["spf"]["ip"], "10.10.10.10");
    assert_eq!(json["spf"]["ip_source"], "the failure report's Source-IP");
    assert_eq!(json["dmarc"]["policy"], "reject");

    // Unknown id, missing database: errors, exit 1, nothing created.
    let out = mailauth(&["inspect", "--failure-report", "999", "--db", db_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no failure report #999"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = dir.path().join("missing.db");
    let out = mailauth(&[
        "inspect",
        "--failure-report",
        "1",
        "--db",
        missing.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!missing.exists(), "inspect created a database");
}

#[test]
fn ip_override_replaces_the_recorded_address() {
    let raw = embedded("dmarc_ruf_report_linkedin.eml");
    let opts = Options {
        trusted: vec!["mail516.prod.linkedin.com".into()],
        ip: Some("203.0.113.5".parse().unwrap()),
        now: 1_700_000_000,
        headers_only: false,
        ip_source: None,
    };
    let i = inspect(&raw, &linkedin_dns("v=spf1 ip4:10.10.10.10 -all"), &opts);
    let spf = i.spf.as_ref().unwrap();
    assert_eq!(spf.ip_source, "--ip");
    assert_eq!(spf.outcome.result, SpfResult::Fail);
    let ip = i.identities.iter().find(|x| x.kind == "client.ip").unwrap();
    assert_eq!(ip.value, "203.0.113.5");
    assert!(
        !ip.recorded,
        "an address given on the command line is not recorded by a server"
    );
}
