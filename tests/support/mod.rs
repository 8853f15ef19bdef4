//! Test harness shared by integration tests: free loopback ports, the
//! "missing server binary" policy, a misbehaving TCP proxy, and real servers
//! (BIND, Knot DNS, PowerDNS, moto's Route 53, Postfix, OpenDKIM, rspamd,
//! an aiosmtpd SMTP sink, headless Chromium) plus a Cloudflare API
//! stand-in, each started on loopback in a temp dir and stopped on drop,
//! and the Python tools (octoDNS) of the bridge tests.
//!
//! Every test binary (tests/<group>/main.rs) declares it once; its tests
//! share one process, so nothing here keeps state a test could change under
//! another, but the one shared PostgreSQL server (`postgres`).
//!
//! Owns only test scaffolding; no production code depends on it.

#![allow(dead_code)]

pub mod bind;
pub mod bounded;
pub mod chromium;
pub mod cloudflare_standin;
pub mod dovecot;
pub mod https;
pub mod knot;
pub mod mmdb;
pub mod moto;
pub mod octodns;
pub mod opendkim;
pub mod pdns;
pub mod postfix;
// `both_stores!` is used by name in the test modules declared after it.
#[macro_use]
pub mod postgres;
pub mod powercut;
pub mod rspamd;
pub mod tcp_cut;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A port free on 127.0.0.1 for both TCP and UDP at the time of the call,
/// never handed out twice in one process, and below Linux's ephemeral range
/// (`ip_local_port_range`, 32768-60999 by default): a port the kernel
/// picks for `bind(0)` is also what it picks as the source port of the
/// next outgoing connection, so with tests running side by side another
/// test's client could hold it by the time the server binds it (a server
/// then listening on UDP but not on TCP).
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    const LOW: u32 = 10_000;
    const HIGH: u32 = 32_767;
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    // A different start per process and call (no randomness crate): the
    // process id and the clock's nanoseconds.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut candidate = (std::process::id().wrapping_mul(7919) ^ nanos) % (HIGH - LOW);
    for _ in 0..(HIGH - LOW) {
        candidate = (candidate + 7_561) % (HIGH - LOW);
        let port = (LOW + candidate) as u16;
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port for TCP and UDP");
}

/// Finds `binary` on `PATH`, then in the sbin directories (where servers
/// live and a user's `PATH` often does not reach). When it is missing the
/// test must not pass silently: under `CI=true` this panics, otherwise it
/// prints a loud SKIP line and returns `None`. The one such policy of the
/// harness: every server and tool is looked up through it.
pub fn require_binary(binary: &str) -> Option<PathBuf> {
    require_any_binary(&[binary])
}

/// [`require_binary`] for a program known under several names (the first
/// found wins, in the order given).
pub fn require_any_binary(names: &[&str]) -> Option<PathBuf> {
    let dirs = std::env::var("PATH").unwrap_or_default();
    let found = names.iter().find_map(|name| {
        dirs.split(':')
            .filter(|d| !d.is_empty())
            .chain([
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ])
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let binary = names.join("` or `");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("`{binary}` is required under CI=true but was not found");
        }
        eprintln!("\n!!!!!!!! SKIP: `{binary}` not found; this test did not run !!!!!!!!\n");
    }
    found
}

/// Random bytes from the OS, for keys and secrets.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf
}

/// Polls `ready` until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A TCP proxy on loopback in front of `target`. The first `swallow`
/// connections are accepted and then left without any answer (the client
/// sees a timeout); every later one is forwarded both ways.
pub struct TcpProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// The most forwarded connections that were open at the same time.
    pub peak_open: Arc<AtomicUsize>,
}

impl TcpProxy {
    pub fn start(target: u16, swallow: usize) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let peak_open = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (stop2, count, peak) = (stop.clone(), connections.clone(), peak_open.clone());
        thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        if n < swallow {
                            held.push(client);
                            continue;
                        }
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        pipe(client, server, open.clone());
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TcpProxy {
            port,
            stop,
            connections,
            peak_open,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Forwards both ways; `open` is decremented once both directions ended.
fn pipe(a: TcpStream, b: TcpStream, open: Arc<AtomicUsize>) {
    let (a2, b2) = (
        a.try_clone().expect("clone stream"),
        b.try_clone().expect("clone stream"),
    );
    let halves = Arc::new(AtomicUsize::new(2));
    let done = move || {
        if halves.fetch_sub(1, Ordering::SeqCst) == 1 {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    };
    let done2 = done.clone();
    thread::spawn(move || {
        copy_then_close(a, b);
        done();
    });
    thread::spawn(move || {
        copy_then_close(b2, a2);
        done2();
    });
}

fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A TSIG key as the servers and mailauth see it.
#[derive(Clone, Debug)]
pub struct TsigKey {
    pub name: String,
    /// `hmac-sha256` or `hmac-sha512`.
    pub algorithm: String,
    /// Base64.
    pub secret: String,
}

impl TsigKey {
    pub fn random(name: &str, algorithm: &str) -> TsigKey {
        use base64::Engine as _;
        let len = if algorithm == "hmac-sha512" { 64 } else { 32 };
        TsigKey {
            name: name.to_string(),
            algorithm: algorithm.to_string(),
            secret: base64::engine::general_purpose::STANDARD.encode(random_bytes(len)),
        }
    }
}

/// A minimal HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`);
/// returns the status and the body.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write request");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Sends SIGTERM to `child` (a `--watch` run) and waits for it to exit
/// within `limit`, failing the test otherwise; returns its output.
pub fn sigterm_and_wait(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(
        wait_until(limit, || child.try_wait().expect("wait").is_some()),
        "the watcher did not stop on SIGTERM"
    );
    child.wait_with_output().expect("output")
}
