//! moto's server mode (`moto_server`, PyPI `moto[server]`) on a free
//! loopback port, standing in for the Route 53 REST API; stopped (by PID)
//! on drop. Plus [`Route53Gate`], a loopback HTTP proxy in front of it that
//! plays what moto cannot: Route 53 throttling (`400 Throttling`), a change
//! still `PENDING`, and the refusal of an unknown access key (moto checks
//! no signature by default).
//!
//! Seeding and third-party edits go straight to moto with a placeholder
//! `Authorization` header (moto routes a request to its Route 53 emulation
//! only when the header names the `route53` scope).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::{free_port, http_request, require_binary, wait_until};

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDSEED/20260101/us-east-1/route53/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=00";
const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

pub struct Moto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// `None` (after a loud SKIP line) when `moto_server` is not installed
    /// and CI is not set; panics under `CI=true`.
    pub fn try_start() -> Option<Moto> {
        let bin = require_binary("moto_server")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("moto.log");
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn moto_server");
        let mut moto = Moto {
            child,
            port,
            _dir: dir,
        };
        let ready = wait_until(Duration::from_secs(60), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !ready || moto.child.try_wait().ok().flatten().is_some() {
            let log = std::fs::read_to_string(moto._dir.path().join("moto.log"));
            panic!("moto_server did not start on port {port}: {log:?}");
        }
        Some(moto)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn post(&self, path: &str, body: &str) -> String {
        let (status, text) = http_request(
            self.port,
            "POST",
            path,
            &[("Authorization", AUTH), ("Content-Type", "text/xml")],
            body.as_bytes(),
        );
        assert!(
            status == 200 || status == 201,
            "POST {path}: {status}: {text}"
        );
        text
    }

    /// Creates a public hosted zone; returns its id (without `/hostedzone/`).
    pub fn create_zone(&self, zone: &str) -> String {
        let text = self.post(
            "/2013-04-01/hostedzone",
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CreateHostedZoneRequest xmlns=\"{XMLNS}\">\
                 <Name>{zone}.</Name><CallerReference>{zone}-{}</CallerReference>\
                 </CreateHostedZoneRequest>",
                super::random_bytes(4).iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
        );
        let start = text.find("<Id>/hostedzone/").expect("zone id") + "<Id>/hostedzone/".len();
        let end = start + text[start..].find('<').expect("end of id");
        text[start..end].to_string()
    }

    /// Sends one change batch: `(action, name, type, ttl, values)`, values
    /// as the API writes them (TXT quoted).
    pub fn change(&self, zone_id: &str, changes: &[(&str, &str, &str, u32, Vec<String>)]) {
        let mut body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ChangeResourceRecordSetsRequest xmlns=\"{XMLNS}\">\
             <ChangeBatch><Changes>"
        );
        for (action, name, rtype, ttl, values) in changes {
            body.push_str(&format!(
                "<Change><Action>{action}</Action><ResourceRecordSet><Name>{name}.</Name>\
                 <Type>{rtype}</Type><TTL>{ttl}</TTL><ResourceRecords>"
            ));
            for v in values {
                let v = v.replace('&', "&amp;").replace('<', "&lt;");
                body.push_str(&format!(
                    "<ResourceRecord><Value>{v}</Value></ResourceRecord>"
                ));
            }
            body.push_str("</ResourceRecords></ResourceRecordSet></Change>");
        }
        body.push_str("</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>");
        self.post(&format!("/2013-04-01/hostedzone/{zone_id}/rrset/"), &body);
    }

    /// The raw ListResourceRecordSets answer for one RRset.
    pub fn list(&self, zone_id: &str) -> String {
        let (status, text) = http_request(
            self.port,
            "GET",
            &format!("/2013-04-01/hostedzone/{zone_id}/rrset?maxitems=1000"),
            &[("Authorization", AUTH)],
            b"",
        );
        assert_eq!(status, 200, "{text}");
        text
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback HTTP/1.1 proxy in front of moto. It answers, instead of
/// moto, `400 Throttling` to the next [`Route53Gate::throttle_next`]
/// requests, and `403 InvalidClientTokenId` to any request whose
/// `Authorization` names another access key than the one it admits; it
/// forwards everything else and counts requests by path.
pub struct Route53Gate {
    port: u16,
    stop: Arc<AtomicBool>,
    throttle: Arc<AtomicUsize>,
    /// Throttling answers served.
    pub throttled: Arc<AtomicUsize>,
    /// Requests refused for their access key.
    pub refused: Arc<AtomicUsize>,
    /// Request lines (`GET /2013-04-01/...`) forwarded to moto.
    pub forwarded: Arc<Mutex<Vec<String>>>,
    /// Bodies of the POSTs forwarded to moto.
    pub posted: Arc<Mutex<Vec<String>>>,
    /// Heads of the requests forwarded to moto.
    pub heads: Arc<Mutex<Vec<String>>>,
    pending: Arc<AtomicUsize>,
}

impl Route53Gate {
    pub fn start(target: u16, admitted_key: &str) -> Route53Gate {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind gate");
        let port = listener.local_addr().expect("gate addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let gate = Route53Gate {
            port,
            stop: Arc::new(AtomicBool::new(false)),
            throttle: Arc::new(AtomicUsize::new(0)),
            throttled: Arc::new(AtomicUsize::new(0)),
            refused: Arc::new(AtomicUsize::new(0)),
            forwarded: Arc::new(Mutex::new(Vec::new())),
            posted: Arc::new(Mutex::new(Vec::new())),
            heads: Arc::new(Mutex::new(Vec::new())),
            pending: Arc::new(AtomicUsize::new(0)),
        };
        let (posted, heads, pending) = (
            gate.posted.clone(),
            gate.heads.clone(),
            gate.pending.clone(),
        );
        let (stop, throttle, throttled, refused, forwarded) = (
            gate.stop.clone(),
            gate.throttle.clone(),
            gate.throttled.clone(),
            gate.refused.clone(),
            gate.forwarded.clone(),
        );
        let credential = format!("Credential={admitted_key}/");
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok((mut client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
                let Some((head, body)) = read_request(&mut client) else {
                    continue;
                };
                let line = head.lines().next().unwrap_or_default().to_string();
                let auth_ok = head.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("authorization:") && l.contains(&credential)
                });
                let answer = if throttle
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    throttled.fetch_add(1, Ordering::SeqCst);
                    error_answer(400, "Throttling", "Rate exceeded")
                } else if line.contains("/change/")
                    && pending
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    // moto answers INSYNC at once; Route 53 says PENDING
                    // for a while first.
                    pending_answer()
                } else if !auth_ok {
                    refused.fetch_add(1, Ordering::SeqCst);
                    error_answer(
                        403,
                        "InvalidClientTokenId",
                        "The security token included in the request is invalid.",
                    )
                } else {
                    if line.starts_with("POST") {
                        posted
                            .lock()
                            .expect("posted")
                            .push(String::from_utf8_lossy(&body).into_owned());
                    }
                    heads.lock().expect("heads").push(head.clone());
                    forwarded.lock().expect("forwarded").push(line);
                    match forward(target, &head, &body) {
                        Some(a) => a,
                        None => continue,
                    }
                };
                let _ = client.write_all(&answer);
                let _ = client.shutdown(Shutdown::Both);
            }
        });
        gate
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers the next `n` requests with `400 Throttling`.
    pub fn throttle_next(&self, n: usize) {
        self.throttle.store(n, Ordering::SeqCst);
    }

    /// Answers the next `n` GetChange requests with `PENDING`.
    pub fn pending_next(&self, n: usize) {
        self.pending.store(n, Ordering::SeqCst);
    }

    /// Forwarded requests whose request line contains `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.forwarded
            .lock()
            .expect("forwarded")
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Route53Gate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn error_answer(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>gate</RequestId></ErrorResponse>"
    );
    let reason = if status == 403 {
        "Forbidden"
    } else {
        "Bad Request"
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn pending_answer() -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<GetChangeResponse xmlns=\"{XMLNS}\"><ChangeInfo>\
         <Id>/change/CPENDING</Id><Status>PENDING</Status>\
         <SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></GetChangeResponse>"
    );
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one request: head (up to the blank line) and a `Content-Length`
/// body.
fn read_request(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

/// Sends the request to moto with `Connection: close` and returns its
/// whole answer, marked `Connection: close` too.
fn forward(target: u16, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(("127.0.0.1", target)).ok()?;
    let mut req = String::new();
    for l in head.trim_end().lines() {
        if l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        req.push_str(l);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes()).ok()?;
    up.write_all(body).ok()?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut out = String::new();
    for l in head.trim_end().lines() {
        if l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut answer = out.into_bytes();
    answer.extend_from_slice(&raw[split..]);
    Some(answer)
}
