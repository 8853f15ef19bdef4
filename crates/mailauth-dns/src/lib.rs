//! mailauth-dns: everything that talks to DNS, or to the APIs that hold it.
//! The resolver ([`dns`]: hickory on the process's one runtime, [`rt`], or
//! a plain UDP path for fleet validation), SPF evaluation over it ([`spf`]:
//! `check_host()`, the include tree, flattening), the DNS providers
//! ([`provider`]: zone files, RFC 2136 with TSIG, PowerDNS, Cloudflare,
//! Route 53, each reading and writing RRsets with a version token), the
//! HTTP client they and the MTA-STS and BIMI fetches share ([`http`]), and
//! the small pieces all of them need: the clock and its time formats
//! ([`clock`]) and atomic file writes ([`fsutil`]).
//!
//! Leaves alone what the answers mean and what to change: the config file,
//! ownership, the diff, plan and apply, keys and validation are in
//! `mailauth-core`, which builds on this crate (and re-exports its modules
//! under their old paths); the typed records and master files are
//! `mailauth-records`, below it. This crate depends on no other crate of
//! the workspace but that one (docs/architecture.md).

#![forbid(unsafe_code)]

pub mod clock;
pub mod dns;
pub mod fsutil;
pub mod http;
pub mod provider;
pub mod rt;
pub mod spf;

use mailauth_records as record;
use mailauth_records::masterfile;
