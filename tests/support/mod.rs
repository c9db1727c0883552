//! Shared test harness: a real moto server on loopback, SDK clients pointed at it, and realistic
//! registry content (BuildKit cache manifests, multi-arch indexes, attestations).
#![allow(dead_code)]

pub mod moto;
pub mod registry;
