//! Sweeps: inline over every repository in scope, fanned out over the queue (one message per
//! repository), or one repository from such a message, continued through the queue when it does
//! not finish in one invocation.

use std::time::SystemTime;

use lambda_runtime::tracing::{error, info, warn};

use crate::adapters::metrics::RepositoryMetrics;
use crate::app::audit::Cause;
use crate::app::branch_cleanup::TagOutcome;
use crate::app::deadline::Deadline;
use crate::app::ports::{BranchLister, Registry, SweepQueue};
use crate::app::prune::Run;
use crate::app::sweep::{repositories_in_scope, sweep, sweep_one, SweepError, SweepReport, Swept};
use crate::core::trigger::{next_step, Continuation, NextStep};

use super::answer::{emit_failure, log_summary, InvocationAnswer, Outcome, SweepSummary};
use super::error::HandlerError;
use super::{Pruner, SWEEP_SAFETY_MARGIN};

pub(super) use crate::inbound::now_secs;

/// When an invocation with this `deadline` stops starting work: [`SWEEP_SAFETY_MARGIN`] before
/// it, or a quarter of the invocation's time when that is shorter (a function given 30 s, as local
/// emulators give by default, still does its work instead of stopping before it starts). Decided
/// once, when the invocation starts, so the margin does not shrink as the invocation goes on.
pub fn stop_by(deadline: SystemTime, now: SystemTime) -> SystemTime {
    let total = deadline.duration_since(now).unwrap_or_default();
    deadline - margin_for(total)
}

/// The margin for an invocation with `total` time: 30 s, or a quarter of a shorter one.
fn margin_for(total: std::time::Duration) -> std::time::Duration {
    SWEEP_SAFETY_MARGIN.min(total / 4)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_margin_is_thirty_seconds_or_a_quarter_of_a_short_invocation() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_040_000);
        let secs = Duration::from_secs;
        // 120 s (the template's timeout): stops 30 s before the deadline.
        assert_eq!(stop_by(now + secs(120), now), now + secs(90));
        assert_eq!(stop_by(now + secs(900), now), now + secs(870));
        // 30 s in all (cargo lambda's default): 7.5 s, so the work starts.
        assert_eq!(
            stop_by(now + secs(30), now),
            now + Duration::from_millis(22_500)
        );
        // Already past: nothing starts.
        assert_eq!(stop_by(now - secs(1), now), now - secs(1));
    }
}

impl<R: Registry, B: BranchLister, Q: SweepQueue> Pruner<R, B, Q> {
    /// Each repository's summary and metrics go out when it is done: a sweep cut short by a
    /// timeout still leaves a record of what it did (its audit lines went out as it went).
    fn report_swept(&self, swept: Swept<'_>) {
        let emf = self.config.emf();
        match swept {
            Swept::Done { report, tags } => {
                log_summary(report);
                let mut metrics = RepositoryMetrics::from_prune(report);
                if let Some(error) = &report.tag_expiry_skipped {
                    warn!(repository = %report.repository, %error, lasting = report.tag_expiry_skipped_lasting, "branch tags not judged: GitHub could not say which branches exist; manifests pruned");
                }
                for tag in tags {
                    metrics.add_tag(tag);
                }
                emf.emit(&[metrics]);
            }
            Swept::Skipped(skipped) => {
                warn!(repository = %skipped.repository, error = %skipped.error, "repository skipped: a lasting condition, not retried");
                super::answer::emit_skipped(&emf, &skipped.repository);
            }
            Swept::Failed(failure) => {
                warn!(repository = %failure.repository, error = %failure.error, "repository not swept");
                emit_failure(&emf, &failure.repository);
            }
        }
    }

    /// A scheduled event: fan out over the queue when there is one, else sweep inline.
    pub(super) async fn scheduled_sweep(
        &self,
        report: &mut InvocationAnswer,
        deadline: Deadline<'static>,
        cause: &Cause,
    ) -> Result<(), HandlerError> {
        if let Some(queue) = &self.sweep_queue {
            let settings = self.config.sweep_settings();
            let repositories = repositories_in_scope(&self.registry, &settings, now_secs()).await?;
            queue.enqueue(&repositories).await?;
            info!(repositories = repositories.len(), "sweep fanned out");
            report.outcome = Outcome::SweepEnqueued;
            report.enqueued = repositories;
            return Ok(());
        }
        let swept = self.sweep_inline(deadline, cause).await?;
        report.outcome = Outcome::Swept;
        report.repositories = swept.repositories;
        report.tags = swept.tags;
        let summary = SweepSummary {
            in_scope: swept.in_scope,
            not_reached: swept.not_reached,
            failures: swept.failures,
            skipped: swept.skipped,
        };
        if let Some(failure) = summary.failures.first() {
            let error = HandlerError::SweepFailures {
                count: summary.failures.len(),
                repository: failure.repository.clone(),
                error: failure.error.clone(),
            };
            report.sweep = Some(summary);
            warn!(report = %serde_json::to_string(&report).unwrap_or_default(), "sweep incomplete");
            return Err(error);
        }
        report.sweep = Some(summary);
        Ok(())
    }

    pub(super) async fn sweep_inline(
        &self,
        deadline: Deadline<'static>,
        cause: &Cause,
    ) -> Result<SweepReport, HandlerError> {
        let github = self.github();
        let settings = self.config.sweep_settings();
        let run = Run {
            deadline,
            audit: &self.audit(cause),
        };
        let report = sweep(
            &self.registry,
            &settings,
            github,
            now_secs(),
            run,
            &mut |swept| self.report_swept(swept),
        )
        .await?;
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

    /// One repository's sweep (a fan-out message or a continuation). When a live sweep does not
    /// finish (deadline near, or the deletion cap reached), a continuation message carrying its
    /// progress goes on the queue instead of waiting for the next schedule, unless it made no
    /// progress or reached the bound ([`next_step`]). A dry run never continues: it reports the
    /// first `MAX_DELETIONS_PER_INVOCATION` and how many more (`remaining`), and stops. A
    /// redelivered message continues too: its first delivery most likely failed before its
    /// continuation was queued (an error, or the send itself failing), and refusing would leave
    /// the rest of the repository until the next schedule. When the first delivery did queue one,
    /// two chains run; each ends when the repository is done, makes no progress, or reaches
    /// [`MAX_CONTINUATIONS`](crate::core::trigger::MAX_CONTINUATIONS), and a chain forks only
    /// on a redelivery (at most `maxReceiveCount` per message), so their number stays bounded.
    pub(super) async fn sweep_repository(
        &self,
        report: &mut InvocationAnswer,
        repository: &str,
        request: SweepRequest,
        deadline: Deadline<'static>,
        cause: &Cause,
    ) -> Result<(), HandlerError> {
        report.outcome = Outcome::Swept;
        let github = self.github();
        let settings = self.config.sweep_settings();
        let run = Run {
            deadline,
            audit: &self.audit(cause),
        };
        let swept = sweep_one(
            &self.registry,
            &settings,
            github,
            repository,
            now_secs(),
            run,
        )
        .await;
        let (pruned, tags) = match swept {
            Ok(done) => done,
            Err(SweepError::Prune(err)) if err.is_repository_gone() => {
                report.outcome = Outcome::RepositoryNotFound;
                report.reason = Some(format!("repository {repository} does not exist"));
                return Ok(());
            }
            Err(SweepError::Prune(err)) if err.is_lasting() => {
                let skipped = crate::app::sweep::RepositoryFailure {
                    repository: repository.to_owned(),
                    error: err.to_string(),
                };
                self.report_swept(Swept::Skipped(&skipped));
                report.outcome = Outcome::Skipped;
                report.reason = Some(skipped.error);
                return Ok(());
            }
            Err(SweepError::Prune(crate::app::prune::PruneError::OutOfTime { .. }))
                if settings.dry_run =>
            {
                // A dry run never continues, on this path too: it says it ran out of time.
                report.reason = Some(format!(
                    "time ran out reading {repository}; a dry run does not continue"
                ));
                return Ok(());
            }
            Err(SweepError::Prune(crate::app::prune::PruneError::OutOfTime { .. })) => {
                let next = next_step(request.continuation, None, false);
                self.continue_later(report, repository, next, request)
                    .await?;
                return Ok(());
            }
            Err(error) => {
                let failure = crate::app::sweep::RepositoryFailure {
                    repository: repository.to_owned(),
                    error: error.to_string(),
                };
                self.report_swept(Swept::Failed(&failure));
                return Err(HandlerError::SweepFailures {
                    count: 1,
                    repository: failure.repository,
                    error: failure.error,
                });
            }
        };
        self.report_swept(Swept::Done {
            report: &pruned,
            tags: &tags,
        });
        let unfinished = pruned.out_of_time || pruned.remaining > 0;
        let progressed = !pruned.deleted.is_empty()
            || tags
                .iter()
                .any(|t| matches!(t.outcome, TagOutcome::Removed { .. }));
        let remaining = (!pruned.out_of_time).then_some(pruned.remaining);
        let dry_run = pruned.dry_run;
        report.repositories.push(pruned);
        report.tags = tags;
        if unfinished && !dry_run {
            let next = next_step(request.continuation, remaining, progressed);
            self.continue_later(report, repository, next, request)
                .await?;
        }
        Ok(())
    }

    async fn continue_later(
        &self,
        report: &mut InvocationAnswer,
        repository: &str,
        next: NextStep,
        request: SweepRequest,
    ) -> Result<(), HandlerError> {
        let Some(queue) = &self.sweep_queue else {
            return Ok(());
        };
        match next {
            NextStep::GiveUp(reason) => {
                error!(%repository, ?reason, continuation = ?request.continuation, "sweep gave up; the next schedule starts it again");
                let metrics = RepositoryMetrics {
                    repository: repository.to_owned(),
                    sweeps_given_up: 1,
                    ..Default::default()
                };
                self.config.emf().emit(&[metrics]);
                report.gave_up = Some(reason);
            }
            NextStep::Continue(continuation) => {
                queue.continue_sweep(repository, continuation).await?;
                info!(%repository, attempt = continuation.attempt, remaining = ?continuation.remaining, redelivered = request.redelivered, "sweep continues in a new message");
                report.enqueued = vec![repository.to_owned()];
            }
        }
        Ok(())
    }
}

/// How a repository sweep was asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepRequest {
    /// The progress of the sweep this message continues, if it continues one.
    pub continuation: Option<Continuation>,
    /// The message was received before (SQS `ApproximateReceiveCount` > 1).
    pub redelivered: bool,
}
