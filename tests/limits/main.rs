//! The `limits` test binary: the binary's time and peak memory (its own
//! `ru_maxrss`, through wait4) on large and hostile configurations and
//! reports.
//!
//! Kept apart from the other binaries so that its time bounds are not
//! measured next to the servers and the heavy tests of the others
//! (tests/README.md).
//!
//! Owns only the list of its test modules; the harness is tests/support,
//! the tests are the modules themselves.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod limits_config;
mod limits_reports;
