//! Test helpers shared by the integration tests: the one runner of the
//! real `mailauth` binary ([`mailauth`], a [`Cmd`] with the standard
//! environment), the [`Case`] builder that runs it in a temporary
//! directory holding a config and zones (a fluent builder in the style of
//! just's and ripgrep's test utilities), and golden-file comparison.
//! Declared beside `support` (whose missing-binary policy it uses) by every
//! test binary that runs the binary.
//!
//! Owns how a test starts the binary; leaves the servers, ports and the
//! missing-binary policy to `support`.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The clock of a [`Case`] (`MAILAUTH_NOW`), fixed so that SOA serials and
/// timestamps are reproducible.
pub const NOW: &str = "2026-11-27T12:00:00Z";

/// `mailauth ARGS` with the standard environment (see [`Cmd`]).
pub fn mailauth<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Cmd {
    Cmd::new().args(args)
}

/// One run of the binary, the one place a test builds its command. The
/// standard environment makes it independent of the shell the tests run
/// from: `MAILAUTH_CONFIG` removed (the config is `-c` or the working
/// directory's `mailauth.yaml`) and `NO_COLOR=1`; everything else is
/// inherited, and the clock is the real one unless the test sets
/// `MAILAUTH_NOW` ([`Case`] does).
///
/// [`Cmd::run`] and [`Cmd::output`] wait for the exit with stdout and
/// stderr captured; [`Cmd::spawn`] starts a long-running child with both
/// piped. Without [`Cmd::stdin`], the child's stdin is empty. For what the
/// builder does not cover (stdio sent elsewhere, resource limits, a run
/// under another program), [`Cmd::command`] hands over the
/// `std::process::Command`; a program that runs the binary itself takes
/// its path from [`bin`].
pub struct Cmd {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Default for Cmd {
    fn default() -> Cmd {
        Cmd::new()
    }
}

impl Cmd {
    /// The binary with no arguments yet.
    pub fn new() -> Cmd {
        let mut cmd = Command::new(bin());
        cmd.env_remove("MAILAUTH_CONFIG").env("NO_COLOR", "1");
        Cmd { cmd, stdin: None }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.cmd.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Cmd {
        self.cmd.args(args);
        self
    }

    /// The working directory (by default the test process's).
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.cmd.current_dir(dir);
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Cmd {
        self.cmd.env_remove(k);
        self
    }

    /// Bytes the child reads on its stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs to the end: exit code (-1 when killed by a signal), stdout and
    /// stderr.
    pub fn run(self) -> Run {
        let out = self.output();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs to the end, the output as `std::process` gives it.
    pub fn output(self) -> Output {
        self.spawn().wait_with_output().expect("wait for mailauth")
    }

    /// Starts the child, stdout and stderr piped; its stdin is written
    /// from a thread (a large input cannot block on a full stdout pipe).
    pub fn spawn(mut self) -> Child {
        let stdin = if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = self
            .cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mailauth");
        if let Some(bytes) = self.stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            std::thread::spawn(move || {
                // The child may end without reading it all.
                let _ = pipe.write_all(&bytes);
            });
        }
        child
    }

    /// The command itself, for the caller to set up further. Stdio is left
    /// as `std::process::Command` sets it, so [`Cmd::stdin`] cannot be
    /// combined with it.
    pub fn command(self) -> Command {
        assert!(
            self.stdin.is_none(),
            "Cmd::stdin is not carried over by Cmd::command"
        );
        self.cmd
    }
}

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
            env: vec![("MAILAUTH_NOW".into(), NOW.into())],
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
        self.cmd(args).env("MAILAUTH_NOW", time).run()
    }

    /// `mailauth ARGS` in the case's directory with its environment, not
    /// yet run.
    pub fn cmd(&self, args: &[&str]) -> Cmd {
        let mut cmd = mailauth(args).dir(self.dir.path());
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).run()
    }
}

/// The path of the binary under test, for a program that runs it (strace,
/// a shell); a test that runs it itself goes through [`mailauth`].
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
