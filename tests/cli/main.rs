//! The `cli` test binary: the command line as a user runs it, through the
//! `Case` builder (tests/util): golden output, exit codes, the plan/apply
//! pipeline on zone files and over RFC 2136 to BIND, configuration errors,
//! the JSON output schemas, the bridges to other tools' formats, and the
//! MTA-STS/BIMI commands. Servers: BIND 9 (`named`), the Python tools of
//! the bridge and schema tests (octoDNS, jsonschema), Terraform.
//!
//! Owns only the list of its test modules; the harness is tests/support
//! and tests/util, the tests are the modules themselves (tests/README.md).

#[macro_use]
#[path = "../support/mod.rs"]
mod support;
#[path = "../util/mod.rs"]
mod util;

mod cli_golden;
mod cli_keys;
mod cli_pipeline;
mod cli_rfc2136;
mod config_errors;
mod emit_bridges;
mod mtasts_bimi;
mod output_schema;
