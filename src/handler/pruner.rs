//! The pruner's event handling: EventBridge events directly, or SQS batches of them.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::tracing::{info, warn};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::branch_cleanup::{remove_cache_tag, TagReport};
use crate::config::Config;
use crate::ecr::{Ecr, EcrError};
use crate::github_branches::GithubBranches;
use crate::metrics::{self, RepositoryMetrics};
use crate::prune::{prune_repository, PruneError, PruneSettings, RepositoryReport};
use crate::sweep::{sweep, RepositoryFailure, SweepReport};
use crate::trigger::{decide, Decision, Trigger, TriggerError};
use tokio::sync::OnceCell;

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error(transparent)]
    BadEvent(#[from] TriggerError),
    #[error("unrecognised input: expected an EventBridge event or an SQS event ({0})")]
    UnknownInput(String),
    #[error(transparent)]
    Prune(#[from] PruneError),
    #[error("GitHub: {0}")]
    Github(String),
    #[error("sweep: {count} repositor(y/ies) failed, first {repository}: {error}")]
    SweepFailures {
        count: usize,
        repository: String,
        error: String,
    },
    #[error("{repository}: {count} deletion(s) failed, first {code}: {message}; the event will be retried")]
    DeleteFailures {
        repository: String,
        count: usize,
        code: String,
        message: String,
    },
}

impl HandlerError {
    fn kind(&self) -> &'static str {
        match self {
            HandlerError::BadEvent(_) => "BadEvent",
            HandlerError::UnknownInput(_) => "UnknownInput",
            HandlerError::Prune(_) => "PruneFailed",
            HandlerError::DeleteFailures { .. } => "DeleteFailures",
            HandlerError::SweepFailures { .. } => "SweepFailures",
            HandlerError::Github(_) => "GitHub",
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(err: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.kind().to_owned(),
            error_message: err.to_string(),
        }
    }
}

/// The answer to a direct (non-SQS) invocation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InvocationReport {
    /// `pruned`, `tags_processed`, `swept`, `ignored` or `repository_not_found`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    pub dry_run: bool,
    /// Cache pruning per repository (push events).
    pub repositories: Vec<RepositoryReport>,
    /// Cache tags removed for deleted branches (or stale ones, in a sweep).
    pub tags: Vec<TagReport>,
    /// Sweep only: repositories in scope, not reached before the deadline, and failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepSummary>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SweepSummary {
    pub in_scope: usize,
    pub not_reached: Vec<String>,
    pub failures: Vec<RepositoryFailure>,
}

/// Stop starting new repositories when less than this is left before the Lambda deadline.
pub const SWEEP_SAFETY_MARGIN: Duration = Duration::from_secs(30);

/// Built once per container: configuration and the ECR adapter (and, when configured, the
/// GitHub client, made on first use from the token in Secrets Manager).
pub struct Pruner {
    pub config: Config,
    pub ecr: Ecr,
    secrets: Option<aws_sdk_secretsmanager::Client>,
    github: OnceCell<GithubBranches>,
}

impl Pruner {
    pub fn new(config: Config, ecr: Ecr) -> Self {
        Pruner {
            config,
            ecr,
            secrets: None,
            github: OnceCell::new(),
        }
    }

    /// With a Secrets Manager client, for `GITHUB_TOKEN_SECRET_ARN`.
    pub fn with_secrets(mut self, secrets: aws_sdk_secretsmanager::Client) -> Self {
        self.secrets = Some(secrets);
        self
    }

    async fn github(&self) -> Result<Option<&GithubBranches>, String> {
        let Some(arn) = &self.config.github_token_secret_arn else {
            return Ok(None);
        };
        let secrets = self
            .secrets
            .as_ref()
            .ok_or("GITHUB_TOKEN_SECRET_ARN is set but no Secrets Manager client was given")?;
        let client = self
            .github
            .get_or_try_init(|| async {
                let token = secrets
                    .get_secret_value()
                    .secret_id(arn)
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "reading the GitHub token failed: {}",
                            aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                        )
                    })?
                    .secret_string()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .ok_or("the GitHub token secret has no SecretString")?;
                GithubBranches::new(&self.config.github_api_url, &token)
            })
            .await?;
        Ok(Some(client))
    }

    fn settings(&self) -> PruneSettings {
        PruneSettings {
            dry_run: self.config.dry_run,
            max_deletions: self.config.max_deletions,
            estimate_reclaimed: self.config.estimate_reclaimed_on_push,
        }
    }

    /// Entry point for any payload the function accepts, without a deadline.
    pub async fn handle(&self, payload: Value) -> Result<Value, HandlerError> {
        self.handle_with_deadline(payload, None).await
    }

    /// Entry point with the invocation's deadline (the sweep stops starting repositories
    /// [`SWEEP_SAFETY_MARGIN`] before it).
    pub async fn handle_with_deadline(
        &self,
        payload: Value,
        deadline: Option<SystemTime>,
    ) -> Result<Value, HandlerError> {
        if payload.get("Records").is_some() {
            let event: SqsEvent = serde_json::from_value(payload)
                .map_err(|e| HandlerError::UnknownInput(format!("bad SQS event: {e}")))?;
            let response = self.handle_sqs(event, deadline).await;
            return Ok(serde_json::to_value(response).expect("SQS response serializes"));
        }
        if payload.get("detail-type").is_none() {
            return Err(HandlerError::UnknownInput(
                "no `Records` and no `detail-type` field".into(),
            ));
        }
        let report = self.handle_event(&payload, deadline).await?;
        Ok(serde_json::to_value(report).expect("report serializes"))
    }

    /// One EventBridge event, invoked directly (rule target, console, `cargo lambda invoke`).
    pub async fn handle_event(
        &self,
        event: &Value,
        deadline: Option<SystemTime>,
    ) -> Result<InvocationReport, HandlerError> {
        let trigger = match decide(event, &self.config)? {
            Decision::Ignore { reason } => {
                info!(%reason, "event ignored");
                return Ok(self.ignored(reason));
            }
            Decision::Act(trigger) => trigger,
        };
        let mut report = InvocationReport {
            outcome: "pruned",
            reason: None,
            trigger: Some(trigger.clone()),
            dry_run: self.config.dry_run,
            repositories: vec![],
            tags: vec![],
            sweep: None,
        };
        match &trigger {
            Trigger::CachePush {
                repository, digest, ..
            } => {
                let protect = HashSet::from([digest.clone()]);
                match self.prune(repository, &protect).await {
                    Ok(pruned) => {
                        failures_to_error(&pruned)?;
                        report.repositories.push(pruned);
                    }
                    Err(PruneError::Ecr(EcrError::RepositoryNotFound { repository })) => {
                        warn!(%repository, "repository no longer exists; nothing to prune");
                        report.outcome = "repository_not_found";
                        report.reason = Some(format!("repository {repository} does not exist"));
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            Trigger::BranchDeleted { .. } => {
                report.outcome = "tags_processed";
                report.tags = self.remove_branch_tags(&trigger).await?;
            }
            Trigger::Sweep => {
                // Boxed: the sweep's state machine is large and would deepen every caller's.
                let swept = Box::pin(self.sweep(deadline)).await?;
                report.outcome = "swept";
                report.repositories = swept.repositories;
                report.tags = swept.tags;
                report.sweep = Some(SweepSummary {
                    in_scope: swept.in_scope,
                    not_reached: swept.not_reached,
                    failures: swept.failures,
                });
                if let Some(failure) = report.sweep.as_ref().and_then(|s| s.failures.first()) {
                    warn!(report = %serde_json::to_string(&report).unwrap_or_default(), "sweep incomplete");
                    return Err(HandlerError::SweepFailures {
                        count: report.sweep.as_ref().map_or(0, |s| s.failures.len()),
                        repository: failure.repository.clone(),
                        error: failure.error.clone(),
                    });
                }
            }
        }
        Ok(report)
    }

    async fn sweep(&self, deadline: Option<SystemTime>) -> Result<SweepReport, HandlerError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let time_left = move || match deadline {
            None => true,
            Some(deadline) => deadline
                .duration_since(SystemTime::now())
                .is_ok_and(|left| left > SWEEP_SAFETY_MARGIN),
        };
        let github = self.github().await.map_err(HandlerError::Github)?;
        let report = sweep(&self.ecr, &self.config, github, now, &time_left)
            .await
            .map_err(|e| HandlerError::Prune(PruneError::Ecr(e)))?;
        let mut per_repository: Vec<RepositoryMetrics> = Vec::new();
        for repo in &report.repositories {
            log_summary(repo);
            per_repository.push(RepositoryMetrics::from_prune(repo));
        }
        for tag in &report.tags {
            if let Some(m) = per_repository
                .iter_mut()
                .find(|m| m.repository == tag.repository)
            {
                m.add_tag(tag);
            }
        }
        for failure in &report.failures {
            per_repository.push(RepositoryMetrics {
                repository: failure.repository.clone(),
                failures: 1,
                ..Default::default()
            });
        }
        metrics::emit(&self.config.metrics_namespace, &per_repository);
        info!(
            in_scope = report.in_scope,
            swept = report.repositories.len(),
            tags = report.tags.len(),
            not_reached = report.not_reached.len(),
            failures = report.failures.len(),
            "sweep summary"
        );
        Ok(report)
    }

    /// Removes a deleted branch's cache tag from every mapped repository. All repositories are
    /// attempted; any error fails the invocation afterwards so it is retried (removal is
    /// idempotent).
    async fn remove_branch_tags(&self, trigger: &Trigger) -> Result<Vec<TagReport>, HandlerError> {
        let Trigger::BranchDeleted {
            branch,
            tag,
            repositories,
            ..
        } = trigger
        else {
            return Ok(vec![]);
        };
        let mut reports = Vec::new();
        let mut first_error = None;
        for repository in repositories {
            match remove_cache_tag(&self.ecr, repository, tag, None, None, self.config.dry_run)
                .await
            {
                Ok(report) => {
                    let mut m = RepositoryMetrics {
                        repository: repository.clone(),
                        ..Default::default()
                    };
                    m.add_tag(&report);
                    metrics::emit(&self.config.metrics_namespace, &[m]);
                    info!(
                        %repository, %branch, %tag,
                        result = %serde_json::to_string(&report.outcome).unwrap_or_default(),
                        dry_run = self.config.dry_run,
                        "branch cache tag"
                    );
                    reports.push(report);
                }
                Err(err) => {
                    let failed = RepositoryMetrics {
                        repository: repository.clone(),
                        failures: 1,
                        ..Default::default()
                    };
                    metrics::emit(&self.config.metrics_namespace, &[failed]);
                    warn!(%repository, %tag, error = %err, "branch cache tag not removed");
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) => Err(HandlerError::Prune(err)),
            None => Ok(reports),
        }
    }

    fn ignored(&self, reason: String) -> InvocationReport {
        InvocationReport {
            outcome: "ignored",
            reason: Some(reason),
            trigger: None,
            dry_run: self.config.dry_run,
            repositories: vec![],
            tags: vec![],
            sweep: None,
        }
    }

    /// An SQS batch: each repository is pruned once however many of its pushes the batch holds;
    /// a failure marks exactly the records that asked for that repository.
    pub async fn handle_sqs(
        &self,
        event: SqsEvent,
        deadline: Option<SystemTime>,
    ) -> SqsBatchResponse {
        let mut sweep_requested: Vec<String> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        // repository → (message ids, digests pushed)
        let mut work: BTreeMap<String, (Vec<String>, HashSet<String>)> = BTreeMap::new();
        let mut branch_deletions: Vec<(String, Trigger)> = Vec::new();

        for record in event.records {
            let id = record.message_id.clone().unwrap_or_default();
            let parsed = record
                .body
                .as_deref()
                .ok_or_else(|| HandlerError::UnknownInput("SQS record without a body".into()))
                .and_then(|body| {
                    serde_json::from_str::<Value>(body).map_err(|e| {
                        HandlerError::UnknownInput(format!("SQS record body is not JSON: {e}"))
                    })
                })
                .and_then(|event| Ok(decide(&event, &self.config)?));
            match parsed {
                Err(err) => {
                    // Redelivery cannot fix a malformed record; failing it sends it to the DLQ
                    // for a human instead of silently dropping it.
                    warn!(message_id = %id, error = %err, "bad record");
                    failed.push(id);
                }
                Ok(Decision::Ignore { reason }) => {
                    info!(message_id = %id, %reason, "record ignored")
                }
                Ok(Decision::Act(Trigger::CachePush {
                    repository, digest, ..
                })) => {
                    let entry = work.entry(repository).or_default();
                    entry.0.push(id);
                    entry.1.insert(digest);
                }
                Ok(Decision::Act(trigger @ Trigger::BranchDeleted { .. })) => {
                    branch_deletions.push((id, trigger))
                }
                Ok(Decision::Act(Trigger::Sweep)) => sweep_requested.push(id),
            }
        }

        if !sweep_requested.is_empty() {
            let complete =
                matches!(Box::pin(self.sweep(deadline)).await, Ok(r) if r.failures.is_empty());
            if !complete {
                failed.extend(sweep_requested);
            }
        }

        for (id, trigger) in branch_deletions {
            if self.remove_branch_tags(&trigger).await.is_err() {
                failed.push(id);
            }
        }

        for (repository, (ids, digests)) in work {
            let outcome = match self.prune(&repository, &digests).await {
                Ok(report) => failures_to_error(&report),
                Err(PruneError::Ecr(EcrError::RepositoryNotFound { .. })) => {
                    warn!(%repository, "repository no longer exists; nothing to prune");
                    Ok(())
                }
                Err(err) => Err(err.into()),
            };
            if let Err(err) = outcome {
                warn!(%repository, error = %err, records = ids.len(), "repository not pruned; records will be retried");
                failed.extend(ids);
            }
        }

        let mut response = SqsBatchResponse::default();
        for id in failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
        response
    }

    async fn prune(
        &self,
        repository: &str,
        protect: &HashSet<String>,
    ) -> Result<RepositoryReport, PruneError> {
        let report = match prune_repository(&self.ecr, repository, protect, self.settings()).await {
            Ok(report) => report,
            Err(err) => {
                let failed = RepositoryMetrics {
                    repository: repository.to_owned(),
                    failures: 1,
                    ..Default::default()
                };
                metrics::emit(&self.config.metrics_namespace, &[failed]);
                return Err(err);
            }
        };
        log_summary(&report);
        metrics::emit(
            &self.config.metrics_namespace,
            &[RepositoryMetrics::from_prune(&report)],
        );
        Ok(report)
    }
}

fn log_summary(report: &RepositoryReport) {
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

fn failures_to_error(report: &RepositoryReport) -> Result<(), HandlerError> {
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
