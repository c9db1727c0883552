//! Shared test harness: a real moto server on loopback, SDK clients pointed at it, realistic
//! registry content (BuildKit cache manifests, multi-arch indexes, attestations), and a fake
//! Lambda Runtime API for running the real binaries.
#![allow(dead_code)]

pub mod deny_proxy;
pub mod fake_github;
pub mod http;
pub mod memory;
pub mod moto;
pub mod registry;
pub mod runtime_api;
