//! The `keys` test binary: DKIM key rotation (the lifecycle, the keystore,
//! the `keys` command) and its end-to-end proof: keys published in BIND 9
//! and verified by an independent DKIM implementation, `opendkim-testkey`,
//! and real signers (OpenDKIM, rspamd) behind Postfix.
//!
//! Owns only the list of its test modules; the harness is tests/support,
//! tests/util and `keys_support` (DKIM signing and verification), the
//! tests are the modules themselves (tests/README.md).

#[macro_use]
#[path = "../support/mod.rs"]
mod support;
#[path = "../util/mod.rs"]
mod util;

mod keys_support;

mod keys_bind;
mod keys_cli;
mod keys_lifecycle;
mod signers;
