//! Python tools the bridge and signer tests drive: octoDNS
//! (`octodns-validate`, `octodns-sync` with octodns-bind) and aiosmtpd, from
//! the venv scripts/install-deps.sh creates (`$MAILAUTH_VENV`, default
//! /opt/mailauth/venv), falling back to PATH. Same missing-tool policy as
//! [`super::require_binary`]: fails under `CI=true`, loud SKIP otherwise.

use std::path::PathBuf;

/// The venv scripts/install-deps.sh installs the Python tools into.
pub fn venv() -> PathBuf {
    std::env::var_os("MAILAUTH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/mailauth/venv"))
}

/// A console script of the venv (`octodns-sync`, `python`), or from PATH.
pub fn tool(name: &str) -> Option<PathBuf> {
    let p = venv().join("bin").join(name);
    if p.is_file() {
        return Some(p);
    }
    super::require_binary(name)
}

/// The venv's Python when it can import `module`.
pub fn python_with(module: &str) -> Option<PathBuf> {
    let py = venv().join("bin").join("python");
    let ok = py.is_file()
        && std::process::Command::new(&py)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "Python module `{module}` is required under CI=true but {} cannot import it (scripts/install-deps.sh)",
            py.display()
        );
    }
    eprintln!(
        "\n!!!!!!!! SKIP: Python module `{module}` not installed; this test did not run !!!!!!!!\n"
    );
    None
}
