//! Replays the fuzz inputs under `fuzz/seeds/<target>/` and any crashes saved
//! under `fuzz/regressions/<target>/` (by `scripts/fuzz`; both at the workspace
//! root) through the matching `pushwire_ws::fuzzing` entry point, decoding each
//! input exactly as the target in `fuzz/fuzz_targets/` does. Runs on stable with
//! `cargo test -p pushwire-ws`; a panic here is a bug that fuzzing once found (or
//! that a seed exercises). The `protocol` target (pushwire's own wire protocol) is
//! replayed by the root crate's `tests/fuzz_regressions.rs`.

use std::path::Path;

#[path = "common/replay.rs"]
mod replay;

use pushwire_ws::fuzzing;

/// Replays `target` from the workspace's `fuzz/` (this crate is
/// `crates/pushwire-ws`).
fn replay(target: &str, run: fn(&[u8])) {
    replay::replay(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz"),
        target,
        run,
    );
}

#[test]
fn connection() {
    replay("connection", |data| {
        if let Some((&flags, stream)) = data.split_first() {
            fuzzing::connection(stream, flags & 1 != 0, flags & 2 != 0);
        }
    });
}

#[test]
fn frame_header() {
    replay("frame_header", fuzzing::frame_header);
}

#[test]
fn inflate() {
    replay("inflate", |data| {
        if let [lo, hi, payload @ ..] = data {
            fuzzing::inflate(payload, usize::from(u16::from_le_bytes([*lo, *hi])));
        }
    });
}

#[test]
fn negotiation() {
    replay("negotiation", |data| {
        fuzzing::negotiation(&String::from_utf8_lossy(data));
    });
}

#[test]
fn utf8() {
    replay("utf8", |data| {
        if let [a, b, text @ ..] = data {
            fuzzing::utf8(text, usize::from(*a), usize::from(*b));
        }
    });
}
