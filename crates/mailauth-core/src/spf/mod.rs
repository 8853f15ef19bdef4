//! SPF in the core: the evaluation (RFC 7208 `check_host()`, the include
//! tree, flattening) is `mailauth-dns`'s `spf`, re-exported here whole under
//! its old path; this module adds only `mailauth spf check`'s command
//! ([`cli`]), which renders through the output model and shares
//! `validate`'s findings, both of which live above that crate.

pub use mailauth_dns::spf::*;

pub mod cli;
