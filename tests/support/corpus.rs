//! The shared real-artefact corpus (`../shared/real-manifests/`, or `REAL_MANIFESTS_DIR`) is there
//! for CI and the project's developers, never in a user's clone. A test that reads it runs when it
//! is there and, when it is not, records itself as skipped and returns: `scripts/test.sh` names
//! every skipped test in its closing line, so a skip is never silent and never a failure.

use std::io::Write;
use std::path::PathBuf;

/// Why a corpus test did not run; `scripts/test.sh` and `.ci/run` match on it.
pub const NO_CORPUS: &str = "no real-manifest corpus";

/// Skips recorded by the tests of one binary, which run on several threads, are written one at a time.
static SKIP_WRITE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Where the corpus is expected: `REAL_MANIFESTS_DIR`, else `../shared/real-manifests`.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("REAL_MANIFESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::project_dir().join("../shared/real-manifests"))
}

/// The corpus, or `None` after recording the calling test as skipped. A `REAL_MANIFESTS_DIR`
/// set to a folder without the corpus is a mistake, not an absence: it fails.
pub fn corpus_or_skip() -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.join("SOURCES.md").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("REAL_MANIFESTS_DIR").is_none(),
        "REAL_MANIFESTS_DIR={} holds no real-manifest corpus (no SOURCES.md)",
        dir.display()
    );
    record_skip(NO_CORPUS);
    None
}

/// Appends `<test binary>::<test name>: <reason>` to `TEST_SKIPS_FILE` (set by `scripts/test.sh`)
/// and says it on stderr. libtest names each test's thread after the test.
pub fn record_skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_owned();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| {
            stem.rsplit_once('-')
                .map_or(stem.clone(), |(name, _)| name.to_owned())
        })
        .unwrap_or_default();
    let line = format!("{binary}::{test}: {reason}");
    eprintln!("skipped {line}");
    if let Some(path) = std::env::var_os("TEST_SKIPS_FILE") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("TEST_SKIPS_FILE is writable");
        // One write of the whole line: `writeln!` writes the text and the newline separately, and
        // tests skipping at once interleaved them ("a: reasonb: reason\n" counted one skip).
        let _serial = SKIP_WRITE.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(format!("{line}\n").as_bytes())
            .expect("TEST_SKIPS_FILE is writable");
    }
}
