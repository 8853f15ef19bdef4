//! Maildir (and Maildir++ subfolders) as a source.
//!
//! Owns listing `new/` and `cur/` (each message is handed on unread,
//! [`Item::in_file`], and read from its file as it is parsed) and moving
//! each handled message: reports
//! (new or duplicate) to the archive folder, unparseable messages to the
//! invalid folder. The move happens in [`Source::finish`], after the
//! store committed the message's data durably (see docs/limits.md,
//! "Durability"), and is itself made durable: a folder made for it is
//! synced (with the directory holding it) before the rename, and the
//! rename is followed by an fsync of the target and source directories.
//! Leaves `tmp/` alone
//! (messages still being delivered).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::{IngestError, Item, Outcome, Source, file_size};

/// Where handled messages go, as Maildir++ folder names under the
/// Maildir: defaults `.Archive` and `.Invalid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildirFolders {
    pub archive: String,
    pub invalid: String,
}

impl Default for MaildirFolders {
    fn default() -> Self {
        Self {
            archive: ".Archive".to_owned(),
            invalid: ".Invalid".to_owned(),
        }
    }
}

/// The messages of one Maildir.
#[derive(Debug)]
pub struct MaildirSource {
    root: PathBuf,
    folders: MaildirFolders,
    pending: VecDeque<PathBuf>,
    limit: u64,
}

impl MaildirSource {
    /// Lists `new/` then `cur/` (each in name order).
    pub fn open(root: &Path, folders: MaildirFolders, limit: u64) -> Result<Self, IngestError> {
        let mut pending = VecDeque::new();
        let mut any = false;
        for sub in ["new", "cur"] {
            let dir = root.join(sub);
            if !dir.is_dir() {
                continue;
            }
            any = true;
            let entries = std::fs::read_dir(&dir).map_err(|source| IngestError::Read {
                path: dir.clone(),
                source,
            })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect();
            files.sort();
            pending.extend(files);
        }
        if !any {
            return Err(IngestError::NotMaildir {
                path: root.to_owned(),
            });
        }
        Ok(Self {
            root: root.to_owned(),
            folders,
            pending,
            limit,
        })
    }

    fn move_to(&self, from: &Path, folder: &str) -> Result<(), IngestError> {
        // Maildir++: a folder is a Maildir named ".Name" with cur/new/tmp;
        // handled mail goes to cur/ (it has been seen).
        let base = self.root.join(folder);
        let target_dir = base.join("cur");
        let mk = |dir: &Path| {
            std::fs::create_dir_all(dir).map_err(|source| IngestError::Move {
                from: from.to_owned(),
                to: dir.to_owned(),
                source,
            })
        };
        // A directory made now is only there after a power cut once the
        // directory holding it is synced: the folder (its entry in the
        // Maildir, and its cur/, new/ and tmp/) is made durable before any
        // message goes into it.
        let mut parents: Vec<PathBuf> = Vec::new();
        for dir in [
            base.clone(),
            target_dir.clone(),
            base.join("new"),
            base.join("tmp"),
        ] {
            if dir.is_dir() {
                continue;
            }
            mk(&dir)?;
            if let Some(p) = dir.parent().filter(|p| !parents.iter().any(|q| q == p)) {
                parents.push(p.to_owned());
            }
        }
        for p in &parents {
            sync_dir(p).map_err(|source| IngestError::Move {
                from: from.to_owned(),
                to: p.clone(),
                source,
            })?;
        }
        let name = from.file_name().unwrap_or_default();
        let to = target_dir.join(name);
        let move_err = |source| IngestError::Move {
            from: from.to_owned(),
            to: to.clone(),
            source,
        };
        std::fs::rename(from, &to).map_err(move_err)?;
        // A rename is durable once both directories are synced: the new
        // entry first (the message is never in neither), then the old one.
        sync_dir(&target_dir).map_err(move_err)?;
        if let Some(src) = from.parent() {
            sync_dir(src).map_err(move_err)?;
        }
        Ok(())
    }
}

/// fsync(2) on a directory: makes the entries created, renamed or removed
/// in it durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Source for MaildirSource {
    fn next_item(&mut self) -> Option<Result<Item, IngestError>> {
        let path = self.pending.pop_front()?;
        // Left in its file, read as it is parsed: the message is moved
        // only once its data is committed, so it is still there then.
        match file_size(&path, self.limit) {
            Ok(_) => Some(Ok(Item::in_file(path))),
            Err(e @ IngestError::TooLarge { .. }) => {
                // Nothing to commit: set it aside now, or every run would
                // trip over it again.
                Some(match self.move_to(&path, &self.folders.invalid) {
                    Ok(()) => Err(e),
                    Err(move_err) => Err(move_err),
                })
            }
            Err(e) => Some(Err(e)),
        }
    }

    fn finish(&mut self, item: &Item, outcome: &Outcome) -> Result<(), IngestError> {
        let Some(path) = &item.path else {
            return Ok(());
        };
        let folder = match outcome {
            Outcome::Stored | Outcome::Duplicate => &self.folders.archive,
            Outcome::Invalid { .. } => &self.folders.invalid,
        };
        self.move_to(path, folder)
    }

    /// The messages are listed when the source opens; moving one changes
    /// nothing about the next.
    fn read_ahead(&self) -> bool {
        true
    }
}
