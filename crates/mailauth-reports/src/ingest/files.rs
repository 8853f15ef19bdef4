//! Files and directories (walked recursively, in name order) as a source.
//! Owns listing and reading; leaves the files where they are. A large
//! plain-XML file is handed on unread, to be parsed as a stream. A plain-XML
//! file is a report already decompressed: its size is held to the
//! decompressed limit (`max_decompressed_bytes`), like the same report
//! inside gzip or zip. Any other file (gzip, zip, a mail) is held to the
//! input limit (`max_input_bytes`) and handed on unread too
//! ([`Item::in_file`]): it is read from the file as it is parsed, never
//! held whole.
//! Asked to ([`Source::read_on_workers`]), the source only lists: every
//! file is handed on with its size and limits ([`Item::unread`]), and the
//! ingest's worker threads look into it and read it ([`open_unread`]), by
//! the same rules and with the same errors as [`FileSource`] reading it
//! itself. Which thread runs it is the pipeline's business.
//! Symbolic links are followed, but a directory is walked once however
//! many links lead to it: a link loop (`dir/up -> ..`) ends there.

use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::{IngestError, Item, Outcome, Source, Unread, read_open_file};

/// Plain-XML files larger than this are parsed as they are read, not read
/// whole: a 100 MB report then needs no more memory than a small one.
const STREAM_ABOVE: u64 = 8 << 20;

/// What the first bytes of a file say.
enum Head {
    /// It starts like an XML document (after an optional BOM and white
    /// space): the file, rewound.
    Xml(std::fs::File),
    /// Anything else (compressed files, mail messages): the file, rewound,
    /// unless it could not be opened, read or rewound (reading it again
    /// reports the error).
    Other(Option<std::fs::File>),
}

/// Opens `path` and looks at its first bytes. A plain-XML file is then
/// read from the file opened here: one lookup of its path, not two.
fn head(path: &Path) -> Head {
    use std::io::{Read as _, Seek as _};
    let mut head = [0u8; 512];
    // A file that cannot be opened is not read here: reading it later
    // reports the error.
    let Ok(mut file) = std::fs::File::open(path) else {
        return Head::Other(None);
    };
    let Ok(n) = file.read(&mut head) else {
        return Head::Other(None);
    };
    let head = &head[..n];
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let xml = head
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'<');
    match (xml, file.rewind().is_ok()) {
        (true, true) => Head::Xml(file),
        (true, false) => Head::Other(None),
        (false, rewound) => Head::Other(rewound.then_some(file)),
    }
}

/// A file looked into and read as the file source hands it on.
pub(crate) enum Opened {
    /// A plain-XML report, read whole.
    Xml(Vec<u8>),
    /// A plain-XML report too large to hold ([`Item::stream`]): parsed as
    /// it is read, when it is stored.
    Stream,
    /// Anything else, read from its file as it is parsed
    /// ([`Item::in_file`]): the file at its start, when the look at its
    /// first bytes left it open.
    InFile(Option<std::fs::File>),
}

impl Opened {
    /// The item the file source hands on for it.
    fn into_item(self, path: PathBuf) -> Item {
        match self {
            Opened::Xml(bytes) => Item {
                origin: path.display().to_string(),
                bytes,
                path: Some(path),
                stream: false,
                unread: None,
            },
            Opened::Stream => Item {
                origin: path.display().to_string(),
                bytes: Vec::new(),
                path: Some(path),
                stream: true,
                unread: None,
            },
            Opened::InFile(_) => Item::in_file(path),
        }
    }
}

/// Looks into the file at `path` and reads it as [`FileSource`] does, by
/// the size and the limits of `unread` (its size as listed): a plain-XML
/// file over the decompressed limit, or any other file over the input
/// limit, is refused by that size before it is read; a plain-XML file is
/// read whole (refused if it grew past its limit meanwhile) unless it is
/// too large to hold; anything else is left in its file.
pub(crate) fn open_unread(path: &Path, unread: &Unread) -> Result<Opened, IngestError> {
    let too_large = |limit| IngestError::TooLarge {
        path: path.to_owned(),
        size: unread.size,
        limit,
    };
    match head(path) {
        Head::Xml(_) if unread.size > unread.xml_limit => Err(too_large(unread.xml_limit)),
        Head::Xml(_) if unread.size > STREAM_ABOVE => Ok(Opened::Stream),
        // A plain-XML file read whole is at most STREAM_ABOVE bytes.
        Head::Xml(file) => read_open_file(file, path, unread.xml_limit).map(Opened::Xml),
        // The size listed: the path is not looked up again.
        Head::Other(_) if unread.size > unread.limit => Err(too_large(unread.limit)),
        Head::Other(file) => Ok(Opened::InFile(file)),
    }
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
    /// Files are handed on unread ([`Source::read_on_workers`]).
    unread: bool,
}

impl FileSource {
    /// `limit` is the largest file read (see `IngestLimits::max_input_bytes`).
    pub fn new(paths: impl IntoIterator<Item = PathBuf>, limit: u64) -> Self {
        Self {
            pending: paths.into_iter().collect(),
            limit,
            xml_limit: crate::reports::IngestLimits::default().max_decompressed_bytes,
            walked: HashSet::new(),
            unread: false,
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
            let unread = Unread {
                size: meta.len(),
                limit: self.limit,
                xml_limit: self.xml_limit,
            };
            if self.unread {
                return Some(Ok(Item::unread(path, unread)));
            }
            return Some(open_unread(&path, &unread).map(|opened| opened.into_item(path)));
        }
        None
    }

    fn finish(&mut self, _item: &Item, _outcome: &Outcome) -> Result<(), IngestError> {
        Ok(())
    }

    fn moves_items(&self) -> bool {
        false
    }

    fn read_on_workers(&mut self) {
        self.unread = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain-XML file's bytes: a BOM and white space before the
    /// document, and more than the 512 bytes looked at to tell XML from
    /// the rest.
    fn padded_xml() -> Vec<u8> {
        let mut xml = b"\xEF\xBB\xBF \n<feedback>".to_vec();
        xml.extend_from_slice(&[b'x'; 2000]);
        xml.extend_from_slice(b"</feedback>");
        xml
    }

    #[test]
    fn plain_xml_is_read_whole_from_its_first_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let xml = padded_xml();
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

    /// Every item of `dir` as the source hands it on: read by the source
    /// itself, or handed on unread and then read by [`open_unread`] (as a
    /// worker does). Errors as their messages.
    fn items(dir: &Path, limit: u64, xml_limit: u64, unread: bool) -> Vec<Result<Item, String>> {
        let mut src = FileSource::new([dir.to_owned()], limit).with_xml_limit(xml_limit);
        if unread {
            src.read_on_workers();
        }
        std::iter::from_fn(|| src.next_item())
            .map(|next| {
                let item = next.map_err(|e| e.to_string())?;
                if !unread {
                    assert!(item.unread.is_none(), "{item:?}");
                    return Ok(item);
                }
                // Nothing read while listing: only the path and the size.
                let look = item.unread.expect("handed on unread");
                let path = item.path.clone().expect("a file");
                assert!(item.bytes.is_empty() && !item.stream && !item.is_in_file());
                assert_eq!(look.size, std::fs::metadata(&path).expect("stat").len());
                assert_eq!((look.limit, look.xml_limit), (limit, xml_limit));
                open_unread(&path, &look)
                    .map(|opened| opened.into_item(path))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    #[test]
    fn files_handed_on_unread_are_read_by_the_same_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let xml = padded_xml();
        std::fs::write(dir.path().join("a.xml"), &xml).expect("write");
        std::fs::write(dir.path().join("b.gz"), b"\x1f\x8b not xml").expect("write");
        // Over the plain-XML limit, and over the input limit.
        std::fs::write(dir.path().join("c.xml"), [b'<'; 3000]).expect("write");
        std::fs::write(dir.path().join("d.zip"), [b'P'; 5000]).expect("write");
        std::fs::write(dir.path().join("e.xml"), b"").expect("write");
        let direct = items(dir.path(), 4096, 2500, false);
        let unread = items(dir.path(), 4096, 2500, true);
        assert_eq!(direct, unread);
        assert_eq!(direct.len(), 5, "{direct:?}");
        assert_eq!(direct[0].as_ref().map(|i| &i.bytes), Ok(&xml));
        assert!(direct[1].as_ref().is_ok_and(Item::is_in_file));
        let c = dir.path().join("c.xml");
        let d = dir.path().join("d.zip");
        assert_eq!(
            direct[2],
            Err(format!(
                "{} is 3000 bytes, more than the limit of 2500",
                c.display()
            ))
        );
        assert_eq!(
            direct[3],
            Err(format!(
                "{} is 5000 bytes, more than the limit of 4096",
                d.display()
            ))
        );
        // An empty file is no XML: left to the parser, which refuses it.
        assert!(direct[4].as_ref().is_ok_and(Item::is_in_file));
    }

    #[test]
    fn a_large_plain_xml_file_handed_on_unread_is_streamed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut xml = b"<feedback>".to_vec();
        xml.resize(usize::try_from(STREAM_ABOVE).expect("size") + 1, b' ');
        std::fs::write(dir.path().join("big.xml"), &xml).expect("write");
        let direct = items(dir.path(), 1 << 20, 64 << 20, false);
        assert_eq!(direct, items(dir.path(), 1 << 20, 64 << 20, true));
        let item = direct[0].as_ref().expect("an item");
        assert!(item.stream && item.bytes.is_empty(), "{item:?}");
    }

    #[test]
    fn a_file_gone_before_a_worker_reads_it_is_left_to_the_read_that_reports_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.xml"), b"<feedback/>").expect("write");
        let mut src = FileSource::new([dir.path().to_owned()], 1 << 20);
        src.read_on_workers();
        let item = src.next_item().expect("a").expect("listed");
        let path = item.path.clone().expect("a file");
        std::fs::remove_file(&path).expect("rm");
        // As when the source cannot open a file it lists: the item is left
        // in its file, and opening it to parse it gives the read error
        // (`pipeline`'s tests check the message).
        let opened = open_unread(&path, &item.unread.expect("unread")).expect("no error yet");
        assert!(matches!(opened, Opened::InFile(None)));
        assert!(opened.into_item(path).is_in_file());
    }
}
