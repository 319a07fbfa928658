//! Puts the git commit the binary is built from into `PUSHWIRE_GIT_COMMIT`, which
//! `pushwire --version` shows (`pushwire 0.1.0 (commit 1a2b3c4d5e6f)`).
//!
//! The commit comes from, in order: the `PUSHWIRE_GIT_COMMIT` variable (a container
//! build passes it, as its context has no `.git`), then `git rev-parse HEAD` in the
//! package's folder, then `unknown` (a source tarball, no git installed). This never
//! fails the build.
//!
//! Cargo runs it again when the variable changes or when HEAD moves: the files
//! `.git/HEAD` (a checkout), the branch's ref file (a commit) and `packed-refs`
//! (a `git gc`); in a worktree these live in two folders, both asked of git.

use std::path::{Path, PathBuf};
use std::process::Command;

const VARIABLE: &str = "PUSHWIRE_GIT_COMMIT";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={VARIABLE}");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = std::env::var(VARIABLE)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .or_else(|| from_git(&dir))
        .unwrap_or_else(|| String::from("unknown"));
    println!("cargo:rustc-env={VARIABLE}={commit}");
}

/// The short commit of HEAD, after telling cargo which files to watch; `None`
/// without git or outside a repository.
fn from_git(dir: &Path) -> Option<String> {
    // The package's own repository only, not one it was unpacked inside.
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    let git_dir = git(dir, &["rev-parse", "--absolute-git-dir"])?;
    let common_dir = git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .unwrap_or_else(|| git_dir.clone());
    let watch = |path: PathBuf| {
        // Only existing files: a missing one would make cargo rerun every time.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    };
    watch(Path::new(&git_dir).join("HEAD"));
    watch(Path::new(&common_dir).join("packed-refs"));
    if let Some(reference) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch(Path::new(&common_dir).join(&reference));
        watch(Path::new(&git_dir).join(&reference));
    }
    git(dir, &["rev-parse", "--short=12", "HEAD"])
}

/// One line of `git ARGS` run in `dir`, or `None` when git fails or is missing.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let line = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!line.is_empty()).then_some(line)
}
