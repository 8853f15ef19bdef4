//! A blocking DNS resolver for the rest of the crate: a thin synchronous
//! wrapper over hickory-resolver on the process's shared tokio runtime
//! ([`crate::rt`]), so that
//! the pipeline (validation, SPF analysis, propagation checks) stays plain
//! threads and `Result`s.
//!
//! This module owns talking to DNS servers: building the resolver (system
//! configuration, explicit servers, or one authoritative server asked
//! without recursion), running queries with a hard deadline, and turning
//! hickory's errors into [`ResolveError`] kinds that tell "the name or the
//! data does not exist" from "ask again later". It implements
//! [`crate::spf::SpfDns`] so that SPF evaluation and analysis can run over
//! real DNS. It also parses the nameserver addresses every command and the
//! key observer take (`--nameserver IP[:PORT]`, [`parse_nameserver`]). It
//! decides nothing about the answers: checks live in `validate`, parsing
//! in `record`.
//!
//! A [`Resolver`] is `Send + Sync`; many threads may query through one
//! instance at once (each call blocks only its own thread). By default a
//! query's I/O runs on the shared runtime's worker threads while the
//! caller waits; [`Resolver::per_thread`] instead gives each calling thread
//! a current-thread runtime and hickory resolver of its own, so the thread
//! that waits drives its query, for callers (`validate` over a fleet) whose
//! threads do little else than ask questions. [`Resolver::plain_udp`] goes
//! one step further for a resolver of one server: the calling thread sends
//! each question on a blocking UDP socket of its own and reads the answer
//! itself ([`udp`]), and only what that plain path does not handle (TCP
//! after truncation, CNAME chains, error codes) goes through hickory.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use crate::spf::{self, MxRecord, QType, SpfDns};

#[cfg(test)]
mod testserver;
mod udp;

/// A nameserver address that is neither `IP` nor `IP:PORT`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`--nameserver {value}`: expected IP or IP:PORT")]
pub struct NameserverError {
    pub value: String,
}

/// Parses `--nameserver IP[:PORT]` (port 53 by default, RFC 1035 §4.2:
/// "The Internet supports name server access using TCP [RFC-793] on server
/// port 53 (decimal) as well as datagram access using UDP [RFC-768] on UDP
/// port 53 (decimal)"; IPv6 with a port as `[::1]:5353`).
pub fn parse_nameserver(value: &str) -> Result<SocketAddr, NameserverError> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    value
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| NameserverError {
            value: value.to_string(),
        })
}

/// Why a query gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// RCODE 3 (RFC 1035 §4.1.1 "Name Error"): the name does not exist.
    #[error("{name}: no such domain (NXDOMAIN)")]
    NxDomain { name: String },
    /// No answer from any server within the deadline.
    #[error("{name} {rtype}: no answer from {server} within {timeout:?}")]
    Timeout {
        name: String,
        rtype: String,
        server: String,
        timeout: Duration,
    },
    /// The server answered with an error code (SERVFAIL, REFUSED, ...).
    #[error("{name} {rtype}: {server} answered {rcode}")]
    Rcode {
        name: String,
        rtype: String,
        server: String,
        rcode: String,
    },
    /// Any other failure on the way (network unreachable, malformed
    /// answer, ...).
    #[error("{name} {rtype}: query to {server} failed: {detail}")]
    Failure {
        name: String,
        rtype: String,
        server: String,
        detail: String,
    },
    /// The name cannot be put on the wire (a label over 63 octets, a name
    /// over 255 octets).
    #[error("{name:?} is not a valid domain name: {detail}")]
    BadName { name: String, detail: String },
    /// The resolver itself could not be built (no usable system
    /// configuration, no tokio runtime).
    #[error("cannot set up the DNS resolver: {detail}")]
    Setup { detail: String },
}

impl ResolveError {
    /// True for failures that may go away when asked again (timeouts,
    /// SERVFAIL, network errors), false when the answer is definite.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            ResolveError::Timeout { .. }
                | ResolveError::Rcode { .. }
                | ResolveError::Failure { .. }
        )
    }

    /// True for a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ResolveError::Timeout { .. })
    }
}

/// One TXT record as its character-strings, in wire order (RFC 1035
/// §3.3.14: `TXT-DATA  One or more <character-string>s`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxtRecord {
    pub strings: Vec<Vec<u8>>,
}

impl TxtRecord {
    /// The character-strings concatenated without separators, as SPF
    /// (RFC 7208 §3.3), DKIM (RFC 6376 §3.6.2.2) and DMARC read them.
    pub fn joined(&self) -> Vec<u8> {
        self.strings.concat()
    }

    /// [`TxtRecord::joined`] as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.joined()).into_owned()
    }
}

/// An SOA record (RFC 1035 §3.3.13), names without the trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: i32,
    pub retry: i32,
    pub expire: i32,
    pub minimum: u32,
}

/// One attempt's share of a query's whole time budget.
fn per_attempt(budget: Duration, attempts: usize) -> Duration {
    (budget / attempts.max(1) as u32).max(Duration::from_millis(10))
}

/// What one question came back with.
type Answer = Result<Vec<Record>, ResolveError>;

/// The answers of one run, keyed by (name, type), shared by every thread
/// that queries through one [`Resolver`] (see [`Resolver::with_run_cache`]).
///
/// What is kept. RFC 1035 §7.4: "In general, we expect a resolver to cache
/// all data which it receives in responses since it may be useful in
/// answering future questions." Answers and "no data" are kept, and so is
/// NXDOMAIN: RFC 2308 §5, "Like normal answers negative answers have a time
/// to live (TTL)", so a negative answer may be cached as a positive one
/// is. Entries are kept for the life of the cache, which is one command's
/// run (seconds to minutes), not for the records' TTLs: the report of a run
/// is one snapshot of the DNS, and a question asked twice in it gets one
/// answer. Nothing outlives the run. An answer holding a record of TTL 0
/// is not kept (see [`cacheable`]).
///
/// What is not. Timeouts, SERVFAIL and the other error codes, and network
/// failures are not answers: RFC 2308 §7.1 lets a resolver remember a
/// server failure only for a bounded time against the specific server, and
/// §7.2 the same for a dead server; here they are never remembered, so the
/// next caller asks again.
///
/// In flight. A question asked while the same question is on the wire
/// waits for that query's outcome, whatever it is (a timeout included),
/// instead of sending a second query: a fleet whose domains share SPF
/// includes, MX hosts or DMARC parents asks each of them once even when
/// many domains reach them at the same moment.
#[derive(Default)]
struct RunCache {
    slots: Mutex<HashMap<(String, RecordType), Slot>>,
}

enum Slot {
    Done(Answer),
    Pending(Arc<Pending>),
}

/// The outcome of a query on the wire, for the callers waiting on it.
#[derive(Default)]
struct Pending {
    answer: Mutex<Option<Answer>>,
    ready: Condvar,
}

impl Pending {
    fn wait(&self) -> Answer {
        let mut answer = self.answer.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(a) = answer.as_ref() {
                return a.clone();
            }
            answer = self.ready.wait(answer).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn publish(&self, a: Answer) {
        *self.answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(a);
        self.ready.notify_all();
    }
}

/// Whether an outcome is an answer to keep for the run (see [`RunCache`]).
/// RFC 1035 §3.2.1: "Zero values are interpreted to mean that the RR can
/// only be used for the transaction in progress, and should not be
/// cached": an answer with a record of TTL 0 goes to the callers waiting
/// on its query and is not kept.
fn cacheable(a: &Answer) -> bool {
    match a {
        Ok(records) => records.iter().all(|r| r.ttl > 0),
        Err(e) => matches!(e, ResolveError::NxDomain { .. }),
    }
}

/// The caller that sends a question: on drop (also when the query
/// panicked) it stores or forgets the outcome and wakes the waiters.
struct Asking<'a> {
    cache: &'a RunCache,
    key: (String, RecordType),
    answer: Option<Answer>,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        let answer = self.answer.take().unwrap_or_else(|| {
            Err(ResolveError::Failure {
                name: self.key.0.clone(),
                rtype: self.key.1.to_string(),
                server: String::new(),
                detail: "the query was abandoned".to_string(),
            })
        });
        let mut slots = self.cache.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = if cacheable(&answer) {
            slots.insert(self.key.clone(), Slot::Done(answer.clone()))
        } else {
            slots.remove(&self.key)
        };
        drop(slots);
        if let Some(Slot::Pending(p)) = slot {
            p.publish(answer);
        }
    }
}

impl RunCache {
    /// The kept answer to (`name`, `rtype`), the outcome of the same
    /// question already on the wire, or `query`'s.
    fn get_or_query(
        &self,
        name: &str,
        rtype: RecordType,
        query: impl FnOnce() -> Answer,
    ) -> Answer {
        let key = (name.strip_suffix('.').unwrap_or(name).to_string(), rtype);
        let waiting = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(&key) {
                Some(Slot::Done(a)) => return a.clone(),
                Some(Slot::Pending(p)) => Some(p.clone()),
                None => {
                    slots.insert(key.clone(), Slot::Pending(Arc::default()));
                    None
                }
            }
        };
        if let Some(p) = waiting {
            return p.wait();
        }
        let mut asking = Asking {
            cache: self,
            key,
            answer: None,
        };
        let answer = query();
        asking.answer = Some(answer.clone());
        drop(asking);
        answer
    }
}

/// Builds the hickory resolver of a [`Resolver`], in the context of the
/// runtime it will run on (once for the shared runtime, once per thread
/// for [`Resolver::per_thread`]); `false` builds it without hickory's own
/// answer cache (under a run cache, which answers every repeated question).
type MakeInner = dyn Fn(bool) -> Result<TokioResolver, ResolveError> + Send + Sync;

/// The TLS settings given to every hickory resolver built here. Without
/// them hickory (whose TLS transports the binary's feature set turns on)
/// loads the system's root certificates each time it builds a resolver,
/// which a per-thread resolver does once per thread and per server. The
/// name servers here are asked over UDP and TCP only ([`name_server`]),
/// never over TLS, so the settings are never used: an empty root store
/// costs nothing.
fn unused_tls() -> rustls::ClientConfig {
    static CONFIG: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
        })
        .clone()
}

/// A synchronous resolver. See the module documentation.
pub struct Resolver {
    make: Box<MakeInner>,
    engine: Engine,
    /// The whole time one query may take, all attempts together: what a
    /// caller's `--timeout` means, and what a timeout error reports.
    timeout: Duration,
    /// Who answers, for error messages: "system resolver" or addresses.
    server: String,
    /// Set by [`Resolver::with_run_cache`].
    cache: Option<RunCache>,
    /// How the one server of this resolver is asked on the plain UDP path,
    /// when it has one server (`None` for the system resolver and for
    /// several servers, whose order and retries are hickory's).
    udp: Option<udp::Plain>,
    /// Set by [`Resolver::plain_udp`]: questions go the plain UDP path
    /// first.
    plain_udp: bool,
}

/// Where a resolver's queries run.
enum Engine {
    /// On the shared runtime ([`crate::rt`]): the caller blocks on it and
    /// the connections' tasks run on its worker threads.
    Shared {
        runtime: &'static tokio::runtime::Runtime,
        inner: Box<TokioResolver>,
    },
    /// On a current-thread runtime of the calling thread's own, with its
    /// own hickory resolver (see [`Resolver::per_thread`]), kept by thread
    /// for the life of the value.
    PerThread(Mutex<HashMap<std::thread::ThreadId, Arc<Local>>>),
}

/// One thread's runtime and hickory resolver (see [`Engine::PerThread`]).
struct Local {
    /// Dropped before its runtime (fields drop in order).
    inner: TokioResolver,
    runtime: tokio::runtime::Runtime,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("server", &self.server)
            .field("timeout", &self.timeout)
            .field("run_cache", &self.cache.is_some())
            .field("per_thread", &self.is_per_thread())
            .field("plain_udp", &self.plain_udp)
            .finish_non_exhaustive()
    }
}

/// The shared runtime ([`crate::rt`]) the resolvers run on.
fn runtime() -> Result<&'static tokio::runtime::Runtime, ResolveError> {
    crate::rt::runtime().map_err(|e| ResolveError::Setup {
        detail: format!("tokio runtime: {e}"),
    })
}

fn name_server(addr: SocketAddr, trust_negative: bool) -> NameServerConfig {
    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
    for conn in &mut ns.connections {
        conn.port = addr.port();
    }
    ns.trust_negative_responses = trust_negative;
    ns
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Resolver {
    /// The resolver the operating system is configured with
    /// (`/etc/resolv.conf` on Unix), with its options, answers cached for
    /// the life of this value.
    pub fn system() -> Result<Resolver, ResolveError> {
        Self::system_within(None)
    }

    /// The system resolver with each query given up after `budget` in all
    /// (its attempts share it); `None` keeps the system's own timeout.
    pub fn system_within(budget: Option<Duration>) -> Result<Resolver, ResolveError> {
        let builder = move || {
            let mut builder = TokioResolver::builder_tokio().map_err(|e| ResolveError::Setup {
                detail: format!("reading the system resolver configuration: {e}"),
            })?;
            let attempts = builder.options_mut().attempts.max(1);
            if let Some(b) = budget {
                builder.options_mut().timeout = per_attempt(b, attempts);
            }
            let timeout = budget.unwrap_or(builder.options_mut().timeout * attempts as u32);
            Ok((builder, timeout))
        };
        let runtime = runtime()?;
        let _guard = runtime.enter();
        let (first, timeout) = builder()?;
        let build = |mut b: hickory_resolver::ResolverBuilder<TokioRuntimeProvider>,
                     hickory_cache: bool| {
            if !hickory_cache {
                b.options_mut().cache_size = 0;
            }
            b.with_tls_config(unused_tls())
                .build()
                .map_err(|e| ResolveError::Setup {
                    detail: e.to_string(),
                })
        };
        let inner = build(first, true)?;
        drop(_guard);
        Ok(Resolver {
            make: Box::new(move |hickory_cache| build(builder()?.0, hickory_cache)),
            engine: Engine::Shared {
                runtime,
                inner: Box::new(inner),
            },
            timeout,
            server: "the system resolver".to_string(),
            cache: None,
            udp: None,
            plain_udp: false,
        })
    }

    /// A recursive resolver that asks `servers` (in order of their
    /// responsiveness), each query given up after `timeout` in all (two
    /// attempts of half of it each). Answers are cached for the life of
    /// this value.
    pub fn with_nameservers(
        servers: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Resolver, ResolveError> {
        if servers.is_empty() {
            return Err(ResolveError::Setup {
                detail: "no name server given".to_string(),
            });
        }
        let config = ResolverConfig::from_name_servers(
            servers.iter().map(|a| name_server(*a, false)).collect(),
        );
        let mut opts = ResolverOpts::default();
        opts.attempts = 2;
        opts.timeout = per_attempt(timeout, opts.attempts);
        // Validation of a fleet asks for the same includes and parents
        // over and over; keep them.
        opts.cache_size = 1 << 16;
        let one = match servers {
            [one] => Some(*one),
            _ => None,
        };
        Self::build(config, opts, list(servers), one)
    }

    /// Asks the single server `server` without recursion (RD=0) and without
    /// a cache: what that server itself holds, as a propagation check
    /// needs. One attempt of `timeout`.
    pub fn direct(server: SocketAddr, timeout: Duration) -> Result<Resolver, ResolveError> {
        let config = ResolverConfig::from_name_servers(vec![name_server(server, true)]);
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.cache_size = 0;
        opts.recursion_desired = false;
        Self::build(config, opts, server.to_string(), Some(server))
    }

    /// `one`: the address of the only server, for the plain UDP path.
    fn build(
        config: ResolverConfig,
        mut opts: ResolverOpts,
        server: String,
        one: Option<SocketAddr>,
    ) -> Result<Resolver, ResolveError> {
        // Names are always sent fully qualified; no search list applies.
        opts.ndots = 0;
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        let timeout = opts.timeout * opts.attempts.max(1) as u32;
        let udp = one.map(|server| udp::Plain {
            server,
            attempts: opts.attempts.max(1),
            per_attempt: opts.timeout,
            recursion_desired: opts.recursion_desired,
            edns_payload: opts.edns0.then_some(opts.edns_payload_len),
        });
        let make = move |hickory_cache: bool| {
            let mut opts = opts.clone();
            if !hickory_cache {
                opts.cache_size = 0;
            }
            TokioResolver::builder_with_config(config.clone(), TokioRuntimeProvider::default())
                .with_options(opts)
                .with_tls_config(unused_tls())
                .build()
                .map_err(|e| ResolveError::Setup {
                    detail: e.to_string(),
                })
        };
        let runtime = runtime()?;
        let _guard = runtime.enter();
        let inner = make(true)?;
        drop(_guard);
        Ok(Resolver {
            make: Box::new(make),
            engine: Engine::Shared {
                runtime,
                inner: Box::new(inner),
            },
            timeout,
            server,
            cache: None,
            udp,
            plain_udp: false,
        })
    }

    /// Who this resolver asks, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// This resolver with a [run cache](RunCache): each question asked once
    /// for the life of the value, and a question asked while the same one
    /// is on the wire waits for that answer instead of sending another
    /// query. For one command's run (a `validate` over a fleet), not for a
    /// long-lived process: entries never expire.
    pub fn with_run_cache(mut self) -> Resolver {
        self.cache = Some(RunCache::default());
        self
    }

    /// This resolver with its queries driven by the thread that asks: each
    /// calling thread gets a current-thread tokio runtime and a hickory
    /// resolver of its own, built on its first query and kept until the
    /// value is dropped, so a query's I/O runs on the thread that waits for
    /// it instead of being handed to the shared runtime's workers and back
    /// (two thread wake-ups per query). For a bounded set of plain threads
    /// querying at a high rate (`validate` over a fleet); never to be
    /// called from inside a runtime (tokio refuses to start one there).
    /// The run cache, if any, stays one for all threads, and the threads'
    /// resolvers then keep no cache of their own (every question they are
    /// asked is one the run cache has not answered).
    pub fn per_thread(mut self) -> Resolver {
        self.engine = Engine::PerThread(Mutex::default());
        self
    }

    /// Whether [`Resolver::per_thread`] was asked for.
    pub fn is_per_thread(&self) -> bool {
        matches!(self.engine, Engine::PerThread(_))
    }

    /// This resolver, when it has one server, with each question sent and
    /// its answer read by the calling thread on a blocking UDP socket
    /// ([`udp`]): a fresh socket on a random source port per query, as
    /// hickory uses, but no runtime to wake, no futures and none of
    /// hickory's lookup machinery, which were most of a fleet validation's
    /// time per query. The same bytes go on the wire as hickory sends, with
    /// the same tries and time budget. Answers the plain path does not
    /// handle itself (truncated, a CNAME chain, an error code, anything
    /// unexpected) are asked again through the hickory resolver, so they
    /// come out as they always did. A resolver of the system configuration
    /// or of several servers is unchanged (their server order and retries
    /// are hickory's). Meant with [`Resolver::per_thread`], for the same
    /// callers.
    pub fn plain_udp(mut self) -> Resolver {
        self.plain_udp = true;
        self
    }

    /// Whether [`Resolver::plain_udp`] was asked for.
    pub fn is_plain_udp(&self) -> bool {
        self.plain_udp
    }

    /// The calling thread's runtime and resolver, built on first use.
    fn local(&self) -> Result<Arc<Local>, ResolveError> {
        let Engine::PerThread(threads) = &self.engine else {
            unreachable!("local() is only called on a per-thread resolver")
        };
        let id = std::thread::current().id();
        if let Some(l) = threads.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(l.clone());
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ResolveError::Setup {
                detail: format!("tokio runtime: {e}"),
            })?;
        let inner = {
            let _guard = runtime.enter();
            (self.make)(self.cache.is_none())?
        };
        let local = Arc::new(Local { inner, runtime });
        threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, local.clone());
        Ok(local)
    }

    /// The answer records of type `rtype` at `name` (CNAMEs followed by the
    /// server or the resolver); `Ok(vec![])` when the name exists without
    /// such records ("no data").
    pub fn lookup(&self, name: &str, rtype: RecordType) -> Result<Vec<Record>, ResolveError> {
        match &self.cache {
            Some(cache) => cache.get_or_query(name, rtype, || self.query(name, rtype)),
            None => self.query(name, rtype),
        }
    }

    /// [`Resolver::lookup`] without the run cache: one question on the
    /// wire (hickory's own cache aside).
    fn query(&self, name: &str, rtype: RecordType) -> Result<Vec<Record>, ResolveError> {
        let display = name.strip_suffix('.').unwrap_or(name).to_string();
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let qname = Name::from_str_relaxed(&fqdn).map_err(|e| ResolveError::BadName {
            name: display.clone(),
            detail: e.to_string(),
        })?;
        if let Some(plain) = self.udp.as_ref().filter(|_| self.plain_udp) {
            match plain.ask(&qname, rtype, std::time::Instant::now() + self.timeout) {
                udp::Outcome::Records(records) => return Ok(records),
                udp::Outcome::NoData => return Ok(Vec::new()),
                udp::Outcome::NxDomain => return Err(ResolveError::NxDomain { name: display }),
                udp::Outcome::Timeout => {
                    return Err(ResolveError::Timeout {
                        name: display,
                        rtype: rtype.to_string(),
                        server: self.server.clone(),
                        timeout: self.timeout,
                    });
                }
                // Asked again below, through hickory.
                udp::Outcome::Other => {}
            }
        }
        // hickory has its own per-attempt timeouts, which add up to
        // `self.timeout`; this deadline (a moment later, so that hickory's
        // own answer wins the race) is a second line of defence so that no
        // query can hang a caller.
        let deadline = self.timeout + Duration::from_millis(50);
        let local;
        let (runtime, inner) = match &self.engine {
            Engine::Shared { runtime, inner } => (*runtime, &**inner),
            Engine::PerThread(_) => {
                local = self.local()?;
                (&local.runtime, &local.inner)
            }
        };
        let result = runtime
            .block_on(async { tokio::time::timeout(deadline, inner.lookup(qname, rtype)).await });
        let err = |e: NetError| classify(e, &display, rtype, &self.server, self.timeout);
        match result {
            Err(_) => Err(ResolveError::Timeout {
                name: display,
                rtype: rtype.to_string(),
                server: self.server.clone(),
                timeout: self.timeout,
            }),
            Ok(Err(e)) => match err(e) {
                Ok(()) => Ok(Vec::new()),
                Err(e) => Err(e),
            },
            Ok(Ok(lookup)) => Ok(lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == rtype)
                .cloned()
                .collect()),
        }
    }

    /// TXT records at `name`, each with its character-strings concatenated
    /// (the same as [`SpfDns::txt`]).
    pub fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, ResolveError> {
        Ok(self
            .txt_records(name)?
            .iter()
            .map(TxtRecord::joined)
            .collect())
    }

    /// TXT records at `name` with their character-strings kept apart.
    pub fn txt_records(&self, name: &str) -> Result<Vec<TxtRecord>, ResolveError> {
        Ok(self
            .lookup(name, RecordType::TXT)?
            .into_iter()
            .filter_map(|r| match r.data {
                RData::TXT(txt) => Some(TxtRecord {
                    strings: txt.txt_data.iter().map(|s| s.to_vec()).collect(),
                }),
                _ => None,
            })
            .collect())
    }

    /// The name servers of `zone` (its NS RRset), lower case, without the
    /// trailing dot, sorted.
    pub fn ns(&self, zone: &str) -> Result<Vec<String>, ResolveError> {
        let mut out: Vec<String> = self
            .lookup(zone, RecordType::NS)?
            .into_iter()
            .filter_map(|r| match r.data {
                RData::NS(ns) => Some(plain(&ns.0)),
                _ => None,
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The SOA record of `zone`; `None` when the name exists but is not a
    /// zone apex.
    pub fn soa(&self, zone: &str) -> Result<Option<Soa>, ResolveError> {
        Ok(self
            .lookup(zone, RecordType::SOA)?
            .into_iter()
            .find_map(|r| match r.data {
                RData::SOA(soa) => Some(Soa {
                    mname: plain(&soa.mname),
                    rname: plain(&soa.rname),
                    serial: soa.serial,
                    refresh: soa.refresh,
                    retry: soa.retry,
                    expire: soa.expire,
                    minimum: soa.minimum,
                }),
                _ => None,
            }))
    }

    /// IPv4 and IPv6 addresses of `host`; a missing name or missing data is
    /// an empty list.
    pub fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let mut out = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            match self.lookup(host, rtype) {
                Ok(records) => out.extend(records.into_iter().filter_map(|r| match r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Err(ResolveError::NxDomain { .. }) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// MX records at `name`, exchanges lower case without the trailing dot
    /// (the null MX of RFC 7505 has an empty exchange).
    pub fn mx(&self, name: &str) -> Result<Vec<MxRecord>, ResolveError> {
        Ok(self
            .lookup(name, RecordType::MX)?
            .into_iter()
            .filter_map(|r| match r.data {
                RData::MX(mx) => Some(MxRecord {
                    preference: mx.preference,
                    exchange: plain(&mx.exchange),
                }),
                _ => None,
            })
            .collect())
    }
}

/// `name` lower case without the trailing dot ("" for the root).
fn plain(name: &Name) -> String {
    let s = name.to_ascii().to_ascii_lowercase();
    s.strip_suffix('.').unwrap_or(&s).to_string()
}

/// `Ok(())` means "no data" (the name exists without records of the type).
fn classify(
    e: NetError,
    name: &str,
    rtype: RecordType,
    server: &str,
    timeout: Duration,
) -> Result<(), ResolveError> {
    if e.is_nx_domain() {
        return Err(ResolveError::NxDomain {
            name: name.to_string(),
        });
    }
    if e.is_no_records_found() {
        return Ok(());
    }
    let (name, rtype, server) = (name.to_string(), rtype.to_string(), server.to_string());
    Err(match e {
        NetError::Timeout => ResolveError::Timeout {
            name,
            rtype,
            server,
            timeout,
        },
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ResolveError::Timeout {
            name,
            rtype,
            server,
            timeout,
        },
        NetError::Dns(HickoryDnsError::ResponseCode(code)) => ResolveError::Rcode {
            name,
            rtype,
            server,
            rcode: rcode_text(code),
        },
        other => ResolveError::Failure {
            name,
            rtype,
            server,
            detail: other.to_string(),
        },
    })
}

fn rcode_text(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "SERVFAIL".to_string(),
        ResponseCode::Refused => "REFUSED".to_string(),
        ResponseCode::FormErr => "FORMERR".to_string(),
        ResponseCode::NotImp => "NOTIMP".to_string(),
        other => other.to_string(),
    }
}

/// RFC 7208 §4.6.4: NXDOMAIN counts as a void lookup; everything else that
/// is not an answer is "temperror" (§2.6.6). A name that cannot exist on
/// the wire cannot have records either, so it is treated as NXDOMAIN.
fn to_spf(e: ResolveError, qtype: QType) -> spf::DnsError {
    let detail = e.to_string();
    match e {
        ResolveError::NxDomain { name } | ResolveError::BadName { name, .. } => {
            spf::DnsError::NxDomain { name }
        }
        ResolveError::Timeout { name, .. }
        | ResolveError::Rcode { name, .. }
        | ResolveError::Failure { name, .. } => spf::DnsError::Temporary {
            name,
            qtype,
            detail,
        },
        ResolveError::Setup { .. } => spf::DnsError::Temporary {
            name: String::new(),
            qtype,
            detail,
        },
    }
}

impl Resolver {
    /// One lookup for the SPF evaluator: the answers `pick` keeps, errors
    /// mapped to the evaluator's kinds.
    fn spf_lookup<T>(
        &self,
        name: &str,
        rtype: RecordType,
        qtype: QType,
        pick: impl Fn(RData) -> Option<T>,
    ) -> Result<Vec<T>, spf::DnsError> {
        Ok(self
            .lookup(name, rtype)
            .map_err(|e| to_spf(e, qtype))?
            .into_iter()
            .filter_map(|r| pick(r.data))
            .collect())
    }
}

impl SpfDns for Resolver {
    fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, spf::DnsError> {
        Resolver::txt(self, name).map_err(|e| to_spf(e, QType::Txt))
    }

    fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, spf::DnsError> {
        self.spf_lookup(name, RecordType::A, QType::A, |d| match d {
            RData::A(a) => Some(a.0),
            _ => None,
        })
    }

    fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, spf::DnsError> {
        self.spf_lookup(name, RecordType::AAAA, QType::Aaaa, |d| match d {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
    }

    fn mx(&self, name: &str) -> Result<Vec<MxRecord>, spf::DnsError> {
        Resolver::mx(self, name).map_err(|e| to_spf(e, QType::Mx))
    }

    fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, spf::DnsError> {
        self.spf_lookup(
            &spf::reverse_name(ip),
            RecordType::PTR,
            QType::Ptr,
            |d| match d {
                RData::PTR(p) => Some(plain(&p.0)),
                _ => None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn nameservers_parse_with_the_default_port() {
        assert_eq!(
            parse_nameserver("192.0.2.1").unwrap(),
            "192.0.2.1:53".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_nameserver("[2001:db8::1]:5353").unwrap(),
            "[2001:db8::1]:5353".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_nameserver("2001:db8::1").unwrap(),
            "[2001:db8::1]:53".parse::<SocketAddr>().unwrap()
        );
        let err = parse_nameserver("ns1.example").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`--nameserver ns1.example`: expected IP or IP:PORT"
        );
    }

    fn assert_sync<T: Send + Sync>() {}

    #[test]
    fn resolver_is_shareable() {
        assert_sync::<Resolver>();
    }

    #[test]
    fn error_kinds_map_to_spf() {
        let nx = to_spf(
            ResolveError::NxDomain {
                name: "a.example".into(),
            },
            QType::Txt,
        );
        assert_eq!(
            nx,
            spf::DnsError::NxDomain {
                name: "a.example".into()
            }
        );
        let t = to_spf(
            ResolveError::Timeout {
                name: "a.example".into(),
                rtype: "TXT".into(),
                server: "192.0.2.1:53".into(),
                timeout: Duration::from_secs(1),
            },
            QType::Txt,
        );
        assert!(matches!(
            t,
            spf::DnsError::Temporary {
                qtype: QType::Txt,
                ..
            }
        ));
    }

    #[test]
    fn unanswered_server_times_out_without_hanging() {
        // A bound UDP socket that never answers: the query must come back
        // as a timeout within the deadline.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = silent.local_addr().expect("addr");
        let r = Resolver::direct(addr, Duration::from_millis(200)).expect("resolver");
        let start = std::time::Instant::now();
        let err = r.txt("example.test").expect_err("no answer expected");
        assert!(err.is_temporary(), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    fn txt_answer(text: &str) -> Answer {
        let name = Name::from_ascii("a.example.").expect("name");
        let rdata = RData::TXT(hickory_resolver::proto::rr::rdata::TXT::new(vec![
            text.to_string(),
        ]));
        Ok(vec![Record::from_rdata(name, 300, rdata)])
    }

    fn servfail() -> Answer {
        Err(ResolveError::Rcode {
            name: "a.example".into(),
            rtype: "TXT".into(),
            server: "192.0.2.1:53".into(),
            rcode: "SERVFAIL".into(),
        })
    }

    fn timeout() -> Answer {
        Err(ResolveError::Timeout {
            name: "a.example".into(),
            rtype: "TXT".into(),
            server: "192.0.2.1:53".into(),
            timeout: Duration::from_secs(1),
        })
    }

    /// Asks `cache` for a.example TXT with `answer` as what the wire would
    /// say, counting the queries sent in `sent`.
    fn ask(cache: &RunCache, sent: &AtomicUsize, answer: Answer) -> Answer {
        cache.get_or_query("a.example", RecordType::TXT, || {
            sent.fetch_add(1, Ordering::SeqCst);
            answer
        })
    }

    #[test]
    fn run_cache_keeps_answers_and_negative_answers() {
        for first in [
            txt_answer("v=spf1 -all"),
            Ok(Vec::new()),
            Err(ResolveError::NxDomain {
                name: "a.example".into(),
            }),
        ] {
            let cache = RunCache::default();
            let sent = AtomicUsize::new(0);
            assert_eq!(ask(&cache, &sent, first.clone()), first);
            // Asked again (with or without the trailing dot): the kept
            // answer, not what the wire would now say.
            assert_eq!(ask(&cache, &sent, servfail()), first);
            let again = cache.get_or_query("a.example.", RecordType::TXT, || {
                sent.fetch_add(1, Ordering::SeqCst);
                timeout()
            });
            assert_eq!(again, first);
            assert_eq!(sent.load(Ordering::SeqCst), 1, "{first:?}");
            // Another type at the same name is another question.
            let mx = cache.get_or_query("a.example", RecordType::MX, || {
                sent.fetch_add(1, Ordering::SeqCst);
                Ok(Vec::new())
            });
            assert_eq!(mx, Ok(Vec::new()));
            assert_eq!(sent.load(Ordering::SeqCst), 2);
        }
    }

    #[test]
    fn run_cache_does_not_keep_ttl_zero_answers() {
        let cache = RunCache::default();
        let sent = AtomicUsize::new(0);
        let mut zero = txt_answer("v=spf1 -all");
        if let Ok(records) = &mut zero {
            records[0].ttl = 0;
        }
        assert_eq!(ask(&cache, &sent, zero.clone()), zero);
        assert_eq!(ask(&cache, &sent, zero.clone()), zero);
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn run_cache_does_not_keep_failures() {
        for failure in [servfail(), timeout()] {
            let cache = RunCache::default();
            let sent = AtomicUsize::new(0);
            assert_eq!(ask(&cache, &sent, failure.clone()), failure);
            // The next caller asks again and gets the new answer.
            let answer = txt_answer("v=spf1 -all");
            assert_eq!(ask(&cache, &sent, answer.clone()), answer);
            assert_eq!(sent.load(Ordering::SeqCst), 2, "{failure:?}");
        }
    }

    /// Two callers asking the same question while it is on the wire: one
    /// query, both get its outcome. `first` is what the wire says.
    fn ask_twice_in_flight(first: Answer) -> (Answer, Answer, usize) {
        let cache = RunCache::default();
        let sent = AtomicUsize::new(0);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let (c, n) = (&cache, &sent);
            let asker = s.spawn(move || {
                c.get_or_query("a.example", RecordType::TXT, || {
                    n.fetch_add(1, Ordering::SeqCst);
                    started_tx.send(()).expect("send");
                    release_rx.recv().expect("release");
                    first
                })
            });
            started_rx.recv().expect("the first query started");
            let waiter = s.spawn(|| ask(&cache, &sent, txt_answer("second query")));
            // The waiter must be parked on the pending slot before the
            // first query comes back.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while Arc::strong_count(
                match cache
                    .slots
                    .lock()
                    .unwrap()
                    .get(&("a.example".to_string(), RecordType::TXT))
                {
                    Some(Slot::Pending(p)) => p,
                    _ => panic!("the first query is pending"),
                },
            ) < 2
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the second caller did not wait for the query in flight"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            release_tx.send(()).expect("release");
            let a = asker.join().expect("asker");
            let b = waiter.join().expect("waiter");
            (a, b, sent.load(Ordering::SeqCst))
        })
    }

    #[test]
    fn run_cache_shares_a_query_in_flight() {
        let answer = txt_answer("v=spf1 -all");
        let (a, b, sent) = ask_twice_in_flight(answer.clone());
        assert_eq!((a, b, sent), (answer.clone(), answer, 1));
        // A timeout on the wire reaches every caller that was waiting for
        // it, and is then forgotten.
        let (a, b, sent) = ask_twice_in_flight(timeout());
        assert_eq!((a, b, sent), (timeout(), timeout(), 1));
    }

    #[test]
    fn run_cache_wakes_waiters_when_the_query_panics() {
        let cache = RunCache::default();
        let sent = AtomicUsize::new(0);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let c = &cache;
            let asker = s.spawn(move || {
                c.get_or_query("a.example", RecordType::TXT, || {
                    started_tx.send(()).expect("send");
                    release_rx.recv().expect("release");
                    panic!("query failed")
                })
            });
            started_rx.recv().expect("started");
            let waiter = s.spawn(|| ask(&cache, &sent, txt_answer("unused")));
            std::thread::sleep(Duration::from_millis(50));
            release_tx.send(()).expect("release");
            assert!(asker.join().is_err());
            let got = waiter.join().expect("the waiter returns");
            // Either it waited (and got the abandoned query's failure) or
            // it came after the slot was cleared (and asked itself).
            match got {
                Err(ResolveError::Failure { detail, .. }) => {
                    assert_eq!(detail, "the query was abandoned");
                    assert_eq!(sent.load(Ordering::SeqCst), 0);
                }
                other => {
                    assert_eq!(other, txt_answer("unused"));
                    assert_eq!(sent.load(Ordering::SeqCst), 1);
                }
            }
        });
        // Nothing of the abandoned query is kept.
        assert_eq!(
            ask(&cache, &sent, txt_answer("later"))
                .expect("answer")
                .len(),
            1
        );
    }

    /// A UDP name server on loopback that answers every TXT question with
    /// `v=spf1 -all` after `delay`, counting the queries it receives.
    struct SlowServer {
        addr: SocketAddr,
        /// Queries received (each ID once: see `start`).
        received: Arc<AtomicUsize>,
        /// The names asked, in the order received.
        names: Arc<Mutex<Vec<String>>>,
        _server: testserver::Server,
    }

    impl SlowServer {
        fn start(delay: Duration) -> SlowServer {
            let received = Arc::new(AtomicUsize::new(0));
            let names = Arc::new(Mutex::new(Vec::new()));
            let (count, asked) = (received.clone(), names.clone());
            let seen = Mutex::new(std::collections::HashSet::new());
            let server = testserver::Server::start(move |query| {
                // A query resent with its ID (hickory retransmits a UDP
                // query not answered within a third of a second, as RFC
                // 1035 §4.2.1 suggests) is answered again but not
                // counted: it is the same query.
                if seen.lock().unwrap().insert(query.metadata.id) {
                    count.fetch_add(1, Ordering::SeqCst);
                    for q in &query.queries {
                        asked.lock().unwrap().push(q.name().to_ascii());
                    }
                }
                std::thread::sleep(delay);
                vec![testserver::response(query, |reply| {
                    reply.metadata.recursion_available = true;
                    reply.metadata.authoritative = true;
                    for q in &query.queries {
                        reply.add_answer(spf_txt(q.name()));
                    }
                })]
            });
            SlowServer {
                addr: server.addr,
                received,
                names,
                _server: server,
            }
        }
    }

    /// `v=spf1 -all` at `owner`, the answer of the test servers.
    fn spf_txt(owner: &hickory_resolver::proto::rr::Name) -> Record {
        Record::from_rdata(
            owner.clone(),
            300,
            RData::TXT(hickory_resolver::proto::rr::rdata::TXT::new(vec![
                "v=spf1 -all".to_string(),
            ])),
        )
    }

    /// hickory shares a lookup in flight too; the run cache in front of it
    /// must keep that (one query for callers asking at once), and then
    /// answers from memory.
    #[test]
    fn cached_resolver_sends_one_query_for_callers_asking_at_once() {
        let server = SlowServer::start(Duration::from_millis(300));
        // A budget no loaded machine runs out of: a retry after a timed-out
        // attempt would be a second query for a reason that is not the
        // cache's.
        let r = Resolver::with_nameservers(&[server.addr], Duration::from_secs(60))
            .expect("resolver")
            .with_run_cache();
        let barrier = std::sync::Barrier::new(4);
        let answers: Vec<_> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        r.txt("shared.example.test")
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("thread"))
                .collect()
        });
        for a in &answers {
            assert_eq!(a, &Ok(vec![b"v=spf1 -all".to_vec()]));
        }
        assert_eq!(
            server.received.load(Ordering::SeqCst),
            1,
            "asked: {:?}",
            server.names.lock().unwrap()
        );
        // Asked again later: the kept answer, nothing on the wire.
        assert_eq!(
            r.txt("shared.example.test."),
            Ok(vec![b"v=spf1 -all".to_vec()])
        );
        assert_eq!(server.received.load(Ordering::SeqCst), 1);
    }

    /// A per-thread resolver: each thread that asks drives its queries on
    /// a runtime of its own, and the run cache stays one for all of them.
    #[test]
    fn per_thread_resolver_gives_each_thread_its_own_runtime_and_one_run_cache() {
        let server = SlowServer::start(Duration::from_millis(100));
        let r = Resolver::with_nameservers(&[server.addr], Duration::from_secs(5))
            .expect("resolver")
            .with_run_cache()
            .per_thread();
        assert!(r.is_per_thread());
        let threads = |r: &Resolver| match &r.engine {
            Engine::PerThread(t) => t.lock().unwrap().len(),
            Engine::Shared { .. } => panic!("a per-thread resolver"),
        };
        assert_eq!(threads(&r), 0, "nothing is built before the first query");
        let barrier = std::sync::Barrier::new(4);
        let ask_all = |names: &(dyn Fn(usize) -> Vec<String> + Sync)| {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|i| {
                        let (r, barrier) = (&r, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            names(i).iter().map(|n| r.txt(n)).collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|t| t.join().expect("thread"))
                    .collect::<Vec<_>>()
            })
        };
        let want = Ok(vec![b"v=spf1 -all".to_vec()]);
        let answers =
            ask_all(&|i| vec!["shared.example.test".into(), format!("t{i}.example.test")]);
        assert_eq!(answers, vec![want.clone(); 8]);
        // The shared name was asked once for the four threads that asked
        // it at once; each thread's own name was asked too.
        let mut names = server.names.lock().unwrap().clone();
        names.sort();
        names.dedup_by(|a, b| a == b && a.as_str() != "shared.example.test.");
        assert_eq!(
            names,
            [
                "shared.example.test.",
                "t0.example.test.",
                "t1.example.test.",
                "t2.example.test.",
                "t3.example.test."
            ]
        );
        assert_eq!(threads(&r), 4);
        // Other threads asking the same names (each another thread's):
        // the run cache answers, nothing goes on the wire.
        let sent = server.received.load(Ordering::SeqCst);
        let answers = ask_all(&|i| vec![format!("t{}.example.test.", (i + 1) % 4)]);
        assert_eq!(answers, vec![want.clone(); 4]);
        assert_eq!(server.received.load(Ordering::SeqCst), sent);
        // ... and those threads, which sent nothing, got no runtime.
        assert_eq!(threads(&r), 4);
        // A thread that asks twice keeps its runtime.
        assert_eq!(r.txt("main.example.test"), want);
        assert_eq!(r.txt("main2.example.test"), want);
        assert_eq!(threads(&r), 5);
        assert!(server.received.load(Ordering::SeqCst) > sent);
    }

    /// The deadline of a per-thread resolver's query runs on the calling
    /// thread's runtime: a silent server still gives a timeout.
    #[test]
    fn per_thread_resolver_times_out_without_hanging() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = silent.local_addr().expect("addr");
        let r = Resolver::direct(addr, Duration::from_millis(200))
            .expect("resolver")
            .per_thread();
        let start = std::time::Instant::now();
        let err = r.txt("example.test").expect_err("no answer expected");
        assert!(err.is_timeout(), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    /// A UDP name server on loopback that answers TXT questions with
    /// `v=spf1 -all` and every other type with SERVFAIL, recording the
    /// source address of each query.
    fn txt_or_servfail_server() -> testserver::Server {
        testserver::Server::start(|query| {
            vec![testserver::response(query, |reply| {
                reply.metadata.authoritative = true;
                for q in &query.queries {
                    if q.query_type() == RecordType::TXT {
                        reply.add_answer(spf_txt(q.name()));
                    } else {
                        reply.metadata.response_code = ResponseCode::ServFail;
                    }
                }
            })]
        })
    }

    /// The plain UDP path answers what it can itself, one query each from
    /// a socket of its own, and hands the rest to hickory, whose outcome
    /// is the one a resolver without the plain path gives.
    #[test]
    fn plain_udp_answers_itself_and_hands_the_rest_to_hickory() {
        let server = txt_or_servfail_server();
        let (addr, sources) = (server.addr, &server.sources);
        let timeout = Duration::from_secs(30);
        let hickory = Resolver::direct(addr, timeout).expect("resolver");
        let plain = Resolver::direct(addr, timeout)
            .expect("resolver")
            .per_thread()
            .plain_udp();
        assert!(plain.is_plain_udp() && !hickory.is_plain_udp());
        let want = Ok(vec![b"v=spf1 -all".to_vec()]);
        for n in ["a.example.test", "b.example.test", "c.example.test."] {
            assert_eq!(plain.txt(n), want);
        }
        // Answered on the plain path: no hickory resolver was built.
        match &plain.engine {
            Engine::PerThread(t) => assert_eq!(t.lock().unwrap().len(), 0),
            Engine::Shared { .. } => panic!("a per-thread resolver"),
        }
        // One query each, each from another source port.
        let mut ports: Vec<u16> = sources.lock().unwrap().iter().map(|s| s.port()).collect();
        assert_eq!(ports.len(), 3);
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 3);
        // SERVFAIL is hickory's to report: the plain query, then the
        // queries hickory alone sends for it (it may ask again).
        let sent = || sources.lock().unwrap().len();
        let before = sent();
        let want = hickory.mx("a.example.test");
        let by_hickory = sent() - before;
        assert!(by_hickory >= 1);
        let before = sent();
        let got = plain.mx("a.example.test");
        assert_eq!(sent(), before + 1 + by_hickory);
        assert_eq!(got, want);
        assert!(
            matches!(&got, Err(ResolveError::Rcode { rcode, .. }) if rcode == "SERVFAIL"),
            "{got:?}"
        );
        match &plain.engine {
            Engine::PerThread(t) => assert_eq!(t.lock().unwrap().len(), 1),
            Engine::Shared { .. } => panic!("a per-thread resolver"),
        }
    }

    /// A resolver of several servers keeps hickory's order and retries:
    /// it has no plain path even when asked for one.
    #[test]
    fn plain_udp_is_for_one_server_only() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:9".parse().unwrap();
        let timeout = Duration::from_millis(100);
        let one = Resolver::with_nameservers(&[a], timeout).expect("resolver");
        assert!(one.udp.is_some());
        let two = Resolver::with_nameservers(&[a, b], timeout)
            .expect("resolver")
            .plain_udp();
        assert!(two.udp.is_none());
        let direct = Resolver::direct(a, timeout).expect("resolver");
        let udp = direct.udp.as_ref().expect("plain path");
        assert!(!udp.recursion_desired);
        assert_eq!(udp.attempts, 1);
    }

    #[test]
    fn txt_record_joins_strings() {
        let t = TxtRecord {
            strings: vec![b"v=spf1 ".to_vec(), b"-all".to_vec()],
        };
        assert_eq!(t.text(), "v=spf1 -all");
    }
}
