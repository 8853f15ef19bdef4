//! Fuzz target `parse_reader`: the streaming DMARC aggregate parser that
//! ingest uses for plain-XML files over 8 MiB, fed in reads of 1 to 64
//! bytes (the input's length picks the size) so that tokens, characters
//! and values are split anywhere. It must not panic, and on UTF-8 input it
//! must reach exactly what the whole-document parser reaches: the same
//! records, summary, or error.
#![no_main]

use libfuzzer_sys::fuzz_target;

use mailauth_reports::parse::aggregate::{self, Collect};

/// Hands out its bytes `step` at a time.
struct Trickle<'a>(&'a [u8], usize);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.1.min(buf.len()).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let doc = data;
    let step = 1 + doc.len() % 64;
    let mut streamed = Collect::default();
    let got = aggregate::parse_reader(Trickle(doc, step), &mut streamed);
    if std::str::from_utf8(doc).is_err() {
        // Dropped bytes are counted at the end of a stream and at the
        // start of a whole document: only the outcome is compared.
        let mut whole = Collect::default();
        let want = aggregate::parse(doc, &mut whole);
        assert_eq!(got.is_ok(), want.is_ok(), "{got:?} / {want:?}");
        assert_eq!(streamed.records, whole.records);
        return;
    }
    let mut whole = Collect::default();
    let want = aggregate::parse(doc, &mut whole);
    match (&got, &want) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        _ => panic!("stream {got:?}, whole document {want:?}"),
    }
    assert_eq!(streamed.records, whole.records);
    assert_eq!(streamed.extensions, whole.extensions);
});
