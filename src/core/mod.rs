//! The pure core: no I/O, no SDK, runtime or HTTP types — only decisions over data.
//!
//! What is a cache manifest ([`manifest`]), what to delete and why ([`plan`]), which branch caches
//! are stale or gone ([`stale`]), what a report sizes and prices ([`savings`]), branch → tag ([`branch`]), which events mean what ([`trigger`]),
//! webhook authentication ([`webhook`]), and the identifier rules they all rely on ([`names`]).

pub mod branch;
pub mod budget;
pub mod cache_tags;
pub mod glob;
pub mod manifest;
pub mod names;
pub mod plan;
pub mod reclaim;
pub mod repository_map;
pub mod savings;
pub mod stale;
pub mod time;
pub mod trigger;
pub mod webhook;
