//! `--watch`: ingest, wait in IDLE (RFC 2177), ingest again, and
//! reconnect with a backoff when the connection breaks; stop on a signal.
//!
//! Owns the IDLE exchange, the reconnect loop and its backoff, the stop
//! signal and the SIGINT/SIGTERM handler. Leaves each pass to `source`
//! and the commands to `mailbox`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::{Either, select};
use tokio::runtime::Runtime;

use super::conn::{ImapSession, cmd, is_setup_error, runtime, server};
use super::source::{ImapSource, to_ingest};
use super::{ImapConfig, ImapError, MAX_IDLE};
use crate::reports::IngestLimits;
use crate::reports::ingest::{self, IngestError, Problem, Summary};
use crate::reports::store::ReportStore;

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

/// Whether the server announced new messages since the channel was last
/// emptied (and empties it).
pub(super) fn had_news(session: &mut ImapSession) -> bool {
    use async_imap::types::UnsolicitedResponse as U;
    let mut news = super::conn::take_news(session);
    while let Ok(r) = session.unsolicited_responses.try_recv() {
        news |= matches!(r, U::Exists(_) | U::Recent(_));
    }
    news
}

/// One IDLE (RFC 2177): returns when the server reports a change, after
/// `timeout`, or when `stop` fires (`true` in the pair).
pub(super) async fn idle_once(
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
                status.summary.errors.push(Problem {
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
            let pass = ingest::run(&mut source, store, limits, &mut |_| {})?;
            status.summary.absorb(pass);
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
                    status.summary.errors.push(Problem {
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
                rt_slot = Some(source.into_runtime());
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

fn sleep_or_stop(rt_slot: &mut Option<&'static Runtime>, wait: Duration, stop: &StopSignal) {
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
