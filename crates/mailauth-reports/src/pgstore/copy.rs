//! `mailauth store copy`: SQLite → PostgreSQL, one transaction per report
//! (its records with `COPY`),
//! deduplicated on the same natural keys as ingest, so a re-run (or a run
//! after an interruption) copies nothing twice. A report's month gets its
//! partitions first, as in ingest.

use super::*;

impl PgStore {
    /// Copies every report of the SQLite store at `path` into this store.
    /// The SQLite file is opened (and migrated) as the SQLite store does
    /// first, so both schemas are at [`SCHEMA_VERSION`].
    pub fn copy_from_sqlite(&mut self, path: &Path) -> Result<CopySummary, StoreError> {
        drop(SqliteStore::open(path)?);
        let rd = |what: &'static str| {
            move |source| StoreError::ReadSqlite {
                path: path.to_owned(),
                what,
                source,
            }
        };
        let src = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(rd("open"))?;
        let mut sum = CopySummary::default();
        self.copy_aggregate(&src, path, &mut sum)?;
        self.copy_failure(&src, path, &mut sum)?;
        self.copy_tls(&src, path, &mut sum)?;
        Ok(sum)
    }

    fn copy_aggregate(
        &mut self,
        src: &rusqlite::Connection,
        path: &Path,
        sum: &mut CopySummary,
    ) -> Result<(), StoreError> {
        let rd = |what: &'static str| {
            move |source| StoreError::ReadSqlite {
                path: path.to_owned(),
                what,
                source,
            }
        };
        let mut heads = src
            .prepare(
                "SELECT r.id, r.org_name, r.email, r.extra_contact_info, r.report_id, r.date_begin, \
                 r.date_end, r.policy_domain, r.version, r.namespace, r.generator, r.errors, \
                 r.warnings, r.extensions, r.record_count, r.message_count, r.origin, r.ingested_at, \
                 p.domain, p.adkim, p.aspf, p.p, p.sp, p.np, p.pct, p.fo, p.testing, p.discovery_method \
                 FROM reports r LEFT JOIN policy_published p ON p.report_id = r.id ORDER BY r.id",
            )
            .map_err(rd("read reports"))?;
        let mut recs = src
            .prepare(
                "SELECT source_ip, count, disposition, dkim_aligned, spf_aligned, reasons, \
                 header_from, envelope_from, envelope_to, dkim_domain, dkim_selector, dkim_result, \
                 spf_domain, spf_scope, spf_result, dkim_results, spf_results, extensions \
                 FROM records WHERE report_id = ?1 ORDER BY id",
            )
            .map_err(rd("read records"))?;
        let mut rows = heads.query([]).map_err(rd("read reports"))?;
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        while let Some(h) = rows.next().map_err(rd("read reports"))? {
            let g = |i| h.get::<_, Option<String>>(i);
            let gi = |i| h.get::<_, Option<i64>>(i);
            let old_id: i64 = h.get(0).map_err(rd("read reports"))?;
            let texts: Vec<Option<String>> = [1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13, 16]
                .into_iter()
                .map(g)
                .collect::<Result<_, _>>()
                .map_err(rd("read reports"))?;
            let ints: Vec<Option<i64>> = [5, 6, 14, 15, 17]
                .into_iter()
                .map(gi)
                .collect::<Result<_, _>>()
                .map_err(rd("read reports"))?;
            let pol_texts: Vec<Option<String>> = [18, 19, 20, 21, 22, 23, 25, 27]
                .into_iter()
                .map(g)
                .collect::<Result<_, _>>()
                .map_err(rd("read policy"))?;
            let pct = gi(24).map_err(rd("read policy"))?;
            let testing = gi(26).map_err(rd("read policy"))?.map(|t| t != 0);
            // NOT NULL in the SQLite schema too.
            let begin = ints[0].ok_or_else(|| {
                rd("read reports")(rusqlite::Error::InvalidColumnType(
                    5,
                    "date_begin".into(),
                    rusqlite::types::Type::Null,
                ))
            })?;
            let mut tx = client.transaction().map_err(q("begin copy"))?;
            let mut new_months = Vec::new();
            ensure_month(&mut tx, &self.months, &mut new_months, begin)
                .map_err(q("create partitions"))?;
            let id: Option<i64> = tx
                .query_opt(
                    "INSERT INTO reports (org_name, email, extra_contact_info, report_id, \
                     policy_domain, version, namespace, generator, errors, warnings, extensions, \
                     origin, date_begin, date_end, record_count, message_count, ingested_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17) ON CONFLICT DO NOTHING RETURNING id",
                    &[
                        &texts[0], &texts[1], &texts[2], &texts[3], &texts[4], &texts[5],
                        &texts[6], &texts[7], &texts[8], &texts[9], &texts[10], &texts[11],
                        &ints[0], &ints[1], &ints[2], &ints[3], &ints[4],
                    ],
                )
                .map_err(q("copy report"))?
                .map(|r| pg_get(&r, "copy report", 0))
                .transpose()?;
            let Some(id) = id else {
                sum.skipped += 1;
                continue;
            };
            if pol_texts[0].is_some() {
                tx.execute(
                    "INSERT INTO policy_published (report_id, date_begin, domain, adkim, aspf, p, \
                     sp, np, fo, discovery_method, pct, testing) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    &[
                        &id,
                        &begin,
                        &pol_texts[0],
                        &pol_texts[1],
                        &pol_texts[2],
                        &pol_texts[3],
                        &pol_texts[4],
                        &pol_texts[5],
                        &pol_texts[6],
                        &pol_texts[7],
                        &pct,
                        &testing,
                    ],
                )
                .map_err(q("copy policy"))?;
            }
            let mut cols = RecordCols::default();
            let mut rs = recs.query([old_id]).map_err(rd("read records"))?;
            while let Some(r) = rs.next().map_err(rd("read records"))? {
                let e = rd("read records");
                let t: Vec<Option<String>> = (0..18)
                    .map(|i| if i == 1 { Ok(None) } else { r.get(i) })
                    .collect::<Result<_, _>>()
                    .map_err(&e)?;
                let o = |i: usize| t[i].as_deref();
                // NOT NULL columns: an SQLite NULL there is refused as before.
                let s = |i: usize| {
                    t[i].as_deref().ok_or_else(|| {
                        e(rusqlite::Error::InvalidColumnType(
                            i,
                            "text".into(),
                            rusqlite::types::Type::Null,
                        ))
                    })
                };
                cols.push_values(
                    id,
                    begin,
                    &RowValues {
                        source_ip: s(0)?,
                        count: r.get(1).map_err(&e)?,
                        disposition: s(2)?,
                        dkim_aligned: o(3),
                        spf_aligned: o(4),
                        reasons: s(5)?,
                        header_from: s(6)?,
                        envelope_from: o(7),
                        envelope_to: o(8),
                        dkim_domain: o(9),
                        dkim_selector: o(10),
                        dkim_result: o(11),
                        spf_domain: o(12),
                        spf_scope: o(13),
                        spf_result: o(14),
                        dkim_results: s(15)?,
                        spf_results: s(16)?,
                        extensions: s(17)?,
                    },
                );
                sum.records += 1;
                if cols.len() >= RECORD_BATCH {
                    cols.flush(&mut tx).map_err(q("copy records"))?;
                }
            }
            cols.flush(&mut tx).map_err(q("copy records"))?;
            tx.commit().map_err(q("commit copy"))?;
            self.months.extend(new_months);
            sum.reports += 1;
        }
        Ok(())
    }

    fn copy_failure(
        &mut self,
        src: &rusqlite::Connection,
        path: &Path,
        sum: &mut CopySummary,
    ) -> Result<(), StoreError> {
        let rd = |what: &'static str| {
            move |source| StoreError::ReadSqlite {
                path: path.to_owned(),
                what,
                source,
            }
        };
        const TEXT_COLS: &str = "fingerprint, reporter, feedback_type, user_agent, version, \
             auth_failure, reported_domain, source_ip, arrival_date, original_mail_from, \
             original_rcpt_to, authentication_results, delivery_result, dkim_domain, \
             dkim_identity, dkim_selector, spf_dns, identity_alignment, original_subject, \
             original_message_id, original_headers, origin";
        let mut stmt = src
            .prepare(&format!(
                "SELECT {TEXT_COLS}, from_text, ingested_at FROM failure_reports ORDER BY id"
            ))
            .map_err(rd("read failure reports"))?;
        let mut rows = stmt.query([]).map_err(rd("read failure reports"))?;
        let insert = format!(
            "INSERT INTO failure_reports ({TEXT_COLS}, from_text, ingested_at) VALUES ({}) \
             ON CONFLICT DO NOTHING",
            (1..=24)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        while let Some(r) = rows.next().map_err(rd("read failure reports"))? {
            let texts: Vec<Option<String>> = (0..22)
                .map(|i| r.get::<_, Option<String>>(i))
                .collect::<Result<_, _>>()
                .map_err(rd("read failure reports"))?;
            let from_text: bool = r.get::<_, i64>(22).map_err(rd("read failure reports"))? != 0;
            let at: i64 = r.get(23).map_err(rd("read failure reports"))?;
            let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                texts.iter().map(|t| t as _).collect();
            params.push(&from_text);
            params.push(&at);
            let n = client
                .execute(insert.as_str(), &params)
                .map_err(q("copy failure report"))?;
            if n == 0 {
                sum.skipped += 1;
            } else {
                sum.failure_reports += 1;
            }
        }
        Ok(())
    }

    fn copy_tls(
        &mut self,
        src: &rusqlite::Connection,
        path: &Path,
        sum: &mut CopySummary,
    ) -> Result<(), StoreError> {
        let rd = |what: &'static str| {
            move |source| StoreError::ReadSqlite {
                path: path.to_owned(),
                what,
                source,
            }
        };
        let mut heads = src
            .prepare(
                "SELECT id, org_name, report_id, date_begin, date_end, contact_info, origin, \
                 ingested_at FROM tls_reports ORDER BY id",
            )
            .map_err(rd("read TLS reports"))?;
        let mut pols = src
            .prepare(
                "SELECT id, policy_type, policy_domain, policy_string, mx_host, \
                 successful_count, failure_count FROM tls_policies WHERE tls_report_id = ?1 \
                 ORDER BY id",
            )
            .map_err(rd("read TLS policies"))?;
        let mut fails = src
            .prepare(
                "SELECT result_type, sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, \
                 receiving_ip, additional_information, failure_reason_code, failed_session_count \
                 FROM tls_failures WHERE tls_policy_id = ?1 ORDER BY id",
            )
            .map_err(rd("read TLS failures"))?;
        let mut rows = heads.query([]).map_err(rd("read TLS reports"))?;
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        while let Some(h) = rows.next().map_err(rd("read TLS reports"))? {
            let e = rd("read TLS reports");
            let old: i64 = h.get(0).map_err(&e)?;
            let texts: Vec<Option<String>> = (1..=6)
                .map(|i| h.get::<_, Option<String>>(i))
                .collect::<Result<_, _>>()
                .map_err(&e)?;
            let at: i64 = h.get(7).map_err(&e)?;
            let mut tx = client.transaction().map_err(q("begin copy"))?;
            let id: Option<i64> = tx
                .query_opt(
                    "INSERT INTO tls_reports (org_name, report_id, date_begin, date_end, \
                     contact_info, origin, ingested_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT DO NOTHING RETURNING id",
                    &[
                        &texts[0], &texts[1], &texts[2], &texts[3], &texts[4], &texts[5], &at,
                    ],
                )
                .map_err(q("copy TLS report"))?
                .map(|r| pg_get(&r, "copy TLS report", 0))
                .transpose()?;
            let Some(id) = id else {
                sum.skipped += 1;
                continue;
            };
            let mut ps = pols.query([old]).map_err(rd("read TLS policies"))?;
            while let Some(p) = ps.next().map_err(rd("read TLS policies"))? {
                let e = rd("read TLS policies");
                let old_p: i64 = p.get(0).map_err(&e)?;
                let t: Vec<String> = (1..=4)
                    .map(|i| p.get::<_, String>(i))
                    .collect::<Result<_, _>>()
                    .map_err(&e)?;
                let ok: i64 = p.get(5).map_err(&e)?;
                let failed: i64 = p.get(6).map_err(&e)?;
                let pid: i64 = pg_get(
                    &tx.query_one(
                        &self.stmts.insert_tls_policy,
                        &[&id, &t[0], &t[1], &t[2], &t[3], &ok, &failed],
                    )
                    .map_err(q("copy TLS policy"))?,
                    "copy TLS policy",
                    0,
                )?;
                let mut fs = fails.query([old_p]).map_err(rd("read TLS failures"))?;
                while let Some(f) = fs.next().map_err(rd("read TLS failures"))? {
                    let e = rd("read TLS failures");
                    let result_type: String = f.get(0).map_err(&e)?;
                    let o: Vec<Option<String>> = (1..=6)
                        .map(|i| f.get::<_, Option<String>>(i))
                        .collect::<Result<_, _>>()
                        .map_err(&e)?;
                    let n: i64 = f.get(7).map_err(&e)?;
                    tx.execute(
                        &self.stmts.insert_tls_failure,
                        &[
                            &pid,
                            &result_type,
                            &o[0],
                            &o[1],
                            &o[2],
                            &o[3],
                            &n,
                            &o[4],
                            &o[5],
                        ],
                    )
                    .map_err(q("copy TLS failure"))?;
                }
            }
            tx.commit().map_err(q("commit copy"))?;
            sum.tls_reports += 1;
        }
        Ok(())
    }
}
