//! The `reports` test binary: DMARC and TLS-RPT reports from the parsers
//! to the stores: golden parses, MIME containers, streaming, the sample
//! corpus, ingest from files, Maildir and IMAP (Dovecot), the SQLite and
//! PostgreSQL 15 stores (TLS, read-only opening), the `reports` commands,
//! and the regressions found by fuzzing.
//!
//! Owns only the list of its test modules; the harness is tests/support
//! and tests/util, the tests are the modules themselves (tests/README.md).

#[macro_use]
#[path = "../support/mod.rs"]
mod support;
#[path = "../util/mod.rs"]
mod util;

mod regressions;
mod reports_cli;
mod reports_golden;
mod reports_imap;
mod reports_ingest;
mod reports_mime;
mod reports_postgres;
mod reports_postgres_perf;
mod reports_samples;
mod reports_stream;
mod store_readonly;
