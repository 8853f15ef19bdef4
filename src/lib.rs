//! mailauth: email authentication records (SPF, DKIM, DMARC, MTA-STS,
//! TLS-RPT) for a fleet of domains, managed as code: declare them in YAML,
//! plan and apply them against DNS providers, validate what receivers see,
//! and read the DMARC reports that come back.

pub mod keys;
pub mod provider;
pub mod record;
