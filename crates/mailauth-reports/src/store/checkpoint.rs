//! Checkpoints of a SQLite store's WAL on a thread of their own, while items
//! are written in groups (`ReportStore::begin_group`): the thread that
//! writes then only appends to the WAL and commits, and the copy of the
//! committed pages into the database file, with its fsync, runs beside the
//! next group.
//!
//! Owns that thread and its connection to the database file. Leaves when
//! it is woken (after each group's commit) and the writing connection's
//! settings (its automatic checkpoints are off during a group) to the
//! parent module. Durability is SQLite's, as with any second connection
//! checkpointing: a checkpoint copies only committed frames, and the WAL
//! is only started over once every frame of it is in the database file and
//! that file is synced.

use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};

use rusqlite::{Connection, OpenFlags};

/// The checkpointing thread: woken after each group's commit.
pub(super) struct Checkpointer {
    /// Dropped to stop the thread.
    wake: Option<SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a second connection to the database file at `path` and starts
    /// the thread. `None` when either fails: the writing connection then
    /// checkpoints itself, as it does outside groups.
    pub(super) fn start(path: &Path) -> Option<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        // The checkpoint syncs the database file before the WAL may be
        // started over: with the writing connection's setting.
        conn.execute_batch("PRAGMA synchronous = FULL;").ok()?;
        // One wake-up pending at most: a commit while a checkpoint runs
        // asks for one more after it, never for a queue of them.
        let (wake, woken) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("report-checkpoint".to_owned())
            .spawn(move || {
                while woken.recv().is_ok() {
                    // SQLite, sqlite3_wal_checkpoint_v2: "SQLITE_CHECKPOINT_PASSIVE:
                    // Checkpoint as many frames as possible without waiting
                    // for any database readers or writers to finish, then
                    // sync the database file if all frames in the log were
                    // checkpointed." A checkpoint that fails (a full disk)
                    // leaves its frames in the WAL, durable: the next one,
                    // or the last connection's close, copies them.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .ok()?;
        Some(Self {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint of what is committed, without waiting for it.
    pub(super) fn wake(&self) {
        if let Some(wake) = &self.wake {
            // Full: one is asked for already.
            let _ = wake.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    /// Stops the thread once the checkpoint it runs, if any, is done, and
    /// closes its connection: the writing connection, closed after it, is
    /// then the last one and checkpoints what is left as it closes.
    fn drop(&mut self) {
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
