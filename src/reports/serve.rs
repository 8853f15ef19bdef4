//! `mailauth serve`: the dashboard pages live from the report store, with
//! filters in the URL and JSON endpoints under `/api/` for scripts and
//! Grafana. Read-only (the one write is the rollup cache the store keeps
//! up to date), loopback by default.
//!
//! Owns a small std-only HTTP/1.1 server (one short-lived thread per
//! connection, bounded), routing and query parsing. Leaves the views to
//! `reports::dashboard` and SQL to `reports::dashq`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// Connections handled at once; more get 503.
const MAX_CONNECTIONS: usize = 32;
/// Longest request head accepted.
const MAX_HEAD: u64 = 16 * 1024;

/// The store, as the dashboards read it (SQLite or PostgreSQL).
pub type DashStore = Box<dyn DashboardQueries + Send>;

struct Inner {
    store: DashStore,
    attr: Attributor,
}

/// What a request handler needs: the store and the attributor, behind one
/// lock (one database connection, not shared between threads).
pub struct State {
    inner: Mutex<Inner>,
    /// Host names accepted in the `Host` header (DNS-rebinding guard);
    /// empty accepts any.
    hosts: Vec<String>,
}

impl State {
    pub fn new(
        store: DashStore,
        attr: Attributor,
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
            inner: Mutex::new(Inner { store, attr }),
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
    let now = crate::clock::now().unwrap_or(0);
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
    let Ok(mut guard) = state.inner.lock() else {
        return Response::error(500, "internal state poisoned by an earlier failure");
    };
    let Inner { store, attr } = &mut *guard;
    let store = store.as_mut();
    // Each request is one run: DNS answers are cached within it only.
    attr.reset();
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
        _ => Ok(Response::error(404, "no such page: try / or /api/overview")),
    };
    result.unwrap_or_else(|e| Response::error(500, &e.to_string()))
}

fn write_response(stream: &mut TcpStream, r: &Response, head_only: bool) -> std::io::Result<()> {
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

/// RFC 9112 §3: `request-line = method SP request-target SP HTTP-version`,
/// then header fields up to an empty line; §3.2: `Host` is required. Only
/// the origin form (`/path?query`) of the target is accepted, bodies are
/// never read, and every response closes the connection.
fn handle(state: &State, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new((&stream).take(MAX_HEAD));
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
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response =
        if !state.hosts.is_empty() && !host.as_ref().is_some_and(|h| state.hosts.contains(h)) {
            Response::error(
                421,
                "unexpected Host header: use the address the server listens on",
            )
        } else if method != "GET" && method != "HEAD" {
            Response::error(405, "read-only: only GET and HEAD")
        } else if !target.starts_with('/') {
            Response::error(400, "bad request target")
        } else {
            route(state, target)
        };
    write_response(&mut stream, &response, method == "HEAD")
}

/// Serves on `listener` until the process ends.
pub fn serve(listener: TcpListener, state: Arc<State>) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = write_response(&mut stream, &Response::error(503, "busy"), false);
            continue;
        }
        let (state, active) = (Arc::clone(&state), Arc::clone(&active));
        std::thread::spawn(move || {
            if let Err(e) = handle(&state, stream)
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                eprintln!("serve: {e}");
            }
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Builds the attributor from the config (when readable) and DNS.
pub fn attributor(config: &Path, offline: bool) -> Attributor {
    let spf = match crate::workspace::Workspace::load(config) {
        Ok(ws) => dashboard::configured_spf(&ws),
        Err(_) => BTreeMap::new(),
    };
    let dns: Option<Box<dyn crate::spf::SpfDns + Send>> = if offline {
        None
    } else {
        match crate::dns::Resolver::system() {
            Ok(r) => Some(Box::new(r)),
            Err(e) => {
                eprintln!("warning: no DNS resolver ({e}); attributing from stored reports only");
                None
            }
        }
    };
    Attributor::new(dns, spf)
}

/// `mailauth serve`.
pub fn run(config: &Path, args: ServeArgs) -> anyhow::Result<i32> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(ServeError::NotLoopback { addr: args.listen }.into());
    }
    let mut store: DashStore = args.store.choose(config)?.open()?;
    // Bring the rollup up to date before the first visitor waits for it.
    store.refresh_rollup()?;
    let listener = TcpListener::bind(args.listen).map_err(|source| ServeError::Bind {
        addr: args.listen,
        source,
    })?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    let attr = attributor(config, args.offline);
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
        let store = super::super::store::SqliteStore::open_in_memory().expect("store");
        State::new(
            Box::new(store),
            Attributor::offline(),
            "127.0.0.1:8080".parse().expect("addr"),
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
        };
        let e = run(Path::new("missing.yaml"), args).expect_err("refused");
        assert!(e.to_string().contains("not a loopback address"), "{e}");
    }
}
