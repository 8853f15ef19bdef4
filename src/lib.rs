//! mailauth: email authentication records (SPF, DKIM, DMARC, MTA-STS,
//! TLS-RPT) for a fleet of domains, managed as code: declare them in YAML,
//! plan and apply them against DNS providers, validate what receivers see,
//! and read the DMARC reports that come back.
//!
//! This crate is the command line: [`cli`] (arguments, the commands, exit
//! codes), the onboarding [`checklist`] (it reads both the live DNS and the
//! report store), and the `keys` and `inspect` commands (they write through
//! the report pipeline's terminal-safe output). The library lives in the
//! crates below it, `mailauth-core` (config, DNS, providers, plan/apply,
//! keys, validate, inspect; the typed records are `mailauth-records` under
//! it, which the core re-exports as `record`) and `mailauth-reports` (the
//! report pipeline, built on the core); docs/architecture.md shows the cut.
//!
//! Their modules are re-exported here under their old paths, so that
//! `mailauth::config`, `mailauth::reports::store` and the rest keep
//! working for the tests, the fuzz targets and the code of this crate.

#![forbid(unsafe_code)]

pub mod checklist;
pub mod cli;

pub use mailauth_core::{
    apply, bridge, clock, config, desired, diff, dns, fsutil, http, import, masterfile, output,
    ownership, par, plan, provider, publish, record, spf, validate, workspace,
};
pub use mailauth_reports as reports;

pub mod output_schema;

/// The core's message inspection, plus its command ([`inspect::cli`]),
/// which lives here because it reads failure reports from the report store.
pub mod inspect {
    pub use mailauth_core::inspect::*;
    pub mod cli;
}

/// The core's DKIM key management, plus its command ([`keys::cli`]), which
/// lives here because it writes through the report pipeline's
/// terminal-safe standard output.
pub mod keys {
    pub use mailauth_core::keys::*;
    pub mod cli;
}
