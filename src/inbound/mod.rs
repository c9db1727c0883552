//! What drives the application: the Lambda handlers (the `pruner` in [`pruner`], split by job, and
//! the GitHub [`webhook`]), the pruner's environment [`config`], and the operator CLI's rendering
//! ([`cli`]). The mains in `src/bin/` only build these once and hand them to the runtime.

pub mod cli;
pub mod config;
pub mod pruner;
pub mod webhook;
