//! The `faults` test binary: what a failure in the middle leaves behind. A
//! full disk (tmpfs), DNS servers and IMAP connections that misbehave or
//! are cut, RFC 2136 updates and zone-file writes killed part-way, key
//! rotation and report ingest killed with SIGKILL and run again.
//!
//! Kept apart from the other binaries: its tests kill processes, mount
//! file systems and bound times, and some start this very binary again to
//! run one test as a child (tests/README.md).
//!
//! Owns only the list of its test modules; the harness is tests/support
//! and tests/util, the tests are the modules themselves.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;
#[path = "../util/mod.rs"]
mod util;

mod faults_disk_full;
mod faults_dns;
mod faults_imap;
mod faults_keys;
mod faults_rfc2136;
mod faults_zonefile;
mod reports_imap_kill9;
mod reports_kill9;
