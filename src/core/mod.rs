//! The pure core: no I/O, only decisions over data.

pub mod branch;
pub mod manifest;
pub mod plan;
