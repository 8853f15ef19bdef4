//! Report sources: files and directories, mbox files, Maildir folders.
//!
//! Owns reading items (one file, one message) as raw bytes with an origin,
//! or handing on the file that holds one to be read as it is parsed
//! ([`Item::in_file`]) or to be looked into and read by [`run`]'s worker
//! threads ([`Item::unread`], by the source's rules), and what happens to an item after it has been handled (Maildir moves it
//! to an archive or invalid folder). Leaves parsing to `reports::parse` and
//! SQL to `reports::store`: [`run`] (`pipeline`) glues them, items parsed
//! by worker threads and stored in the source's order, one store
//! transaction per item (items of a source that moves nothing are
//! committed in groups), and only then calls [`Source::finish`]. A new
//! source (IMAP) is one more module implementing [`Source`]; `imap` is
//! built with the `imap` feature.

mod files;
#[cfg(feature = "imap")]
pub mod imap;
mod maildir;
mod mbox;
mod pipeline;

use std::path::PathBuf;

use serde::Serialize;

pub use files::FileSource;
pub(crate) use files::{Opened, open_unread};
pub use maildir::{MaildirFolders, MaildirSource};
pub use mbox::MboxSource;
pub use pipeline::run;

use super::store::StoreError;

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
    /// The threads that parse items are gone (a bug): the run stops, and
    /// the items not yet stored are read again on the next run.
    #[error("the report parsing threads stopped")]
    ParserStopped,
}

/// One unit of input: a file or one mail message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Where it came from, for messages and the database (`path`,
    /// `mbox-path#3`, `imap://…/UID`).
    pub origin: String,
    /// The item, when held in memory; empty when it is the file at `path`,
    /// read from there as it is parsed (a compressed report or a mail in
    /// a file: never held whole).
    pub bytes: Vec<u8>,
    /// The file that holds it (files, Maildir).
    pub path: Option<PathBuf>,
    /// The item is the plain-XML report in the file at `path`, too large
    /// to hold in memory: `bytes` is empty and the file is parsed as it is
    /// read.
    pub stream: bool,
    /// The item is the file at `path`, not looked into yet: `bytes` is
    /// empty, and [`run`]'s worker threads read it as the source would
    /// have ([`Source::read_on_workers`]), by its size and the limits
    /// given here.
    pub unread: Option<Unread>,
}

/// A file handed on unread ([`Item::unread`]): its size when it was
/// listed, and the limits the source holds it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    /// The file's size when listed: the size checked against the limits.
    pub size: u64,
    /// Largest file other than plain XML (`IngestLimits::max_input_bytes`).
    pub limit: u64,
    /// Largest plain-XML file (`IngestLimits::max_decompressed_bytes`).
    pub xml_limit: u64,
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
    /// Whether [`run`] may read the next items before the earlier ones
    /// are finished, to parse them meanwhile. By default, yes for a source
    /// that moves nothing (its items were always read ahead within a
    /// commit group) and no for one that does: its next item is read only
    /// after the previous one is finished, so a source whose next item
    /// depends on what [`finish`](Self::finish) did keeps that order. A
    /// source whose items are independent of one another says yes.
    fn read_ahead(&self) -> bool {
        !self.moves_items()
    }
    /// Asks the source to hand its files on unread ([`Item::unread`]),
    /// for [`run`]'s worker threads to read them, so that the thread
    /// which stores does not: called once, before the first item, when
    /// [`run`] has worker threads. A source that reads its items itself
    /// ignores it (the default).
    fn read_on_workers(&mut self) {}
}

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

impl Item {
    /// An item left in its file, read from there as it is parsed.
    pub(crate) fn in_file(path: PathBuf) -> Self {
        Self {
            origin: path.display().to_string(),
            bytes: Vec::new(),
            path: Some(path),
            stream: false,
            unread: None,
        }
    }

    /// A file not looked into yet, read by a worker thread.
    pub(crate) fn unread(path: PathBuf, unread: Unread) -> Self {
        Self {
            unread: Some(unread),
            ..Self::in_file(path)
        }
    }

    /// Whether the item is read from its file as it is parsed.
    pub(crate) fn is_in_file(&self) -> bool {
        self.bytes.is_empty() && self.path.is_some() && !self.stream && self.unread.is_none()
    }
}

/// The size of a file, refusing one larger than `limit`.
pub(crate) fn file_size(path: &std::path::Path, limit: u64) -> Result<u64, IngestError> {
    let size = std::fs::metadata(path)
        .map_err(|source| IngestError::Read {
            path: path.to_owned(),
            source,
        })?
        .len();
    if size > limit {
        return Err(IngestError::TooLarge {
            path: path.to_owned(),
            size,
            limit,
        });
    }
    Ok(size)
}

/// Reads a file opened at its start (`path` names it in errors),
/// refusing one larger than `limit` before reading it.
pub(crate) fn read_open_file(
    file: std::fs::File,
    path: &std::path::Path,
    limit: u64,
) -> Result<Vec<u8>, IngestError> {
    use std::io::Read;
    let read_err = |source| IngestError::Read {
        path: path.to_owned(),
        source,
    };
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
