//! mbox files (RFC 4155 "From " separated) as a source.
//! Owns splitting the file into messages; leaves the file unchanged (an
//! mbox cannot drop a message without rewriting it; dedupe makes a re-run
//! harmless).

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use mail_parser::mailbox::mbox::MessageIterator;

use super::{IngestError, Item, Outcome, Source};

/// Every message of one mbox file.
pub struct MboxSource {
    path: PathBuf,
    messages: Option<MessageIterator<BufReader<File>>>,
    index: u64,
    opened: bool,
}

impl std::fmt::Debug for MboxSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MboxSource")
            .field("path", &self.path)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl MboxSource {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            messages: None,
            index: 0,
            opened: false,
        }
    }
}

impl Source for MboxSource {
    fn next_item(&mut self) -> Option<Result<Item, IngestError>> {
        if !self.opened {
            self.opened = true;
            match File::open(&self.path) {
                Ok(f) => self.messages = Some(MessageIterator::new(BufReader::new(f))),
                Err(source) => {
                    return Some(Err(IngestError::Read {
                        path: self.path.clone(),
                        source,
                    }));
                }
            }
        }
        let next = self.messages.as_mut()?.next()?;
        self.index += 1;
        Some(match next {
            Ok(m) => Ok(Item {
                origin: format!("{}#{}", self.path.display(), self.index),
                bytes: m.unwrap_contents(),
                path: None,
                stream: false,
            }),
            Err(source) => {
                // A read error ends the mailbox.
                self.messages = None;
                Err(IngestError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        })
    }

    fn finish(&mut self, _item: &Item, _outcome: &Outcome) -> Result<(), IngestError> {
        Ok(())
    }
}
