//! A whole connection fed the peer's bytes. First byte: bit 0 = server role,
//! bit 1 = permessage-deflate negotiated; the rest is the byte stream.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&flags, stream)) = data.split_first() {
        pushwire_ws::fuzzing::connection(stream, flags & 1 != 0, flags & 2 != 0);
    }
});
