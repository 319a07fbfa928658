//! Replays the fuzz inputs under `fuzz/seeds/protocol/` and any crashes saved
//! under `fuzz/regressions/protocol/` (by `scripts/fuzz`) through
//! `pushwire::protocol::fuzz`, as the `protocol` target in `fuzz/fuzz_targets/`
//! does. Runs on stable with `cargo test`; a panic here is a bug that fuzzing once
//! found (or that a seed exercises). The frame layer's targets are replayed by
//! `crates/pushwire-ws/tests/fuzz_regressions.rs`.

use std::path::Path;

/// Runs `run` on every file of the target's seeds (which must not be empty) and
/// regressions folders.
fn replay(target: &str, run: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
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
fn protocol() {
    replay("protocol", pushwire::protocol::fuzz);
}
