//! Writing items into SQLite: the sink that stores one item inside one
//! transaction, and the pipeline that parses an item on a second thread
//! while this one writes it. A record prepared beforehand
//! ([`PreparedRecords`], `prepare`) is only bound; one parsed here is
//! formatted first (`prepare`'s [`RecordText`]), into the same values.
//! Leaves reading to the parent module.

use super::prepare::{PreparedRecords, RecordText, RowValues};
use super::*;

/// The sink that writes one item inside one transaction.
pub(super) struct TxSink<'a> {
    tx: &'a Connection,
    origin: &'a str,
    now: i64,
    report: Option<i64>,
    /// The record INSERT, prepared once per item (it runs per record).
    insert_record: Option<rusqlite::CachedStatement<'a>>,
    /// Text of the current record's source IP and JSON lists, in buffers
    /// reused from record to record (a record not prepared beforehand).
    scratch: RecordText,
    /// The item's records prepared on the thread that parsed it.
    prepared: Option<Cursor<'a>>,
}

/// Where the sink is in a [`PreparedRecords`]: the rows of the current
/// aggregate report still to come.
struct Cursor<'a> {
    rows: &'a PreparedRecords,
    /// Aggregate report headers seen.
    headers: usize,
    next: usize,
    end: usize,
}

/// One `records` row. (Several rows per INSERT were measured slower:
/// SQLite copies every value of a multi-row VALUES once more, and each
/// such statement keeps a statement journal.)
const INSERT_RECORD: &str = "INSERT INTO records (report_id, source_ip, count, disposition, \
     dkim_aligned, spf_aligned, reasons, header_from, envelope_from, envelope_to, dkim_domain, \
     dkim_selector, dkim_result, spf_domain, spf_scope, spf_result, dkim_results, spf_results, \
     extensions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
     ?17, ?18, ?19)";

/// Binds the parameters of [`INSERT_RECORD`].
fn bind_record(
    stmt: &mut rusqlite::Statement<'_>,
    report: i64,
    v: &RowValues<'_>,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(1, report)?;
    stmt.raw_bind_parameter(2, v.source_ip)?;
    stmt.raw_bind_parameter(3, v.count)?;
    stmt.raw_bind_parameter(4, v.disposition)?;
    stmt.raw_bind_parameter(5, v.dkim_aligned)?;
    stmt.raw_bind_parameter(6, v.spf_aligned)?;
    stmt.raw_bind_parameter(7, v.reasons)?;
    stmt.raw_bind_parameter(8, v.header_from)?;
    stmt.raw_bind_parameter(9, v.envelope_from)?;
    stmt.raw_bind_parameter(10, v.envelope_to)?;
    stmt.raw_bind_parameter(11, v.dkim_domain)?;
    stmt.raw_bind_parameter(12, v.dkim_selector)?;
    stmt.raw_bind_parameter(13, v.dkim_result)?;
    stmt.raw_bind_parameter(14, v.spf_domain)?;
    stmt.raw_bind_parameter(15, v.spf_scope)?;
    stmt.raw_bind_parameter(16, v.spf_result)?;
    stmt.raw_bind_parameter(17, v.dkim_results)?;
    stmt.raw_bind_parameter(18, v.spf_results)?;
    stmt.raw_bind_parameter(19, v.extensions)
}

impl AggregateVisitor for TxSink<'_> {
    fn header(&mut self, h: &AggregateHeader) -> Result<bool, SinkError> {
        if let Some(c) = &mut self.prepared {
            let rows = c.rows.report_rows(c.headers);
            c.headers += 1;
            (c.next, c.end) = (rows.start, rows.end);
        }
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
        // The record's prepared row, when the replay is the one the rows
        // were prepared from (always expected; otherwise the rest of the
        // item is formatted here).
        let row = match &mut self.prepared {
            Some(c) if c.next < c.end && c.rows.matches(c.next, r) => {
                c.next += 1;
                Some((c.rows, c.next - 1))
            }
            _ => None,
        };
        if row.is_none() {
            self.prepared = None;
        }
        let Self {
            tx,
            insert_record,
            scratch,
            ..
        } = self;
        let stmt = match insert_record {
            Some(stmt) => stmt,
            slot @ None => slot.insert(tx.prepare_cached(INSERT_RECORD)?),
        };
        let values = match row {
            Some((rows, i)) => rows.values(i),
            None => scratch.values(r),
        };
        bind_record(stmt, report, &values)?;
        stmt.raw_execute()?;
        Ok(())
    }

    fn end(&mut self, s: &AggregateSummary) -> Result<bool, SinkError> {
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
        Ok(true)
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

impl<'a> TxSink<'a> {
    fn new(tx: &'a Connection, origin: &'a str, prepared: Option<&'a PreparedRecords>) -> Self {
        TxSink {
            tx,
            origin,
            now: now(),
            report: None,
            insert_record: None,
            scratch: RecordText::default(),
            prepared: prepared.map(|rows| Cursor {
                rows,
                headers: 0,
                next: 0,
                end: 0,
            }),
        }
    }
}

impl SqliteStore {
    /// Runs `parse` with a sink writing into ONE transaction: committed
    /// when the whole item parsed, rolled back otherwise. Inside a group
    /// ([`ReportStore::begin_group`]) the item is a savepoint of the
    /// group's transaction: released (kept) or rolled back the same way,
    /// and made durable by the group's commit.
    ///
    /// `parsed`: the item is parsed already (a [`ParsedItem`] held whole),
    /// so only the database can fail it. Inside a group it is then written
    /// without a savepoint of its own, whose journal (the pages the item
    /// changes, copied first) is a tenth of the writing thread's work;
    /// should it fail nonetheless, the whole group is rolled back and the
    /// batch stops, as it does on any database failure, so nothing of the
    /// item is ever committed.
    pub(super) fn in_transaction(
        &mut self,
        origin: &str,
        prepared: Option<&PreparedRecords>,
        parsed: bool,
        parse: impl FnOnce(&mut TxSink<'_>) -> Result<Vec<Found>, ParseError>,
    ) -> Result<Result<Vec<Found>, ParseError>, StoreError> {
        if parsed && !self.conn.is_autocommit() {
            let result = parse(&mut TxSink::new(&self.conn, origin, prepared));
            return match result {
                Ok(found) => Ok(Ok(found)),
                Err(e) => {
                    self.end_group("ROLLBACK", "roll back a group of items")?;
                    Err(match e {
                        ParseError::Sink { source } => match source.downcast::<rusqlite::Error>() {
                            Ok(e) => StoreError::Query {
                                what: "store report",
                                source: *e,
                            },
                            Err(other) => StoreError::Backend { source: other },
                        },
                        e => StoreError::Backend {
                            source: Box::new(e),
                        },
                    })
                }
            };
        }
        let tx = self.conn.savepoint().map_err(q("begin item"))?;
        let result = parse(&mut TxSink::new(&tx, origin, prepared));
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
    fn end(&mut self, summary: &AggregateSummary) -> Result<bool, SinkError> {
        self.send(Parsed::End(Box::new(summary.clone())))?;
        Ok(true)
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
pub(super) struct ParserThread {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ParserThread {
    pub(super) fn start() -> std::io::Result<Self> {
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

    /// False once the thread has died (a panic while parsing).
    pub(super) fn is_alive(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
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
pub(super) fn pipelined(
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
            Parsed::End(s) => {
                if !sink.end(&s).map_err(sink_err)?
                    && let Some(last) = new.last_mut()
                {
                    *last = false;
                }
            }
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

#[cfg(test)]
mod pipeline_tests {
    use super::*;

    fn report(id: &str, records: usize, tail: &str) -> String {
        crate::parse::test_report(id, records, tail)
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

    /// A report whose records fill every column of `records`: IPv6 and
    /// IPv4 sources, reasons, both envelopes, several DKIM results with a
    /// selector and text to escape, an SPF scope.
    fn rich_report(id: &str, records: usize) -> String {
        let mut body = String::new();
        for i in 0..records {
            let ip = if i % 2 == 0 {
                format!("2001:db8::{i:x}")
            } else {
                format!("198.51.100.{}", i % 250)
            };
            body.push_str(&format!(
                "<record><row><source_ip>{ip}</source_ip><count>{}</count><policy_evaluated>\
                 <disposition>quarantine</disposition><dkim>fail</dkim><spf>pass</spf>\
                 <reason><type>forwarded</type><comment>list \"{i}\"</comment></reason>\
                 </policy_evaluated></row><identifiers><envelope_to>to{i}.example</envelope_to>\
                 <envelope_from>from.example</envelope_from><header_from>example.com</header_from>\
                 </identifiers><auth_results><dkim><domain>example.com</domain><selector>s{i}\
                 </selector><result>fail</result><human_result>bad \"sig\" \\ é</human_result>\
                 </dkim><dkim><domain>other.example</domain><result>pass</result></dkim><spf>\
                 <domain>from.example</domain><scope>mfrom</scope><result>pass</result></spf>\
                 </auth_results></record>",
                i + 1
            ));
        }
        format!(
            "<feedback><report_metadata><org_name>o</org_name><report_id>{id}</report_id>\
             <date_range><begin>0</begin><end>86400</end></date_range></report_metadata>\
             <policy_published><domain>example.com</domain><p>reject</p></policy_published>\
             {body}</feedback>"
        )
    }

    /// Every column of every stored record, in id order.
    fn records_of(store: &SqliteStore) -> Vec<Vec<rusqlite::types::Value>> {
        let mut stmt = store
            .conn
            .prepare("SELECT * FROM records ORDER BY id")
            .expect("prepare");
        let columns = stmt.column_count();
        stmt.query_map([], |row| {
            (0..columns)
                .map(|i| row.get::<_, rusqlite::types::Value>(i))
                .collect()
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    }

    /// Stores `item` as parsed beforehand, with its records prepared from
    /// `prepared_from` (the same item unless a test says otherwise).
    fn store_prepared(
        store: &mut SqliteStore,
        origin: &str,
        item: &[u8],
        prepared_from: &[u8],
    ) -> Vec<Found> {
        let limits = IngestLimits::default();
        let parsed = ParsedItem::parse(item, &limits, usize::MAX)
            .expect("parses")
            .expect("held");
        let from = ParsedItem::parse(prepared_from, &limits, usize::MAX)
            .expect("parses")
            .expect("held");
        let rows = PreparedRecords::of(&from).expect("prepared");
        store
            .store_prepared(origin, &parsed, Some(&rows))
            .expect("db")
            .expect("stored")
    }

    #[test]
    fn prepared_records_store_the_rows_a_direct_parse_stores() {
        assert!(
            SqliteStore::open_in_memory()
                .expect("store")
                .uses_prepared_records()
        );
        let first = rich_report("a", 3);
        // A zip holding a stored report (its rows are skipped), a new one,
        // and the stored one again after it.
        let second = rich_report("b", 70);
        let zip = zip_of(&[("a.xml", &first), ("b.xml", &second), ("c.xml", &first)]);
        let mut direct = SqliteStore::open_in_memory().expect("store");
        let mut prepared = SqliteStore::open_in_memory().expect("store");
        let limits = IngestLimits::default();
        let f1 = direct
            .ingest_item("first", first.as_bytes(), &limits)
            .expect("db")
            .expect("parses");
        let f2 = direct
            .ingest_item("zip", &zip, &limits)
            .expect("db")
            .expect("parses");
        let p1 = store_prepared(&mut prepared, "first", first.as_bytes(), first.as_bytes());
        let p2 = store_prepared(&mut prepared, "zip", &zip, &zip);
        assert_eq!((&p1, &p2), (&f1, &f2));
        let dup: Vec<_> = p2.iter().map(|f| f.duplicate).collect();
        assert_eq!(dup, [true, false, true]);
        let rows = records_of(&prepared);
        assert_eq!(rows.len(), 73);
        assert_eq!(rows, records_of(&direct));
        // The JSON lists hold what the report said.
        let reasons: String = prepared
            .conn
            .query_row("SELECT reasons FROM records WHERE id = 4", [], |r| r.get(0))
            .expect("reasons");
        assert_eq!(reasons, r#"[{"kind":"forwarded","comment":"list \"0\""}]"#);
    }

    #[test]
    fn records_prepared_from_another_item_are_not_used() {
        // Prepared from a report with other counts: the store notices and
        // writes the records it is given.
        let item = rich_report("a", 5);
        let other = report("a", 5, "");
        let mut prepared = SqliteStore::open_in_memory().expect("store");
        store_prepared(&mut prepared, "x", item.as_bytes(), other.as_bytes());
        let mut direct = SqliteStore::open_in_memory().expect("store");
        direct
            .ingest_item("x", item.as_bytes(), &IngestLimits::default())
            .expect("db")
            .expect("parses");
        assert_eq!(records_of(&prepared), records_of(&direct));
    }
}
