//! A misbehaving DNS server against `mailauth spf check` and `mailauth
//! validate`: one that never answers, answers SERVFAIL, truncates every UDP
//! answer (the TCP retry gets the real one), or sends garbage. Each run is
//! bounded in time; the outcome is a clear `temperror` (or the correct
//! result after the TCP retry), never a hang or a crash.
//!
//! Owns the fake server (UDP and TCP on one loopback port) and these
//! cases; leaves the resolver to `dns` and SPF evaluation to `spf`.

use crate::util;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Reads queries, never answers (TCP: accepts, then says nothing).
    Silent,
    /// RCODE 2 to everything.
    Servfail,
    /// UDP: TC=1 and no answers. TCP: the real answer.
    Truncate,
    /// Bytes that are not a DNS message (TCP: framed garbage).
    Garbage,
}

/// The one TXT record the fake server knows, for the TCP retry of
/// `Mode::Truncate`.
const SPF: &str = "v=spf1 ip4:192.0.2.0/24 -all";

struct FakeDns {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// End of the question section (RFC 1035 §4.1.2: QNAME labels, QTYPE,
/// QCLASS), or None for a malformed query.
fn question_end(q: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let len = *q.get(i)? as usize;
        if len == 0 {
            return (i + 5 <= q.len()).then_some(i + 5);
        }
        if len & 0xc0 != 0 {
            return None;
        }
        i += 1 + len;
    }
}

/// RFC 1035 §4.1.1 header + the query's question, then `answers`.
fn response(q: &[u8], rcode: u8, tc: bool, answer_txt: Option<&str>) -> Option<Vec<u8>> {
    let end = question_end(q)?;
    let mut r = Vec::with_capacity(512);
    r.extend_from_slice(&q[0..2]); // ID
    let rd = q[2] & 0x01;
    r.push(0x80 | if tc { 0x02 } else { 0 } | rd); // QR, opcode 0, AA 0
    r.push(0x80 | (rcode & 0x0f)); // RA
    r.extend_from_slice(&[0, 1]); // QDCOUNT
    r.extend_from_slice(&[0, u8::from(answer_txt.is_some())]); // ANCOUNT
    r.extend_from_slice(&[0, 0, 0, 0]); // NSCOUNT, ARCOUNT
    r.extend_from_slice(&q[12..end]);
    let qtype = u16::from_be_bytes([q[end - 4], q[end - 3]]);
    if let Some(txt) = answer_txt
        && qtype == 16
    {
        r.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&((txt.len() + 1) as u16).to_be_bytes());
        r.push(txt.len() as u8);
        r.extend_from_slice(txt.as_bytes());
    } else if answer_txt.is_some() {
        // Not a TXT query: NOERROR, no data.
        r[7] = 0;
    }
    Some(r)
}

fn garbage(seed: usize) -> Vec<u8> {
    (0..(37 + seed % 50))
        .map(|i| (i * 31 + seed * 7) as u8 ^ 0x5a)
        .collect()
}

impl FakeDns {
    fn start(mode: Mode) -> FakeDns {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
            let port = udp.local_addr().expect("addr").port();
            if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
                break (udp, tcp);
            }
        };
        let port = udp.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        tcp.set_nonblocking(true).expect("nonblocking");
        let s = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut n_seen = 0;
            while !s.load(Ordering::SeqCst) {
                let Ok((n, from)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                n_seen += 1;
                let q = &buf[..n];
                let reply = match mode {
                    Mode::Silent => None,
                    Mode::Servfail => response(q, 2, false, None),
                    Mode::Truncate => response(q, 0, true, None),
                    Mode::Garbage => Some(garbage(n_seen)),
                };
                if let Some(r) = reply {
                    let _ = udp.send_to(&r, from);
                }
            }
        });
        let s = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut n_seen = 0;
            while !s.load(Ordering::SeqCst) {
                let Ok((mut conn, _)) = tcp.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                n_seen += 1;
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut len = [0u8; 2];
                if conn.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if conn.read_exact(&mut q).is_err() {
                    continue;
                }
                let reply = match mode {
                    Mode::Silent => {
                        held.push(conn); // never answered, never closed
                        continue;
                    }
                    Mode::Servfail => response(&q, 2, false, None),
                    Mode::Truncate => response(&q, 0, false, Some(SPF)),
                    Mode::Garbage => Some(garbage(n_seen)),
                };
                if let Some(r) = reply {
                    let _ = conn.write_all(&(r.len() as u16).to_be_bytes());
                    let _ = conn.write_all(&r);
                }
            }
        });
        FakeDns { port, stop }
    }
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

fn run(args: &[&str], limit: Duration) -> Ran {
    let start = Instant::now();
    let mut child = util::mailauth(args).spawn();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("HANG: mailauth {args:?} still running after {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

fn spf_check(mode: Mode) -> (serde_json::Value, Ran) {
    let dns = FakeDns::start(mode);
    let ns = format!("127.0.0.1:{}", dns.port);
    let r = run(
        &[
            "spf",
            "check",
            "--ip",
            "192.0.2.10",
            "--sender",
            "user@example.com",
            "--nameserver",
            &ns,
            "--timeout",
            "2",
            "--json",
        ],
        Duration::from_secs(30),
    );
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| {
        panic!(
            "{mode:?}: output is not JSON ({e}); exit {}\nstdout:\n{}\nstderr:\n{}",
            r.code, r.stdout, r.stderr
        )
    });
    (v, r)
}

#[test]
fn spf_check_against_a_silent_server_is_a_bounded_temperror() {
    let (v, r) = spf_check(Mode::Silent);
    assert_eq!(v["result"], "temperror", "{v}");
    assert!(r.elapsed < Duration::from_secs(25), "took {:?}", r.elapsed);
}

#[test]
fn spf_check_against_servfail_is_a_temperror() {
    let (v, r) = spf_check(Mode::Servfail);
    assert_eq!(v["result"], "temperror", "{v}");
    assert!(r.code != 0, "a temperror is not a pass");
}

#[test]
fn spf_check_against_garbage_is_a_temperror() {
    let (v, r) = spf_check(Mode::Garbage);
    assert_eq!(v["result"], "temperror", "{v}\nstderr:\n{}", r.stderr);
}

#[test]
fn spf_check_after_truncation_retries_over_tcp() {
    // RFC 7766 §5: "If the response is truncated, the client SHOULD retry
    // the query over TCP"; the TCP answer is the real record.
    let (v, _) = spf_check(Mode::Truncate);
    assert_eq!(v["result"], "pass", "{v}");
}

#[test]
fn validate_against_broken_servers_fails_clearly_and_in_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("mailauth.yaml"),
        "provider:\n  kind: zonefile\n  dir: zones\ndomains:\n  example.com:\n    spf: { ip4: [192.0.2.0/24], all: fail }\n    dmarc: { p: reject }\n",
    )
    .expect("write config");
    let config = tmp.path().join("mailauth.yaml");
    for mode in [Mode::Silent, Mode::Servfail, Mode::Garbage] {
        let dns = FakeDns::start(mode);
        let ns = format!("127.0.0.1:{}", dns.port);
        let r = run(
            &[
                "--config",
                config.to_str().expect("utf-8 path"),
                "validate",
                "--nameserver",
                &ns,
                "--timeout",
                "1",
                "--no-propagation",
            ],
            Duration::from_secs(60),
        );
        assert!(
            r.code != 0 && r.code < 100,
            "{mode:?}: want a failing exit, not {} (101 is a panic)\nstdout:\n{}\nstderr:\n{}",
            r.code,
            r.stdout,
            r.stderr
        );
        assert!(
            r.stdout.contains("example.com") || r.stderr.contains("example.com"),
            "{mode:?}: the report names the domain:\n{}{}",
            r.stdout,
            r.stderr
        );
    }
}

#[test]
fn validate_timeout_is_the_whole_time_a_query_may_take() {
    // `--timeout 1` used to allow three seconds per query (two attempts
    // plus a margin) and report "within 3s".
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("mailauth.yaml"),
        "domains:\n  example.com:\n    dmarc: { p: reject }\n",
    )
    .expect("write config");
    let config = tmp.path().join("mailauth.yaml");
    let dns = FakeDns::start(Mode::Silent);
    let ns = format!("127.0.0.1:{}", dns.port);
    let r = run(
        &[
            "--config",
            config.to_str().expect("utf-8 path"),
            "validate",
            "--nameserver",
            &ns,
            "--timeout",
            "1",
            "--no-propagation",
            "--no-mta-sts-policy",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("within 1s"), "{}", r.stdout);
    assert!(!r.stdout.contains("within 3s"), "{}", r.stdout);
}
