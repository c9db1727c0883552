//! What drives the application: the Lambda handlers (the `pruner` in [`pruner`], split by job, and
//! the GitHub [`webhook`]), the pruner's environment [`config`], and the operator CLI's rendering
//! ([`cli`]). The mains in `src/bin/` only build these once and hand them to the runtime.

pub mod cli;
pub mod config;
pub mod pruner;
pub mod webhook;

/// Seconds since the Unix epoch, from the system clock: the one place the drivers read "now"
/// (the core takes it as a value).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
