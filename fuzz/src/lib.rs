//! What the fuzz targets share: the parse → render → parse check every
//! `roundtrip_*` target makes on its record type.

use std::fmt::{Debug, Display};
use std::str::FromStr;

/// Whatever `T` accepts must render to text that parses back to the same
/// value, and rendering must be a fixed point after one round. Panics
/// (the fuzzer's crash) otherwise; input `T` rejects is ignored.
pub fn roundtrip<T>(data: &[u8])
where
    T: FromStr + Display + PartialEq + Debug,
    T::Err: Display,
{
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(first) = text.parse::<T>() else {
        return;
    };
    let rendered = first.to_string();
    let second = match rendered.parse::<T>() {
        Ok(v) => v,
        Err(e) => panic!("rendered {rendered:?} (from {text:?}) does not parse: {e}"),
    };
    assert_eq!(
        first, second,
        "round trip changed the value: {text:?} -> {rendered:?}"
    );
    assert_eq!(rendered, second.to_string());
}
