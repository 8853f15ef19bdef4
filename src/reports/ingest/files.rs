//! Files and directories (walked recursively, in name order) as a source.
//! Owns listing and reading; leaves the files where they are.

use std::collections::VecDeque;
use std::path::PathBuf;

use super::{IngestError, Item, Outcome, Source, read_file};

/// Reads every regular file under the given paths.
#[derive(Debug)]
pub struct FileSource {
    pending: VecDeque<PathBuf>,
    limit: u64,
}

impl FileSource {
    /// `limit` is the largest file read (see `IngestLimits::max_input_bytes`).
    pub fn new(paths: impl IntoIterator<Item = PathBuf>, limit: u64) -> Self {
        Self {
            pending: paths.into_iter().collect(),
            limit,
        }
    }
}

impl Source for FileSource {
    fn next_item(&mut self) -> Option<Result<Item, IngestError>> {
        while let Some(path) = self.pending.pop_front() {
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(source) => return Some(Err(IngestError::Read { path, source })),
            };
            if meta.is_dir() {
                let entries = match std::fs::read_dir(&path) {
                    Ok(rd) => rd,
                    Err(source) => return Some(Err(IngestError::Read { path, source })),
                };
                let mut children: Vec<PathBuf> =
                    entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                children.sort();
                // Depth first, in order: children go before the rest.
                for child in children.into_iter().rev() {
                    self.pending.push_front(child);
                }
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            return Some(read_file(&path, self.limit).map(|bytes| Item {
                origin: path.display().to_string(),
                bytes,
                path: Some(path),
            }));
        }
        None
    }

    fn finish(&mut self, _item: &Item, _outcome: &Outcome) -> Result<(), IngestError> {
        Ok(())
    }
}
