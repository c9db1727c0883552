//! Shared test harness: a real moto server on loopback, SDK clients pointed at it, realistic
//! registry content (BuildKit cache manifests, multi-arch indexes, attestations), and a fake
//! Lambda Runtime API for running the real binaries.
#![allow(dead_code)]

pub mod corpus;
pub mod deny_proxy;
pub mod fake_github;
pub mod http;
pub mod memory;
pub mod moto;
pub mod registry;
pub mod runtime_api;

/// The checkout the tests run from: cargo sets `CARGO_MANIFEST_DIR` when it runs a test, so a
/// test binary built in one checkout and run from another (a shared `CARGO_TARGET_DIR`) reads
/// the files of the one it runs from; the compile-time value is the fallback.
pub fn project_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
