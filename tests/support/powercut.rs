//! Power cuts replayed from a system-call trace: runs a command under
//! strace, follows what it does to the files under one directory (file
//! creation, writes at offsets, truncation, renames, unlinks, mkdir, and
//! fsync/fdatasync of files and of directories), and rebuilds what a disk
//! would hold after a power cut at each moment of the run, keeping only
//! what had been made durable:
//!
//! - a file's bytes are its bytes as of its last fsync/fdatasync (every
//!   write after it is lost);
//! - a directory's entries (files created, renamed in or out, unlinked,
//!   subdirectories made) are its entries as of its last fsync; an entry
//!   never synced is not there, even if the file's own data was synced.
//!
//! That is POSIX's guarantee and nothing more: a journaling file system
//! may keep more, never less. The durable state only changes at an fsync,
//! so the states after each fsync (and the one before the run) are every
//! state a power cut can leave.
//!
//! Before the run the directory is taken as durable (as after `sync`).
//! SQLite's `-shm` file (the WAL index, written through `mmap`, which
//! strace does not see) is left out of every state: it is shared memory,
//! and the first connection after a crash rebuilds it from the WAL.
//!
//! Owns only test scaffolding; used by the durability tests of
//! `tests/reports/reports_ingest.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// strace, or a loud SKIP (panics under CI=true).
pub fn require_strace() -> bool {
    super::require_binary("strace").is_some()
}

/// The system calls followed (every other one leaves the disk alone, or
/// writes only outside the traced directory).
const TRACED: &str = "trace=open,openat,creat,write,writev,pwrite64,pwritev,pwritev2,\
ftruncate,truncate,fallocate,fsync,fdatasync,sync,syncfs,sync_file_range,\
rename,renameat,renameat2,unlink,unlinkat,rmdir,mkdir,mkdirat,link,linkat";

/// Runs `cmd` under strace; returns its output and the trace of what it
/// did under `root`.
pub fn trace(root: &Path, cmd: std::process::Command, log: &Path) -> (std::process::Output, Trace) {
    // The state before the run, taken as durable.
    let start = Fs::load(root);
    let mut strace = std::process::Command::new("strace");
    strace
        .args([
            "-f", "-y", "-qq", "-xx", "-s", "16777216", "-e", TRACED, "-o",
        ])
        .arg(log)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => strace.env(k, v),
            None => strace.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        strace.current_dir(d);
    }
    let out = strace.output().expect("run strace");
    let text = std::fs::read_to_string(log).expect("strace log");
    let t = Trace::parse(start, root, &text);
    (out, t)
}

/// One operation on the traced directory, in the order it completed.
#[derive(Debug, Clone)]
pub enum Op {
    /// open(O_CREAT) of a name that did not exist, or with O_TRUNC.
    Open {
        path: PathBuf,
        create: bool,
        truncate: bool,
    },
    Write {
        path: PathBuf,
        offset: u64,
        data: Vec<u8>,
    },
    Truncate {
        path: PathBuf,
        len: u64,
    },
    /// fsync or fdatasync of a file or directory.
    Sync {
        path: PathBuf,
    },
    /// sync(2) or syncfs(2): everything.
    SyncAll,
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
    Link {
        from: PathBuf,
        to: PathBuf,
    },
    Unlink {
        path: PathBuf,
    },
    Mkdir {
        path: PathBuf,
    },
}

pub struct Trace {
    pub root: PathBuf,
    pub ops: Vec<Op>,
    start: Fs,
}

/// `\xNN…` (strace -xx) to bytes.
fn unhex(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1] == b'x' {
            let h = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex");
            out.push(u8::from_str_radix(h, 16).expect("hex digit"));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn path_of(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

/// A quoted string argument.
fn string_arg(a: &str) -> Vec<u8> {
    assert!(
        a.starts_with('"') && a.ends_with('"'),
        "not a whole string (cut by -s?): {a}"
    );
    unhex(&a[1..a.len() - 1])
}

/// The path strace -y shows after a descriptor (`7</path>`, `AT_FDCWD</cwd>`).
fn fd_path(a: &str) -> Option<PathBuf> {
    let open = a.find('<')?;
    let close = a.rfind('>')?;
    Some(path_of(unhex(&a[open + 1..close])))
}

/// `dirfd`, `"name"` to a path.
fn at_path(dirfd: &str, name: &str) -> PathBuf {
    let name = path_of(string_arg(name));
    if name.is_absolute() {
        return name;
    }
    fd_path(dirfd)
        .unwrap_or_else(|| panic!("no path for {dirfd}"))
        .join(name)
}

impl Trace {
    /// Reads an `strace -f -y -xx` log, keeping the successful calls that
    /// touch `root`, whose state before the run was `start`.
    fn parse(start: Fs, root: &Path, log: &str) -> Trace {
        let mut t = Trace {
            root: root.to_owned(),
            ops: Vec::new(),
            start,
        };
        let mut unfinished: BTreeMap<String, String> = BTreeMap::new();
        for line in log.lines() {
            let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
            let rest = rest.trim_start();
            if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
                unfinished.insert(pid.to_owned(), head.to_owned());
                continue;
            }
            let call = if let Some(r) = rest.strip_prefix("<... ") {
                let (_, tail) = r.split_once(" resumed>").expect("resumed line");
                let head = unfinished.remove(pid).expect("unfinished call");
                format!("{head}{tail}")
            } else {
                rest.to_owned()
            };
            if call.starts_with("+++") || call.starts_with("---") {
                continue;
            }
            t.add(&call);
        }
        t
    }

    fn under(&self, p: &Path) -> bool {
        p.starts_with(&self.root)
    }

    fn add(&mut self, call: &str) {
        let Some(paren) = call.find('(') else { return };
        let name = &call[..paren];
        // `ARGS) = RET`, where strace pads short lines (and the resumed
        // half of a call another thread interrupted) with spaces before
        // the `=` to align the results: `) = 24` may be `)     = 24`.
        // With `-xx` no string argument holds a space, so the last " = "
        // is the result's.
        let Some(eq) = call.rfind(" = ") else {
            return;
        };
        let Some(close) = call[..eq].trim_end().strip_suffix(')') else {
            return;
        };
        let ret = &call[eq + 3..];
        if ret.starts_with('-') || ret.starts_with('?') {
            return; // failed, or never returned
        }
        let args: Vec<&str> = close[paren + 1..].split(", ").collect();
        let op = match name {
            "open" | "openat" | "creat" => {
                let (path, flags) = match name {
                    "open" => (path_of(string_arg(args[0])), args[1]),
                    "creat" => (path_of(string_arg(args[0])), "O_CREAT|O_TRUNC"),
                    _ => (at_path(args[0], args[1]), args[2]),
                };
                // The descriptor's own path is the resolved one.
                let path = fd_path(ret).unwrap_or(path);
                Op::Open {
                    path,
                    create: flags.contains("O_CREAT"),
                    truncate: flags.contains("O_TRUNC"),
                }
            }
            "pwrite64" => {
                let path = fd_path(args[0]).unwrap_or_default();
                let mut data = string_arg(args[1]);
                let n: usize = ret.parse().expect("write count");
                data.truncate(n);
                Op::Write {
                    path,
                    offset: args[3].parse().expect("offset"),
                    data,
                }
            }
            "write" | "writev" | "pwritev" | "pwritev2" | "fallocate" | "sync_file_range" => {
                let path = fd_path(args[0]).unwrap_or_default();
                assert!(
                    !self.under(&path) || path.to_string_lossy().ends_with("-shm"),
                    "{name} on {} is not modelled: {call}",
                    path.display()
                );
                return;
            }
            "ftruncate" => Op::Truncate {
                path: fd_path(args[0]).unwrap_or_default(),
                len: args[1].parse().expect("length"),
            },
            "truncate" => Op::Truncate {
                path: path_of(string_arg(args[0])),
                len: args[1].parse().expect("length"),
            },
            "fsync" | "fdatasync" => Op::Sync {
                path: fd_path(args[0]).unwrap_or_default(),
            },
            "sync" | "syncfs" => {
                self.ops.push(Op::SyncAll);
                return;
            }
            "rename" | "link" => {
                let (from, to) = (path_of(string_arg(args[0])), path_of(string_arg(args[1])));
                if name == "rename" {
                    Op::Rename { from, to }
                } else {
                    Op::Link { from, to }
                }
            }
            "renameat" | "renameat2" | "linkat" => {
                let (from, to) = (at_path(args[0], args[1]), at_path(args[2], args[3]));
                if name == "linkat" {
                    Op::Link { from, to }
                } else {
                    Op::Rename { from, to }
                }
            }
            "unlink" | "rmdir" => Op::Unlink {
                path: path_of(string_arg(args[0])),
            },
            "unlinkat" => Op::Unlink {
                path: at_path(args[0], args[1]),
            },
            "mkdir" => Op::Mkdir {
                path: path_of(string_arg(args[0])),
            },
            "mkdirat" => Op::Mkdir {
                path: at_path(args[0], args[1]),
            },
            _ => return,
        };
        let touches_root = match &op {
            Op::Open { path, .. }
            | Op::Write { path, .. }
            | Op::Truncate { path, .. }
            | Op::Sync { path }
            | Op::Unlink { path }
            | Op::Mkdir { path } => self.under(path),
            Op::Rename { from, to } | Op::Link { from, to } => {
                let (a, b) = (self.under(from), self.under(to));
                assert_eq!(a, b, "a rename into or out of the traced directory");
                a
            }
            Op::SyncAll => true,
        };
        if touches_root {
            self.ops.push(op);
        }
    }

    /// Every state a power cut can leave: before the run, then after each
    /// fsync (the last one is the state after the run). Each is a list of
    /// (path relative to the root, contents) for files and (path, None)
    /// for directories, in path order.
    pub fn crash_states(&self) -> Vec<CrashState> {
        let mut fs = self.start.clone();
        let mut states = vec![fs.durable(0)];
        for (i, op) in self.ops.iter().enumerate() {
            let synced = fs.apply(&self.root, op);
            if synced {
                states.push(fs.durable(i + 1));
            }
        }
        states
    }
}

/// What the disk holds after a power cut once the first `after_ops`
/// operations of the trace had completed.
#[derive(Debug, Clone)]
pub struct CrashState {
    pub after_ops: usize,
    /// Relative path → file contents (`None`: a directory).
    pub entries: BTreeMap<PathBuf, Option<Vec<u8>>>,
}

impl CrashState {
    /// Writes the state out under `dir` (which must be empty).
    pub fn materialize(&self, dir: &Path) {
        for (rel, content) in &self.entries {
            let p = dir.join(rel);
            match content {
                None => std::fs::create_dir_all(&p).expect("mkdir"),
                Some(bytes) => std::fs::write(&p, bytes).expect("write"),
            }
        }
    }

    /// The names in directory `rel`.
    pub fn names_in(&self, rel: &str) -> Vec<String> {
        let rel = Path::new(rel);
        self.entries
            .keys()
            .filter(|p| p.parent() == Some(rel))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }
}

#[derive(Debug, Clone)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// `Some` for a directory: name → inode.
    entries: Option<BTreeMap<String, usize>>,
    durable_entries: BTreeMap<String, usize>,
}

#[derive(Clone)]
struct Fs {
    inodes: Vec<Inode>,
}

impl Fs {
    /// The directory as it is now, all of it durable.
    fn load(root: &Path) -> Fs {
        let mut fs = Fs { inodes: Vec::new() };
        fs.load_dir(root);
        fs
    }

    fn load_dir(&mut self, dir: &Path) -> usize {
        let me = self.new_inode(true);
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("dir entry"))
            .collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let name = e.file_name().to_string_lossy().into_owned();
            let ft = e.file_type().expect("file type");
            let ino = if ft.is_dir() {
                self.load_dir(&e.path())
            } else {
                let ino = self.new_inode(false);
                let bytes = std::fs::read(e.path()).expect("read file");
                self.inodes[ino].data = bytes.clone();
                self.inodes[ino].durable = bytes;
                ino
            };
            self.inodes[me]
                .entries
                .as_mut()
                .unwrap()
                .insert(name.clone(), ino);
            self.inodes[me].durable_entries.insert(name, ino);
        }
        me
    }

    fn new_inode(&mut self, dir: bool) -> usize {
        self.inodes.push(Inode {
            data: Vec::new(),
            durable: Vec::new(),
            entries: dir.then(BTreeMap::new),
            durable_entries: BTreeMap::new(),
        });
        self.inodes.len() - 1
    }

    fn components(root: &Path, p: &Path) -> Vec<String> {
        p.strip_prefix(root)
            .expect("under the root")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    }

    /// The inode at `p` (now, not durably).
    fn lookup(&self, root: &Path, p: &Path) -> Option<usize> {
        let mut ino = 0;
        for c in Self::components(root, p) {
            ino = *self.inodes[ino].entries.as_ref()?.get(&c)?;
        }
        Some(ino)
    }

    /// (parent directory inode, name).
    fn parent(&self, root: &Path, p: &Path) -> (usize, String) {
        let name = p
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        let parent = self
            .lookup(root, p.parent().expect("a parent"))
            .unwrap_or_else(|| panic!("no directory for {}", p.display()));
        (parent, name)
    }

    fn dir_entries(&mut self, ino: usize) -> &mut BTreeMap<String, usize> {
        self.inodes[ino].entries.as_mut().expect("a directory")
    }

    /// Applies one operation; true when it made something durable.
    fn apply(&mut self, root: &Path, op: &Op) -> bool {
        match op {
            Op::Open {
                path,
                create,
                truncate,
            } => {
                let ino = match self.lookup(root, path) {
                    Some(ino) => ino,
                    None if *create => {
                        let (dir, name) = self.parent(root, path);
                        let ino = self.new_inode(false);
                        self.dir_entries(dir).insert(name, ino);
                        ino
                    }
                    None => return false,
                };
                if *truncate && self.inodes[ino].entries.is_none() {
                    self.inodes[ino].data.clear();
                }
                false
            }
            Op::Write { path, offset, data } => {
                let ino = self.lookup(root, path).expect("written file exists");
                let f = &mut self.inodes[ino].data;
                let off = usize::try_from(*offset).expect("offset");
                if f.len() < off + data.len() {
                    f.resize(off + data.len(), 0);
                }
                f[off..off + data.len()].copy_from_slice(data);
                false
            }
            Op::Truncate { path, len } => {
                let ino = self.lookup(root, path).expect("truncated file exists");
                self.inodes[ino]
                    .data
                    .resize(usize::try_from(*len).expect("len"), 0);
                false
            }
            Op::Sync { path } => {
                let Some(ino) = self.lookup(root, path) else {
                    return false;
                };
                self.sync(ino);
                true
            }
            Op::SyncAll => {
                for ino in 0..self.inodes.len() {
                    self.sync(ino);
                }
                true
            }
            Op::Rename { from, to } | Op::Link { from, to } => {
                let (fd, fname) = self.parent(root, from);
                let ino = if matches!(op, Op::Rename { .. }) {
                    self.dir_entries(fd).remove(&fname)
                } else {
                    self.dir_entries(fd).get(&fname).copied()
                }
                .unwrap_or_else(|| panic!("{op:?}: no {fname} in {:?}", self.inodes[fd].entries));
                let (td, tname) = self.parent(root, to);
                self.dir_entries(td).insert(tname, ino);
                false
            }
            Op::Unlink { path } => {
                let (d, name) = self.parent(root, path);
                self.dir_entries(d).remove(&name);
                false
            }
            Op::Mkdir { path } => {
                let (d, name) = self.parent(root, path);
                let ino = self.new_inode(true);
                self.dir_entries(d).insert(name, ino);
                false
            }
        }
    }

    fn sync(&mut self, ino: usize) {
        let i = &mut self.inodes[ino];
        match &i.entries {
            Some(e) => i.durable_entries = e.clone(),
            None => i.durable = i.data.clone(),
        }
    }

    fn durable(&self, after_ops: usize) -> CrashState {
        let mut entries = BTreeMap::new();
        self.walk_durable(0, PathBuf::new(), &mut entries);
        CrashState { after_ops, entries }
    }

    fn walk_durable(&self, dir: usize, rel: PathBuf, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for (name, &ino) in &self.inodes[dir].durable_entries {
            let p = rel.join(name);
            if self.inodes[ino].entries.is_some() {
                out.insert(p.clone(), None);
                self.walk_durable(ino, p, out);
            } else if !name.ends_with("-shm") {
                out.insert(p, Some(self.inodes[ino].durable.clone()));
            }
        }
    }
}
