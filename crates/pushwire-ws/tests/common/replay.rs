//! Replaying fuzz inputs in plain `cargo test`: every seed and every saved crash
//! of a target, through the function the target fuzzes. Shared by this crate's
//! `tests/fuzz_regressions.rs` (the frame layer's targets) and the root crate's
//! `tests/it/fuzz_regressions.rs` (the `protocol` target), which include this file.

use std::path::Path;

/// Runs `run` on every file of the target's seeds (which must not be empty) and
/// regressions folders, below `fuzz` (the workspace's `fuzz/`).
pub fn replay(fuzz: &Path, target: &str, run: fn(&[u8])) {
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
