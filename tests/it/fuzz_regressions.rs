//! Replays the fuzz inputs under `fuzz/seeds/protocol/` and any crashes saved
//! under `fuzz/regressions/protocol/` (by `scripts/fuzz`) through
//! `pushwire::protocol::fuzz`, as the `protocol` target in `fuzz/fuzz_targets/`
//! does. Runs on stable with `cargo test`; a panic here is a bug that fuzzing once
//! found (or that a seed exercises). The frame layer's targets are replayed by
//! `crates/pushwire-ws/tests/fuzz_regressions.rs`.

use std::path::Path;

#[path = "../../crates/pushwire-ws/tests/common/replay.rs"]
mod replay;

#[test]
fn protocol() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    replay::replay(&fuzz, "protocol", pushwire::protocol::fuzz);
}
