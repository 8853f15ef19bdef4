//! DKIM keys: generation, the keystore, the rotation lifecycle and the
//! export to signers. Everything here hands out public halves only; private
//! keys leave the keystore through [`export`] alone.
//!
//! The YAML loader, the desired-records builder and plan/apply call in:
//! [`lifecycle::plan`] for the transitions due, [`lifecycle::published_keys`]
//! for the DKIM records that must be in DNS, [`lifecycle::apply_transition`]
//! to take one.

pub mod config;
pub mod export;
pub mod generate;
pub mod lifecycle;
pub mod observe;
pub mod store;
pub mod time;
