//! mbox files (RFC 4155 "From " separated) as a source.
//! Owns splitting the file into messages as it is read, so a message over
//! the size limit is skipped without being held (only the limit is kept of
//! it, then dropped); leaves the file unchanged (an mbox cannot drop a
//! message without rewriting it; dedupe makes a re-run harmless).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use super::{IngestError, Item, Outcome, Source};

/// Every message of one mbox file.
#[derive(Debug)]
pub struct MboxSource {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    /// The largest message handed on (`IngestLimits::max_input_bytes`).
    limit: u64,
    /// The current line, or as much of it as is kept.
    line: Vec<u8>,
    /// A "From " line was read: a message starts after it.
    in_message: bool,
    index: u64,
    opened: bool,
}

impl MboxSource {
    /// An mbox read with the default size limit (64 MiB per message).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            reader: None,
            limit: crate::reports::IngestLimits::default().max_input_bytes,
            line: Vec::new(),
            in_message: false,
            index: 0,
            opened: false,
        }
    }

    /// Messages larger than `limit` bytes are an error, never read whole.
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// Reads one line (through `\n`, or to the end of the file), keeping
    /// at most `keep` bytes of it in `self.line`; its whole length, 0 at
    /// the end of the file.
    fn read_line(&mut self, keep: usize) -> std::io::Result<u64> {
        self.line.clear();
        let Some(r) = self.reader.as_mut() else {
            return Ok(0);
        };
        let mut total = 0u64;
        loop {
            let buf = match r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(total);
            }
            let (n, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = keep.saturating_sub(self.line.len());
            self.line.extend_from_slice(&buf[..n.min(room)]);
            r.consume(n);
            total += n as u64;
            if done {
                return Ok(total);
            }
        }
    }

    /// The rest of the current message: its bytes, or its size when it is
    /// over the limit. Ends at the next "From " line or the end of the file.
    fn read_message(&mut self) -> std::io::Result<Result<Vec<u8>, u64>> {
        let mut contents = Vec::new();
        let mut size = 0u64;
        let mut over = false;
        loop {
            // Enough of the line to see a separator, and the whole line
            // while the message is within the limit.
            let room = self.limit.saturating_sub(size).saturating_add(1);
            let keep = usize::try_from(room).unwrap_or(usize::MAX).max(8);
            let n = self.read_line(keep)?;
            if n == 0 {
                self.in_message = false;
                break;
            }
            // RFC 4155 section 2: a line that starts with "From " starts
            // the next message.
            if self.line.starts_with(b"From ") {
                break;
            }
            size += n;
            if over || size > self.limit {
                over = true;
                contents = Vec::new();
                continue;
            }
            // ">From " quoting (mboxrd): one '>' is removed.
            let quotes = self.line.iter().take_while(|&&b| b == b'>').count();
            if quotes > 0 && self.line[quotes..].starts_with(b"From ") {
                contents.extend_from_slice(&self.line[1..]);
            } else {
                contents.extend_from_slice(&self.line);
            }
        }
        Ok(if over { Err(size) } else { Ok(contents) })
    }
}

impl Source for MboxSource {
    fn next_item(&mut self) -> Option<Result<Item, IngestError>> {
        if !self.opened {
            self.opened = true;
            match File::open(&self.path) {
                Ok(f) => self.reader = Some(BufReader::with_capacity(64 << 10, f)),
                Err(source) => {
                    return Some(Err(IngestError::Read {
                        path: self.path.clone(),
                        source,
                    }));
                }
            }
            // Anything before the first "From " line is not a message.
            loop {
                match self.read_line(8) {
                    Ok(0) => return None,
                    Ok(_) if self.line.starts_with(b"From ") => break,
                    Ok(_) => {}
                    Err(source) => return Some(Err(self.read_error(source))),
                }
            }
            self.in_message = true;
        }
        if !self.in_message || self.reader.is_none() {
            return None;
        }
        self.index += 1;
        let origin = format!("{}#{}", self.path.display(), self.index);
        Some(match self.read_message() {
            Ok(Ok(bytes)) => Ok(Item {
                origin,
                bytes,
                path: None,
                stream: false,
                unread: None,
            }),
            Ok(Err(size)) => Err(IngestError::TooLarge {
                path: PathBuf::from(origin),
                size,
                limit: self.limit,
            }),
            Err(source) => Err(self.read_error(source)),
        })
    }

    fn finish(&mut self, _item: &Item, _outcome: &Outcome) -> Result<(), IngestError> {
        Ok(())
    }

    fn moves_items(&self) -> bool {
        false
    }
}

impl MboxSource {
    /// A read error ends the mailbox.
    fn read_error(&mut self, source: std::io::Error) -> IngestError {
        self.reader = None;
        IngestError::Read {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(mbox: &[u8], limit: u64) -> Vec<Result<Vec<u8>, String>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mbox");
        std::fs::write(&path, mbox).expect("write");
        let mut src = MboxSource::new(path).with_limit(limit);
        std::iter::from_fn(|| src.next_item())
            .map(|r| r.map(|i| i.bytes).map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn splits_and_unquotes() {
        let mbox = b"junk\nFrom a@b Mon Jan  1 00:00:00 2024\nA: 1\n\n>From x\n>>From y\n>Fro\n\n\
                     From c@d Mon Jan  1 00:00:00 2024\nB: 2\n";
        let got = messages(mbox, 1 << 20);
        assert_eq!(
            got,
            vec![
                Ok(b"A: 1\n\nFrom x\n>From y\n>Fro\n\n".to_vec()),
                Ok(b"B: 2\n".to_vec())
            ]
        );
        assert!(messages(b"no separator\n", 1 << 20).is_empty());
    }

    #[test]
    fn a_message_over_the_limit_is_an_error_and_the_next_is_read() {
        let mut mbox = b"From a Mon Jan  1 00:00:00 2024\n".to_vec();
        mbox.extend_from_slice(&vec![b'x'; 5000]);
        mbox.extend_from_slice(b"\nFrom b Mon Jan  1 00:00:00 2024\nB: 2\n");
        let got = messages(&mbox, 1000);
        assert_eq!(got.len(), 2, "{got:?}");
        let err = got[0].clone().expect_err("too large");
        assert!(
            err.ends_with("#1 is 5001 bytes, more than the limit of 1000"),
            "{err}"
        );
        assert_eq!(got[1], Ok(b"B: 2\n".to_vec()));
    }
}
