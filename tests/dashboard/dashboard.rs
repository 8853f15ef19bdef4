//! Shared by the dashboard tests: a store (SQLite or PostgreSQL) filled
//! from the sample reports, and the numbers expected from it, computed
//! through the plain `ReportStore::show` records (not through the
//! dashboard queries). A module of the `dashboard` test binary, which
//! declares `support` and `util` too; its free port and its runs of the
//! binary ([`bin`], on `util::Cmd`) are the harness's.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mailauth::reports::parse::ReportKind;
use mailauth::reports::store::ReportStore;

use crate::support::postgres::TestStore;
use crate::util;

pub fn bin() -> Command {
    util::Cmd::new()
        .env_remove("MAILAUTH_DB")
        .env_remove("MAILAUTH_STORE")
        .env_remove("MAILAUTH_STORE_PASSWORD")
        .command()
}

pub fn samples() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reports")).to_owned()
}

/// Ingests every sample into a new database at `db` (some samples are
/// invalid on purpose: exit code 1 is expected).
pub fn fill(db: &Path) {
    fill_args(&["--db".into(), db.into()]);
}

/// [`fill`] for either store.
pub fn fill_store(st: &TestStore) {
    fill_args(&st.cli_args());
}

fn fill_args(store: &[std::ffi::OsString]) {
    let out = bin()
        .arg("reports")
        .args(store)
        .arg("ingest")
        .arg(samples())
        .output()
        .expect("run ingest");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "ingest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Expected numbers for one domain.
#[derive(Debug, Default, Clone)]
pub struct Expect {
    pub messages: i64,
    pub dmarc_pass: i64,
    pub reject: i64,
    /// Messages per source IP.
    pub by_ip: BTreeMap<String, i64>,
}

/// Per domain, from every aggregate report's records.
pub fn expected(db: &Path) -> BTreeMap<String, Expect> {
    let store = mailauth::reports::store::SqliteStore::open(db).expect("open");
    expected_in(&store)
}

/// [`expected`] for either store.
pub fn expected_store(st: &TestStore) -> BTreeMap<String, Expect> {
    expected_in(st.open().as_ref())
}

fn expected_in(store: &dyn ReportStore) -> BTreeMap<String, Expect> {
    let mut out: BTreeMap<String, Expect> = BTreeMap::new();
    for row in store.list(None).expect("list") {
        if row.kind != ReportKind::Aggregate {
            continue;
        }
        let d = store.show(row.kind, row.id).expect("show").expect("exists");
        let e = out.entry(row.domain.clone()).or_default();
        for r in d.records {
            e.messages += r.count;
            if r.dkim_aligned.as_deref() == Some("pass") || r.spf_aligned.as_deref() == Some("pass")
            {
                e.dmarc_pass += r.count;
            }
            if r.disposition == "reject" {
                e.reject += r.count;
            }
            *e.by_ip.entry(r.source_ip).or_default() += r.count;
        }
    }
    out
}

/// `1234567` → `1,234,567`, written independently of the crate's.
pub fn commas(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The text after the tag holding the first match of `open`, up to the
/// next `close`, tags removed, whitespace squeezed.
pub fn text_after(html: &str, open: &str, close: &str) -> Option<String> {
    let mut start = html.find(open)?;
    // Start after the tag `open` is part of.
    if !open.ends_with('>') {
        start += html[start..].find('>')? + 1;
    } else {
        start += open.len();
    }
    let end = start + html[start..].find(close)?;
    let mut text = String::new();
    let mut in_tag = false;
    for c in html[start..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A free port on 127.0.0.1.
pub use crate::support::free_port;

/// `mailauth serve` on a free loopback port; killed on drop.
pub struct Server {
    pub child: std::process::Child,
    pub port: u16,
}

impl Server {
    pub fn start(db: &Path) -> Server {
        Server::start_with_config(db, &db.with_extension("absent.yaml"))
    }

    /// With a config whose SPF records attribute the sources (offline:
    /// only `ip4`/`ip6` mechanisms can decide).
    pub fn start_with_config(db: &Path, config: &Path) -> Server {
        Server::start_args(&["--db".into(), db.into()], config)
    }

    /// On either store, without a config.
    pub fn start_store(st: &TestStore) -> Server {
        Server::start_args(&st.cli_args(), Path::new("/nonexistent/absent.yaml"))
    }

    /// On either store, with a config.
    pub fn start_store_with_config(st: &TestStore, config: &Path) -> Server {
        Server::start_args(&st.cli_args(), config)
    }

    fn start_args(store: &[std::ffi::OsString], config: &Path) -> Server {
        let port = free_port();
        let child = bin()
            .args(["serve", "--offline", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(store)
            .arg("-c")
            .arg(config)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start serve");
        let s = Server { child, port };
        for _ in 0..100 {
            if s.get("/api/health").0 == 200 {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("serve did not answer on port {port}");
    }

    /// (status, body) of a request with the given method and Host.
    pub fn request(&self, method: &str, path: &str, host: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, String::new());
        };
        let _ = write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        );
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        let status = buf
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = buf
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &format!("127.0.0.1:{}", self.port))
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config authorising only 209.85.220.0/24 to send for example.com.
pub fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("mailauth.yaml");
    std::fs::write(
        &path,
        "provider:\n  kind: zonefile\n  dir: zones\ndomains:\n  example.com:\n    spf:\n      ip4: [209.85.220.0/24]\n      all: fail\n",
    )
    .expect("write config");
    path
}
