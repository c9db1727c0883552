//! The pure core: no I/O, only decisions over data.

pub mod branch;
pub mod glob;
pub mod manifest;
pub mod plan;
pub mod reclaim;
pub mod stale;
