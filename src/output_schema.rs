//! The JSON Schemas (draft 2020-12) of what each command prints as JSON,
//! generated from the Rust types the command serialises (schemars derive),
//! so a schema cannot drift from its output; `mailauth schema --output NAME`
//! prints one and `mailauth schema --list` names them. Owns the list of
//! outputs and their names; the types stay with the modules that print
//! them, and the config file's schema is `config::schema`'s.
//!
//! Times are RFC 3339 UTC strings (`format: date-time`) everywhere: a field
//! serialised as one says so with [`Rfc3339`].

use schemars::{JsonSchema, Schema};

/// One command output with a schema.
pub struct Output {
    /// What `schema --output` takes.
    pub name: &'static str,
    /// The command (and flag) printing it.
    pub command: &'static str,
    schema: fn() -> Schema,
}

impl Output {
    /// The schema, with a title naming the command.
    pub fn schema(&self) -> Schema {
        let mut s = (self.schema)();
        s.insert(
            "title".into(),
            format!("mailauth {}: JSON output", self.command).into(),
        );
        s
    }
}

/// The schema of what serialising a `T` writes (the serialize contract:
/// a field skipped when empty is optional, every other one required), with
/// every object closed, so a field the type does not declare fails
/// validation.
fn of<T: JsonSchema>() -> Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .with_transform(closed as fn(&mut Schema))
        .into_generator()
        .into_root_schema_for::<T>()
}

fn closed(s: &mut Schema) {
    if let Some(o) = s.as_object_mut()
        && o.contains_key("properties")
        && !o.contains_key("additionalProperties")
    {
        o.insert("additionalProperties".into(), false.into());
    }
    schemars::transform::transform_subschemas(&mut closed, s);
}

/// Every command output printed as JSON, by name. `command` is the
/// subcommand path as typed (a test checks that every command taking
/// `--json` or `--format json` is here).
pub const OUTPUTS: &[Output] = &[
    Output {
        name: "plan",
        command: "plan --format json",
        schema: of::<crate::plan::Plan>,
    },
    Output {
        name: "validate",
        command: "validate --json",
        schema: of::<crate::validate::report::JsonReport<'static>>,
    },
    Output {
        name: "inspect",
        command: "inspect --json",
        schema: of::<crate::inspect::Inspection>,
    },
    Output {
        name: "spf-check",
        command: "spf check --json",
        schema: of::<crate::spf::SpfOutcome>,
    },
    Output {
        name: "keys-list",
        command: "keys list --json",
        schema: of::<Vec<crate::keys::cli::KeyListEntry<'static>>>,
    },
    Output {
        name: "keys-show",
        command: "keys show --json",
        schema: of::<crate::keys::cli::KeyShowJson<'static>>,
    },
    Output {
        name: "import",
        command: "import --json",
        schema: of::<crate::import::cli::JsonImport>,
    },
    Output {
        name: "checklist",
        command: "checklist --format json",
        schema: of::<crate::checklist::Checklist>,
    },
    Output {
        name: "reports-ingest",
        command: "reports ingest --json",
        schema: of::<crate::reports::ingest::Summary>,
    },
    Output {
        name: "reports-list",
        command: "reports list --format json",
        schema: of::<Vec<crate::reports::store::ReportRow>>,
    },
    Output {
        name: "reports-show",
        command: "reports show --format json",
        schema: of::<crate::reports::store::ReportDetail>,
    },
    Output {
        name: "reports-export",
        command: "reports export --format json",
        schema: of::<Vec<crate::reports::store::ReportDetail>>,
    },
    Output {
        name: "reports-summary",
        command: "reports summary --json",
        schema: of::<crate::reports::dashboard::model::Overview>,
    },
    Output {
        name: "reports-summary-domain",
        command: "reports summary --domain D --json",
        schema: of::<crate::reports::dashboard::model::DomainView>,
    },
    Output {
        name: "reports-prune",
        command: "reports prune --older-than D --json",
        schema: of::<crate::reports::cli::PruneJson<'static>>,
    },
    Output {
        name: "reports-alerts",
        command: "reports alerts --json",
        schema: of::<crate::reports::alerts::AlertsRun>,
    },
    Output {
        name: "store-migrate",
        command: "store migrate --json",
        schema: of::<crate::reports::store_cli::MigrateOut>,
    },
    Output {
        name: "store-copy",
        command: "store copy --json",
        schema: of::<crate::reports::store_cli::CopySummary>,
    },
];

/// The output named `name`.
pub fn find(name: &str) -> Option<&'static Output> {
    OUTPUTS.iter().find(|o| o.name == name)
}

pub use mailauth_core::output::Rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_schema_generates() {
        let mut names: Vec<_> = OUTPUTS.iter().map(|o| o.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OUTPUTS.len());
        for o in OUTPUTS {
            let s = o.schema();
            assert!(s.get("$schema").is_some(), "{}", o.name);
        }
    }
}
