//! A reader that passes only valid UTF-8 on, for the streaming parser of
//! large reports: the byte-level recovery [`super::parse`] applies to a
//! whole document, applied across reads.

/// A `BufRead` over raw bytes that passes only valid UTF-8 on: a leading
/// BOM is skipped, invalid bytes are dropped and counted (as [`parse`] does
/// for a whole document), and a character split across two reads is kept
/// whole.
pub(super) struct Utf8Clean<R> {
    inner: R,
    /// Clean bytes not yet consumed: `ready[pos..]`.
    ready: Vec<u8>,
    pos: usize,
    /// Raw bytes read but not yet cleaned (an incomplete character).
    carry: Vec<u8>,
    raw: Vec<u8>,
    pub(super) dropped: u64,
    started: bool,
    eof: bool,
    /// A read error, kept for the caller (quick-xml wraps it).
    pub(super) error: Option<std::io::Error>,
}

impl<R: std::io::Read> Utf8Clean<R> {
    const CHUNK: usize = 64 << 10;

    pub(super) fn new(inner: R) -> Self {
        Self {
            inner,
            ready: Vec::with_capacity(Self::CHUNK + 4),
            pos: 0,
            carry: Vec::new(),
            raw: vec![0; Self::CHUNK],
            dropped: 0,
            started: false,
            eof: false,
            error: None,
        }
    }

    /// Reads and cleans raw bytes until some clean bytes are ready or the
    /// input ends.
    fn refill(&mut self) -> std::io::Result<()> {
        self.ready.clear();
        self.pos = 0;
        while self.ready.is_empty() && !self.eof {
            let n = match self.inner.read(&mut self.raw) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let kept = std::io::Error::new(e.kind(), e.to_string());
                    self.error = Some(e);
                    return Err(kept);
                }
            };
            if n == 0 {
                self.eof = true;
            }
            let mut data = std::mem::take(&mut self.carry);
            data.extend_from_slice(&self.raw[..n]);
            if !self.started {
                // Wait for three bytes before deciding about a BOM.
                if data.len() < 3 && !self.eof {
                    self.carry = data;
                    continue;
                }
                self.started = true;
                if data.starts_with(b"\xEF\xBB\xBF") {
                    data.drain(..3);
                }
            }
            let mut rest = &data[..];
            loop {
                match std::str::from_utf8(rest) {
                    Ok(_) => {
                        self.ready.extend_from_slice(rest);
                        break;
                    }
                    Err(e) => {
                        let good = e.valid_up_to();
                        self.ready.extend_from_slice(&rest[..good]);
                        match e.error_len() {
                            Some(bad) => {
                                self.dropped += bad as u64;
                                rest = &rest[good + bad..];
                            }
                            None if self.eof => {
                                self.dropped += (rest.len() - good) as u64;
                                break;
                            }
                            None => {
                                self.carry = rest[good..].to_vec();
                                break;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl<R: std::io::Read> std::io::Read for Utf8Clean<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::io::BufRead as _;
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(out.len());
            out[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: std::io::Read> std::io::BufRead for Utf8Clean<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos >= self.ready.len() {
            self.refill()?;
        }
        Ok(&self.ready[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.ready.len());
    }
}
