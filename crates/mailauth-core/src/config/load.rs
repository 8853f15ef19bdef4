//! Reading the config file: YAML syntax and type errors, then the semantic
//! checks, all reported with `file:line:column`, the field path and a hint.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Config;

/// One problem at one place in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, e.g. `domains.example.com.dmarc.rua[0]`.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: cannot read the config: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// YAML syntax or type errors (one: the parser stops at the first).
    /// Semantic errors (all of them, in file order).
    #[error("{}", render(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Located>,
    },
}

fn render(path: &Path, problems: &[Located]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            // `main` prefixes the first line with "error: ".
            out.push_str("\nerror: ");
        }
        out.push_str(&format!("{}:{p}", path.display()));
    }
    out
}

/// Reads and checks the config at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path)
}

/// Parses and checks config text; `path` is used in messages only.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut config: Config = serde_saphyr::from_str_with_options(text, yaml_options(text.len()))
        .map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems: vec![from_yaml_error(&e, text)],
        })?;
    let (mut problems, mut warnings) = super::check::check(&config);
    if problems.is_empty() {
        warnings.sort_by_key(|p| (p.line, p.column));
        config.warnings = warnings;
        Ok(config)
    } else {
        problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// The YAML parser's resource budget. Its default (250,000 nodes, 1,000,000
/// events) refuses fleets past about 19,000 domains; the node and event
/// caps grow with the input instead (a node or event needs at least one
/// byte), so memory stays linear in the file size. Alias, anchor and depth
/// caps keep their defaults: an alias bomb is still refused.
fn yaml_options(input_len: usize) -> serde_saphyr::Options {
    let defaults = serde_saphyr::Budget::default();
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: defaults.max_nodes.max(input_len),
            max_events: defaults.max_events.max(input_len.saturating_mul(2)),
        },
    }
}

fn from_yaml_error(e: &serde_saphyr::Error, text: &str) -> Located {
    let (line, column) = e
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((0, 0));
    // The first line of the rendering is `error: line L column C: message`.
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let message = first
        .strip_prefix("error: ")
        .unwrap_or(first)
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("line "))
        .map_or(first, |(_, msg)| msg)
        .to_string();
    let message = message.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    let hint = did_you_mean(&message);
    Located {
        line,
        column,
        field: path_at(text, line),
        message,
        hint,
    }
}

/// For "unknown field `polcy`, expected one of p, rua" (and the same for
/// variants), the closest expected name.
fn did_you_mean(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (got, rest) = rest.split_once('`')?;
    let expected = rest
        .split_once("expected one of ")
        .map(|(_, list)| list)
        .or_else(|| rest.split_once("expected ").map(|(_, one)| one))?;
    let best = expected
        .split(", ")
        .map(|c| c.trim_matches('`'))
        .map(|c| (edit_distance(got, c), c))
        .min()?;
    (best.0 <= got.len().max(2) / 2 + 1).then(|| format!("did you mean `{}`?", best.1))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The dotted key path of the block-style YAML node on `line` (1-based),
/// found from indentation: good enough to name a field in a message.
pub(crate) fn path_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if line == 0 || line > lines.len() {
        return String::new();
    }
    let indent = |s: &str| s.len() - s.trim_start_matches([' ', '-']).len();
    let key_of = |s: &str| -> Option<String> {
        let t = s.trim_start_matches([' ', '-']).trim_start();
        if t.starts_with('#') {
            return None;
        }
        let (k, _) = t.split_once(':')?;
        let k = k.trim().trim_matches(['"', '\'']);
        (!k.is_empty() && !k.contains(' ') || k.contains('.')).then(|| k.to_string())
    };
    let mut parts = Vec::new();
    let target = lines[line - 1];
    if let Some(k) = key_of(target) {
        parts.push(k);
    }
    let mut limit = indent(target);
    for l in lines[..line - 1].iter().rev() {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        let ind = indent(l);
        if ind < limit {
            if let Some(k) = key_of(l) {
                parts.push(k);
            }
            limit = ind;
            if ind == 0 {
                break;
            }
        }
    }
    parts.reverse();
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        assert_eq!(
            did_you_mean("unknown field `polcy`, expected one of p, policy, rua").as_deref(),
            Some("did you mean `policy`?")
        );
        assert_eq!(
            did_you_mean("unknown variant `rejet`, expected one of none, quarantine, reject")
                .as_deref(),
            Some("did you mean `reject`?")
        );
        assert_eq!(
            did_you_mean("unknown field `zzzzzz`, expected one of p"),
            None
        );
    }

    #[test]
    fn paths() {
        let text = "domains:\n  example.com:\n    dmarc:\n      p: reject\n      polcy: x\n";
        assert_eq!(path_at(text, 5), "domains.example.com.dmarc.polcy");
        assert_eq!(path_at(text, 2), "domains.example.com");
    }
}
