//! An item parsed whole and held in memory: every call [`parse_item`]
//! made on its sink, in order, so that parsing (on a worker thread of
//! `reports::ingest`) and storing (on the thread that owns the store)
//! can happen apart and the store sees exactly what a direct parse into
//! it would have shown it.
//!
//! An item with more records than are worth holding is instead handed on
//! unparsed, to be parsed as it is replayed ([`ParsedItem::deferred`]):
//! read from where it lies, straight into the store's sink.
//!
//! Owns the recording sink and the replay of what it recorded (or of the
//! deferred item) into another sink. Leaves parsing to the parent module,
//! opening files to `reports::ingest` and storage to the stores.

use super::*;

/// One call the parser made on its sink.
#[derive(Debug)]
enum Event {
    Header(Box<AggregateHeader>),
    /// Consecutive records, one entry per run rather than per record.
    Records(Vec<Record>),
    End(Box<AggregateSummary>),
    Failure(Box<FailureReport>),
    Tls(Box<TlsReport>),
}

/// Every report of one item, parsed and checked against the item's
/// limits (its time budget included), not yet stored.
#[derive(Debug)]
pub struct ParsedItem {
    events: Vec<Event>,
    found: Vec<Found>,
    /// An item parsed only when replayed.
    deferred: Option<Deferred>,
}

/// An item left where it lies, parsed into the sink of each replay.
struct Deferred {
    input: std::sync::Mutex<Box<dyn ReadSeek + Send>>,
    len: u64,
    limits: IngestLimits,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred").field("len", &self.len).finish()
    }
}

/// Aggregate records one [`ParsedItem`] holds at most in
/// [`reports::ingest`](crate::reports::ingest) (about a MB): an item with
/// more is left to be parsed as it is stored, in bounded memory. Reports
/// hold tens to hundreds of records; 10,000 held added about 7 MB to the
/// peak RSS of a 200,000-record report (`benches/reports_rss.sh`), 2,000
/// about 2 MB.
pub const HOLD_RECORDS: usize = 2_000;

impl ParsedItem {
    /// Parses one item as [`parse_item`] does, holding what it finds. Any
    /// error rejects the whole item, as there. `None` when the item holds
    /// more than `max_records` aggregate records: parsing stops there, and
    /// the item is better parsed straight into its store.
    pub fn parse(
        bytes: &[u8],
        limits: &IngestLimits,
        max_records: usize,
    ) -> Result<Option<Self>, ParseError> {
        let mut recorder = Recorder {
            events: Vec::new(),
            records: 0,
            max_records,
        };
        let result = parse_item(bytes, limits, &mut recorder);
        Self::held(recorder, result)
    }

    /// [`parse`](Self::parse) for an item read from where it lies (`len`
    /// bytes), as [`parse_input`] reads it.
    pub fn parse_input(
        input: &mut dyn ReadSeek,
        len: u64,
        limits: &IngestLimits,
        max_records: usize,
    ) -> Result<Option<Self>, ParseError> {
        let mut recorder = Recorder {
            events: Vec::new(),
            records: 0,
            max_records,
        };
        let result = parse_input(input, len, limits, &mut recorder);
        Self::held(recorder, result)
    }

    fn held(
        recorder: Recorder,
        result: Result<Vec<Found>, ParseError>,
    ) -> Result<Option<Self>, ParseError> {
        match result {
            Ok(found) => Ok(Some(Self {
                events: recorder.events,
                found,
                deferred: None,
            })),
            Err(ParseError::Sink { source }) if source.is::<Full>() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An item not parsed yet, read from `input` (`len` bytes, from its
    /// start) as [`parse_input`] reads it each time it is replayed, its
    /// reports going straight into the sink: an item with more records
    /// than [`parse`](Self::parse) holds, stored without being held (nor
    /// its records). [`found`](Self::found) is empty until then.
    pub fn deferred(input: Box<dyn ReadSeek + Send>, len: u64, limits: &IngestLimits) -> Self {
        Self {
            events: Vec::new(),
            found: Vec::new(),
            deferred: Some(Deferred {
                input: std::sync::Mutex::new(input),
                len,
                limits: limits.clone(),
            }),
        }
    }

    /// Whether the item is parsed already, every report of it held: its
    /// [`replay`](Self::replay) can then fail only where the sink does.
    /// False for a [`deferred`](Self::deferred) item.
    pub fn is_parsed(&self) -> bool {
        self.deferred.is_none()
    }

    /// The reports found, each counted new (the store has not seen them);
    /// none for a [`deferred`](Self::deferred) item.
    pub fn found(&self) -> &[Found] {
        &self.found
    }

    /// Hands every report to `sink` in the order the parser found them,
    /// as [`parse_item`] would have: the records and the end of an
    /// aggregate report whose header the sink refuses (a duplicate) are
    /// skipped. Returns one [`Found`] per report, a duplicate where the
    /// sink said so. Can be replayed again (a store retrying its
    /// transaction). A [`deferred`](Self::deferred) item is parsed into
    /// the sink now, as [`parse_input`] would, its time budget starting
    /// now.
    pub fn replay<S: ReportSink + ?Sized>(&self, sink: &mut S) -> Result<Vec<Found>, ParseError> {
        if let Some(d) = &self.deferred {
            return d.replay(sink);
        }
        let mut state = Replay::default();
        state.apply(&self.events, sink)?;
        Ok(state.found(self.found.clone()))
    }
}

/// Where a replay is: whether the current aggregate report was accepted,
/// and whether each report so far was new to the sink.
struct Replay {
    accepted: bool,
    new: Vec<bool>,
}

impl Default for Replay {
    fn default() -> Self {
        Self {
            accepted: true,
            new: Vec::new(),
        }
    }
}

impl Replay {
    /// Hands `events` to `sink`: the records and the end of an aggregate
    /// report whose header the sink refuses are skipped.
    fn apply<S: ReportSink + ?Sized>(
        &mut self,
        events: &[Event],
        sink: &mut S,
    ) -> Result<(), ParseError> {
        let sink_err = |source| ParseError::Sink { source };
        let Self { accepted, new } = self;
        for event in events {
            match event {
                Event::Header(h) => {
                    *accepted = sink.header(h).map_err(sink_err)?;
                    new.push(*accepted);
                }
                Event::Records(records) if *accepted => {
                    for r in records {
                        sink.record(r).map_err(sink_err)?;
                    }
                }
                Event::Records(_) => {}
                Event::End(s) if *accepted => {
                    // A sink that held the header back says at the end
                    // whether the report was new.
                    if !sink.end(s).map_err(sink_err)?
                        && let Some(last) = new.last_mut()
                    {
                        *last = false;
                    }
                }
                Event::End(_) => {}
                Event::Failure(r) => new.push(sink.failure(r).map_err(sink_err)?),
                Event::Tls(r) => new.push(sink.tls(r).map_err(sink_err)?),
            }
        }
        Ok(())
    }

    /// `found`, a duplicate where the sink said so: one `Found` per report,
    /// in the order the sink saw them.
    fn found(self, mut found: Vec<Found>) -> Vec<Found> {
        for (f, new) in found.iter_mut().zip(self.new) {
            f.duplicate = !new;
        }
        found
    }
}

/// Events a deferred replay's parsing thread sends at a time, about;
/// at most 16 batches wait in the channel (about 1,000 records, as in
/// the SQLite store's own parsing thread).
const BATCH: usize = 64;

impl Deferred {
    /// Parses the item on a thread of its own while this one hands what
    /// it finds to `sink` (a store's transaction): reading, decompressing
    /// and parsing overlap with the store's writes, and the sink sees what
    /// a direct parse into it would have shown it. The channel between
    /// them is bounded, so memory does not grow with the item.
    fn replay<S: ReportSink + ?Sized>(&self, sink: &mut S) -> Result<Vec<Found>, ParseError> {
        let mut guard = self
            .input
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let input: &mut (dyn ReadSeek + Send) = &mut **guard;
        let (len, limits) = (self.len, &self.limits);
        let overlapped = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Event>>(16);
            let parser = std::thread::Builder::new()
                .name("report-parser".to_owned())
                .spawn_scoped(scope, move || {
                    let mut sender = Sender {
                        tx,
                        events: Vec::new(),
                        n: 0,
                    };
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let found = parse_input(&mut *input, len, limits, &mut sender)?;
                        sender
                            .flush()
                            .map_err(|source| ParseError::Sink { source })?;
                        Ok(found)
                    }))
                    .unwrap_or_else(|_| {
                        Err(ParseError::Sink {
                            source: "the report parsing thread stopped (a bug: it panicked)".into(),
                        })
                    })
                });
            let Ok(parser) = parser else {
                return None;
            };
            let mut state = Replay::default();
            let mut failed = None;
            while let Ok(events) = rx.recv() {
                if let Err(e) = state.apply(&events, sink) {
                    failed = Some(e);
                    break;
                }
            }
            // The parser stops at its next send.
            drop(rx);
            let parsed = parser.join().unwrap_or_else(|_| {
                Err(ParseError::Sink {
                    source: "the report parsing thread stopped (a bug: it panicked)".into(),
                })
            });
            if let Some(e) = failed {
                return Some(Err(e));
            }
            Some(parsed.map(|found| state.found(found)))
        });
        // No thread: parsed here, straight into the sink.
        overlapped.unwrap_or_else(|| parse_input(&mut **guard, len, limits, sink))
    }
}

/// The sink of a deferred replay's parsing thread: sends every call, in
/// batches, to the thread that replays them; calls every report new.
struct Sender {
    tx: std::sync::mpsc::SyncSender<Vec<Event>>,
    events: Vec<Event>,
    n: usize,
}

/// The replaying thread stopped listening (its sink failed).
#[derive(Debug, thiserror::Error)]
#[error("the store stopped reading the parsed reports")]
struct Stopped;

impl Sender {
    fn push(&mut self, event: Event) -> Result<(), SinkError> {
        self.events.push(event);
        self.n += 1;
        if self.n >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.n = 0;
        if self.events.is_empty() {
            return Ok(());
        }
        self.tx
            .send(std::mem::take(&mut self.events))
            .map_err(|_| Box::new(Stopped) as SinkError)
    }
}

impl AggregateVisitor for Sender {
    fn header(&mut self, header: &AggregateHeader) -> Result<bool, SinkError> {
        self.push(Event::Header(Box::new(header.clone())))?;
        Ok(true)
    }
    fn record(&mut self, record: &Record) -> Result<(), SinkError> {
        self.record_owned(record.clone())
    }
    fn record_owned(&mut self, record: Record) -> Result<(), SinkError> {
        match self.events.last_mut() {
            Some(Event::Records(records)) => {
                records.push(record);
                self.n += 1;
                if self.n >= BATCH {
                    self.flush()?;
                }
                Ok(())
            }
            _ => self.push(Event::Records(vec![record])),
        }
    }
    fn end(&mut self, summary: &AggregateSummary) -> Result<bool, SinkError> {
        self.push(Event::End(Box::new(summary.clone())))?;
        Ok(true)
    }
}

impl ReportSink for Sender {
    fn failure(&mut self, report: &FailureReport) -> Result<bool, SinkError> {
        self.push(Event::Failure(Box::new(report.clone())))?;
        Ok(true)
    }
    fn tls(&mut self, report: &TlsReport) -> Result<bool, SinkError> {
        self.push(Event::Tls(Box::new(report.clone())))?;
        Ok(true)
    }
}

/// The sink of [`ParsedItem::parse`]: keeps every call, calls every
/// report new (the store that replays it knows better).
struct Recorder {
    events: Vec<Event>,
    records: usize,
    max_records: usize,
}

/// The recorder holds `max_records` records already.
#[derive(Debug, thiserror::Error)]
#[error("too many records to hold")]
struct Full;

impl AggregateVisitor for Recorder {
    fn header(&mut self, header: &AggregateHeader) -> Result<bool, SinkError> {
        self.events.push(Event::Header(Box::new(header.clone())));
        Ok(true)
    }
    fn record(&mut self, record: &Record) -> Result<(), SinkError> {
        self.record_owned(record.clone())
    }
    fn record_owned(&mut self, record: Record) -> Result<(), SinkError> {
        if self.records >= self.max_records {
            return Err(Box::new(Full));
        }
        self.records += 1;
        match self.events.last_mut() {
            Some(Event::Records(records)) => records.push(record),
            _ => self.events.push(Event::Records(vec![record])),
        }
        Ok(())
    }
    fn end(&mut self, summary: &AggregateSummary) -> Result<bool, SinkError> {
        self.events.push(Event::End(Box::new(summary.clone())));
        Ok(true)
    }
}

impl ReportSink for Recorder {
    fn failure(&mut self, report: &FailureReport) -> Result<bool, SinkError> {
        self.events.push(Event::Failure(Box::new(report.clone())));
        Ok(true)
    }
    fn tls(&mut self, report: &TlsReport) -> Result<bool, SinkError> {
        self.events.push(Event::Tls(Box::new(report.clone())));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, records: usize) -> String {
        super::super::test_report(id, records, "")
    }

    /// A sink that refuses the headers of the report ids it is given and
    /// counts what reaches it.
    #[derive(Default)]
    struct Seen {
        refuse: Vec<String>,
        headers: Vec<String>,
        records: usize,
        ends: usize,
    }

    impl AggregateVisitor for Seen {
        fn header(&mut self, h: &AggregateHeader) -> Result<bool, SinkError> {
            self.headers.push(h.report_id.clone());
            Ok(!self.refuse.contains(&h.report_id))
        }
        fn record(&mut self, _: &Record) -> Result<(), SinkError> {
            self.records += 1;
            Ok(())
        }
        fn end(&mut self, _: &AggregateSummary) -> Result<bool, SinkError> {
            self.ends += 1;
            Ok(true)
        }
    }

    impl ReportSink for Seen {
        fn failure(&mut self, _: &FailureReport) -> Result<bool, SinkError> {
            Ok(true)
        }
        fn tls(&mut self, _: &TlsReport) -> Result<bool, SinkError> {
            Ok(true)
        }
    }

    #[test]
    fn replay_shows_the_sink_what_a_direct_parse_shows_it() {
        let limits = IngestLimits::default();
        let xml = report("a", 3);
        let mut direct = Seen::default();
        let want = parse_item(xml.as_bytes(), &limits, &mut direct).expect("parses");
        let held = ParsedItem::parse(xml.as_bytes(), &limits, 3)
            .expect("parses")
            .expect("held");
        let mut replayed = Seen::default();
        let got = held.replay(&mut replayed).expect("replays");
        assert_eq!(got, want);
        assert_eq!(
            (replayed.headers, replayed.records, replayed.ends),
            (direct.headers, direct.records, direct.ends)
        );
        assert_eq!(replayed.records, 3);
        // A second replay (a retried transaction) shows the same again.
        let mut again = Seen::default();
        assert_eq!(held.replay(&mut again).expect("replays"), want);
        assert_eq!(again.records, 3);
    }

    #[test]
    fn a_refused_header_skips_its_records_and_marks_a_duplicate() {
        let limits = IngestLimits::default();
        let held = ParsedItem::parse(report("dup", 4).as_bytes(), &limits, HOLD_RECORDS)
            .expect("parses")
            .expect("held");
        assert!(!held.found()[0].duplicate);
        let mut sink = Seen {
            refuse: vec!["dup".to_owned()],
            ..Seen::default()
        };
        let found = held.replay(&mut sink).expect("replays");
        assert_eq!(found.len(), 1);
        assert!(found[0].duplicate);
        assert_eq!((sink.records, sink.ends), (0, 0));
    }

    #[test]
    fn a_bad_item_is_rejected_when_parsed() {
        let err = ParsedItem::parse(b"not a report", &IngestLimits::default(), HOLD_RECORDS)
            .expect_err("rejected");
        assert!(matches!(err, ParseError::NotAReport { .. }), "{err}");
    }

    #[test]
    fn an_item_with_more_records_than_held_is_left_to_the_store() {
        let limits = IngestLimits::default();
        let xml = report("big", 4);
        assert!(
            ParsedItem::parse(xml.as_bytes(), &limits, 3)
                .expect("parses")
                .is_none()
        );
        assert!(
            ParsedItem::parse(xml.as_bytes(), &limits, 4)
                .expect("parses")
                .is_some()
        );
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, data).expect("gzip");
        gz.finish().expect("gzip")
    }

    #[test]
    fn a_deferred_item_is_parsed_into_the_sink_when_replayed() {
        let limits = IngestLimits::default();
        // More records than one batch of the parsing thread.
        let gz = gzip(report("d", 3 * BATCH + 5).as_bytes());
        let mut direct = Seen::default();
        let want = parse_item(&gz, &limits, &mut direct).expect("parses");
        let len = gz.len() as u64;
        let item = ParsedItem::deferred(Box::new(std::io::Cursor::new(gz)), len, &limits);
        assert!(item.found().is_empty());
        let mut sink = Seen::default();
        assert_eq!(item.replay(&mut sink).expect("replays"), want);
        assert_eq!(sink.records, 3 * BATCH + 5);
        assert_eq!(
            (sink.headers, sink.records, sink.ends),
            (direct.headers, direct.records, direct.ends)
        );
        // Replayed again (a retried transaction), into a sink that holds
        // the report already.
        let mut dup = Seen {
            refuse: vec!["d".to_owned()],
            ..Seen::default()
        };
        let found = item.replay(&mut dup).expect("replays");
        assert!(found[0].duplicate);
        assert_eq!((dup.records, dup.ends), (0, 0));
    }

    /// A sink that fails on its 300th record.
    #[derive(Default)]
    struct FailsAt300(usize);

    impl AggregateVisitor for FailsAt300 {
        fn header(&mut self, _: &AggregateHeader) -> Result<bool, SinkError> {
            Ok(true)
        }
        fn record(&mut self, _: &Record) -> Result<(), SinkError> {
            self.0 += 1;
            if self.0 == 300 {
                return Err("disk full".into());
            }
            Ok(())
        }
        fn end(&mut self, _: &AggregateSummary) -> Result<bool, SinkError> {
            Ok(true)
        }
    }

    impl ReportSink for FailsAt300 {
        fn failure(&mut self, _: &FailureReport) -> Result<bool, SinkError> {
            Ok(true)
        }
        fn tls(&mut self, _: &TlsReport) -> Result<bool, SinkError> {
            Ok(true)
        }
    }

    #[test]
    fn a_failing_sink_stops_a_deferred_replay_with_its_error() {
        let limits = IngestLimits::default();
        let gz = gzip(report("f", 5_000).as_bytes());
        let len = gz.len() as u64;
        let item = ParsedItem::deferred(Box::new(std::io::Cursor::new(gz)), len, &limits);
        let mut sink = FailsAt300::default();
        let err = item.replay(&mut sink).expect_err("the sink fails");
        assert_eq!(err.to_string(), "storing the report failed: disk full");
        assert_eq!(sink.0, 300);
        // A broken item is the parser's error.
        let broken = gzip(b"<feedback><report_metadata>");
        let len = broken.len() as u64;
        let item = ParsedItem::deferred(Box::new(std::io::Cursor::new(broken)), len, &limits);
        let err = item.replay(&mut Seen::default()).expect_err("broken item");
        assert!(!matches!(err, ParseError::Sink { .. }), "{err}");
    }
}
