//! The OpenDKIM milter (Debian `opendkim`) in the foreground on a loopback
//! port, signing with the KeyTable and SigningTable that `mailauth keys
//! export` writes; and `opendkim-testkey` pointed at a local DNS server.
//! Stopped by PID on drop; restarted to load a new export (what the export
//! hook's reload does in production).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, require_binary, wait_until};

pub struct Opendkim {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Opendkim {
    /// Signs for every domain in `<export>/SigningTable`. `None` (loud
    /// SKIP) when opendkim is missing outside CI; panics under `CI=true`.
    pub fn try_start(export: &Path) -> Option<Opendkim> {
        let bin = require_binary("opendkim")?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        Some(Self::launch(&bin, export, dir, port))
    }

    fn launch(bin: &Path, export: &Path, dir: tempfile::TempDir, port: u16) -> Opendkim {
        let conf = dir.path().join("opendkim.conf");
        std::fs::write(
            &conf,
            format!(
                "Mode s\nKeyTable file:{e}/KeyTable\nSigningTable refile:{e}/SigningTable\n\
                 InternalHosts 127.0.0.1\nSocket inet:{port}@127.0.0.1\nSyslog no\n\
                 RequireSafeKeys false\nCanonicalization relaxed/simple\n\
                 PidFile {d}/opendkim.pid\nMultipleSignatures yes\n",
                e = export.display(),
                d = dir.path().display(),
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("-f")
            .arg("-x")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start opendkim");
        assert!(
            wait_until(Duration::from_secs(20), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "opendkim never listened on {port}"
        );
        Opendkim { child, port, dir }
    }

    /// Stops and starts it again on the same port, reading the export anew.
    pub fn restart(self, export: &Path) -> Opendkim {
        let bin = require_binary("opendkim").unwrap();
        let port = self.port;
        let dir = tempfile::tempdir().unwrap();
        drop(self);
        Self::launch(&bin, export, dir, port)
    }
}

impl Drop for Opendkim {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.dir.path().join("opendkim.pid"));
    }
}

/// `opendkim-testkey` for `selector._domainkey.domain` against the server
/// on 127.0.0.1:`port`, with the private key at `key`: 0 when the
/// published record matches the key, 65 when it does not, 69 when it is
/// revoked or missing.
pub fn testkey(port: u16, domain: &str, selector: &str, key: &Path) -> (i32, String) {
    let bin: PathBuf = require_binary("opendkim-testkey").expect("opendkim-testkey");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("unbound.conf"),
        format!(
            "server:\n    do-not-query-localhost: no\n    local-zone: \"test.\" nodefault\nstub-zone:\n    name: \"{domain}\"\n    stub-addr: 127.0.0.1@{port}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("testkey.conf"),
        format!(
            "ResolverConfiguration {}\n",
            d.join("unbound.conf").display()
        ),
    )
    .unwrap();
    let out = Command::new(bin)
        .arg("-x")
        .arg(d.join("testkey.conf"))
        .args(["-d", domain, "-s", selector, "-k"])
        .arg(key)
        .arg("-vvv")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
