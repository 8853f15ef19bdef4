//! BIND 9 (`named`) on a free loopback port in a temp dir, with TSIG keys,
//! dynamic update and TSIG-signed AXFR. Stopped (by PID) on drop.
//!
//! Two keys are configured per server:
//! - `mailauth-key` (hmac-sha256, [`Bind::tsig`]): the narrow
//!   `update-policy` mailauth documents — apex TXT and MX, `_dmarc`,
//!   `*._domainkey`, `_mta-sts`, `_smtp._tls`, `_mailauth`;
//! - `admin-key` (hmac-sha512, [`Bind::admin_tsig`]): may change anything,
//!   for tests that play a third party editing the zone.
//!
//! The one BIND harness of the tests: the key tests serve their DKIM zone
//! through it too ([`Bind::replace_zone`] restarts the server on a new zone
//! file), and [`Bind::try_start_loaded`] waits until every zone answers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TsigKey, free_port, require_binary, wait_until};

pub struct Bind {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    key: TsigKey,
    admin: TsigKey,
    named: PathBuf,
}

impl Bind {
    /// Starts `named` serving `zones` (zone name, master-file text with
    /// names relative to the zone). Panics if it cannot start; use
    /// [`Bind::try_start`] to honour the missing-binary policy.
    pub fn start(zones: &[(&str, &str)]) -> Bind {
        let named = require_binary("named").expect("`named` is not installed");
        Self::launch(&named, zones, true)
    }

    /// `None` (after a loud SKIP line) when `named` is not installed and CI
    /// is not set; panics under `CI=true`.
    pub fn try_start(zones: &[(&str, &str)]) -> Option<Bind> {
        let named = require_binary("named")?;
        Some(Self::launch(&named, zones, true))
    }

    /// [`Bind::try_start`], then waits until every zone answers its SOA:
    /// named logs that it is running before it has loaded every zone.
    pub fn try_start_loaded(zones: &[(&str, &str)]) -> Option<Bind> {
        let bind = Self::try_start(zones)?;
        for (zone, _) in zones {
            let loaded = wait_until(Duration::from_secs(15), || {
                !bind.dig_short(zone, "SOA").trim().is_empty()
            });
            assert!(loaded, "BIND did not load {zone}");
        }
        Some(bind)
    }

    /// Starts the `named` at `named` (found by [`require_binary`]).
    pub fn start_with(named: &Path, zones: &[(&str, &str)]) -> Bind {
        Self::launch(named, zones, true)
    }

    /// [`Bind::try_start`], but the zones refuse AXFR to the mailauth key
    /// (it may still update them; the admin key may transfer), as a
    /// primary that allows transfers only to its secondaries does.
    pub fn try_start_refusing_transfers(zones: &[(&str, &str)]) -> Option<Bind> {
        let named = require_binary("named")?;
        Some(Self::launch(&named, zones, false))
    }

    fn launch(named: &Path, zones: &[(&str, &str)], transfers: bool) -> Bind {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("run")).expect("mkdir run");
        std::fs::create_dir_all(d.join("zones")).expect("mkdir zones");
        let key = TsigKey::random("mailauth-key", "hmac-sha256");
        let admin = TsigKey::random("admin-key", "hmac-sha512");
        let port = free_port();
        let mut conf = String::new();
        for k in [&key, &admin] {
            conf.push_str(&format!(
                "key \"{}\" {{ algorithm {}; secret \"{}\"; }};\n",
                k.name, k.algorithm, k.secret
            ));
        }
        conf.push_str(&format!(
            "options {{\n  directory \"{run}\";\n  pid-file \"{run}/named.pid\";\n  \
             session-keyfile \"{run}/session.key\";\n  \
             listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  \
             recursion no;\n  allow-query {{ 127.0.0.1; }};\n  dnssec-validation no;\n  \
             notify no;\n}};\ncontrols {{ }};\n",
            run = d.join("run").display(),
        ));
        for (zone, text) in zones {
            let zone = zone.trim_end_matches('.');
            let file = d.join("zones").join(format!("{zone}.db"));
            std::fs::write(&file, text).expect("write zone file");
            let k = &key.name;
            conf.push_str(&format!(
                "zone \"{zone}\" {{\n  type primary;\n  file \"{file}\";\n  \
                 journal \"{file}.jnl\";\n  update-policy {{\n\
                 \x20   grant {k} name {zone}. TXT MX;\n\
                 \x20   grant {k} name _dmarc.{zone}. TXT;\n\
                 \x20   grant {k} wildcard *._domainkey.{zone}. TXT CNAME;\n\
                 \x20   grant {k} name _mta-sts.{zone}. TXT;\n\
                 \x20   grant {k} name _smtp._tls.{zone}. TXT;\n\
                 \x20   grant {k} name _mailauth.{zone}. TXT;\n\
                 \x20   grant {a} zonesub ANY;\n  }};\n  \
                 allow-transfer {{ {mailauth}key {a}; }};\n}};\n",
                file = file.display(),
                a = admin.name,
                mailauth = if transfers {
                    format!("key {k}; ")
                } else {
                    String::new()
                },
            ));
        }
        let conf_path = d.join("named.conf");
        std::fs::write(&conf_path, conf).expect("write named.conf");
        let child = spawn_named(named, d);
        let mut bind = Bind {
            child,
            port,
            dir,
            key,
            admin,
            named: named.to_path_buf(),
        };
        bind.wait_running();
        bind
    }

    /// Waits until named logs that it runs; panics with its log otherwise.
    fn wait_running(&mut self) {
        let log_path = self.dir.path().join("named.log");
        let ready = wait_until(Duration::from_secs(15), || {
            std::fs::read_to_string(&log_path).is_ok_and(|l| {
                // The last startup line is "... running" ("running as:"
                // comes first and does not mean it listens yet).
                l.lines().any(|x| x.trim_end().ends_with(" running"))
            })
        });
        if !ready || self.child.try_wait().ok().flatten().is_some() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("named did not start on port {}:\n{log}", self.port);
        }
    }

    /// Stops named, replaces the file of `zone` (one of the zones it was
    /// started with) by `text`, drops the zone's journal so that the file
    /// is what it serves, and starts named again on the same port.
    pub fn replace_zone(&mut self, zone: &str, text: &str) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let file = self
            .dir
            .path()
            .join("zones")
            .join(format!("{}.db", zone.trim_end_matches('.')));
        assert!(file.is_file(), "{zone} is not a zone of this server");
        std::fs::write(&file, text).expect("write zone file");
        let _ = std::fs::remove_file(file.with_extension("db.jnl"));
        self.child = spawn_named(&self.named, self.dir.path());
        self.wait_running();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The key mailauth uses (narrow update-policy).
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

    /// Writes `key`'s secret to a file in the server's temp dir and returns
    /// its path (for `secret_file:` configs).
    pub fn secret_file(&self, key: &TsigKey) -> PathBuf {
        let p = self.dir.path().join(format!("{}.secret", key.name));
        std::fs::write(&p, &key.secret).expect("write secret");
        p
    }

    /// Runs `nsupdate` with the admin key; `script` holds the update
    /// commands (without `server`/`send`).
    pub fn nsupdate_admin(&self, script: &str) {
        nsupdate(self.port, &self.admin, script);
    }

    /// `dig +short` against this server.
    pub fn dig_short(&self, name: &str, rtype: &str) -> String {
        dig_short(self.port, name, rtype)
    }
}

/// `named -g` on `dir`/named.conf, its log (truncated) in `dir`/named.log.
fn spawn_named(named: &Path, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("named.log")).expect("named.log");
    Command::new(named)
        .arg("-g")
        .arg("-c")
        .arg(dir.join("named.conf"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn named")
}

/// Runs `nsupdate` against 127.0.0.1:`port` signed with `key`.
pub fn nsupdate(port: u16, key: &TsigKey, script: &str) {
    use std::io::Write as _;
    let mut child = Command::new("nsupdate")
        .arg("-y")
        .arg(format!("{}:{}:{}", key.algorithm, key.name, key.secret))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nsupdate");
    let input = format!("server 127.0.0.1 {port}\n{script}\nsend\n");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write nsupdate script");
    let out = child.wait_with_output().expect("nsupdate");
    assert!(
        out.status.success(),
        "nsupdate failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn dig_short(port: u16, name: &str, rtype: &str) -> String {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+short",
            "+tcp",
            name,
            rtype,
        ])
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
