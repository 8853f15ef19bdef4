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

/// mimalloc, not the system's allocator. Report ingestion allocates a few
/// small strings per record on the parsing threads and frees them in
/// batches: glibc's malloc spent about a fifth of the parse there, and
/// `reports ingest --dry-run` of the benchmark corpus took 0.37 s with it
/// against 0.27 s with mimalloc (`BENCHMARKS.md`). Built without
/// transparent huge pages (`no_thp`): with them, each arena mimalloc
/// touched counted whole 2 MiB pages, and the same run's peak RSS went
/// from 13 MB to 70 MB; without them, to 20 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use mailauth::reports::cli::{mark_stdout_closed, stdout_closed};

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
