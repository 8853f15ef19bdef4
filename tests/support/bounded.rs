//! A run of the binary under a time bound, with the child's own peak
//! memory (wait4 rusage): the limit tests' measure of "bounded".

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a bounded run of the binary produced.
pub struct Bounded {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident set of the child, in KiB.
    pub max_rss_kib: i64,
    pub elapsed: Duration,
}

// The child is reaped by `wait4` (for its rusage), not `Child::wait`.
#[allow(clippy::zombie_processes)]
/// Runs `cmd`, killing it and failing the test if it is still running after
/// `limit`. Memory is the child's own `ru_maxrss` (wait4), not the test
/// process's, and not another test's child.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Bounded {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailauth");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let pid = child.id() as libc::pid_t;
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our own child, not yet reaped; the pointers are
        // to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        assert!(r == 0, "wait4 failed: {}", std::io::Error::last_os_error());
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "HANG: {:?} still running after {limit:?}; killed",
                cmd.get_args().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Bounded {
        code,
        stdout: out_t.join().expect("stdout reader"),
        stderr: err_t.join().expect("stderr reader"),
        max_rss_kib: usage.ru_maxrss,
        elapsed,
    }
}
