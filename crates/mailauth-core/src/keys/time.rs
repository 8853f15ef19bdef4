//! The key lifecycle's instants and spans, at the path the keys code and
//! its callers have always used. The types, their parsing and the injected
//! clock live in `crate::clock`; this module holds nothing of its own.

pub use crate::clock::{NOW_ENV, Span, TimeError, Timestamp, clock};
