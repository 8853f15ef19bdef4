//! The dashboards without a browser: `mailauth serve`'s JSON API and
//! guards, and `reports summary` (text and JSON), against a store filled
//! from the sample reports. Expected numbers come from the plain report
//! records, not from the dashboard queries. The store scenarios run on
//! SQLite and on PostgreSQL 15 (`sqlite::…`, `postgres::…`), and both
//! stores must give byte-identical views.

use crate::dashboard;
use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use dashboard::{Server, bin, commas, expected_store, fill_store, text_after};
use support::postgres::TestStore;

both_stores!(
    json_api_matches_the_stored_records,
    summary_text_and_json,
    attribution_in_the_api_follows_the_config,
    slow_dns_for_one_page_does_not_stall_the_others,
    metrics_scrape_parses_with_a_prometheus_parser,
    source_filter_narrows_totals_charts_and_reporters,
);

fn json_api_matches_the_stored_records(st: &TestStore) {
    fill_store(st);
    let want = expected_store(st);
    let total: i64 = want.values().map(|e| e.messages).sum();
    let server = Server::start_store(st);

    let o = server.json("/api/overview");
    assert_eq!(o["totals"]["messages"], total);
    let domains = o["domains"].as_array().expect("domains");
    assert_eq!(domains.len(), want.len());
    for d in domains {
        let name = d["domain"].as_str().expect("name");
        let e = &want[name];
        assert_eq!(d["totals"]["messages"], e.messages, "{name}");
        assert_eq!(d["totals"]["dmarc_pass"], e.dmarc_pass, "{name}");
        assert_eq!(d["totals"]["reject"], e.reject, "{name}");
    }
    // Days sum to the total.
    let by_day: i64 = o["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| d["messages"].as_i64().expect("n"))
        .sum();
    assert_eq!(by_day, total);

    // One domain: top source is the IP with most messages.
    let e = &want["example.com"];
    let (top_ip, top_n) = e
        .by_ip
        .iter()
        .max_by_key(|(ip, n)| (**n, std::cmp::Reverse(*ip)))
        .expect("ips");
    let d = server.json("/api/domain/example.com");
    assert_eq!(d["totals"]["messages"], e.messages);
    assert_eq!(d["sources"][0]["source_ip"], top_ip.as_str());
    assert_eq!(d["sources"][0]["messages"], *top_n);
    assert_eq!(d["sources"][0]["attribution"]["basis"], "not-configured");
    // Failing sources all fail something, worst first.
    let failing = d["failing_sources"].as_array().expect("failing");
    assert!(!failing.is_empty());
    assert!(failing.iter().all(|s| s["dmarc_fail"].as_i64() > Some(0)));

    // Source filter in the URL.
    let one = server.json(&format!("/api/domain/example.com?source={top_ip}"));
    let srcs = one["sources"].as_array().expect("sources");
    assert_eq!(srcs.len(), 1);
    assert_eq!(srcs[0]["messages"], *top_n);

    // Date range: the samples are years old, so "since 30 days" is empty,
    // and a range before the oldest sample (one is dated 1979) has no domains.
    let recent = server.json("/api/overview?since=30d");
    assert_eq!(recent["totals"]["messages"], 0);
    let old = server.json("/api/overview?until=1975-01-01");
    assert_eq!(old["domains"].as_array().map(Vec::len), Some(0));
    let r = server.json("/api/overview?since=2018-06-19&until=2018-06-20");
    assert!(r["totals"]["messages"].as_i64() > Some(0));
    assert!(r["totals"]["messages"].as_i64() < Some(total));

    let list = server.json("/api/domains");
    assert!(
        list.as_array()
            .expect("list")
            .iter()
            .any(|d| d == "example.com")
    );
    // TLS-RPT per policy.
    let tls = o["tls"].as_array().expect("tls");
    assert!(tls.iter().any(|t| t["successful"].as_i64() > Some(0)));
}

#[test]
fn server_is_read_only_and_checks_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("r.db");
    let server = Server::start(&db);
    let port = server.port;
    assert_eq!(
        server
            .request("POST", "/api/overview", &format!("127.0.0.1:{port}"))
            .0,
        405
    );
    assert_eq!(
        server.request("GET", "/", "evil.example:80").0,
        421,
        "DNS rebinding guard"
    );
    assert_eq!(
        server.request("GET", "/", &format!("localhost:{port}")).0,
        200
    );
    assert_eq!(server.get("/no/such/page").0, 404);
    let (status, body) = server.get("/api/overview?since=soon");
    assert_eq!(status, 400);
    assert!(body.contains("cannot read time"), "{body}");
    // Empty store: an explained empty state.
    let (status, body) = server.get("/");
    assert_eq!(status, 200);
    assert!(body.contains("No reports yet"), "{body}");
    assert!(body.contains("rua="));
}

#[test]
fn refuses_remote_listen_without_flag() {
    let out = bin()
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--db",
            "/nonexistent/x.db",
        ])
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
}

fn summary_text_and_json(st: &TestStore) {
    fill_store(st);
    let want = expected_store(st);
    let total: i64 = want.values().map(|e| e.messages).sum();
    let run = |args: &[&str]| {
        let out = bin()
            .arg("reports")
            .args(st.cli_args())
            .args(args)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let text = run(&["summary", "--offline"]);
    assert!(
        text.starts_with(&format!("All domains: {} messages", commas(total))),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("example.com "))
        .expect("domain row");
    assert!(
        line.contains(&commas(want["example.com"].messages)),
        "{line}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["summary", "--json", "--offline"])).expect("json");
    assert_eq!(json["totals"]["messages"], total);
    let one: serde_json::Value = serde_json::from_str(&run(&[
        "summary",
        "--json",
        "--offline",
        "--domain",
        "test.net",
    ]))
    .expect("json");
    assert_eq!(one["totals"]["messages"], want["test.net"].messages);
    // A missing store is an error (a typo must not create one); an
    // empty one says so.
    let empty_dir = tempfile::tempdir().expect("tempdir");
    let db = empty_dir.path().join("e.db");
    let summary = || {
        bin()
            .args(["reports", "--db"])
            .arg(&db)
            .args(["summary", "--offline"])
            .output()
            .expect("run")
    };
    let out = summary();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such report store"));
    assert!(!db.exists());
    let made = bin()
        .args(["store", "migrate", "--store"])
        .arg(&db)
        .output()
        .expect("run");
    assert!(made.status.success());
    assert!(String::from_utf8_lossy(&summary().stdout).contains("No reports yet"));
}

fn attribution_in_the_api_follows_the_config(st: &TestStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    fill_store(st);
    let config = dashboard::write_config(dir.path());
    let server = Server::start_store_with_config(st, &config);
    let d = server.json("/api/domain/example.com?source=209.85.220.41");
    let a = &d["sources"][0]["attribution"];
    assert_eq!(a["verdict"], "authorised");
    assert_eq!(a["spf_mechanism"], "ip4:209.85.220.0/24");
    assert_eq!(a["basis"], "config");
    let d = server.json("/api/domain/example.com?source=199.230.200.36");
    let a = &d["sources"][0]["attribution"];
    assert_eq!(a["verdict"], "unauthorised");
    assert!(a["spf_mechanism"].is_null());
    // A domain the config does not declare: the reporters' view.
    let d = server.json("/api/domain/test.net");
    assert!(
        d["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .all(|s| s["attribution"]["basis"] == "not-configured")
    );
}

/// The same samples in both stores: every view the dashboards serve, and
/// `reports summary`, are identical (JSON compared whole, HTML byte for
/// byte).
/// Messages, DMARC passes and rejects of one source IP, per domain, and
/// the reporters that saw it: from the plain records.
fn expected_for_ip(st: &TestStore, ip: &str) -> (BTreeMap<String, [i64; 3]>, BTreeSet<String>) {
    use mailauth::reports::parse::ReportKind;
    let store = st.open();
    let (mut per, mut orgs) = (BTreeMap::<String, [i64; 3]>::new(), BTreeSet::new());
    for row in store.list(None).expect("list") {
        if row.kind != ReportKind::Aggregate {
            continue;
        }
        let d = store.show(row.kind, row.id).expect("show").expect("exists");
        for r in d.records.iter().filter(|r| r.source_ip == ip) {
            let e = per.entry(row.domain.clone()).or_default();
            e[0] += r.count;
            if r.dkim_aligned.as_deref() == Some("pass") || r.spf_aligned.as_deref() == Some("pass")
            {
                e[1] += r.count;
            }
            if r.disposition == "reject" {
                e[2] += r.count;
            }
            orgs.insert(row.org.clone());
        }
    }
    (per, orgs)
}

fn sum_of(v: &serde_json::Value, list: &str, field: &str) -> i64 {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list}: {v}"))
        .iter()
        .map(|x| x[field].as_i64().expect("number"))
        .sum()
}

/// Issue 23: `?source=` said "showing source … only" while the tiles,
/// charts and `/api` totals still covered the whole domain.
fn source_filter_narrows_totals_charts_and_reporters(st: &TestStore) {
    fill_store(st);
    let want = expected_store(st);
    let e = &want["example.com"];
    // A source with part of the domain's mail, seen by fewer reporters
    // than the domain, so a filter that is ignored shows.
    let (ip, n) = e
        .by_ip
        .iter()
        .max_by_key(|(ip, n)| (**n, std::cmp::Reverse(*ip)))
        .expect("ips");
    assert!(*n < e.messages, "the samples have more than one source");
    let (per, orgs) = expected_for_ip(st, ip);
    let [messages, pass, reject] = per["example.com"];
    assert_eq!(messages, *n);
    let server = Server::start_store(st);

    let d = server.json(&format!("/api/domain/example.com?source={ip}"));
    assert_eq!(d["source"], ip.as_str());
    assert_eq!(d["totals"]["messages"], messages);
    assert_eq!(d["totals"]["dmarc_pass"], pass);
    assert_eq!(d["totals"]["reject"], reject);
    assert_eq!(sum_of(&d, "days", "messages"), messages, "chart");
    assert_eq!(sum_of(&d, "days", "dmarc_pass"), pass, "chart");
    assert_eq!(sum_of(&d, "reporters", "messages"), messages, "reporters");
    let seen: BTreeSet<String> = d["reporters"]
        .as_array()
        .expect("reporters")
        .iter()
        .map(|r| r["org"].as_str().expect("org").to_owned())
        .collect();
    assert_eq!(seen, orgs);
    assert_eq!(sum_of(&d, "policy", "messages"), messages, "policy");

    // The overview: every domain the source sent for, and nothing else.
    let o = server.json(&format!("/api/overview?source={ip}"));
    let total: i64 = per.values().map(|v| v[0]).sum();
    assert_eq!(o["totals"]["messages"], total);
    assert_eq!(sum_of(&o, "days", "messages"), total);
    let domains: BTreeMap<String, i64> = o["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .map(|d| {
            (
                d["domain"].as_str().expect("name").to_owned(),
                d["totals"]["messages"].as_i64().expect("n"),
            )
        })
        .collect();
    let want_domains: BTreeMap<String, i64> = per.iter().map(|(d, v)| (d.clone(), v[0])).collect();
    assert_eq!(domains, want_domains);

    // The page's tiles say the same number as the API.
    let page = server.get(&format!("/domain/example.com?source={ip}"));
    assert_eq!(page.0, 200);
    let tile = text_after(&page.1, "data-kpi=\"messages\"", "</div>").expect("messages tile");
    assert_eq!(tile, commas(messages), "the Messages tile");

    // A source that sent nothing: everything empty, not the domain's totals.
    let none = server.json("/api/domain/example.com?source=192.0.2.255");
    assert_eq!(none["totals"]["messages"], 0);
    assert_eq!(none["days"].as_array().map(Vec::len), Some(0));
    assert_eq!(none["reporters"].as_array().map(Vec::len), Some(0));
}

#[test]
fn both_stores_give_identical_views() {
    let Some(pg) = TestStore::postgres("identical") else {
        return;
    };
    let lite = TestStore::sqlite();
    fill_store(&lite);
    fill_store(&pg);
    let (a, b) = (Server::start_store(&lite), Server::start_store(&pg));
    let mut pages = vec![
        "/".to_owned(),
        "/api/overview".to_owned(),
        "/api/domains".to_owned(),
        "/api/overview?since=2018-06-19&until=2018-06-20".to_owned(),
        "/api/overview?source=209.85.220.41".to_owned(),
        "/api/domain/example.com?source=209.85.220.41".to_owned(),
        "/domain/example.com?source=209.85.220.41".to_owned(),
    ];
    for d in a.json("/api/domains").as_array().expect("domains") {
        let d = d.as_str().expect("name");
        pages.push(format!("/api/domain/{d}"));
        pages.push(format!("/domain/{d}"));
    }
    assert!(pages.len() > 10, "{pages:?}");
    for page in &pages {
        let (x, y) = (a.get(page), b.get(page));
        assert_eq!(x.0, 200, "{page}: {}", x.1);
        assert!(x == y, "{page} differs between SQLite and PostgreSQL");
    }
    let summary = |st: &TestStore, args: &[&str]| {
        let out = bin()
            .arg("reports")
            .args(st.cli_args())
            .args(args)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    for args in [
        &["summary", "--offline"][..],
        &["summary", "--offline", "--json"][..],
        &["summary", "--offline", "--domain", "example.com"][..],
    ] {
        assert!(
            summary(&lite, args) == summary(&pg, args),
            "{args:?} differs between SQLite and PostgreSQL"
        );
    }
}

/// 32 clients (the connection cap) each keep a request head open, sending
/// one header line every 100 ms and reconnecting when dropped: a normal
/// request is still served while they go on, and slow heads are what the
/// server drops to make room.
#[test]
fn slow_clients_holding_every_slot_do_not_lock_others_out() {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const SLOW: usize = 32;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("r.db"));
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let slow: Vec<_> = (0..SLOW)
        .map(|_| {
            let (stop, opened, dropped) = (stop.clone(), opened.clone(), dropped.clone());
            std::thread::spawn(move || {
                // Bounded: at most 60 s of trickling per client.
                let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < end {
                    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        continue;
                    };
                    opened.fetch_add(1, Ordering::SeqCst);
                    let mut ok = write!(s, "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n").is_ok();
                    while ok && !stop.load(Ordering::SeqCst) && std::time::Instant::now() < end {
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        ok = s.write_all(b"X-Slow: 1\r\n").is_ok();
                    }
                    if !ok {
                        dropped.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    // Every slow client is connected and has sent part of its head.
    for _ in 0..500 {
        if opened.load(Ordering::SeqCst) >= SLOW {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        opened.load(Ordering::SeqCst) >= SLOW,
        "slow clients connected"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    // A normal client, asking again after a refusal, while the slow ones
    // go on (they stop after 60 s whatever happens).
    let mut statuses = Vec::new();
    let mut served_while_slow = false;
    for _ in 0..200 {
        let status = server.get("/api/health").0;
        statuses.push(status);
        if status == 200 {
            served_while_slow = slow.iter().all(|t| !t.is_finished());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    // The server dropped slow heads (the writes of a dropped client fail).
    for _ in 0..200 {
        if dropped.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    for t in slow {
        t.join().expect("slow client");
    }
    assert_eq!(statuses.last(), Some(&200), "never served: {statuses:?}");
    assert!(
        served_while_slow,
        "served only after the slow clients gave up"
    );
    assert!(
        dropped.load(Ordering::SeqCst) > 0,
        "no slow client was ever dropped"
    );
    assert_eq!(server.get("/api/health").0, 200);
}

/// A resolver whose PTR lookups wait until the test opens the gate.
struct GatedDns {
    gate: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    entered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl mailauth::spf::SpfDns for GatedDns {
    fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, mailauth::spf::DnsError> {
        Err(mailauth::spf::DnsError::NxDomain { name: name.into() })
    }
    fn a(&self, name: &str) -> Result<Vec<std::net::Ipv4Addr>, mailauth::spf::DnsError> {
        Err(mailauth::spf::DnsError::NxDomain { name: name.into() })
    }
    fn aaaa(&self, name: &str) -> Result<Vec<std::net::Ipv6Addr>, mailauth::spf::DnsError> {
        Err(mailauth::spf::DnsError::NxDomain { name: name.into() })
    }
    fn mx(&self, name: &str) -> Result<Vec<mailauth::spf::MxRecord>, mailauth::spf::DnsError> {
        Err(mailauth::spf::DnsError::NxDomain { name: name.into() })
    }
    fn ptr(&self, ip: std::net::IpAddr) -> Result<Vec<String>, mailauth::spf::DnsError> {
        self.entered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (open, cv) = &*self.gate;
        let mut o = open.lock().expect("gate");
        while !*o {
            o = cv.wait(o).expect("gate");
        }
        Ok(vec![format!("host-{ip}.example")])
    }
}

/// One page waits on a reverse-DNS lookup that does not answer: other
/// pages (which read the same store) are served meanwhile, and the waiting
/// page completes once DNS answers.
fn slow_dns_for_one_page_does_not_stall_the_others(st: &TestStore) {
    use mailauth::reports::dashboard::attribution::Attributor;
    use mailauth::reports::serve::{DashStore, State, serve};
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};

    fill_store(st);
    let store: DashStore = st.open();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let entered = Arc::new(AtomicUsize::new(0));
    let (g, e) = (gate.clone(), entered.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(State::new(
        store,
        Box::new(move || {
            let dns = GatedDns {
                gate: g.clone(),
                entered: e.clone(),
            };
            Attributor::new(Some(Box::new(dns)), Default::default())
        }),
        addr,
        false,
    ));
    std::thread::spawn(move || serve(listener, state));
    // A bound, not a performance figure: without it a server that waits
    // on the gate would hang the test instead of failing it.
    let get = move |path: &str| -> u16 {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("timeout");
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send");
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    let waiting = std::thread::spawn(move || get("/api/domain/example.com"));
    for _ in 0..2000 {
        if entered.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        entered.load(Ordering::SeqCst) > 0,
        "the page asked for a PTR"
    );
    // While that lookup hangs: the overview and the domain list.
    let others = (get("/api/overview"), get("/api/domains"), get("/"));
    let still_waiting = !waiting.is_finished();
    {
        let (open, cv) = &*gate;
        *open.lock().expect("gate") = true;
        cv.notify_all();
    }
    let waited = waiting.join().expect("waiting page");
    assert_eq!(others, (200, 200, 200), "served during the slow lookup");
    assert!(still_waiting, "the other pages came while the lookup hung");
    assert_eq!(waited, 200, "the slow page completes once DNS answers");
}

/// The samples of a Prometheus text exposition as the Prometheus project's
/// own parser reads them (`prometheus_client.parser`, Python, from the venv
/// of scripts/install-deps.sh): each family's name, type and help, and each
/// sample's name, labels and value. `None` when the module is missing
/// outside CI (a SKIP); panics if the text does not parse.
fn prometheus_scrape(body: &str) -> Option<serde_json::Value> {
    const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(sys.stdin.read()))
json.dump({
    "families": {f.name: {"type": f.type, "help": f.documentation} for f in families},
    "samples": [{"name": s.name, "labels": s.labels, "value": s.value, "type": f.type}
                for f in families for s in f.samples],
}, sys.stdout)
"#;
    let python = support::octodns::python_with("prometheus_client")?;
    let mut child = std::process::Command::new(python)
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), body.as_bytes())
        .expect("write the scrape");
    let out = child.wait_with_output().expect("python");
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the parser's JSON"))
}

/// `/metrics` is Prometheus text that the Prometheus project's parser
/// reads, with each domain's message and pass counts equal to the stored
/// records.
fn metrics_scrape_parses_with_a_prometheus_parser(st: &TestStore) {
    fill_store(st);
    let want = expected_store(st);
    let server = Server::start_store(st);
    let (status, body) = server.get("/metrics");
    assert_eq!(status, 200, "{body}");
    let Some(scrape) = prometheus_scrape(&body) else {
        return;
    };
    let samples = scrape["samples"].as_array().expect("samples");
    let gauge = |metric: &str, label: &str, value: &str| -> Option<f64> {
        samples
            .iter()
            .find(|s| s["name"] == metric && s["labels"][label] == value)
            .map(|s| {
                assert_eq!(s["type"], "gauge", "{metric} is not a gauge: {s}");
                s["value"].as_f64().expect("a number")
            })
    };
    assert!(!want.is_empty());
    for (domain, e) in &want {
        assert_eq!(
            gauge("mailauth_dmarc_messages", "domain", domain),
            Some(e.messages as f64),
            "{domain}"
        );
        assert_eq!(
            gauge("mailauth_dmarc_pass_messages", "domain", domain),
            Some(e.dmarc_pass as f64),
            "{domain}"
        );
        let ratio = gauge("mailauth_dmarc_pass_ratio", "domain", domain).expect("ratio");
        assert!((ratio - e.dmarc_pass as f64 / e.messages as f64).abs() < 1e-9);
        assert!(
            gauge(
                "mailauth_dmarc_last_report_day_timestamp_seconds",
                "domain",
                domain
            )
            .is_some()
        );
    }
    let families = scrape["families"].as_object().expect("families");
    assert!(
        families["mailauth_reports_ingested"]["help"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "{:?}",
        families.keys()
    );
    assert!(
        gauge("mailauth_reports_ingested", "reporter", "google.com").is_some_and(|n| n >= 1.0),
        "{body}"
    );
    assert!(
        samples
            .iter()
            .any(|s| s["name"] == "mailauth_tlsrpt_failed_sessions"),
        "{body}"
    );
}
