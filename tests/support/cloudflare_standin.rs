//! A local stand-in for the Cloudflare API v4 DNS endpoints, served over
//! HTTP/1.1 on loopback from the test process (std `TcpListener`, one thread
//! per connection). It implements what mailauth uses, validating requests
//! the way Cloudflare documents it:
//!
//! - `GET /zones?name=` and `GET /zones/:id/dns_records?page=&per_page=`
//!   (per_page 5..=5000000, `result_info {page, per_page, count,
//!   total_count, total_pages}`);
//! - `POST`, `PUT`, `PATCH`, `DELETE /zones/:id/dns_records[/:id]`;
//! - every answer is `{success, errors: [{code, message}], messages,
//!   result, result_info}`;
//! - a missing or malformed `Authorization: Bearer` header is 401 with code
//!   10000 ("Authentication error"), an unknown token 403 with code 9109
//!   ("Invalid access token");
//! - bad content is 400: an unknown type or a name outside the zone is
//!   1004 ("DNS Validation Error"), TXT content over 2048 characters is
//!   1004 as well, an identical record 81058;
//! - [`Standin::throttle_next`] makes the next requests answer 429 with
//!   `Retry-After` and code 971;
//! - [`Standin::stall_next_writes`] makes the next writes (POST, PATCH,
//!   DELETE) take effect and then never be answered (the connection is
//!   held, then closed), as a write whose answer is lost to a timeout.
//!
//! The provider under test does not know it talks to a stand-in: it only
//! gets a base URL.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Record {
    pub id: String,
    pub rtype: String,
    pub name: String,
    pub content: String,
    pub ttl: u32,
    pub priority: Option<u16>,
    pub modified: u64,
}

impl Record {
    fn json(&self, zone_id: &str, zone: &str) -> Value {
        let mut v = json!({
            "id": self.id,
            "zone_id": zone_id,
            "zone_name": zone,
            "type": self.rtype,
            "name": self.name,
            "content": self.content,
            "ttl": self.ttl,
            "proxied": false,
            "proxiable": false,
            "created_on": "2026-01-01T00:00:00Z",
            "modified_on": format!("2026-01-01T00:00:{:02}.{:06}Z", self.modified % 60, self.modified),
        });
        if let Some(p) = self.priority {
            v["priority"] = p.into();
        }
        v
    }
}

/// A seeded record: (name, type, ttl, content, priority).
pub type Seed<'a> = (&'a str, &'a str, u32, &'a str, Option<u16>);
/// An answer: status, JSON body, extra headers.
type Answer = (u16, Value, Vec<(String, String)>);

#[derive(Default)]
struct State {
    /// zone id → (zone name, records)
    zones: BTreeMap<String, (String, Vec<Record>)>,
    next_id: u64,
    clock: u64,
    throttle: usize,
    stall_writes: usize,
}

pub struct Standin {
    port: u16,
    token: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    /// Requests served, throttled ones included.
    pub requests: Arc<AtomicUsize>,
    /// 429 answers served.
    pub throttled: Arc<AtomicUsize>,
    /// Writes (POST, PATCH, DELETE) received, stalled ones included.
    pub writes: Arc<AtomicUsize>,
}

const TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CERT", "CNAME", "DNSKEY", "DS", "HTTPS", "LOC", "MX", "NAPTR", "NS",
    "PTR", "SMIMEA", "SRV", "SSHFP", "SVCB", "TLSA", "TXT", "URI",
];

impl Standin {
    /// Serves `zones` (zone name, records as `(name, type, ttl, content,
    /// priority)`), accepting `token`.
    pub fn start(token: &str, zones: &[(&str, Vec<Seed<'_>>)]) -> Standin {
        let mut state = State::default();
        for (i, (zone, records)) in zones.iter().enumerate() {
            let zid = format!("{:032x}", i + 1);
            let mut list = Vec::new();
            for (name, rtype, ttl, content, priority) in records {
                state.next_id += 1;
                list.push(Record {
                    id: format!("{:032x}", 0x1000 + state.next_id),
                    rtype: rtype.to_string(),
                    name: name.to_string(),
                    content: content.to_string(),
                    ttl: *ttl,
                    priority: *priority,
                    modified: 0,
                });
            }
            state.zones.insert(zid, (zone.to_string(), list));
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stand-in");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let throttled = Arc::new(AtomicUsize::new(0));
        let (st, sp, rq, tok) = (
            state.clone(),
            stop.clone(),
            requests.clone(),
            token.to_string(),
        );
        let th = throttled.clone();
        let writes = Arc::new(AtomicUsize::new(0));
        let wr = writes.clone();
        thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (st, rq, tok, th) = (st.clone(), rq.clone(), tok.clone(), th.clone());
                        let wr = wr.clone();
                        thread::spawn(move || serve(conn, &st, &rq, &th, &wr, &tok));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Standin {
            port,
            token: token.to_string(),
            state,
            stop,
            requests,
            throttled,
            writes,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/client/v4", self.port)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The next `n` requests are answered 429 with `Retry-After: 1`.
    pub fn throttle_next(&self, n: usize) {
        self.state.lock().expect("state").throttle = n;
    }

    /// The next `n` writes take effect, then their answer never comes: the
    /// connection is held for 5 s and closed.
    pub fn stall_next_writes(&self, n: usize) {
        self.state.lock().expect("state").stall_writes = n;
    }

    /// All records of `zone`, as stored.
    pub fn records(&self, zone: &str) -> Vec<Record> {
        let st = self.state.lock().expect("state");
        st.zones
            .values()
            .find(|(z, _)| z == zone)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    }

    /// Replaces the TXT records at `name`, as another API user would.
    pub fn set_txt(&self, zone: &str, name: &str, content: &str) {
        let mut st = self.state.lock().expect("state");
        st.clock += 1;
        st.next_id += 1;
        let (clock, id) = (st.clock, st.next_id);
        let Some((_, records)) = st.zones.values_mut().find(|(z, _)| z == zone) else {
            panic!("no zone {zone}");
        };
        records.retain(|r| !(r.name == name && r.rtype == "TXT"));
        records.push(Record {
            id: format!("{:032x}", 0x1000 + id),
            rtype: "TXT".into(),
            name: name.into(),
            content: content.into(),
            ttl: 300,
            priority: None,
            modified: clock,
        });
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn envelope(ok: bool, result: Value, errors: Vec<(i64, String)>, info: Option<Value>) -> Value {
    let mut v = json!({
        "success": ok,
        "errors": errors.iter().map(|(c, m)| json!({"code": c, "message": m})).collect::<Vec<_>>(),
        "messages": [],
        "result": result,
    });
    if let Some(i) = info {
        v["result_info"] = i;
    }
    v
}

fn error(status: u16, code: i64, msg: &str) -> Answer {
    (
        status,
        envelope(false, Value::Null, vec![(code, msg.to_string())], None),
        vec![],
    )
}

fn serve(
    conn: TcpStream,
    state: &Mutex<State>,
    requests: &AtomicUsize,
    throttled: &AtomicUsize,
    writes: &AtomicUsize,
    token: &str,
) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut conn = conn;
    // Keep-alive: serve requests until the client closes.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = match (parts.next(), parts.next()) {
            (Some(m), Some(t)) => (m.to_string(), t.to_string()),
            _ => return,
        };
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let write = matches!(method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE");
        if write {
            writes.fetch_add(1, Ordering::SeqCst);
        }
        let (status, value, extra) = handle(state, token, &method, &target, &headers, &body);
        if status == 429 {
            throttled.fetch_add(1, Ordering::SeqCst);
        }
        let stall = write && {
            let mut st = state.lock().expect("state");
            let stall = st.stall_writes > 0;
            st.stall_writes = st.stall_writes.saturating_sub(1);
            stall
        };
        if stall {
            // Applied, never answered.
            thread::sleep(Duration::from_secs(5));
            return;
        }
        let text = value.to_string();
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            429 => "Too Many Requests",
            _ => "Error",
        };
        let mut head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            text.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if conn.write_all(head.as_bytes()).is_err() || conn.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

fn query_params(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2E", ".").replace("%2e", ".")))
        .collect()
}

fn handle(
    state: &Mutex<State>,
    token: &str,
    method: &str,
    target: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Answer {
    let mut st = state.lock().expect("state");
    if st.throttle > 0 {
        st.throttle -= 1;
        return (
            429,
            envelope(
                false,
                Value::Null,
                vec![(
                    971,
                    "Please wait and consider throttling your request speed".into(),
                )],
                None,
            ),
            vec![("Retry-After".into(), "1".into())],
        );
    }
    match headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        None => return error(401, 10000, "Authentication error"),
        Some(t) if t != token => return error(403, 9109, "Invalid access token"),
        Some(_) => {}
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params = query_params(query);
    let Some(rest) = path.strip_prefix("/client/v4") else {
        return error(
            404,
            7003,
            "Could not route to /, perhaps your object identifier is invalid?",
        );
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segs.as_slice()) {
        ("GET", ["zones"]) => {
            let want = params.get("name");
            let zones: Vec<Value> = st
                .zones
                .iter()
                .filter(|(_, (z, _))| want.is_none_or(|w| w == z))
                .map(|(id, (z, _))| json!({"id": id, "name": z, "status": "active"}))
                .collect();
            let n = zones.len();
            (
                200,
                envelope(
                    true,
                    Value::Array(zones),
                    vec![],
                    Some(
                        json!({"page": 1, "per_page": 20, "count": n, "total_count": n, "total_pages": 1}),
                    ),
                ),
                vec![],
            )
        }
        (_, ["zones", zid, "dns_records", ..]) if !st.zones.contains_key(*zid) => error(
            404,
            7003,
            "Could not route to /zones, perhaps your object identifier is invalid?",
        ),
        ("GET", ["zones", zid, "dns_records"]) => {
            let page: usize = params.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let per_page: usize = params
                .get("per_page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(100);
            if page < 1 || !(5..=5_000_000).contains(&per_page) {
                return error(400, 1004, "per_page must be between 5 and 5000000");
            }
            let (zone, records) = &st.zones[*zid];
            let mut sorted = records.clone();
            sorted.sort_by(|a, b| (&a.name, &a.rtype, &a.id).cmp(&(&b.name, &b.rtype, &b.id)));
            let total = sorted.len();
            let pages = total.div_ceil(per_page).max(1);
            let slice: Vec<Value> = sorted
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|r| r.json(zid, zone))
                .collect();
            let count = slice.len();
            (
                200,
                envelope(
                    true,
                    Value::Array(slice),
                    vec![],
                    Some(json!({"page": page, "per_page": per_page, "count": count,
                                "total_count": total, "total_pages": pages})),
                ),
                vec![],
            )
        }
        ("POST", ["zones", zid, "dns_records"]) => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return error(400, 9207, "Request body is invalid.");
            };
            let zid = zid.to_string();
            let rec = match validate(&st, &zid, &v, None) {
                Ok(r) => r,
                Err(e) => return e,
            };
            st.next_id += 1;
            st.clock += 1;
            let rec = Record {
                id: format!("{:032x}", 0x1000 + st.next_id),
                modified: st.clock,
                ..rec
            };
            let zone = st.zones[&zid].0.clone();
            let out = rec.json(&zid, &zone);
            if let Some(z) = st.zones.get_mut(&zid) {
                z.1.push(rec);
            }
            (200, envelope(true, out, vec![], None), vec![])
        }
        (m @ ("PUT" | "PATCH" | "DELETE"), ["zones", zid, "dns_records", rid]) => {
            let zid = zid.to_string();
            let Some(pos) = st.zones[&zid].1.iter().position(|r| r.id == *rid) else {
                return error(404, 81044, "Record does not exist.");
            };
            if m == "DELETE" {
                if let Some(z) = st.zones.get_mut(&zid) {
                    z.1.remove(pos);
                }
                return (
                    200,
                    envelope(true, json!({"id": rid}), vec![], None),
                    vec![],
                );
            }
            let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
                return error(400, 9207, "Request body is invalid.");
            };
            let old = st.zones[&zid].1[pos].clone();
            if m == "PATCH" {
                // PATCH: fields not sent keep their value.
                for (k, val) in [
                    ("type", json!(old.rtype)),
                    ("name", json!(old.name)),
                    ("content", json!(old.content)),
                    ("ttl", json!(old.ttl)),
                ] {
                    if v.get(k).is_none() {
                        v[k] = val;
                    }
                }
                if v.get("priority").is_none()
                    && let Some(p) = old.priority
                {
                    v["priority"] = p.into();
                }
            }
            let rec = match validate(&st, &zid, &v, Some(rid)) {
                Ok(r) => r,
                Err(e) => return e,
            };
            st.clock += 1;
            let rec = Record {
                id: old.id.clone(),
                modified: st.clock,
                ..rec
            };
            let zone = st.zones[&zid].0.clone();
            let out = rec.json(&zid, &zone);
            if let Some(z) = st.zones.get_mut(&zid) {
                z.1[pos] = rec;
            }
            (200, envelope(true, out, vec![], None), vec![])
        }
        _ => error(405, 10405, "Method not allowed for this route"),
    }
}

/// The documented checks on a record body.
fn validate(st: &State, zid: &str, v: &Value, replacing: Option<&str>) -> Result<Record, Answer> {
    let (zone, records) = &st.zones[zid];
    let rtype = v["type"].as_str().unwrap_or("");
    if !TYPES.contains(&rtype) {
        return Err(error(
            400,
            1004,
            "DNS Validation Error: invalid record type",
        ));
    }
    let name = v["name"]
        .as_str()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if name != *zone && !name.ends_with(&format!(".{zone}")) {
        return Err(error(
            400,
            1004,
            "DNS Validation Error: name is outside the zone",
        ));
    }
    let Some(content) = v["content"].as_str() else {
        return Err(error(
            400,
            1004,
            "DNS Validation Error: content is required",
        ));
    };
    if rtype == "TXT" && content.chars().count() > 2048 {
        return Err(error(
            400,
            1004,
            "DNS Validation Error: content for TXT record must be 2048 characters or less",
        ));
    }
    let ttl = v["ttl"].as_u64().unwrap_or(1);
    if ttl != 1 && !(30..=86400).contains(&ttl) {
        return Err(error(
            400,
            1004,
            "DNS Validation Error: ttl must be 1 (auto) or 30..86400",
        ));
    }
    let priority = v["priority"].as_u64().map(|p| p as u16);
    if rtype == "MX" && priority.is_none() {
        return Err(error(
            400,
            1004,
            "DNS Validation Error: MX records need a priority",
        ));
    }
    if records.iter().any(|r| {
        Some(r.id.as_str()) != replacing
            && r.name == name
            && r.rtype == rtype
            && r.content == content
    }) {
        return Err(error(400, 81058, "An identical record already exists."));
    }
    Ok(Record {
        id: String::new(),
        rtype: rtype.to_string(),
        name,
        content: content.to_string(),
        ttl: ttl as u32,
        priority,
        modified: 0,
    })
}
