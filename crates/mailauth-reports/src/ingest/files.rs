//! Files and directories (walked recursively, in name order) as a source.
//! Owns listing and reading; leaves the files where they are. A large
//! plain-XML file is handed on unread, to be parsed as a stream. A plain-XML
//! file is a report already decompressed: its size is held to the
//! decompressed limit (`max_decompressed_bytes`), like the same report
//! inside gzip or zip. Any other file (gzip, zip, a mail) is held to the
//! input limit (`max_input_bytes`) and handed on unread too
//! ([`Item::in_file`]): it is read from the file as it is parsed, never
//! held whole.
//! Symbolic links are followed, but a directory is walked once however
//! many links lead to it: a link loop (`dir/up -> ..`) ends there.

use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use super::{IngestError, Item, Outcome, Source, file_size, read_file};

/// Plain-XML files larger than this are parsed as they are read, not read
/// whole: a 100 MB report then needs no more memory than a small one.
const STREAM_ABOVE: u64 = 8 << 20;

/// Whether the file starts like an XML document (after an optional BOM and
/// white space): compressed files and mail messages are left in the file.
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
    /// Largest plain-XML file (`IngestLimits::max_decompressed_bytes`).
    xml_limit: u64,
    /// (device, inode) of every directory walked.
    walked: HashSet<(u64, u64)>,
}

impl FileSource {
    /// `limit` is the largest file read (see `IngestLimits::max_input_bytes`).
    pub fn new(paths: impl IntoIterator<Item = PathBuf>, limit: u64) -> Self {
        Self {
            pending: paths.into_iter().collect(),
            limit,
            xml_limit: crate::reports::IngestLimits::default().max_decompressed_bytes,
            walked: HashSet::new(),
        }
    }

    /// The largest plain-XML file (see
    /// `IngestLimits::max_decompressed_bytes`; 512 MiB if not set).
    #[must_use]
    pub fn with_xml_limit(mut self, limit: u64) -> Self {
        self.xml_limit = limit;
        self
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
            let xml = plain_xml(&path);
            if xml && meta.len() > self.xml_limit {
                return Some(Err(IngestError::TooLarge {
                    path,
                    size: meta.len(),
                    limit: self.xml_limit,
                }));
            }
            if xml && meta.len() > STREAM_ABOVE {
                return Some(Ok(Item {
                    origin: path.display().to_string(),
                    bytes: Vec::new(),
                    path: Some(path),
                    stream: true,
                }));
            }
            if !xml {
                return Some(file_size(&path, self.limit).map(|_| Item::in_file(path)));
            }
            // A plain-XML file read whole is at most STREAM_ABOVE bytes.
            return Some(read_file(&path, self.xml_limit).map(|bytes| Item {
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

    fn moves_items(&self) -> bool {
        false
    }
}
