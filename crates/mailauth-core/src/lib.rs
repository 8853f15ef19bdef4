//! mailauth-core: email authentication records (SPF, DKIM, DMARC, MTA-STS,
//! TLS-RPT, BIMI) for a fleet of domains, managed as code: the YAML
//! configuration, the resolver and the DNS providers, plan and apply, DKIM
//! keys, live validation and message inspection.
//!
//! Leaves alone the typed records and master files themselves (the
//! `mailauth-records` crate at the bottom, re-exported here as [`record`]
//! and [`masterfile`]), talking to DNS servers and DNS APIs (the
//! `mailauth-dns` crate between the two: the resolver, SPF evaluation, the
//! providers, the HTTP client and runtime, the clock, re-exported here under
//! their old paths as [`dns`], [`spf`], [`provider`], [`http`], [`rt`],
//! [`clock`] and [`fsutil`]), the report pipeline (the `mailauth-reports` crate,
//! which builds on this one) and the command line (the `mailauth` crate, on
//! top of both). Nothing here depends on either of the last two: see
//! docs/architecture.md.

#![forbid(unsafe_code)]

pub mod apply;
pub mod bridge;
pub mod config;
pub mod desired;
pub mod diff;
pub mod import;
pub mod inspect;
pub mod keys;
pub mod output;
pub mod ownership;
pub mod par;
pub mod plan;
pub mod publish;
pub mod spf;
pub mod validate;
pub mod workspace;

/// The typed records (`mailauth-records`), under the path they had when
/// they were a module of this crate, so that `crate::record::…` and
/// `mailauth_core::record::…` still name them.
pub use mailauth_records as record;

/// `mailauth-dns`'s modules, under the paths they had when they were
/// modules of this crate.
pub use mailauth_dns::{clock, dns, fsutil, http, provider, rt};

/// RFC 1035 master files (`mailauth-records`), under their old path.
pub use mailauth_records::masterfile;
