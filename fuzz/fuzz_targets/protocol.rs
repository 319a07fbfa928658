//! The `/ws` request parser, the positions text form and published JSON: no
//! panic, and everything they produce is well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pushwire::protocol::fuzz(data);
});
