//! The PostgreSQL report store: the same tables, dedupe and queries as the
//! SQLite store (the aggregate tables partitioned by month, see `schema`),
//! for several ingest workers on several machines sharing one database.
//!
//! Owns the PostgreSQL connection and SQL (schema, migrations, partitions,
//! inserts, delete, prune) and the one-way copy of an SQLite store into
//! PostgreSQL. Implements [`ReportStore`]; the read queries and
//! [`ChecklistQueries`] are in `reports::rows` (list, show, checklist) and
//! `reports::dashq` (dashboards), written once for both stores with the SQL
//! per dialect, so callers do not care which backend they hold. Every
//! column is read with `try_get` ([`pg_get`], or the cells of
//! `reports::dashq`): a column of another type is a [`StoreError::Column`]
//! naming it, never a panic. Leaves parsing to `reports::parse`, sources to
//! `reports::ingest` and the choice of backend to `reports::store_cli`.
//! Built with the `postgres` feature.
//! Parts: `schema` (migrations, partitions), `write` (inserts; a small
//! report whole in one statement, a long one's records with binary `COPY`;
//! the month's partitions made sure of before a report), `copy` (`mailauth store copy`), `tls` (`sslmode` and
//! `sslrootcert` in the URL; TLS over rustls); `reports delete` and
//! `reports prune` are here: prune drops the partitions of the months
//! wholly before its cutoff and deletes row by row only in the month
//! holding it; both keep the dashboards' rollups in their transaction
//! through `reports::dashq` (which owns them), after taking the rollup
//! refresh's advisory lock. Sums of counts saturate at `i64::MAX` (`pg_sum!` of
//! `reports::dashq`), as on SQLite.
//!
//! Concurrency: every item is one transaction, or a savepoint of its
//! group's when the source moves nothing (`ReportStore::begin_group`: files
//! are committed in groups, one commit per group), or, for one small
//! report parsed beforehand, the subtransaction of the session's function
//! that stores it (`whole_report_fn`); a report is claimed by
//! `INSERT … ON CONFLICT DO NOTHING RETURNING id` on the report's natural
//! key. A worker racing another on the same report blocks on the unique
//! index until the other commits, then inserts nothing and reports a
//! duplicate, so no report is lost or counted twice. The natural key holds
//! `date_begin`, the partition key, so it stays one unique index per
//! partition and still decides alone. Each store remembers the months whose
//! partitions exist; a report that finds its month gone (a concurrent
//! prune dropped it) is retried once the months are forgotten. A deadlock
//! inside a group commits the group's earlier items before the item runs
//! again, since their claims are what the other worker waits on.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use postgres::error::SqlState;
use postgres::{Client, GenericClient, NoTls, Statement};
use serde::Serialize;

mod copy;
mod schema;
mod tls;
mod write;

pub use crate::reports::store_cli::CopySummary;
use schema::MIGRATION_LOCK;
pub use schema::MIGRATIONS;
pub use write::WHOLE_REPORT_RECORDS;
use write::{
    MAX_MONTHLY, Prepared, RecordArrays, RecordCols, TxSink, Undone, ensure_month,
    missing_partition, month_of, retryable,
};

use super::IngestLimits;
use super::dashq::{self, Arg, Gone};
use super::parse::{
    self, AggregateHeader, AggregateSummary, AggregateVisitor, FailureReport, Found, ParseError,
    ParsedItem, Record, ReportKind, ReportSink, SinkError, TlsReport,
};
use super::rows::{self, RowQuery};
use super::store::{
    PreparedRecords, Pruned, ReportDetail, ReportRow, ReportStore, RowValues, SCHEMA_VERSION,
    SqliteStore, StoreError, StoreName, Table, json, list, now,
};

fn q(what: &'static str) -> impl Fn(postgres::Error) -> StoreError {
    move |source| StoreError::PgQuery { what, source }
}

/// Column `idx` of `row`, read with `try_get`: a column missing or of
/// another type than `T` is [`StoreError::Column`] naming it (`get`
/// would panic).
pub(crate) fn pg_get<'a, T: postgres::types::FromSql<'a>>(
    row: &'a postgres::Row,
    what: &'static str,
    idx: usize,
) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| StoreError::Column {
        what,
        column: row
            .columns()
            .get(idx)
            .map_or_else(|| idx.to_string(), |c| c.name().to_owned()),
        problem: format!("cannot be read: {e}"),
    })
}

/// Records buffered (in the binary `COPY` format, ~200 bytes each) before
/// one `COPY`: about a MB, copied once more into the `COPY`'s own buffer.
/// With 20,000 the 200,000-record report peaked at 42 MB of RSS, with
/// 5,000 at 26 MB, in the same time (`BENCHMARKS.md`).
const RECORD_BATCH: usize = 5_000;

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
    insert_whole_report: Statement,
    update_report: Statement,
    insert_failure: Statement,
    insert_tls: Statement,
    insert_tls_policy: Statement,
    insert_tls_failure: Statement,
    /// `SELECT` of the session's [`whole_report_fn`]; `None` where it
    /// could not be made (no `TEMP` privilege, a read-only session).
    whole_report_fn: Option<Statement>,
}

impl Stmts {
    fn prepare(c: &mut Client) -> Result<Self, StoreError> {
        let p = |c: &mut Client, sql: &str| c.prepare(sql).map_err(q("prepare statement"));
        Ok(Self {
            // The report's row and its published policy in one statement
            // (one round trip): the policy row is made only when the
            // report's is, and no row comes back for a duplicate.
            insert_report: p(c, &insert_report("", "", ""))?,
            // A small report whole, in one statement ([`whole_report`]).
            insert_whole_report: p(c, &whole_report())?,
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
            whole_report_fn: c
                .batch_execute(&whole_report_fn())
                .and_then(|()| {
                    c.prepare(
                        "SELECT stored_id, failed FROM pg_temp.mailauth_whole_report($1, $2, $3, \
                         $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                         $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, \
                         $33, $34, $35, $36, $37, $38, $39, $40, $41, $42, $43, $44, $45, $46)",
                    )
                })
                .ok(),
        })
    }
}

/// A small report whole: its row with its totals ($25 .. $27), its
/// policy, and its records from one array per column ($28 .. $45,
/// `write::RecordArrays`), `unnest` in the select list (no tuplestore
/// between the arrays and the insert).
fn whole_report() -> String {
    insert_report(
        ", record_count, message_count, extensions",
        ", $25, $26, $27",
        ", c AS (INSERT INTO records (report_id, date_begin, source_ip, count, \
         disposition, dkim_aligned, spf_aligned, reasons, header_from, envelope_from, \
         envelope_to, dkim_domain, dkim_selector, dkim_result, spf_domain, spf_scope, \
         spf_result, dkim_results, spf_results, extensions) \
         SELECT r.id, r.date_begin, unnest($28::text[]), unnest($29::bigint[]), \
         unnest($30::text[]), unnest($31::text[]), unnest($32::text[]), unnest($33::text[]), \
         unnest($34::text[]), unnest($35::text[]), unnest($36::text[]), unnest($37::text[]), \
         unnest($38::text[]), unnest($39::text[]), unnest($40::text[]), unnest($41::text[]), \
         unnest($42::text[]), unnest($43::text[]), unnest($44::text[]), \
         unnest($45::text[]) FROM r)",
    )
}

/// A function of the session (in its `pg_temp` schema: nothing is added
/// to the store's schema, and it goes with the connection) that runs
/// [`whole_report`], the same statement with the same parameters, in a
/// subtransaction of its own: its `EXCEPTION` block. Inside a group it
/// stands for the item's savepoint, without the round trip that makes and
/// releases one. PL/pgSQL, "Trapping Errors": "When an error is caught by
/// an EXCEPTION clause, ... all changes to persistent database state
/// within the block are rolled back." A deadlock, a serialization failure
/// or a partition dropped meanwhile (the errors an item is run again for)
/// are caught and returned as their SQLSTATE, the transaction still
/// usable; any other error ends the transaction, and the batch, as a
/// failed statement does. `$46` has the month's partitions made first
/// (`mailauth_month_partitions_v1` of `$5`, the report's `date_begin`),
/// inside the same block. `stored_id` is the report's id, NULL for a
/// duplicate.
fn whole_report_fn() -> String {
    format!(
        "CREATE OR REPLACE FUNCTION pg_temp.mailauth_whole_report(\
         text, text, text, text, bigint, bigint, text, text, text, text, text, text, text, \
         bigint, text, text, text, text, text, text, bigint, text, boolean, text, \
         bigint, bigint, text, \
         text[], bigint[], text[], text[], text[], text[], text[], text[], text[], text[], \
         text[], text[], text[], text[], text[], text[], text[], text[], \
         boolean, OUT stored_id bigint, OUT failed text) LANGUAGE plpgsql AS $fn$ \
         BEGIN \
             IF $46 THEN PERFORM mailauth_month_partitions_v1($5); END IF; \
             {} INTO stored_id; \
         EXCEPTION WHEN deadlock_detected OR serialization_failure OR check_violation THEN \
             stored_id := NULL; \
             failed := SQLSTATE; \
         END $fn$",
        whole_report()
    )
}

/// The statement that claims a report: its row and its published policy
/// in one statement (one round trip), the policy row made only when the
/// report's is, and no row back for a duplicate. `columns` and `values`
/// add to the report's row, `more` adds statements after the policy's.
fn insert_report(columns: &str, values: &str, more: &str) -> String {
    format!(
        "WITH r AS (INSERT INTO reports (org_name, email, extra_contact_info, report_id, \
         date_begin, date_end, policy_domain, version, namespace, generator, errors, \
         warnings, origin, ingested_at{columns}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14{values}) \
         ON CONFLICT DO NOTHING RETURNING id, date_begin), \
         p AS (INSERT INTO policy_published (report_id, date_begin, domain, adkim, aspf, \
         p, sp, np, pct, fo, testing, discovery_method) \
         SELECT id, date_begin, $15::text, $16::text, $17::text, $18::text, $19::text, \
         $20::text, $21::bigint, $22::text, $23::boolean, $24::text FROM r){more} \
         SELECT id FROM r"
    )
}

/// PostgreSQL implementation of [`ReportStore`] and [`ChecklistQueries`].
pub struct PgStore {
    /// `ReportStore` reads take `&self`; the client needs `&mut`.
    client: Mutex<Client>,
    stmts: Stmts,
    target: String,
    /// Schema version found when this store was opened (before migrating).
    found: i64,
    /// Months (their first second) whose partitions are known to exist.
    months: HashSet<i64>,
    /// The group of items open ([`ReportStore::begin_group`]), if any: its
    /// transaction is open on the client, and this holds the months whose
    /// partitions it made sure of, known once it commits.
    group: Option<Vec<i64>>,
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
fn connect(url: &str, password: Option<&str>) -> Result<(Client, String), StoreError> {
    let (plain_url, settings) = tls::split_url(url).map_err(|detail| StoreError::PgTls {
        target: redact(url),
        detail,
    })?;
    let mut config: postgres::Config = plain_url.parse().map_err(|source| StoreError::PgUrl {
        url: redact(url),
        source,
    })?;
    let target = describe(&config);
    if config.get_password().is_some() {
        return Err(StoreError::PasswordInUrl { url: target });
    }
    if let Some(pw) = password {
        config.password(pw);
    }
    if config.get_application_name().is_none() {
        config.application_name("mailauth");
    }
    let mode = tls::effective_mode(&settings, config.get_hosts());
    config.ssl_mode(tls::pg_mode(mode));
    let connect_err = |source| StoreError::PgConnect {
        target: format!("{target} (sslmode={})", mode.as_str()),
        source,
    };
    let client = match mode {
        tls::SslMode::Disable => config.connect(NoTls).map_err(connect_err)?,
        _ => {
            let tls = tls::connector(mode, settings.root_cert.as_deref()).map_err(|detail| {
                StoreError::PgTls {
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
    pub fn open(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        let (mut client, target) = connect(url, password)?;
        let found = read_version(&mut client)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                store: StoreName::Postgres(target),
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
            months: HashSet::new(),
            group: None,
        };
        // Re-check: another worker may have migrated meanwhile.
        let v = store.schema_version_mut()?;
        if v > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                store: StoreName::Postgres(store.target.clone()),
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
    /// than this program is [`StoreError::OlderSchema`], a newer one
    /// [`StoreError::NewerSchema`]. For `plan`, `checklist` and `inspect`.
    pub fn open_read_only(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        let (mut client, target) = connect(url, password)?;
        // PostgreSQL 15 §20.11.1: "A read-only SQL transaction cannot
        // alter non-temporary tables." Set for the session, it covers every
        // statement this connection runs, whatever code path issues it.
        client
            .batch_execute("SET default_transaction_read_only = on")
            .map_err(q("make the session read-only"))?;
        let found = read_version(&mut client)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                store: StoreName::Postgres(target),
                found,
                known: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(StoreError::OlderSchema {
                store: StoreName::Postgres(target),
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
            months: HashSet::new(),
            group: None,
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

    fn schema_version_mut(&mut self) -> Result<i64, StoreError> {
        let c = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        read_version(c)
    }

    /// Applies pending migrations, serialised between workers by an
    /// advisory lock; refuses a newer schema.
    pub fn migrate(&self) -> Result<Migrated, StoreError> {
        let mut c = self.client();
        PartialStore {
            client: &mut c,
            target: &self.target,
        }
        .migrate()
    }

    /// The schema version stored in the database (0: empty database).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        read_version(&mut self.client())
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
        let r = self.client().query_one(sql, &[]).map_err(q("count rows"))?;
        pg_get(&r, "count rows", 0)
    }

    fn ingest_once(
        &mut self,
        origin: &str,
        bytes: &[u8],
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        self.ingest_with(origin, Writing::default(), |sink| {
            parse::parse_item(bytes, limits, sink)
        })
    }

    /// One item in one transaction: `parse` streams its reports into the
    /// transaction's sink; committed only if the whole item parsed. A
    /// database failure is `Err` ([`StoreError::PgQuery`] "store report",
    /// or a row of another shape); a bad item `Ok(Err(_))`. Inside a group
    /// ([`ReportStore::begin_group`]) the item is a savepoint of the
    /// group's transaction instead, released when the whole item parsed
    /// and rolled back to otherwise, so that the item stays all or nothing
    /// while the group commits once. PostgreSQL 15, SAVEPOINT: "A savepoint
    /// is a special mark inside a transaction that allows all commands that
    /// are executed after it was established to be rolled back, restoring
    /// the transaction state to what it was at the time of the savepoint."
    /// An item that is one small report parsed beforehand has no
    /// savepoint: the session's function stores it in a subtransaction of
    /// its own ([`whole_report_fn`], [`Writing::whole_fn`]), one round
    /// trip where the savepoint cost one more.
    fn ingest_with(
        &mut self,
        origin: &str,
        writing: Writing<'_>,
        parse: impl FnOnce(&mut dyn ReportSink) -> Result<Vec<Found>, ParseError>,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        let store = q("store report");
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        let Some(group) = self.group.as_mut() else {
            let mut tx = client.transaction().map_err(&store)?;
            let (result, new_months) = sink_item(
                &mut tx,
                &self.stmts,
                origin,
                &self.months,
                Vec::new(),
                Writing {
                    whole_fn: false,
                    ..writing
                },
                parse,
            );
            return match result {
                Ok(found) => {
                    tx.commit().map_err(&store)?;
                    self.months.extend(new_months);
                    Ok(Ok(found))
                }
                Err(e) => {
                    drop(tx); // rolls back
                    item_failed(e)
                }
            };
        };
        let whole_fn = writing.whole_fn && self.stmts.whole_report_fn.is_some();
        if !whole_fn {
            client
                .batch_execute("SAVEPOINT mailauth_item")
                .map_err(&store)?;
        }
        let before = group.len();
        let (result, new_months) = sink_item(
            client,
            &self.stmts,
            origin,
            &self.months,
            std::mem::take(group),
            Writing {
                whole_fn,
                ..writing
            },
            parse,
        );
        *group = new_months;
        match result {
            Ok(found) => {
                if !whole_fn {
                    client
                        .batch_execute("RELEASE SAVEPOINT mailauth_item")
                        .map_err(&store)?;
                }
                Ok(Ok(found))
            }
            // Nothing of the item is left: its function's subtransaction
            // was undone (an error it caught), or the transaction failed
            // (any other error: the group's commit fails too).
            Err(e) if whole_fn => {
                group.truncate(before);
                item_failed(e)
            }
            Err(e) => {
                group.truncate(before);
                let undone = client.batch_execute(
                    "ROLLBACK TO SAVEPOINT mailauth_item; RELEASE SAVEPOINT mailauth_item",
                );
                match (item_failed(e), undone) {
                    // A bad item, undone: the group goes on.
                    (Ok(bad), Ok(())) => Ok(bad),
                    // The group's transaction cannot go on: its commit
                    // fails too (`commit_group`).
                    (Ok(_), Err(e)) => Err(store(e)),
                    (Err(e), _) => Err(e),
                }
            }
        }
    }

    /// Inside a group, after a deadlock or a serialization failure undone
    /// to the item's savepoint: the group's earlier items are committed,
    /// and the group goes on in a new transaction. Their locks (the
    /// reports they claimed) are held until their transaction ends, so the
    /// item, run again in the same one, would meet the same conflict with
    /// the same other worker. Committing them early is safe: nothing of
    /// them is finished before `commit_group`.
    fn restart_group(&mut self) -> Result<(), StoreError> {
        if self.group.is_none() {
            return Ok(());
        }
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        // `SELECT 1` first: in a transaction that failed, PostgreSQL answers
        // COMMIT with a rollback, not an error; the `SELECT` fails instead.
        // Should this fail, the group stays open as far as `commit_group`
        // knows, and its commit fails too: nothing of it is taken for
        // committed.
        client
            .batch_execute("SELECT 1; COMMIT")
            .map_err(q("commit a group of items"))?;
        self.months.extend(self.group.take().unwrap_or_default());
        client
            .batch_execute(BEGIN_GROUP)
            .map_err(q("begin a group of items"))?;
        self.group = Some(Vec::new());
        Ok(())
    }
}

/// A group's transaction. Each item that needs one makes its savepoint.
const BEGIN_GROUP: &str = "BEGIN";

/// How an item is written.
#[derive(Clone, Copy, Default)]
struct Writing<'p> {
    /// Its records prepared on the thread that parsed it, written as they
    /// are.
    prepared: Option<&'p PreparedRecords>,
    /// It is one small aggregate report parsed beforehand: inside a group
    /// it goes through the session's function, without a savepoint.
    whole_fn: bool,
}

impl<'p> Writing<'p> {
    /// How `item`, parsed beforehand, is written.
    fn of(item: &ParsedItem, prepared: Option<&'p PreparedRecords>) -> Self {
        let found = item.found();
        Writing {
            prepared,
            whole_fn: item.is_parsed()
                && found.len() == 1
                && found[0].kind == ReportKind::Aggregate
                && found[0].records <= WHOLE_REPORT_RECORDS as u64,
        }
    }
}

/// Streams one item into `tx` (a transaction, or a client inside a group's
/// transaction): the parse's outcome and the months whose partitions were
/// made sure of (`months` known before, `new_months` the group's so far).
fn sink_item<C: GenericClient>(
    tx: &mut C,
    stmts: &Stmts,
    origin: &str,
    months: &HashSet<i64>,
    new_months: Vec<i64>,
    writing: Writing<'_>,
    parse: impl FnOnce(&mut dyn ReportSink) -> Result<Vec<Found>, ParseError>,
) -> (Result<Vec<Found>, ParseError>, Vec<i64>) {
    let mut sink = TxSink {
        tx,
        stmts,
        origin,
        now: now(),
        report: None,
        records: RecordCols::default(),
        held: None,
        held_records: RecordArrays::default(),
        prepared: writing.prepared.map(Prepared::new),
        whole_fn: writing.whole_fn,
        months,
        new_months,
    };
    let result = parse(&mut sink).and_then(|found| {
        sink.flush()
            .map(|()| found)
            .map_err(|e| ParseError::Sink { source: e.into() })
    });
    (result, sink.new_months)
}

/// An item that did not store: a database failure (`Err`: the batch
/// stops, or the item is run again) or a bad item (`Ok(Err(_))`).
fn item_failed(e: ParseError) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
    match e {
        ParseError::Sink { source } => match source.downcast::<postgres::Error>() {
            Ok(e) => Err(q("store report")(*e)),
            Err(other) => match other.downcast::<StoreError>() {
                Ok(e) => Err(*e),
                Err(other) => match other.downcast::<Undone>() {
                    Ok(u) => Err(StoreError::PgUndone { code: u.code }),
                    Err(other) => Ok(Err(ParseError::Sink { source: other })),
                },
            },
        },
        e => Ok(Err(e)),
    }
}

/// A connection during migration (before statements are prepared).
struct PartialStore<'a> {
    client: &'a mut Client,
    target: &'a str,
}

impl PartialStore<'_> {
    fn migrate(&mut self) -> Result<Migrated, StoreError> {
        let mut tx = self.client.transaction().map_err(q("begin migration"))?;
        // Held until commit: a second worker waits here, then finds the
        // schema current.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(q("lock migration"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL PRIMARY KEY)",
        )
        .map_err(q("create schema_version"))?;
        let found: i64 = pg_get(
            &tx.query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
                .map_err(q("read schema_version"))?,
            "read schema_version",
            0,
        )?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                store: StoreName::Postgres(self.target.to_owned()),
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

fn read_version(c: &mut Client) -> Result<i64, StoreError> {
    let exists: bool = pg_get(
        &c.query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
            .map_err(q("look for schema_version"))?,
        "look for schema_version",
        0,
    )?;
    if !exists {
        return Ok(0);
    }
    let r = c
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .map_err(q("read schema_version"))?;
    pg_get(&r, "read schema_version", 0)
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

impl PgStore {
    /// Runs one item's transaction, again (up to `ITEM_ATTEMPTS` times) on
    /// a transient server error; a partition missing because a prune
    /// dropped it makes the item look its months up again.
    fn retrying(
        &mut self,
        mut once: impl FnMut(&mut Self) -> Result<Result<Vec<Found>, ParseError>, StoreError>,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let code = match once(self) {
                Ok(r) => return Ok(r),
                Err(StoreError::PgQuery { source, .. })
                    if attempt < ITEM_ATTEMPTS && retryable(&source) =>
                {
                    source.code().cloned()
                }
                Err(StoreError::PgUndone { code }) if attempt < ITEM_ATTEMPTS => {
                    Some(SqlState::from_code(&code))
                }
                Err(e) => return Err(e),
            };
            // A partition missing: a prune dropped it meanwhile.
            if code == Some(SqlState::CHECK_VIOLATION) {
                self.months.clear();
                if let Some(group) = &mut self.group {
                    group.clear();
                }
            }
            self.restart_group()?;
        }
    }
}

impl ReportStore for PgStore {
    fn ingest_item(
        &mut self,
        origin: &str,
        bytes: &[u8],
        limits: &IngestLimits,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        self.retrying(|store| store.ingest_once(origin, bytes, limits))
    }

    /// Retried on a transient server error, as
    /// [`ingest_item`](ReportStore::ingest_item) is: the parsed item is
    /// replayed into the new transaction.
    fn store_parsed(
        &mut self,
        origin: &str,
        item: &ParsedItem,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        self.store_prepared(origin, item, None)
    }

    /// The worker threads prepare each item's records, as for SQLite: this
    /// thread then only copies their text into the statement's arrays (or
    /// the `COPY` rows) instead of formatting the JSON lists and the
    /// source address, on the path that waits for the server.
    fn uses_prepared_records(&self) -> bool {
        true
    }

    /// [`store_parsed`](ReportStore::store_parsed), the records written as
    /// `records` gives them.
    fn store_prepared(
        &mut self,
        origin: &str,
        item: &ParsedItem,
        records: Option<&PreparedRecords>,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        self.retrying(|store| {
            store.ingest_with(origin, Writing::of(item, records), |sink| item.replay(sink))
        })
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
        let r = self.ingest_with(origin, Writing::default(), |sink| {
            parse::parse_xml_stream(input, limits, sink)
        });
        if let Err(StoreError::PgQuery { source, .. }) = &r
            && missing_partition(source)
        {
            self.months.clear();
            if let Some(group) = &mut self.group {
                group.clear();
            }
        }
        r
    }

    /// Items are committed in groups, each a savepoint of the group's
    /// transaction (see `ingest_with`): one commit, and one wait for the
    /// server's WAL flush, per group instead of per item.
    fn begin_group(&mut self) -> Result<bool, StoreError> {
        if self.group.is_none() {
            self.client_mut()
                .batch_execute(BEGIN_GROUP)
                .map_err(q("begin a group of items"))?;
            self.group = Some(Vec::new());
        }
        Ok(true)
    }

    fn commit_group(&mut self) -> Result<(), StoreError> {
        let Some(months) = self.group.take() else {
            return Ok(());
        };
        // `SELECT 1` first: PostgreSQL answers the COMMIT of a transaction
        // that failed with a rollback, not an error; the `SELECT` fails
        // instead, and the ROLLBACK leaves the connection usable.
        let client = self.client_mut();
        if let Err(e) = client.batch_execute("SELECT 1; COMMIT") {
            let _ = client.batch_execute("ROLLBACK");
            return Err(q("commit a group of items")(e));
        }
        self.months.extend(months);
        Ok(())
    }

    fn list(&self, domain: Option<&str>) -> Result<Vec<ReportRow>, StoreError> {
        rows::list(self, domain)
    }

    fn show(&self, kind: ReportKind, id: i64) -> Result<Option<ReportDetail>, StoreError> {
        rows::show(self, kind, id)
    }

    fn delete(&mut self, ids: &[(ReportKind, i64)]) -> Result<(), StoreError> {
        let mut tx = self.client_mut().transaction().map_err(q("begin delete"))?;
        let aggregate: Vec<i64> = ids
            .iter()
            .filter(|(kind, _)| *kind == ReportKind::Aggregate)
            .map(|&(_, id)| id)
            .collect();
        if aggregate.is_empty() {
            delete_rows(&mut tx, ids)?;
        } else {
            // The rollups give back the removed reports' records.
            dashq::pgsql::lock_rollup(&mut tx)?;
            dashq::pgsql::remove_reports(&mut tx, &Gone::Ids(&aggregate), |tx| {
                delete_rows(tx, ids)
            })?;
        }
        tx.commit().map_err(q("commit delete"))?;
        Ok(())
    }

    /// Months entirely before `cutoff` lose their partitions (`DROP
    /// TABLE`: no row-by-row delete, no dead rows left to vacuum); rows go
    /// one by one only in the month holding the cutoff and in the edge
    /// partition before 1970. One transaction, the three tables locked
    /// first (in the order ingest writes them, so neither waits for the
    /// other in a cycle; after the rollup's lock, as a refresh takes
    /// them): the counts printed are what goes.
    fn prune(&mut self, cutoff: i64, apply: bool) -> Result<Pruned, StoreError> {
        let mut tx = self.client_mut().transaction().map_err(q("begin prune"))?;
        if apply {
            dashq::pgsql::lock_rollup(&mut tx)?;
            tx.batch_execute(
                "LOCK TABLE reports, policy_published, records IN ACCESS EXCLUSIVE MODE",
            )
            .map_err(q("lock for prune"))?;
        }
        let mut domains = Vec::new();
        rows::pgsql::each_row(
            &mut tx,
            RowQuery::PruneCount,
            &[Arg::Int(Some(cutoff))],
            &mut |mut r| {
                domains.push(rows::pruned_domain(&mut r)?);
                Ok(())
            },
        )?;
        let pruned = Pruned::from_domains(domains);
        if !apply || pruned.reports == 0 {
            return Ok(pruned);
        }
        // The rollups give back the pruned reports' records.
        dashq::pgsql::remove_reports(&mut tx, &Gone::Before(cutoff), |tx| {
            for month in tx
                .query(MONTH_PARTITIONS, &[])
                .map_err(q("list partitions"))?
                .iter()
                .filter_map(|r| partition_month(r.get(0)))
            {
                if month_end(month) > cutoff {
                    continue;
                }
                let (y, m, _) = crate::clock::civil(month);
                tx.batch_execute(&format!(
                    "DROP TABLE IF EXISTS records_p{y:04}_{m:02}, \
                     policy_published_p{y:04}_{m:02}, reports_p{y:04}_{m:02}"
                ))
                .map_err(q("drop partitions"))?;
            }
            // What is left before the cutoff: the boundary month, the edge
            // partition before 1970 (partition pruning skips the others).
            for sql in [
                "DELETE FROM records WHERE date_begin < $1",
                "DELETE FROM policy_published WHERE date_begin < $1",
                "DELETE FROM reports WHERE date_begin < $1",
            ] {
                tx.execute(sql, &[&cutoff]).map_err(q("prune"))?;
            }
            Ok(())
        })?;
        tx.commit().map_err(q("commit prune"))?;
        self.months.clear();
        Ok(pruned)
    }
}

/// The rows of the reports `ids`, children first (the foreign keys
/// cascade too): when any id is unknown the error leaves the caller's
/// transaction to be rolled back.
fn delete_rows(
    tx: &mut postgres::Transaction<'_>,
    ids: &[(ReportKind, i64)],
) -> Result<(), StoreError> {
    for &(kind, id) in ids {
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
            // Dropping the transaction rolls back what was removed before.
            return Err(StoreError::NoSuchReport { kind, id });
        }
    }
    Ok(())
}

/// The monthly partitions of `reports` by name (`reports_pYYYY_MM`, as
/// `mailauth_month_partitions_v1` names them; not the two edges).
const MONTH_PARTITIONS: &str = "SELECT c.relname::text FROM pg_inherits i \
     JOIN pg_class c ON c.oid = i.inhrelid \
     WHERE i.inhparent = 'reports'::regclass AND c.relname ~ '^reports_p[0-9]{4}_[0-9]{2}$'";

/// The first second of the month a `reports_pYYYY_MM` partition holds.
fn partition_month(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("reports_p")?;
    let (y, m) = rest.split_once('_')?;
    let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) {
        return None;
    }
    month_of(crate::clock::days_from_civil(y, m, 1) * 86_400)
}

/// The first second after the month beginning at `month`.
fn month_end(month: i64) -> i64 {
    let (y, m, _) = crate::clock::civil(month);
    let (y, m) = if m == 12 {
        (y + 1, 1)
    } else {
        (y, i64::from(m) + 1)
    };
    (crate::clock::days_from_civil(y, m, 1) * 86_400).min(MAX_MONTHLY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_give_their_months() {
        // 2025-12-01T00:00:00Z .. 2026-01-01T00:00:00Z.
        assert_eq!(partition_month("reports_p2025_12"), Some(1_764_547_200));
        assert_eq!(month_end(1_764_547_200), 1_767_225_600);
        assert_eq!(month_end(1_761_955_200), 1_764_547_200);
        assert_eq!(partition_month("reports_p2025_13"), None);
        assert_eq!(partition_month("reports_p_before_1970"), None);
        assert_eq!(partition_month("records_p2025_12"), None);
        // 9999-12 ends where the upper edge partition begins.
        let last = partition_month("reports_p9999_12").expect("9999-12");
        assert_eq!(month_end(last), MAX_MONTHLY);
    }

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
            Err(StoreError::PasswordInUrl { url }) => {
                assert!(!url.contains("secret"), "{url}");
                assert_eq!(url, "postgres://u@127.0.0.1:1/db");
            }
            other => panic!("expected PasswordInUrl, got {other:?}"),
        }
    }
}
