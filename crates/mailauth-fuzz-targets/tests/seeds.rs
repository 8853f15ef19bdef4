//! Every fuzz target's seeds (`fuzz/seeds.txt`) through the target's body,
//! and the truncations of each seed: what a short libFuzzer run replays
//! before it mutates, here in the ordinary test build, without the
//! instrumented one. Also checks that the list of targets, their
//! cargo-fuzz entry points and the seed list name the same targets.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use mailauth_fuzz_targets::TARGETS;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `fuzz/seeds.txt`: each target with its patterns.
fn manifest() -> Vec<(String, Vec<String>)> {
    let path = repo().join("fuzz/seeds.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace().map(String::from);
            let target = words.next().expect("a target");
            (target, words.collect())
        })
        .collect()
}

/// The files a pattern names (see `fuzz/seeds.txt`), sorted.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let path = repo().join(pattern);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some((prefix, suffix)) = name.split_once('*') else {
        return if path.is_file() { vec![path] } else { vec![] };
    };
    let dir = path.parent().expect("a directory");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            p.is_file()
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.len() >= prefix.len() + suffix.len()
                        && n.starts_with(prefix)
                        && n.ends_with(suffix)
                })
        })
        .collect();
    files.sort();
    files
}

/// The seeds of one pattern, each with a name for messages.
fn seeds(pattern: &str) -> Vec<(String, Vec<u8>)> {
    if let Some(file) = pattern.strip_prefix("lines:") {
        let path = repo().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        return text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.starts_with('#'))
            .filter_map(|(i, l)| l.split_once('\t').map(|(_, v)| (i, v)))
            .filter(|(_, v)| !v.is_empty())
            .map(|(i, v)| (format!("{file}:{}", i + 1), v.as_bytes().to_vec()))
            .collect();
    }
    expand(pattern)
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            (p.display().to_string(), data)
        })
        .collect()
}

#[test]
fn every_target_returns_on_its_seeds_and_their_truncations() {
    let mut failures = Vec::new();
    let mut runs = 0;
    for (target, patterns) in manifest() {
        let body = TARGETS
            .iter()
            .find(|(name, _)| *name == target)
            .unwrap_or_else(|| panic!("fuzz/seeds.txt: no target {target:?}"))
            .1;
        let mut seen = 0;
        for pattern in &patterns {
            for (name, data) in seeds(pattern) {
                seen += 1;
                let n = data.len();
                let mut cuts: Vec<usize> = vec![n, n / 4, n / 2, 3 * n / 4, n.saturating_sub(1)];
                cuts.dedup();
                for cut in cuts {
                    runs += 1;
                    if catch_unwind(AssertUnwindSafe(|| body(&data[..cut]))).is_err() {
                        failures.push(format!("{target}: {name} (first {cut} of {n} bytes)"));
                    }
                }
            }
        }
        assert!(seen > 0, "{target}: no seed matches {patterns:?}");
    }
    assert!(runs > 500, "only {runs} runs: are the seeds there?");
    assert!(failures.is_empty(), "panicked:\n{}", failures.join("\n"));
}

#[test]
fn the_targets_their_entry_points_and_the_seed_list_agree() {
    let listed: BTreeSet<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(listed.len(), TARGETS.len(), "a target listed twice");

    let dir = repo().join("fuzz/fuzz_targets");
    let mut entry_points = BTreeSet::new();
    for e in std::fs::read_dir(&dir).expect("fuzz/fuzz_targets") {
        let path = e.expect("entry").path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&format!("mailauth_fuzz_targets::{stem}(data)")),
            "{path:?} does not call mailauth_fuzz_targets::{stem}"
        );
        entry_points.insert(stem);
    }
    let entry_points: BTreeSet<&str> = entry_points.iter().map(String::as_str).collect();
    assert_eq!(listed, entry_points, "TARGETS and fuzz/fuzz_targets differ");

    let cargo = std::fs::read_to_string(repo().join("fuzz/Cargo.toml")).unwrap();
    for name in &listed {
        assert!(
            cargo.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }

    for (target, _) in manifest() {
        assert!(
            listed.contains(target.as_str()),
            "fuzz/seeds.txt names {target:?}, which is not a target"
        );
    }
}
