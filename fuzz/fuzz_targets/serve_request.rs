//! Fuzz target `serve_request`: arbitrary bytes as what a client sends to
//! `mailauth serve`: the request line and header fields are parsed (at most
//! 16 KiB read), and an origin-form target is routed against an empty
//! in-memory store (path segments, percent-decoding, query filters). It
//! must return, never panic, and every answer has a known status.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mailauth_reports::dashboard::attribution::Attributor;
use mailauth_reports::serve::{State, read_head, route};
use mailauth_reports::store::SqliteStore;

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let store = SqliteStore::open_in_memory().expect("in-memory store");
        State::new(
            Box::new(store),
            Box::new(Attributor::offline),
            "127.0.0.1:8080".parse().expect("address"),
            false,
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(head) = read_head(data) else {
        return;
    };
    if head.target.starts_with('/') {
        let r = route(state(), &head.target);
        assert!(
            [200, 400, 404, 500].contains(&r.status),
            "{:?} answered {}",
            head.target,
            r.status
        );
    }
});
