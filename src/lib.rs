//! mailauth: email authentication records (SPF, DKIM, DMARC, MTA-STS,
//! TLS-RPT) for a fleet of domains, managed as code: declare them in YAML,
//! plan and apply them against DNS providers, validate what receivers see,
//! and read the DMARC reports that come back.

#![forbid(unsafe_code)]

pub mod apply;
pub mod bridge;
pub mod checklist;
pub mod cli;
pub mod clock;
pub mod config;
pub mod desired;
pub mod diff;
pub mod dns;
pub mod fsutil;
pub mod import;
pub mod inspect;
pub mod keys;
pub mod masterfile;
pub mod output;
pub mod output_schema;
pub mod ownership;
pub mod par;
pub mod plan;
pub mod provider;
pub mod publish;
pub mod record;
pub mod reports;
pub mod spf;
pub mod validate;
pub mod workspace;
