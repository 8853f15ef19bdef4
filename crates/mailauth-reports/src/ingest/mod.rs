//! Report sources: files and directories, mbox files, Maildir folders.
//!
//! Owns reading items (one file, one message) as raw bytes with an origin,
//! and what happens to an item after it has been handled (Maildir moves it
//! to an archive or invalid folder). Leaves parsing to `reports::parse` and
//! SQL to `reports::store`: [`run`] glues them, one store transaction per
//! item (items of a source that moves nothing are committed in groups),
//! and only then calls [`Source::finish`]. A new source (IMAP) is one
//! more module implementing [`Source`]; `imap` is built with the `imap`
//! feature.

mod files;
#[cfg(feature = "imap")]
pub mod imap;
mod maildir;
mod mbox;

use std::path::PathBuf;

use serde::Serialize;

pub use files::FileSource;
pub use maildir::{MaildirFolders, MaildirSource};
pub use mbox::MboxSource;

use super::IngestLimits;
use super::parse::ReportKind;
use super::store::{ReportStore, StoreError};

/// Errors of the ingest layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("cannot move {from} to {to}: {source}")]
    Move {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a Maildir (no cur/ or new/)")]
    NotMaildir { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One unit of input: a file or one mail message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Where it came from, for messages and the database (`path`,
    /// `mbox-path#3`, `imap://…/UID`).
    pub origin: String,
    pub bytes: Vec<u8>,
    /// The file that holds it, when the source moves items.
    pub path: Option<PathBuf>,
    /// The item is the plain-XML report in the file at `path`, too large
    /// to hold in memory: `bytes` is empty and the file is parsed as it is
    /// read.
    pub stream: bool,
}

/// What happened to an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// At least one new report was committed.
    Stored,
    /// Every report in it was already stored.
    Duplicate,
    /// Not a report, or a broken one; nothing was stored.
    Invalid { reason: String },
}

/// A place reports come from.
pub trait Source {
    /// The next item; `Some(Err(_))` is a problem with one item, the
    /// source goes on; `None` ends the source.
    fn next_item(&mut self) -> Option<Result<Item, IngestError>>;
    /// Called once per item, after its data is committed (or after it was
    /// rejected): a source may now move or flag it. Never called before the
    /// commit, so a crash at any moment loses nothing, and the dedupe in
    /// the store makes the re-run count the item as a duplicate.
    fn finish(&mut self, item: &Item, outcome: &Outcome) -> Result<(), IngestError>;
    /// Whether [`finish`](Self::finish) acts on the item (moves, flags or
    /// deletes it): true by default. A source that leaves its items where
    /// they are (files, mbox) lets [`run`] commit items in groups.
    fn moves_items(&self) -> bool {
        true
    }
}

/// Items committed together when the source moves nothing (one fsync per
/// group instead of one per item): at most this many...
const GROUP_ITEMS: usize = 256;
/// ...or this much time since the group began, whichever comes first.
const GROUP_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// A rejected or failed item.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub origin: String,
    pub reason: String,
}

/// Totals of one ingest run.
#[derive(schemars::JsonSchema, Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Items read (files, messages).
    pub items: u64,
    /// New aggregate reports.
    pub reports: u64,
    /// Records of the new aggregate reports.
    pub records: u64,
    /// New failure reports.
    pub failure_reports: u64,
    /// New SMTP TLS reports.
    pub tls_reports: u64,
    /// Reports already stored (any kind).
    pub duplicates: u64,
    /// Items that are not (valid) reports, with the reason.
    pub invalid: Vec<Problem>,
    /// Items that could not be read or moved.
    pub errors: Vec<Problem>,
}

impl Summary {
    /// Adds the totals of another run (of another source) to these.
    pub fn absorb(&mut self, s: Summary) {
        self.items += s.items;
        self.reports += s.reports;
        self.records += s.records;
        self.failure_reports += s.failure_reports;
        self.tls_reports += s.tls_reports;
        self.duplicates += s.duplicates;
        self.invalid.extend(s.invalid);
        self.errors.extend(s.errors);
    }
}

/// Ingests every item of `source` into `store`, one transaction per item.
/// A bad item never stops the batch; a database failure does.
/// `progress` is called after each item.
///
/// When the source moves nothing ([`Source::moves_items`] is false), items
/// are committed in groups ([`ReportStore::begin_group`]): each item is
/// still all or nothing, and [`Source::finish`] is still called only after
/// the commit that holds the item.
pub fn run(
    source: &mut dyn Source,
    store: &mut dyn ReportStore,
    limits: &IngestLimits,
    progress: &mut dyn FnMut(&Summary),
) -> Result<Summary, IngestError> {
    let mut summary = Summary::default();
    let grouping = !source.moves_items();
    // Items in the open group: finished once it is committed.
    let mut pending: Vec<(Item, Outcome)> = Vec::new();
    let mut group: Option<std::time::Instant> = None;
    while let Some(next) = source.next_item() {
        summary.items += 1;
        let item = match next {
            Ok(item) => item,
            Err(e) => {
                summary.errors.push(Problem {
                    origin: error_origin(&e),
                    reason: e.to_string(),
                });
                progress(&summary);
                continue;
            }
        };
        if grouping && group.is_none() && store.begin_group()? {
            group = Some(std::time::Instant::now());
        }
        let stored = match ingest_one(store, &item, limits) {
            Ok(Ok(stored)) => stored,
            Ok(Err(unreadable)) => {
                summary.errors.push(Problem {
                    origin: item.origin.clone(),
                    reason: unreadable.to_string(),
                });
                progress(&summary);
                continue;
            }
            Err(e) => {
                // What the group holds before the failed item is kept.
                if group.is_some() && store.commit_group().is_ok() {
                    finish_all(source, &mut pending, &mut summary);
                }
                return Err(e.into());
            }
        };
        let outcome = match stored {
            Ok(found) => {
                let mut new = false;
                for f in &found {
                    if f.duplicate {
                        summary.duplicates += 1;
                        continue;
                    }
                    new = true;
                    match f.kind {
                        ReportKind::Aggregate => {
                            summary.reports += 1;
                            summary.records += f.records;
                        }
                        ReportKind::Failure => summary.failure_reports += 1,
                        ReportKind::Tls => summary.tls_reports += 1,
                    }
                }
                if new {
                    Outcome::Stored
                } else {
                    Outcome::Duplicate
                }
            }
            Err(e) => {
                let reason = e.to_string();
                summary.invalid.push(Problem {
                    origin: item.origin.clone(),
                    reason: reason.clone(),
                });
                Outcome::Invalid { reason }
            }
        };
        pending.push((item, outcome));
        match group {
            Some(began) if pending.len() < GROUP_ITEMS && began.elapsed() < GROUP_TIME => {}
            Some(_) => {
                store.commit_group()?;
                group = None;
                finish_all(source, &mut pending, &mut summary);
            }
            None => finish_all(source, &mut pending, &mut summary),
        }
        progress(&summary);
    }
    if group.is_some() {
        store.commit_group()?;
        finish_all(source, &mut pending, &mut summary);
        progress(&summary);
    }
    Ok(summary)
}

/// What storing one item gave: its reports, or why it was rejected.
type Stored = Result<Vec<super::parse::Found>, super::parse::ParseError>;

/// Stores one item; `Ok(Err(_))` when its file can no longer be opened.
fn ingest_one(
    store: &mut dyn ReportStore,
    item: &Item,
    limits: &IngestLimits,
) -> Result<Result<Stored, IngestError>, StoreError> {
    match (item.stream, &item.path) {
        (true, Some(path)) => match std::fs::File::open(path) {
            Ok(mut file) => store
                .ingest_xml_stream(&item.origin, &mut file, limits)
                .map(Ok),
            Err(source) => Ok(Err(IngestError::Read {
                path: path.clone(),
                source,
            })),
        },
        _ => store.ingest_item(&item.origin, &item.bytes, limits).map(Ok),
    }
}

/// Calls [`Source::finish`] for every item whose data is committed.
fn finish_all(source: &mut dyn Source, pending: &mut Vec<(Item, Outcome)>, summary: &mut Summary) {
    for (item, outcome) in pending.drain(..) {
        if let Err(e) = source.finish(&item, &outcome) {
            summary.errors.push(Problem {
                origin: item.origin.clone(),
                reason: e.to_string(),
            });
        }
    }
}

fn error_origin(e: &IngestError) -> String {
    match e {
        IngestError::Read { path, .. }
        | IngestError::TooLarge { path, .. }
        | IngestError::NotMaildir { path } => path.display().to_string(),
        IngestError::Move { from, .. } => from.display().to_string(),
        IngestError::Store(_) => String::new(),
    }
}

/// Reads a file, refusing one larger than `limit` before reading it.
pub(crate) fn read_file(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, IngestError> {
    use std::io::Read;
    let read_err = |source| IngestError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    if size > limit {
        return Err(IngestError::TooLarge {
            path: path.to_owned(),
            size,
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > limit {
        return Err(IngestError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}
