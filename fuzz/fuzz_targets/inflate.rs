//! permessage-deflate inflation of one message in two pieces. First 2 bytes
//! (little-endian): where to split; the rest is the compressed payload.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let [lo, hi, payload @ ..] = data {
        let split = usize::from(u16::from_le_bytes([*lo, *hi]));
        pushwire_ws::fuzzing::inflate(payload, split);
    }
});
