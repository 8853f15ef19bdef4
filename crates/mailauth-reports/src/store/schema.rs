//! The SQLite schema: its migrations, append only, and the version they
//! make. Applied by [`super::SqliteStore`] on open; PostgreSQL keeps the
//! same steps in its own dialect (`reports::pgstore`), in lock-step.

/// Schema migrations; the schema version is the number applied.
/// Append only: never edit a released step.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 3: reverse DNS answers of report source IPs with their time, for
    // naming sources (`reports::sources`) without DNS (`--offline`).
    r#"
CREATE TABLE IF NOT EXISTS ptr_cache_v1 (
    ip           TEXT   PRIMARY KEY,
    name         TEXT,
    looked_up_at INTEGER NOT NULL
);
"#,
    // Alerts fired by `reports alerts` (`reports::alerts`), by key, so
    // that each fires once per new condition. Self-contained: creates its
    // own table only.
    r#"
CREATE TABLE IF NOT EXISTS alerts_fired_v1 (
    key      TEXT   PRIMARY KEY,
    rule     TEXT   NOT NULL,
    fired_at INTEGER NOT NULL
);
"#,
    // 5: PostgreSQL partitions `reports`, `policy_published` and `records`
    // by month (`reports::pgstore::schema`); SQLite has nothing to change,
    // and keeps the step so that both backends count the same versions.
    "-- nothing to do on SQLite",
    // 6: the dashboards' source and policy rollups (`reports::dashq`),
    // caches of `reports` + `records` (+ `policy_published`) over all time,
    // so that a domain page does not read every record of the domain.
    // Sources: one row per domain and source IP; the lists are JSON arrays
    // of distinct values (a JSON null for a missing one), merged as reports
    // are folded in. Policy: rows appended per refresh, summed when read.
    // The rollup state is cleared, so the next refresh rebuilds all three
    // (and empties these tables first, should a store hold them already).
    r#"
CREATE TABLE IF NOT EXISTS dashboard_sources_v1 (
    domain           TEXT    NOT NULL,
    source_ip        TEXT    NOT NULL,
    messages         INTEGER NOT NULL,
    dmarc_pass       INTEGER NOT NULL,
    spf_aligned      INTEGER NOT NULL,
    dkim_aligned     INTEGER NOT NULL,
    forwarded_reason INTEGER NOT NULL,
    arc_pass         INTEGER NOT NULL,
    failing          INTEGER NOT NULL,
    reporters        TEXT    NOT NULL,
    dkim_signers     TEXT    NOT NULL,
    spf_reported     TEXT    NOT NULL,
    PRIMARY KEY (domain, source_ip)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dashboard_policy_v1 (
    domain      TEXT    NOT NULL,
    p           TEXT,
    pct         INTEGER,
    disposition TEXT    NOT NULL,
    reasons     TEXT,
    messages    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dashboard_policy_v1_domain ON dashboard_policy_v1 (domain);
DELETE FROM dashboard_rollup_v1;
"#,
    // 7: rollups kept by prune and delete (`reports::dashq`). The daily,
    // policy and source rollups count the records of each row (a row goes
    // when its last record does; a record may count 0 messages), and the
    // source lists become JSON objects of each value and its number of
    // records (the source rollup is made again, empty); the policy rollup
    // becomes one row per group, upserted (the appended rows of version 6
    // collapsed into it); the reporter rollup (one row per domain and
    // reporter) answers the overview's reporters. The rollup state is
    // cleared: the next refresh rebuilds every rollup with its counts (so
    // the source and reporter rollups are made anew, whatever a store
    // already holds under their names).
    r#"
ALTER TABLE dashboard_daily_v1 ADD COLUMN records INTEGER NOT NULL DEFAULT 0;
CREATE TABLE dashboard_policy_v7 (
    domain      TEXT    NOT NULL,
    p           TEXT,
    pct         INTEGER,
    disposition TEXT    NOT NULL,
    reasons     TEXT    NOT NULL,
    messages    INTEGER NOT NULL,
    records     INTEGER NOT NULL
);
INSERT INTO dashboard_policy_v7 (domain, p, pct, disposition, reasons, messages, records)
SELECT domain, p, pct, disposition, coalesce(reasons, '[]'),
       max(min(sum(messages >> 32) * 4294967296 + sum(messages & 4294967295),
               9223372036854775807), -9223372036854775808), 0
FROM dashboard_policy_v1 GROUP BY domain, p, pct, disposition, coalesce(reasons, '[]');
DROP TABLE dashboard_policy_v1;
ALTER TABLE dashboard_policy_v7 RENAME TO dashboard_policy_v1;
CREATE UNIQUE INDEX dashboard_policy_v1_group ON dashboard_policy_v1
    (domain, p IS NULL, coalesce(p, ''), pct IS NULL, coalesce(pct, 0), disposition, reasons);
DROP TABLE IF EXISTS dashboard_sources_v1;
CREATE TABLE dashboard_sources_v1 (
    domain           TEXT    NOT NULL,
    source_ip        TEXT    NOT NULL,
    messages         INTEGER NOT NULL,
    dmarc_pass       INTEGER NOT NULL,
    spf_aligned      INTEGER NOT NULL,
    dkim_aligned     INTEGER NOT NULL,
    forwarded_reason INTEGER NOT NULL,
    arc_pass         INTEGER NOT NULL,
    failing          INTEGER NOT NULL,
    records          INTEGER NOT NULL,
    reporters        TEXT    NOT NULL,
    dkim_signers     TEXT    NOT NULL,
    spf_reported     TEXT    NOT NULL,
    PRIMARY KEY (domain, source_ip)
) WITHOUT ROWID;
DROP TABLE IF EXISTS dashboard_reporters_v1;
CREATE TABLE dashboard_reporters_v1 (
    domain      TEXT    NOT NULL,
    org_name    TEXT    NOT NULL,
    reports     INTEGER NOT NULL,
    messages    INTEGER NOT NULL,
    first_begin INTEGER NOT NULL,
    last_end    INTEGER NOT NULL,
    PRIMARY KEY (domain, org_name)
) WITHOUT ROWID;
DELETE FROM dashboard_rollup_v1;
"#,
];

/// Schema version this code writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
