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
//!
//! This file holds the error type and the settings; the work is split by
//! responsibility: `url` (the URL and the password), `conn` (TCP, TLS,
//! login, timeouts), `mailbox` (the IMAP commands on the selected folder),
//! `source` (the ingest [`Source`]: fetch, hand out, move after commit) and
//! `watch` (IDLE, reconnects, signals).
//!
//! [`Source::finish`]: super::Source::finish
//! [`Source`]: super::Source

mod conn;
mod mailbox;
mod source;
mod url;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

pub use mailbox::MoveMethod;
pub use source::ImapSource;
pub use url::{ImapUrl, Password, Security};
pub use watch::{StopSignal, WatchEvent, WatchStatus, stop_on_signals, watch};

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
    /// The server completed a command with `NO` or `BAD` (RFC 9051 7.1).
    #[error("IMAP {command} on {server} failed: the server answered {status} {text:?}")]
    Refused {
        server: String,
        command: String,
        status: String,
        text: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_refused_off_loopback_without_starttls_is_an_error_type() {
        // The policy itself is exercised against Dovecot; here the message.
        let e = ImapError::PlainRefused {
            host: "mail.example.com".to_owned(),
        };
        assert!(e.to_string().contains("--imap-allow-plain"));
    }
}
