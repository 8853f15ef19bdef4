//! An IMAP mailbox as a report source, once or watched with IDLE.
//!
//! Owns the IMAP side of ingestion: the `imap://` / `imaps://` URL, TLS
//! (implicit TLS or STARTTLS, plaintext only on loopback or when allowed),
//! login, fetching messages by UID in bounded batches without touching
//! their flags, and moving each handled message to the archive or invalid
//! folder after the store committed it ([`Source::finish`]). [`watch`]
//! keeps the connection in IDLE and reconnects after errors. Leaves
//! parsing to `reports::parse`, SQL to `reports::store`, and where the
//! password comes from (environment, file) to the command line.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::imap_proto::{Response, Status};
use async_imap::{Client, Session};
use futures_util::StreamExt as _;
use futures_util::future::{Either, select};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_rustls::client::TlsStream;

use super::{IngestError, Item, Outcome, Source, Summary};
use crate::reports::IngestLimits;
use crate::reports::store::ReportStore;

/// Errors of the IMAP source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImapError {
    #[error("invalid IMAP URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error(
        "refusing to log in to {host} without TLS: the server offers no STARTTLS; \
         use imaps://, or --imap-allow-plain if the network is trusted"
    )]
    PlainRefused { host: String },
    #[error("cannot start the IMAP runtime: {source}")]
    Runtime { source: std::io::Error },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot read CA certificates from {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("{server} refused the login of {user:?}: {reason}")]
    Login {
        server: String,
        user: String,
        reason: String,
    },
    #[error("IMAP {command} failed on {server}: {source}")]
    Command {
        server: String,
        command: String,
        source: async_imap::error::Error,
    },
    #[error("IMAP {command} on {server} got no answer within {secs} s")]
    Timeout {
        server: String,
        command: String,
        secs: u64,
    },
    #[error("{server} closed the connection")]
    Closed { server: String },
    #[error("the connection to {server} broke during {command}: {reason}")]
    Broken {
        server: String,
        command: String,
        reason: String,
    },
    #[error(
        "{server} supports neither MOVE (RFC 6851) nor UIDPLUS (RFC 4315): \
         handled messages cannot be moved safely"
    )]
    NoMove { server: String },
    #[error("message {origin} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        origin: String,
        size: u64,
        limit: u64,
    },
    #[error("the server returned no body for {origin}")]
    NoBody { origin: String },
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `imaps://`: TLS from the first byte (RFC 8314), port 993.
    Tls,
    /// `imap://`: STARTTLS (RFC 9051 6.2.1), port 143; plaintext only when
    /// the server offers no STARTTLS and plaintext is allowed.
    StartTls,
}

/// A parsed `imap://user@host:port/Folder` or `imaps://…` URL.
///
/// RFC 5092 3: `imapurl = "imap://" iserver ipath-query`,
/// `iserver = [iuserinfo "@"] host [ ":" port ]`; the user and the
/// mailbox are percent-encoded (`enc-user`, `enc-mailbox`). `imaps` is
/// the same form for implicit TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    pub security: Security,
    pub user: String,
    /// Without brackets for IPv6 literals.
    pub host: String,
    pub port: u16,
    /// The folder to read; `INBOX` when the URL has no path.
    pub folder: String,
}

impl std::str::FromStr for ImapUrl {
    type Err = ImapError;

    fn from_str(url: &str) -> Result<Self, ImapError> {
        let bad = |reason: &str| ImapError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (security, rest) = if let Some(r) = url.strip_prefix("imaps://") {
            (Security::Tls, r)
        } else if let Some(r) = url.strip_prefix("imap://") {
            (Security::StartTls, r)
        } else {
            return Err(bad("must start with imaps:// or imap://"));
        };
        let (server, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Some((user, hostport)) = server.rsplit_once('@') else {
            return Err(bad("no user: write imaps://user@host/INBOX"));
        };
        if user.contains(';') {
            return Err(bad(
                "AUTH= in the URL is not supported; log in is by password",
            ));
        }
        let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in the user"))?;
        if user.is_empty() {
            return Err(bad("empty user"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
            None if security == Security::Tls => 993,
            None => 143,
        };
        // `;UIDVALIDITY=` and `?search` parts name messages, not a folder.
        let path = path.split([';', '?']).next().unwrap_or_default();
        let folder = percent_decode(path.trim_end_matches('/'))
            .ok_or_else(|| bad("bad %-escape in the folder"))?;
        if folder.contains(['\r', '\n']) {
            return Err(bad("line break in the folder name"));
        }
        Ok(ImapUrl {
            security,
            user,
            host,
            port,
            folder: if folder.is_empty() {
                "INBOX".to_owned()
            } else {
                folder
            },
        })
    }
}

impl std::fmt::Display for ImapUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.security {
            Security::Tls => "imaps",
            Security::StartTls => "imap",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "{scheme}://{}@{host}:{}/{}",
            percent_encode(&self.user),
            self.port,
            percent_encode(&self.folder)
        )
    }
}

impl ImapUrl {
    /// `localhost`, 127.0.0.0/8 or ::1: plaintext never leaves the machine.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,=".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// A password that never shows up in `Debug` output or logs.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// Reads a password file: its first line, without the line end.
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let line = text.lines().next().unwrap_or_default();
        Ok(Self(line.to_owned()))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Everything needed to reach and use the report mailbox.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    pub url: ImapUrl,
    pub password: Password,
    /// PEM file with the CA(s) to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Allow plaintext login to a non-loopback server that offers no
    /// STARTTLS.
    pub allow_plain: bool,
    /// Folder for handled reports (new and duplicate); created if missing.
    pub archive: String,
    /// Folder for messages that are not valid reports; created if missing.
    pub invalid: String,
    /// Most messages fetched in one `UID FETCH`.
    pub batch: usize,
    /// Most bytes (by RFC822.SIZE) fetched in one `UID FETCH`.
    pub batch_bytes: u64,
    /// Longest wait for the TCP connection to be established.
    pub connect_timeout: Duration,
    /// Longest wait for the server to answer one command in full (the
    /// greeting, the TLS handshake and every command, a whole `UID FETCH`
    /// batch included).
    pub io_timeout: Duration,
    /// Longest IDLE before it is re-issued (at most 29 minutes).
    pub idle_timeout: Duration,
    /// First wait before reconnecting after an error; doubles up to
    /// `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Use UID COPY + UID STORE + UID EXPUNGE even when MOVE is offered.
    pub force_copy_fallback: bool,
}

/// RFC 2177 3: "clients using IDLE are advised to terminate the IDLE and
/// re-issue it at least every 29 minutes to avoid being logged off."
pub const MAX_IDLE: Duration = Duration::from_secs(29 * 60);

impl ImapConfig {
    pub fn new(url: ImapUrl, password: Password) -> Self {
        Self {
            url,
            password,
            ca_file: None,
            allow_plain: false,
            archive: "Archive".to_owned(),
            invalid: "Invalid".to_owned(),
            batch: 32,
            batch_bytes: 32 << 20,
            connect_timeout: Duration::from_secs(30),
            io_timeout: Duration::from_secs(120),
            idle_timeout: MAX_IDLE,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            force_copy_fallback: false,
        }
    }
}

/// Asks a running [`watch`] (or a pass of [`ImapSource`]) to stop after
/// the message it is handling. Cheap to clone; safe from any thread.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    inner: Arc<StopInner>,
}

#[derive(Debug, Default)]
struct StopInner {
    stopped: AtomicBool,
    notify: tokio::sync::Notify,
}

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.notify.notify_one();
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    async fn stopped(&self) {
        while !self.is_stopped() {
            self.inner.notify.notified().await;
        }
    }
}

/// The TCP connection, with or without TLS (one type for the session),
/// remembering whether the server closed it.
struct Conn {
    io: Io,
    /// A read returned end-of-stream.
    eof: bool,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    fn new(io: Io) -> Self {
        Conn { io, eof: false }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.io {
            Io::Plain(_) => "Conn::Plain",
            Io::Tls(_) => "Conn::Tls",
        })
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() == before && buf.remaining() > 0 {
            this.eof = true;
        }
        r
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type ImapSession = Session<Conn>;

/// How handled messages leave the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveMethod {
    /// RFC 6851 `UID MOVE`: atomic.
    Move,
    /// RFC 4315 `UID COPY`, `UID STORE +FLAGS (\Deleted)`, `UID EXPUNGE`.
    CopyExpunge,
}

/// A keyword the COPY fallback sets on a message before copying it (the
/// copy carries it too, RFC 9051 6.4.7: "the flags [...] SHOULD be
/// preserved"). After a crash, a message that carries it and is not yet
/// `\Deleted` may or may not have been copied: the next run looks for the
/// copy by Message-ID before copying again. A message carrying it and
/// `\Deleted` was copied: the next run expunges it. Never touches
/// messages someone else flagged `\Deleted`.
const MOVING_KEYWORD: &str = "$MailauthMoving";

/// One logged-in connection with the folder selected; an ingest [`Source`].
///
/// Each pass lists the messages present (not `\Deleted`), fetches them in
/// batches with `BODY.PEEK[]` (flags stay as they are until the store has
/// committed) and moves each one in [`Source::finish`].
pub struct ImapSource {
    config: ImapConfig,
    rt: Runtime,
    session: Option<ImapSession>,
    method: MoveMethod,
    uid_validity: u32,
    limit: u64,
    /// UIDs still to fetch, with their RFC822.SIZE.
    queue: VecDeque<(u32, u64)>,
    /// Fetched, not yet handed out.
    fetched: VecDeque<Item>,
    /// Handed out, not yet finished: origin → UID.
    in_flight: HashMap<String, u32>,
    /// UIDs whose move failed on this connection: not retried until the
    /// next connection, so one stuck message cannot spin a watch loop.
    skip: std::collections::HashSet<u32>,
    /// The connection broke: the pass ends and the error is kept here.
    broken: Option<ImapError>,
    stop: StopSignal,
}

impl std::fmt::Debug for ImapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSource")
            .field("url", &self.config.url.to_string())
            .field("method", &self.method)
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

fn runtime() -> Result<Runtime, ImapError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|source| ImapError::Runtime { source })
}

impl ImapSource {
    /// Connects, logs in, creates the archive and invalid folders if
    /// missing, selects the folder and lists its messages.
    /// `limit` is the largest message fetched (bigger ones go to the
    /// invalid folder unread).
    pub fn connect(config: ImapConfig, limit: u64) -> Result<Self, ImapError> {
        Self::connect_with(config, limit, StopSignal::new(), runtime()?)
    }

    fn connect_with(
        config: ImapConfig,
        limit: u64,
        stop: StopSignal,
        rt: Runtime,
    ) -> Result<Self, ImapError> {
        let (session, method, uid_validity) = rt.block_on(open(&config))?;
        let mut src = Self {
            config,
            rt,
            session: Some(session),
            method,
            uid_validity,
            limit,
            queue: VecDeque::new(),
            fetched: VecDeque::new(),
            in_flight: HashMap::new(),
            skip: Default::default(),
            broken: None,
            stop,
        };
        src.list()?;
        Ok(src)
    }

    /// How this connection moves messages.
    pub fn move_method(&self) -> MoveMethod {
        self.method
    }

    /// The error that ended the last pass early, if the connection broke.
    pub fn take_error(&mut self) -> Option<ImapError> {
        self.broken.take()
    }

    /// Lists the messages to handle (`UID SEARCH UNDELETED`) for the next
    /// pass.
    fn list(&mut self) -> Result<(), ImapError> {
        let cfg = &self.config;
        let session = self.session.as_mut().ok_or_else(|| closed(cfg))?;
        let found = self
            .rt
            .block_on(list_messages(session, cfg))
            .inspect_err(|_| self.session = None)?;
        self.queue = found
            .into_iter()
            .filter(|(uid, _)| !self.skip.contains(uid))
            .collect();
        Ok(())
    }

    /// Logs out politely (errors are ignored: the work is done).
    pub fn logout(mut self) {
        if let Some(mut s) = self.session.take() {
            let t = self.config.io_timeout;
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(t, s.logout()).await });
        }
    }

    fn origin(&self, uid: u32) -> String {
        // RFC 5092 3: "imap://" iserver "/" enc-mailbox [uidvalidity]
        // iuid, e.g. imap://minbari.example.org/gray-council;UIDVALIDITY=385759045/;UID=20
        format!(
            "{};UIDVALIDITY={}/;UID={uid}",
            self.config.url, self.uid_validity
        )
    }

    fn fill(&mut self) -> Result<(), ImapError> {
        while self.fetched.is_empty() {
            let Some(&(first_uid, first_size)) = self.queue.front() else {
                return Ok(());
            };
            if first_size > self.limit {
                // Nothing to commit: set it aside now, or every run would
                // trip over it again.
                self.queue.pop_front();
                let origin = self.origin(first_uid);
                self.move_uid(first_uid, Dest::Invalid)?;
                return Err(ImapError::TooLarge {
                    origin,
                    size: first_size,
                    limit: self.limit,
                });
            }
            let mut uids = Vec::new();
            let mut bytes = 0u64;
            while let Some(&(uid, size)) = self.queue.front() {
                if size > self.limit
                    || uids.len() >= self.config.batch.max(1)
                    || (!uids.is_empty() && bytes + size > self.config.batch_bytes)
                {
                    break;
                }
                self.queue.pop_front();
                uids.push(uid);
                bytes += size;
            }
            let cfg = &self.config;
            let session = self.session.as_mut().ok_or_else(|| closed(cfg))?;
            let bodies = self
                .rt
                .block_on(fetch_bodies(session, cfg, &uids))
                .inspect_err(|_| self.session = None)?;
            let mut too_large = None;
            for uid in uids {
                let origin = self.origin(uid);
                // Expunged by someone else meanwhile: nothing to do.
                let Some(body) = bodies.get(&uid) else {
                    continue;
                };
                if body.len() as u64 > self.limit {
                    // The size the server announced was wrong.
                    self.move_uid(uid, Dest::Invalid)?;
                    too_large = Some(ImapError::TooLarge {
                        origin,
                        size: body.len() as u64,
                        limit: self.limit,
                    });
                    continue;
                }
                self.in_flight.insert(origin.clone(), uid);
                self.fetched.push_back(Item {
                    origin,
                    bytes: body.clone(),
                    path: None,
                    stream: false,
                });
            }
            if let Some(e) = too_large {
                return Err(e);
            }
        }
        Ok(())
    }

    fn move_uid(&mut self, uid: u32, dest: Dest) -> Result<(), ImapError> {
        let cfg = &self.config;
        let folder = match dest {
            Dest::Archive => &cfg.archive,
            Dest::Invalid => &cfg.invalid,
        };
        let session = self.session.as_mut().ok_or_else(|| closed(cfg))?;
        let r = self
            .rt
            .block_on(move_message(session, cfg, self.method, uid, folder));
        if let Err(e) = &r {
            self.skip.insert(uid);
            if is_connection_error(e) {
                self.session = None;
            }
        }
        r
    }

    /// IDLE until the folder changes, `timeout` passes or `stop` fires,
    /// then lists the messages again. `Ok(false)` when stopped.
    fn idle(&mut self, timeout: Duration) -> Result<bool, ImapError> {
        let cfg = &self.config;
        let mut session = self.session.take().ok_or_else(|| closed(cfg))?;
        // Mail that arrived after the last listing was announced (EXISTS)
        // in the answer to some later command: IDLE would not announce it
        // again, so list now instead of waiting.
        if had_news(&mut session) {
            self.session = Some(session);
            self.list()?;
            return Ok(true);
        }
        let stop = self.stop.clone();
        let (session, stopped) = self.rt.block_on(idle_once(session, cfg, timeout, &stop))?;
        self.session = Some(session);
        if stopped {
            return Ok(false);
        }
        self.list()?;
        Ok(true)
    }
}

#[derive(Debug, Clone, Copy)]
enum Dest {
    Archive,
    Invalid,
}

fn to_ingest(e: ImapError) -> IngestError {
    match e {
        ImapError::TooLarge {
            origin,
            size,
            limit,
        } => IngestError::TooLarge {
            path: PathBuf::from(origin),
            size,
            limit,
        },
        other => IngestError::Read {
            path: PathBuf::new(),
            source: std::io::Error::other(other),
        },
    }
}

impl Source for ImapSource {
    fn next_item(&mut self) -> Option<Result<Item, IngestError>> {
        if self.broken.is_some() || self.stop.is_stopped() {
            return None;
        }
        if let Err(e) = self.fill() {
            if self.session.is_none() {
                // The connection broke: report it once, end the pass and
                // keep the error for the caller, who reconnects.
                let err = IngestError::Read {
                    path: PathBuf::from(self.config.url.to_string()),
                    source: std::io::Error::other(e.to_string()),
                };
                self.broken = Some(e);
                return Some(Err(err));
            }
            return Some(Err(to_ingest_with_origin(e, &self.config.url)));
        }
        self.fetched.pop_front().map(Ok)
    }

    fn finish(&mut self, item: &Item, outcome: &Outcome) -> Result<(), IngestError> {
        let Some(uid) = self.in_flight.remove(&item.origin) else {
            return Ok(());
        };
        let dest = match outcome {
            Outcome::Stored | Outcome::Duplicate => Dest::Archive,
            Outcome::Invalid { .. } => Dest::Invalid,
        };
        self.move_uid(uid, dest).map_err(|e| {
            if self.session.is_none() {
                self.fetched.clear();
                self.broken = Some(ImapError::Closed {
                    server: server(&self.config),
                });
            }
            IngestError::Move {
                from: PathBuf::from(&item.origin),
                to: PathBuf::from(match dest {
                    Dest::Archive => &self.config.archive,
                    Dest::Invalid => &self.config.invalid,
                }),
                source: std::io::Error::other(e),
            }
        })
    }
}

fn to_ingest_with_origin(e: ImapError, url: &ImapUrl) -> IngestError {
    match to_ingest(e) {
        IngestError::Read { source, .. } => IngestError::Read {
            path: PathBuf::from(url.to_string()),
            source,
        },
        other => other,
    }
}

fn server(cfg: &ImapConfig) -> String {
    format!("{}:{}", cfg.url.host, cfg.url.port)
}

fn closed(cfg: &ImapConfig) -> ImapError {
    ImapError::Closed {
        server: server(cfg),
    }
}

fn is_setup_error(e: &ImapError) -> bool {
    matches!(
        e,
        ImapError::Url { .. }
            | ImapError::PlainRefused { .. }
            | ImapError::CaFile { .. }
            | ImapError::Tls { .. }
            | ImapError::Login { .. }
            | ImapError::NoMove { .. }
    )
}

fn is_connection_error(e: &ImapError) -> bool {
    match e {
        ImapError::Command { source, .. } => matches!(
            source,
            async_imap::error::Error::Io(_) | async_imap::error::Error::ConnectionLost
        ),
        ImapError::Timeout { .. } | ImapError::Closed { .. } | ImapError::Broken { .. } => true,
        _ => false,
    }
}

/// `UID FETCH set query`, every response collected, under the I/O timeout.
async fn uid_fetch(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    set: &str,
    query: &str,
    what: &str,
) -> Result<Vec<async_imap::types::Fetch>, ImapError> {
    let fetches = cmd(cfg, what, async {
        let stream = session.uid_fetch(set, query).await?;
        stream
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<async_imap::error::Result<Vec<_>>>()
    })
    .await?;
    still_open(session, cfg, what)?;
    Ok(fetches)
}

/// Runs one command future with the I/O timeout, naming it in errors.
async fn cmd<T>(
    cfg: &ImapConfig,
    command: &str,
    fut: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(cfg.io_timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(async_imap::error::Error::ConnectionLost)) => Err(ImapError::Broken {
            server: server(cfg),
            command: command.to_owned(),
            reason: "the server closed the connection before completing the command".to_owned(),
        }),
        Ok(Err(async_imap::error::Error::Io(e))) => Err(ImapError::Broken {
            server: server(cfg),
            command: command.to_owned(),
            reason: if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "the server closed the connection in the middle of a response".to_owned()
            } else {
                e.to_string()
            },
        }),
        Ok(Err(source)) => Err(ImapError::Command {
            server: server(cfg),
            command: command.to_owned(),
            source,
        }),
        Err(_) => Err(ImapError::Timeout {
            server: server(cfg),
            command: command.to_owned(),
            secs: cfg.io_timeout.as_secs(),
        }),
    }
}

fn tls_config(cfg: &ImapConfig) -> Result<Arc<rustls::ClientConfig>, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let ca_err = |reason: String| ImapError::CaFile {
                path: path.clone(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_err(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no CERTIFICATE in the file".to_owned()));
            }
            for c in certs {
                roots.add(c).map_err(|e| ca_err(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A broken system certificate is skipped, as browsers do.
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Tls {
            host: cfg.url.host.clone(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn tls_wrap(cfg: &ImapConfig, tcp: TcpStream) -> Result<Conn, ImapError> {
    let tls_err = |reason: String| ImapError::Tls {
        host: cfg.url.host.clone(),
        reason,
    };
    let name = ServerName::try_from(cfg.url.host.clone()).map_err(|e| tls_err(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(tls_config(cfg)?);
    match tokio::time::timeout(cfg.io_timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(Conn::new(Io::Tls(Box::new(s)))),
        Ok(Err(e)) => Err(tls_err(e.to_string())),
        Err(_) => Err(tls_err("handshake timed out".to_owned())),
    }
}

/// Reads the server greeting: RFC 9051 7.1.1 `greeting = "*" SP
/// (resp-cond-auth / resp-cond-bye) CRLF`.
async fn greeting(cfg: &ImapConfig, client: &mut Client<Conn>) -> Result<(), ImapError> {
    let resp = cmd(cfg, "greeting", async {
        client.read_response().await.map_err(Into::into)
    })
    .await?
    .ok_or_else(|| closed(cfg))?;
    match resp.parsed() {
        Response::Data {
            status: Status::Ok, ..
        } => Ok(()),
        other => Err(ImapError::Login {
            server: server(cfg),
            user: cfg.url.user.clone(),
            reason: format!("unexpected greeting {other:?}"),
        }),
    }
}

/// Connects and logs in, and prepares the folders.
async fn open(cfg: &ImapConfig) -> Result<(ImapSession, MoveMethod, u32), ImapError> {
    let addr = format!("{}:{}", cfg.url.host, cfg.url.port);
    let tcp = match tokio::time::timeout(
        cfg.connect_timeout,
        TcpStream::connect((cfg.url.host.as_str(), cfg.url.port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(ImapError::Connect { addr, source }),
        Err(_) => {
            return Err(ImapError::Connect {
                addr,
                source: std::io::ErrorKind::TimedOut.into(),
            });
        }
    };
    let _ = tcp.set_nodelay(true);
    let client = match cfg.url.security {
        Security::Tls => {
            let mut client = Client::new(tls_wrap(cfg, tcp).await?);
            greeting(cfg, &mut client).await?;
            client
        }
        Security::StartTls => {
            let mut client = Client::new(Conn::new(Io::Plain(tcp)));
            greeting(cfg, &mut client).await?;
            // RFC 9051 6.2.1: "A [TLS] negotiation begins immediately after
            // the CRLF at the end of the tagged OK response from the
            // server." A server without STARTTLS answers BAD or NO.
            let started = cmd(cfg, "STARTTLS", async {
                client.run_command_and_check_ok("STARTTLS", None).await
            })
            .await;
            match started {
                Ok(()) => {
                    let Conn {
                        io: Io::Plain(tcp), ..
                    } = client.into_inner()
                    else {
                        return Err(closed(cfg));
                    };
                    // The greeting is not repeated after STARTTLS.
                    Client::new(tls_wrap(cfg, tcp).await?)
                }
                Err(ImapError::Command {
                    source: async_imap::error::Error::Bad(_) | async_imap::error::Error::No(_),
                    ..
                }) => {
                    if cfg.allow_plain || cfg.url.is_loopback() {
                        client
                    } else {
                        return Err(ImapError::PlainRefused {
                            host: cfg.url.host.clone(),
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    };
    let login =
        tokio::time::timeout(cfg.io_timeout, client.login(&cfg.url.user, &cfg.password.0)).await;
    let mut session = match login {
        Ok(Ok(s)) => s,
        Ok(Err((e, _))) => {
            return Err(ImapError::Login {
                server: server(cfg),
                user: cfg.url.user.clone(),
                reason: e.to_string(),
            });
        }
        Err(_) => {
            return Err(ImapError::Timeout {
                server: server(cfg),
                command: "LOGIN".to_owned(),
                secs: cfg.io_timeout.as_secs(),
            });
        }
    };
    let caps = cmd(cfg, "CAPABILITY", session.capabilities()).await?;
    let method = if caps.has_str("MOVE") && !cfg.force_copy_fallback {
        MoveMethod::Move
    } else if caps.has_str("UIDPLUS") {
        MoveMethod::CopyExpunge
    } else {
        return Err(ImapError::NoMove {
            server: server(cfg),
        });
    };
    for folder in [&cfg.archive, &cfg.invalid] {
        ensure_folder(&mut session, cfg, folder).await?;
    }
    let mailbox = cmd(cfg, "SELECT", session.select(&cfg.url.folder)).await?;
    // Without UIDVALIDITY (RFC 9051 requires it) UIDs still work within
    // this connection; 0 only shows in origins.
    let uid_validity = mailbox.uid_validity.unwrap_or(0);
    if method == MoveMethod::CopyExpunge {
        finish_interrupted_moves(&mut session, cfg).await?;
    }
    Ok((session, method, uid_validity))
}

/// Creates `folder` unless `LIST` shows it exists.
async fn ensure_folder(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    folder: &str,
) -> Result<(), ImapError> {
    let names: Vec<_> = cmd(cfg, "LIST", async {
        let stream = session.list(Some(""), Some(folder)).await?;
        stream
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<async_imap::error::Result<Vec<_>>>()
    })
    .await?;
    still_open(session, cfg, "LIST")?;
    if names.is_empty() {
        cmd(cfg, "CREATE", session.create(folder)).await?;
    }
    Ok(())
}

/// Finishes what a crash cut short in the COPY fallback (see
/// [`MOVING_KEYWORD`]); the folder is selected again at the end.
async fn finish_interrupted_moves(
    session: &mut ImapSession,
    cfg: &ImapConfig,
) -> Result<(), ImapError> {
    // Marked but not flagged: was the copy made? Look for it by
    // Message-ID in the destination folders.
    let marked = uid_search(session, cfg, &format!("UNDELETED KEYWORD {MOVING_KEYWORD}")).await?;
    if !marked.is_empty() {
        let set = uid_set(marked.into_iter().collect());
        let fetches = uid_fetch(session, cfg, &set, "(UID ENVELOPE)", "UID FETCH").await?;
        let mut by_id: Vec<(u32, String)> = fetches
            .iter()
            .filter_map(|f| {
                let id = f.envelope()?.message_id.as_ref()?;
                let id = std::str::from_utf8(id).ok()?;
                // Only ids that quote safely; others are copied again.
                let ok = !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
                Some((f.uid?, id.to_owned())).filter(|_| ok)
            })
            .collect();
        let mut copied = Vec::new();
        for folder in [&cfg.archive, &cfg.invalid] {
            if by_id.is_empty() {
                break;
            }
            cmd(cfg, "EXAMINE", session.examine(folder)).await?;
            let mut rest = Vec::new();
            for (uid, id) in by_id {
                let found = uid_search(
                    session,
                    cfg,
                    &format!("KEYWORD {MOVING_KEYWORD} HEADER Message-ID \"{id}\""),
                )
                .await?;
                if found.is_empty() {
                    rest.push((uid, id));
                } else {
                    copied.push(uid);
                }
            }
            by_id = rest;
        }
        cmd(cfg, "SELECT", session.select(&cfg.url.folder)).await?;
        if !copied.is_empty() {
            store_flags(session, cfg, &uid_set(copied), "\\Deleted").await?;
        }
    }
    // Copied and flagged: only the expunge is missing.
    let uids = uid_search(session, cfg, &format!("DELETED KEYWORD {MOVING_KEYWORD}")).await?;
    if uids.is_empty() {
        return Ok(());
    }
    uid_expunge(session, cfg, &uid_set(uids.into_iter().collect())).await
}

/// A UID set in RFC 9051 `sequence-set` form: `1,3,5`.
fn uid_set(mut uids: Vec<u32>) -> String {
    uids.sort_unstable();
    let parts: Vec<String> = uids.iter().map(u32::to_string).collect();
    parts.join(",")
}

/// `UID SEARCH UNDELETED`, then sizes by `UID FETCH 1:* (UID RFC822.SIZE)`,
/// sorted by UID (oldest first).
async fn list_messages(
    session: &mut ImapSession,
    cfg: &ImapConfig,
) -> Result<Vec<(u32, u64)>, ImapError> {
    drain_unsolicited(session);
    let uids = uid_search(session, cfg, "UNDELETED").await?;
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let mut wanted: Vec<u32> = uids.into_iter().collect();
    wanted.sort_unstable();
    let mut out = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(500) {
        let set = uid_set(chunk.to_vec());
        let fetches = uid_fetch(session, cfg, &set, "(UID RFC822.SIZE)", "UID FETCH").await?;
        for f in fetches {
            if let Some(uid) = f.uid {
                out.push((uid, u64::from(f.size.unwrap_or(0))));
            }
        }
    }
    out.sort_unstable();
    out.dedup_by_key(|(uid, _)| *uid);
    Ok(out)
}

/// RFC 9051 6.4.5: "BODY.PEEK[<section>]<<partial>> An alternate form of
/// BODY[<section>] that does not implicitly set the \Seen flag."
async fn fetch_bodies(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    uids: &[u32],
) -> Result<HashMap<u32, Vec<u8>>, ImapError> {
    let set = uid_set(uids.to_vec());
    let what = match (uids.first(), uids.last()) {
        (Some(first), Some(last)) if uids.len() > 1 => format!(
            "UID FETCH of {} message bodies (UIDs {first} to {last})",
            uids.len()
        ),
        _ => format!("UID FETCH of the message body of UID {set}"),
    };
    let fetches = uid_fetch(session, cfg, &set, "(UID BODY.PEEK[])", &what).await?;
    let mut out = HashMap::new();
    for f in fetches {
        // Unsolicited FETCH responses (flag changes) carry no body.
        if let (Some(uid), Some(body)) = (f.uid, f.body())
            && uids.contains(&uid)
        {
            out.insert(uid, body.to_vec());
        }
    }
    Ok(out)
}

async fn move_message(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    method: MoveMethod,
    uid: u32,
    folder: &str,
) -> Result<(), ImapError> {
    let set = uid.to_string();
    match method {
        // RFC 6851 3.1: "The MOVE command takes two arguments: a message
        // set (sequence numbers for MOVE, UIDs for UID MOVE) and a named
        // mailbox."
        MoveMethod::Move => cmd(cfg, "UID MOVE", session.uid_mv(&set, folder)).await?,
        // RFC 6851 3.3: "a client [...] can use COPY, STORE +FLAGS.SILENT
        // \Deleted, UID EXPUNGE" when the server has UIDPLUS (RFC 4315
        // 2.1: "UID EXPUNGE sequence-set").
        MoveMethod::CopyExpunge => {
            store_flags(session, cfg, &set, MOVING_KEYWORD).await?;
            cmd(cfg, "UID COPY", session.uid_copy(&set, folder)).await?;
            store_flags(session, cfg, &set, "\\Deleted").await?;
            uid_expunge(session, cfg, &set).await?;
        }
    }
    Ok(())
}

async fn store_flags(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    set: &str,
    flags: &str,
) -> Result<(), ImapError> {
    cmd(cfg, "UID STORE", async {
        let s = session
            .uid_store(set, format!("+FLAGS.SILENT ({flags})"))
            .await?;
        s.collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Ok(())
    })
    .await?;
    still_open(session, cfg, "UID STORE")
}

/// `UID SEARCH query`, all of its answer.
async fn uid_search(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    query: &str,
) -> Result<std::collections::HashSet<u32>, ImapError> {
    let uids = cmd(cfg, "UID SEARCH", session.uid_search(query)).await?;
    still_open(session, cfg, "UID SEARCH")?;
    Ok(uids)
}

/// RFC 4315 2.1 `UID EXPUNGE sequence-set`: only these UIDs.
async fn uid_expunge(
    session: &mut ImapSession,
    cfg: &ImapConfig,
    set: &str,
) -> Result<(), ImapError> {
    cmd(cfg, "UID EXPUNGE", async {
        let s = session.uid_expunge(set).await?;
        s.collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Ok(())
    })
    .await?;
    still_open(session, cfg, "UID EXPUNGE")
}

/// RFC 9051 2.2.2: "The server completion result response indicates the
/// success or failure of the operation." async-imap ends the response
/// stream of FETCH, SEARCH, STORE, EXPUNGE and LIST quietly when the
/// server closes the connection between two responses, as if the tagged
/// completion had come: a partial answer would pass for a whole one. The
/// connection remembers end-of-stream; after such a command it is an
/// error.
fn still_open(session: &mut ImapSession, cfg: &ImapConfig, command: &str) -> Result<(), ImapError> {
    if session.as_mut().eof {
        return Err(ImapError::Broken {
            server: server(cfg),
            command: command.to_owned(),
            reason: "the server closed the connection before completing the command".to_owned(),
        });
    }
    Ok(())
}

/// Whether the server announced new messages since the channel was last
/// emptied (and empties it).
fn had_news(session: &mut ImapSession) -> bool {
    use async_imap::types::UnsolicitedResponse as U;
    let mut news = false;
    while let Ok(r) = session.unsolicited_responses.try_recv() {
        news |= matches!(r, U::Exists(_) | U::Recent(_));
    }
    news
}

/// Unsolicited responses go to a bounded channel nobody reads: empty it so
/// it never holds stale news.
fn drain_unsolicited(session: &mut ImapSession) {
    while session.unsolicited_responses.try_recv().is_ok() {}
}

/// One IDLE (RFC 2177): returns when the server reports a change, after
/// `timeout`, or when `stop` fires (`true` in the pair).
async fn idle_once(
    session: ImapSession,
    cfg: &ImapConfig,
    timeout: Duration,
    stop: &StopSignal,
) -> Result<(ImapSession, bool), ImapError> {
    let mut handle = session.idle();
    cmd(cfg, "IDLE", handle.init()).await?;
    let stopped = {
        let (wait, _interrupt) = handle.wait_with_timeout(timeout.min(MAX_IDLE));
        let wait = std::pin::pin!(wait);
        let halt = std::pin::pin!(stop.stopped());
        match select(wait, halt).await {
            Either::Left((r, _)) => {
                r.map_err(|source| ImapError::Command {
                    server: server(cfg),
                    command: "IDLE".to_owned(),
                    source,
                })?;
                false
            }
            Either::Right(((), _)) => true,
        }
    };
    // RFC 2177 3: "The IDLE command is terminated by the receipt of a
    // "DONE" continuation from the client".
    let session = cmd(cfg, "DONE", handle.done()).await?;
    Ok((session, stopped))
}

/// Totals and events of a [`watch`], reported after every pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchStatus {
    pub summary: Summary,
    /// Connections made (the first one included).
    pub connections: u64,
}

/// Ingests the folder, then waits in IDLE and ingests new mail as it
/// arrives, until `stop` fires. Errors (connection lost, server down) are
/// reported through `on_event`, then the watch reconnects after a backoff
/// that doubles from `min_backoff` to `max_backoff`.
/// A database failure ends the watch with `Err`.
pub fn watch(
    config: ImapConfig,
    store: &mut dyn ReportStore,
    limits: &IngestLimits,
    stop: &StopSignal,
    on_event: &mut dyn FnMut(WatchEvent<'_>),
) -> Result<WatchStatus, IngestError> {
    let rt = runtime().map_err(to_ingest)?;
    let mut status = WatchStatus::default();
    let mut backoff = config.min_backoff;
    // One runtime across reconnects; a new source takes it over each time.
    let mut rt_slot = Some(rt);
    while !stop.is_stopped() {
        let rt = match rt_slot.take() {
            Some(rt) => rt,
            None => runtime().map_err(to_ingest)?,
        };
        let mut source = match ImapSource::connect_with(
            config.clone(),
            limits.max_input_bytes,
            stop.clone(),
            rt,
        ) {
            Ok(s) => s,
            // A setup that cannot work (wrong password, untrusted
            // certificate, no TLS) fails at once instead of retrying
            // forever; once it has worked, every error is retried.
            Err(e) if status.connections == 0 && is_setup_error(&e) => {
                return Err(IngestError::Read {
                    path: PathBuf::from(config.url.to_string()),
                    source: std::io::Error::other(e),
                });
            }
            Err(e) => {
                on_event(WatchEvent::Error(&e));
                status.summary.errors.push(super::Problem {
                    origin: config.url.to_string(),
                    reason: e.to_string(),
                });
                sleep_or_stop(&mut rt_slot, backoff, stop);
                backoff = (backoff * 2).min(config.max_backoff);
                continue;
            }
        };
        status.connections += 1;
        on_event(WatchEvent::Connected);
        backoff = config.min_backoff;
        let err = loop {
            let pass = super::run(&mut source, store, limits, &mut |_| {})?;
            add(&mut status.summary, pass);
            on_event(WatchEvent::Pass(&status.summary));
            if let Some(e) = source.take_error() {
                break Some(e);
            }
            if stop.is_stopped() {
                break None;
            }
            match source.idle(config.idle_timeout) {
                Ok(true) => {}
                Ok(false) => break None,
                Err(e) => {
                    // Not seen by a pass summary: record it here.
                    status.summary.errors.push(super::Problem {
                        origin: config.url.to_string(),
                        reason: e.to_string(),
                    });
                    break Some(e);
                }
            }
        };
        match err {
            None => {
                source.logout();
                break;
            }
            Some(e) => {
                on_event(WatchEvent::Error(&e));
                let ImapSource { rt, .. } = source;
                rt_slot = Some(rt);
                sleep_or_stop(&mut rt_slot, backoff, stop);
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
    Ok(status)
}

/// What [`watch`] reports as it goes.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    Connected,
    /// A pass over the folder ended; totals so far.
    Pass(&'a Summary),
    /// The connection failed or broke; a reconnect follows.
    Error(&'a ImapError),
}

fn sleep_or_stop(rt_slot: &mut Option<Runtime>, wait: Duration, stop: &StopSignal) {
    let rt = match rt_slot.take() {
        Some(rt) => rt,
        None => match runtime() {
            Ok(rt) => rt,
            Err(_) => {
                std::thread::sleep(wait);
                return;
            }
        },
    };
    rt.block_on(async {
        let sleep = std::pin::pin!(tokio::time::sleep(wait));
        let halt = std::pin::pin!(stop.stopped());
        select(sleep, halt).await;
    });
    *rt_slot = Some(rt);
}

/// Makes SIGINT and SIGTERM fire `stop`, from a small thread of its own.
pub fn stop_on_signals(stop: &StopSignal) -> Result<(), ImapError> {
    let rt = runtime()?;
    let stop = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mailauth-signals".to_owned())
        .spawn(move || {
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    let _ = tx.send(false);
                    return;
                };
                let _ = tx.send(true);
                let a = std::pin::pin!(int.recv());
                let b = std::pin::pin!(term.recv());
                select(a, b).await;
                stop.stop();
            });
        })
        .map_err(|source| ImapError::Runtime { source })?;
    match rx.recv() {
        Ok(true) => Ok(()),
        _ => Err(ImapError::Runtime {
            source: std::io::Error::other("cannot install SIGINT/SIGTERM handlers"),
        }),
    }
}

fn add(total: &mut Summary, s: Summary) {
    total.items += s.items;
    total.reports += s.reports;
    total.records += s.records;
    total.failure_reports += s.failure_reports;
    total.tls_reports += s.tls_reports;
    total.duplicates += s.duplicates;
    total.invalid.extend(s.invalid);
    total.errors.extend(s.errors);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let cases: &[(&str, Security, &str, &str, u16, &str)] = &[
            (
                "imaps://dmarc@mail.example.com/INBOX",
                Security::Tls,
                "dmarc",
                "mail.example.com",
                993,
                "INBOX",
            ),
            (
                "imap://dmarc@127.0.0.1:1143/Reports/DMARC",
                Security::StartTls,
                "dmarc",
                "127.0.0.1",
                1143,
                "Reports/DMARC",
            ),
            (
                "imaps://rua%40example.com@[::1]:9993",
                Security::Tls,
                "rua@example.com",
                "::1",
                9993,
                "INBOX",
            ),
            (
                "imap://u@h/My%20Reports;UIDVALIDITY=5/;UID=3",
                Security::StartTls,
                "u",
                "h",
                143,
                "My Reports",
            ),
        ];
        for (url, sec, user, host, port, folder) in cases {
            let u: ImapUrl = url.parse().expect(url);
            assert_eq!(
                (
                    u.security,
                    u.user.as_str(),
                    u.host.as_str(),
                    u.port,
                    u.folder.as_str()
                ),
                (*sec, *user, *host, *port, *folder),
                "{url}"
            );
            // Display round-trips.
            let again: ImapUrl = u.to_string().parse().expect("round trip");
            assert_eq!(again, u);
        }
        for bad in [
            "http://u@h/INBOX",
            "imaps://h/INBOX",
            "imaps://@h/INBOX",
            "imaps://u@/INBOX",
            "imaps://u@h:99999/INBOX",
            "imaps://u@h:x/INBOX",
            "imaps://u@[::1/INBOX",
            "imaps://u%zz@h/INBOX",
            "imaps://u;AUTH=*@h/INBOX",
            "imaps://u@h/a%0Db",
        ] {
            assert!(bad.parse::<ImapUrl>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn loopback() {
        for (url, lo) in [
            ("imap://u@127.0.0.1/", true),
            ("imap://u@127.9.9.9/", true),
            ("imap://u@[::1]/", true),
            ("imap://u@LocalHost/", true),
            ("imap://u@10.0.0.1/", false),
            ("imap://u@mail.example.com/", false),
        ] {
            let u: ImapUrl = url.parse().expect(url);
            assert_eq!(u.is_loopback(), lo, "{url}");
        }
    }

    #[test]
    fn password_is_not_printed() {
        let p = Password::new("hunter2".to_owned());
        let cfg = ImapConfig::new("imaps://u@h/".parse().expect("url"), p);
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(vec![5, 1, 3]), "1,3,5");
        assert_eq!(uid_set(vec![7]), "7");
    }

    #[test]
    fn plain_refused_off_loopback_without_starttls_is_an_error_type() {
        // The policy itself is exercised against Dovecot; here the message.
        let e = ImapError::PlainRefused {
            host: "mail.example.com".to_owned(),
        };
        assert!(e.to_string().contains("--imap-allow-plain"));
    }
}
