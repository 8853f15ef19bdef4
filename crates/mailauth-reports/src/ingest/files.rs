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

use super::{IngestError, Item, Outcome, Source, read_open_file};

/// Plain-XML files larger than this are parsed as they are read, not read
/// whole: a 100 MB report then needs no more memory than a small one.
const STREAM_ABOVE: u64 = 8 << 20;

/// The file, opened, when it starts like an XML document (after an
/// optional BOM and white space): compressed files and mail messages are
/// left in the file. A plain-XML file is then read from the file opened
/// here, rewound: one lookup of its path, not two.
fn plain_xml(path: &std::path::Path) -> Option<std::fs::File> {
    use std::io::{Read as _, Seek as _};
    let mut head = [0u8; 512];
    // A file that cannot be opened is not read here: reading it later
    // reports the error.
    let mut file = std::fs::File::open(path).ok()?;
    let n = file.read(&mut head).ok()?;
    let head = &head[..n];
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let xml = head
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'<');
    (xml && file.rewind().is_ok()).then_some(file)
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
            if xml.is_some() && meta.len() > self.xml_limit {
                return Some(Err(IngestError::TooLarge {
                    path,
                    size: meta.len(),
                    limit: self.xml_limit,
                }));
            }
            if xml.is_some() && meta.len() > STREAM_ABOVE {
                return Some(Ok(Item {
                    origin: path.display().to_string(),
                    bytes: Vec::new(),
                    path: Some(path),
                    stream: true,
                }));
            }
            let Some(file) = xml else {
                // The size read above: the path is not looked up again.
                if meta.len() > self.limit {
                    return Some(Err(IngestError::TooLarge {
                        size: meta.len(),
                        limit: self.limit,
                        path,
                    }));
                }
                return Some(Ok(Item::in_file(path)));
            };
            // A plain-XML file read whole is at most STREAM_ABOVE bytes.
            return Some(
                read_open_file(file, &path, self.xml_limit).map(|bytes| Item {
                    origin: path.display().to_string(),
                    bytes,
                    path: Some(path),
                    stream: false,
                }),
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_xml_is_read_whole_from_its_first_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A BOM and white space before the document, and more than the
        // 512 bytes looked at to tell XML from the rest.
        let mut xml = b"\xEF\xBB\xBF \n<feedback>".to_vec();
        xml.extend_from_slice(&[b'x'; 2000]);
        xml.extend_from_slice(b"</feedback>");
        std::fs::write(dir.path().join("a.xml"), &xml).expect("write");
        std::fs::write(dir.path().join("b.gz"), b"\x1f\x8b not xml").expect("write");
        let mut src = FileSource::new([dir.path().to_owned()], 1 << 20);
        let a = src.next_item().expect("a").expect("read");
        assert_eq!(a.bytes, xml);
        assert!(!a.is_in_file() && !a.stream);
        let b = src.next_item().expect("b").expect("read");
        assert!(b.is_in_file(), "{b:?}");
        assert!(src.next_item().is_none());
    }

    #[test]
    fn a_file_over_the_limit_is_refused_by_its_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("big.gz"), [0x1f; 100]).expect("write");
        std::fs::write(dir.path().join("big.xml"), [b'<'; 100]).expect("write");
        let mut src = FileSource::new([dir.path().to_owned()], 99).with_xml_limit(99);
        for _ in 0..2 {
            match src.next_item() {
                Some(Err(IngestError::TooLarge { size, limit, .. })) => {
                    assert_eq!((size, limit), (100, 99));
                }
                other => panic!("expected TooLarge, got {other:?}"),
            }
        }
        assert!(src.next_item().is_none());
    }
}
