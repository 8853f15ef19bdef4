//! Real Postfix on loopback, from a config directory of its own, relaying
//! everything it accepts on its smtpd port through a milter (OpenDKIM or
//! rspamd) to an SMTP sink: aiosmtpd (PyPI) writing each message's raw bytes
//! to a file. Recipe "Postfix + OpenDKIM milter → SMTP sink" in the shared
//! recipes; stopped with `postfix -c DIR stop` on drop.
//!
//! Needs the Debian `postfix` package (its `postfix` user and `postdrop`
//! group) and aiosmtpd in the venv of scripts/install-deps.sh.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, require_binary, wait_until};

/// The SMTP sink: every message received is written whole to `<dir>/NNNN.eml`.
pub struct Sink {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

const SINK: &str = r#"
import itertools, os, signal, sys
from aiosmtpd.controller import Controller
class Handler:
    n = itertools.count()
    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(sys.argv[2], "%04d.eml" % next(self.n))
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 OK"
c = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
c.stop()
"#;

impl Sink {
    pub fn start(python: &Path, dir: &Path) -> Sink {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let mut child = Command::new(python)
            .args(["-c", SINK, &port.to_string()])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the aiosmtpd sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        Sink {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Waits for the `n`-th message (0-based) and returns it.
    pub fn message(&self, n: usize) -> String {
        let p = self.dir.join(format!("{n:04}.eml"));
        assert!(
            wait_until(Duration::from_secs(30), || p.exists()),
            "message {n} never reached the sink"
        );
        std::fs::read_to_string(p).unwrap()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

pub struct Postfix {
    dir: tempfile::TempDir,
    postfix: PathBuf,
    pub port: u16,
}

impl Postfix {
    /// Starts Postfix relaying to `127.0.0.1:sink_port` through the milter
    /// at `127.0.0.1:milter_port`. `None` (loud SKIP) when Postfix is
    /// missing outside CI; panics under `CI=true`.
    pub fn try_start(sink_port: u16, milter_port: u16) -> Option<Postfix> {
        let postfix = require_binary("postfix")?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        for sub in ["spool", "data"] {
            let p = d.join(sub);
            std::fs::create_dir_all(&p).unwrap();
            if sub == "data" {
                let ok = Command::new("chown")
                    .args(["postfix:postfix"])
                    .arg(&p)
                    .status()
                    .unwrap();
                assert!(ok.success(), "chown postfix data_directory");
            }
        }
        let main = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {d}/spool\ndata_directory = {d}/data\n\
             maillog_file = {d}/postfix.log\nmaillog_file_prefixes = {d}\n\
             myhostname = mx.example.test\nmydomain = example.test\nmyorigin = example.test\n\
             inet_interfaces = loopback-only\ninet_protocols = ipv4\n\
             mydestination =\nalias_maps =\nalias_database =\nlocal_recipient_maps =\n\
             local_transport = error:no local delivery\n\
             mynetworks = 127.0.0.0/8\nsmtpd_relay_restrictions = permit_mynetworks, reject\n\
             relayhost = [127.0.0.1]:{sink_port}\nsmtp_dns_support_level = disabled\n\
             smtpd_milters = inet:127.0.0.1:{milter_port}\nmilter_default_action = tempfail\n\
             smtp_tls_security_level = none\nsmtpd_tls_security_level = none\n",
            d = d.display()
        );
        std::fs::write(d.join("main.cf"), main).unwrap();
        let mut master = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
        for line in [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ] {
            master.push_str(line);
            master.push('\n');
        }
        std::fs::write(d.join("master.cf"), master).unwrap();
        let out = Command::new(&postfix)
            .arg("-c")
            .arg(d)
            .arg("start")
            .output()
            .unwrap();
        let pf = Postfix { dir, postfix, port };
        assert!(
            out.status.success(),
            "postfix start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            pf.log()
        );
        assert!(
            wait_until(Duration::from_secs(20), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "postfix smtpd never listened on {port}:\n{}",
            pf.log()
        );
        Some(pf)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix.log")).unwrap_or_default()
    }

    /// Submits `message` over SMTP; panics with the dialogue and the log
    /// when Postfix does not accept it.
    pub fn send(&self, from: &str, to: &str, message: &str) {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        let mut transcript = String::new();
        let expect = |r: &mut BufReader<TcpStream>, code: &str, t: &mut String| loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            t.push_str(&line);
            assert!(
                line.starts_with(code),
                "SMTP: expected {code}:\n{t}\n{}",
                self.log()
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        };
        expect(&mut r, "220", &mut transcript);
        let data = message.replace("\r\n", "\n").replace('\n', "\r\n");
        for (cmd, code) in [
            ("EHLO client.example.test".to_string(), "250"),
            (format!("MAIL FROM:<{from}>"), "250"),
            (format!("RCPT TO:<{to}>"), "250"),
            ("DATA".to_string(), "354"),
        ] {
            write!(w, "{cmd}\r\n").unwrap();
            transcript.push_str(&format!("> {cmd}\n"));
            expect(&mut r, code, &mut transcript);
        }
        w.write_all(data.as_bytes()).unwrap();
        w.write_all(b".\r\n").unwrap();
        expect(&mut r, "250", &mut transcript);
        w.write_all(b"QUIT\r\n").unwrap();
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new(&self.postfix)
            .arg("-c")
            .arg(self.dir.path())
            .arg("stop")
            .output();
    }
}
