//! PowerDNS Authoritative (`pdns_server`, gsqlite3 backend) on free loopback
//! ports in a temp dir: DNS (RFC 2136 + TSIG-signed AXFR) and the HTTP API.
//! Stopped (by PID) on drop.
//!
//! Zones get `SOA-EDIT-API` and `SOA-EDIT-DNSUPDATE` = INCREASE so every
//! change moves the serial (the RFC 2136 stale guard depends on it), and
//! the TSIG key may update and transfer them.
//!
//! Also two small HTTP servers for credential-leak tests: a [`Redirector`]
//! that answers every request with a redirect to another loopback port,
//! and a [`Recorder`] that keeps the head of every request it receives;
//! and a [`LossyProxy`] in front of the API that loses one write on its
//! way in or its answer on the way out, as a timeout does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TsigKey, free_port, require_binary, wait_until};

pub struct Pdns {
    child: Child,
    dns_port: u16,
    http_port: u16,
    api_key: String,
    key: TsigKey,
    dir: tempfile::TempDir,
}

const SCHEMA: &str = "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql";

impl Pdns {
    /// `None` (after a loud SKIP line) when the binaries are missing and CI
    /// is not set; panics under `CI=true`.
    pub fn try_start(zones: &[(&str, &str)]) -> Option<Pdns> {
        let server = require_binary("pdns_server")?;
        let util = require_binary("pdnsutil")?;
        let sqlite = require_binary("sqlite3")?;
        Some(Self::launch(&server, &util, &sqlite, zones))
    }

    fn launch(server: &Path, util: &Path, sqlite: &Path, zones: &[(&str, &str)]) -> Pdns {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().to_path_buf();
        let db = d.join("pdns.sqlite3");
        let schema = std::fs::read_to_string(SCHEMA).expect("pdns sqlite schema");
        run(Command::new(sqlite).arg(&db).arg(schema));
        let (dns_port, http_port) = (free_port(), free_port());
        let api_key = super::TsigKey::random("api", "hmac-sha256").secret;
        let conf = format!(
            "config-dir={d}\nsocket-dir={d}\nlocal-address=127.0.0.1\nlocal-port={dns_port}\n\
             launch=gsqlite3\ngsqlite3-database={db}\napi=yes\napi-key={api_key}\nwebserver=yes\n\
             webserver-address=127.0.0.1\nwebserver-port={http_port}\n\
             webserver-allow-from=127.0.0.1\n\
             default-soa-content=ns1.@ hostmaster.@ 0 10800 3600 604800 300\n\
             security-poll-suffix=\ndnsupdate=yes\nallow-dnsupdate-from=127.0.0.0/8\n\
             allow-axfr-ips=127.0.0.0/8\ndisable-axfr=no\n",
            d = d.display(),
            db = db.display(),
        );
        std::fs::write(d.join("pdns.conf"), conf).expect("write pdns.conf");
        let key = TsigKey::random("mailauth-key", "hmac-sha256");
        let cfg = format!("--config-dir={}", d.display());
        run(Command::new(util).args([
            &cfg,
            "import-tsig-key",
            &key.name,
            &key.algorithm,
            &key.secret,
        ]));
        for (zone, text) in zones {
            let zone = zone.trim_end_matches('.');
            let file = d.join(format!("{zone}.zone"));
            std::fs::write(&file, format!("$ORIGIN {zone}.\n{text}")).expect("write zone");
            run(Command::new(util)
                .args([&cfg, "load-zone", zone])
                .arg(&file));
            for (meta, value) in [
                ("TSIG-ALLOW-DNSUPDATE", key.name.as_str()),
                ("TSIG-ALLOW-AXFR", key.name.as_str()),
                ("SOA-EDIT-DNSUPDATE", "INCREASE"),
                ("SOA-EDIT-API", "INCREASE"),
            ] {
                run(Command::new(util).args([&cfg, "set-meta", zone, meta, value]));
            }
        }
        let log = std::fs::File::create(d.join("pdns.log")).expect("pdns.log");
        let child = Command::new(server)
            .arg(&cfg)
            .args([
                "--daemon=no",
                "--guardian=no",
                "--disable-syslog",
                "--write-pid=no",
            ])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn pdns_server");
        let mut pdns = Pdns {
            child,
            dns_port,
            http_port,
            api_key,
            key,
            dir,
        };
        let ready = wait_until(Duration::from_secs(15), || {
            std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", dns_port)).is_ok()
        });
        if !ready || pdns.child.try_wait().ok().flatten().is_some() {
            let log = std::fs::read_to_string(pdns.dir.path().join("pdns.log")).unwrap_or_default();
            panic!("pdns_server did not start:\n{log}");
        }
        pdns
    }

    pub fn dns_port(&self) -> u16 {
        self.dns_port
    }
    pub fn http_port(&self) -> u16 {
        self.http_port
    }
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
    pub fn api_key(&self) -> &str {
        &self.api_key
    }
    pub fn tsig(&self) -> &TsigKey {
        &self.key
    }
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Replaces one TXT RRset through the API, as another tool would.
    pub fn api_set_txt(&self, zone: &str, name: &str, value: &str) {
        let body = format!(
            r#"{{"rrsets":[{{"name":"{name}.","type":"TXT","ttl":300,"changetype":"REPLACE","records":[{{"content":"\"{value}\"","disabled":false}}]}}]}}"#
        );
        let (status, answer) = super::http_request(
            self.http_port,
            "PATCH",
            &format!("/api/v1/servers/localhost/zones/{zone}."),
            &[
                ("X-API-Key", &self.api_key),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        assert!(status < 300, "API edit failed: {status} {answer}");
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Pdns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers every request with `307 Temporary Redirect` to the same path on
/// `127.0.0.1:target`. Stops accepting on drop.
pub struct Redirector {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Redirector {
    pub fn start(target: u16) -> Redirector {
        let (port, stop) = serve_heads(move |head, conn| {
            let path = head
                .lines()
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or("/")
                .to_string();
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target}{path}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = std::io::Write::write_all(conn, answer.as_bytes());
        });
        Redirector { port, stop }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Keeps the head (request line and header fields) of every request and
/// answers `200 {}`. Stops accepting on drop.
pub struct Recorder {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = heads.clone();
        let (port, stop) = serve_heads(move |head, conn| {
            kept.lock().expect("heads").push(head.to_string());
            let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                          Content-Length: 2\r\nConnection: close\r\n\r\n{}";
            let _ = std::io::Write::write_all(conn, answer.as_bytes());
        });
        Recorder { port, stop, heads }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Accepts on a loopback port, reads each request's head and hands it to
/// `answer` (one request per connection).
fn serve_heads(
    answer: impl Fn(&str, &mut std::net::TcpStream) + Send + Sync + 'static,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::BufRead;
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        while !stopped.load(Ordering::SeqCst) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = std::io::BufReader::new(match conn.try_clone() {
                Ok(c) => c,
                Err(_) => continue,
            });
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            answer(&head, &mut conn);
        }
    });
    (port, stop)
}

/// What [`LossyProxy`] does to the next request of a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// The request never reaches the server.
    Request,
    /// The request is applied; its answer never reaches the client.
    Answer,
}

/// A TCP proxy to the API that relays everything, except that the next
/// request starting with an armed method is lost ([`Loss`]); the client's
/// connection is then held open (about 5 s) with nothing sent back. Counts
/// the requests of that method that reached the server.
pub struct LossyProxy {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    armed: std::sync::Arc<std::sync::Mutex<Option<(String, Loss)>>>,
    /// Requests of the armed method relayed to the server.
    pub delivered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl LossyProxy {
    pub fn start(target: u16) -> LossyProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let armed: Arc<Mutex<Option<(String, Loss)>>> = Arc::new(Mutex::new(None));
        let delivered = Arc::new(AtomicUsize::new(0));
        let (stopped, arm, count) = (stop.clone(), armed.clone(), delivered.clone());
        let method = Arc::new(Mutex::new(String::new()));
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mute = Arc::new(AtomicBool::new(false));
                let (mut c_in, mut s_out) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let (arm, count, mute2, method) =
                    (arm.clone(), count.clone(), mute.clone(), method.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let chunk = &buf[..n];
                        let mut armed = arm.lock().expect("armed");
                        if let Some((m, _)) = armed.as_ref() {
                            *method.lock().expect("method") = m.clone();
                        }
                        let watched = method.lock().expect("method").clone();
                        let starts = !watched.is_empty()
                            && chunk.starts_with(format!("{watched} ").as_bytes());
                        if starts {
                            match armed.as_ref().map(|(_, l)| *l) {
                                Some(Loss::Request) => {
                                    *armed = None;
                                    drop(armed);
                                    // Lost on its way: hold, then close.
                                    std::thread::sleep(Duration::from_secs(5));
                                    return;
                                }
                                Some(Loss::Answer) => {
                                    *armed = None;
                                    mute2.store(true, Ordering::SeqCst);
                                    count.fetch_add(1, Ordering::SeqCst);
                                }
                                None => {
                                    count.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        }
                        drop(armed);
                        if s_out.write_all(chunk).is_err() {
                            break;
                        }
                    }
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_in, mut c_out) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = s_in.read(&mut buf) {
                        if n == 0 || mute.load(Ordering::SeqCst) {
                            break;
                        }
                        if c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    if mute.load(Ordering::SeqCst) {
                        // The answer is lost: hold the client, then close.
                        std::thread::sleep(Duration::from_secs(5));
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        LossyProxy {
            port,
            stop,
            armed,
            delivered,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Loses the next request starting with `method` (or its answer), and
    /// counts the requests of `method` that reach the server.
    pub fn lose_next(&self, method: &str, loss: Loss) {
        *self.armed.lock().expect("armed") = Some((method.to_string(), loss));
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
