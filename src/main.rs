//! The `mailauth` binary: parses the command line, runs the command, and
//! turns its outcome into an exit code (see the README's table).
//!
//! A closed standard output (`mailauth schema | head -1`) ends the command
//! quietly with exit status 141 (128 + SIGPIPE), what a shell reports for
//! a Unix tool killed by SIGPIPE: no panic, no "Broken pipe" error. Both
//! ways a command can meet it are handled here: a write that returns the
//! error (the report commands' `PipeStdout` records it), and `println!`,
//! which panics with "failed printing to stdout".

use std::io::Write as _;

use clap::Parser;
use mailauth::reports::cli::{mark_stdout_closed, stdout_closed};

/// mimalloc for small blocks, the system's allocator for large ones.
///
/// Report ingestion allocates a few small strings per record on the
/// parsing threads and frees them in batches: glibc's malloc spent about a
/// fifth of the parse there, and `reports ingest --dry-run` of the
/// benchmark corpus took 0.37 s with it against 0.27 s with mimalloc
/// (`BENCHMARKS.md`). mimalloc is built without transparent huge pages
/// (`no_thp`): with them, each arena it touched counted whole 2 MiB pages,
/// and the same run's peak RSS went from 13 MB to 70 MB; without them, to
/// 20 MB.
///
/// Blocks of [`LARGE`] bytes and more stay with the system's allocator,
/// which grows them in place (glibc remaps them): mimalloc copies a block
/// it grows, so a buffer doubling towards a limit (a document window, up
/// to the decompression budget) held the old and the new copy at once,
/// and a zip bomb's peak RSS went past twice its budget.
#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

/// Blocks at least this large come from the system's allocator.
const LARGE: usize = 1 << 20;

struct Allocator;

// SAFETY: every block is allocated, grown and freed by the allocator its
// size names (`LARGE`): `dealloc` and `realloc` are given the layout the
// block has now (the `GlobalAlloc` contract), so they reach the allocator
// that made it; a block that crosses `LARGE` when resized moves to the
// other one (allocated there, copied, freed here), as `GlobalAlloc`'s
// default `realloc` does. Both allocators honour any alignment.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees, handed on.
        unsafe {
            if layout.size() >= LARGE {
                std::alloc::System.alloc(layout)
            } else {
                mimalloc::MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees, handed on.
        unsafe {
            if layout.size() >= LARGE {
                std::alloc::System.alloc_zeroed(layout)
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` was allocated with `layout` by the allocator its
        // size names (see the impl's comment).
        unsafe {
            if layout.size() >= LARGE {
                std::alloc::System.dealloc(ptr, layout);
            } else {
                mimalloc::MiMalloc.dealloc(ptr, layout);
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc` for `ptr` and `layout`; the caller
        // guarantees `new_size` is valid for `layout.align()`.
        unsafe {
            match (layout.size() >= LARGE, new_size >= LARGE) {
                (false, false) => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
                (true, true) => std::alloc::System.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout =
                        std::alloc::Layout::from_size_align_unchecked(new_size, layout.align());
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

/// The exit status after standard output was found closed.
const CLOSED_STDOUT: i32 = mailauth::cli::Exit::ClosedStdout.code();

/// Whether a panic is `println!`'s on a closed standard output.
fn is_closed_stdout_panic(payload: &(dyn std::any::Any + Send)) -> bool {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe")
}

fn main() {
    let cli = mailauth::cli::Cli::parse();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_closed_stdout_panic(info.payload()) {
            mark_stdout_closed();
        } else {
            default_hook(info);
        }
    }));
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mailauth::cli::run(cli)));
    let code = match outcome {
        Err(_) if stdout_closed() => CLOSED_STDOUT,
        Err(payload) => std::panic::resume_unwind(payload),
        Ok(_) if stdout_closed() => CLOSED_STDOUT,
        Ok(Ok(code)) => code,
        Ok(Err(f)) => {
            eprintln!("error: {}", f.message);
            f.code()
        }
    };
    // `exit` skips destructors: flush what is buffered, quietly.
    let code = match std::io::stdout().flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => CLOSED_STDOUT,
        _ => code,
    };
    std::process::exit(code);
}
