//! The SQLite report store: schema, migrations and writes for DMARC
//! aggregate, DMARC failure and SMTP TLS reports (the PostgreSQL dialect of
//! the same lives in `reports::pgstore`; the read queries of both in
//! `reports::rows` and, for the dashboards, `reports::dashq`).
//!
//! This module holds the types both stores share: the [`ReportStore`]
//! trait, the row types with the JSON shape of `reports list`/`show`
//! ([`ReportRow`], [`ReportDetails`]), the one error type of both stores
//! ([`StoreError`], in `error`), and the report ids the CLI prints and
//! accepts ([`display_id`], [`parse_report_id`]). For SQLite it holds
//! opening, `reports delete` and `reports prune` (retention; the
//! dashboards' rollups are kept in the same transaction by
//! `reports::dashq`, which owns them); its parts are
//! `schema` (migrations), `write` (one transaction per item, the
//! parsing thread), `prepare` (an item's `records` rows worked out on
//! the thread that parsed it, [`PreparedRecords`]) and `checkpoint` (the
//! WAL checkpointed on a thread of its own while groups of items are
//! written). Every sum of counts saturates at `i64::MAX` (the
//! `sqlite_sum!` of `reports::dashq`).
//!
//! Owns the database file and everything in it. Callers see the
//! [`ReportStore`] trait and plain row structs, so another backend
//! (PostgreSQL) can be added without touching parsing or dashboards.
//! Leaves parsing to `reports::parse`, sources to `reports::ingest`, and
//! shaping the rows it reads to `reports::rows`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};
use serde::Serialize;

mod checkpoint;
mod error;
mod prepare;
mod schema;
mod write;

use checkpoint::Checkpointer;
pub use error::{StoreError, StoreName};
pub use prepare::PreparedRecords;
#[cfg(feature = "postgres")]
pub(crate) use prepare::RowValues;
use schema::MIGRATIONS;
pub use schema::SCHEMA_VERSION;
use write::{ParserThread, pipelined};

use super::IngestLimits;
use super::dashq::{Arg, Gone};
use super::parse::{
    self, AggregateHeader, AggregateSummary, AggregateVisitor, FailureReport, Found, ParseError,
    ParsedItem, Record, ReportKind, ReportSink, SinkError, TlsReport,
};
use super::rows;
pub use super::rows::{ChecklistQueries, FailingSource, Volume};

/// Default database file name.
pub const DEFAULT_DB: &str = "mailauth.db";

/// Page size of a new database file, in bytes (SQLite's default: 4,096).
/// Ingest appends rows: with 16 KiB pages SQLite writes a quarter of the
/// WAL frames and copies a quarter of the pages at each checkpoint, each
/// one a system call and a page-cache lookup, for the same bytes
/// (`BENCHMARKS.md`). Existing stores keep the size they were made with.
pub const PAGE_SIZE: u32 = 16_384;

/// Temporary storage while a group of items is written
/// ([`ReportStore::begin_group`]): the savepoint journals of the items
/// parsed as they are stored stay in memory, bounded by the pages one
/// item changes.
const GROUP_TEMP_STORE: &str = "PRAGMA temp_store = MEMORY;";
/// Temporary storage otherwise: SQLite's default (files, cached).
const DEFAULT_TEMP_STORE: &str = "PRAGMA temp_store = DEFAULT;";

fn q(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

/// One line of `reports list`.
///
/// In JSON, `id` is the id as `list` prints it and `show`/`delete` accept
/// it (`12`, `tls:3`, `failure:5`; see [`ReportRow::display_id`]), and the
/// number of records is `record_count` (a detail's `records` is the list
/// of records itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub kind: ReportKind,
    pub id: i64,
    pub org: String,
    pub report_id: String,
    pub domain: String,
    /// RFC 3339 UTC (`2024-12-03T00:00:00Z`), see [`rfc3339_secs`] and
    /// [`rfc3339_text`].
    pub begin: String,
    pub end: String,
    /// Records (aggregate), policies (TLS), 1 (failure).
    pub records: i64,
    /// Messages (aggregate sum of counts), sessions (TLS), 1 (failure).
    pub messages: i64,
}

impl ReportRow {
    /// The id as `reports list` prints it and `reports show`/`delete`
    /// accept it: the number alone for aggregate reports, `tls:N` and
    /// `failure:N` otherwise.
    pub fn display_id(&self) -> String {
        display_id(self.kind, self.id)
    }
}

/// A report time as every command shows it: RFC 3339 UTC. Seconds out of
/// the years 0001–9999 are shown as the number, not wrapped.
pub fn rfc3339_secs(secs: i64) -> String {
    if (-62_135_596_800..=253_402_300_799).contains(&secs) {
        crate::clock::format_time(secs)
    } else {
        secs.to_string()
    }
}

/// A time a report wrote as text, in RFC 3339 UTC: failure reports carry
/// an RFC 5322 `Arrival-Date` (RFC 6591 §3.1), TLS reports RFC 3339 with
/// any offset (RFC 8460 §4.4). Text that is neither is kept as written.
pub fn rfc3339_text(text: &str) -> String {
    let t = text.trim();
    if let Ok(ts) = crate::clock::Timestamp::parse(t) {
        return rfc3339_secs(ts.0);
    }
    match crate::inspect::received::parse_date(t) {
        Some(secs) => rfc3339_secs(secs),
        None => text.to_string(),
    }
}

/// See [`ReportRow::display_id`].
pub fn display_id(kind: ReportKind, id: i64) -> String {
    match kind {
        ReportKind::Aggregate => id.to_string(),
        k => format!("{}:{id}", k.as_str()),
    }
}

/// A report id given on the command line that is none of the forms
/// [`ReportRow::display_id`] prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid report id {given:?}: use the id `mailauth reports list` prints: a number (aggregate report, e.g. `12`), `tls:N`, `failure:N` or `aggregate:N`"
)]
pub struct ReportIdError {
    pub given: String,
}

/// Parses an id as [`ReportRow::display_id`] prints it (`aggregate:N` is
/// accepted too). Ids are positive.
pub fn parse_report_id(s: &str) -> Result<(ReportKind, i64), ReportIdError> {
    let err = || ReportIdError {
        given: s.to_owned(),
    };
    let (kind, id) = match s.split_once(':') {
        Some(("aggregate", id)) => (ReportKind::Aggregate, id),
        Some(("tls", id)) => (ReportKind::Tls, id),
        Some(("failure", id)) => (ReportKind::Failure, id),
        Some(_) => return Err(err()),
        None => (ReportKind::Aggregate, s),
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    match id.parse::<i64>() {
        Ok(n) if n > 0 => Ok((kind, n)),
        _ => Err(err()),
    }
}

// `ReportRow` as JSON. Serialising goes through this type, so its derived
// schema is the row's (`mailauth schema --output reports-list`).
/// One stored report, as `reports list` prints it; times in RFC 3339 UTC.
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(rename = "ReportRow")]
struct ReportRowJson<'a> {
    /// `12`, `tls:3`, `failure:5`: what `reports show` accepts.
    id: String,
    kind: ReportKind,
    org: &'a str,
    report_id: &'a str,
    domain: &'a str,
    #[schemars(with = "crate::output::Rfc3339")]
    begin: &'a str,
    #[schemars(with = "crate::output::Rfc3339")]
    end: &'a str,
    /// Records (aggregate), policies (TLS), 1 (failure).
    record_count: i64,
    /// Messages (aggregate sum of counts), sessions (TLS), 1 (failure).
    messages: i64,
}

impl Serialize for ReportRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ReportRowJson {
            id: self.display_id(),
            kind: self.kind,
            org: &self.org,
            report_id: &self.report_id,
            domain: &self.domain,
            begin: &self.begin,
            end: &self.end,
            record_count: self.records,
            messages: self.messages,
        }
        .serialize(s)
    }
}

impl schemars::JsonSchema for ReportRow {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        ReportRowJson::schema_name()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ReportRowJson::json_schema(g)
    }
}

/// One stored aggregate record, as `reports show` prints it.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Serialize)]
pub struct RecordRow {
    pub source_ip: String,
    pub count: i64,
    pub disposition: String,
    pub dkim_aligned: Option<String>,
    pub spf_aligned: Option<String>,
    pub header_from: String,
    pub envelope_from: Option<String>,
    pub envelope_to: Option<String>,
    pub reasons: serde_json::Value,
    pub dkim_results: serde_json::Value,
    pub spf_results: serde_json::Value,
}

/// A report with its details.
#[derive(schemars::JsonSchema, Debug, Clone, PartialEq, Serialize)]
pub struct ReportDetail {
    #[serde(flatten)]
    pub row: ReportRow,
    /// Report-level fields (policy published, metadata, …), by kind.
    pub details: ReportDetails,
    /// Aggregate records (empty for other kinds).
    pub records: Vec<RecordRow>,
}

/// The report-level fields `reports show` prints under `details`: one
/// shape per report kind (the JSON carries no tag; `kind` beside it says
/// which). Fields are declared in alphabetical order, the order the JSON
/// has always had. Values stored as JSON text (`errors`, `policy_string`,
/// `authentication_results`, …) are printed as that JSON.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ReportDetails {
    Aggregate(AggregateDetails),
    Tls(TlsDetails),
    Failure(FailureDetails),
}

/// An aggregate report's metadata and published policy (RFC 7489 Appendix C
/// `report_metadata` and `policy_published`).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AggregateDetails {
    pub email: Option<String>,
    pub errors: serde_json::Value,
    pub extensions: serde_json::Value,
    pub extra_contact_info: Option<String>,
    pub generator: Option<String>,
    pub namespace: Option<String>,
    /// Where the report came from (file, message, mailbox).
    pub origin: String,
    pub policy_published: PolicyPublished,
    pub version: Option<String>,
    pub warnings: serde_json::Value,
}

/// `policy_published` of an aggregate report.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PolicyPublished {
    pub adkim: Option<String>,
    pub aspf: Option<String>,
    pub discovery_method: Option<String>,
    pub fo: Option<String>,
    pub np: Option<String>,
    pub p: Option<String>,
    pub pct: Option<i64>,
    pub sp: Option<String>,
    pub testing: Option<bool>,
}

/// A TLS report's policies (RFC 8460 §4.4).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TlsDetails {
    pub policies: Vec<TlsPolicyDetail>,
}

/// One policy of a TLS report, with its failure details.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TlsPolicyDetail {
    /// Failed sessions.
    pub failed: i64,
    pub failure_details: Vec<TlsFailureDetail>,
    pub mx_host: serde_json::Value,
    pub policy_domain: String,
    pub policy_string: serde_json::Value,
    pub policy_type: String,
    /// Successful sessions.
    pub successful: i64,
}

/// One `failure-details` entry of a TLS report policy.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TlsFailureDetail {
    pub failed_session_count: i64,
    pub failure_reason_code: Option<String>,
    pub receiving_ip: Option<String>,
    pub receiving_mx_hostname: Option<String>,
    pub result_type: String,
    pub sending_mta_ip: Option<String>,
}

/// A failure report's fields (RFC 6591).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FailureDetails {
    pub authentication_results: serde_json::Value,
    pub dkim_domain: Option<String>,
    pub feedback_type: String,
    /// True when the original message's From header was free text.
    pub from_text: bool,
    pub original_headers: Option<String>,
    pub original_mail_from: Option<String>,
    pub original_subject: Option<String>,
    pub source_ip: Option<String>,
    pub spf_dns: Option<String>,
    pub user_agent: Option<String>,
}

/// Storage behind the report commands.
pub trait ReportStore {
    /// Parses one item and stores every report in it in ONE transaction:
    /// all or nothing. `Ok(Err(_))` is a rejected item (nothing stored);
    /// `Err(_)` is a database failure that should stop the batch.
    fn ingest_item(
        &mut self,
        origin: &str,
        bytes: &[u8],
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError>;
    /// Stores an item parsed beforehand ([`ParsedItem::parse`], on any
    /// thread) in ONE transaction, as [`ingest_item`](Self::ingest_item)
    /// stores the reports it parses: the same rows, the same dedupe, the
    /// same outcomes. `reports::ingest` parses items on worker threads and
    /// stores them here, in their order, on the thread that owns the store.
    fn store_parsed(
        &mut self,
        origin: &str,
        item: &ParsedItem,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError>;
    /// Whether [`store_prepared`](Self::store_prepared) uses the
    /// [`PreparedRecords`] of an item, so that `reports::ingest` has its
    /// worker threads prepare them beside the parse. False by default:
    /// the work would be wasted.
    fn uses_prepared_records(&self) -> bool {
        false
    }
    /// [`store_parsed`](Self::store_parsed), given the item's records
    /// prepared beforehand ([`PreparedRecords::of`] on the thread that
    /// parsed it, when [`uses_prepared_records`](Self::uses_prepared_records)):
    /// the same rows, the same dedupe, the same outcomes. The default
    /// ignores them.
    fn store_prepared(
        &mut self,
        origin: &str,
        item: &ParsedItem,
        records: Option<&PreparedRecords>,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        let _ = records;
        self.store_parsed(origin, item)
    }
    /// Like [`ingest_item`](Self::ingest_item), for one plain-XML aggregate
    /// report read as a stream (a file too large to hold in memory). The
    /// default reads it whole (within `max_decompressed_bytes`, the limit
    /// of a plain-XML report); a backend that can store records as they
    /// are parsed overrides it.
    fn ingest_xml_stream(
        &mut self,
        origin: &str,
        input: &mut dyn std::io::Read,
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        use std::io::Read as _;
        let mut bytes = Vec::new();
        input
            .take(limits.max_decompressed_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| StoreError::Io {
                what: "read the report",
                source,
            })?;
        if bytes.len() as u64 > limits.max_decompressed_bytes {
            return Ok(Err(parse::container::plain_xml_too_large(limits)));
        }
        self.ingest_item(origin, &bytes, limits)
    }
    /// Starts a group of items that [`commit_group`](Self::commit_group)
    /// makes durable together: each item stays all or nothing, but the
    /// commit (an fsync of the log) is shared. Returns false when the
    /// store commits every item by itself (the default); the caller then
    /// needs no `commit_group`. Nothing read from an item may be moved or
    /// acknowledged before its group is committed.
    fn begin_group(&mut self) -> Result<bool, StoreError> {
        Ok(false)
    }
    /// Commits the items ingested since [`begin_group`](Self::begin_group).
    fn commit_group(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Every stored report, newest first, optionally for one domain.
    fn list(&self, domain: Option<&str>) -> Result<Vec<ReportRow>, StoreError>;
    /// One report by kind and id.
    fn show(&self, kind: ReportKind, id: i64) -> Result<Option<ReportDetail>, StoreError>;
    /// Removes every report in `ids` with everything stored under it
    /// (records, published policy, TLS policies and failure details), in
    /// ONE transaction: when any id is unknown nothing is removed and the
    /// error names it. The dashboards' rollup notices the removal (the
    /// report count drops) and is rebuilt on its next refresh.
    fn delete(&mut self, ids: &[(ReportKind, i64)]) -> Result<(), StoreError>;
    /// Retention: the aggregate reports whose period began before
    /// `cutoff` (unix seconds), with their records and published policy,
    /// counted per domain; removed in ONE transaction when `apply`, only
    /// counted otherwise (a dry run). TLS and failure reports are kept.
    /// The dashboards' rollup is rebuilt on its next refresh, as after
    /// [`delete`](Self::delete).
    fn prune(&mut self, cutoff: i64, apply: bool) -> Result<Pruned, StoreError>;
}

/// What [`ReportStore::prune`] removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Per policy domain, in byte order of the domain.
    pub domains: Vec<PrunedDomain>,
    pub reports: u64,
    pub records: u64,
}

/// One domain's share of [`Pruned`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PrunedDomain {
    pub domain: String,
    pub reports: u64,
    pub records: u64,
}

impl Pruned {
    /// Totals from the per-domain rows.
    pub fn from_domains(domains: Vec<PrunedDomain>) -> Self {
        Self {
            reports: domains.iter().map(|d| d.reports).sum(),
            records: domains.iter().map(|d| d.records).sum(),
            domains,
        }
    }
}

/// SQLite implementation of [`ReportStore`].
pub struct SqliteStore {
    /// The thread that checkpoints the WAL while groups of items are
    /// written, started with the first group of a store in a file. Before
    /// `conn`: dropped (and its connection closed) first.
    checkpointer: Option<Checkpointer>,
    conn: Connection,
    /// The thread that parses items while this one writes them, started
    /// on the first item.
    parser: Option<ParserThread>,
    /// The writing connection's `wal_autocheckpoint`, set back after each
    /// group's commit (off during a group when `checkpointer` runs).
    autocheckpoint: Option<i64>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Ends the open group of items, if any, with `end` (`COMMIT`, or
    /// `ROLLBACK` when an item of it failed with no savepoint of its own;
    /// `what` names it in errors), and sets back what
    /// [`ReportStore::begin_group`] changed.
    pub(super) fn end_group(&mut self, end: &str, what: &'static str) -> Result<(), StoreError> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch(end).map_err(q(what))?;
            self.conn
                .execute_batch(DEFAULT_TEMP_STORE)
                .map_err(q("set temporary storage back"))?;
            if let Some(pages) = self.autocheckpoint.take() {
                self.conn
                    .execute_batch(&format!("PRAGMA wal_autocheckpoint = {pages};"))
                    .map_err(q("set automatic checkpoints back"))?;
            }
            if let Some(c) = &self.checkpointer {
                c.wake();
            }
        }
        Ok(())
    }
}

pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(super) fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// JSON of a list; the empty list is the common case and needs no serializer.
pub(super) fn list<T: Serialize>(v: &[T]) -> String {
    if v.is_empty() {
        "[]".to_owned()
    } else {
        json(v)
    }
}

impl SqliteStore {
    /// Before a group's `BEGIN`: the group's commit leaves checkpoints to
    /// the checkpointing thread ([`Checkpointer`], started on the first
    /// group of a store in a file), so that the thread that writes does
    /// not copy pages into the database file, nor wait for its fsync. The
    /// writing connection's automatic checkpoints are off until the
    /// group's commit, and set back after it (`wal_autocheckpoint`, read
    /// here). Without that thread (an in-memory store, or a second
    /// connection that could not be opened) nothing changes.
    fn checkpoint_elsewhere(&mut self) -> Result<(), StoreError> {
        if self.checkpointer.is_none() {
            let Some(path) = self.conn.path().filter(|p| !p.is_empty()) else {
                return Ok(());
            };
            let path = Path::new(path).to_owned();
            self.checkpointer = Checkpointer::start(&path);
            if self.checkpointer.is_none() {
                return Ok(());
            }
        }
        // Still set when the last group's commit failed: its 0 is not
        // the setting to go back to.
        if self.autocheckpoint.is_none() {
            let pages: i64 = self
                .conn
                .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                .map_err(q("read automatic checkpoints"))?;
            self.autocheckpoint = Some(pages);
        }
        self.conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(q("leave checkpoints to their thread"))?;
        Ok(())
    }

    /// Opens (creating if needed) a database file and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        // Another ingest (a cron run overlapping) waits instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        // WAL + FULL: every commit fsyncs the WAL before it returns, so a
        // committed report survives power loss, and only then is its
        // message moved (IMAP) or renamed (Maildir). NORMAL synced only at
        // checkpoints: a power cut after the move could lose the report
        // while its message had left the inbox. The cost is one fsync per
        // item (a whole report, however many records).
        // A new database gets pages of PAGE_SIZE bytes. SQLite: "The
        // page_size pragma will only cause an immediate change in the page
        // size if it is issued while the database is still empty, prior
        // to the first CREATE TABLE statement" and "the page_size cannot
        // be changed once a database is in WAL mode", so it comes first,
        // and on an existing store it changes nothing.
        conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE};"))
            .map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(open_err)?;
        Self::migrate(conn, path)
    }

    /// A fresh in-memory database (tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let path = Path::new(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::migrate(conn, path)
    }

    fn migrate(mut conn: Connection, path: &Path) -> Result<Self, StoreError> {
        let tx = conn.transaction().map_err(q("begin migration"))?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")
            .map_err(q("create schema_version"))?;
        let found: Option<i64> = tx
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .map_err(q("read schema_version"))?;
        let found = found.unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                store: StoreName::Sqlite(path.to_owned()),
                found,
                known: SCHEMA_VERSION,
            });
        }
        for (i, step) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.execute_batch(step).map_err(q("apply migration"))?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [i as i64 + 1],
            )
            .map_err(q("record migration"))?;
        }
        tx.commit().map_err(q("commit migration"))?;
        Ok(Self {
            checkpointer: None,
            conn,
            parser: None,
            autocheckpoint: None,
        })
    }

    /// Opens an existing database file for reading only: never creates
    /// it, never migrates it, and the connection cannot write (SQLite
    /// `SQLITE_OPEN_READ_ONLY`, plus `PRAGMA query_only`). A schema older
    /// than this program is [`StoreError::OlderSchema`], a newer one
    /// [`StoreError::NewerSchema`]. For `plan`, `checklist` and
    /// `inspect`, which must leave the store as they found it.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        // An ingest holding the write lock delays a read, never fails it.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        conn.execute_batch("PRAGMA query_only = ON;")
            .map_err(open_err)?;
        let has_table: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(q("look for schema_version"))?;
        let found: i64 = if has_table {
            conn.query_row("SELECT max(version) FROM schema_version", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map_err(q("read schema_version"))?
            .unwrap_or(0)
        } else {
            0
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                store: StoreName::Sqlite(path.to_owned()),
                found,
                known: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(StoreError::OlderSchema {
                store: StoreName::Sqlite(path.to_owned()),
                found,
                known: SCHEMA_VERSION,
            });
        }
        Ok(Self {
            checkpointer: None,
            conn,
            parser: None,
            autocheckpoint: None,
        })
    }

    /// The schema version stored in the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .map_err(q("read schema_version"))
    }

    /// Row counts per table (tests, summaries).
    pub fn count(&self, table: Table) -> Result<i64, StoreError> {
        let sql = match table {
            Table::Reports => "SELECT count(*) FROM reports",
            Table::Records => "SELECT count(*) FROM records",
            Table::FailureReports => "SELECT count(*) FROM failure_reports",
            Table::TlsReports => "SELECT count(*) FROM tls_reports",
            Table::TlsPolicies => "SELECT count(*) FROM tls_policies",
            Table::TlsFailures => "SELECT count(*) FROM tls_failures",
        };
        self.conn
            .query_row(sql, [], |r| r.get(0))
            .map_err(q("count rows"))
    }
}

/// Tables that [`SqliteStore::count`] can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Reports,
    Records,
    FailureReports,
    TlsReports,
    TlsPolicies,
    TlsFailures,
}

impl ReportStore for SqliteStore {
    fn ingest_item(
        &mut self,
        origin: &str,
        bytes: &[u8],
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        // Started on the first item; started again if it died (a panic
        // while parsing: that item was rejected, the batch goes on).
        let alive = self.parser.as_ref().is_some_and(ParserThread::is_alive);
        if !alive {
            self.parser = Some(ParserThread::start().map_err(|source| StoreError::Io {
                what: "start the parsing thread",
                source,
            })?);
        }
        let parser = self.parser.take();
        let result = self.in_transaction(origin, None, false, |sink| match &parser {
            Some(parser) => pipelined(parser, bytes, limits, sink),
            None => parse::parse_item(bytes, limits, sink),
        });
        self.parser = parser;
        result
    }

    fn store_parsed(
        &mut self,
        origin: &str,
        item: &ParsedItem,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        self.store_prepared(origin, item, None)
    }

    fn uses_prepared_records(&self) -> bool {
        true
    }

    fn store_prepared(
        &mut self,
        origin: &str,
        item: &ParsedItem,
        records: Option<&PreparedRecords>,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        self.in_transaction(origin, records, item.is_parsed(), |sink| item.replay(sink))
    }

    fn ingest_xml_stream(
        &mut self,
        origin: &str,
        input: &mut dyn std::io::Read,
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        self.in_transaction(origin, None, false, |sink| {
            parse::parse_xml_stream(input, limits, sink)
        })
    }

    fn begin_group(&mut self) -> Result<bool, StoreError> {
        if self.conn.is_autocommit() {
            // An item of the group parsed as it is stored is a savepoint
            // (one parsed whole has none: `in_transaction`), whose journal holds
            // the pages the item changes that existed before it (a few
            // per item: the last leaf and parents of each B-tree, one
            // leaf of each index). SQLite keeps that journal in memory up
            // to 64 KiB and then writes it to a temporary file, so with
            // 16 KiB pages nearly every item wrote one: 340 MB over the
            // 2,000 items of the benchmark (`BENCHMARKS.md`). In memory,
            // it is freed as each item ends. SQLite reads this setting
            // when a write transaction begins, and refuses to change it
            // inside one: "temporary storage cannot be changed from
            // within a transaction". Set back after the group's commit,
            // so that sorts of the read queries still spill to disk.
            self.conn
                .execute_batch(GROUP_TEMP_STORE)
                .map_err(q("keep a group's savepoint journals in memory"))?;
            self.checkpoint_elsewhere()?;
            self.conn
                .execute_batch("BEGIN")
                .map_err(q("begin a group of items"))?;
        }
        Ok(true)
    }

    fn commit_group(&mut self) -> Result<(), StoreError> {
        self.end_group("COMMIT", "commit a group of items")
    }

    fn list(&self, domain: Option<&str>) -> Result<Vec<ReportRow>, StoreError> {
        rows::list(self, domain)
    }

    fn show(&self, kind: ReportKind, id: i64) -> Result<Option<ReportDetail>, StoreError> {
        rows::show(self, kind, id)
    }

    fn delete(&mut self, ids: &[(ReportKind, i64)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(q("begin delete"))?;
        let aggregate: Vec<i64> = ids
            .iter()
            .filter(|(kind, _)| *kind == ReportKind::Aggregate)
            .map(|&(_, id)| id)
            .collect();
        if aggregate.is_empty() {
            delete_rows(&tx, ids)?;
        } else {
            // The rollups give back the removed reports' records.
            super::dashq::sqlite::remove_reports(&tx, &Gone::Ids(&aggregate), || {
                delete_rows(&tx, ids)
            })?;
        }
        tx.commit().map_err(q("commit delete"))
    }

    fn prune(&mut self, cutoff: i64, apply: bool) -> Result<Pruned, StoreError> {
        let tx = self.conn.transaction().map_err(q("begin prune"))?;
        let mut domains = Vec::new();
        rows::sqlite::each_row(
            &tx,
            rows::RowQuery::PruneCount,
            &[Arg::Int(Some(cutoff))],
            &mut |mut r| {
                domains.push(rows::pruned_domain(&mut r)?);
                Ok(())
            },
        )?;
        let pruned = Pruned::from_domains(domains);
        if !apply || pruned.reports == 0 {
            return Ok(pruned); // dropping `tx` ends the read
        }
        // The rollups give back the pruned reports' records.
        super::dashq::sqlite::remove_reports(&tx, &Gone::Before(cutoff), || {
            // Children first, as `delete` does.
            for sql in [
                "DELETE FROM records WHERE report_id IN \
                 (SELECT id FROM reports WHERE date_begin < ?1)",
                "DELETE FROM policy_published WHERE report_id IN \
                 (SELECT id FROM reports WHERE date_begin < ?1)",
                "DELETE FROM reports WHERE date_begin < ?1",
            ] {
                tx.execute(sql, [cutoff]).map_err(q("prune"))?;
            }
            Ok(())
        })?;
        tx.commit().map_err(q("commit prune"))?;
        Ok(pruned)
    }
}

/// The rows of the reports `ids`, children first: when any id is unknown
/// the error leaves the caller's transaction to be rolled back.
fn delete_rows(
    tx: &rusqlite::Transaction<'_>,
    ids: &[(ReportKind, i64)],
) -> Result<(), StoreError> {
    for &(kind, id) in ids {
        // Children first: a store opened without `foreign_keys` (or
        // an older one) must not keep orphans.
        let steps: &[&str] = match kind {
            ReportKind::Aggregate => &[
                "DELETE FROM records WHERE report_id = ?1",
                "DELETE FROM policy_published WHERE report_id = ?1",
                "DELETE FROM reports WHERE id = ?1",
            ],
            ReportKind::Tls => &[
                "DELETE FROM tls_failures WHERE tls_policy_id IN \
                     (SELECT id FROM tls_policies WHERE tls_report_id = ?1)",
                "DELETE FROM tls_policies WHERE tls_report_id = ?1",
                "DELETE FROM tls_reports WHERE id = ?1",
            ],
            ReportKind::Failure => &["DELETE FROM failure_reports WHERE id = ?1"],
        };
        let mut removed = 0;
        for sql in steps {
            removed = tx.execute(sql, [id]).map_err(q("delete report"))?;
        }
        if removed == 0 {
            // Dropping `tx` rolls back what was removed before.
            return Err(StoreError::NoSuchReport { kind, id });
        }
    }
    Ok(())
}

// Dashboard read queries live in `reports::dashq`, for both stores; their
// row types are re-exported here for callers that name them by store.
pub use super::dashq::{
    DailyRow, DashFilter, DashboardQueries, FailureRow, PolicyRow, ReporterRow, SourceRow,
    TlsPolicyRow,
};

impl SqliteStore {
    /// The connection, for the dashboard queries (`reports::dashq`).
    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(super) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(s: &SqliteStore) -> i64 {
        s.conn
            .query_row("PRAGMA temp_store", [], |r| r.get(0))
            .expect("temp_store")
    }

    #[test]
    fn a_group_keeps_its_savepoint_journals_in_memory_and_only_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = SqliteStore::open(&dir.path().join("r.db")).expect("create");
        // 0: SQLite's default; 2: memory.
        assert_eq!(temp_store(&s), 0);
        assert!(s.begin_group().expect("begin"));
        assert_eq!(temp_store(&s), 2);
        let report = crate::parse::test_report("a", 3, "");
        s.ingest_item("a", report.as_bytes(), &IngestLimits::default())
            .expect("db")
            .expect("parses");
        s.commit_group().expect("commit");
        assert_eq!(temp_store(&s), 0);
        assert_eq!(s.count(Table::Records).expect("count"), 3);
        // A group begun again sets it again.
        assert!(s.begin_group().expect("begin"));
        assert_eq!(temp_store(&s), 2);
        s.commit_group().expect("commit");
        assert_eq!(temp_store(&s), 0);
    }

    fn autocheckpoint(s: &SqliteStore) -> i64 {
        s.conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .expect("wal_autocheckpoint")
    }

    #[test]
    fn a_groups_commit_is_checkpointed_by_the_checkpointing_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("r.db");
        let mut s = SqliteStore::open(&db).expect("create");
        // SQLite's default: a checkpoint once the WAL holds 1,000 pages.
        assert_eq!(autocheckpoint(&s), 1000);
        let before = std::fs::metadata(&db).expect("stat").len();
        assert!(s.begin_group().expect("begin"));
        assert!(s.checkpointer.is_some());
        // Off on the writing connection while the group is written.
        assert_eq!(autocheckpoint(&s), 0);
        for i in 0..20 {
            let report = crate::parse::test_report(&format!("c{i}"), 50, "");
            s.ingest_item("c", report.as_bytes(), &IngestLimits::default())
                .expect("db")
                .expect("parses");
        }
        s.commit_group().expect("commit");
        assert_eq!(autocheckpoint(&s), 1000);
        // Far fewer pages than 1,000 in the WAL: the writing connection's
        // commit copied nothing into the database file. The checkpointing
        // thread does, with the store still open.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::metadata(&db).expect("stat").len() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint while the store is open"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // And the writing connection reads what it wrote, as before.
        assert_eq!(s.count(Table::Records).expect("count"), 1000);
        drop(s);
        let s = SqliteStore::open(&db).expect("reopen");
        assert_eq!(s.count(Table::Records).expect("count"), 1000);
    }

    #[test]
    fn a_group_that_never_committed_leaves_automatic_checkpoints_as_they_were() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = SqliteStore::open(&dir.path().join("r.db")).expect("create");
        assert!(s.begin_group().expect("begin"));
        // The group ends without its commit (a failed COMMIT ends it so).
        s.conn.execute_batch("ROLLBACK").expect("rollback");
        assert_eq!(autocheckpoint(&s), 0);
        assert!(s.begin_group().expect("begin"));
        s.commit_group().expect("commit");
        assert_eq!(autocheckpoint(&s), 1000);
    }

    /// Inside a group, an item parsed whole is written without a savepoint
    /// of its own. Should its write fail, the whole group is rolled back
    /// (the items before it too: nothing of the failed item may be
    /// committed) and the store is out of the group, its settings set
    /// back; a new group then stores as before.
    #[test]
    fn a_parsed_item_that_fails_to_store_rolls_its_group_back() {
        use crate::parse::ParsedItem;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = SqliteStore::open(&dir.path().join("r.db")).expect("create");
        let limits = IngestLimits::default();
        let parsed = |id: &str| {
            let report = crate::parse::test_report(id, 3, "");
            let item = ParsedItem::parse(report.as_bytes(), &limits, 100)
                .expect("parses")
                .expect("held");
            assert!(item.is_parsed());
            let rows = PreparedRecords::of(&item);
            (item, rows)
        };
        let (good, good_rows) = parsed("good");
        let (bad, bad_rows) = parsed("boom");
        assert!(s.begin_group().expect("begin"));
        assert_eq!(autocheckpoint(&s), 0);
        // The database refuses the records of one report (as a full disk
        // would), after its row was written. (Made inside the group: the
        // group's `temp_store` setting drops temporary triggers.)
        s.conn
            .execute_batch(
                "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.records WHEN NEW.report_id = \
                 (SELECT id FROM main.reports WHERE report_id = 'boom') \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .expect("trigger");
        s.store_prepared("good", &good, good_rows.as_ref())
            .expect("db")
            .expect("stored");
        let e = s
            .store_prepared("boom", &bad, bad_rows.as_ref())
            .expect_err("a database failure stops the batch");
        assert!(e.to_string().contains("refused"), "{e}");
        assert!(s.conn.is_autocommit(), "the group is over");
        assert_eq!((temp_store(&s), autocheckpoint(&s)), (0, 1000));
        assert_eq!(s.count(Table::Reports).expect("count"), 0);
        assert!(s.begin_group().expect("begin"));
        s.store_prepared("good", &good, good_rows.as_ref())
            .expect("db")
            .expect("stored");
        s.commit_group().expect("commit");
        assert_eq!(s.count(Table::Reports).expect("count"), 1);
    }

    #[test]
    fn an_in_memory_store_checkpoints_nothing_elsewhere() {
        let mut s = SqliteStore::open_in_memory().expect("store");
        assert!(s.begin_group().expect("begin"));
        s.commit_group().expect("commit");
        assert!(s.checkpointer.is_none());
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        drop(SqliteStore::open(&path).expect("create"));
        {
            let c = Connection::open(&path).expect("open");
            c.execute(
                "INSERT INTO schema_version VALUES (?1)",
                [SCHEMA_VERSION + 1],
            )
            .expect("bump");
        }
        match SqliteStore::open(&path) {
            Err(StoreError::NewerSchema { found, known, .. }) => {
                assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
    }

    #[test]
    fn migrates_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        drop(SqliteStore::open(&path).expect("create"));
        let s = SqliteStore::open(&path).expect("reopen");
        assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
        let rows: i64 = s
            .conn
            .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, SCHEMA_VERSION);
    }

    #[test]
    fn new_stores_get_page_size_existing_ones_keep_theirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let page_size = |path: &Path| -> i64 {
            Connection::open(path)
                .expect("open")
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .expect("page_size")
        };
        let new = dir.path().join("new.db");
        drop(SqliteStore::open(&new).expect("create"));
        assert_eq!(page_size(&new), i64::from(PAGE_SIZE));
        assert_ne!(PAGE_SIZE, 4096, "SQLite's default");
        // A store made with SQLite's default pages, in WAL mode, at schema
        // version 1: opened, migrated and written with its own pages.
        let old = dir.path().join("old.db");
        {
            let c = Connection::open(&old).expect("open");
            c.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;")
                .expect("wal");
            c.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);\
                 INSERT INTO schema_version VALUES (1);",
            )
            .expect("schema_version");
            c.execute_batch(MIGRATIONS[0]).expect("version 1");
        }
        let mut s = SqliteStore::open(&old).expect("open old");
        assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
        let xml = "<feedback><report_metadata><org_name>o</org_name><report_id>r</report_id>\
            <date_range><begin>0</begin><end>86400</end></date_range></report_metadata>\
            <policy_published><domain>example.com</domain><p>reject</p></policy_published>\
            <record><row><source_ip>192.0.2.1</source_ip><count>2</count><policy_evaluated>\
            <disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated>\
            </row><identifiers><header_from>example.com</header_from></identifiers>\
            <auth_results><spf><domain>example.com</domain><result>fail</result></spf>\
            </auth_results></record></feedback>";
        s.ingest_item("r.xml", xml.as_bytes(), &IngestLimits::default())
            .expect("db")
            .expect("stored");
        assert_eq!(s.count(Table::Records).expect("count"), 1);
        drop(s);
        assert_eq!(page_size(&old), 4096);
    }
}
