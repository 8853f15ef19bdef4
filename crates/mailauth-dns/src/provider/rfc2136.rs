//! RFC 2136 dynamic update with TSIG (RFC 8945): reads a zone by AXFR and
//! writes each plan as one atomic, signed UPDATE message guarded by the SOA
//! the plan saw. Works with any primary that speaks both (BIND, PowerDNS,
//! Knot, ...).
//!
//! This module owns the wire side only: the TSIG key reference, the
//! connection, the UPDATE message layout and the mapping of answers to
//! [`ProviderError`]. It decides nothing about *what* to change or read:
//! the changes come from `diff`, and when the server refuses a zone
//! transfer, the names to read one by one come from the caller's
//! [`ReadScope`] (`ownership::OwnedNames`).
//!
//! Every exchange uses TCP: AXFR requires it (RFC 5936 §4.2), a plan that
//! publishes a 4096-bit DKIM key does not fit in 512 octets (RFC 1035
//! §4.2.1) anyway, and a single transport means a single code path whose
//! TSIG verification covers every answer.
//!
//! Connections are pooled per server and key, process-wide: at most
//! [`MAX_CONNECTIONS`] are open to one server at once, each carries one
//! exchange at a time and is kept open for the next one. RFC 7766 §6.2.1:
//! "DNS clients MUST take care to minimize the number of concurrent TCP
//! connections made to any individual server"; RFC 5936 §4.1: "Servers
//! MUST be able to handle multiple AXFR requests on a single TCP
//! connection".
//! Planning 1,000 zones on 16 threads thus opens a handful of connections,
//! not 1,000: one connection per zone had 16 connects at a time racing
//! BIND's listen queue (`tcp-listen-queue`, 10 by default), and a SYN
//! dropped on overflow costs the kernel's 1 s initial retransmission
//! timeout (BENCHMARKS.md has the evidence). The pooled connections live on
//! the process's one tokio runtime ([`crate::rt`], started on first use)
//! that every calling thread blocks on, so the provider can be called from
//! many threads at once. A pooled connection that the server closed in the
//! meantime is replaced once, transparently, for reads (AXFR, queries); an
//! UPDATE is sent again that way only when it never left (the connection
//! was found closed before sending), otherwise it goes through the normal
//! retries, which know that an earlier attempt may have been applied.
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt as _;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::xfer::DnsMultiplexer;
use hickory_net::{DnsHandle as _, NetError};
use hickory_proto::op::{
    DnsRequest, DnsResponse, Message, OpCode, Query, ResponseCode, UpdateMessage,
};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::rdata::{CNAME, MX, SOA, TXT};
use hickory_proto::rr::{DNSClass, RData as HRData, Record, RecordType, TSigner};

pub use super::config::{Rfc2136Config, TsigAlgorithmName};

use super::{Capabilities, Change, Fetched, Provider, ProviderError, ReadScope};
use crate::record::{Name, RData, RType, RecordSet, Zone};

const PROVIDER: &str = "rfc2136";

/// The hickory algorithm of a configured TSIG algorithm.
fn tsig_algorithm(name: TsigAlgorithmName) -> TsigAlgorithm {
    match name {
        TsigAlgorithmName::HmacSha256 => TsigAlgorithm::HmacSha256,
        TsigAlgorithmName::HmacSha512 => TsigAlgorithm::HmacSha512,
    }
}

/// Why a single DNS exchange failed, before it is given a zone and turned
/// into a [`ProviderError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rfc2136Error {
    #[error("no answer from {server} within {secs} s")]
    Timeout { server: SocketAddr, secs: u64 },
    #[error("cannot connect to {server}: {detail}")]
    Connect { server: SocketAddr, detail: String },
    /// A pooled connection was closed (by the server, idle) before the
    /// request could be sent on it: nothing reached the server.
    #[error("the connection to {server} was closed before the request was sent")]
    Closed { server: SocketAddr },
    #[error("TSIG key rejected by server ({detail})")]
    BadKey { detail: String },
    #[error("server answered {rcode}")]
    Rcode { rcode: ResponseCode },
    #[error("{detail}")]
    Protocol { detail: String },
    #[error("cannot start the I/O runtime: {source}")]
    Runtime { source: std::io::Error },
}

impl Rfc2136Error {
    fn transient(&self) -> bool {
        matches!(
            self,
            Rfc2136Error::Timeout { .. }
                | Rfc2136Error::Connect { .. }
                | Rfc2136Error::Closed { .. }
                | Rfc2136Error::Rcode {
                    rcode: ResponseCode::ServFail
                }
        )
    }
}

/// Reads a credential by reference: from the environment variable or the
/// file named in the config, never from the config itself. Exactly one of
/// the two must be set.
pub(crate) fn read_secret(
    provider: &str,
    secret_env: Option<&str>,
    secret_file: Option<&std::path::Path>,
) -> Result<String, ProviderError> {
    let config_err = |detail: String| ProviderError::Rejected {
        provider: provider.to_string(),
        zone: "-".to_string(),
        detail,
    };
    match (secret_env, secret_file) {
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Ok(_) => Err(config_err(format!(
                "environment variable {var} (secret_env) is empty"
            ))),
            Err(_) => Err(config_err(format!(
                "environment variable {var} (secret_env) is not set"
            ))),
        },
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Ok(_) => Err(config_err(format!(
                "secret_file {} is empty",
                path.display()
            ))),
            Err(source) => Err(ProviderError::Io {
                provider: provider.to_string(),
                zone: "-".to_string(),
                path: path.display().to_string(),
                source,
            }),
        },
        (Some(_), Some(_)) => Err(config_err(
            "set only one of secret_env and secret_file".to_string(),
        )),
        (None, None) => Err(config_err(
            "a credential is required: set secret_env or secret_file".to_string(),
        )),
    }
}

/// Takes the secret out of a BIND key clause
/// (`key "n" { algorithm hmac-sha256; secret "BASE64"; };`), or returns the
/// text unchanged when it is a bare base64 secret.
fn secret_from_key_text(text: &str) -> &str {
    if let Some(pos) = text.find("secret") {
        let rest = &text[pos + "secret".len()..];
        if let Some(start) = rest.find('"')
            && let Some(len) = rest[start + 1..].find('"')
        {
            return &rest[start + 1..start + 1 + len];
        }
    }
    text.trim()
}

/// An RFC 2136 primary reached with one TSIG key.
pub struct Rfc2136 {
    server: SocketAddr,
    signer: TSigner,
    timeout: Duration,
    retries: u32,
    pool: Arc<Pool>,
    /// What to read when AXFR is refused; without one, the refusal is the
    /// answer.
    scope: Option<Arc<dyn ReadScope>>,
}

/// Connections to one server (with one key and timeout) open at once, in
/// the whole process. Well below BIND's default `tcp-listen-queue` (10) and
/// `tcp-clients` (150), so a burst of connects is never dropped; enough to
/// keep a 2-core server busy, since a connection is reused from one
/// exchange to the next.
pub const MAX_CONNECTIONS: usize = 4;

type DnsClient = Client<TokioRuntimeProvider>;

/// What makes two providers' connections interchangeable: the same server,
/// key and timeout (the multiplexer signs with the key and enforces the
/// timeout).
#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    server: SocketAddr,
    key_name: String,
    algorithm: TsigAlgorithmName,
    secret: Vec<u8>,
    timeout: Duration,
}

/// The idle connections to one server and the permits that bound how many
/// exist (idle or busy).
struct Pool {
    idle: Mutex<Vec<DnsClient>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Pool {
    fn get(key: PoolKey) -> Arc<Pool> {
        static POOLS: OnceLock<Mutex<HashMap<PoolKey, Arc<Pool>>>> = OnceLock::new();
        let pools = POOLS.get_or_init(Default::default);
        let mut pools = pools.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Pool {
                    idle: Mutex::new(Vec::new()),
                    permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
                })
            })
            .clone()
    }

    fn take(&self) -> Option<DnsClient> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put(&self, client: DnsClient) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(client);
    }
}

/// Runs `fut` to completion on the calling thread, with the pooled
/// connections driven by the shared runtime's I/O threads (see the module
/// docs).
fn block_on<T>(fut: impl std::future::Future<Output = T>) -> std::io::Result<T> {
    crate::rt::block_on(fut)
}

impl std::fmt::Debug for Rfc2136 {
    // The key stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136")
            .field("server", &self.server)
            .field("key_name", &self.signer.signer_name().to_string())
            .finish_non_exhaustive()
    }
}

impl Rfc2136 {
    pub fn from_config(cfg: &Rfc2136Config) -> Result<Self, ProviderError> {
        let config_err = |detail: String| ProviderError::Rejected {
            provider: PROVIDER.to_string(),
            zone: "-".to_string(),
            detail,
        };
        let server = resolve_server(&cfg.server).map_err(config_err)?;
        let text = read_secret(
            PROVIDER,
            cfg.secret_env.as_deref(),
            cfg.secret_file.as_deref(),
        )?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret_from_key_text(&text))
            .map_err(|e| config_err(format!("the TSIG secret is not valid base64: {e}")))?;
        let key_name = hickory_proto::rr::Name::from_ascii(&cfg.key_name)
            .map_err(|e| config_err(format!("bad key_name `{}`: {e}", cfg.key_name)))?;
        // RFC 8945 §5.2.3: "Fudge ... 300 seconds is RECOMMENDED".
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let pool = Pool::get(PoolKey {
            server,
            key_name: cfg.key_name.clone(),
            algorithm: cfg.algorithm,
            secret: secret.clone(),
            timeout,
        });
        let signer = TSigner::new(secret, tsig_algorithm(cfg.algorithm), key_name, 300)
            .map_err(|e| config_err(format!("cannot use the TSIG key: {e}")))?;
        Ok(Rfc2136 {
            server,
            signer,
            timeout,
            retries: cfg.retries,
            pool,
            scope: None,
        })
    }

    /// Reads the RRsets `scope` names, one query each, when the server
    /// refuses the zone transfer (REFUSED or NOTAUTH); without a scope that
    /// refusal fails the read.
    pub fn with_read_scope(mut self, scope: Arc<dyn ReadScope>) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Sends one request (a query or an UPDATE) and returns the answer,
    /// whatever its RCODE. Only a read (`idempotent`) is re-sent on a fresh
    /// connection when a pooled one turns out to be closed.
    async fn exchange(&self, msg: Message, idempotent: bool) -> Result<DnsResponse, Rfc2136Error> {
        self.with_connection(idempotent, async |client| {
            let mut stream = client.send(DnsRequest::from(msg.clone()));
            match stream.next().await {
                Some(Ok(resp)) => Ok(resp),
                Some(Err(e)) => Err(self.net_error(e)),
                // The stream ends without an answer when the connection dies
                // or the multiplexer gives up waiting: both are worth a retry.
                None => Err(Rfc2136Error::Connect {
                    server: self.server,
                    detail: "the connection closed without an answer".to_string(),
                }),
            }
        })
        .await
    }

    /// Runs `op` over a pooled connection: waits for one of the
    /// [`MAX_CONNECTIONS`] permits, takes an idle connection or opens one,
    /// and gives it back to the pool only when `op` succeeded (after any
    /// failure the connection's state is unknown, so it is closed).
    async fn with_connection<T>(
        &self,
        idempotent: bool,
        mut op: impl AsyncFnMut(&mut DnsClient) -> Result<T, Rfc2136Error>,
    ) -> Result<T, Rfc2136Error> {
        let _permit = self
            .pool
            .permits
            .acquire()
            .await
            .map_err(|e| Rfc2136Error::Protocol {
                detail: format!("connection pool: {e}"),
            })?;
        let (mut client, reused) = match self.pool.take() {
            Some(c) => (c, true),
            None => (self.connect().await?, false),
        };
        let mut result = op(&mut client).await;
        let closed = match &result {
            Err(Rfc2136Error::Closed { .. }) => true,
            Err(Rfc2136Error::Connect { .. }) => idempotent,
            _ => false,
        };
        if reused && closed {
            // The server closed the idle connection (BIND's tcp-idle-timeout,
            // RFC 7766 §6.2.3): one more try on a new one. An UPDATE is sent
            // again only when it never left (`Closed`).
            client = self.connect().await?;
            result = op(&mut client).await;
        }
        if result.is_ok() {
            self.pool.put(client);
        }
        result
    }

    async fn connect(&self) -> Result<DnsClient, Rfc2136Error> {
        let (connect, handle) = TcpClientStream::new(
            self.server,
            None,
            Some(self.timeout),
            TokioRuntimeProvider::new(),
        );
        let stream = match tokio::time::timeout(self.timeout, connect).await {
            Err(_) => {
                return Err(Rfc2136Error::Timeout {
                    server: self.server,
                    secs: self.timeout.as_secs(),
                });
            }
            Ok(Err(e)) => return Err(self.net_error(e)),
            Ok(Ok(s)) => s,
        };
        let mux = DnsMultiplexer::new(stream, handle)
            .with_timeout(self.timeout)
            .with_signer(self.signer.clone());
        let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(mux);
        tokio::spawn(bg);
        Ok(client)
    }

    fn net_error(&self, e: NetError) -> Rfc2136Error {
        match e {
            // The connection's exchange task has ended, so the request was
            // not enqueued (hickory's `BufDnsRequestStreamHandle::send`).
            NetError::Busy => Rfc2136Error::Closed {
                server: self.server,
            },
            NetError::Timeout => Rfc2136Error::Timeout {
                server: self.server,
                secs: self.timeout.as_secs(),
            },
            NetError::Io(io) => Rfc2136Error::Connect {
                server: self.server,
                detail: io.to_string(),
            },
            NetError::Dns(hickory_net::DnsError::ResponseCode(rcode)) => {
                Rfc2136Error::Rcode { rcode }
            }
            other => {
                let detail = other.to_string();
                // A server that rejects our key answers without a MAC (RFC
                // 8945 §5.3.2: "the server MUST NOT generate a MAC"); hickory
                // reports that unsigned answer as a protocol error.
                let lower = detail.to_ascii_lowercase();
                if lower.contains("hmac")
                    || lower.contains("tsig")
                    || lower.contains("badsig")
                    || lower.contains("badkey")
                    || lower.contains("signature")
                {
                    let detail =
                        if lower.contains("truncated hmac") || lower.contains("missing tsig") {
                            "the server answered without a TSIG MAC, as it does for a wrong \
                         key name, secret or algorithm (BADSIG/BADKEY)"
                                .to_string()
                        } else {
                            detail
                        };
                    Rfc2136Error::BadKey { detail }
                } else if lower.contains("timed out") || lower.contains("timeout") {
                    Rfc2136Error::Timeout {
                        server: self.server,
                        secs: self.timeout.as_secs(),
                    }
                } else if lower.contains("connection") || lower.contains("refused") {
                    Rfc2136Error::Connect {
                        server: self.server,
                        detail,
                    }
                } else {
                    Rfc2136Error::Protocol { detail }
                }
            }
        }
    }

    /// Runs `op` with bounded exponential backoff on transient failures.
    fn with_retries<T>(
        &self,
        mut op: impl AsyncFnMut(u32) -> Result<T, Rfc2136Error>,
    ) -> Result<T, Rfc2136Error> {
        block_on(async {
            let mut attempt = 0;
            loop {
                match op(attempt).await {
                    Err(e) if e.transient() && attempt < self.retries => {
                        let delay = Duration::from_millis(200u64 << attempt.min(4));
                        tokio::time::sleep(delay.min(Duration::from_secs(3))).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
        .unwrap_or_else(|source| Err(Rfc2136Error::Runtime { source }))
    }

    fn error(&self, zone: &Name, e: Rfc2136Error) -> ProviderError {
        let provider = self.id();
        let zone = zone.to_string();
        match e {
            Rfc2136Error::Timeout { .. }
            | Rfc2136Error::Connect { .. }
            | Rfc2136Error::Closed { .. } => ProviderError::Unreachable {
                provider,
                zone,
                detail: e.to_string(),
            },
            Rfc2136Error::BadKey { .. } => ProviderError::Auth {
                provider,
                zone,
                detail: e.to_string(),
            },
            Rfc2136Error::Rcode { rcode } => rcode_error(provider, zone, rcode),
            Rfc2136Error::Protocol { .. } => ProviderError::Rejected {
                provider,
                zone,
                detail: e.to_string(),
            },
            Rfc2136Error::Runtime { source } => ProviderError::Io {
                provider,
                zone,
                path: "tokio runtime".to_string(),
                source,
            },
        }
    }

    /// AXFR, answer by answer (RFC 5936 §2.2: the transfer starts and ends
    /// with the zone's SOA).
    async fn axfr(&self, zone: &hickory_proto::rr::Name) -> Result<Vec<Record>, Rfc2136Error> {
        self.with_connection(true, async |client| {
            let mut stream = client.zone_transfer(zone.clone(), None);
            let mut records = Vec::new();
            while let Some(answer) = stream.next().await {
                let answer = answer.map_err(|e| self.net_error(e))?;
                let rcode = answer.metadata.response_code;
                if rcode != ResponseCode::NoError {
                    return Err(Rfc2136Error::Rcode { rcode });
                }
                records.extend(answer.answers.iter().cloned());
            }
            if records.is_empty() {
                // A transfer always carries at least the SOA twice (RFC 5936
                // §2.2); nothing at all means the connection died or timed out.
                return Err(Rfc2136Error::Connect {
                    server: self.server,
                    detail: "the zone transfer ended without any record".to_string(),
                });
            }
            Ok(records)
        })
        .await
    }

    async fn query(
        &self,
        name: &hickory_proto::rr::Name,
        rtype: RecordType,
    ) -> Result<Vec<Record>, Rfc2136Error> {
        let mut msg = Message::query();
        msg.metadata.recursion_desired = false;
        msg.add_query(Query::query(name.clone(), rtype));
        let answer = self.exchange(msg, true).await?;
        match answer.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer
                .answers
                .iter()
                .filter(|r| r.record_type() == rtype && &r.name == name)
                .cloned()
                .collect()),
            rcode => Err(Rfc2136Error::Rcode { rcode }),
        }
    }

    /// The fallback when AXFR is refused: the zone's SOA, then the RRsets
    /// `scope` names, then those it names after seeing each one read.
    async fn fetch_by_name(
        &self,
        origin: &Name,
        scope: &dyn ReadScope,
    ) -> Result<Vec<Record>, Rfc2136Error> {
        let apex = hname(origin).map_err(|detail| Rfc2136Error::Protocol { detail })?;
        let mut records = self.query(&apex, RecordType::SOA).await?;
        if records.is_empty() {
            return Err(Rfc2136Error::Protocol {
                detail: "the server holds no SOA for this zone".to_string(),
            });
        }
        let mut wanted = scope.initial(origin);
        let mut seen = std::collections::BTreeSet::new();
        let mut i = 0;
        while i < wanted.len() {
            let (name, rtype) = wanted[i].clone();
            i += 1;
            if !name.is_within(origin) || !seen.insert((name.clone(), rtype.clone())) {
                continue;
            }
            let hn = hname(&name).map_err(|detail| Rfc2136Error::Protocol { detail })?;
            let Ok(rt) = RecordType::from_str(&rtype.to_string()) else {
                continue;
            };
            let found = self.query(&hn, rt).await?;
            let mut z = Zone::new(origin.clone());
            for r in &found {
                if let Some(set) = to_record_set(r) {
                    z.insert(set);
                }
            }
            for set in z.sets.values() {
                wanted.extend(scope.follow(origin, set));
            }
            records.extend(found);
        }
        Ok(records)
    }
}

fn resolve_server(server: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let with_port = if server.contains(':') {
        server.to_string()
    } else {
        format!("{server}:53")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve server `{server}`: {e}"))?
        .next()
        .ok_or_else(|| format!("server `{server}` has no address"))
}

fn rcode_error(provider: String, zone: String, rcode: ResponseCode) -> ProviderError {
    match rcode {
        // RFC 2136 §2.4.2 / §3.2.3: a value-dependent prerequisite that does
        // not hold is answered NXRRSET, and nothing is changed.
        ResponseCode::NXRRSet => ProviderError::Stale {
            provider,
            zone,
            detail: "the SOA is no longer the one the plan read (NXRRSET)".to_string(),
        },
        ResponseCode::NotAuth | ResponseCode::BADSIG | ResponseCode::BADKEY => {
            ProviderError::Auth {
                provider,
                zone,
                detail: format!(
                    "server answered {rcode}: TSIG key rejected, or the server is not \
                     authoritative for this zone"
                ),
            }
        }
        ResponseCode::BADTIME => ProviderError::Auth {
            provider,
            zone,
            detail: "server answered BADTIME: the clocks differ by more than the TSIG fudge"
                .to_string(),
        },
        ResponseCode::Refused => ProviderError::Rejected {
            provider,
            zone,
            detail: "server answered REFUSED: this key may not update or transfer the zone \
                     (check allow-update / update-policy)"
                .to_string(),
        },
        ResponseCode::NotZone => ProviderError::Rejected {
            provider,
            zone,
            detail: "server answered NOTZONE: a name is outside the zone".to_string(),
        },
        other => ProviderError::Rejected {
            provider,
            zone,
            detail: format!("server answered {other}"),
        },
    }
}

fn hname(name: &Name) -> Result<hickory_proto::rr::Name, String> {
    hickory_proto::rr::Name::from_ascii(name.fqdn())
        .map_err(|e| format!("name `{name}` is not a valid DNS name: {e}"))
}

fn our_name(name: &hickory_proto::rr::Name) -> Option<Name> {
    Name::parse(&name.to_ascii()).ok()
}

/// A record as served → our RRset of one record. TSIG and OPT records are
/// transport, not zone data.
fn to_record_set(r: &Record) -> Option<RecordSet> {
    let rtype = r.record_type();
    if matches!(rtype, RecordType::TSIG | RecordType::OPT) {
        return None;
    }
    let name = our_name(&r.name)?;
    let data = match &r.data {
        HRData::TXT(txt) => RData::Txt(txt.txt_data.iter().map(|s| s.to_vec()).collect()),
        HRData::CNAME(c) => RData::Cname(our_name(&c.0)?),
        HRData::MX(mx) => RData::Mx {
            preference: mx.preference,
            exchange: our_name(&mx.exchange)?,
        },
        other => RData::Raw(other.to_string()),
    };
    Some(RecordSet::new(
        name,
        RType::parse(&rtype.to_string()),
        r.ttl,
        vec![data],
    ))
}

/// Our record data → wire data.
fn to_hickory(rtype: &RType, data: &RData) -> Result<HRData, String> {
    Ok(match data {
        RData::Txt(strings) => {
            // RFC 1035 §3.3.14: TXT-DATA is one or more <character-string>s,
            // each at most 255 octets.
            if strings.iter().any(|s| s.len() > 255) {
                let fixed = crate::record::txt::split(&crate::record::txt::join(strings));
                HRData::TXT(TXT::from_bytes(fixed.iter().map(Vec::as_slice).collect()))
            } else {
                HRData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
            }
        }
        RData::Cname(n) => HRData::CNAME(CNAME(hname(n)?)),
        RData::Mx {
            preference,
            exchange,
        } => HRData::MX(MX::new(*preference, hname(exchange)?)),
        RData::Raw(text) => {
            let rt = RecordType::from_str(&rtype.to_string())
                .map_err(|e| format!("unknown record type {rtype}: {e}"))?;
            HRData::try_from_str(rt, text)
                .map_err(|e| format!("cannot encode {rtype} `{text}`: {e}"))?
        }
    })
}

/// The SOA rdata as the version token: every field, so a change anywhere
/// (not just the serial) makes a plan stale.
fn soa_version(soa: &SOA) -> String {
    format!(
        "{} {} {} {} {} {} {}",
        soa.mname, soa.rname, soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum
    )
}

fn parse_soa_version(v: &str) -> Option<SOA> {
    let f: Vec<&str> = v.split_whitespace().collect();
    if f.len() != 7 {
        return None;
    }
    Some(SOA::new(
        hickory_proto::rr::Name::from_ascii(f[0]).ok()?,
        hickory_proto::rr::Name::from_ascii(f[1]).ok()?,
        f[2].parse().ok()?,
        f[3].parse().ok()?,
        f[4].parse().ok()?,
        f[5].parse().ok()?,
        f[6].parse().ok()?,
    ))
}

/// Builds the single UPDATE message for a plan.
///
/// RFC 2136 §2.4.2, "RRset Exists (Value Dependent)": "A set of RRs is
/// added to the Prerequisite section to specify that an RRset exists ...
/// with exactly the RRs listed". The zone's SOA RRset as the plan read it
/// is that prerequisite: any change since (each bumps the serial) makes the
/// server answer NXRRSET and apply nothing.
///
/// RFC 2136 §2.5.1 "Add To An RRset" and §2.5.4 "Delete An RR From An
/// RRset" (CLASS NONE, TTL 0): changes are record-level, so records of a
/// shared RRset that the plan does not touch (an unowned TXT next to SPF)
/// are never deleted, not even inside the transaction.
pub fn update_message(zone: &Name, seen_soa: &SOA, changes: &[Change]) -> Result<Message, String> {
    let origin = hname(zone)?;
    let mut zq = Query::new();
    zq.set_name(origin.clone())
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::SOA);
    let mut msg = Message::query();
    msg.metadata.op_code = OpCode::Update;
    msg.metadata.recursion_desired = false;
    msg.add_zone(zq);
    msg.add_pre_requisite(Record::from_rdata(origin, 0, HRData::SOA(seen_soa.clone())));

    let add = |set: &RecordSet, data: &RData, msg: &mut Message| -> Result<(), String> {
        let rdata = to_hickory(&set.rtype, data)?;
        msg.add_update(Record::from_rdata(hname(&set.name)?, set.ttl, rdata));
        Ok(())
    };
    let delete = |set: &RecordSet, data: &RData, msg: &mut Message| -> Result<(), String> {
        let rdata = to_hickory(&set.rtype, data)?;
        let mut r = Record::from_rdata(hname(&set.name)?, 0, rdata);
        r.dns_class = DNSClass::NONE;
        msg.add_update(r);
        Ok(())
    };

    for change in changes {
        if !change.name().is_within(zone) {
            return Err(format!("{} is outside zone {zone}", change.name()));
        }
        match change {
            Change::Create { new } => {
                for d in &new.data {
                    add(new, d, &mut msg)?;
                }
            }
            Change::Delete { old } => {
                for d in &old.data {
                    delete(old, d, &mut msg)?;
                }
            }
            Change::Update { old, new } => {
                for d in old.data.iter().filter(|d| !new.data.contains(d)) {
                    delete(old, d, &mut msg)?;
                }
                if old.ttl != new.ttl {
                    // A TTL is a property of the whole RRset (RFC 2181
                    // §5.2). RFC 2136 §3.4.2.2 says a re-added duplicate
                    // replaces the zone's RR ("the Zone RR is replaced by
                    // Update RR"), which BIND does, but Knot keeps the old
                    // TTL: so each kept record is deleted and added back
                    // with the new TTL, in this one atomic message.
                    for d in new.data.iter().filter(|d| old.data.contains(d)) {
                        delete(old, d, &mut msg)?;
                    }
                    for d in &new.data {
                        add(new, d, &mut msg)?;
                    }
                } else {
                    for d in new.data.iter().filter(|d| !old.data.contains(d)) {
                        add(new, d, &mut msg)?;
                    }
                }
            }
        }
    }
    Ok(msg)
}

impl Provider for Rfc2136 {
    fn id(&self) -> String {
        format!("{PROVIDER}:{}", self.server)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            types: vec![RType::Txt, RType::Cname, RType::Mx, RType::A, RType::Aaaa],
            // One TXT RR's RDATA is at most 65535 octets; a DKIM key is far
            // below that. Keep to what one UPDATE message comfortably holds.
            max_txt_len: 4096,
            cname: true,
        }
    }

    fn fetch(&self, zone: &Name) -> Result<Fetched, ProviderError> {
        let origin = hname(zone).map_err(|detail| ProviderError::Rejected {
            provider: self.id(),
            zone: zone.to_string(),
            detail,
        })?;
        let transfer = self.with_retries(async |_| self.axfr(&origin).await);
        let records = match (transfer, &self.scope) {
            (Ok(r), _) => r,
            (
                Err(Rfc2136Error::Rcode {
                    rcode: ResponseCode::Refused | ResponseCode::NotAuth,
                }),
                Some(scope),
            ) => self
                .with_retries(async |_| self.fetch_by_name(zone, scope.as_ref()).await)
                .map_err(|e| self.error(zone, e))?,
            (Err(e), _) => return Err(self.error(zone, e)),
        };
        let mut out = Zone::new(zone.clone());
        let mut version = None;
        for r in &records {
            if let HRData::SOA(soa) = &r.data
                && r.name == origin
            {
                version = Some(soa_version(soa));
            }
            if let Some(set) = to_record_set(r)
                && set.name.is_within(zone)
            {
                out.insert(set);
            }
        }
        let version = version.ok_or_else(|| ProviderError::Rejected {
            provider: self.id(),
            zone: zone.to_string(),
            detail: "the server's answer has no SOA for the zone".to_string(),
        })?;
        Ok(Fetched {
            zone: out,
            version,
            exists: true,
        })
    }

    fn apply(&self, zone: &Name, seen: &Fetched, changes: &[Change]) -> Result<(), ProviderError> {
        if changes.is_empty() {
            return Ok(());
        }
        let rejected = |detail: String| ProviderError::Rejected {
            provider: self.id(),
            zone: zone.to_string(),
            detail,
        };
        if !seen.exists {
            return Err(rejected(
                "RFC 2136 cannot create a zone; create it on the server first".to_string(),
            ));
        }
        let soa = parse_soa_version(&seen.version)
            .ok_or_else(|| rejected(format!("`{}` is not an SOA version", seen.version)))?;
        let msg = update_message(zone, &soa, changes).map_err(rejected)?;
        let mut timed_out = false;
        let answer = self
            .with_retries(async |attempt| {
                if attempt > 0 {
                    timed_out = true;
                }
                let answer = self.exchange(msg.clone(), false).await?;
                match answer.metadata.response_code {
                    ResponseCode::ServFail => Err(Rfc2136Error::Rcode {
                        rcode: ResponseCode::ServFail,
                    }),
                    _ => Ok(answer),
                }
            })
            .map_err(|e| self.error(zone, e))?;
        match answer.metadata.response_code {
            ResponseCode::NoError => Ok(()),
            ResponseCode::NXRRSet if timed_out => Err(ProviderError::Stale {
                provider: self.id(),
                zone: zone.to_string(),
                detail: "the SOA changed, possibly by an earlier attempt of this very update \
                         that the server applied before it timed out"
                    .to_string(),
            }),
            rcode => Err(rcode_error(self.id(), zone.to_string(), rcode)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn soa() -> SOA {
        parse_soa_version("ns1.example.test. hostmaster.example.test. 7 3600 600 86400 300")
            .unwrap()
    }

    #[test]
    fn soa_version_round_trips() {
        let s = soa();
        assert_eq!(s.serial, 7);
        assert_eq!(parse_soa_version(&soa_version(&s)), Some(s));
        assert_eq!(parse_soa_version("ns1. host. 7"), None);
    }

    #[test]
    fn key_file_secret_is_extracted() {
        let text = "key \"k\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n";
        assert_eq!(secret_from_key_text(text), "c2VjcmV0");
        assert_eq!(secret_from_key_text(" c2VjcmV0\n"), "c2VjcmV0");
    }

    #[test]
    fn update_of_shared_txt_touches_only_changed_records() {
        let apex = name("example.test");
        let old = RecordSet::new(
            apex.clone(),
            RType::Txt,
            300,
            vec![
                RData::txt("google-site-verification=x"),
                RData::txt("v=spf1 ~all"),
            ],
        );
        let new = RecordSet::new(
            apex.clone(),
            RType::Txt,
            300,
            vec![
                RData::txt("google-site-verification=x"),
                RData::txt("v=spf1 -all"),
            ],
        );
        let msg = update_message(&apex, &soa(), &[Change::Update { old, new }]).unwrap();
        let updates = &msg.authorities;
        assert_eq!(updates.len(), 2, "{updates:?}");
        let txt_of = |r: &Record| match &r.data {
            HRData::TXT(t) => t.txt_data.concat(),
            other => panic!("not TXT: {other:?}"),
        };
        let deleted: Vec<Vec<u8>> = updates
            .iter()
            .filter(|r| r.dns_class == DNSClass::NONE)
            .map(txt_of)
            .collect();
        assert_eq!(deleted, vec![b"v=spf1 ~all".to_vec()]);
        let added: Vec<Vec<u8>> = updates
            .iter()
            .filter(|r| r.dns_class == DNSClass::IN)
            .map(txt_of)
            .collect();
        assert_eq!(added, vec![b"v=spf1 -all".to_vec()]);
        // The prerequisite is the SOA as read, with TTL 0 and class IN.
        assert_eq!(msg.answers.len(), 1);
        assert_eq!(msg.answers[0].ttl, 0);
        assert_eq!(msg.answers[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn long_txt_is_split_on_the_wire() {
        let apex = name("example.test");
        let set = RecordSet::new(
            apex.child("s1._domainkey"),
            RType::Txt,
            300,
            vec![RData::Txt(vec![vec![b'a'; 510]])],
        );
        let msg = update_message(&apex, &soa(), &[Change::Create { new: set }]).unwrap();
        let HRData::TXT(txt) = &msg.authorities[0].data else {
            panic!("{:?}", msg.authorities)
        };
        assert_eq!(txt.txt_data.len(), 2);
        assert!(txt.txt_data.iter().all(|s| s.len() == 255));
    }

    #[test]
    fn names_outside_the_zone_are_refused() {
        let set = RecordSet::new(name("other.test"), RType::Txt, 300, vec![RData::txt("x")]);
        assert!(
            update_message(
                &name("example.test"),
                &soa(),
                &[Change::Create { new: set }]
            )
            .is_err()
        );
    }
}
