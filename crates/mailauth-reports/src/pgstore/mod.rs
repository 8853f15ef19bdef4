//! The PostgreSQL report store: the same schema, migrations, dedupe and
//! queries as the SQLite store, for several ingest workers on several
//! machines sharing one database.
//!
//! Owns the PostgreSQL SQL (schema, migrations, inserts, read queries) and
//! the one-way copy of an SQLite store into PostgreSQL. Implements
//! [`ReportStore`] and [`ChecklistQueries`] (and, in `reports::dashq`,
//! the dashboard queries), so callers do not care which
//! backend they hold. Leaves parsing to `reports::parse`, sources to
//! `reports::ingest` and the choice of backend to `reports::store_cli`.
//! Parts: `schema` (migrations), `write` (inserts; records with binary
//! `COPY`), `read` (list, show, checklist queries), `copy` (`mailauth
//! store copy`), `tls` (`sslmode` and `sslrootcert` in the URL; TLS over
//! rustls); `reports delete` and `reports prune` are here. Sums of counts
//! saturate at `i64::MAX` (`pg_sum!` of `reports::dashq`), as on SQLite.
//!
//! Concurrency: every item is one transaction; a report is claimed by
//! `INSERT … ON CONFLICT DO NOTHING RETURNING id` on the report's natural
//! key. A worker racing another on the same report blocks on the unique
//! index until the other commits, then inserts nothing and reports a
//! duplicate, so no report is lost or counted twice.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use postgres::error::SqlState;
use postgres::{Client, NoTls, Statement, Transaction};
use serde::Serialize;

mod copy;
mod read;
mod schema;
mod tls;
mod write;

pub use copy::CopySummary;
use schema::{MIGRATION_LOCK, MIGRATIONS};
use write::{RawRecord, RecordCols, TxSink, retryable};

use super::IngestLimits;
use super::parse::{
    self, AggregateHeader, AggregateSummary, AggregateVisitor, FailureReport, Found, ParseError,
    ParsedItem, Record, ReportKind, ReportSink, SinkError, TlsReport,
};
use super::store::{
    ChecklistQueries, FailingSource, PRUNE_COUNT_SQL, Pruned, PrunedDomain, RecordRow,
    ReportDetail, ReportRow, ReportStore, SCHEMA_VERSION, SqliteStore, StoreError, Table, Volume,
    json, list, now, opt_json, split_set,
};

/// Errors of the PostgreSQL store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    #[error("invalid PostgreSQL URL {url}: {source}")]
    Url {
        url: String,
        source: postgres::Error,
    },
    #[error(
        "the PostgreSQL URL {url} contains a password; give it in MAILAUTH_STORE_PASSWORD or --store-password-file instead"
    )]
    PasswordInUrl { url: String },
    /// The message carries the causes (a TLS handshake error says why:
    /// unknown issuer, name mismatch).
    #[error(
        "cannot connect to PostgreSQL report store {target}: {}",
        crate::provider::http::error_chain(source)
    )]
    Connect {
        target: String,
        source: postgres::Error,
    },
    /// `sslmode` / `sslrootcert` in the URL are wrong or unusable.
    #[error("PostgreSQL report store {target}: {detail}")]
    Tls { target: String, detail: String },
    #[error(
        "PostgreSQL report store {target} has schema version {found}, newer than this program knows ({known}); upgrade mailauth"
    )]
    NewerSchema {
        target: String,
        found: i64,
        known: i64,
    },
    /// A read-only command found a store that `mailauth store migrate`
    /// must bring up to date first (it never migrates on its own).
    #[error(
        "report store {target} has schema version {found}; run `mailauth store migrate` (this program reads version {known})"
    )]
    OlderSchema {
        target: String,
        found: i64,
        known: i64,
    },
    #[error("PostgreSQL query failed ({what}): {source}")]
    Query {
        what: &'static str,
        source: postgres::Error,
    },
    #[error("cannot read SQLite store {path} ({what}): {source}")]
    ReadSqlite {
        path: PathBuf,
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn q(what: &'static str) -> impl Fn(postgres::Error) -> PgError {
    move |source| PgError::Query { what, source }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Store(s) => s,
            other => StoreError::Backend {
                source: Box::new(other),
            },
        }
    }
}

/// Records buffered (in the binary `COPY` format, ~200 bytes each) before
/// one `COPY`.
const RECORD_BATCH: usize = 20_000;

/// Attempts per item when PostgreSQL aborts a transaction for a
/// deadlock or serialization failure (both safe to retry).
const ITEM_ATTEMPTS: usize = 3;

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Where to connect, without the password: safe to print and log.
fn describe(config: &postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// Prepared statements, prepared once per connection.
struct Stmts {
    insert_report: Statement,
    insert_policy: Statement,
    update_report: Statement,
    insert_failure: Statement,
    insert_tls: Statement,
    insert_tls_policy: Statement,
    insert_tls_failure: Statement,
}

impl Stmts {
    fn prepare(c: &mut Client) -> Result<Self, PgError> {
        let p = |c: &mut Client, sql: &str| c.prepare(sql).map_err(q("prepare statement"));
        Ok(Self {
            insert_report: p(
                c,
                "INSERT INTO reports (org_name, email, extra_contact_info, report_id, date_begin, \
                 date_end, policy_domain, version, namespace, generator, errors, warnings, origin, \
                 ingested_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )?,
            insert_policy: p(
                c,
                "INSERT INTO policy_published (report_id, domain, adkim, aspf, p, sp, np, pct, \
                 fo, testing, discovery_method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )?,
            update_report: p(
                c,
                "UPDATE reports SET record_count = $2, message_count = $3, extensions = $4, \
                 warnings = $5 WHERE id = $1",
            )?,
            insert_failure: p(
                c,
                "INSERT INTO failure_reports (fingerprint, reporter, feedback_type, user_agent, \
                 version, auth_failure, reported_domain, source_ip, arrival_date, \
                 original_mail_from, original_rcpt_to, authentication_results, delivery_result, \
                 dkim_domain, dkim_identity, dkim_selector, spf_dns, identity_alignment, \
                 original_subject, original_message_id, original_headers, from_text, origin, \
                 ingested_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                 $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )?,
            insert_tls: p(
                c,
                "INSERT INTO tls_reports (org_name, report_id, date_begin, date_end, \
                 contact_info, origin, ingested_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )?,
            insert_tls_policy: p(
                c,
                "INSERT INTO tls_policies (tls_report_id, policy_type, policy_domain, \
                 policy_string, mx_host, successful_count, failure_count) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )?,
            insert_tls_failure: p(
                c,
                "INSERT INTO tls_failures (tls_policy_id, result_type, sending_mta_ip, \
                 receiving_mx_hostname, receiving_mx_helo, receiving_ip, \
                 failed_session_count, additional_information, failure_reason_code) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )?,
        })
    }
}

/// PostgreSQL implementation of [`ReportStore`] and [`ChecklistQueries`].
pub struct PgStore {
    /// `ReportStore` reads take `&self`; the client needs `&mut`.
    client: Mutex<Client>,
    stmts: Stmts,
    target: String,
    /// Schema version found when this store was opened (before migrating).
    found: i64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// What [`PgStore::migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Migrated {
    pub from: i64,
    pub to: i64,
}

/// Connects to `url` with the password given apart from it (a password
/// in the URL is refused); returns the client and the target as messages
/// name it (no password). TLS per the URL's `sslmode` (see [`tls`]):
/// `disable` by default on loopback, `verify-full` elsewhere.
fn connect(url: &str, password: Option<&str>) -> Result<(Client, String), PgError> {
    let (plain_url, settings) = tls::split_url(url).map_err(|detail| PgError::Tls {
        target: redact(url),
        detail,
    })?;
    let mut config: postgres::Config = plain_url.parse().map_err(|source| PgError::Url {
        url: redact(url),
        source,
    })?;
    let target = describe(&config);
    if config.get_password().is_some() {
        return Err(PgError::PasswordInUrl { url: target });
    }
    if let Some(pw) = password {
        config.password(pw);
    }
    if config.get_application_name().is_none() {
        config.application_name("mailauth");
    }
    let mode = tls::effective_mode(&settings, config.get_hosts());
    config.ssl_mode(tls::pg_mode(mode));
    let connect_err = |source| PgError::Connect {
        target: format!("{target} (sslmode={})", mode.as_str()),
        source,
    };
    let client = match mode {
        tls::SslMode::Disable => config.connect(NoTls).map_err(connect_err)?,
        _ => {
            let tls = tls::connector(mode, settings.root_cert.as_deref()).map_err(|detail| {
                PgError::Tls {
                    target: target.clone(),
                    detail,
                }
            })?;
            config.connect(tls).map_err(connect_err)?
        }
    };
    Ok((client, target))
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), with the
    /// password given apart from the URL; refuses a schema newer than this
    /// program knows and applies pending migrations (as the SQLite store
    /// does on open), serialised between workers by an advisory lock.
    pub fn open(url: &str, password: Option<&str>) -> Result<Self, PgError> {
        let (mut client, target) = connect(url, password)?;
        let found = read_version(&mut client)?;
        if found > SCHEMA_VERSION {
            return Err(PgError::NewerSchema {
                target,
                found,
                known: SCHEMA_VERSION,
            });
        }
        let stmts = if found == SCHEMA_VERSION {
            Some(Stmts::prepare(&mut client)?)
        } else {
            None
        };
        let mut store = Self {
            stmts: match stmts {
                Some(s) => s,
                None => {
                    // Tables are missing: prepare after migrating.
                    let mut me = PartialStore {
                        client: &mut client,
                        target: &target,
                    };
                    me.migrate()?;
                    Stmts::prepare(&mut client)?
                }
            },
            client: Mutex::new(client),
            target,
            found,
        };
        // Re-check: another worker may have migrated meanwhile.
        let v = store.schema_version_mut()?;
        if v > SCHEMA_VERSION {
            return Err(PgError::NewerSchema {
                target: store.target.clone(),
                found: v,
                known: SCHEMA_VERSION,
            });
        }
        Ok(store)
    }

    /// Connects for reading only: the session is `SET
    /// default_transaction_read_only = on` before anything else, so every
    /// statement runs in a read-only transaction and the server refuses
    /// any write; the schema is checked, never migrated. A schema older
    /// than this program is [`PgError::OlderSchema`], a newer one
    /// [`PgError::NewerSchema`]. For `plan`, `checklist` and `inspect`.
    pub fn open_read_only(url: &str, password: Option<&str>) -> Result<Self, PgError> {
        let (mut client, target) = connect(url, password)?;
        // PostgreSQL 15 §20.11.1: "A read-only SQL transaction cannot
        // alter non-temporary tables." Set for the session, it covers every
        // statement this connection runs, whatever code path issues it.
        client
            .batch_execute("SET default_transaction_read_only = on")
            .map_err(q("make the session read-only"))?;
        let found = read_version(&mut client)?;
        if found > SCHEMA_VERSION {
            return Err(PgError::NewerSchema {
                target,
                found,
                known: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(PgError::OlderSchema {
                target,
                found,
                known: SCHEMA_VERSION,
            });
        }
        // Preparing plans nothing to write and needs the tables, which a
        // current schema has.
        let stmts = Stmts::prepare(&mut client)?;
        Ok(Self {
            client: Mutex::new(client),
            stmts,
            target,
            found,
        })
    }

    /// The schema version found at open, before any migration.
    pub fn found_version(&self) -> i64 {
        self.found
    }

    /// The connection target, without password.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub(super) fn client(&self) -> MutexGuard<'_, Client> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn client_mut(&mut self) -> &mut Client {
        self.client.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    fn schema_version_mut(&mut self) -> Result<i64, PgError> {
        let c = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        read_version(c)
    }

    /// Applies pending migrations, serialised between workers by an
    /// advisory lock; refuses a newer schema.
    pub fn migrate(&self) -> Result<Migrated, PgError> {
        let mut c = self.client();
        PartialStore {
            client: &mut c,
            target: &self.target,
        }
        .migrate()
    }

    /// The schema version stored in the database (0: empty database).
    pub fn schema_version(&self) -> Result<i64, PgError> {
        read_version(&mut self.client())
    }

    /// Row counts per table (tests, summaries).
    pub fn count(&self, table: Table) -> Result<i64, PgError> {
        let sql = match table {
            Table::Reports => "SELECT count(*) FROM reports",
            Table::Records => "SELECT count(*) FROM records",
            Table::FailureReports => "SELECT count(*) FROM failure_reports",
            Table::TlsReports => "SELECT count(*) FROM tls_reports",
            Table::TlsPolicies => "SELECT count(*) FROM tls_policies",
            Table::TlsFailures => "SELECT count(*) FROM tls_failures",
        };
        self.client()
            .query_one(sql, &[])
            .map(|r| r.get(0))
            .map_err(q("count rows"))
    }

    fn ingest_once(
        &mut self,
        origin: &str,
        bytes: &[u8],
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, postgres::Error> {
        self.ingest_with(origin, |sink| parse::parse_item(bytes, limits, sink))
    }

    /// One item in one transaction: `parse` streams its reports into the
    /// transaction's sink; committed only if the whole item parsed.
    fn ingest_with(
        &mut self,
        origin: &str,
        parse: impl FnOnce(&mut TxSink<'_, '_>) -> Result<Vec<Found>, ParseError>,
    ) -> Result<Result<Vec<Found>, ParseError>, postgres::Error> {
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut tx = client.transaction()?;
        let result = {
            let mut sink = TxSink {
                tx: &mut tx,
                stmts: &self.stmts,
                origin,
                now: now(),
                report: None,
                records: RecordCols::default(),
            };
            parse(&mut sink).and_then(|found| {
                sink.flush()
                    .map(|()| found)
                    .map_err(|e| ParseError::Sink { source: e.into() })
            })
        };
        match result {
            Ok(found) => {
                tx.commit()?;
                Ok(Ok(found))
            }
            Err(ParseError::Sink { source }) => {
                drop(tx);
                match source.downcast::<postgres::Error>() {
                    Ok(e) => Err(*e),
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

/// A connection during migration (before statements are prepared).
struct PartialStore<'a> {
    client: &'a mut Client,
    target: &'a str,
}

impl PartialStore<'_> {
    fn migrate(&mut self) -> Result<Migrated, PgError> {
        let mut tx = self.client.transaction().map_err(q("begin migration"))?;
        // Held until commit: a second worker waits here, then finds the
        // schema current.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(q("lock migration"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL PRIMARY KEY)",
        )
        .map_err(q("create schema_version"))?;
        let found: i64 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
            .map_err(q("read schema_version"))?
            .get(0);
        if found > SCHEMA_VERSION {
            return Err(PgError::NewerSchema {
                target: self.target.to_owned(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        for (i, step) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.batch_execute(step).map_err(q("apply migration"))?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&(i as i64 + 1)],
            )
            .map_err(q("record migration"))?;
        }
        tx.commit().map_err(q("commit migration"))?;
        Ok(Migrated {
            from: found,
            to: SCHEMA_VERSION.max(found),
        })
    }
}

fn read_version(c: &mut Client) -> Result<i64, PgError> {
    let exists: bool = c
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .map_err(q("look for schema_version"))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    c.query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .map(|r| r.get(0))
        .map_err(q("read schema_version"))
}

/// A URL for an error message: anything between `://` and `@` that holds
/// a `:` (a password) is cut.
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

impl ReportStore for PgStore {
    fn ingest_item(
        &mut self,
        origin: &str,
        bytes: &[u8],
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.ingest_once(origin, bytes, limits) {
                Ok(r) => return Ok(r),
                Err(e) if attempt < ITEM_ATTEMPTS && retryable(&e) => {}
                Err(source) => {
                    return Err(PgError::Query {
                        what: "store report",
                        source,
                    }
                    .into());
                }
            }
        }
    }

    /// Retried on a transient server error, as
    /// [`ingest_item`](ReportStore::ingest_item) is: the parsed item is
    /// replayed into the new transaction.
    fn store_parsed(
        &mut self,
        origin: &str,
        item: &ParsedItem,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.ingest_with(origin, |sink| item.replay(sink)) {
                Ok(r) => return Ok(r),
                Err(e) if attempt < ITEM_ATTEMPTS && retryable(&e) => {}
                Err(source) => {
                    return Err(PgError::Query {
                        what: "store report",
                        source,
                    }
                    .into());
                }
            }
        }
    }

    /// A plain-XML file too large to hold is parsed as it is read, as on
    /// SQLite: memory stays flat whatever the report's size. Not retried
    /// on a transient server error (the input is consumed); the item then
    /// fails and is read again on the next run.
    fn ingest_xml_stream(
        &mut self,
        origin: &str,
        input: &mut dyn std::io::Read,
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        self.ingest_with(origin, |sink| parse::parse_xml_stream(input, limits, sink))
            .map_err(|source| {
                PgError::Query {
                    what: "store report",
                    source,
                }
                .into()
            })
    }

    fn list(&self, domain: Option<&str>) -> Result<Vec<ReportRow>, StoreError> {
        Ok(self.list_pg(domain)?)
    }

    fn show(&self, kind: ReportKind, id: i64) -> Result<Option<ReportDetail>, StoreError> {
        Ok(match kind {
            ReportKind::Aggregate => self.show_aggregate(id)?,
            ReportKind::Tls => self.show_tls(id)?,
            ReportKind::Failure => self.show_failure(id)?,
        })
    }

    fn delete(&mut self, ids: &[(ReportKind, i64)]) -> Result<(), StoreError> {
        let mut tx = self.client_mut().transaction().map_err(q("begin delete"))?;
        for &(kind, id) in ids {
            // Children first, as on SQLite (the foreign keys cascade too).
            let steps: &[&str] = match kind {
                ReportKind::Aggregate => &[
                    "DELETE FROM records WHERE report_id = $1",
                    "DELETE FROM policy_published WHERE report_id = $1",
                    "DELETE FROM reports WHERE id = $1",
                ],
                ReportKind::Tls => &[
                    "DELETE FROM tls_failures WHERE tls_policy_id IN \
                     (SELECT id FROM tls_policies WHERE tls_report_id = $1)",
                    "DELETE FROM tls_policies WHERE tls_report_id = $1",
                    "DELETE FROM tls_reports WHERE id = $1",
                ],
                ReportKind::Failure => &["DELETE FROM failure_reports WHERE id = $1"],
            };
            let mut removed = 0;
            for sql in steps {
                removed = tx.execute(*sql, &[&id]).map_err(q("delete report"))?;
            }
            if removed == 0 {
                // Dropping `tx` rolls back what was removed before.
                return Err(StoreError::NoSuchReport { kind, id });
            }
        }
        // The rollup's next refresh rebuilds it.
        tx.execute("DELETE FROM dashboard_rollup_v1", &[])
            .map_err(q("reset rollup"))?;
        tx.commit().map_err(q("commit delete"))?;
        Ok(())
    }

    fn prune(&mut self, cutoff: i64, apply: bool) -> Result<Pruned, StoreError> {
        let mut tx = self.client_mut().transaction().map_err(q("begin prune"))?;
        let sql = PRUNE_COUNT_SQL.replace("?1", "$1").replace(
            "ORDER BY r.policy_domain",
            "ORDER BY r.policy_domain COLLATE \"C\"",
        );
        let domains = tx
            .query(sql.as_str(), &[&cutoff])
            .map_err(q("count pruned"))?
            .iter()
            .map(|r| PrunedDomain {
                domain: r.get(0),
                reports: r.get::<_, i64>(1).max(0) as u64,
                records: r.get::<_, i64>(2).max(0) as u64,
            })
            .collect();
        let pruned = Pruned::from_domains(domains);
        if !apply || pruned.reports == 0 {
            return Ok(pruned);
        }
        for sql in [
            "DELETE FROM records WHERE report_id IN (SELECT id FROM reports WHERE date_begin < $1)",
            "DELETE FROM policy_published WHERE report_id IN \
             (SELECT id FROM reports WHERE date_begin < $1)",
            "DELETE FROM reports WHERE date_begin < $1",
        ] {
            tx.execute(sql, &[&cutoff]).map_err(q("prune"))?;
        }
        tx.execute("DELETE FROM dashboard_rollup_v1", &[])
            .map_err(q("reset rollup"))?;
        tx.commit().map_err(q("commit prune"))?;
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn refuses_a_password_in_the_url() {
        match PgStore::open("postgres://u:secret@127.0.0.1:1/db", None) {
            Err(PgError::PasswordInUrl { url }) => {
                assert!(!url.contains("secret"), "{url}");
                assert_eq!(url, "postgres://u@127.0.0.1:1/db");
            }
            other => panic!("expected PasswordInUrl, got {other:?}"),
        }
    }
}
