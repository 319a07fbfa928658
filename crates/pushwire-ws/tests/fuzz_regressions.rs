//! Replays the fuzz inputs under `fuzz/seeds/<target>/` and any crashes saved
//! under `fuzz/regressions/<target>/` (by `scripts/fuzz`; both at the workspace
//! root) through the matching `pushwire_ws::fuzzing` entry point, decoding each
//! input exactly as the target in `fuzz/fuzz_targets/` does. Runs on stable with
//! `cargo test -p pushwire-ws`; a panic here is a bug that fuzzing once found (or
//! that a seed exercises). The `protocol` target (pushwire's own wire protocol) is
//! replayed by the root crate's `tests/fuzz_regressions.rs`.

use std::path::Path;

use pushwire_ws::fuzzing;

/// Runs `run` on every file of the target's seeds (which must not be empty) and
/// regressions folders.
fn replay(target: &str, run: fn(&[u8])) {
    // This crate is crates/pushwire-ws; the fuzz folder is the workspace's.
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let seeds = inputs(&fuzz.join("seeds").join(target));
    assert!(
        !seeds.is_empty(),
        "fuzz/seeds/{target}/ is missing or empty"
    );
    let regressions = fuzz.join("regressions").join(target);
    let regressions = if regressions.is_dir() {
        inputs(&regressions)
    } else {
        Vec::new()
    };
    for path in seeds.iter().chain(&regressions) {
        let input = std::fs::read(path).unwrap();
        eprintln!("{target}: {}", path.display());
        run(&input);
    }
}

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
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
