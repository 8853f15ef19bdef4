//! mailauth-core: email authentication records (SPF, DKIM, DMARC, MTA-STS,
//! TLS-RPT, BIMI) for a fleet of domains, managed as code: the YAML
//! configuration, the resolver and the DNS providers, plan and apply, DKIM
//! keys, live validation and message inspection.
//!
//! Leaves alone the typed records and master files themselves (the
//! `mailauth-records` crate below this one, re-exported here as [`record`]
//! and [`masterfile`]), the report pipeline (the `mailauth-reports` crate,
//! which builds on this one) and the command line (the `mailauth` crate, on
//! top of both). Nothing here depends on either of the last two: see
//! docs/architecture.md.

#![forbid(unsafe_code)]

pub mod apply;
pub mod bridge;
pub mod clock;
pub mod config;
pub mod desired;
pub mod diff;
pub mod dns;
pub mod fsutil;
pub mod http;
pub mod import;
pub mod inspect;
pub mod keys;
pub mod output;
pub mod ownership;
pub mod par;
pub mod plan;
pub mod provider;
pub mod publish;
pub mod rt;
pub mod spf;
pub mod validate;
pub mod workspace;

/// The typed records (`mailauth-records`), under the path they had when
/// they were a module of this crate, so that `crate::record::…` and
/// `mailauth_core::record::…` still name them.
pub use mailauth_records as record;

/// RFC 1035 master files (`mailauth-records`), under their old path.
pub use mailauth_records::masterfile;
