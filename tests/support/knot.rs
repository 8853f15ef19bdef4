//! Knot DNS (`knotd`) on a free loopback port in a temp dir, as an RFC 2136
//! primary with TSIG-signed updates and AXFR. Stopped (by PID) on drop.
//!
//! Two keys are configured per server:
//! - `mailauth-key` (hmac-sha256, [`Knot::tsig`]): the narrow ACL mailauth
//!   documents, updates of TXT, CNAME and MX only, plus AXFR;
//! - `admin-key` (hmac-sha512, [`Knot::admin_tsig`]): may change anything,
//!   for tests that play a third party editing the zone.
//!
//! Knot's ACLs filter by record type, not by name (unlike BIND's
//! `update-policy`), so a key that may write TXT may write any TXT.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::bind::dig_short;
use super::{TsigKey, free_port, require_binary, wait_until};

pub struct Knot {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    key: TsigKey,
    admin: TsigKey,
}

impl Knot {
    /// `None` (after a loud SKIP line) when `knotd` is not installed and CI
    /// is not set; panics under `CI=true`.
    pub fn try_start(zones: &[(&str, &str)]) -> Option<Knot> {
        let knotd = require_binary("knotd")?;
        Some(Self::launch(&knotd, zones))
    }

    fn launch(knotd: &Path, zones: &[(&str, &str)]) -> Knot {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        for sub in ["run", "db", "zones"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        let key = TsigKey::random("mailauth-key", "hmac-sha256");
        let admin = TsigKey::random("admin-key", "hmac-sha512");
        let port = free_port();
        let run = d.join("run");
        let mut conf = format!(
            "server:\n    rundir: \"{run}\"\n    pidfile: \"{run}/knot.pid\"\n    \
             listen: 127.0.0.1@{port}\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: \"{db}\"\n\
             control:\n    listen: \"{run}/knot.sock\"\n\
             key:\n",
            run = run.display(),
            db = d.join("db").display(),
        );
        for k in [&key, &admin] {
            conf.push_str(&format!(
                "  - id: {}\n    algorithm: {}\n    secret: {}\n",
                k.name, k.algorithm, k.secret
            ));
        }
        // The ACL the provider guide documents: only the record types
        // mailauth manages.
        conf.push_str(&format!(
            "acl:\n  - id: mailauth-update\n    key: {k}\n    action: update\n    \
             update-type: [TXT, CNAME, MX]\n  \
             - id: mailauth-transfer\n    key: {k}\n    action: transfer\n  \
             - id: admin\n    key: {a}\n    action: [update, transfer]\n\
             zone:\n",
            k = key.name,
            a = admin.name,
        ));
        for (zone, text) in zones {
            let zone = zone.trim_end_matches('.');
            let file = format!("{zone}.zone");
            std::fs::write(d.join("zones").join(&file), text).expect("write zone file");
            conf.push_str(&format!(
                "  - domain: {zone}\n    storage: \"{}\"\n    file: \"{file}\"\n    \
                 acl: [mailauth-update, mailauth-transfer, admin]\n",
                d.join("zones").display()
            ));
        }
        let conf_path = d.join("knot.conf");
        std::fs::write(&conf_path, conf).expect("write knot.conf");
        let log_path = d.join("knotd.log");
        let log = std::fs::File::create(&log_path).expect("knotd.log");
        let child = Command::new(knotd)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn knotd");
        let mut knot = Knot {
            child,
            port,
            dir,
            key,
            admin,
        };
        // Ready when every zone answers its SOA.
        // Ready when TCP (AXFR, UPDATE) accepts as well as UDP answers
        // every zone: knotd may answer over UDP before its TCP listener
        // takes connections.
        let ready = wait_until(Duration::from_secs(15), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && zones
                    .iter()
                    .all(|(z, _)| !dig_short(port, z, "SOA").trim().is_empty())
        });
        if !ready || knot.child.try_wait().ok().flatten().is_some() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("knotd did not start on port {}:\n{log}", knot.port);
        }
        knot
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The key mailauth uses (TXT, CNAME and MX updates only).
    pub fn tsig(&self) -> &TsigKey {
        &self.key
    }

    /// A key allowed to change anything in the zones.
    pub fn admin_tsig(&self) -> &TsigKey {
        &self.admin
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        // SIGTERM lets knotd flush its journal; it is a throwaway anyway.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if !wait_until(Duration::from_secs(5), || {
            self.child.try_wait().ok().flatten().is_some()
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
