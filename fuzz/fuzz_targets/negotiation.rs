//! Sec-WebSocket-Extensions negotiation, both roles, on the input as lossy UTF-8.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pushwire_ws::fuzzing::negotiation(&String::from_utf8_lossy(data));
});
