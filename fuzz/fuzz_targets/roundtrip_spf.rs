//! Fuzz target `roundtrip_spf`: whatever `Spf` accepts must render to text that parses back to the same value (parse → render → parse).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(first) = text.parse::<mailauth::record::spf::Spf>() else {
        return;
    };
    let rendered = first.to_string();
    let second = match rendered.parse::<mailauth::record::spf::Spf>() {
        Ok(v) => v,
        Err(e) => panic!("rendered {rendered:?} (from {text:?}) does not parse: {e}"),
    };
    assert_eq!(
        first, second,
        "round trip changed the value: {text:?} -> {rendered:?}"
    );
    // Rendering is a fixed point after one round.
    assert_eq!(rendered, second.to_string());
});
