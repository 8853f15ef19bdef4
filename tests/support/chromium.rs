//! Headless Chromium for dashboard tests: DOM dumps and screenshots of a
//! page exactly as a browser renders it. Every run gets its own profile
//! directory and no network other than the URL given (loopback or file).
//!
//! Owns only test scaffolding; no production code depends on it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Chromium, or `None` (after a loud SKIP line) when it is not installed;
/// under `CI=true` a missing browser fails the test.
pub fn find() -> Option<PathBuf> {
    super::require_any_binary(&["chromium", "chromium-browser", "google-chrome"])
}

fn run(chromium: &Path, extra: &[String], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1400,1000",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(url);
    let out = cmd.output().expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The DOM after load, serialised by the browser.
pub fn dump_dom(chromium: &Path, url: &str) -> String {
    let out = run(chromium, &["--dump-dom".to_owned()], url);
    String::from_utf8(out.stdout).expect("DOM is UTF-8")
}

/// Screenshot of `url` into `png`; returns (width, height) read from the
/// PNG header.
pub fn screenshot(chromium: &Path, url: &str, png: &Path) -> (u32, u32) {
    run(chromium, &[format!("--screenshot={}", png.display())], url);
    let bytes = std::fs::read(png).expect("screenshot written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |o: usize| u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    (be(16), be(20))
}

/// `file://` URL of a local path.
pub fn file_url(path: &Path) -> String {
    format!(
        "file://{}",
        path.canonicalize().expect("path exists").display()
    )
}
