//! The only SQL of the crate: SQLite schema, migrations and typed queries
//! for DMARC aggregate, DMARC failure and SMTP TLS reports.
//!
//! Owns the database file and everything in it. Callers see the
//! [`ReportStore`] trait and plain row structs, so another backend
//! (PostgreSQL) can be added without touching parsing or dashboards.
//! Leaves parsing to `reports::parse` and sources to `reports::ingest`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use super::IngestLimits;
use super::parse::{
    self, AggregateHeader, AggregateSummary, AggregateVisitor, FailureReport, Found, ParseError,
    Record, ReportKind, ReportSink, SinkError, TlsReport,
};

/// Default database file name.
pub const DEFAULT_DB: &str = "mailauth.db";

/// Errors of the store itself (not of a report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open report database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "report database {path} has schema version {found}, newer than this program knows ({known}); upgrade mailauth"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// A read-only command found a store that `mailauth store migrate`
    /// must bring up to date first (it never migrates on its own).
    #[error(
        "report store {path} has schema version {found}; run `mailauth store migrate` (this program reads version {known})"
    )]
    OlderSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("report database query failed ({what}): {source}")]
    Query {
        what: &'static str,
        source: rusqlite::Error,
    },
    /// A failure of another backend (PostgreSQL: `reports::pgstore`).
    #[error(transparent)]
    Backend {
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn q(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

/// Schema migrations; the schema version is the number applied.
/// Append only: never edit a released step.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
CREATE TABLE reports (
    id                 INTEGER PRIMARY KEY,
    org_name           TEXT    NOT NULL,
    email              TEXT,
    extra_contact_info TEXT,
    report_id          TEXT    NOT NULL,
    date_begin         INTEGER NOT NULL,
    date_end           INTEGER NOT NULL,
    policy_domain      TEXT    NOT NULL,
    version            TEXT,
    namespace          TEXT,
    generator          TEXT,
    errors             TEXT    NOT NULL DEFAULT '[]',
    warnings           TEXT    NOT NULL DEFAULT '[]',
    extensions         TEXT    NOT NULL DEFAULT '[]',
    record_count       INTEGER NOT NULL DEFAULT 0,
    message_count      INTEGER NOT NULL DEFAULT 0,
    origin             TEXT    NOT NULL,
    ingested_at        INTEGER NOT NULL,
    UNIQUE (org_name, report_id, policy_domain, date_begin, date_end)
);
CREATE INDEX reports_domain_begin ON reports (policy_domain, date_begin);

CREATE TABLE policy_published (
    report_id        INTEGER PRIMARY KEY REFERENCES reports (id) ON DELETE CASCADE,
    domain           TEXT NOT NULL,
    adkim            TEXT,
    aspf             TEXT,
    p                TEXT,
    sp               TEXT,
    np               TEXT,
    pct              INTEGER,
    fo               TEXT,
    testing          INTEGER,
    discovery_method TEXT
);

CREATE TABLE records (
    id            INTEGER PRIMARY KEY,
    report_id     INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    source_ip     TEXT    NOT NULL,
    count         INTEGER NOT NULL,
    disposition   TEXT    NOT NULL,
    dkim_aligned  TEXT,
    spf_aligned   TEXT,
    reasons       TEXT    NOT NULL DEFAULT '[]',
    header_from   TEXT    NOT NULL,
    envelope_from TEXT,
    envelope_to   TEXT,
    dkim_domain   TEXT,
    dkim_selector TEXT,
    dkim_result   TEXT,
    spf_domain    TEXT,
    spf_scope     TEXT,
    spf_result    TEXT,
    dkim_results  TEXT    NOT NULL DEFAULT '[]',
    spf_results   TEXT    NOT NULL DEFAULT '[]',
    extensions    TEXT    NOT NULL DEFAULT '[]'
);
CREATE INDEX records_report ON records (report_id);

CREATE TABLE failure_reports (
    id                     INTEGER PRIMARY KEY,
    fingerprint            TEXT    NOT NULL UNIQUE,
    reporter               TEXT,
    feedback_type          TEXT    NOT NULL,
    user_agent             TEXT,
    version                TEXT,
    auth_failure           TEXT,
    reported_domain        TEXT    NOT NULL,
    source_ip              TEXT,
    arrival_date           TEXT,
    original_mail_from     TEXT,
    original_rcpt_to       TEXT    NOT NULL DEFAULT '[]',
    authentication_results TEXT    NOT NULL DEFAULT '[]',
    delivery_result        TEXT,
    dkim_domain            TEXT,
    dkim_identity          TEXT,
    dkim_selector          TEXT,
    spf_dns                TEXT,
    identity_alignment     TEXT,
    original_subject       TEXT,
    original_message_id    TEXT,
    original_headers       TEXT,
    from_text              INTEGER NOT NULL,
    origin                 TEXT    NOT NULL,
    ingested_at            INTEGER NOT NULL
);
CREATE INDEX failure_reports_domain ON failure_reports (reported_domain);

CREATE TABLE tls_reports (
    id             INTEGER PRIMARY KEY,
    org_name       TEXT NOT NULL,
    report_id      TEXT NOT NULL,
    date_begin     TEXT NOT NULL,
    date_end       TEXT NOT NULL,
    contact_info   TEXT,
    origin         TEXT NOT NULL,
    ingested_at    INTEGER NOT NULL,
    UNIQUE (org_name, report_id, date_begin, date_end)
);

CREATE TABLE tls_policies (
    id               INTEGER PRIMARY KEY,
    tls_report_id    INTEGER NOT NULL REFERENCES tls_reports (id) ON DELETE CASCADE,
    policy_type      TEXT    NOT NULL,
    policy_domain    TEXT    NOT NULL,
    policy_string    TEXT    NOT NULL DEFAULT '[]',
    mx_host          TEXT    NOT NULL DEFAULT '[]',
    successful_count INTEGER NOT NULL,
    failure_count    INTEGER NOT NULL
);
CREATE INDEX tls_policies_report ON tls_policies (tls_report_id);
CREATE INDEX tls_policies_domain ON tls_policies (policy_domain);

CREATE TABLE tls_failures (
    id                     INTEGER PRIMARY KEY,
    tls_policy_id          INTEGER NOT NULL REFERENCES tls_policies (id) ON DELETE CASCADE,
    result_type            TEXT    NOT NULL,
    sending_mta_ip         TEXT,
    receiving_mx_hostname  TEXT,
    receiving_mx_helo      TEXT,
    receiving_ip           TEXT,
    failed_session_count   INTEGER NOT NULL,
    additional_information TEXT,
    failure_reason_code    TEXT
);
CREATE INDEX tls_failures_policy ON tls_failures (tls_policy_id);
"#,
    // 2: the dashboards' daily rollup (`reports::dashq`), a cache of
    // `reports` + `records`. Stores of version 1 may already hold these
    // tables, created on first use before they were a migration.
    r#"
CREATE TABLE IF NOT EXISTS dashboard_daily_v1 (
    domain       TEXT    NOT NULL,
    day          INTEGER NOT NULL,
    messages     INTEGER NOT NULL,
    dmarc_pass   INTEGER NOT NULL,
    spf_aligned  INTEGER NOT NULL,
    dkim_aligned INTEGER NOT NULL,
    disp_none    INTEGER NOT NULL,
    quarantine   INTEGER NOT NULL,
    reject       INTEGER NOT NULL,
    PRIMARY KEY (domain, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dashboard_rollup_v1 (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    max_report INTEGER NOT NULL,
    reports    INTEGER NOT NULL
);
"#,
];

/// Schema version this code writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// One line of `reports list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportRow {
    pub kind: ReportKind,
    pub id: i64,
    pub org: String,
    pub report_id: String,
    pub domain: String,
    /// Unix seconds for aggregate reports; RFC 3339 text otherwise.
    pub begin: String,
    pub end: String,
    /// Records (aggregate), policies (TLS), 1 (failure).
    pub records: i64,
    /// Messages (aggregate sum of counts), sessions (TLS), 1 (failure).
    pub messages: i64,
}

/// One stored aggregate record, as `reports show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportDetail {
    #[serde(flatten)]
    pub row: ReportRow,
    /// Report-level fields as JSON (policy published, metadata, …).
    pub details: serde_json::Value,
    /// Aggregate records (empty for other kinds).
    pub records: Vec<RecordRow>,
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
    /// Like [`ingest_item`](Self::ingest_item), for one plain-XML aggregate
    /// report read as a stream (a file too large to hold in memory). The
    /// default reads it whole (within `max_input_bytes`); a backend that can
    /// store records as they are parsed overrides it.
    fn ingest_xml_stream(
        &mut self,
        origin: &str,
        input: &mut dyn std::io::Read,
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        use std::io::Read as _;
        let mut bytes = Vec::new();
        input
            .take(limits.max_input_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::Backend {
                source: Box::new(e),
            })?;
        if bytes.len() as u64 > limits.max_input_bytes {
            return Ok(Err(ParseError::TooLarge {
                what: "input".to_owned(),
                limit: limits.max_input_bytes,
            }));
        }
        self.ingest_item(origin, &bytes, limits)
    }
    /// Every stored report, newest first, optionally for one domain.
    fn list(&self, domain: Option<&str>) -> Result<Vec<ReportRow>, StoreError>;
    /// One report by kind and id.
    fn show(&self, kind: ReportKind, id: i64) -> Result<Option<ReportDetail>, StoreError>;
}

/// SQLite implementation of [`ReportStore`].
pub struct SqliteStore {
    conn: Connection,
    /// The thread that parses items while this one writes them, started
    /// on the first item.
    parser: Option<ParserThread>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// JSON of a list; the empty list is the common case and needs no serializer.
fn list<T: Serialize>(v: &[T]) -> String {
    if v.is_empty() {
        "[]".to_owned()
    } else {
        json(v)
    }
}

fn opt_json(s: Option<String>) -> serde_json::Value {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

impl SqliteStore {
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
        // WAL + NORMAL: a crash loses at most the last transactions, never
        // corrupts; committed data survives kill -9.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
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
                path: path.to_owned(),
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
        Ok(Self { conn, parser: None })
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
                path: path.to_owned(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(StoreError::OlderSchema {
                path: path.to_owned(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        Ok(Self { conn, parser: None })
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

/// The sink that writes one item inside one transaction.
struct TxSink<'a> {
    tx: &'a Transaction<'a>,
    origin: &'a str,
    now: i64,
    report: Option<i64>,
    /// The record INSERT, prepared once per item (it runs per record).
    insert_record: Option<rusqlite::CachedStatement<'a>>,
    /// Text of the current record's source IP and JSON lists, in buffers
    /// reused from record to record.
    scratch: RecordText,
}

/// Buffers for the text columns of a record that are computed, not copied.
#[derive(Default)]
struct RecordText {
    ip: String,
    reasons: String,
    dkim_results: String,
    spf_results: String,
    extensions: String,
}

/// [`list`] into a reused buffer: the same text, no allocation once the
/// buffer has grown.
fn list_into<T: Serialize>(buf: &mut String, v: &[T]) {
    buf.clear();
    if v.is_empty() {
        buf.push_str("[]");
        return;
    }
    let mut bytes = std::mem::take(buf).into_bytes();
    let ok = serde_json::to_writer(&mut bytes, v).is_ok();
    *buf = match String::from_utf8(bytes) {
        Ok(s) if ok => s,
        _ => json(v),
    };
}

impl AggregateVisitor for TxSink<'_> {
    fn header(&mut self, h: &AggregateHeader) -> Result<bool, SinkError> {
        // RFC 7489 section 7.2.1.1 / RFC 9990: a report is identified by
        // its reporter, report id, domain and date range. The UNIQUE
        // constraint decides; a conflict means a duplicate.
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO reports (org_name, email, extra_contact_info, report_id, date_begin, \
             date_end, policy_domain, version, namespace, generator, errors, warnings, origin, \
             ingested_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT DO NOTHING",
        )?;
        let n = stmt.execute(params![
            h.org_name,
            h.email,
            h.extra_contact_info,
            h.report_id,
            h.date_begin,
            h.date_end,
            h.policy.domain,
            h.version,
            h.namespace,
            h.generator,
            json(&h.errors),
            json(&h.warnings),
            self.origin,
            self.now,
        ])?;
        if n == 0 {
            self.report = None;
            return Ok(false);
        }
        let id = self.tx.last_insert_rowid();
        self.report = Some(id);
        let p = &h.policy;
        self.tx
            .prepare_cached(
                "INSERT INTO policy_published (report_id, domain, adkim, aspf, p, sp, np, pct, \
                 fo, testing, discovery_method) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                id,
                p.domain,
                p.adkim.map(|a| a.as_str()),
                p.aspf.map(|a| a.as_str()),
                p.p.map(|a| a.as_str()),
                p.sp.map(|a| a.as_str()),
                p.np.map(|a| a.as_str()),
                p.pct,
                p.fo,
                p.testing,
                p.discovery_method,
            ])?;
        Ok(true)
    }

    fn record(&mut self, r: &Record) -> Result<(), SinkError> {
        let Some(report) = self.report else {
            return Ok(());
        };
        let dkim = r.dkim_results.first();
        let spf = r.spf_results.first();
        let text = &mut self.scratch;
        text.ip.clear();
        {
            use std::fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(text.ip, "{}", r.source_ip);
        }
        list_into(&mut text.reasons, &r.reasons);
        list_into(&mut text.dkim_results, &r.dkim_results);
        list_into(&mut text.spf_results, &r.spf_results);
        list_into(&mut text.extensions, &r.extensions);
        let tx = self.tx;
        let stmt = match &mut self.insert_record {
            Some(stmt) => stmt,
            slot @ None => slot.insert(tx.prepare_cached(
                "INSERT INTO records (report_id, source_ip, count, disposition, dkim_aligned, \
                 spf_aligned, reasons, header_from, envelope_from, envelope_to, dkim_domain, \
                 dkim_selector, dkim_result, spf_domain, spf_scope, spf_result, dkim_results, \
                 spf_results, extensions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
                 ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            )?),
        };
        stmt.execute(params![
            report,
            text.ip,
            i64::try_from(r.count).unwrap_or(i64::MAX),
            r.disposition.as_str(),
            r.dkim.map(|d| d.as_str()),
            r.spf.map(|d| d.as_str()),
            text.reasons,
            r.header_from,
            r.envelope_from,
            r.envelope_to,
            dkim.map(|d| d.domain.as_str()),
            dkim.and_then(|d| d.selector.as_deref()),
            dkim.map(|d| d.result.as_str()),
            spf.map(|s| s.domain.as_str()),
            spf.and_then(|s| s.scope.map(|s| s.as_str())),
            spf.map(|s| s.result.as_str()),
            text.dkim_results,
            text.spf_results,
            text.extensions,
        ])?;
        Ok(())
    }

    fn end(&mut self, s: &AggregateSummary) -> Result<(), SinkError> {
        if let Some(report) = self.report {
            self.tx
                .prepare_cached(
                    "UPDATE reports SET record_count = ?2, message_count = ?3, extensions = ?4, \
                     warnings = ?5 WHERE id = ?1",
                )?
                .execute(params![
                    report,
                    i64::try_from(s.records).unwrap_or(i64::MAX),
                    i64::try_from(s.messages).unwrap_or(i64::MAX),
                    list(&s.extensions),
                    json(&s.header.warnings),
                ])?;
        }
        Ok(())
    }
}

impl ReportSink for TxSink<'_> {
    fn failure(&mut self, r: &FailureReport) -> Result<bool, SinkError> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO failure_reports (fingerprint, reporter, feedback_type, user_agent, \
                 version, auth_failure, reported_domain, source_ip, arrival_date, \
                 original_mail_from, original_rcpt_to, authentication_results, delivery_result, \
                 dkim_domain, dkim_identity, dkim_selector, spf_dns, identity_alignment, \
                 original_subject, original_message_id, original_headers, from_text, origin, \
                 ingested_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
                 ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                r.fingerprint(),
                r.reporter,
                r.feedback_type,
                r.user_agent,
                r.version,
                r.auth_failure,
                r.reported_domain,
                r.source_ip.map(|i| i.to_string()),
                r.arrival_date,
                r.original_mail_from,
                json(&r.original_rcpt_to),
                json(&r.authentication_results),
                r.delivery_result,
                r.dkim_domain,
                r.dkim_identity,
                r.dkim_selector,
                r.spf_dns,
                r.identity_alignment,
                r.original_subject,
                r.original_message_id,
                r.original_headers,
                r.from_text,
                self.origin,
                self.now,
            ])?;
        Ok(n > 0)
    }

    fn tls(&mut self, r: &TlsReport) -> Result<bool, SinkError> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO tls_reports (org_name, report_id, date_begin, date_end, \
                 contact_info, origin, ingested_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                r.organization_name,
                r.report_id,
                r.date_range.start_datetime,
                r.date_range.end_datetime,
                r.contact_info,
                self.origin,
                self.now,
            ])?;
        if n == 0 {
            return Ok(false);
        }
        let report = self.tx.last_insert_rowid();
        for p in &r.policies {
            self.tx
                .prepare_cached(
                    "INSERT INTO tls_policies (tls_report_id, policy_type, policy_domain, \
                     policy_string, mx_host, successful_count, failure_count) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    report,
                    p.policy.policy_type,
                    p.policy.policy_domain,
                    json(&p.policy.policy_string),
                    json(&p.policy.mx_host),
                    i64::try_from(p.summary.total_successful_session_count).unwrap_or(i64::MAX),
                    i64::try_from(p.summary.total_failure_session_count).unwrap_or(i64::MAX),
                ])?;
            let policy = self.tx.last_insert_rowid();
            for f in &p.failure_details {
                self.tx
                    .prepare_cached(
                        "INSERT INTO tls_failures (tls_policy_id, result_type, sending_mta_ip, \
                         receiving_mx_hostname, receiving_mx_helo, receiving_ip, \
                         failed_session_count, additional_information, failure_reason_code) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?
                    .execute(params![
                        policy,
                        f.result_type,
                        f.sending_mta_ip,
                        f.receiving_mx_hostname,
                        f.receiving_mx_helo,
                        f.receiving_ip,
                        i64::try_from(f.failed_session_count).unwrap_or(i64::MAX),
                        f.additional_information,
                        f.failure_reason_code,
                    ])?;
            }
        }
        Ok(true)
    }
}

impl SqliteStore {
    /// Runs `parse` with a sink writing into ONE transaction: committed
    /// when the whole item parsed, rolled back otherwise.
    fn in_transaction(
        &mut self,
        origin: &str,
        parse: impl FnOnce(&mut TxSink<'_>) -> Result<Vec<Found>, ParseError>,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        let tx = self.conn.transaction().map_err(q("begin item"))?;
        let result = {
            let mut sink = TxSink {
                tx: &tx,
                origin,
                now: now(),
                report: None,
                insert_record: None,
                scratch: RecordText::default(),
            };
            parse(&mut sink)
        };
        match result {
            Ok(found) => {
                tx.commit().map_err(q("commit item"))?;
                Ok(Ok(found))
            }
            Err(ParseError::Sink { source }) => {
                // A database failure, not a bad report: stop the batch.
                drop(tx);
                match source.downcast::<rusqlite::Error>() {
                    Ok(e) => Err(StoreError::Query {
                        what: "store report",
                        source: *e,
                    }),
                    Err(other) => Ok(Err(ParseError::Sink { source: other })),
                }
            }
            Err(e) => {
                drop(tx); // rolls back
                Ok(Err(e))
            }
        }
    }
}

/// What the parsing thread hands the writing thread, in parse order.
enum Parsed {
    Header(Box<AggregateHeader>),
    Records(Vec<Record>),
    End(Box<AggregateSummary>),
    Failure(Box<FailureReport>),
    Tls(Box<TlsReport>),
}

/// Records sent together: one channel hand-off per batch, not per record.
const BATCH: usize = 64;

/// The parsing side of [`pipelined`]: every call becomes a message. It
/// calls every report new; the writing side knows better and says so.
struct ChannelSink {
    tx: std::sync::mpsc::SyncSender<Parsed>,
    batch: Vec<Record>,
}

impl ChannelSink {
    fn send(&mut self, msg: Parsed) -> Result<(), SinkError> {
        self.flush()?;
        self.tx
            .send(msg)
            .map_err(|_| "the writing thread stopped".into())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx
            .send(Parsed::Records(batch))
            .map_err(|_| "the writing thread stopped".into())
    }
}

impl AggregateVisitor for ChannelSink {
    fn header(&mut self, header: &AggregateHeader) -> Result<bool, SinkError> {
        self.send(Parsed::Header(Box::new(header.clone())))?;
        Ok(true)
    }
    fn record(&mut self, record: &Record) -> Result<(), SinkError> {
        self.record_owned(record.clone())
    }
    fn record_owned(&mut self, record: Record) -> Result<(), SinkError> {
        self.batch.push(record);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }
    fn end(&mut self, summary: &AggregateSummary) -> Result<(), SinkError> {
        self.send(Parsed::End(Box::new(summary.clone())))
    }
}

impl ReportSink for ChannelSink {
    fn failure(&mut self, report: &FailureReport) -> Result<bool, SinkError> {
        self.send(Parsed::Failure(Box::new(report.clone())))?;
        Ok(true)
    }
    fn tls(&mut self, report: &TlsReport) -> Result<bool, SinkError> {
        self.send(Parsed::Tls(Box::new(report.clone())))?;
        Ok(true)
    }
}

/// One item for the parsing thread, and where its messages go.
struct Job {
    bytes: Vec<u8>,
    limits: IngestLimits,
    reply: std::sync::mpsc::SyncSender<Parsed>,
    done: std::sync::mpsc::SyncSender<Result<Vec<Found>, ParseError>>,
}

/// A thread that parses items, one at a time, for [`pipelined`]. It lives
/// as long as the store: starting a thread per item costs more system
/// time than the overlap saves on small items.
struct ParserThread {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ParserThread {
    fn start() -> std::io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name("report-parser".to_owned())
            .spawn(move || {
                for job in rx {
                    let mut chan = ChannelSink {
                        tx: job.reply,
                        batch: Vec::with_capacity(BATCH),
                    };
                    let result =
                        parse::parse_item(&job.bytes, &job.limits, &mut chan).and_then(|found| {
                            chan.flush().map_err(|source| ParseError::Sink { source })?;
                            Ok(found)
                        });
                    // Closing the messages first tells the writer that
                    // the result follows.
                    drop(chan);
                    // The writer may have stopped at a database error.
                    let _ = job.done.send(result);
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            handle: Some(handle),
        })
    }
}

impl Drop for ParserThread {
    fn drop(&mut self) {
        // No more jobs: the thread's loop ends.
        self.jobs = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Parses `bytes` on the parsing thread while this one writes what it
/// finds into `sink` (the item's transaction): decompressing and parsing
/// overlap with SQLite. The outcome is the one of
/// `parse::parse_item(bytes, limits, sink)`: the writes happen in the same
/// order, a database error stops the item at the same write (the parser
/// then stops too), a parse error rejects the item (the caller rolls
/// back), and a report the database already holds is a duplicate. The
/// channel is bounded, so memory does not grow with the item.
fn pipelined(
    parser: &ParserThread,
    bytes: &[u8],
    limits: &IngestLimits,
    sink: &mut TxSink<'_>,
) -> Result<Vec<Found>, ParseError> {
    let sink_err = |source| ParseError::Sink { source };
    let (reply, rx) = std::sync::mpsc::sync_channel(16);
    let (done, result) = std::sync::mpsc::sync_channel(1);
    let job = Job {
        bytes: bytes.to_vec(),
        limits: limits.clone(),
        reply,
        done,
    };
    let stopped = || ParseError::Sink {
        source: "the report parsing thread stopped (a bug: it panicked)".into(),
    };
    parser
        .jobs
        .as_ref()
        .ok_or_else(stopped)?
        .send(job)
        .map_err(|_| stopped())?;
    // Whether each report, in order, was new to the database.
    let mut new = Vec::new();
    // On an early return `rx` is dropped: the parser's next send fails
    // and it stops the item.
    for msg in &rx {
        match msg {
            Parsed::Header(h) => new.push(sink.header(&h).map_err(sink_err)?),
            Parsed::Records(records) => {
                for r in &records {
                    sink.record(r).map_err(sink_err)?;
                }
            }
            Parsed::End(s) => sink.end(&s).map_err(sink_err)?,
            Parsed::Failure(r) => new.push(sink.failure(&r).map_err(sink_err)?),
            Parsed::Tls(r) => new.push(sink.tls(&r).map_err(sink_err)?),
        }
    }
    let mut found = result.recv().map_err(|_| stopped())??;
    // One `Found` per report, in the order the sink saw them.
    for (f, new) in found.iter_mut().zip(new) {
        f.duplicate = !new;
    }
    Ok(found)
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
        let alive = self
            .parser
            .as_ref()
            .and_then(|p| p.handle.as_ref())
            .is_some_and(|h| !h.is_finished());
        if !alive {
            self.parser = Some(ParserThread::start().map_err(|e| StoreError::Backend {
                source: Box::new(e),
            })?);
        }
        let parser = self.parser.take();
        let result = self.in_transaction(origin, |sink| match &parser {
            Some(parser) => pipelined(parser, bytes, limits, sink),
            None => parse::parse_item(bytes, limits, sink),
        });
        self.parser = parser;
        result
    }

    fn ingest_xml_stream(
        &mut self,
        origin: &str,
        input: &mut dyn std::io::Read,
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        self.in_transaction(origin, |sink| parse::parse_xml_stream(input, limits, sink))
    }

    fn list(&self, domain: Option<&str>) -> Result<Vec<ReportRow>, StoreError> {
        let mut out = Vec::new();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, org_name, report_id, policy_domain, date_begin, date_end, \
                 record_count, message_count FROM reports \
                 WHERE ?1 IS NULL OR policy_domain = ?1 ORDER BY date_begin DESC, id DESC",
            )
            .map_err(q("list reports"))?;
        let rows = stmt
            .query_map([domain], |r| {
                Ok(ReportRow {
                    kind: ReportKind::Aggregate,
                    id: r.get(0)?,
                    org: r.get(1)?,
                    report_id: r.get(2)?,
                    domain: r.get(3)?,
                    begin: r.get::<_, i64>(4)?.to_string(),
                    end: r.get::<_, i64>(5)?.to_string(),
                    records: r.get(6)?,
                    messages: r.get(7)?,
                })
            })
            .map_err(q("list reports"))?;
        for row in rows {
            out.push(row.map_err(q("list reports"))?);
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT t.id, t.org_name, t.report_id, \
                 coalesce((SELECT min(policy_domain) FROM tls_policies p WHERE p.tls_report_id = t.id), ''), \
                 t.date_begin, t.date_end, \
                 (SELECT count(*) FROM tls_policies p WHERE p.tls_report_id = t.id), \
                 coalesce((SELECT sum(successful_count + failure_count) FROM tls_policies p WHERE p.tls_report_id = t.id), 0) \
                 FROM tls_reports t ORDER BY t.date_begin DESC, t.id DESC",
            )
            .map_err(q("list TLS reports"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ReportRow {
                    kind: ReportKind::Tls,
                    id: r.get(0)?,
                    org: r.get(1)?,
                    report_id: r.get(2)?,
                    domain: r.get(3)?,
                    begin: r.get(4)?,
                    end: r.get(5)?,
                    records: r.get(6)?,
                    messages: r.get(7)?,
                })
            })
            .map_err(q("list TLS reports"))?;
        for row in rows {
            let row = row.map_err(q("list TLS reports"))?;
            if domain.is_none_or(|d| d == row.domain) {
                out.push(row);
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, coalesce(reporter, ''), fingerprint, reported_domain, \
                 coalesce(arrival_date, '') FROM failure_reports \
                 WHERE ?1 IS NULL OR reported_domain = ?1 ORDER BY id DESC",
            )
            .map_err(q("list failure reports"))?;
        let rows = stmt
            .query_map([domain], |r| {
                let date: String = r.get(4)?;
                Ok(ReportRow {
                    kind: ReportKind::Failure,
                    id: r.get(0)?,
                    org: r.get(1)?,
                    report_id: r.get(2)?,
                    domain: r.get(3)?,
                    begin: date.clone(),
                    end: date,
                    records: 1,
                    messages: 1,
                })
            })
            .map_err(q("list failure reports"))?;
        for row in rows {
            out.push(row.map_err(q("list failure reports"))?);
        }
        Ok(out)
    }

    fn show(&self, kind: ReportKind, id: i64) -> Result<Option<ReportDetail>, StoreError> {
        match kind {
            ReportKind::Aggregate => self.show_aggregate(id),
            ReportKind::Tls => self.show_tls(id),
            ReportKind::Failure => self.show_failure(id),
        }
    }
}

#[cfg(test)]
mod pipeline_tests {
    use super::*;

    fn report(id: &str, records: usize, tail: &str) -> String {
        let record = "<record><row><source_ip>192.0.2.1</source_ip><count>2</count>\
            <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf>\
            </policy_evaluated></row><identifiers><header_from>example.com</header_from>\
            </identifiers><auth_results><dkim><domain>example.com</domain><result>pass</result>\
            </dkim></auth_results></record>";
        format!(
            "<feedback><report_metadata><org_name>o</org_name><report_id>{id}</report_id>\
             <date_range><begin>0</begin><end>86400</end></date_range></report_metadata>\
             <policy_published><domain>example.com</domain><p>reject</p></policy_published>\
             {}{tail}</feedback>",
            record.repeat(records)
        )
    }

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, body) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .expect("start");
            w.write_all(body.as_bytes()).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn many_batches_and_duplicates_in_one_item() {
        let mut store = SqliteStore::open_in_memory().expect("store");
        let limits = IngestLimits::default();
        // More records than one batch, not a multiple of it.
        let first = report("a", 3 * BATCH + 5, "");
        let found = store
            .ingest_item("first", first.as_bytes(), &limits)
            .expect("db")
            .expect("parses");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].records, 3 * BATCH as u64 + 5);
        assert!(!found[0].duplicate);
        assert_eq!(
            store.count(Table::Records).expect("count"),
            3 * BATCH as i64 + 5
        );
        // A zip holding the stored report and a new one: the first is a
        // duplicate and adds no rows, the second is stored.
        let second = report("b", 2, "");
        let zip = zip_of(&[("a.xml", &first), ("b.xml", &second)]);
        let found = store
            .ingest_item("zip", &zip, &limits)
            .expect("db")
            .expect("parses");
        let seen: Vec<_> = found
            .iter()
            .map(|f| (f.report_id.as_str(), f.duplicate))
            .collect();
        assert_eq!(seen, [("a", true), ("b", false)]);
        assert_eq!(store.count(Table::Reports).expect("count"), 2);
        assert_eq!(
            store.count(Table::Records).expect("count"),
            3 * BATCH as i64 + 7
        );
    }

    #[test]
    fn an_error_after_many_records_stores_nothing() {
        let mut store = SqliteStore::open_in_memory().expect("store");
        let bad = report(
            "c",
            2 * BATCH,
            "<record><row><source_ip>x</source_ip></row></record>",
        );
        let err = store
            .ingest_item("bad", bad.as_bytes(), &IngestLimits::default())
            .expect("db")
            .expect_err("rejected");
        assert!(err.to_string().contains("row/source_ip"), "{err}");
        assert_eq!(store.count(Table::Reports).expect("count"), 0);
        assert_eq!(store.count(Table::Records).expect("count"), 0);
    }
}

impl SqliteStore {
    fn show_aggregate(&self, id: i64) -> Result<Option<ReportDetail>, StoreError> {
        let head = self
            .conn
            .query_row(
                "SELECT r.org_name, r.report_id, r.policy_domain, r.date_begin, r.date_end, \
                 r.record_count, r.message_count, r.email, r.extra_contact_info, r.version, \
                 r.namespace, r.generator, r.errors, r.warnings, r.extensions, r.origin, \
                 p.adkim, p.aspf, p.p, p.sp, p.np, p.pct, p.fo, p.testing, p.discovery_method \
                 FROM reports r LEFT JOIN policy_published p ON p.report_id = r.id WHERE r.id = ?1",
                [id],
                |r| {
                    let row = ReportRow {
                        kind: ReportKind::Aggregate,
                        id,
                        org: r.get(0)?,
                        report_id: r.get(1)?,
                        domain: r.get(2)?,
                        begin: r.get::<_, i64>(3)?.to_string(),
                        end: r.get::<_, i64>(4)?.to_string(),
                        records: r.get(5)?,
                        messages: r.get(6)?,
                    };
                    let details = serde_json::json!({
                        "email": r.get::<_, Option<String>>(7)?,
                        "extra_contact_info": r.get::<_, Option<String>>(8)?,
                        "version": r.get::<_, Option<String>>(9)?,
                        "namespace": r.get::<_, Option<String>>(10)?,
                        "generator": r.get::<_, Option<String>>(11)?,
                        "errors": opt_json(r.get(12)?),
                        "warnings": opt_json(r.get(13)?),
                        "extensions": opt_json(r.get(14)?),
                        "origin": r.get::<_, String>(15)?,
                        "policy_published": {
                            "adkim": r.get::<_, Option<String>>(16)?,
                            "aspf": r.get::<_, Option<String>>(17)?,
                            "p": r.get::<_, Option<String>>(18)?,
                            "sp": r.get::<_, Option<String>>(19)?,
                            "np": r.get::<_, Option<String>>(20)?,
                            "pct": r.get::<_, Option<i64>>(21)?,
                            "fo": r.get::<_, Option<String>>(22)?,
                            "testing": r.get::<_, Option<bool>>(23)?,
                            "discovery_method": r.get::<_, Option<String>>(24)?,
                        },
                    });
                    Ok((row, details))
                },
            )
            .optional()
            .map_err(q("show report"))?;
        let Some((row, details)) = head else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, \
                 envelope_from, envelope_to, reasons, dkim_results, spf_results \
                 FROM records WHERE report_id = ?1 ORDER BY id",
            )
            .map_err(q("show records"))?;
        let records = stmt
            .query_map([id], |r| {
                Ok(RecordRow {
                    source_ip: r.get(0)?,
                    count: r.get(1)?,
                    disposition: r.get(2)?,
                    dkim_aligned: r.get(3)?,
                    spf_aligned: r.get(4)?,
                    header_from: r.get(5)?,
                    envelope_from: r.get(6)?,
                    envelope_to: r.get(7)?,
                    reasons: opt_json(r.get(8)?),
                    dkim_results: opt_json(r.get(9)?),
                    spf_results: opt_json(r.get(10)?),
                })
            })
            .map_err(q("show records"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q("show records"))?;
        Ok(Some(ReportDetail {
            row,
            details,
            records,
        }))
    }

    fn show_tls(&self, id: i64) -> Result<Option<ReportDetail>, StoreError> {
        let Some(row) = self
            .list(None)?
            .into_iter()
            .find(|r| r.kind == ReportKind::Tls && r.id == id)
        else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT p.id, p.policy_type, p.policy_domain, p.policy_string, p.mx_host, \
                 p.successful_count, p.failure_count FROM tls_policies p \
                 WHERE p.tls_report_id = ?1 ORDER BY p.id",
            )
            .map_err(q("show TLS policies"))?;
        let policies = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    serde_json::json!({
                        "policy_type": r.get::<_, String>(1)?,
                        "policy_domain": r.get::<_, String>(2)?,
                        "policy_string": opt_json(r.get(3)?),
                        "mx_host": opt_json(r.get(4)?),
                        "successful": r.get::<_, i64>(5)?,
                        "failed": r.get::<_, i64>(6)?,
                    }),
                ))
            })
            .map_err(q("show TLS policies"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q("show TLS policies"))?;
        let mut out = Vec::with_capacity(policies.len());
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT result_type, sending_mta_ip, receiving_mx_hostname, receiving_ip, \
                 failed_session_count, failure_reason_code FROM tls_failures \
                 WHERE tls_policy_id = ?1 ORDER BY id",
            )
            .map_err(q("show TLS failures"))?;
        for (pid, mut policy) in policies {
            let failures = stmt
                .query_map([pid], |r| {
                    Ok(serde_json::json!({
                        "result_type": r.get::<_, String>(0)?,
                        "sending_mta_ip": r.get::<_, Option<String>>(1)?,
                        "receiving_mx_hostname": r.get::<_, Option<String>>(2)?,
                        "receiving_ip": r.get::<_, Option<String>>(3)?,
                        "failed_session_count": r.get::<_, i64>(4)?,
                        "failure_reason_code": r.get::<_, Option<String>>(5)?,
                    }))
                })
                .map_err(q("show TLS failures"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(q("show TLS failures"))?;
            policy["failure_details"] = serde_json::Value::Array(failures);
            out.push(policy);
        }
        Ok(Some(ReportDetail {
            row,
            details: serde_json::json!({ "policies": out }),
            records: Vec::new(),
        }))
    }

    fn show_failure(&self, id: i64) -> Result<Option<ReportDetail>, StoreError> {
        self.conn
            .query_row(
                "SELECT coalesce(reporter, ''), fingerprint, reported_domain, \
                 coalesce(arrival_date, ''), feedback_type, user_agent, source_ip, \
                 original_mail_from, authentication_results, dkim_domain, spf_dns, \
                 original_subject, original_headers, from_text FROM failure_reports WHERE id = ?1",
                [id],
                |r| {
                    let date: String = r.get(3)?;
                    Ok(ReportDetail {
                        row: ReportRow {
                            kind: ReportKind::Failure,
                            id,
                            org: r.get(0)?,
                            report_id: r.get(1)?,
                            domain: r.get(2)?,
                            begin: date.clone(),
                            end: date,
                            records: 1,
                            messages: 1,
                        },
                        details: serde_json::json!({
                            "feedback_type": r.get::<_, String>(4)?,
                            "user_agent": r.get::<_, Option<String>>(5)?,
                            "source_ip": r.get::<_, Option<String>>(6)?,
                            "original_mail_from": r.get::<_, Option<String>>(7)?,
                            "authentication_results": opt_json(r.get(8)?),
                            "dkim_domain": r.get::<_, Option<String>>(9)?,
                            "spf_dns": r.get::<_, Option<String>>(10)?,
                            "original_subject": r.get::<_, Option<String>>(11)?,
                            "original_headers": r.get::<_, Option<String>>(12)?,
                            "from_text": r.get::<_, bool>(13)?,
                        }),
                        records: Vec::new(),
                    })
                },
            )
            .optional()
            .map_err(q("show failure report"))
    }
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
}

// ---------------------------------------------------------------------------
// Checklist queries (`mailauth checklist`, `mailauth plan` hint): read-only
// summaries of aggregate data for one policy domain over a time window.
// ---------------------------------------------------------------------------

/// DMARC aggregate volume of one domain over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// Messages reported.
    pub messages: i64,
    /// Messages whose evaluated DKIM or SPF result was an aligned pass.
    pub dmarc_pass: i64,
}

/// One source IP whose mail did not pass DMARC, with the identities it used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailingSource {
    pub source_ip: String,
    /// Messages from this IP that did not pass DMARC.
    pub messages: i64,
    /// Distinct SPF-checked domains (MAIL FROM or HELO), sorted.
    pub spf_domains: Vec<String>,
    /// Distinct DKIM `d=` domains, sorted.
    pub dkim_domains: Vec<String>,
    /// Distinct DKIM selectors, sorted.
    pub dkim_selectors: Vec<String>,
}

/// The read queries the onboarding checklist needs. `since` is unix
/// seconds; a report counts when its `date_begin` is at or after it.
pub trait ChecklistQueries {
    /// Distinct UTC days on which an aggregate report period for `domain`
    /// began.
    fn aggregate_days(&self, domain: &str, since: i64) -> Result<i64, StoreError>;
    /// Total and DMARC-pass message counts for `domain`.
    fn volume(&self, domain: &str, since: i64) -> Result<Volume, StoreError>;
    /// Sources with mail that did not pass DMARC, most messages first.
    fn failing_sources(
        &self,
        domain: &str,
        since: i64,
        limit: usize,
    ) -> Result<Vec<FailingSource>, StoreError>;
}

fn split_set(s: Option<String>) -> Vec<String> {
    let mut v: Vec<String> = s
        .unwrap_or_default()
        .split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect();
    v.sort();
    v.dedup();
    v
}

impl ChecklistQueries for SqliteStore {
    fn aggregate_days(&self, domain: &str, since: i64) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT count(DISTINCT date_begin / 86400) FROM reports \
                 WHERE policy_domain = ?1 AND date_begin >= ?2",
            )
            .and_then(|mut s| s.query_row(params![domain, since], |r| r.get(0)))
            .map_err(q("checklist aggregate days"))
    }

    fn volume(&self, domain: &str, since: i64) -> Result<Volume, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT coalesce(sum(r.count), 0), coalesce(sum(CASE WHEN r.dkim_aligned = 'pass' \
                 OR r.spf_aligned = 'pass' THEN r.count ELSE 0 END), 0) \
                 FROM records r JOIN reports p ON p.id = r.report_id \
                 WHERE p.policy_domain = ?1 AND p.date_begin >= ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![domain, since], |r| {
                    Ok(Volume {
                        messages: r.get(0)?,
                        dmarc_pass: r.get(1)?,
                    })
                })
            })
            .map_err(q("checklist volume"))
    }

    fn failing_sources(
        &self,
        domain: &str,
        since: i64,
        limit: usize,
    ) -> Result<Vec<FailingSource>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT r.source_ip, sum(r.count), group_concat(DISTINCT r.spf_domain), \
                 group_concat(DISTINCT r.dkim_domain), group_concat(DISTINCT r.dkim_selector) \
                 FROM records r JOIN reports p ON p.id = r.report_id \
                 WHERE p.policy_domain = ?1 AND p.date_begin >= ?2 \
                 AND coalesce(r.dkim_aligned, '') <> 'pass' AND coalesce(r.spf_aligned, '') <> 'pass' \
                 GROUP BY r.source_ip ORDER BY sum(r.count) DESC, r.source_ip LIMIT ?3",
            )
            .map_err(q("checklist failing sources"))?;
        let rows = stmt
            .query_map(
                params![domain, since, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    Ok(FailingSource {
                        source_ip: r.get(0)?,
                        messages: r.get(1)?,
                        spf_domains: split_set(r.get(2)?),
                        dkim_domains: split_set(r.get(3)?),
                        dkim_selectors: split_set(r.get(4)?),
                    })
                },
            )
            .map_err(q("checklist failing sources"))?;
        rows.collect::<Result<_, _>>()
            .map_err(q("checklist failing sources"))
    }
}
// --- end of checklist queries ----------------------------------------------
