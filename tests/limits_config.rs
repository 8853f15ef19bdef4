//! Hostile and huge configs against the real binary: 100,000 domains,
//! a YAML alias bomb ("billion laughs"), and nesting 100,000 levels deep.
//! Each run has a wall-clock bound (a hang fails the test) and a
//! peak-memory bound read from the child's own rusage.
//!
//! Owns the config-side limit tests; leaves the loader to `config::load`
//! and the report-side limits to `tests/limits_reports.rs`.

mod support;
mod util;

use std::path::Path;
use std::time::Duration;

use support::bounded::{Bounded, run_bounded};

/// Runs `mailauth args…` in `dir` under [`run_bounded`].
fn run_in(dir: &Path, args: &[&str], limit: Duration) -> Bounded {
    run_bounded(util::mailauth(args).dir(dir).command(), limit)
}

const MIB: i64 = 1024;

#[test]
fn a_config_with_100000_domains_emits_every_record_in_bounded_memory() {
    const N: usize = 100_000;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = String::with_capacity(N * 120);
    c.push_str("provider:\n  kind: zonefile\n  dir: zones\ndomains:\n");
    for i in 0..N {
        c.push_str(&format!(
            "  d{i}.example:\n    spf: {{ ip4: [192.0.2.{}/32], all: fail }}\n    dmarc: {{ p: reject }}\n",
            i % 256
        ));
    }
    std::fs::write(tmp.path().join("mailauth.yaml"), &c).expect("write config");
    let run = run_in(tmp.path(), &["emit"], Duration::from_secs(600));
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let spf = run
        .stdout
        .lines()
        .filter(|l| l.contains("\"v=spf1 "))
        .count();
    let dmarc = run
        .stdout
        .lines()
        .filter(|l| l.contains("\"v=DMARC1; p=reject"))
        .count();
    assert_eq!(spf, N, "one SPF record per domain");
    assert_eq!(dmarc, N, "one DMARC record per domain");
    assert!(
        run.stdout.contains("d99999.example."),
        "the last domain is emitted"
    );
    // About 10 MiB of YAML: the parsed config and the records it implies
    // fit in well under a gigabyte.
    assert!(
        run.max_rss_kib < 1024 * MIB,
        "peak RSS {} MiB for {N} domains",
        run.max_rss_kib / MIB
    );
    eprintln!(
        "{N} domains: {:?}, peak RSS {} MiB",
        run.elapsed,
        run.max_rss_kib / MIB
    );
}

#[test]
fn a_yaml_alias_bomb_is_refused_in_bounded_memory() {
    // "Billion laughs": nine levels of ten aliases each, 10^9 strings if
    // expanded.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = String::from("x0: &a0 [\"lol\"]\n");
    for i in 1..10 {
        let p = i - 1;
        c.push_str(&format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    c.push_str("provider:\n  kind: zonefile\n  dir: zones\ndomains:\n  example.com:\n    spf: { ip4: [192.0.2.1/32] }\n");
    std::fs::write(tmp.path().join("mailauth.yaml"), &c).expect("write config");
    let run = run_in(tmp.path(), &["emit"], Duration::from_secs(60));
    assert_ne!(run.code, 0, "an alias bomb must not load:\n{}", run.stdout);
    assert!(
        run.code < 128,
        "killed by a signal ({}):\n{}",
        run.code,
        run.stderr
    );
    assert!(
        run.stderr.contains("mailauth.yaml"),
        "the error names the file: {}",
        run.stderr
    );
    assert!(
        run.max_rss_kib < 256 * MIB,
        "peak RSS {} MiB",
        run.max_rss_kib / MIB
    );
}

#[test]
fn yaml_nested_100000_levels_is_refused_without_overflowing_the_stack() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let depth = 100_000;
    let mut c = String::from(
        "provider:\n  kind: zonefile\n  dir: zones\ndomains:\n  example.com:\n    spf:\n      ip4: ",
    );
    c.push_str(&"[".repeat(depth));
    c.push_str(&"]".repeat(depth));
    c.push('\n');
    std::fs::write(tmp.path().join("mailauth.yaml"), &c).expect("write config");
    let run = run_in(tmp.path(), &["emit"], Duration::from_secs(60));
    assert!(
        run.code == 1 || run.code == 2,
        "want a clear error exit, got {} (128+ is a crash):\n{}",
        run.code,
        run.stderr
    );
    assert!(
        run.stderr.contains("mailauth.yaml"),
        "the error names the file: {}",
        run.stderr
    );
}
