//! A fault-injecting TCP proxy on loopback, for protocols with literals
//! (IMAP): it forwards to a real server and, at a chosen point of the
//! server→client stream, cuts the connection (RST or FIN, both directions)
//! or stalls it (stops forwarding, keeps the sockets open), or turns the
//! tagged `OK` that completes a command into `NO` (the server refusing).
//!
//! The point is found by reading the server's IMAP responses as they pass:
//! lines and `{N}` literals (RFC 9051 4.3), so a point "200 bytes into the
//! body of the 3rd `FETCH … BODY[] {N}` response" is exact and repeatable,
//! never a wall-clock guess. Owns only this test scaffolding; it knows no
//! IMAP command, only the response framing.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Where in the server→client stream the fault happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// As soon as the client connects: nothing of the server reaches it.
    Accept,
    /// In the `nth` (0-based, counted per connection) response line that
    /// holds `FETCH` and `BODY[]` and ends with a literal `{N}`.
    Fetch { nth: usize, at: At },
    /// The tagged completion (`TAG OK …`) of the `nth` (0-based, per
    /// connection) command answer one of whose untagged response lines
    /// contains `pattern`: `b"BODY[]"` for a `UID FETCH` of bodies,
    /// `b"* SEARCH"` for a `SEARCH` (RFC 9051 7.3.4: it is sent even when
    /// nothing matches).
    Completion { pattern: &'static [u8], nth: usize },
}

/// A point inside a FETCH response with a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// `n` bytes into the response line (`* 3 FETCH (UID 3 BODY[] {1234}`);
    /// at most the whole line.
    Line(usize),
    /// `n` bytes into the literal (the message body); at most all of it.
    Body(usize),
    /// Right after the literal, before the `)` that closes the response.
    BodyEnd,
}

/// What happens at the trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Abortive close (SO_LINGER 0): the client's next read fails with
    /// "connection reset".
    Rst,
    /// Orderly close: the client reads end-of-stream where the server's
    /// answer should go on.
    Fin,
    /// Nothing more is sent; the sockets stay open until the client gives
    /// up or the proxy is dropped.
    Stall,
    /// With [`Trigger::Completion`]: the tagged line is replaced by `TAG
    /// NO [SERVERBUG] injected`; everything else passes untouched.
    Refuse,
}

/// The tagged completion [`Fault::Refuse`] sends instead of the server's.
pub const REFUSAL: &[u8] = b"NO [SERVERBUG] injected";

/// Which connections get the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// Only the first connection that reaches the trigger; every later
    /// connection is forwarded untouched.
    Once,
    /// Every connection that reaches the trigger.
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub trigger: Trigger,
    pub fault: Fault,
    pub times: Times,
}

/// The proxy; stops (and closes every connection) on drop.
pub struct TcpCut {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    stop: AtomicBool,
    /// The fault may still fire (for [`Times::Once`]).
    armed: AtomicBool,
    /// Connections accepted.
    connections: AtomicUsize,
    /// Faults that happened.
    fired: AtomicUsize,
    /// Every socket, to close them all on drop.
    sockets: Mutex<Vec<TcpStream>>,
}

impl TcpCut {
    /// Listens on a free loopback port and forwards to 127.0.0.1:`target`.
    pub fn start(target: u16, plan: Plan) -> TcpCut {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            armed: AtomicBool::new(true),
            connections: AtomicUsize::new(0),
            fired: AtomicUsize::new(0),
            sockets: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        s.connections.fetch_add(1, Ordering::SeqCst);
                        let _ = client.set_nonblocking(false);
                        let s = s.clone();
                        thread::spawn(move || serve(client, target, plan, s));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TcpCut { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Faults injected so far (a test asserts this, so a fault that never
    /// happened cannot pass for one that was handled).
    pub fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }
}

impl Drop for TcpCut {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Ok(sockets) = self.shared.sockets.lock() {
            for s in sockets.iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Shared {
    /// Whether this connection takes the fault now (and uses it up for
    /// [`Times::Once`]).
    fn take(&self, times: Times) -> bool {
        let go = match times {
            Times::Always => true,
            Times::Once => self
                .armed
                .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok(),
        };
        if go {
            self.fired.fetch_add(1, Ordering::SeqCst);
        }
        go
    }

    fn keep(&self, s: &TcpStream) {
        if let (Ok(mut v), Ok(c)) = (self.sockets.lock(), s.try_clone()) {
            v.push(c);
        }
    }

    /// Holds a stalled connection open until the proxy stops or `done`.
    fn stall(&self, done: &AtomicBool) {
        while !self.stop.load(Ordering::SeqCst) && !done.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve(client: TcpStream, target: u16, plan: Plan, shared: Arc<Shared>) {
    shared.keep(&client);
    if plan.trigger == Trigger::Accept && shared.take(plan.times) {
        fault_now(&client, None, plan.fault, &shared, &AtomicBool::new(false));
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    shared.keep(&server);
    let (Ok(client_r), Ok(server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Set when the client side is gone, so a stall can end.
    let client_gone = Arc::new(AtomicBool::new(false));
    let gone = client_gone.clone();
    thread::spawn(move || {
        copy_then_close(client_r, server_w);
        gone.store(true, Ordering::SeqCst);
    });
    server_to_client(server, client, plan, &shared, &client_gone);
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

/// Forwards the server's bytes, watching the IMAP framing for the trigger.
fn server_to_client(
    mut server: TcpStream,
    mut client: TcpStream,
    plan: Plan,
    shared: &Shared,
    client_gone: &AtomicBool,
) {
    let mut scan = Scanner::new(plan.trigger);
    if plan.times == Times::Once && !shared.armed.load(Ordering::SeqCst) {
        scan.disarm();
    }
    let mut buf = [0u8; 16384];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (out, hit) = scan.feed(&buf[..n]);
        if client.write_all(&out).is_err() {
            break;
        }
        if hit && plan.fault == Fault::Refuse && shared.take(plan.times) {
            scan.disarm();
            if client.write_all(&scan.refuse_held()).is_err() {
                break;
            }
            continue;
        }
        if hit && shared.take(plan.times) {
            let _ = client.flush();
            fault_now(&client, Some(&server), plan.fault, shared, client_gone);
            return;
        }
        if hit {
            // Not this connection's fault: the held-back rest goes through.
            scan.disarm();
            let rest = scan.flush_all();
            if client.write_all(&rest).is_err() {
                break;
            }
        }
    }
    // The scanner may hold part of a line back; the server is done.
    let _ = client.write_all(&scan.flush_all());
    let _ = client.shutdown(Shutdown::Write);
}

fn fault_now(
    client: &TcpStream,
    server: Option<&TcpStream>,
    fault: Fault,
    shared: &Shared,
    client_gone: &AtomicBool,
) {
    match fault {
        Fault::Rst => {
            if let Some(s) = server {
                let _ = s.shutdown(Shutdown::Both);
            }
            set_linger_zero(client);
            // SHUT_RD wakes the other thread's read without sending
            // anything; when the last descriptor closes, the kernel sends
            // RST because of SO_LINGER 0.
            let _ = client.shutdown(Shutdown::Read);
            drop_from_keep(shared, client);
        }
        Fault::Fin => {
            if let Some(s) = server {
                let _ = s.shutdown(Shutdown::Both);
            }
            let _ = client.shutdown(Shutdown::Both);
        }
        Fault::Stall => shared.stall(client_gone),
        // Only meaningful at a completion (handled by the caller).
        Fault::Refuse => {}
    }
}

/// The proxy's own list keeps a descriptor of every socket: close ours so
/// the RST goes out now, not when the proxy is dropped.
fn drop_from_keep(shared: &Shared, client: &TcpStream) {
    let Ok(addr) = client.peer_addr() else {
        return;
    };
    if let Ok(mut v) = shared.sockets.lock() {
        v.retain(|s| s.peer_addr().ok() != Some(addr));
    }
}

fn set_linger_zero(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
}

/// Follows the IMAP response framing: lines end with CRLF; a line ending
/// in `{N}` is followed by N bytes of literal, then the line goes on
/// (RFC 9051 4.3: `literal = "{" number64 ["+"] "}" CRLF *CHAR8`).
/// Response lines are held back until complete, so a cut can fall inside
/// one; literal bytes pass as they come.
pub struct Scanner {
    trigger: Trigger,
    armed: bool,
    /// The line being read (held back).
    line: Vec<u8>,
    /// Literal bytes still to come.
    literal: usize,
    /// FETCH-with-body lines seen.
    fetches: usize,
    /// Inside the trigger's literal: bytes of it to forward before the cut.
    countdown: Option<usize>,
    /// Held back after a hit, for when the fault is not taken.
    held: Vec<u8>,
    /// The next line continues a response after a literal (it is not a
    /// response of its own).
    continuing: bool,
    /// An untagged line of the answer being read matched the
    /// [`Trigger::Completion`] pattern.
    matched: bool,
    /// Matching answers completed so far.
    completions: usize,
}

impl Scanner {
    pub fn new(trigger: Trigger) -> Self {
        Scanner {
            trigger,
            armed: matches!(trigger, Trigger::Fetch { .. } | Trigger::Completion { .. }),
            line: Vec::new(),
            literal: 0,
            fetches: 0,
            countdown: None,
            held: Vec::new(),
            continuing: false,
            matched: false,
            completions: 0,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
        self.countdown = None;
    }

    /// Everything held back, its first line (the tagged completion at a
    /// [`Trigger::Completion`] hit) turned into `TAG NO [SERVERBUG]
    /// injected`.
    pub fn refuse_held(&mut self) -> Vec<u8> {
        let held = self.flush_all();
        let Some(end) = held.windows(2).position(|w| w == b"\r\n") else {
            return held;
        };
        let line = &held[..end];
        let tag = line.split(|&b| b == b' ').next().unwrap_or(b"");
        let mut out = tag.to_vec();
        out.push(b' ');
        out.extend_from_slice(REFUSAL);
        out.extend_from_slice(&held[end..]);
        out
    }

    /// Everything held back.
    pub fn flush_all(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.held);
        out.append(&mut self.line);
        out
    }

    /// Takes bytes from the server; returns what may go to the client now
    /// and whether the trigger point was reached (then the rest of `data`
    /// is held back in `held`).
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            if self.literal > 0 {
                let mut take = self.literal.min(data.len() - i);
                if let Some(left) = self.countdown {
                    take = take.min(left);
                }
                out.extend_from_slice(&data[i..i + take]);
                self.literal -= take;
                i += take;
                if let Some(left) = self.countdown {
                    if left == take {
                        self.countdown = None;
                        self.held.extend_from_slice(&data[i..]);
                        return (out, true);
                    }
                    self.countdown = Some(left - take);
                }
                continue;
            }
            let b = data[i];
            i += 1;
            self.line.push(b);
            if !self.line.ends_with(b"\r\n") {
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let literal = literal_len(&line);
            // RFC 9051 2.2.2: untagged responses start with `*`,
            // continuation requests with `+`; anything else at the start
            // of a response is a tag.
            let tagged = !self.continuing && !line.starts_with(b"*") && !line.starts_with(b"+");
            self.continuing = literal.is_some();
            if let Trigger::Completion { pattern, nth } = self.trigger {
                if !tagged {
                    self.matched |= contains(&line, pattern);
                } else if std::mem::take(&mut self.matched) {
                    let this = self.completions;
                    self.completions += 1;
                    if self.armed && this == nth {
                        self.armed = false;
                        self.held.extend_from_slice(&line);
                        self.held.extend_from_slice(&data[i..]);
                        return (out, true);
                    }
                }
            }
            let is_fetch =
                literal.is_some() && contains(&line, b" FETCH ") && contains(&line, b"BODY[]");
            if let (true, true, Trigger::Fetch { nth, at }) = (self.armed, is_fetch, self.trigger) {
                let this = self.fetches;
                self.fetches += 1;
                if this == nth {
                    let len = literal.unwrap_or(0);
                    match at {
                        At::Line(n) => {
                            let n = n.min(line.len());
                            out.extend_from_slice(&line[..n]);
                            self.held.extend_from_slice(&line[n..]);
                            self.held.extend_from_slice(&data[i..]);
                            self.literal = len;
                            self.armed = false;
                            return (out, true);
                        }
                        At::Body(_) | At::BodyEnd => {
                            let n = match at {
                                At::Body(n) => n.min(len),
                                _ => len,
                            };
                            out.extend_from_slice(&line);
                            self.literal = len;
                            self.armed = false;
                            if n == 0 {
                                self.held.extend_from_slice(&data[i..]);
                                return (out, true);
                            }
                            self.countdown = Some(n);
                            continue;
                        }
                    }
                }
            }
            out.extend_from_slice(&line);
            self.literal = literal.unwrap_or(0);
        }
        (out, false)
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `N` when `line` (with its CRLF) ends in `{N}` or `{N+}`.
pub fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"\r\n")?;
    let body = body.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
