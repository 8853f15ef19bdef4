//! `mailauth serve`: the dashboard pages live from the report store, with
//! filters in the URL, JSON endpoints under `/api/` for scripts and
//! Grafana, and Prometheus metrics at `/metrics`. Read-only (the writes
//! are the caches the store keeps: the rollup and reverse DNS answers),
//! loopback by default.
//!
//! Owns a small std-only HTTP/1.1 server (one short-lived thread per
//! connection, bounded), routing and query parsing. Leaves the views to
//! `reports::dashboard`, the metrics to `reports::metrics` and SQL to
//! `reports::dashq`.
//!
//! Hostile clients: a request head must arrive whole within
//! [`HEAD_DEADLINE`] (a total, not per read) and the response must be
//! taken within [`WRITE_DEADLINE`]. When all [`MAX_CONNECTIONS`] slots are
//! taken, the connection that has been sending its head the longest is
//! dropped to make room (so slow clients holding every slot cannot lock
//! others out); only when every slot is past its head does a newcomer
//! wait, up to [`SLOT_WAIT`], then get 503. Slots are given back by a
//! guard, so a panicking handler frees its slot too. The store is locked
//! per query, not per request, and a lock poisoned by a panic is taken
//! over; DNS lookups (PTR, SPF) run outside any lock, with a time budget
//! per request ([`DNS_BUDGET`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::spf::{DnsError, MxRecord, QType, SpfDns};

use super::dashboard::html::{self, Links};
use super::dashboard::{self, DashboardError, attribution::Attributor};
use super::dashq::{DashFilter, DashboardQueries};
use super::store_cli::StoreOptions;

/// Serve the dashboards over HTTP (read-only).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Only loopback addresses unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Allow a non-loopback --listen address (there is no authentication:
    /// put a reverse proxy with access control in front).
    #[arg(long)]
    pub allow_remote: bool,
    /// The report store (SQLite or PostgreSQL).
    #[command(flatten)]
    pub store: StoreOptions,
    /// Do not query DNS (reverse names, SPF include trees): attribute
    /// sources from the stored reports only.
    #[arg(long)]
    pub offline: bool,
    /// A MaxMind DB format ASN database (GeoLite2-ASN, DB-IP ASN Lite) to
    /// name the autonomous system of sources.
    #[arg(long, env = "MAILAUTH_ASN_DB", value_name = "PATH")]
    pub asn_db: Option<std::path::PathBuf>,
}

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(
        "refusing to listen on {addr}: it is not a loopback address and the dashboards have no authentication; pass --allow-remote to do it anyway"
    )]
    NotLoopback { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Dashboard(#[from] DashboardError),
}

/// Connections handled at once (see the module comment for what happens
/// to more).
pub const MAX_CONNECTIONS: usize = 32;
/// Longest request head accepted.
const MAX_HEAD: u64 = 16 * 1024;
/// Time a client has to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// Time a client has to take the whole response.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// How long a newcomer waits for a slot when no slot can be freed.
pub const SLOT_WAIT: Duration = Duration::from_secs(2);
/// DNS time per request: lookups past it fail as temporary (attribution
/// then falls back to stored data), each lookup being bounded by the
/// resolver's own deadline.
pub const DNS_BUDGET: Duration = Duration::from_secs(5);
/// A head still incomplete after this long may be dropped for a newcomer.
const EVICT_AFTER: Duration = Duration::from_millis(50);

/// The store, as the dashboards read it (SQLite or PostgreSQL).
pub type DashStore = Box<dyn DashboardQueries + Send>;

/// Builds the attributor of one request (each has its own DNS cache).
pub type AttributorFactory = Box<dyn Fn() -> Attributor + Send + Sync>;

/// What a request handler needs: the store (one database connection,
/// locked per query) and how to attribute sources.
pub struct State {
    store: Mutex<DashStore>,
    attributor: AttributorFactory,
    /// Host names accepted in the `Host` header (DNS-rebinding guard);
    /// empty accepts any.
    hosts: Vec<String>,
}

/// The shared store seen as one request's store: each query takes the
/// lock for itself, so nothing else (DNS above all) runs under it. A lock
/// poisoned by a panicking request is taken over: queries are reads and
/// the rollup refresh is one transaction, so no half-done state remains.
struct LockedStore<'a>(&'a Mutex<DashStore>);

impl LockedStore<'_> {
    fn lock(&self) -> MutexGuard<'_, DashStore> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DashboardQueries for LockedStore<'_> {
    fn dash_rows(
        &self,
        q: super::dashq::DashQuery,
        args: &[super::dashq::Arg],
    ) -> Result<Vec<Vec<super::dashq::Cell>>, super::store::StoreError> {
        self.lock().dash_rows(q, args)
    }

    fn refresh_rollup(&mut self) -> Result<i64, super::store::StoreError> {
        self.lock().refresh_rollup()
    }
}

/// A resolver shared by all requests, seen by one request with a time
/// budget: once `until` has passed every lookup fails as temporary.
pub struct BudgetDns {
    inner: Arc<dyn SpfDns + Send + Sync>,
    until: Instant,
}

impl BudgetDns {
    pub fn new(inner: Arc<dyn SpfDns + Send + Sync>, budget: Duration) -> BudgetDns {
        BudgetDns {
            inner,
            until: Instant::now() + budget,
        }
    }

    fn check(&self, name: &str, qtype: QType) -> Result<(), DnsError> {
        if Instant::now() >= self.until {
            return Err(DnsError::Temporary {
                name: name.to_string(),
                qtype,
                detail: "the DNS time of this request is spent".to_string(),
            });
        }
        Ok(())
    }
}

impl SpfDns for BudgetDns {
    fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, DnsError> {
        self.check(name, QType::Txt)?;
        self.inner.txt(name)
    }
    fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        self.check(name, QType::A)?;
        self.inner.a(name)
    }
    fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        self.check(name, QType::Aaaa)?;
        self.inner.aaaa(name)
    }
    fn mx(&self, name: &str) -> Result<Vec<MxRecord>, DnsError> {
        self.check(name, QType::Mx)?;
        self.inner.mx(name)
    }
    fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        self.check(&ip.to_string(), QType::Ptr)?;
        self.inner.ptr(ip)
    }
}

impl State {
    pub fn new(
        store: DashStore,
        attributor: AttributorFactory,
        listen: SocketAddr,
        allow_remote: bool,
    ) -> State {
        let hosts = if allow_remote {
            Vec::new()
        } else {
            let p = listen.port();
            vec![
                format!("127.0.0.1:{p}"),
                format!("localhost:{p}"),
                format!("[::1]:{p}"),
                listen.to_string(),
            ]
        };
        State {
            store: Mutex::new(store),
            attributor,
            hosts,
        }
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    fn html(body: String) -> Response {
        Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
        }
    }
    fn json(v: &impl serde::Serialize) -> Response {
        match serde_json::to_vec_pretty(v) {
            Ok(body) => Response {
                status: 200,
                content_type: "application/json",
                body,
            },
            Err(e) => Response::error(500, &format!("cannot serialise: {e}")),
        }
    }
    fn error(status: u16, msg: &str) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(&serde_json::json!({ "error": msg })).unwrap_or_default(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Decodes `%XX` and `+` of a query component (lossy on invalid UTF-8).
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .filter(|(_, v)| !v.trim().is_empty())
        .collect()
}

/// Routes one GET request (path with query) to a response.
pub fn route(state: &State, target: &str) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let q = parse_query(query);
    let now = match crate::clock::now() {
        Ok(now) => now,
        Err(e) => return Response::error(500, &format!("reading the clock: {e}")),
    };
    let time = |k: &str| -> Result<Option<i64>, DashboardError> {
        q.get(k).map(|v| dashboard::parse_time(v, now)).transpose()
    };
    let filter = match (time("since"), time("until")) {
        (Ok(since), Ok(until)) => DashFilter {
            domain: q.get("domain").cloned(),
            since,
            until,
            source: q.get("source").cloned(),
        },
        (Err(e), _) | (_, Err(e)) => return Response::error(400, &e.to_string()),
    };
    let links = Links::Live {
        since: q.get("since").cloned(),
        until: q.get("until").cloned(),
    };
    let mut locked = LockedStore(&state.store);
    let store: &mut dyn DashboardQueries = &mut locked;
    // Each request is one run: DNS answers are cached within it only.
    let attr = &(state.attributor)();
    let segments: Vec<String> = path.split('/').skip(1).map(url_decode).collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let result = match seg.as_slice() {
        [""] => dashboard::overview(
            store,
            &DashFilter {
                domain: None,
                ..filter
            },
        )
        .map(|o| Response::html(html::overview(&o, &links))),
        ["domain", d] if !d.is_empty() => dashboard::domain(store, attr, d, &filter)
            .map(|v| Response::html(html::domain(&v, &links))),
        ["api", "overview"] => dashboard::overview(store, &filter).map(|o| Response::json(&o)),
        ["api", "domains"] => store
            .dash_domains()
            .map(|d| Response::json(&d))
            .map_err(DashboardError::from),
        ["api", "domain", d] if !d.is_empty() => {
            dashboard::domain(store, attr, d, &filter).map(|v| Response::json(&v))
        }
        ["api", "health"] => Ok(Response::json(&serde_json::json!({ "ok": true }))),
        // Prometheus text exposition format, version 0.0.4.
        ["metrics"] => super::metrics::render(store).map(|body| Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: body.into_bytes(),
        }),
        _ => Ok(Response::error(404, "no such page: try / or /api/overview")),
    };
    result.unwrap_or_else(|e| Response::error(500, &e.to_string()))
}

fn write_response(stream: &mut impl Write, r: &Response, head_only: bool) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; img-src data:\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(&r.body)?;
    }
    stream.flush()
}

/// A stream whose reads and writes must all be done by `until`: each
/// operation gets the time left as its timeout, so a client trickling one
/// byte at a time still runs out.
struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
}

impl Deadline<'_> {
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request deadline passed",
            ));
        }
        Ok(left)
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        (&mut &*self.stream).read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        (&mut &*self.stream).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (&mut &*self.stream).flush()
    }
}

/// A parsed request head: method, target, `Host` (lower case).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub host: Option<String>,
}

/// RFC 9112 §3: `request-line = method SP request-target SP HTTP-version`,
/// then header fields up to an empty line (§2.1). Reads at most
/// [`MAX_HEAD`] bytes from `input`; a head cut short is what arrived.
pub fn read_head(input: impl Read) -> std::io::Result<Head> {
    let mut reader = BufReader::new(input.take(MAX_HEAD));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut host = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("host")
        {
            host = Some(v.trim().to_ascii_lowercase());
        }
    }
    let mut parts = line.split_ascii_whitespace();
    Ok(Head {
        method: parts.next().unwrap_or("").to_string(),
        target: parts.next().unwrap_or("").to_string(),
        host,
    })
}

/// RFC 9112 §3.2: `Host` is required. Only the origin form (`/path?query`)
/// of the target is accepted, bodies are never read, and every response
/// closes the connection.
fn respond(state: &State, head: &Head) -> Response {
    if !state.hosts.is_empty() && !head.host.as_ref().is_some_and(|h| state.hosts.contains(h)) {
        Response::error(
            421,
            "unexpected Host header: use the address the server listens on",
        )
    } else if head.method != "GET" && head.method != "HEAD" {
        Response::error(405, "read-only: only GET and HEAD")
    } else if !head.target.starts_with('/') {
        Response::error(400, "bad request target")
    } else {
        route(state, &head.target)
    }
}

fn handle(state: &State, stream: TcpStream, slot: &SlotGuard) -> std::io::Result<()> {
    let head = read_head(Deadline {
        stream: &stream,
        until: Instant::now() + HEAD_DEADLINE,
    })?;
    if !slot.head_done() {
        // Dropped for a newcomer while its head was still arriving.
        return Ok(());
    }
    let response = respond(state, &head);
    let mut out = Deadline {
        stream: &stream,
        until: Instant::now() + WRITE_DEADLINE,
    };
    write_response(&mut out, &response, head.method == "HEAD")
}

/// One connection in a slot: since when, whether its head is still
/// arriving, and a handle to drop it.
struct Conn {
    since: Instant,
    reading: bool,
    stream: TcpStream,
}

#[derive(Default)]
struct SlotTable {
    next: u64,
    conns: HashMap<u64, Conn>,
}

/// The connection slots, shared by the acceptor and the handlers.
#[derive(Default)]
struct Slots {
    table: Mutex<SlotTable>,
    freed: Condvar,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, SlotTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for `stream`: a free one, or one taken from the connection
    /// that has been sending its head the longest (dropped), or one freed
    /// within [`SLOT_WAIT`]; `None` if none.
    fn acquire(self: &Arc<Self>, stream: &TcpStream) -> Option<SlotGuard> {
        let waited_until = Instant::now() + SLOT_WAIT;
        let mut table = self.lock();
        loop {
            if table.conns.len() >= MAX_CONNECTIONS {
                let slowest = table
                    .conns
                    .iter()
                    .filter(|(_, c)| c.reading && c.since.elapsed() >= EVICT_AFTER)
                    .min_by_key(|(_, c)| c.since)
                    .map(|(id, _)| *id);
                if let Some(id) = slowest
                    && let Some(c) = table.conns.remove(&id)
                {
                    let _ = c.stream.shutdown(std::net::Shutdown::Both);
                }
            }
            if table.conns.len() < MAX_CONNECTIONS {
                let clone = stream.try_clone().ok()?;
                table.next += 1;
                let id = table.next;
                table.conns.insert(
                    id,
                    Conn {
                        since: Instant::now(),
                        reading: true,
                        stream: clone,
                    },
                );
                return Some(SlotGuard {
                    slots: Arc::clone(self),
                    id,
                });
            }
            let left = waited_until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // Wake up in time to drop a head that becomes old enough.
            let nap = left.min(EVICT_AFTER);
            table = self
                .freed
                .wait_timeout(table, nap)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A taken slot, given back when dropped: at the end of the handler or
/// while a panic unwinds it.
struct SlotGuard {
    slots: Arc<Slots>,
    id: u64,
}

impl SlotGuard {
    /// Marks the head as read; `false` if the connection was dropped for a
    /// newcomer meanwhile (its slot is no longer this one's).
    fn head_done(&self) -> bool {
        let mut table = self.slots.lock();
        match table.conns.get_mut(&self.id) {
            Some(c) => {
                c.reading = false;
                true
            }
            None => false,
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.lock().conns.remove(&self.id);
        self.slots.freed.notify_one();
    }
}

/// Serves on `listener` until the process ends.
pub fn serve(listener: TcpListener, state: Arc<State>) {
    let slots = Arc::new(Slots::default());
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let Some(slot) = slots.acquire(&stream) else {
            let mut out = Deadline {
                stream: &stream,
                until: Instant::now() + Duration::from_secs(1),
            };
            let _ = write_response(&mut out, &Response::error(503, "busy"), false);
            let _ = stream.flush();
            continue;
        };
        let state = Arc::clone(&state);
        let spawned = std::thread::Builder::new()
            .name("serve".to_string())
            .spawn(move || {
                if let Err(e) = handle(&state, stream, &slot)
                    && !matches!(
                        e.kind(),
                        std::io::ErrorKind::BrokenPipe
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::NotConnected
                    )
                {
                    eprintln!("serve: {e}");
                }
                drop(slot);
            });
        if let Err(e) = spawned {
            eprintln!("serve: cannot start a thread: {e}");
        }
    }
}

/// Builds the attributor from the config (when readable) and DNS (for
/// one run of `reports html` / `summary`).
pub fn attributor(config: &Path, offline: bool) -> Attributor {
    let dns: Option<Box<dyn crate::spf::SpfDns + Send>> = if offline {
        None
    } else {
        system_resolver().map(|r| Box::new(r) as Box<dyn SpfDns + Send>)
    };
    Attributor::new(dns, configured_spf(config))
}

fn configured_spf(config: &Path) -> BTreeMap<String, String> {
    match crate::workspace::Workspace::load(config) {
        Ok(ws) => dashboard::configured_spf(&ws),
        Err(_) => BTreeMap::new(),
    }
}

fn system_resolver() -> Option<crate::dns::Resolver> {
    match crate::dns::Resolver::system() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("warning: no DNS resolver ({e}); attributing from stored reports only");
            None
        }
    }
}

/// The attributor of each `serve` request: one resolver shared by all
/// requests (it is `Sync`; each lookup has its own deadline), seen by each
/// request through a [`BudgetDns`], with a cache of its own.
pub fn attributor_factory(
    config: &Path,
    offline: bool,
    asn_db: Option<Arc<crate::reports::mmdb::Mmdb>>,
) -> AttributorFactory {
    let spf = configured_spf(config);
    let dns: Option<Arc<dyn SpfDns + Send + Sync>> = if offline {
        None
    } else {
        system_resolver().map(|r| Arc::new(r) as Arc<dyn SpfDns + Send + Sync>)
    };
    Box::new(move || {
        let dns = dns
            .as_ref()
            .map(|d| Box::new(BudgetDns::new(Arc::clone(d), DNS_BUDGET)) as Box<dyn SpfDns + Send>);
        Attributor::new(dns, spf.clone()).with_asn_db(asn_db.clone())
    })
}

/// `mailauth serve`.
pub fn run(config: &Path, args: ServeArgs) -> Result<i32, super::cli::ReportsError> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(ServeError::NotLoopback { addr: args.listen }.into());
    }
    let asn_db = super::cli::open_asn_db(args.asn_db.as_deref())?;
    let mut store: DashStore = args.store.choose(config)?.open()?;
    // Bring the rollup up to date before the first visitor waits for it.
    store.refresh_rollup()?;
    let listener = TcpListener::bind(args.listen).map_err(|source| ServeError::Bind {
        addr: args.listen,
        source,
    })?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    let attr = attributor_factory(config, args.offline, asn_db);
    let state = Arc::new(State::new(store, attr, addr, args.allow_remote));
    eprintln!("mailauth dashboards on http://{addr}/ (JSON under /api/); Ctrl-C stops");
    serve(listener, state);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn query_decoding() {
        let q = parse_query("since=30d&domain=a%2Eb.test&source=&x=1+2&bad=%zz");
        assert_eq!(q.get("since").map(String::as_str), Some("30d"));
        assert_eq!(q.get("domain").map(String::as_str), Some("a.b.test"));
        assert_eq!(q.get("x").map(String::as_str), Some("1 2"));
        assert_eq!(q.get("bad").map(String::as_str), Some("%zz"));
        assert!(!q.contains_key("source"), "empty values are no filter");
        assert_eq!(url_decode("%"), "%");
        assert_eq!(url_decode("a%4"), "a%4");
    }

    fn state() -> State {
        state_at("127.0.0.1:8080".parse().expect("addr"))
    }

    fn state_at(listen: SocketAddr) -> State {
        let store = super::super::store::SqliteStore::open_in_memory().expect("store");
        State::new(
            Box::new(store),
            Box::new(Attributor::offline),
            listen,
            false,
        )
    }

    #[test]
    fn routes() {
        let s = state();
        let r = route(&s, "/");
        assert_eq!(r.status, 200);
        assert!(String::from_utf8_lossy(&r.body).contains("No reports yet"));
        assert_eq!(route(&s, "/nope").status, 404);
        assert_eq!(route(&s, "/api/overview?since=yesterday").status, 400);
        let r = route(&s, "/api/overview?since=30d");
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["totals"]["messages"], 0);
        assert!(v["range"]["since"].is_string());
    }

    /// A store whose queries about `panic.test` panic (while the store
    /// lock is held), as a bug in a query or view would.
    struct PanickyStore(super::super::store::SqliteStore);

    impl DashboardQueries for PanickyStore {
        fn dash_rows(
            &self,
            q: super::super::dashq::DashQuery,
            args: &[super::super::dashq::Arg],
        ) -> Result<Vec<Vec<super::super::dashq::Cell>>, super::super::store::StoreError> {
            let bad = super::super::dashq::Arg::Text(Some("panic.test".to_string()));
            assert!(!args.contains(&bad), "injected panic for panic.test");
            self.0.dash_rows(q, args)
        }
        fn refresh_rollup(&mut self) -> Result<i64, super::super::store::StoreError> {
            self.0.refresh_rollup()
        }
    }

    fn get(port: u16, path: &str) -> u16 {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return 0;
        };
        let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn handler_panics_leave_the_server_healthy() {
        let store = super::super::store::SqliteStore::open_in_memory().expect("store");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::new(
            Box::new(PanickyStore(store)),
            Box::new(Attributor::offline),
            addr,
            false,
        ));
        std::thread::spawn(move || serve(listener, state));
        assert_eq!(get(addr.port(), "/api/health"), 200);
        // More panics than there are connection slots, each inside the
        // store lock.
        for _ in 0..MAX_CONNECTIONS + 8 {
            assert_eq!(get(addr.port(), "/api/domain/panic.test"), 0, "no answer");
        }
        assert_eq!(
            get(addr.port(), "/api/health"),
            200,
            "slots were given back"
        );
        assert_eq!(
            get(addr.port(), "/api/overview"),
            200,
            "the store is usable"
        );
        assert_eq!(get(addr.port(), "/"), 200);
    }

    #[test]
    fn security_headers_on_every_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(state_at(addr));
        std::thread::spawn(move || serve(listener, state));
        for (path, host, status) in [
            ("/", addr.to_string(), "200"),
            ("/nope", addr.to_string(), "404"),
            ("/", "evil.example".to_string(), "421"),
        ] {
            let mut s = TcpStream::connect(addr).expect("connect");
            write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("send");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            assert_eq!(buf.split_whitespace().nth(1), Some(status), "{buf}");
            for h in [
                "Cache-Control: no-store",
                "X-Content-Type-Options: nosniff",
                "Referrer-Policy: no-referrer",
                "Content-Security-Policy: default-src 'none'",
            ] {
                assert!(buf.contains(h), "{path}: {h} missing");
            }
        }
    }

    #[test]
    fn request_heads() {
        let h = read_head(&b"GET /a?b=1 HTTP/1.1\r\nHOST: Example:80\r\nX: y\r\n\r\nbody"[..])
            .expect("head");
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/a?b=1");
        assert_eq!(h.host.as_deref(), Some("example:80"));
        let h = read_head(&b""[..]).expect("empty");
        assert_eq!(h, Head::default());
        // Past MAX_HEAD nothing more is read.
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', 100_000));
        big.extend(b"\r\nHost: late\r\n\r\n");
        assert_eq!(read_head(&big[..]).expect("big").host, None);
    }

    #[test]
    fn refuses_remote_without_flag() {
        let args = ServeArgs {
            listen: "0.0.0.0:0".parse().expect("addr"),
            allow_remote: false,
            store: StoreOptions {
                db: Some(PathBuf::from("/nonexistent/never-created.db")),
                ..StoreOptions::default()
            },
            offline: true,
            asn_db: None,
        };
        let e = run(Path::new("missing.yaml"), args).expect_err("refused");
        assert!(e.to_string().contains("not a loopback address"), "{e}");
    }
}
