//! [`ImapSource`]: one logged-in connection with the folder selected, as
//! an ingest [`Source`].
//!
//! Owns the order of things: list, fetch in bounded batches, hand out,
//! and move a message only in [`Source::finish`], after the store
//! committed it; what a broken connection does to a pass (it ends, the
//! error is kept for [`super::watch`]). Leaves the commands to `mailbox`
//! and the connection to `conn`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use tokio::runtime::Runtime;

use super::conn::{ImapSession, closed, is_connection_error, open, runtime, server};
use super::mailbox::{MoveMethod, fetch_bodies, list_messages, move_message};
use super::watch::{StopSignal, had_news, idle_once};
use super::{ImapConfig, ImapError, ImapUrl};
use crate::reports::ingest::{IngestError, Item, Outcome, Source};

/// One logged-in connection with the folder selected; an ingest [`Source`].
///
/// Each pass lists the messages present (not `\Deleted`), fetches them in
/// batches with `BODY.PEEK[]` (flags stay as they are until the store has
/// committed) and moves each one in [`Source::finish`].
pub struct ImapSource {
    config: ImapConfig,
    rt: &'static Runtime,
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
    skip: HashSet<u32>,
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

impl ImapSource {
    /// Connects, logs in, creates the archive and invalid folders if
    /// missing, selects the folder and lists its messages.
    /// `limit` is the largest message fetched (bigger ones go to the
    /// invalid folder unread).
    pub fn connect(config: ImapConfig, limit: u64) -> Result<Self, ImapError> {
        Self::connect_with(config, limit, StopSignal::new(), runtime()?)
    }

    pub(super) fn connect_with(
        config: ImapConfig,
        limit: u64,
        stop: StopSignal,
        rt: &'static Runtime,
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

    /// Gives the runtime back for the next connection.
    pub(super) fn into_runtime(self) -> &'static Runtime {
        self.rt
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
                    unread: None,
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
    pub(super) fn idle(&mut self, timeout: Duration) -> Result<bool, ImapError> {
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

pub(super) fn to_ingest(e: ImapError) -> IngestError {
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
