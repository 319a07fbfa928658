//! Frame header parsing, and encoding back what was parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pushwire_ws::fuzzing::frame_header(data));
