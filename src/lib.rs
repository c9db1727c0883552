//! ecr-cache-pruner: deletes stale BuildKit registry cache from Amazon ECR, safely.
//!
//! Hexagonal layout: [`core`] decides (pure, no I/O); [`app`] runs the use cases over ports
//! (`Registry`, `BranchLister`); [`adapters`] implement the ports on ECR and GitHub and hold the
//! other AWS glue; [`inbound`] is what drives it all (the Lambda handlers, their configuration,
//! the CLI's rendering); `src/bin/` holds the thin mains.

pub mod adapters;
pub mod app;
pub mod core;
pub mod inbound;
