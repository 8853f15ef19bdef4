//! DMARC aggregate, DMARC failure and SMTP TLS report ingestion.
//!
//! Owns the pipeline sources → bytes ([`ingest`]) → typed reports
//! ([`parse`], pure) → a store (SQLite in [`store`], PostgreSQL in
//! `pgstore`, chosen by [`store_cli`]; `list`/`show` and checklist rows
//! shaped once for both in [`rows`]), the dashboards over either store
//! ([`dashq`] queries, [`dashboard`] views, [`serve`]), who sends
//! ([`sources`], with an optional ASN database read by [`mmdb`]), alerts
//! over the store ([`alerts`], by email through [`smtp`]), and the `reports` subcommands ([`cli`]).
//! Leaves DNS records and providers alone.
//!
//! The `mailauth-reports` crate: it builds on `mailauth-core` (config,
//! clock, resolver, SPF evaluation) and nothing in the core depends on it.
//! Cargo features `sqlite` (required), `postgres` (`pgstore`) and `imap`
//! (`ingest::imap`), all on by default, gate the backends and the IMAP
//! source with their dependencies.

// This code was the `reports` module of one crate; these imports keep its
// paths (`crate::config::…`, `crate::reports::store::…`) valid in this crate
// and so the files unchanged.
use crate as reports;
#[allow(unused_imports)]
use mailauth_core::{clock, config, dns, fsutil, http, inspect, output, rt, spf, workspace};

// The SQLite store is the default store and the one every build has
// (`store copy` reads it; see "Cargo features" in docs/architecture.md).
#[cfg(not(feature = "sqlite"))]
compile_error!(
    "mailauth-reports needs its `sqlite` feature (the default store); enable it with `--features sqlite`"
);

pub mod alerts;
pub mod cli;
pub mod dashboard;
pub mod dashq;
pub mod ingest;
pub mod metrics;
pub mod mmdb;
pub mod parse;
#[cfg(feature = "postgres")]
pub mod pgstore;
pub mod rows;
pub mod serve;
pub mod smtp;
pub mod sources;
pub mod store;
pub mod store_cli;

/// Caps applied to every item, so a hostile or broken input cannot exhaust
/// memory or disk. All sizes are bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest raw item (file or message) read: default 64 MiB.
    pub max_input_bytes: u64,
    /// Total decompressed bytes per item across all gzip/zip layers:
    /// default 512 MiB (a 200,000-record report is about 80 MiB of XML).
    pub max_decompressed_bytes: u64,
    /// Largest decompressed:compressed ratio accepted once past 1 MiB of
    /// output: default 1,000 (report XML compresses 10-50x).
    pub max_ratio: u64,
    /// Largest single MIME attachment (decoded): default 32 MiB.
    pub max_attachment_bytes: u64,
    /// Deepest nesting of `message/rfc822` parts: default 3.
    pub max_mime_depth: usize,
    /// Deepest nesting of containers (gzip in zip in mail …): default 6.
    pub max_nesting: usize,
    /// Most entries read from one zip archive: default 16.
    pub max_zip_entries: usize,
    /// Original headers kept from a failure report: default 64 KiB.
    pub max_original_headers: usize,
    /// Deepest element nesting of an aggregate report: default 256 (a
    /// report needs 6; extensions a few more).
    pub max_xml_depth: usize,
    /// Largest `<count>` of one aggregate record: default 2^32.
    pub max_record_count: u64,
    /// Largest sum of the `<count>`s of one aggregate report: default 2^40
    /// (the store sums them in 64-bit integers: 8 million such reports fit).
    pub max_report_messages: u64,
    /// Wall-clock time one item may take to parse (and store, when it is
    /// parsed as it is stored): default 60 s, from when parsing starts
    /// (time waiting for a worker thread does not count). A stuck item is
    /// set aside as invalid with the reason. It covers every stage and
    /// kind: decompression and MIME (the container), aggregate XML,
    /// failure reports and TLS-RPT JSON.
    pub item_time_budget: std::time::Duration,
    /// When the item being parsed runs out of `item_time_budget`: set by
    /// `parse::parse_item` when it starts on an item (leave it `None`).
    pub item_deadline: Option<std::time::Instant>,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_input_bytes: 64 << 20,
            max_decompressed_bytes: 512 << 20,
            max_ratio: 1_000,
            max_attachment_bytes: 32 << 20,
            max_mime_depth: 3,
            max_nesting: 6,
            max_zip_entries: 16,
            max_original_headers: 64 << 10,
            max_xml_depth: 256,
            max_record_count: 1 << 32,
            max_report_messages: 1 << 40,
            item_time_budget: std::time::Duration::from_secs(60),
            item_deadline: None,
        }
    }
}
