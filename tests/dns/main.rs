//! The `dns` test binary: the providers against real DNS servers (BIND 9
//! over RFC 2136, Knot DNS, PowerDNS, moto's Route 53, a Cloudflare API
//! stand-in), import from them, validation, SPF (the RFC 7208 test suite
//! and flattening), the onboarding checklist against live DNS, and message
//! inspection (DKIM, ARC, DMARC) with keys published in BIND.
//!
//! Owns only the list of its test modules; the harness is tests/support
//! and tests/util, the tests are the modules themselves (tests/README.md).

#[macro_use]
#[path = "../support/mod.rs"]
mod support;
#[path = "../util/mod.rs"]
mod util;

mod checklist_bind;
mod import_bind;
mod inspect_bind;
mod inspect_dkim;
mod inspect_samples;
mod providers_conformance;
mod spf_conformance;
mod spf_flatten;
mod validate_bind;
mod validate_dns;
mod validate_mtasts;
