//! Test helpers shared by the integration tests: run the real `mailauth`
//! binary in a temporary directory (a fluent builder in the style of just's
//! and ripgrep's test utilities), and compare output with golden files.
//! Declared beside `support` (whose missing-binary policy it uses) by the
//! test binaries that run the command line.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory holding a config and zone files, where the binary
/// runs.
pub struct Case {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

impl Case {
    pub fn new() -> Case {
        Case {
            dir: tempfile::tempdir().expect("tempdir"),
            // A fixed clock makes SOA serials and timestamps reproducible.
            env: vec![("MAILAUTH_NOW".into(), "2026-11-27T12:00:00Z".into())],
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(self, rel: &str, text: &str) -> Case {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    pub fn config(self, text: &str) -> Case {
        self.file("mailauth.yaml", text)
    }

    pub fn env(mut self, k: &str, v: &str) -> Case {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// `run` with the clock set to `time` (RFC 3339).
    pub fn run_at(&self, time: &str, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        cmd.env("MAILAUTH_NOW", time);
        output(cmd)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("MAILAUTH_CONFIG")
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        output(self.command(args))
    }
}

fn output(mut cmd: Command) -> Run {
    let out: Output = cmd.output().expect("run mailauth");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mailauth"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compares `actual` with the golden file `tests/golden/<rel>`. On a
/// mismatch writes `<rel>.actual` beside it and fails with a line diff;
/// `MAILAUTH_BLESS=1` rewrites the golden file instead.
pub fn golden(rel: &str, actual: &str) {
    let path = repo().join("tests/golden").join(rel);
    if std::env::var_os("MAILAUTH_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with MAILAUTH_BLESS=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let actual_path = path.with_file_name(format!(
            "{}.actual",
            path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&actual_path, actual).unwrap();
        panic!(
            "{} differs from the output (written to {}):\n{}",
            path.display(),
            actual_path.display(),
            line_diff(&expected, actual)
        );
    } else {
        let actual_path = path.with_file_name(format!(
            "{}.actual",
            path.file_name().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_file(actual_path);
    }
}

/// A minimal line diff (longest common subsequence), `-` expected, `+` actual.
pub fn line_diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

/// Checks a zone file with BIND's named-checkzone. Under CI=true a missing
/// named-checkzone fails the test; elsewhere it is reported and skipped
/// (the harness's `require_binary`).
pub fn checkzone(zone: &str, path: &Path) {
    let Some(named_checkzone) = crate::support::require_binary("named-checkzone") else {
        return;
    };
    let out = Command::new(named_checkzone)
        .arg(zone)
        .arg(path)
        .output()
        .expect("run named-checkzone");
    assert!(
        out.status.success(),
        "named-checkzone rejects {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
