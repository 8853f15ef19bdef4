//! The ingest loop: items read from a [`Source`], parsed by a small pool
//! of worker threads, stored by the calling thread in the order the
//! source gave them, and only then finished.
//!
//! Owns the order of events per item (read → parse → store → commit →
//! [`Source::finish`]), the group commits, the bound on items in flight
//! and the worker threads (which also free the items once stored, and read
//! the files a source hands on unread, [`Item::unread`]). Leaves parsing
//! to `reports::parse` (pure, so it may run on any thread), SQL to the
//! store (used only by the calling thread, as is the source) and reading
//! and moving items to the sources: a file handed on unread is read by the
//! rules, limits and errors of its source (`files::open_unread`), only on
//! another thread.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::{IngestError, Item, Opened, Outcome, Problem, Source, Summary, Unread, open_unread};
use crate::reports::IngestLimits;
use crate::reports::parse::parsed::HOLD_RECORDS;
use crate::reports::parse::{Found, ParseError, ParsedItem, ReportKind};
use crate::reports::store::{PreparedRecords, ReportStore, StoreError};

/// Items committed together when the source moves nothing (one fsync per
/// group instead of one per item): at most this many...
const GROUP_ITEMS: usize = 256;
/// ...or this much time since the group began, whichever comes first.
const GROUP_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Most worker threads parsing items, whatever the number of cores: the
/// one thread that stores them keeps up with about this many.
const MAX_WORKERS: usize = 8;

/// Items in flight (read, not yet stored) per worker: one being parsed,
/// the others parsed and waiting for their turn to be stored. The
/// writing thread waits several ms on each fsync (a group's commit, a
/// checkpoint), in which a worker parses a dozen small items, and items
/// take from a tenth of a ms to several to parse: with fewer waiting,
/// the workers stood idle until the writing thread took one (16 per
/// worker ingested the benchmark corpus in 0.66 s against 0.72 s with 4,
/// `BENCHMARKS.md`).
const IN_FLIGHT_PER_WORKER: usize = 16;

/// Bytes of the items in flight (held in memory, or the size of the file
/// a worker reads) past which no more are read: small items fill the
/// window, large ones (a plain-XML report is read whole up to 8 MiB) do
/// not multiply it. One item is always let through. What the parsed items
/// hold besides is bounded by their records ([`HOLD_RECORDS`], about a MB
/// each): 32 MB more at most with two workers.
#[cfg(not(test))]
const IN_FLIGHT_BYTES: u64 = 64 << 20;
/// Small in the tests, so that a test's items reach it.
#[cfg(test)]
const IN_FLIGHT_BYTES: u64 = 1 << 20;

/// Ingests every item of `source` into `store`, one transaction per item.
/// A bad item never stops the batch; a database failure does, and what
/// was committed before it is kept. `progress` is called after each item.
///
/// Items are parsed (decompressed, unpacked, read as XML or JSON) by
/// worker threads, one per core the process may use (at most 8), while
/// this thread reads the source and stores the parsed items in the order
/// the source gave them. At most 16 items per worker are in flight, and
/// no more are read once those hold 64 MiB, so memory does not grow with
/// the source; a source that is not read ahead
/// ([`Source::read_ahead`]) has one item in flight at a time. Each item's time budget
/// ([`IngestLimits::item_time_budget`]) starts when a worker starts
/// parsing it. When the store uses them
/// ([`ReportStore::uses_prepared_records`]), the worker also works out the
/// item's record rows ([`PreparedRecords`]), so that this thread only binds
/// them. A plain-XML file too large to hold ([`Item::stream`]) is
/// parsed on this thread as it is stored, and so is an item found to hold
/// more than [`HOLD_RECORDS`] records (a worker parses that far, then
/// leaves it): an item in flight holds a few MB at most. An item left in
/// its file (a compressed report or a mail, [`Item::in_file`]) is read
/// from the file by the worker and, when it holds more than that, again
/// as it is stored ([`ParsedItem::deferred`]): it is never held in memory,
/// nor copied for a parser. When there are worker threads the source is
/// asked to hand its files on unread ([`Source::read_on_workers`]): a
/// worker looks into each, reads it and parses it, so this thread only
/// lists them; a file found too large, or that cannot be read, is an
/// error of that item in its turn, as when the source read it.
///
/// When the source moves nothing ([`Source::moves_items`] is false), items
/// are committed in groups ([`ReportStore::begin_group`]): each item is
/// still all or nothing, and [`Source::finish`] is still called only after
/// the commit that holds the item.
pub fn run(
    source: &mut dyn Source,
    store: &mut dyn ReportStore,
    limits: &IngestLimits,
    progress: &mut dyn FnMut(&Summary),
) -> Result<Summary, IngestError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_WORKERS);
    run_with(
        source,
        store,
        limits,
        progress,
        workers,
        &|bytes, limits| ParsedItem::parse(bytes, limits, HOLD_RECORDS),
    )
}

/// How a worker parses an item (tests slow it down): `None` for an item
/// too large to hold, left to the store.
type ParseFn = dyn Fn(&[u8], &IngestLimits) -> Result<Option<ParsedItem>, ParseError> + Sync;

/// [`run`] with `workers` parsing threads (none: this thread parses each
/// item when its turn comes) and the parser given.
fn run_with(
    source: &mut dyn Source,
    store: &mut dyn ReportStore,
    limits: &IngestLimits,
    progress: &mut dyn FnMut(&Summary),
    workers: usize,
    parse: &ParseFn,
) -> Result<Summary, IngestError> {
    let window = IN_FLIGHT_PER_WORKER * workers.max(1);
    // Both channels hold at most `window` messages, as many as there can
    // be items in flight: no send ever waits.
    let (jobs, queue) = sync_channel::<Job>(window);
    let queue = Mutex::new(queue);
    let queue = &queue;
    // Asked once: the store's answer does not change during a run.
    let prepare = store.uses_prepared_records();
    std::thread::scope(move |scope| {
        let (done, results) = sync_channel::<Parsed>(window);
        let mut started = 0;
        for _ in 0..workers {
            let done = done.clone();
            let spawned = std::thread::Builder::new()
                .name("report-parser".to_owned())
                .spawn_scoped(scope, move || work(queue, &done, limits, parse, prepare));
            // Without a thread the items are parsed here, in turn.
            if spawned.is_ok() {
                started += 1;
            }
        }
        drop(done);
        if started > 0 {
            // The workers read the files too, not only this thread.
            source.read_on_workers();
        }
        let mut writer = Writer {
            source,
            store,
            limits,
            progress,
            parse,
            prepare,
            jobs: (started > 0).then_some(jobs),
            results,
            window,
            in_flight_bytes: 0,
            summary: Summary::default(),
            pending: Vec::new(),
            group: None,
            spent: Vec::new(),
        };
        // Returning drops the channels: the workers stop, and the scope
        // waits for them.
        writer.run()
    })
}

/// An item for a worker: its place in the source's order and its bytes,
/// or the file it is read from ([`Item::is_in_file`]) or to be looked
/// into first ([`Item::unread`]); and items stored since the last job,
/// for the worker to free.
struct Job {
    seq: u64,
    bytes: Vec<u8>,
    file: Option<PathBuf>,
    unread: Option<Unread>,
    spent: Vec<Held>,
}

/// What parsing an item gave: `Ok(None)` when it holds too many records
/// to hold; `Err` when its file could not be read.
type ParseResult = Result<Result<Option<Held>, ParseError>, IngestError>;

/// A worker's answer: the item's bytes back (or those read from its file),
/// what its file turned out to be when it was handed on unread, and what
/// it parsed to.
struct Parsed {
    seq: u64,
    bytes: Vec<u8>,
    looked: Option<Looked>,
    result: ParseResult,
}

/// What a file handed on unread ([`Item::unread`]) was found to be, read
/// by the rules of its source ([`open_unread`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Looked {
    /// A plain-XML report, read whole: the answer's bytes.
    Xml,
    /// A plain-XML report too large to hold ([`Item::stream`]).
    Stream,
    /// Anything else, left in its file ([`Item::is_in_file`]).
    InFile,
}

/// An item parsed whole, with its records prepared for the store when it
/// uses them ([`ReportStore::uses_prepared_records`]).
struct Held {
    item: ParsedItem,
    records: Option<PreparedRecords>,
}

impl Held {
    /// `item`, its records prepared when `prepare`.
    fn new(item: ParsedItem, prepare: bool) -> Held {
        Held {
            records: if prepare {
                PreparedRecords::of(&item)
            } else {
                None
            },
            item,
        }
    }
}

/// A worker: parses items from `queue` until it closes, or until the
/// writer no longer listens.
fn work(
    queue: &Mutex<Receiver<Job>>,
    done: &SyncSender<Parsed>,
    limits: &IngestLimits,
    parse: &ParseFn,
    prepare: bool,
) {
    loop {
        // The lock is held only while waiting for the next job.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // Freed here, not on the thread that stores: each holds its
        // records, every one a few allocations made on a worker.
        drop(job.spent);
        let answer = match (&job.file, &job.unread) {
            (Some(path), Some(unread)) => {
                let (bytes, looked, result) = parse_unread(path, unread, parse, limits, prepare);
                Parsed {
                    seq: job.seq,
                    bytes,
                    looked,
                    result,
                }
            }
            (Some(path), None) => Parsed {
                seq: job.seq,
                bytes: job.bytes,
                looked: None,
                result: parse_file(path, limits, prepare),
            },
            (None, _) => Parsed {
                seq: job.seq,
                result: Ok(parse_caught(parse, &job.bytes, limits, prepare)),
                bytes: job.bytes,
                looked: None,
            },
        };
        if done.send(answer).is_err() {
            return;
        }
    }
}

/// Parses one item, and prepares its records for the store when
/// `prepare` (the work the store's thread then does not do); a panic (a
/// bug in a parser) rejects that item and the batch goes on.
fn parse_caught(
    parse: &ParseFn,
    bytes: &[u8],
    limits: &IngestLimits,
    prepare: bool,
) -> Result<Option<Held>, ParseError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Ok(parse(bytes, limits)?.map(|item| Held::new(item, prepare)))
    }))
    .unwrap_or_else(|_| {
        Err(ParseError::Sink {
            source: "the report parsing thread stopped (a bug: it panicked)".into(),
        })
    })
}

/// Opens an item left in its file: the file, buffered, and its size.
fn open_item(path: &Path) -> Result<(std::io::BufReader<std::fs::File>, u64), IngestError> {
    let file = std::fs::File::open(path).map_err(|source| IngestError::Read {
        path: path.to_owned(),
        source,
    })?;
    buffered(file, path)
}

/// An item's file, open at its start (`path` names it in errors):
/// buffered, and its size.
fn buffered(
    file: std::fs::File,
    path: &Path,
) -> Result<(std::io::BufReader<std::fs::File>, u64), IngestError> {
    let len = file
        .metadata()
        .map_err(|source| IngestError::Read {
            path: path.to_owned(),
            source,
        })?
        .len();
    Ok((std::io::BufReader::with_capacity(64 << 10, file), len))
}

/// Reads a file handed on unread ([`Item::unread`]) as its source would
/// have ([`open_unread`]: its limits, its errors) and parses what it
/// holds: the bytes read (a plain-XML report read whole, else none),
/// what the file turned out to be (none when it could not be read) and
/// the parse. A plain-XML report too large to hold is not parsed here:
/// it is parsed as it is stored, as [`Item::stream`] says.
fn parse_unread(
    path: &Path,
    unread: &Unread,
    parse: &ParseFn,
    limits: &IngestLimits,
    prepare: bool,
) -> (Vec<u8>, Option<Looked>, ParseResult) {
    match open_unread(path, unread) {
        Err(e) => (Vec::new(), None, Err(e)),
        Ok(Opened::Xml(bytes)) => {
            let result = Ok(parse_caught(parse, &bytes, limits, prepare));
            (bytes, Some(Looked::Xml), result)
        }
        Ok(Opened::Stream) => (Vec::new(), Some(Looked::Stream), Ok(Ok(None))),
        Ok(Opened::InFile(file)) => {
            let result = match file {
                // Read from the file opened to look at it: no second open.
                Some(file) => buffered(file, path)
                    .and_then(|(mut input, len)| parse_input(&mut input, len, limits, prepare)),
                None => parse_file(path, limits, prepare),
            };
            (Vec::new(), Some(Looked::InFile), result)
        }
    }
}

/// Parses an item left in its file as it is read from there, holding at
/// most [`HOLD_RECORDS`] records (prepared for the store when `prepare`);
/// a panic rejects that item.
fn parse_file(path: &Path, limits: &IngestLimits, prepare: bool) -> ParseResult {
    let (mut input, len) = open_item(path)?;
    parse_input(&mut input, len, limits, prepare)
}

/// [`parse_file`] for the file opened: `len` bytes read from `input`.
fn parse_input(
    input: &mut std::io::BufReader<std::fs::File>,
    len: u64,
    limits: &IngestLimits,
    prepare: bool,
) -> ParseResult {
    Ok(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Ok(ParsedItem::parse_input(input, len, limits, HOLD_RECORDS)?
            .map(|item| Held::new(item, prepare)))
    }))
    .unwrap_or_else(|_| {
        Err(ParseError::Sink {
            source: "the report parsing thread stopped (a bug: it panicked)".into(),
        })
    }))
}

/// An item read and not yet stored.
struct Slot {
    item: Result<Item, IngestError>,
    state: State,
    /// What it counts against [`IN_FLIGHT_BYTES`].
    size: u64,
}

enum State {
    /// Stored as it is parsed, on the writing thread ([`Item::stream`]),
    /// or not an item at all (a read error).
    Here,
    /// With a worker.
    Parsing,
    /// `Ok(None)`: too large to hold, parsed again as it is stored.
    Parsed(Result<Option<Held>, ParseError>),
    /// Its file could not be read.
    Unreadable(IngestError),
}

impl State {
    fn of(result: ParseResult) -> Self {
        match result {
            Ok(parsed) => Self::Parsed(parsed),
            Err(e) => Self::Unreadable(e),
        }
    }

    /// The state of `item` once a worker (or this thread) parsed it, or
    /// read and parsed it when it was handed on unread: the item is then
    /// made what its source would have handed on, had it read the file
    /// itself, so that it is stored and finished as such.
    fn settle(
        item: &mut Item,
        bytes: Vec<u8>,
        looked: Option<Looked>,
        result: ParseResult,
    ) -> Self {
        item.bytes = bytes;
        match looked {
            None => Self::of(result),
            Some(looked) => {
                item.unread = None;
                if looked == Looked::Stream {
                    item.stream = true;
                    return Self::Here;
                }
                Self::of(result)
            }
        }
    }
}

/// The calling thread's side: reads, stores, commits and finishes.
struct Writer<'a, 'p> {
    source: &'a mut dyn Source,
    store: &'a mut dyn ReportStore,
    limits: &'a IngestLimits,
    progress: &'a mut dyn FnMut(&Summary),
    parse: &'p ParseFn,
    /// Whether parsed items have their records prepared for the store.
    prepare: bool,
    /// None when no worker thread could be started.
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Parsed>,
    /// Most items in flight.
    window: usize,
    /// Bytes of the items in flight ([`IN_FLIGHT_BYTES`]).
    in_flight_bytes: u64,
    summary: Summary,
    /// Items in the open group: finished once it is committed.
    pending: Vec<(Item, Outcome)>,
    group: Option<std::time::Instant>,
    /// Items stored, handed to a worker with the next job to be freed
    /// there (freeing an item's records is a tenth of the storing
    /// thread's time otherwise). At most the few stored since the last
    /// job; freed here once the source has ended.
    spent: Vec<Held>,
}

impl Writer<'_, '_> {
    fn run(&mut self) -> Result<Summary, IngestError> {
        // Items read and not yet stored, in the source's order; the first
        // one's place in that order is `head`.
        let mut inflight: VecDeque<Slot> = VecDeque::with_capacity(self.window);
        let mut head: u64 = 0;
        let mut ended = false;
        let ahead = if self.source.read_ahead() {
            self.window
        } else {
            1
        };
        loop {
            // Read ahead, so that the workers always have items to parse.
            while !ended
                && inflight.len() < ahead
                && (inflight.is_empty() || self.in_flight_bytes < IN_FLIGHT_BYTES)
            {
                match self.source.next_item() {
                    Some(next) => {
                        let seq = head + inflight.len() as u64;
                        let slot = self.dispatch(seq, next);
                        self.in_flight_bytes += slot.size;
                        inflight.push_back(slot);
                    }
                    None => ended = true,
                }
            }
            // Wait for the first item's parse; later ones go on meanwhile.
            while matches!(
                inflight.front(),
                Some(Slot {
                    state: State::Parsing,
                    ..
                })
            ) {
                let Ok(p) = self.results.recv() else {
                    return Err(IngestError::ParserStopped);
                };
                let at = usize::try_from(p.seq - head).unwrap_or(usize::MAX);
                if let Some(Slot {
                    item: Ok(item),
                    state,
                    ..
                }) = inflight.get_mut(at)
                {
                    *state = State::settle(item, p.bytes, p.looked, p.result);
                }
            }
            let Some(slot) = inflight.pop_front() else {
                break;
            };
            self.in_flight_bytes -= slot.size;
            head += 1;
            self.handle(slot)?;
            if ended || self.jobs.is_none() {
                self.spent.clear();
            }
        }
        if self.group.is_some() {
            self.store.commit_group()?;
            self.finish_pending();
            (self.progress)(&self.summary);
        }
        Ok(std::mem::take(&mut self.summary))
    }

    /// Hands a new item to a worker (or parses it here when there is none).
    fn dispatch(&mut self, seq: u64, next: Result<Item, IngestError>) -> Slot {
        let mut item = match next {
            Ok(item) if !(item.stream && item.path.is_some()) => item,
            other => {
                return Slot {
                    item: other,
                    state: State::Here,
                    size: 0,
                };
            }
        };
        // Held in memory, or read by a worker (as much as the file holds,
        // at most: a compressed report is read as it is parsed).
        let size = item.bytes.len() as u64 + item.unread.map_or(0, |u| u.size);
        let file = (item.is_in_file() || item.unread.is_some())
            .then(|| item.path.clone())
            .flatten();
        if let Some(jobs) = &self.jobs {
            let job = Job {
                seq,
                bytes: std::mem::take(&mut item.bytes),
                file: file.clone(),
                unread: item.unread,
                spent: std::mem::take(&mut self.spent),
            };
            match jobs.send(job) {
                Ok(()) => {
                    return Slot {
                        item: Ok(item),
                        state: State::Parsing,
                        size,
                    };
                }
                // Every worker is gone: parse here from now on.
                Err(e) => {
                    item.bytes = e.0.bytes;
                    self.jobs = None;
                }
            }
        }
        let (bytes, looked, result) = match (&file, &item.unread) {
            (Some(path), Some(unread)) => {
                parse_unread(path, unread, self.parse, self.limits, self.prepare)
            }
            (Some(path), None) => (
                std::mem::take(&mut item.bytes),
                None,
                parse_file(path, self.limits, self.prepare),
            ),
            (None, _) => {
                let result = Ok(parse_caught(
                    self.parse,
                    &item.bytes,
                    self.limits,
                    self.prepare,
                ));
                (std::mem::take(&mut item.bytes), None, result)
            }
        };
        let state = State::settle(&mut item, bytes, looked, result);
        Slot {
            item: Ok(item),
            state,
            size,
        }
    }

    /// Stores one item, in its turn, and finishes it once committed.
    fn handle(&mut self, slot: Slot) -> Result<(), IngestError> {
        let summary = &mut self.summary;
        summary.items += 1;
        let item = match slot.item {
            Ok(item) => item,
            Err(e) => {
                summary.errors.push(Problem {
                    origin: error_origin(&e),
                    reason: e.to_string(),
                });
                (self.progress)(summary);
                return Ok(());
            }
        };
        if !self.source.moves_items() && self.group.is_none() && self.store.begin_group()? {
            self.group = Some(std::time::Instant::now());
        }
        let stored = match slot.state {
            State::Parsed(Ok(Some(held))) => {
                let stored = self
                    .store
                    .store_prepared(&item.origin, &held.item, held.records.as_ref())
                    .map(Ok);
                self.spent.push(held);
                stored
            }
            state => store_one(self.store, &item, state, self.limits),
        };
        let stored = match stored {
            Ok(Ok(stored)) => stored,
            Ok(Err(unreadable)) => {
                self.summary.errors.push(Problem {
                    origin: item.origin.clone(),
                    reason: unreadable.to_string(),
                });
                (self.progress)(&self.summary);
                return Ok(());
            }
            Err(e) => {
                // What the group holds before the failed item is kept.
                if self.group.is_some() && self.store.commit_group().is_ok() {
                    self.finish_pending();
                }
                return Err(e.into());
            }
        };
        let summary = &mut self.summary;
        let outcome = match stored {
            Ok(found) => {
                let mut new = false;
                for f in &found {
                    if f.duplicate {
                        summary.duplicates += 1;
                        continue;
                    }
                    new = true;
                    match f.kind {
                        ReportKind::Aggregate => {
                            summary.reports += 1;
                            summary.records += f.records;
                        }
                        ReportKind::Failure => summary.failure_reports += 1,
                        ReportKind::Tls => summary.tls_reports += 1,
                    }
                }
                if new {
                    Outcome::Stored
                } else {
                    Outcome::Duplicate
                }
            }
            Err(e) => {
                let reason = e.to_string();
                summary.invalid.push(Problem {
                    origin: item.origin.clone(),
                    reason: reason.clone(),
                });
                Outcome::Invalid { reason }
            }
        };
        self.pending.push((item, outcome));
        match self.group {
            Some(began) if self.pending.len() < GROUP_ITEMS && began.elapsed() < GROUP_TIME => {}
            Some(_) => {
                self.store.commit_group()?;
                self.group = None;
                self.finish_pending();
            }
            None => self.finish_pending(),
        }
        (self.progress)(&self.summary);
        Ok(())
    }

    /// Calls [`Source::finish`] for every item whose data is committed.
    fn finish_pending(&mut self) {
        for (item, outcome) in self.pending.drain(..) {
            if let Err(e) = self.source.finish(&item, &outcome) {
                self.summary.errors.push(Problem {
                    origin: item.origin.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
}

/// What storing one item gave: its reports, or why it was rejected.
type Stored = Result<Vec<Found>, ParseError>;

/// Stores one item; `Ok(Err(_))` when its file can no longer be opened.
fn store_one(
    store: &mut dyn ReportStore,
    item: &Item,
    state: State,
    limits: &IngestLimits,
) -> Result<Result<Stored, IngestError>, StoreError> {
    match (state, &item.path) {
        (State::Parsed(Ok(Some(held))), _) => store
            .store_prepared(&item.origin, &held.item, held.records.as_ref())
            .map(Ok),
        // Rejected by the parser: the store never sees it.
        (State::Parsed(Err(e)), _) => Ok(Ok(Err(e))),
        (State::Unreadable(e), _) => Ok(Err(e)),
        // Left in its file: read from there again as it is stored, its
        // records going straight into the store.
        (_, Some(path)) if item.is_in_file() => match open_item(path) {
            Ok((input, len)) => {
                let deferred = ParsedItem::deferred(Box::new(input), len, limits);
                store.store_parsed(&item.origin, &deferred).map(Ok)
            }
            Err(e) => Ok(Err(e)),
        },
        (_, Some(path)) if item.stream => match std::fs::File::open(path) {
            Ok(mut file) => store
                .ingest_xml_stream(&item.origin, &mut file, limits)
                .map(Ok),
            Err(source) => Ok(Err(IngestError::Read {
                path: path.clone(),
                source,
            })),
        },
        _ => store.ingest_item(&item.origin, &item.bytes, limits).map(Ok),
    }
}

fn error_origin(e: &IngestError) -> String {
    match e {
        IngestError::Read { path, .. }
        | IngestError::TooLarge { path, .. }
        | IngestError::NotMaildir { path } => path.display().to_string(),
        IngestError::Move { from, .. } => from.display().to_string(),
        IngestError::Store(_) | IngestError::ParserStopped => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::reports::ingest::FileSource;
    use crate::reports::store::{Pruned, ReportDetail, ReportRow, SqliteStore, Table};

    fn report(id: &str) -> Vec<u8> {
        report_n(id, 1)
    }

    /// An aggregate report of `n` records.
    fn report_n(id: &str, n: usize) -> Vec<u8> {
        crate::parse::test_report(id, n, "").into_bytes()
    }

    fn origins(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("item-{i}")).collect()
    }

    /// What the fake source and the fake store saw, in order.
    #[derive(Default)]
    struct Log {
        /// Items stored, committed or not.
        stored: Vec<String>,
        /// Items the store was given to parse itself.
        whole: Vec<String>,
        /// Items stored in the open group, not yet committed.
        open: Vec<String>,
        committed: Vec<String>,
        finished: Vec<(String, Outcome)>,
        /// Items finished while their data, or an earlier item's, was not
        /// committed.
        early: Vec<String>,
        read: usize,
        max_in_flight: usize,
    }

    type Shared = Rc<RefCell<Log>>;

    struct FakeSource {
        items: VecDeque<Item>,
        moves: bool,
        ahead: bool,
        log: Shared,
    }

    impl FakeSource {
        /// Items `item-0`, `item-1`…, each a report of its own, but for the
        /// ones `body` gives other bytes.
        fn new(
            n: usize,
            moves: bool,
            log: &Shared,
            body: impl Fn(usize) -> Option<Vec<u8>>,
        ) -> Self {
            let items = (0..n)
                .map(|i| Item {
                    origin: format!("item-{i}"),
                    bytes: body(i).unwrap_or_else(|| report(&format!("r{i}"))),
                    path: None,
                    stream: false,
                    unread: None,
                })
                .collect();
            Self {
                items,
                moves,
                ahead: true,
                log: log.clone(),
            }
        }
    }

    impl Source for FakeSource {
        fn next_item(&mut self) -> Option<Result<Item, IngestError>> {
            let item = self.items.pop_front()?;
            let mut log = self.log.borrow_mut();
            log.read += 1;
            let in_flight = log.read - log.finished.len();
            log.max_in_flight = log.max_in_flight.max(in_flight);
            Some(Ok(item))
        }
        fn finish(&mut self, item: &Item, outcome: &Outcome) -> Result<(), IngestError> {
            let mut log = self.log.borrow_mut();
            let stored = log.stored.contains(&item.origin);
            if !log.open.is_empty() || (stored && !log.committed.contains(&item.origin)) {
                log.early.push(item.origin.clone());
            }
            // The bytes given to a worker are back.
            assert!(!item.bytes.is_empty(), "{}", item.origin);
            log.finished.push((item.origin.clone(), outcome.clone()));
            Ok(())
        }
        fn moves_items(&self) -> bool {
            self.moves
        }
        fn read_ahead(&self) -> bool {
            self.ahead
        }
    }

    /// A store that keeps nothing but the order of events, and fails on
    /// the item named `fail_at`.
    struct FakeStore {
        log: Shared,
        fail_at: Option<String>,
        in_group: bool,
    }

    impl FakeStore {
        fn new(log: &Shared) -> Self {
            Self {
                log: log.clone(),
                fail_at: None,
                in_group: false,
            }
        }
    }

    impl ReportStore for FakeStore {
        fn ingest_item(
            &mut self,
            origin: &str,
            bytes: &[u8],
            limits: &IngestLimits,
        ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
            self.log.borrow_mut().whole.push(origin.to_owned());
            let mut sink = crate::reports::parse::CollectSink::default();
            let found = crate::reports::parse::parse_item(bytes, limits, &mut sink);
            let mut log = self.log.borrow_mut();
            log.stored.push(origin.to_owned());
            if self.in_group {
                log.open.push(origin.to_owned());
            } else {
                log.committed.push(origin.to_owned());
            }
            Ok(found)
        }
        fn store_parsed(
            &mut self,
            origin: &str,
            item: &ParsedItem,
        ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
            if self.fail_at.as_deref() == Some(origin) {
                return Err(StoreError::Backend {
                    source: "disk full".into(),
                });
            }
            let mut log = self.log.borrow_mut();
            log.stored.push(origin.to_owned());
            if self.in_group {
                log.open.push(origin.to_owned());
            } else {
                log.committed.push(origin.to_owned());
            }
            Ok(Ok(item.found().to_vec()))
        }
        fn begin_group(&mut self) -> Result<bool, StoreError> {
            self.in_group = true;
            Ok(true)
        }
        fn commit_group(&mut self) -> Result<(), StoreError> {
            let mut log = self.log.borrow_mut();
            let open = std::mem::take(&mut log.open);
            log.committed.extend(open);
            self.in_group = false;
            Ok(())
        }
        fn list(&self, _: Option<&str>) -> Result<Vec<ReportRow>, StoreError> {
            Ok(Vec::new())
        }
        fn show(&self, _: ReportKind, _: i64) -> Result<Option<ReportDetail>, StoreError> {
            Ok(None)
        }
        fn delete(&mut self, _: &[(ReportKind, i64)]) -> Result<(), StoreError> {
            Ok(())
        }
        fn prune(&mut self, _: i64, _: bool) -> Result<Pruned, StoreError> {
            Ok(Pruned::default())
        }
    }

    /// Parses after a delay of 0-2 ms that differs from item to item
    /// (pseudo-random from its bytes): later items often finish first.
    fn slow_parse(bytes: &[u8], limits: &IngestLimits) -> Result<Option<ParsedItem>, ParseError> {
        let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        std::thread::sleep(std::time::Duration::from_micros(h % 2_000));
        ParsedItem::parse(bytes, limits, HOLD_RECORDS)
    }

    fn ingest(
        source: &mut FakeSource,
        store: &mut dyn ReportStore,
        workers: usize,
    ) -> Result<Summary, IngestError> {
        let limits = IngestLimits::default();
        run_with(source, store, &limits, &mut |_| {}, workers, &slow_parse)
    }

    fn finished(log: &Shared) -> Vec<String> {
        log.borrow()
            .finished
            .iter()
            .map(|(o, _)| o.clone())
            .collect()
    }

    #[test]
    fn items_are_stored_and_finished_in_the_sources_order() {
        for moves in [true, false] {
            let log = Shared::default();
            let mut source = FakeSource::new(120, moves, &log, |_| None);
            let summary = ingest(&mut source, &mut FakeStore::new(&log), 4).expect("runs");
            assert_eq!(summary.items, 120);
            assert_eq!(summary.reports, 120);
            assert_eq!(summary.records, 120);
            assert_eq!(log.borrow().stored, origins(120), "moves: {moves}");
            assert_eq!(finished(&log), origins(120), "moves: {moves}");
        }
    }

    #[test]
    fn an_item_is_finished_only_after_the_commit_that_holds_it() {
        // More items than one group holds: groups are committed during the
        // run and at its end.
        for moves in [true, false] {
            let log = Shared::default();
            let n = GROUP_ITEMS * 2 + 3;
            let mut source = FakeSource::new(n, moves, &log, |i| {
                (i % 50 == 7).then(|| b"not a report".to_vec())
            });
            ingest(&mut source, &mut FakeStore::new(&log), 3).expect("runs");
            let log = log.borrow();
            assert_eq!(log.finished.len(), n);
            assert!(log.early.is_empty(), "finished early: {:?}", log.early);
            assert!(log.open.is_empty());
            assert_eq!(log.committed, log.stored);
        }
    }

    #[test]
    fn a_bad_item_is_set_aside_and_its_neighbours_are_stored() {
        let log = Shared::default();
        let mut source = FakeSource::new(20, true, &log, |i| {
            (i == 7).then(|| b"<feedback><report_metadata>".to_vec())
        });
        let summary = ingest(&mut source, &mut FakeStore::new(&log), 4).expect("runs");
        assert_eq!(summary.items, 20);
        assert_eq!(summary.reports, 19);
        assert_eq!(summary.invalid.len(), 1);
        assert_eq!(summary.invalid[0].origin, "item-7");
        let mut want = origins(20);
        want.remove(7);
        assert_eq!(log.borrow().stored, want);
        let log = log.borrow();
        for (i, (origin, outcome)) in log.finished.iter().enumerate() {
            assert_eq!(origin, &format!("item-{i}"));
            if i == 7 {
                assert!(matches!(outcome, Outcome::Invalid { .. }), "{outcome:?}");
            } else {
                assert_eq!(outcome, &Outcome::Stored, "{origin}");
            }
        }
    }

    #[test]
    fn a_panicking_parser_rejects_only_its_item() {
        fn panicky(bytes: &[u8], limits: &IngestLimits) -> Result<Option<ParsedItem>, ParseError> {
            assert!(bytes != b"boom", "a parser bug");
            ParsedItem::parse(bytes, limits, HOLD_RECORDS)
        }
        let log = Shared::default();
        let mut source = FakeSource::new(10, true, &log, |i| (i == 3).then(|| b"boom".to_vec()));
        let limits = IngestLimits::default();
        let mut store = FakeStore::new(&log);
        let summary =
            run_with(&mut source, &mut store, &limits, &mut |_| {}, 2, &panicky).expect("runs");
        assert_eq!(summary.reports, 9);
        assert_eq!(summary.invalid.len(), 1);
        assert_eq!(summary.invalid[0].origin, "item-3");
        assert!(summary.invalid[0].reason.contains("panicked"));
        assert_eq!(finished(&log), origins(10));
    }

    #[test]
    fn a_store_error_stops_the_run_and_keeps_what_was_committed() {
        for moves in [true, false] {
            let log = Shared::default();
            let mut source = FakeSource::new(30, moves, &log, |_| None);
            let mut store = FakeStore::new(&log);
            store.fail_at = Some("item-10".to_owned());
            let err = ingest(&mut source, &mut store, 4).expect_err("stops");
            assert!(err.to_string().contains("disk full"), "{err}");
            let log = log.borrow();
            // Items before the failed one are committed and finished;
            // the failed one and every later one are not finished.
            assert_eq!(log.committed, origins(10), "moves: {moves}");
            let done: Vec<_> = log.finished.iter().map(|(o, _)| o.clone()).collect();
            assert_eq!(done, origins(10), "moves: {moves}");
            assert!(log.early.is_empty());
        }
    }

    #[test]
    fn items_in_flight_stay_bounded() {
        for workers in [1, 3] {
            let log = Shared::default();
            let mut source = FakeSource::new(200, true, &log, |_| None);
            ingest(&mut source, &mut FakeStore::new(&log), workers).expect("runs");
            let log = log.borrow();
            assert_eq!(log.finished.len(), 200);
            assert!(
                log.max_in_flight <= IN_FLIGHT_PER_WORKER * workers,
                "{} items in flight with {workers} workers",
                log.max_in_flight
            );
            // Reading ahead: the workers had more than one item at a time.
            assert!(log.max_in_flight > 1, "{}", log.max_in_flight);
        }
    }

    /// Large items fill the window by their bytes, not their number: once
    /// those in flight hold `IN_FLIGHT_BYTES`, no more are read.
    #[test]
    fn items_in_flight_stay_bounded_in_bytes() {
        let log = Shared::default();
        let size = (IN_FLIGHT_BYTES / 3 - 1000) as usize;
        let mut source = FakeSource::new(30, true, &log, |i| {
            let mut r = report(&format!("r{i}"));
            r.resize(size, b' ');
            Some(r)
        });
        let summary = ingest(&mut source, &mut FakeStore::new(&log), 3).expect("runs");
        assert_eq!(summary.reports, 30);
        let log = log.borrow();
        // Three fit under the budget, the fourth goes past it.
        assert_eq!(log.max_in_flight, 4, "{}", log.max_in_flight);
    }

    #[test]
    fn without_worker_threads_items_are_parsed_in_turn() {
        let log = Shared::default();
        let mut source = FakeSource::new(10, true, &log, |i| (i == 4).then(|| b"x".to_vec()));
        let summary = ingest(&mut source, &mut FakeStore::new(&log), 0).expect("runs");
        assert_eq!(summary.reports, 9);
        assert_eq!(summary.invalid.len(), 1);
        assert_eq!(finished(&log), origins(10));
    }

    #[test]
    fn parsed_items_reach_sqlite_once_and_then_as_duplicates() {
        let mut store = SqliteStore::open_in_memory().expect("store");
        for (run, moves) in [(0, false), (1, true)] {
            let log = Shared::default();
            let mut source = FakeSource::new(40, moves, &log, |i| {
                (i == 5).then(|| b"not a report".to_vec())
            });
            let summary = ingest(&mut source, &mut store, 3).expect("runs");
            assert_eq!(summary.invalid.len(), 1, "run {run}");
            if run == 0 {
                assert_eq!((summary.reports, summary.duplicates), (39, 0));
            } else {
                assert_eq!((summary.reports, summary.duplicates), (0, 39));
                let outcomes: Vec<_> = log
                    .borrow()
                    .finished
                    .iter()
                    .map(|(_, o)| o.clone())
                    .collect();
                assert_eq!(outcomes[0], Outcome::Duplicate);
            }
            assert_eq!(finished(&log), origins(40));
        }
        assert_eq!(store.count(Table::Reports).expect("count"), 39);
        assert_eq!(store.count(Table::Records).expect("count"), 39);
    }

    #[test]
    fn an_item_too_large_to_hold_is_parsed_as_it_is_stored_in_its_turn() {
        fn hold_two(bytes: &[u8], limits: &IngestLimits) -> Result<Option<ParsedItem>, ParseError> {
            slow_parse(bytes, limits)?;
            ParsedItem::parse(bytes, limits, 2)
        }
        for moves in [true, false] {
            let log = Shared::default();
            // Every fourth item has three records, one more than held.
            let mut source = FakeSource::new(24, moves, &log, |i| {
                (i % 4 == 1).then(|| report_n(&format!("big{i}"), 3))
            });
            let limits = IngestLimits::default();
            let mut store = FakeStore::new(&log);
            let summary = run_with(&mut source, &mut store, &limits, &mut |_| {}, 3, &hold_two)
                .expect("runs");
            assert_eq!(summary.reports, 24);
            assert_eq!(summary.records, 18 + 6 * 3);
            let seen = log.borrow();
            let big: Vec<_> = (0..24)
                .filter(|i| i % 4 == 1)
                .map(|i| format!("item-{i}"))
                .collect();
            assert_eq!(seen.whole, big, "moves: {moves}");
            assert_eq!(seen.stored, origins(24), "moves: {moves}");
            assert!(seen.early.is_empty());
            drop(seen);
            assert_eq!(finished(&log), origins(24), "moves: {moves}");
        }
    }

    #[test]
    fn a_source_not_read_ahead_gives_its_next_item_after_the_last_is_finished() {
        let log = Shared::default();
        let mut source = FakeSource::new(30, true, &log, |_| None);
        source.ahead = false;
        let summary = ingest(&mut source, &mut FakeStore::new(&log), 4).expect("runs");
        assert_eq!(summary.reports, 30);
        let seen = log.borrow();
        assert_eq!(seen.max_in_flight, 1);
        assert!(seen.early.is_empty());
        drop(seen);
        assert_eq!(finished(&log), origins(30));
    }

    /// A directory of files: plain-XML reports, gzip, one over the
    /// plain-XML limit of 8192 bytes, one that is no report.
    fn report_files(dir: &Path) {
        use std::io::Write as _;
        for i in 0..12 {
            let path = dir.join(format!("r{i:02}.xml"));
            if i % 3 == 0 {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&report(&format!("r{i}"))).expect("gzip");
                let gz = gz.finish().expect("gzip");
                std::fs::write(path.with_extension("xml.gz"), gz).expect("write");
            } else {
                std::fs::write(path, report_n(&format!("r{i}"), 1 + i)).expect("write");
            }
        }
        let big = report_n("big", 100);
        assert!(big.len() > 8192);
        std::fs::write(dir.join("s-big.xml"), big).expect("write");
        std::fs::write(dir.join("t-junk.txt"), b"no report").expect("write");
    }

    /// A file source over `dir` that removes the file named `gone` once
    /// it has handed it on.
    struct Vanishing {
        files: FileSource,
        gone: &'static str,
    }

    impl Source for Vanishing {
        fn next_item(&mut self) -> Option<Result<Item, IngestError>> {
            let next = self.files.next_item();
            if let Some(Ok(Item { path: Some(p), .. })) = &next
                && p.ends_with(self.gone)
            {
                std::fs::remove_file(p).expect("rm");
            }
            next
        }
        fn finish(&mut self, item: &Item, outcome: &Outcome) -> Result<(), IngestError> {
            self.files.finish(item, outcome)
        }
        fn moves_items(&self) -> bool {
            self.files.moves_items()
        }
        fn read_on_workers(&mut self) {
            self.files.read_on_workers();
        }
    }

    fn run_files(source: &mut dyn Source, workers: usize) -> (Summary, i64) {
        let mut store = SqliteStore::open_in_memory().expect("store");
        let limits = IngestLimits::default();
        let summary = run_with(
            source,
            &mut store,
            &limits,
            &mut |_| {},
            workers,
            &slow_parse,
        )
        .expect("runs");
        (summary, store.count(Table::Records).expect("count"))
    }

    #[test]
    fn files_read_by_the_workers_are_stored_as_when_read_by_the_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        report_files(dir.path());
        let files = || FileSource::new([dir.path().to_owned()], 1 << 20).with_xml_limit(8192);
        // Without worker threads the source reads its files itself.
        let (by_source, rows) = run_files(&mut files(), 0);
        let (by_workers, rows_by_workers) = run_files(&mut files(), 3);
        assert_eq!(by_source, by_workers);
        assert_eq!(rows, rows_by_workers);
        assert_eq!((by_source.items, by_source.reports), (14, 12));
        // Four gzip reports of one record, eight plain ones of 1 + i.
        assert_eq!(
            by_source.records,
            4 + [2, 3, 5, 6, 8, 9, 11, 12].iter().sum::<u64>()
        );
        let big = dir.path().join("s-big.xml");
        let too_large = Problem {
            origin: big.display().to_string(),
            reason: format!(
                "{} is {} bytes, more than the limit of 8192",
                big.display(),
                std::fs::metadata(&big).expect("stat").len()
            ),
        };
        assert_eq!(by_workers.errors, vec![too_large]);
        assert_eq!(by_workers.invalid.len(), 1);
        assert!(by_workers.invalid[0].origin.ends_with("t-junk.txt"));
    }

    #[test]
    fn a_file_the_workers_cannot_read_is_set_aside_and_the_batch_goes_on() {
        for (workers, gone) in [(3, "r04.xml"), (3, "r06.xml.gz"), (0, "r04.xml")] {
            let dir = tempfile::tempdir().expect("tempdir");
            report_files(dir.path());
            let mut source = Vanishing {
                files: FileSource::new([dir.path().to_owned()], 1 << 20).with_xml_limit(8192),
                gone,
            };
            let (summary, _) = run_files(&mut source, workers);
            assert_eq!(summary.items, 14);
            let path = dir.path().join(gone);
            if workers == 0 {
                // Read by the source before it was removed: stored.
                assert_eq!((summary.reports, summary.errors.len()), (12, 1));
                continue;
            }
            // Handed on unread, and gone when a worker came to read it.
            assert_eq!(summary.reports, 11, "{gone}: {summary:?}");
            assert_eq!(summary.errors.len(), 2, "{summary:?}");
            let err = &summary.errors[0];
            assert_eq!(err.origin, path.display().to_string());
            assert!(
                err.reason
                    .starts_with(&format!("cannot read {}: ", path.display())),
                "{err:?}"
            );
            assert!(summary.errors[1].reason.contains("more than the limit"));
        }
    }
}
