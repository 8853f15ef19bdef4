//! `mailauth checklist` for fixture domains at each stage of the onboarding
//! journey (tests/data/checklist), served by a real BIND, with aggregate
//! report data generated here and ingested into the report store. Each
//! stage checks which items are done and which next step is proposed, and
//! compares the text and Markdown output with golden files
//! (tests/golden/checklist; `MAILAUTH_BLESS=1` rewrites them).

use crate::support;
use crate::util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailauth::checklist::{
    self, Checklist, NextAction, Settings, Sources, Status, plan_lines, render,
};
use mailauth::dns::Resolver;
use mailauth::record::Name;
use mailauth::reports::IngestLimits;
use mailauth::reports::store::{ChecklistQueries, ReportStore, SqliteStore};
use mailauth::workspace::Workspace;
use support::bind::Bind;

/// 2026-11-27T00:00:00Z: reports cover the days before it.
const NOW: i64 = 1_795_737_600;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/checklist")
}

fn zones() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(data().join("zones")).expect("zone dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".zone"))
            .expect("zone file name")
            .to_string();
        out.push((name, std::fs::read_to_string(&path).expect("zone text")));
    }
    out.sort();
    out
}

fn start_bind() -> Option<Bind> {
    let z = zones();
    let refs: Vec<(&str, &str)> = z.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    Bind::try_start_loaded(&refs)
}

/// One row of a generated aggregate report.
struct Row {
    ip: &'static str,
    count: u64,
    dkim_pass: bool,
    spf_pass: bool,
    spf_domain: &'static str,
    /// `(d=, s=, result)` of the DKIM signature, if any.
    dkim: Option<(&'static str, &'static str, &'static str)>,
}

fn row(ip: &'static str, count: u64, pass: bool) -> Row {
    Row {
        ip,
        count,
        dkim_pass: pass,
        spf_pass: pass,
        spf_domain: "",
        dkim: None,
    }
}

/// An RFC 7489 Appendix C aggregate report for `domain` covering the day
/// that starts at `begin`.
fn aggregate_xml(domain: &str, p: &str, begin: i64, rows: &[Row]) -> String {
    let verdict = |b: bool| if b { "pass" } else { "fail" };
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n <report_metadata>\n  <org_name>receiver.test</org_name>\n  <email>dmarc@receiver.test</email>\n  <report_id>{domain}-{begin}</report_id>\n  <date_range><begin>{begin}</begin><end>{end}</end></date_range>\n </report_metadata>\n <policy_published>\n  <domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>{p}</p><pct>100</pct>\n </policy_published>\n",
        end = begin + 86_399
    );
    for r in rows {
        let spf_domain = if r.spf_domain.is_empty() {
            domain
        } else {
            r.spf_domain
        };
        x.push_str(&format!(
            " <record>\n  <row><source_ip>{}</source_ip><count>{}</count><policy_evaluated><disposition>none</disposition><dkim>{}</dkim><spf>{}</spf></policy_evaluated></row>\n  <identifiers><header_from>{domain}</header_from></identifiers>\n  <auth_results>",
            r.ip,
            r.count,
            verdict(r.dkim_pass),
            verdict(r.spf_pass)
        ));
        match r.dkim {
            Some((d, s, result)) => x.push_str(&format!(
                "<dkim><domain>{d}</domain><selector>{s}</selector><result>{result}</result></dkim>"
            )),
            None if r.dkim_pass => x.push_str(&format!(
                "<dkim><domain>{domain}</domain><selector>s2026</selector><result>pass</result></dkim>"
            )),
            None => {}
        }
        let spf_result = if r.spf_domain.is_empty() {
            verdict(r.spf_pass)
        } else {
            "pass"
        };
        x.push_str(&format!(
            "<spf><domain>{spf_domain}</domain><result>{spf_result}</result></spf></auth_results>\n </record>\n"
        ));
    }
    x.push_str("</feedback>\n");
    x
}

/// Ingests one report a day for the `days` days before [`NOW`].
fn ingest(store: &mut SqliteStore, domain: &str, p: &str, days: i64, rows: &[Row]) {
    for day in 1..=days {
        let begin = NOW - day * 86_400;
        let xml = aggregate_xml(domain, p, begin, rows);
        let found = store
            .ingest_item(
                &format!("{domain}-{day}.xml"),
                xml.as_bytes(),
                &IngestLimits::default(),
            )
            .expect("database")
            .unwrap_or_else(|e| panic!("generated report rejected: {e}\n{xml}"));
        assert_eq!(found.len(), 1, "one report per item");
    }
}

fn fill(store: &mut SqliteStore) {
    let legit = || Row {
        ip: "198.51.100.10",
        count: 90,
        dkim_pass: true,
        spf_pass: true,
        spf_domain: "",
        dkim: None,
    };
    ingest(
        store,
        "monitor.test",
        "none",
        5,
        &[row("198.51.100.10", 100, true)],
    );
    ingest(
        store,
        "leaky.test",
        "none",
        20,
        &[
            legit(),
            // Signs with our selector, but the signature breaks.
            Row {
                ip: "203.0.113.9",
                count: 6,
                dkim_pass: false,
                spf_pass: false,
                spf_domain: "",
                dkim: Some(("leaky.test", "s2026", "fail")),
            },
            // An ESP in our SPF include, bouncing to its own domain.
            Row {
                ip: "198.51.100.20",
                count: 4,
                dkim_pass: false,
                spf_pass: false,
                spf_domain: "bounce.esp.example",
                dkim: None,
            },
        ],
    );
    ingest(
        store,
        "ready.test",
        "none",
        20,
        &[
            row("198.51.100.10", 1000, true),
            row("203.0.113.50", 5, false),
        ],
    );
    ingest(
        store,
        "testing.test",
        "quarantine",
        20,
        &[row("198.51.100.10", 200, true)],
    );
    ingest(
        store,
        "enforced.test",
        "reject",
        20,
        &[row("198.51.100.10", 300, true)],
    );
}

struct Env {
    _bind: Bind,
    addr: SocketAddr,
    resolver: Resolver,
    ws: Workspace,
    store: SqliteStore,
}

impl Env {
    fn checklist(&self, domain: &str, with_store: bool) -> Checklist {
        let settings = Settings::new(NOW);
        let src = Sources {
            ws: Some(&self.ws),
            resolver: &self.resolver,
            store: with_store.then_some(&self.store as &dyn ChecklistQueries),
            senders: with_store
                .then_some(&self.store as &dyn mailauth::reports::dashq::DashboardQueries),
        };
        let domain = Name::parse(domain).expect("name");
        let facts = checklist::gather(&src, &domain, &settings).expect("facts");
        checklist::compute(&facts, &settings)
    }
}

fn statuses(c: &Checklist) -> Vec<(u8, Status)> {
    c.items.iter().map(|i| (i.number, i.status)).collect()
}

fn expect(c: &Checklist, want: &[Status; 11], next: Option<u8>) {
    let got: Vec<Status> = c.items.iter().map(|i| i.status).collect();
    assert_eq!(
        got,
        want.to_vec(),
        "{}: statuses\n{}",
        c.domain,
        render::render_text(c)
    );
    assert_eq!(
        c.next_step,
        next,
        "{}: next step\n{}",
        c.domain,
        render::render_text(c)
    );
}

/// The plan lines of the proposed change of item `n`.
fn proposal(c: &Checklist, n: u8) -> (String, Vec<String>) {
    match &c.item(n).and_then(|i| i.next.clone()) {
        Some(NextAction::Config(p)) => {
            assert_eq!(
                p.error, None,
                "{}: item {n} proposal does not plan",
                c.domain
            );
            (p.yaml.clone(), plan_lines(&p.plan))
        }
        other => panic!(
            "{}: item {n}: expected a config change, got {other:?}",
            c.domain
        ),
    }
}

fn golden(c: &Checklist) {
    util::golden(
        &format!("checklist/{}.txt", c.domain),
        &render::render_text(c),
    );
    util::golden(
        &format!("checklist/{}.md", c.domain),
        &render::render_markdown(c),
    );
}

use Status::{Blocked as B, Done as D, NotApplicable as NA, Open as O};

#[test]
fn journey_stages_against_bind() {
    let Some(bind) = start_bind() else { return };
    let addr = SocketAddr::from(([127, 0, 0, 1], bind.port()));
    let resolver = Resolver::with_nameservers(&[addr], Duration::from_secs(2)).expect("resolver");
    let ws = Workspace::load(&data().join("mailauth.yaml")).expect("fixture config loads");
    let mut store = SqliteStore::open_in_memory().expect("store");
    fill(&mut store);
    let env = Env {
        _bind: bind,
        addr,
        resolver,
        ws,
        store,
    };

    // Not in the config: MX and SPF are there, DKIM and DMARC are not.
    // Publishing DMARC p=none comes first: it starts the data collection.
    let c = env.checklist("fresh.test", true);
    expect(&c, &[D, D, O, O, B, B, B, B, B, O, B], Some(4));
    let (yaml, plan) = proposal(&c, 4);
    assert!(
        yaml.contains("p: none") && yaml.contains("rua: [mailto:dmarc-reports@fresh.test]"),
        "{yaml}"
    );
    assert!(
        plan.iter().any(|l| l == "+ _dmarc.fresh.test TXT")
            && plan
                .iter()
                .any(|l| l.contains("\"v=DMARC1; p=none; rua=mailto:dmarc-reports@fresh.test\"")),
        "{plan:#?}"
    );
    golden(&c);

    // Monitoring with 5 days of data: wait for 14.
    let c = env.checklist("monitor.test", true);
    expect(&c, &[D, D, D, D, O, D, B, B, O, O, B], Some(5));
    assert!(
        matches!(&c.item(5).unwrap().next, Some(NextAction::Wait { text }) if text.contains("9 more day")),
        "{:?}",
        c.item(5)
    );
    assert!(
        c.item(7)
            .unwrap()
            .why
            .as_deref()
            .unwrap_or("")
            .contains("5 of the 14 days")
    );
    golden(&c);

    // Without a report database the data items say what is missing.
    let c = env.checklist("monitor.test", false);
    assert_eq!(c.item(5).unwrap().status, B);
    assert!(
        c.item(7)
            .unwrap()
            .why
            .as_deref()
            .unwrap_or("")
            .contains("no report database")
    );
    // ... and the rua mailbox is not known to be read.
    assert_eq!(c.item(4).unwrap().status, O, "{}", render::render_text(&c));

    // 90% aligned: the failing sources are attributed.
    let c = env.checklist("leaky.test", true);
    expect(&c, &[D, D, D, D, D, O, B, B, O, O, B], Some(6));
    let ev = c.item(6).unwrap().evidence.join("\n");
    assert!(ev.contains("1260 of 1400 messages (90.0%)"), "{ev}");
    assert!(
        ev.contains("203.0.113.9") && ev.contains("our selector `s2026`"),
        "{ev}"
    );
    assert!(
        ev.contains("198.51.100.20")
            && ev.contains("via `include:_spf.provider.test` (spf.include)")
            && ev.contains("bounce.esp.example"),
        "{ev}"
    );
    golden(&c);

    // 99.5% aligned over 20 days: quarantine with t=y.
    let c = env.checklist("ready.test", true);
    expect(&c, &[D, D, D, D, D, D, O, B, O, O, B], Some(7));
    let (yaml, plan) = proposal(&c, 7);
    assert_eq!(
        yaml,
        "domains:\n  ready.test:\n    dmarc:\n      p: quarantine\n      t: true\n"
    );
    assert_eq!(
        plan,
        vec![
            "~ _dmarc.ready.test TXT",
            "-     \"v=DMARC1; p=none; rua=mailto:dmarc@ready.test\"",
            "+     \"v=DMARC1; p=quarantine; t=y; rua=mailto:dmarc@ready.test\"",
        ]
    );
    golden(&c);

    // Quarantine in testing mode, clean data: leave testing mode.
    let c = env.checklist("testing.test", true);
    expect(&c, &[D, D, D, D, D, D, O, B, O, O, B], Some(7));
    let (_, plan) = proposal(&c, 7);
    assert!(
        plan.iter()
            .any(|l| l.ends_with("p=quarantine; rua=mailto:dmarc@testing.test\"")),
        "{plan:#?}"
    );
    golden(&c);

    // p=reject with sp=none: subdomains next (np inherits sp=none).
    let c = env.checklist("enforced.test", true);
    expect(&c, &[D, D, D, D, D, D, D, D, O, O, B], Some(9));
    let (yaml, plan) = proposal(&c, 9);
    assert!(yaml.contains("np: reject"), "{yaml}");
    assert!(
        plan.iter().any(|l| l.contains("sp=none; np=reject")),
        "{plan:#?}"
    );
    golden(&c);

    // Parked and published: nothing left.
    let c = env.checklist("parked.test", true);
    expect(&c, &[D, D, D, D, NA, NA, D, D, D, NA, NA], None);
    assert!(render::render_text(&c).contains("Nothing left to do."));
    golden(&c);

    // No MX, no mail in the reports: the parked profile in one step.
    let c = env.checklist("idle.test", true);
    assert_eq!(c.next_step, Some(1), "{}", render::render_text(&c));
    let (yaml, plan) = proposal(&c, 1);
    assert!(
        yaml.contains("parked: true") && yaml.contains("dmarc: null"),
        "{yaml}"
    );
    for want in [
        "+ idle.test MX",
        "+     0 .",
        "+ idle.test TXT",
        "+     \"v=spf1 -all\"",
        "+ *._domainkey.idle.test TXT",
        "~ _dmarc.idle.test TXT",
    ] {
        assert!(
            plan.iter().any(|l| l == want),
            "missing {want:?} in {plan:#?}"
        );
    }
    for i in &c.items {
        assert_ne!(
            i.status, B,
            "item {} blocked for a parked candidate",
            i.number
        );
    }
    golden(&c);
    assert_eq!(statuses(&c).len(), 11);

    cli(&env);
}

/// The binary: `--reads`, `--db`, and the HTML and JSON formats.
fn cli(env: &Env) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("reports.db");
    {
        let mut store = SqliteStore::open(&db).expect("db");
        ingest(
            &mut store,
            "ready.test",
            "none",
            15,
            &[row("198.51.100.10", 50, true)],
        );
    }
    let case = util::Case::new().env("MAILAUTH_NOW", &NOW.to_string());
    let config = data().join("mailauth.yaml");
    let config = config.to_str().expect("UTF-8 path");
    let (addr, db_arg) = (env.addr.to_string(), db.to_str().expect("UTF-8 path"));
    let run = |args: &[&str]| {
        let mut argv = vec!["--config", config, "checklist"];
        argv.extend_from_slice(args);
        argv.extend(["--nameserver", &addr, "--db", db_arg]);
        let out = case.run(&argv);
        let stdout = out.stdout;
        assert!(out.code == 0, "{args:?}: {}\n{stdout}", out.stderr);
        stdout
    };
    let json: serde_json::Value =
        serde_json::from_str(&run(&["ready.test", "--format", "json"])).expect("JSON output");
    assert_eq!(json["next_step"], 7);
    assert_eq!(json["items"][6]["next"]["kind"], "config");
    assert_eq!(json["items"][4]["status"], "done");
    let html = run(&["ready.test", "--format", "html"]);
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("p: quarantine"),
        "{html}"
    );
    // A rua address given with --reads counts as read, even with no data.
    let text = run(&["monitor.test", "--reads", "dmarc@monitor.test"]);
    assert!(
        text.contains("rua dmarc@monitor.test is read by mailauth"),
        "{text}"
    );
    let text = run(&["monitor.test"]);
    assert!(text.contains("[ ]  4."), "{text}");
    // Without a config file the domain is simply not in the config.
    let absent = dir.path().join("absent.yaml");
    let out = case.run(&[
        "--config",
        absent.to_str().expect("UTF-8 path"),
        "checklist",
        "fresh.test",
        "--format",
        "markdown",
        "--nameserver",
        &addr,
        "--db",
        db_arg,
    ]);
    let md = &out.stdout;
    assert!(out.code == 0, "{}", out.stderr);
    assert!(
        md.starts_with("### mailauth checklist: fresh.test (not in the config)")
            && md.contains("**Next step: item 4: "),
        "{md}"
    );
    // A missing database is not created.
    let missing = dir.path().join("none.db");
    let out = case.run(&[
        "--config",
        config,
        "checklist",
        "ready.test",
        "--nameserver",
        &addr,
        "--db",
        missing.to_str().expect("UTF-8 path"),
    ]);
    assert!(out.code == 0);
    assert!(!missing.exists());
}

#[test]
fn plan_hint_needs_days_and_alignment() {
    let ws = Workspace::load(&data().join("mailauth.yaml")).expect("fixture config loads");
    let mut store = SqliteStore::open_in_memory().expect("store");
    fill(&mut store);
    let s = Settings::new(NOW);
    let hint = |d: &str, store: Option<&dyn ChecklistQueries>| {
        checklist::plan_hint_at(&ws, store, &Name::parse(d).unwrap(), &s)
    };
    let q: &dyn ChecklistQueries = &store;
    let h = hint("ready.test", Some(q)).expect("ready.test can advance");
    assert!(
        h.contains("14000 of 14070 messages (99.5%)") && h.contains("p=quarantine with t=y"),
        "{h}"
    );
    let h = hint("testing.test", Some(q)).expect("testing.test can advance");
    assert!(h.contains("p=quarantine without t=y"), "{h}");
    assert_eq!(hint("monitor.test", Some(q)), None, "5 days are not enough");
    assert_eq!(hint("leaky.test", Some(q)), None, "90% is not enough");
    assert_eq!(hint("enforced.test", Some(q)), None, "already at p=reject");
    assert_eq!(hint("parked.test", Some(q)), None);
    assert_eq!(hint("ready.test", None), None, "no store, no hint");
}
