//! The process's one tokio runtime, built on first use, for the synchronous
//! code that drives asynchronous clients: the resolver (`dns`), the RFC 2136
//! provider's pooled connections, the HTTP client (`http`: the API
//! providers, MTA-STS and BIMI fetches, the reports' webhook), the MTA-STS
//! publisher and the reports' IMAP source. Each caller blocks its own
//! thread on [`block_on`]; the connections' background tasks (hickory's
//! multiplexers, hyper's connection tasks) run on the runtime's worker
//! threads, so many threads may call at once.
//!
//! One exception: `validate` asks its DNS questions through a
//! [per-thread](crate::dns::Resolver::per_thread) resolver, each of its
//! threads driving its own queries on a current-thread runtime (see the
//! architecture document's runtime section for why).
//!
//! Owns building the runtime and nothing else: timeouts, retries and what
//! the futures do stay with each caller. A future given to [`block_on`]
//! must not itself call [`block_on`] (tokio refuses to block a thread
//! that is driving a runtime): the synchronous APIs built on it are called
//! from plain threads only.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// Worker threads: enough for the background I/O tasks of every client at
/// once; the futures themselves are polled on the calling threads.
const WORKERS: usize = 2;

/// The runtime, built on first use; the error of a failed build is kept
/// and returned to every caller.
pub fn runtime() -> std::io::Result<&'static Runtime> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("mailauth-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match rt {
        Ok(rt) => Ok(rt),
        Err(e) => Err(std::io::Error::other(e.clone())),
    }
}

/// Runs `fut` to completion on the calling thread, on the shared runtime.
pub fn block_on<F: Future>(fut: F) -> std::io::Result<F::Output> {
    Ok(runtime()?.block_on(fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_runtime_for_every_caller_and_thread() {
        let here = runtime().unwrap();
        let there = std::thread::spawn(|| runtime().unwrap()).join().unwrap();
        assert!(std::ptr::eq(here, there));
    }

    #[test]
    fn many_threads_block_on_it_at_once() {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    block_on(async move {
                        // A task on the workers, awaited from the caller.
                        tokio::spawn(async move {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            i * 2
                        })
                        .await
                        .unwrap()
                    })
                    .unwrap()
                })
            })
            .collect();
        let sum: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(sum, (0..8).map(|i| i * 2).sum::<usize>());
    }
}
