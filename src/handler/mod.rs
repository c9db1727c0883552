//! Lambda entry logic, independent of the runtime loop so tests can call it directly.

pub mod pruner;
pub mod webhook;
