//! rspamd 3.x (Debian `rspamd`) in the foreground on loopback with a minimal
//! config of its own: only the `dkim_signing` module, DNS pointed at a dead
//! loopback port (it must not reach outside), and the domain table that
//! `mailauth keys export` writes for rspamd (`dkim_signing_domains.conf`)
//! included into `local.d/dkim_signing.conf`; a normal worker (HTTP
//! `/checkv2`) and a milter (`rspamd_proxy` in milter mode, scanning itself)
//! for Postfix. Recipe "rspamd 3.4 signing" in
//! the shared recipes. Started as the `_rspamd` user, stopped by PID.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, http_request, require_binary, wait_until};

pub struct Rspamd {
    child: Child,
    pub port: u16,
    /// The milter (rspamd_proxy in milter mode, scanning itself).
    pub milter_port: u16,
    dir: tempfile::TempDir,
}

impl Rspamd {
    /// `None` (loud SKIP) when rspamd is missing outside CI; panics under
    /// `CI=true`.
    pub fn try_start(export: &Path) -> Option<Rspamd> {
        let bin = require_binary("rspamd")?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        let dead = free_port();
        let milter_port = free_port();
        for sub in ["local.d", "db", "run"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(
            d.join("rspamd.conf"),
            format!(
                "lua = \"$RULESDIR/rspamd.lua\"\n\
                 .include \"$CONFDIR/metrics.conf\"\n.include \"$CONFDIR/actions.conf\"\n\
                 .include \"$CONFDIR/groups.conf\"\n\
                 modules {{ path = \"${{PLUGINSDIR}}\"; fallback_path = \"${{SHAREDIR}}/lua\"; }}\n\
                 .include \"$CONFDIR/modules.d/dkim_signing.conf\"\n\
                 options {{\n  pidfile = \"$RUNDIR/rspamd.pid\";\n  filters = \"dkim\";\n  \
                 dns {{ nameserver = [\"127.0.0.1:{dead}\"]; timeout = 1s; retransmits = 1; }}\n  \
                 url_tld = \"${{SHAREDIR}}/effective_tld_names.dat\";\n  \
                 control_socket = \"$DBDIR/rspamd.sock mode=0600\";\n  \
                 cache_file = \"$DBDIR/symbols.cache\";\n  history_file = \"$DBDIR/rspamd.history\";\n  \
                 local_addrs = \"127.0.0.0/8\";\n}}\n\
                 logging {{ type = \"file\"; filename = \"$RUNDIR/rspamd.log\"; level = \"info\"; }}\n\
                 worker \"normal\" {{ bind_socket = \"127.0.0.1:{port}\"; .include \"$CONFDIR/worker-normal.inc\" }}\n\
                 worker \"rspamd_proxy\" {{ bind_socket = \"127.0.0.1:{milter_port}\"; milter = yes; \
                 timeout = 120s; count = 1; upstream \"local\" {{ default = yes; self_scan = yes; }} }}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("local.d/dkim_signing.conf"),
            format!(
                "sign_local = true;\nuse_esld = false;\nallow_username_mismatch = true;\n\
                 .include \"{}/dkim_signing_domains.conf\"\n",
                export.display()
            ),
        )
        .unwrap();
        let ok = Command::new("chown")
            .args(["-R", "_rspamd:_rspamd"])
            .arg(d)
            .status()
            .unwrap();
        assert!(ok.success(), "chown _rspamd");
        let child = Command::new(bin)
            .args(["-f", "-u", "_rspamd", "-g", "_rspamd", "-c"])
            .arg(d.join("rspamd.conf"))
            .arg("--var")
            .arg(format!("LOCAL_CONFDIR={}", d.display()))
            .arg("--var")
            .arg(format!("DBDIR={}/db", d.display()))
            .arg("--var")
            .arg(format!("RUNDIR={}/run", d.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rspamd");
        let r = Rspamd {
            child,
            port,
            milter_port,
            dir,
        };
        assert!(
            wait_until(Duration::from_secs(60), || {
                // Both workers listen before /ping is asked (the normal
                // worker may come up after the proxy).
                std::net::TcpStream::connect(("127.0.0.1", milter_port)).is_ok()
                    && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && http_request(port, "GET", "/ping", &[], b"")
                        .1
                        .contains("pong")
            }),
            "rspamd did not answer /ping:\n{}",
            r.log()
        );
        Some(r)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("run/rspamd.log")).unwrap_or_default()
    }

    /// The DKIM-Signature rspamd adds to `message` from a local client
    /// (`IP: 127.0.0.1`) with envelope sender `from`, as a header line.
    pub fn sign(&self, from: &str, message: &str) -> String {
        let (status, body) = http_request(
            self.port,
            "POST",
            "/checkv2",
            &[("IP", "127.0.0.1"), ("From", from)],
            message.as_bytes(),
        );
        assert_eq!(status, 200, "rspamd /checkv2: {body}\n{}", self.log());
        let v: serde_json::Value = serde_json::from_str(&body).expect("rspamd answers JSON");
        let sig = match &v["dkim-signature"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a[0].as_str().unwrap_or_default().to_string(),
            _ => panic!("rspamd did not sign: {body}\n{}", self.log()),
        };
        let sig = sig.replace("\r\n", "\n").replace('\n', "\r\n");
        if sig.to_ascii_lowercase().starts_with("dkim-signature:") {
            format!("{sig}\r\n")
        } else {
            format!("DKIM-Signature: {sig}\r\n")
        }
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
