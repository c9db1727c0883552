//! The `pruner` function's handler: EventBridge events directly, or SQS batches of them.
//! [`error`] says why an invocation failed, [`report`] what it did, [`sqs`] handles batches.

pub mod answer;
pub mod audit;
pub mod error;
mod sqs;
mod sweeping;

pub use sweeping::SweepRequest;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use lambda_runtime::tracing::{info, warn};
use serde_json::Value;

use crate::adapters::ecr::EcrRegistry;
use crate::adapters::github::GithubWithToken;
use crate::adapters::metrics::RepositoryMetrics;
use crate::adapters::secrets::CachedSecret;
use crate::adapters::sqs::SqsSweepQueue;
use crate::app::audit::{AuditTrail, Because, Cause};
use crate::app::branch_cleanup::{
    promote_cache, remove_cache_tag, LiveBranches, TagOutcome, TagRun,
};
use crate::app::deadline::Deadline;
use crate::app::ports::{BranchLister, Registry, SweepQueue};
use crate::app::prune::{prune_repository, PruneError, PruneSettings, RepositoryRun, Run};
use crate::core::plan::KeepReason;
use crate::core::stale::TagExpiry;
use crate::core::trigger::{decide, Decision, Trigger};
use crate::inbound::config::Config;

use answer::{emit_failure, failures_to_error, log_summary};
pub use answer::{InvocationAnswer, Outcome, SweepSummary};
pub use error::HandlerError;

/// The invocation's deadline from the runtime's `Lambda-Runtime-Deadline-Ms`: Unix time in
/// milliseconds as Lambda sends it. A value before 2001 cannot be one: some local emulators send
/// the time allowed instead (`cargo lambda watch` sends 600000), so it is read as from `now`.
pub fn runtime_deadline(deadline_ms: u64, now: SystemTime) -> SystemTime {
    const EPOCH_MS_2001: u64 = 1_000_000_000_000;
    if deadline_ms < EPOCH_MS_2001 {
        now + Duration::from_millis(deadline_ms)
    } else {
        SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms)
    }
}

/// Stop starting new repositories when less than this is left before the Lambda deadline.
pub const SWEEP_SAFETY_MARGIN: Duration = Duration::from_secs(30);

/// The GitHub adapter production uses: the token from Secrets Manager, re-read when refused.
pub type GithubFromSecret = GithubWithToken<CachedSecret>;

/// The ref whose cache tags an event ends.
enum Ended<'a> {
    Branch(&'a String),
    PullRequest(u64),
}

impl std::fmt::Display for Ended<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Branch(branch) => write!(f, "branch {branch}"),
            Ended::PullRequest(number) => write!(f, "pull request #{number}"),
        }
    }
}

/// Built once per container: configuration and the ports it runs over: the registry, the branch
/// lister (with `GITHUB_TOKEN_SECRET_ARN`) and the sweep queue (with `SWEEP_QUEUE_URL`).
pub struct Pruner<R = EcrRegistry, B = GithubFromSecret, Q = SqsSweepQueue> {
    pub config: Config,
    pub registry: R,
    github: Option<B>,
    sweep_queue: Option<Q>,
    audit_tap: Option<std::sync::Arc<audit::AuditTap>>,
}

impl<R: Registry> Pruner<R> {
    pub fn new(config: Config, registry: R) -> Self {
        Pruner {
            config,
            registry,
            github: None,
            sweep_queue: None,
            audit_tap: None,
        }
    }
}

impl<R: Registry, Q: SweepQueue> Pruner<R, GithubFromSecret, Q> {
    /// With the GitHub token in Secrets Manager (`GITHUB_TOKEN_SECRET_ARN`), when it is set.
    pub fn with_secrets(mut self, secrets: aws_sdk_secretsmanager::Client) -> Self {
        if let Some(arn) = &self.config.github_token_secret_arn {
            self.github = Some(GithubWithToken::new(
                self.config.github_api_url.clone(),
                CachedSecret::new(secrets, arn.clone()),
            ));
        }
        self
    }
}

impl<R: Registry, B: BranchLister, Q: SweepQueue> Pruner<R, B, Q> {
    /// With the queue a scheduled sweep fans out to (`SWEEP_QUEUE_URL`), one message per
    /// repository; repositories that do not finish in one invocation continue through it too.
    pub fn with_sweep_queue<Q2: SweepQueue>(self, queue: Q2) -> Pruner<R, B, Q2> {
        Pruner {
            config: self.config,
            registry: self.registry,
            github: self.github,
            sweep_queue: Some(queue),
            audit_tap: self.audit_tap,
        }
    }

    /// With a branch lister: which branches exist (GitHub in production).
    pub fn with_github<B2: BranchLister>(self, github: B2) -> Pruner<R, B2, Q> {
        Pruner {
            config: self.config,
            registry: self.registry,
            github: Some(github),
            sweep_queue: self.sweep_queue,
            audit_tap: self.audit_tap,
        }
    }

    /// With a tap that hears every audit record as it is written (beside the log line).
    pub fn with_audit_tap(
        mut self,
        tap: impl Fn(&crate::app::audit::AuditRecord) + Send + Sync + 'static,
    ) -> Self {
        self.audit_tap = Some(std::sync::Arc::new(tap));
        self
    }

    /// The audit trail of one trigger: log lines, and the tap when there is one.
    fn audit<'a>(&'a self, cause: &'a Cause) -> audit::LogAudit<'a> {
        audit::LogAudit {
            cause,
            tap: self.audit_tap.as_deref(),
        }
    }

    /// Without a branch lister: no branch is known to exist (tag expiry by age only).
    pub fn without_github(mut self) -> Self {
        self.github = None;
        self
    }

    /// The registry port (tests read the in-memory registry's calls through it).
    pub fn registry(&self) -> &R {
        &self.registry
    }

    fn github(&self) -> Option<&B> {
        self.github.as_ref()
    }

    fn settings(&self) -> PruneSettings {
        PruneSettings {
            dry_run: self.config.dry_run,
            max_deletions: self.config.max_deletions,
            estimate_reclaimed: self.config.estimate_reclaimed_on_push,
            plan_only: false,
        }
    }

    /// Entry point for any payload the function accepts, without a deadline.
    pub async fn handle(&self, payload: Value) -> Result<Value, HandlerError> {
        self.handle_with_deadline(payload, None).await
    }

    /// Entry point with the invocation's deadline: no work starts after [`sweeping::stop_by`]
    /// (its safety margin, decided here once for the whole invocation).
    pub async fn handle_with_deadline(
        &self,
        payload: Value,
        deadline: Option<SystemTime>,
    ) -> Result<Value, HandlerError> {
        // From here on the deadline is when work stops, not when Lambda ends the invocation.
        let deadline =
            Deadline::from_stop(deadline.map(|d| sweeping::stop_by(d, SystemTime::now())));
        if payload.get("Records").is_some() {
            let event = serde_json::from_value(payload)
                .map_err(|e| HandlerError::UnknownInput(format!("bad SQS event: {e}")))?;
            // Boxed: the handler's state machine is deep enough to overflow layout computation.
            let response = Box::pin(self.handle_sqs(event, deadline)).await;
            return Ok(serde_json::to_value(response).expect("SQS response serializes"));
        }
        if payload.get("detail-type").is_none() {
            return Err(HandlerError::UnknownInput(
                "no `Records` and no `detail-type` field".into(),
            ));
        }
        let report = Box::pin(self.handle_event(&payload, deadline)).await?;
        Ok(serde_json::to_value(report).expect("report serializes"))
    }

    /// One EventBridge event, invoked directly (rule target, console, `cargo lambda invoke`).
    /// No work starts after `deadline` (the invocation's deadline less its margin: see
    /// [`Self::handle_with_deadline`]).
    pub async fn handle_event(
        &self,
        event: &Value,
        deadline: Deadline<'static>,
    ) -> Result<InvocationAnswer, HandlerError> {
        let dry_run = self.config.dry_run;
        let trigger = match decide(event, &self.config.trigger_rules())? {
            Decision::Ignore { reason } => {
                info!(%reason, "event ignored");
                let mut report = InvocationAnswer::new(Outcome::Ignored, None, dry_run);
                report.reason = Some(reason);
                return Ok(report);
            }
            Decision::Act(trigger) => trigger,
        };
        let mut report = InvocationAnswer::new(Outcome::Pruned, Some(trigger.clone()), dry_run);
        let event_id = event["id"].as_str().filter(|id| !id.is_empty());
        let cause = Cause::new(trigger.kind(), event_id.map(str::to_owned));
        match &trigger {
            Trigger::CachePush {
                repository, digest, ..
            } => {
                let protect = HashSet::from([digest.clone()]);
                match self.prune(repository, &protect, &cause, deadline).await {
                    Ok(pruned) => {
                        failures_to_error(&pruned)?;
                        report.repositories.push(pruned);
                    }
                    Err(err) if err.is_repository_gone() => {
                        warn!(%repository, "repository no longer exists; nothing to prune");
                        report.outcome = Outcome::RepositoryNotFound;
                        report.reason = Some(format!("repository {repository} does not exist"));
                    }
                    Err(err) if err.is_lasting() => {
                        report.outcome = Outcome::Skipped;
                        report.reason = Some(err.to_string());
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            Trigger::BranchDeleted { .. } | Trigger::PullRequestClosed { .. } => {
                report.outcome = Outcome::TagsProcessed;
                report.tags = self.remove_branch_tags(&trigger, &cause, deadline).await?;
            }
            Trigger::Sweep => {
                // Boxed: the sweep's state machine is large and would deepen every caller's.
                Box::pin(self.scheduled_sweep(&mut report, deadline, &cause)).await?;
            }
            Trigger::RepositorySweep {
                repository,
                continuation,
            } => {
                let request = SweepRequest {
                    continuation: *continuation,
                    redelivered: false,
                };
                Box::pin(self.sweep_repository(&mut report, repository, request, deadline, &cause))
                    .await?;
            }
        }
        Ok(report)
    }

    /// Removes the cache tags of a ref that ended (a deleted branch, a destroyed merge group, a
    /// closed pull request) from every mapped repository. All repositories are attempted; any
    /// error fails the invocation afterwards so it is retried (removal is idempotent).
    /// Within the deadline: time is asked before the GitHub look-up and before each repository;
    /// out of time, the event fails and is retried (what was removed already is audited).
    async fn remove_branch_tags(
        &self,
        trigger: &Trigger,
        cause: &Cause,
        deadline: Deadline<'static>,
    ) -> Result<Vec<TagRun>, HandlerError> {
        let no_promotions = Vec::new();
        let (github_repository, ended, tags, repositories, ended_at, expiry, promotions) =
            match trigger {
                Trigger::BranchDeleted {
                    github_repository,
                    branch,
                    tags,
                    repositories,
                    ended_by,
                    promotions,
                    deleted_at,
                } => (
                    github_repository,
                    Ended::Branch(branch),
                    tags,
                    repositories,
                    deleted_at,
                    *ended_by,
                    promotions,
                ),
                Trigger::PullRequestClosed {
                    github_repository,
                    number,
                    tags,
                    repositories,
                    closed_at,
                } => (
                    github_repository,
                    Ended::PullRequest(*number),
                    tags,
                    repositories,
                    closed_at,
                    TagExpiry::PullRequestClosed,
                    &no_promotions,
                ),
                _ => return Ok(vec![]),
            };
        // Event time wins: only a cache pushed before the event was the ended ref's.
        let pushed_before = Some(ended_at.unwrap_or_else(sweeping::now_secs));
        let stop = deadline;
        let out_of_time = |repository: &str| {
            HandlerError::Prune(PruneError::OutOfTime {
                repository: repository.to_owned(),
            })
        };
        let mut reports = Vec::new();
        let mut first_error = None;
        // A merged group's caches become its base branch's first (opt-in; see the trigger).
        for promotion in promotions {
            for repository in repositories.iter().filter(|r| self.config.in_scope(r)) {
                if !stop.time_left() {
                    return Err(out_of_time(repository));
                }
                let promoted = promote_cache(
                    &self.registry,
                    repository,
                    &promotion.from,
                    &promotion.to,
                    self.config.dry_run,
                    &self.audit(cause),
                )
                .await;
                match promoted {
                    Ok(None) => {}
                    Ok(Some(report)) => {
                        info!(%repository, from = %promotion.from, to = %promotion.to,
                              result = %serde_json::to_string(&report.outcome).unwrap_or_default(),
                              "merged group's cache promotion");
                        reports.push(report);
                    }
                    // Lasting, or an answer a retry would repeat (an IMMUTABLE tag refuses PutImage
                    // with ImageTagAlreadyExistsException): reported, and the group's tag still goes.
                    Err(err)
                        if err.is_lasting()
                            || matches!(
                                err,
                                PruneError::Registry(crate::app::ports::RegistryError::Api { .. })
                            ) =>
                    {
                        warn!(%repository, to = %promotion.to, error = %err, "cache not promoted: a lasting condition");
                        reports.push(TagRun {
                            repository: repository.clone(),
                            tag: promotion.to.clone(),
                            digest: None,
                            other_tags: vec![],
                            outcome: TagOutcome::Skipped {
                                error: err.to_string(),
                            },
                            removal: None,
                            referrers: None,
                        });
                    }
                    // Retried before any tag goes: removing the group's tag first would lose
                    // what there is to promote.
                    Err(err) => {
                        warn!(%repository, to = %promotion.to, error = %err, "cache not promoted; retried");
                        return Err(HandlerError::Prune(err));
                    }
                }
            }
        }
        let mut live_branches = self
            .github()
            .map(|github| LiveBranches::new(github, github_repository));
        for tag in tags {
            // With a GitHub token: a branch that exists now and maps to the tag owns it (the
            // deleted branch itself included when it was created again); a pull request open
            // again owns its cache.
            if let (Some(github), Some(live_branches)) = (self.github(), live_branches.as_mut()) {
                if !stop.time_left() {
                    return Err(out_of_time(github_repository));
                }
                let owner = match &ended {
                    Ended::Branch(_) => live_branches
                        .owner_of(tag, &self.config.cache_tags, stop)
                        .await
                        .map(|owner| owner.map(|branch| KeepReason::BranchExists { branch })),
                    Ended::PullRequest(number) => github
                        .pull_request_open(github_repository, *number)
                        .await
                        .map(|open| {
                            open.then_some(KeepReason::PullRequestOpen { number: *number })
                        }),
                };
                let reason = match owner {
                    Ok(None) => None,
                    Ok(Some(reason)) => {
                        info!(%ended, %tag, ?reason, "cache tag kept: its ref is alive on GitHub");
                        Some(reason)
                    }
                    Err(err) if err.is_lasting() => {
                        warn!(%ended, %tag, error = %err, "cache tag kept: GitHub cannot say whether its ref is alive");
                        for repository in repositories {
                            answer::emit_skipped(&self.config.emf(), repository);
                        }
                        Some(KeepReason::BranchesUnknown {
                            error: err.to_string(),
                        })
                    }
                    Err(err) => return Err(err.into()),
                };
                if let Some(reason) = reason {
                    reports.extend(repositories.iter().map(|repository| {
                        TagRun::kept(repository, tag, reason.clone()).because(expiry)
                    }));
                    continue;
                }
            }
            self.remove_tag_everywhere(
                tag,
                &ended,
                repositories,
                pushed_before,
                expiry,
                cause,
                stop,
                &mut reports,
                &mut first_error,
            )
            .await?;
        }
        match first_error {
            Some(err) => Err(HandlerError::Prune(err)),
            None => Ok(reports),
        }
    }

    /// One ended ref's tag, from each mapped repository in scope.
    #[allow(clippy::too_many_arguments)]
    async fn remove_tag_everywhere(
        &self,
        tag: &String,
        ended: &Ended<'_>,
        repositories: &[String],
        pushed_before: Option<i64>,
        expiry: TagExpiry,
        cause: &Cause,
        stop: Deadline<'static>,
        reports: &mut Vec<TagRun>,
        first_error: &mut Option<PruneError>,
    ) -> Result<(), HandlerError> {
        let out_of_time = |repository: &str| {
            HandlerError::Prune(PruneError::OutOfTime {
                repository: repository.to_owned(),
            })
        };
        for repository in repositories {
            // Its IAM policy would refuse it anyway (AccessDenied, then the dead-letter queue).
            if !self.config.in_scope(repository) {
                info!(%repository, %tag, "repository not in scope; branch cache tag left alone");
                reports.push(TagRun {
                    repository: repository.clone(),
                    tag: tag.clone(),
                    digest: None,
                    other_tags: vec![],
                    outcome: TagOutcome::NotInScope,
                    removal: Some(expiry),
                    referrers: None,
                });
                continue;
            }
            if !stop.time_left() {
                return Err(out_of_time(repository));
            }
            let dry_run = self.config.dry_run;
            let removed = remove_cache_tag(
                &self.registry,
                repository,
                tag,
                None,
                pushed_before,
                None,
                dry_run,
                &Because {
                    trail: &self.audit(cause),
                    why: expiry,
                },
            )
            .await;
            match removed {
                Ok(report) => {
                    let report = report.because(expiry);
                    self.audit(cause).tags(std::slice::from_ref(&report));
                    if let Some(error) = report.referrers.as_ref().and_then(|r| r.error.as_ref()) {
                        warn!(%repository, %tag, %error, "cache tag removed, a referrer of its image left behind");
                    }
                    let mut m = RepositoryMetrics {
                        repository: repository.clone(),
                        ..Default::default()
                    };
                    m.add_tag(&report);
                    self.config.emf().emit(&[m]);
                    info!(
                        %repository, %ended, %tag,
                        result = %serde_json::to_string(&report.outcome).unwrap_or_default(),
                        dry_run,
                        "branch cache tag"
                    );
                    reports.push(report);
                }
                Err(err) if err.is_lasting() => {
                    answer::emit_skipped(&self.config.emf(), repository);
                    warn!(%repository, %tag, error = %err, "branch cache tag left alone: a lasting condition, not retried");
                    reports.push(TagRun {
                        repository: repository.clone(),
                        tag: tag.clone(),
                        digest: None,
                        other_tags: vec![],
                        outcome: TagOutcome::Skipped {
                            error: err.to_string(),
                        },
                        removal: Some(expiry),
                        referrers: None,
                    });
                }
                Err(err) => {
                    emit_failure(&self.config.emf(), repository);
                    warn!(%repository, %tag, error = %err, "branch cache tag not removed");
                    first_error.get_or_insert(err);
                }
            }
        }
        Ok(())
    }

    /// The push path: within the deadline (out of time, nothing half-read is acted on and the
    /// event is retried), its audit lines written as each delete batch returns.
    async fn prune(
        &self,
        repository: &str,
        protect: &HashSet<String>,
        cause: &Cause,
        deadline: Deadline<'static>,
    ) -> Result<RepositoryRun, PruneError> {
        let run = Run {
            deadline,
            audit: &self.audit(cause),
        };
        let result =
            prune_repository(&self.registry, repository, protect, self.settings(), run).await;
        match &result {
            Ok(report) => {
                log_summary(report);
                self.config
                    .emf()
                    .emit(&[RepositoryMetrics::from_prune(report)]);
            }
            Err(err) if err.is_repository_gone() => {}
            Err(err) if err.is_lasting() => {
                warn!(%repository, error = %err, "repository skipped: a lasting condition, not retried");
                answer::emit_skipped(&self.config.emf(), repository);
            }
            Err(_) => emit_failure(&self.config.emf(), repository),
        }
        result
    }
}

#[cfg(test)]
mod deadline_tests {
    use std::time::{Duration, SystemTime};

    use super::runtime_deadline;

    #[test]
    fn the_runtime_deadline_is_unix_milliseconds_or_an_emulator_s_allowance() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_040_000);
        // Lambda: Unix time in milliseconds.
        assert_eq!(
            runtime_deadline(1_796_040_120_000, now),
            now + Duration::from_secs(120)
        );
        // cargo lambda watch: the time allowed.
        assert_eq!(
            runtime_deadline(600_000, now),
            now + Duration::from_secs(600)
        );
    }
}
