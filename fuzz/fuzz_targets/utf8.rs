//! The streaming UTF-8 check against std. First 2 bytes: the two split points;
//! the rest is the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let [a, b, text @ ..] = data {
        pushwire_ws::fuzzing::utf8(text, usize::from(*a), usize::from(*b));
    }
});
