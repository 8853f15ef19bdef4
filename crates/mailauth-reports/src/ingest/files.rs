//! Files and directories (walked recursively, in name order) as a source.
//! Owns listing and reading; leaves the files where they are. A large
//! plain-XML file is handed on unread, to be parsed as a stream.
//! Symbolic links are followed, but a directory is walked once however
//! many links lead to it: a link loop (`dir/up -> ..`) ends there.

use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use super::{IngestError, Item, Outcome, Source, read_file};

/// Plain-XML files larger than this are parsed as they are read, not read
/// whole: a 100 MB report then needs no more memory than a small one.
const STREAM_ABOVE: u64 = 8 << 20;

/// Whether the file starts like an XML document (after an optional BOM and
/// white space): compressed files and mail messages are read whole.
fn plain_xml(path: &std::path::Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 512];
    let Ok(mut file) = std::fs::File::open(path) else {
        // Reading it whole reports the error.
        return false;
    };
    let Ok(n) = file.read(&mut head) else {
        return false;
    };
    let head = &head[..n];
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    head.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'<')
}

/// Reads every regular file under the given paths.
#[derive(Debug)]
pub struct FileSource {
    pending: VecDeque<PathBuf>,
    limit: u64,
    /// (device, inode) of every directory walked.
    walked: HashSet<(u64, u64)>,
}

impl FileSource {
    /// `limit` is the largest file read (see `IngestLimits::max_input_bytes`).
    pub fn new(paths: impl IntoIterator<Item = PathBuf>, limit: u64) -> Self {
        Self {
            pending: paths.into_iter().collect(),
            limit,
            walked: HashSet::new(),
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
                if !self.walked.insert((meta.dev(), meta.ino())) {
                    // Reached again through a link: walked already.
                    continue;
                }
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
            if meta.len() > STREAM_ABOVE && meta.len() <= self.limit && plain_xml(&path) {
                return Some(Ok(Item {
                    origin: path.display().to_string(),
                    bytes: Vec::new(),
                    path: Some(path),
                    stream: true,
                }));
            }
            return Some(read_file(&path, self.limit).map(|bytes| Item {
                origin: path.display().to_string(),
                bytes,
                path: Some(path),
                stream: false,
            }));
        }
        None
    }

    fn finish(&mut self, _item: &Item, _outcome: &Outcome) -> Result<(), IngestError> {
        Ok(())
    }
}
