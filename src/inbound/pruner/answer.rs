//! The answer to a direct (non-SQS) invocation, and the log lines and metrics of a repository.

use lambda_runtime::tracing::{info, warn};
use serde::Serialize;

use crate::adapters::metrics::{Emf, RepositoryMetrics};
use crate::app::branch_cleanup::TagRun;
use crate::app::prune::RepositoryRun;
use crate::app::sweep::RepositoryFailure;
use crate::core::trigger::{GiveUpReason, Trigger};

use super::error::HandlerError;

/// What an invocation did, serialized as the answer's `outcome` string.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pruned,
    TagsProcessed,
    Swept,
    Ignored,
    RepositoryNotFound,
    /// A scheduled sweep sent one message per repository to the queue.
    SweepEnqueued,
    /// Left alone for a lasting reason (`reason` says which): an index that cannot be read,
    /// access refused. Reported and counted (`RepositoriesSkipped`), not retried.
    Skipped,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InvocationAnswer {
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    pub dry_run: bool,
    /// Cache pruning per repository (push events).
    pub repositories: Vec<RepositoryRun>,
    /// Cache tags removed for deleted branches (or stale ones, in a sweep).
    pub tags: Vec<TagRun>,
    /// Sweep only: repositories in scope, not reached before the deadline, and failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepSummary>,
    /// Repositories sent to the sweep queue: every one in scope (`sweep_enqueued`), or the
    /// repository itself when its sweep continues in a new message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enqueued: Vec<String>,
    /// A repository sweep that did not finish and was not continued, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gave_up: Option<GiveUpReason>,
}

impl InvocationAnswer {
    pub fn new(outcome: Outcome, trigger: Option<Trigger>, dry_run: bool) -> Self {
        InvocationAnswer {
            outcome,
            reason: None,
            trigger,
            dry_run,
            repositories: vec![],
            tags: vec![],
            sweep: None,
            enqueued: vec![],
            gave_up: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SweepSummary {
    pub in_scope: usize,
    pub not_reached: Vec<String>,
    pub failures: Vec<RepositoryFailure>,
    /// Left alone for a lasting reason (not retried).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<RepositoryFailure>,
}

pub fn log_summary(report: &RepositoryRun) {
    info!(
        repository = %report.repository,
        dry_run = report.dry_run,
        images = report.images_scanned,
        deleted = report.deleted.len(),
        would_delete = report.would_delete.len(),
        already_deleted = report.already_deleted.len(),
        kept = report.kept.len(),
        remaining = report.remaining,
        failures = report.failures.len(),
        bytes = report.deleted_bytes,
        "prune summary"
    );
}

/// The EMF line of a repository that could not be processed.
pub fn emit_failure(emf: &Emf, repository: &str) {
    let failed = RepositoryMetrics {
        repository: repository.to_owned(),
        failures: 1,
        ..Default::default()
    };
    emf.emit(&[failed]);
}

/// The EMF line of a repository left alone for a lasting reason (reported, not retried).
pub fn emit_skipped(emf: &Emf, repository: &str) {
    let skipped = RepositoryMetrics {
        repository: repository.to_owned(),
        skipped: 1,
        ..Default::default()
    };
    emf.emit(&[skipped]);
}

/// ECR reported per-image failures: the invocation must fail so the event is retried.
pub fn failures_to_error(report: &RepositoryRun) -> Result<(), HandlerError> {
    match report.failures.first() {
        None => Ok(()),
        Some(first) => {
            warn!(report = %serde_json::to_string(report).unwrap_or_default(), "deletions failed");
            Err(HandlerError::DeleteFailures {
                repository: report.repository.clone(),
                count: report.failures.len(),
                code: first.code.clone(),
                message: first.message.clone(),
            })
        }
    }
}
