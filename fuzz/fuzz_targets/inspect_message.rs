//! Fuzz target `inspect_message`: what `mailauth inspect` reads of a
//! received message — the header section (RFC 5322) and an embedded
//! original (RFC 6591), the Received chain and its dates, DKIM-Signature
//! fields (RFC 6376 §3.5), Authentication-Results and ARC sets (RFC 8601,
//! RFC 8617), mailboxes — and the DKIM and ARC verifiers over a DNS that
//! knows nothing (every key lookup fails).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailauth_core::inspect::{arc, authres, dkim, message, received};

fuzz_target!(|data: &[u8]| {
    let msg = message::Message::parse(data);
    let _ = msg.embedded();
    let values: Vec<String> = msg.all("Received").map(|h| h.value()).collect();
    let hops = received::chain(&values, &["mx.example.com".to_string()]);
    let _ = received::boundary(&hops);
    for v in &values {
        let _ = received::parse_date(v);
    }
    for (i, h) in msg.headers.iter().enumerate() {
        let value = h.value();
        if h.is("DKIM-Signature") {
            let _ = dkim::Signature::parse(&value);
        } else if h.is("Authentication-Results") {
            let _ = authres::parse(i, &value, false);
        } else if h.is("ARC-Authentication-Results") {
            let _ = authres::parse(i, &value, true);
        } else if h.is("From") || h.is("Sender") {
            for m in message::mailboxes(&value) {
                let _ = message::address_domain(&m);
            }
        }
    }
    let dns = mailauth_core::spf::MemoryDns::new();
    let _ = dkim::verify_all(&dns, &msg, 0);
    let _ = arc::verify_chain(&dns, &msg);
});
