//! Report sources: files and directories, mbox files, Maildir folders.
//!
//! Owns reading items (one file, one message) as raw bytes with an origin,
//! and what happens to an item after it has been handled (Maildir moves it
//! to an archive or invalid folder). Leaves parsing to `reports::parse` and
//! SQL to `reports::store`: [`run`] glues them, one store transaction per
//! item, and only then calls [`Source::finish`]. A new source (IMAP) is one
//! more module implementing [`Source`].

mod files;
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
}

/// A rejected or failed item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub origin: String,
    pub reason: String,
}

/// Totals of one ingest run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
pub fn run(
    source: &mut dyn Source,
    store: &mut dyn ReportStore,
    limits: &IngestLimits,
    progress: &mut dyn FnMut(&Summary),
) -> Result<Summary, IngestError> {
    let mut summary = Summary::default();
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
        let stored = match (item.stream, &item.path) {
            (true, Some(path)) => match std::fs::File::open(path) {
                Ok(mut file) => store.ingest_xml_stream(&item.origin, &mut file, limits)?,
                Err(source) => {
                    summary.errors.push(Problem {
                        origin: item.origin.clone(),
                        reason: IngestError::Read {
                            path: path.clone(),
                            source,
                        }
                        .to_string(),
                    });
                    progress(&summary);
                    continue;
                }
            },
            _ => store.ingest_item(&item.origin, &item.bytes, limits)?,
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
        if let Err(e) = source.finish(&item, &outcome) {
            summary.errors.push(Problem {
                origin: item.origin.clone(),
                reason: e.to_string(),
            });
        }
        progress(&summary);
    }
    Ok(summary)
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
