//! The `dashboard` test binary: the dashboards' queries on SQLite and
//! PostgreSQL 15 (rollups, senders, alerts), the HTTP API of `mailauth
//! serve`, and the pages as headless Chromium renders them.
//!
//! Owns only the list of its test modules; the harness is tests/support,
//! tests/util and `dashboard` (a store filled from the sample reports, the
//! numbers expected from it), the tests are the modules themselves
//! (tests/README.md).

#[macro_use]
#[path = "../support/mod.rs"]
mod support;
#[path = "../util/mod.rs"]
mod util;

mod dashboard;

mod dashboard_api;
mod dashboard_chromium;
mod dashboard_store;
