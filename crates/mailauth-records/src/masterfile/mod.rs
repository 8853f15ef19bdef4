//! RFC 1035 §5 master files: reading them into RRsets while remembering
//! where each record sits in the text, and editing that text in place so
//! that everything mailauth does not own — records, comments, formatting —
//! stays exactly as it was. Rendering of fresh records for `emit` lives
//! here too. No file I/O: callers pass and receive text.

mod edit;
mod parse;

pub use edit::{apply_edits, bump_serial, render_records, render_set};
pub use parse::{ParseError, Parsed, SourceRecord, parse};
