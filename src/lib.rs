//! ecr-cache-pruner: deletes stale BuildKit registry cache from Amazon ECR, safely.
//!
//! Layout: [`core`] decides (pure), [`ecr`] talks to ECR, [`prune`] sequences one repository,
//! [`trigger`] reads events, [`handler`] is the Lambda-facing glue, [`aws`] builds SDK clients.

pub mod aws;
pub mod branch_cleanup;
pub mod cli;
pub mod config;
pub mod core;
pub mod ecr;
pub mod github;
pub mod github_branches;
pub mod handler;
pub mod metrics;
pub mod names;
pub mod prune;
pub mod sweep;
pub mod trigger;
