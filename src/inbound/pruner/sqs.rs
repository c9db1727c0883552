//! SQS batches: each repository is pruned once however many of its pushes the batch holds, and a
//! failure marks exactly the records that asked for that repository (`batchItemFailures`).

use std::collections::{BTreeMap, HashSet};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::tracing::{error, info, warn};
use serde_json::Value;

use crate::app::audit::Cause;
use crate::app::deadline::Deadline;
use crate::app::ports::{BranchLister, Registry, SweepQueue};
use crate::core::trigger::{decide, Decision, Trigger};

use super::answer::{failures_to_error, InvocationAnswer, Outcome};
use super::error::HandlerError;
use super::{Pruner, SweepRequest};

/// A record's `messageId`; None when the record has none (a hand-made event: SQS always sets it).
type MessageId = Option<String>;

/// The work one batch asks for, grouped.
#[derive(Default)]
struct Batch {
    /// Records that could not be read or processed.
    failed: Vec<MessageId>,
    sweep_requested: Vec<MessageId>,
    /// repository → (message ids, digests pushed)
    pushes: BTreeMap<String, (Vec<MessageId>, HashSet<String>)>,
    branch_deletions: Vec<(MessageId, Trigger)>,
    /// repository → message ids and how it was asked for (a repository asked for twice is swept
    /// once: the furthest continuation counts, and any redelivery makes the whole a redelivery)
    repository_sweeps: BTreeMap<String, (Vec<MessageId>, SweepRequest)>,
}

/// The SQS message ids of the records a batch grouped, comma-separated (an audit line's trigger id).
fn message_ids(ids: &[MessageId]) -> Option<String> {
    let known: Vec<&str> = ids.iter().flatten().map(String::as_str).collect();
    (!known.is_empty()).then(|| known.join(","))
}

impl<R: Registry, B: BranchLister, Q: SweepQueue> Pruner<R, B, Q> {
    fn group(&self, event: SqsEvent) -> Batch {
        let mut batch = Batch::default();
        for record in event.records {
            let id = record.message_id.clone();
            let redelivered = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n > 1);
            let parsed = record
                .body
                .as_deref()
                .ok_or_else(|| HandlerError::UnknownInput("SQS record without a body".into()))
                .and_then(|body| {
                    serde_json::from_str::<Value>(body).map_err(|e| {
                        HandlerError::UnknownInput(format!("SQS record body is not JSON: {e}"))
                    })
                })
                .and_then(|event| Ok(decide(&event, &self.config.trigger_rules())?));
            match parsed {
                Err(err) => {
                    // Redelivery cannot fix a malformed record; failing it sends it to the DLQ
                    // for a human instead of silently dropping it.
                    warn!(message_id = ?id, error = %err, "bad record");
                    batch.failed.push(id);
                }
                Ok(Decision::Ignore { reason }) => {
                    info!(message_id = ?id, %reason, "record ignored")
                }
                Ok(Decision::Act(Trigger::CachePush {
                    repository, digest, ..
                })) => {
                    let entry = batch.pushes.entry(repository).or_default();
                    entry.0.push(id);
                    entry.1.insert(digest);
                }
                Ok(Decision::Act(
                    trigger @ (Trigger::BranchDeleted { .. } | Trigger::PullRequestClosed { .. }),
                )) => batch.branch_deletions.push((id, trigger)),
                Ok(Decision::Act(Trigger::Sweep)) => batch.sweep_requested.push(id),
                Ok(Decision::Act(Trigger::RepositorySweep {
                    repository,
                    continuation,
                })) => {
                    let (ids, request) = batch.repository_sweeps.entry(repository).or_default();
                    ids.push(id);
                    request.redelivered |= redelivered;
                    if continuation.map(|c| c.attempt) > request.continuation.map(|c| c.attempt) {
                        request.continuation = continuation;
                    }
                }
            }
        }
        batch
    }

    /// An SQS batch of EventBridge-shaped records. No work starts after `deadline` (the
    /// invocation's deadline less its margin: see [`Pruner::handle_with_deadline`]).
    pub async fn handle_sqs(
        &self,
        event: SqsEvent,
        deadline: Deadline<'static>,
    ) -> SqsBatchResponse {
        let Batch {
            mut failed,
            sweep_requested,
            pushes,
            branch_deletions,
            repository_sweeps,
        } = self.group(event);

        // Each unit of work starts only with time left; one that cannot start goes back to the
        // queue untouched (handed back, not attempted: a continuation counts no attempt for it).
        // Cheap work first: pushes and branch deletions take a listing or a tag look-up, a
        // repository sweep can take the rest of the invocation, so sweeps never starve them.
        let stop = deadline;

        for (id, trigger) in branch_deletions {
            if !stop.time_left() {
                failed.push(id);
                continue;
            }
            let cause = Cause::new(trigger.kind(), id.clone());
            if self
                .remove_branch_tags(&trigger, &cause, deadline)
                .await
                .is_err()
            {
                failed.push(id);
            }
        }

        for (repository, (ids, digests)) in pushes {
            if !stop.time_left() {
                info!(%repository, records = ids.len(), "out of time before this push: handed back");
                failed.extend(ids);
                continue;
            }
            let cause = Cause::new(Trigger::CACHE_PUSH, message_ids(&ids));
            let outcome = match self.prune(&repository, &digests, &cause, deadline).await {
                Ok(report) => failures_to_error(&report),
                Err(err) if err.is_repository_gone() => {
                    warn!(%repository, "repository no longer exists; nothing to prune");
                    Ok(())
                }
                // Reported where it happened; retrying cannot help.
                Err(err) if err.is_lasting() => Ok(()),
                Err(err) => Err(err.into()),
            };
            if let Err(err) = outcome {
                warn!(%repository, error = %err, records = ids.len(), "repository not pruned; records will be retried");
                failed.extend(ids);
            }
        }

        if !sweep_requested.is_empty() {
            if stop.time_left() {
                let mut report = InvocationAnswer::new(Outcome::Swept, None, self.config.dry_run);
                let cause = Cause::new(Trigger::SWEEP, message_ids(&sweep_requested));
                if Box::pin(self.scheduled_sweep(&mut report, deadline, &cause))
                    .await
                    .is_err()
                {
                    failed.extend(sweep_requested);
                }
            } else {
                failed.extend(sweep_requested);
            }
        }

        // Only the records whose repository failed are retried.
        for (repository, (ids, request)) in repository_sweeps {
            if !stop.time_left() {
                info!(%repository, "out of time before this repository's sweep: handed back");
                failed.extend(ids);
                continue;
            }
            let mut report = InvocationAnswer::new(Outcome::Swept, None, self.config.dry_run);
            let cause = Cause::new(Trigger::REPOSITORY_SWEEP, message_ids(&ids));
            let swept = Box::pin(self.sweep_repository(
                &mut report,
                &repository,
                request,
                deadline,
                &cause,
            ))
            .await;
            if let Err(err) = swept {
                warn!(%repository, error = %err, "repository sweep failed; its records will be retried");
                failed.extend(ids);
            }
        }

        let mut response = SqsBatchResponse::default();
        for id in failed {
            // An empty itemIdentifier would make Lambda retry the whole batch: a record without a
            // messageId cannot be named, so it is reported here instead.
            let Some(id) = id else {
                error!("a record without messageId failed; it cannot be retried on its own");
                continue;
            };
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
        response
    }
}
