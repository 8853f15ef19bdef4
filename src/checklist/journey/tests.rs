use super::*;
use crate::checklist::{ConfigDoc, ConfigFacts, ReportFacts, plan_lines};
use crate::diff::Desired;
use crate::record::Name;
use crate::reports::store::Volume;
use crate::validate::DomainReport;

/// A domain outside the config whose live DNS passes every check the
/// findings list, with `dmarc` published and `days`/`volume` of data.
fn facts(dmarc: &str, days: i64, messages: i64, pass: i64) -> Facts {
    let domain = Name::parse("shop.test").unwrap();
    let findings = vec![
        Finding::pass(Check::Mx, "MX 10 mx.shop.test"),
        Finding::pass(Check::Spf, "one record"),
        Finding::pass(Check::Dmarc, "one record"),
    ];
    Facts {
        domain: domain.clone(),
        doc: ConfigDoc::empty(),
        in_config: false,
        parked: false,
        desired: Desired {
            origin: domain,
            sets: Vec::new(),
            spf: None,
        },
        config: ConfigFacts::default(),
        live: DomainReport {
            domain: "shop.test".into(),
            status: Severity::Pass,
            findings,
        },
        dmarc: Some(dmarc.parse().unwrap()),
        spf: Some("v=spf1 mx -all".parse().unwrap()),
        reports: Some(ReportFacts {
            days,
            volume: Volume {
                messages,
                dmarc_pass: pass,
            },
            failing: Vec::new(),
            forwarded: 0,
        }),
    }
}

fn status(c: &Checklist, n: u8) -> Status {
    c.item(n).unwrap().status
}

#[test]
fn quarantine_advances_to_reject_keeping_live_tags() {
    let f = facts(
        "v=DMARC1; p=quarantine; rua=mailto:d@shop.test",
        30,
        1000,
        995,
    );
    let c = compute(&f, &Settings::new(0));
    assert_eq!(status(&c, 7), Status::Done);
    assert_eq!(status(&c, 8), Status::Open);
    let Some(NextAction::Config(p)) = &c.item(8).unwrap().next else {
        panic!("item 8 proposes no config change: {:?}", c.item(8));
    };
    // The domain is not in the config: the proposal carries the live
    // record's tags, so the plan only raises the policy.
    assert!(
        p.yaml.contains("p: reject") && p.yaml.contains("rua: [mailto:d@shop.test]"),
        "{}",
        p.yaml
    );
    let lines = plan_lines(&p.plan);
    assert!(
        lines.contains(&"+     \"v=DMARC1; p=reject; rua=mailto:d@shop.test\"".to_string()),
        "{lines:#?}"
    );
    // BIMI is ready under an enforced quarantine.
    assert_eq!(status(&c, 11), Status::Done);
    // A broken BIMI record, as validate reports it, keeps the item open
    // with validate's message.
    let mut broken = f.clone();
    broken.live.findings.push(Finding::fail(
        Check::Bimi,
        "default._bimi.shop.test: BIMI tag `l` has invalid value `http://x`",
        "publish `v=BIMI1; l=https://…/logo.svg; a=https://…/vmc.pem`",
    ));
    let c = compute(&broken, &Settings::new(0));
    let item = c.item(11).unwrap();
    assert_ne!(item.status, Status::Done, "{item:?}");
    assert!(format!("{item:?}").contains("BIMI tag `l`"), "{item:?}");
}

#[test]
fn thresholds_block_policy_steps() {
    let s = Settings::new(0);
    // 97.9%: below 98%.
    let c = compute(
        &facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 30, 1000, 979),
        &s,
    );
    assert_eq!(status(&c, 6), Status::Open);
    assert_eq!(status(&c, 7), Status::Blocked);
    assert!(c.item(7).unwrap().why.as_deref().unwrap().contains("97.9%"));
    // 98.0% exactly passes.
    let c = compute(
        &facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 30, 1000, 980),
        &s,
    );
    assert_eq!(status(&c, 7), Status::Open);
    // Without DKIM (item 3) the journey does not advance: DMARC that
    // passes through SPF alone breaks on forwarding.
    assert_eq!(c.next_step, Some(3));
    // Enough alignment, too few days.
    let c = compute(
        &facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 13, 1000, 1000),
        &s,
    );
    assert_eq!(status(&c, 5), Status::Open);
    assert_eq!(status(&c, 7), Status::Blocked);
    // t=y under quarantine with bad data stays.
    let c = compute(
        &facts(
            "v=DMARC1; p=quarantine; t=y; rua=mailto:d@shop.test",
            30,
            100,
            50,
        ),
        &s,
    );
    assert_eq!(status(&c, 7), Status::Blocked);
    assert_eq!(status(&c, 11), Status::Blocked, "t=y is not enforcing");
}

#[test]
fn temporary_dns_failure_blocks_instead_of_proposing() {
    let mut f = facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 30, 10, 10);
    f.live.findings.retain(|x| x.check != Check::Spf);
    f.live.findings.push(Finding::new(
        Check::Spf,
        Severity::TempError,
        "apex TXT query: timed out",
    ));
    let c = compute(&f, &Settings::new(0));
    assert_eq!(status(&c, 2), Status::Blocked);
    assert!(c.item(2).unwrap().next.is_none());
    assert!(
        c.item(2)
            .unwrap()
            .why
            .as_deref()
            .unwrap()
            .contains("timed out")
    );
}

#[test]
fn spf_over_the_lookup_limit_proposes_flatten_auto() {
    let mut f = facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 30, 10, 10);
    f.config.has_spf = true;
    f.live.findings.retain(|x| x.check != Check::Spf);
    f.live.findings.push(Finding::fail(
        Check::Spf,
        "12 DNS-querying terms in the tree; receivers stop at 10 and return permerror (RFC 7208 §4.6.4)",
        "flatten or drop includes",
    ));
    let c = compute(&f, &Settings::new(0));
    let item = c.item(2).unwrap();
    assert_eq!(item.status, Status::Open);
    let Some(NextAction::Config(p)) = &item.next else {
        panic!("item 2 proposes no config change: {item:?}");
    };
    assert!(p.yaml.contains("flatten: auto"), "{}", p.yaml);
    assert!(p.note.as_deref().unwrap().contains("mailauth plan"));
    assert!(
        item.why
            .as_deref()
            .unwrap()
            .contains("12 DNS-querying terms")
    );
}

#[test]
fn rua_without_read_evidence_stays_open() {
    let mut f = facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 0, 0, 0);
    let mut s = Settings::new(0);
    let c = compute(&f, &s);
    assert_eq!(status(&c, 4), Status::Open);
    s.reads = vec!["mailto:D@shop.test".into()];
    let c = compute(&f, &s);
    assert_eq!(status(&c, 4), Status::Done, "{:?}", c.item(4));
    s.reads.clear();
    f.reports = Some(ReportFacts {
        days: 1,
        ..ReportFacts::default()
    });
    assert_eq!(status(&compute(&f, &s), 4), Status::Done);
}

#[test]
fn forwarded_volume_does_not_block_alignment() {
    let mut f = facts("v=DMARC1; p=none; rua=mailto:d@shop.test", 30, 1000, 900);
    let s = Settings::new(0);
    assert_eq!(status(&compute(&f, &s), 6), Status::Open);
    if let Some(r) = f.reports.as_mut() {
        r.forwarded = 95;
    }
    let c = compute(&f, &s);
    assert_eq!(status(&c, 6), Status::Done, "{:?}", c.item(6));
    assert!(
        c.item(6)
            .unwrap()
            .evidence
            .iter()
            .any(|e| e.starts_with("95 failing messages are forwarding")),
        "{:?}",
        c.item(6)
    );
}
