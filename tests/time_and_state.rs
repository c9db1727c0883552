//! Decisions that must still hold when the registry or GitHub moved between the event and the
//! action: a branch created again, an image archived after the snapshot, a prune failing half-way,
//! a continuation redelivered, a token rotated. Over the in-memory registry (which changes between
//! calls when told to) and in-memory branch and queue ports; the GitHub token test uses the fake
//! GitHub over real HTTP.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ecr_cache_pruner::app::audit::AuditTrail;
use ecr_cache_pruner::app::branch_cleanup::TagRun;
use ecr_cache_pruner::app::deadline::Deadline;
use ecr_cache_pruner::app::ports::{BranchListError, BranchLister, QueueError, SweepQueue};
use ecr_cache_pruner::app::prune::{prune_repository, PruneSettings, RepositoryRun, Run};
use ecr_cache_pruner::core::plan::ImageStatus;
use ecr_cache_pruner::core::trigger::{Continuation, MAX_CONTINUATIONS};
use ecr_cache_pruner::inbound::pruner::Pruner;
use serde_json::{json, Value};
use support::memory::{Fault, Kind, MemoryRegistry, Op};
use support::moto::{config, rfc3339};

const REPO: &str = "app";

/// A live (or dry) run with room for every deletion.
fn prune_settings(dry_run: bool) -> PruneSettings {
    PruneSettings {
        dry_run,
        max_deletions: 1000,
        estimate_reclaimed: false,
        plan_only: false,
    }
}
/// When the tests' branch deletions happen (2026-11-30T12:00:00Z).
const DELETED_AT: i64 = 1_796_040_000;

/// Branches per GitHub repository; a repository it does not know answers 404, and `failing`
/// answers 500.
#[derive(Default, Clone)]
struct Branches {
    repositories: Arc<Mutex<HashMap<String, Vec<String>>>>,
    failing: bool,
    /// How many times GitHub was asked.
    asked: Arc<std::sync::atomic::AtomicUsize>,
}

impl Branches {
    fn with(full_name: &str, branches: &[&str]) -> Self {
        let b = Branches::default();
        b.repositories.lock().unwrap().insert(
            full_name.to_owned(),
            branches.iter().map(|s| s.to_string()).collect(),
        );
        b
    }
}

impl BranchLister for Branches {
    async fn branches(&self, full_name: &str) -> Result<Vec<String>, BranchListError> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let refused = |status| BranchListError::Refused {
            repository: full_name.to_owned(),
            status,
            message: "test".into(),
        };
        if self.failing {
            return Err(refused(500));
        }
        self.repositories
            .lock()
            .unwrap()
            .get(full_name)
            .cloned()
            .ok_or_else(|| refused(404))
    }
}

/// A sweep queue that records what it was sent.
#[derive(Default, Clone)]
struct Queue {
    fanned_out: Arc<Mutex<Vec<String>>>,
    continued: Arc<Mutex<Vec<(String, Continuation)>>>,
    /// Continuation sends to fail (SendMessage refused), counted down.
    failing_sends: Arc<Mutex<usize>>,
}

impl SweepQueue for Queue {
    async fn enqueue(&self, repositories: &[String]) -> Result<(), QueueError> {
        self.fanned_out
            .lock()
            .unwrap()
            .extend_from_slice(repositories);
        Ok(())
    }
    async fn continue_sweep(
        &self,
        repository: &str,
        continuation: Continuation,
    ) -> Result<(), QueueError> {
        let mut failing = self.failing_sends.lock().unwrap();
        if *failing > 0 {
            *failing -= 1;
            return Err(QueueError("SendMessage failed (test)".into()));
        }
        self.continued
            .lock()
            .unwrap()
            .push((repository.to_owned(), continuation));
        Ok(())
    }
}

fn branch_deleted(branch: &str, at: i64) -> Value {
    json!({"version": "0", "id": "del-1", "detail-type": "delete", "source": "github.com",
           "account": "123456789012", "time": rfc3339(at), "region": "us-east-1",
           "resources": [], "detail": {"ref": branch, "ref_type": "branch",
           "repository": {"full_name": format!("acme/{REPO}")}}})
}

fn registry_at(now: i64) -> MemoryRegistry {
    let registry = MemoryRegistry::default();
    let mut state = registry.state();
    state.create_repository(REPO);
    state.now = now;
    drop(state);
    registry
}

fn tag_of(registry: &MemoryRegistry, tag: &str) -> Option<String> {
    registry
        .state()
        .images(REPO)
        .into_iter()
        .find(|i| i.tags.contains(tag))
        .map(|i| i.digest)
}

#[tokio::test]
async fn a_branch_created_again_keeps_the_cache_it_pushed_after_the_deletion() {
    // feature/x's old cache, then the deletion, then the branch is pushed again and CI pushes a
    // fresh cache under the same tag, all before the queued deletion is handled.
    let registry = registry_at(DELETED_AT + 60);
    let fresh = registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-feature-x"));
    let pruner = Pruner::new(config(&[]), registry);
    let report = pruner
        .handle(branch_deleted("feature/x", DELETED_AT))
        .await
        .unwrap();
    assert_eq!(report["tags"][0]["outcome"], "kept", "{report}");
    assert_eq!(
        report["tags"][0]["reason"], "pushed_after_event",
        "{report}"
    );
    assert_eq!(report["tags"][0]["event_at"], DELETED_AT);
    assert_eq!(tag_of(&pruner.registry, "cache-feature-x"), Some(fresh));

    // The same cache pushed before the deletion is the deleted branch's: it goes.
    let registry = registry_at(DELETED_AT - 3600);
    registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-feature-x"));
    let pruner = Pruner::new(config(&[]), registry);
    let report = pruner
        .handle(branch_deleted("feature/x", DELETED_AT))
        .await
        .unwrap();
    assert_eq!(report["tags"][0]["outcome"], "removed", "{report}");
    assert_eq!(tag_of(&pruner.registry, "cache-feature-x"), None);
}

#[tokio::test]
async fn a_branch_that_exists_again_owns_its_tag_even_before_it_pushed() {
    // The branch was deleted and created again; its CI has not pushed yet, so the tag still
    // names the old cache, which the new branch will build from.
    let registry = registry_at(DELETED_AT - 3600);
    let old = registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-feature-x"));
    let github = Branches::with("acme/app", &["main", "feature/x"]);
    let pruner = Pruner::new(config(&[("GITHUB_TOKEN_SECRET_ARN", "arn:test")]), registry)
        .with_github(github);
    let report = pruner
        .handle(branch_deleted("feature/x", DELETED_AT))
        .await
        .unwrap();
    assert_eq!(report["tags"][0]["reason"], "branch_exists", "{report}");
    assert_eq!(report["tags"][0]["branch"], "feature/x");
    assert_eq!(tag_of(&pruner.registry, "cache-feature-x"), Some(old));
}

#[tokio::test]
async fn a_github_repository_that_does_not_exist_keeps_the_tag_and_succeeds() {
    let registry = registry_at(DELETED_AT - 3600);
    let old = registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-feature-x"));
    // GitHub knows no acme/app: a 404 is lasting, so no retry, and nothing is judged gone.
    let pruner = Pruner::new(config(&[]), registry).with_github(Branches::default());
    let report = pruner
        .handle(branch_deleted("feature/x", DELETED_AT))
        .await
        .unwrap();
    assert_eq!(report["tags"][0]["reason"], "branches_unknown", "{report}");
    assert_eq!(tag_of(&pruner.registry, "cache-feature-x"), Some(old));

    // A transient GitHub failure is retried (the invocation fails), and nothing is removed: the
    // same repository, the tag there to remove.
    let failing = Branches {
        failing: true,
        ..Branches::default()
    };
    let registry = registry_at(DELETED_AT - 3600);
    let old = registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-feature-x"));
    let pruner = Pruner::new(config(&[]), registry).with_github(failing);
    assert!(pruner
        .handle(branch_deleted("feature/x", DELETED_AT))
        .await
        .is_err());
    assert_eq!(tag_of(&pruner.registry, "cache-feature-x"), Some(old));
    assert!(pruner.registry.state().removed_tags.is_empty());
}

/// Branch-tag removal asks the deadline too: a deletion handled after the stop removes nothing
/// and fails, so the record is retried.
#[tokio::test]
async fn a_branch_deletion_after_the_stop_removes_nothing_and_is_retried() {
    let registry = registry_at(DELETED_AT - 3600);
    let old = registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-feature-x"));
    let pruner = Pruner::new(config(&[]), registry);
    let passed = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    // Invoked directly (EventBridge to Lambda): the invocation fails, Lambda retries it.
    let result = pruner
        .handle_with_deadline(branch_deleted("feature/x", DELETED_AT), Some(passed))
        .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(
        tag_of(&pruner.registry, "cache-feature-x"),
        Some(old.clone())
    );
    assert!(pruner.registry.calls().is_empty(), "nothing started");
    // Through the queue: handed back untouched.
    let response = pruner
        .handle_with_deadline(
            sqs(&branch_deleted("feature/x", DELETED_AT), 1),
            Some(passed),
        )
        .await
        .unwrap();
    assert_eq!(handed_back(&response), vec!["m-1"], "{response}");
    assert_eq!(tag_of(&pruner.registry, "cache-feature-x"), Some(old));
}

/// A tag removal whose answer was lost, then look-ups that fail for good: whether the tag (and
/// its image) is gone cannot be read, and the removal gets a `tag_remove_unconfirmed` line rather
/// than none; the event fails and is retried.
#[tokio::test(start_paused = true)]
async fn a_lost_tag_removal_that_cannot_be_settled_leaves_an_unconfirmed_line() {
    let registry = registry_at(DELETED_AT - 3600);
    registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-feature-x"));
    let mut removals = 0;
    registry.set_faults(move |op| match op {
        Op::RemoveTag => {
            removals += 1;
            Some(Fault::LostAnswer)
        }
        Op::DescribeTag if removals > 0 => Some(Fault::ServerError),
        _ => None,
    });
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let tap = lines.clone();
    let pruner = Pruner::new(config(&[]), registry).with_audit_tap(move |r| {
        tap.lock()
            .unwrap()
            .push(format!("{}: {}", r.action.as_str(), r.reason));
    });
    let result = pruner.handle(branch_deleted("feature/x", DELETED_AT)).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(
        pruner.registry.state().removed_tags.len(),
        1,
        "the lost call took effect"
    );
    // The line says why the tag was up for removal, like a tag_removed line.
    assert_eq!(
        *lines.lock().unwrap(),
        vec!["tag_remove_unconfirmed: branch deleted"]
    );
}

#[tokio::test]
async fn an_image_archived_after_the_snapshot_is_not_deleted() {
    let registry = registry_at(1_000);
    let stale = registry.state().push(REPO, Kind::Cache, None);
    registry.state().push(REPO, Kind::Cache, Some("cache-main"));
    // Archived between the listing and the re-check just before the delete.
    let target = stale.clone();
    registry.set_hook(move |op, state| {
        if op == Op::CurrentTags {
            state.set_status(REPO, &target, ImageStatus::Archived);
        }
    });
    let settings = prune_settings(false);
    let report = prune_repository(&registry, REPO, &HashSet::new(), settings, Run::UNBOUNDED)
        .await
        .unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(report.kept[0].digest, stale);
    assert_eq!(
        serde_json::to_value(&report.kept[0]).unwrap()["reason"],
        "not_active"
    );
    assert!(registry.state().deleted.is_empty());
}

#[tokio::test]
async fn a_tag_whose_image_was_archived_before_the_last_look_up_stays() {
    let registry = registry_at(DELETED_AT - 3600);
    // Not typed by DescribeImages: the removal reads the manifest, then looks the tag up again.
    let digest = registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-feature-x"));
    registry
        .state()
        .repositories
        .get_mut(REPO)
        .unwrap()
        .get_mut(&digest)
        .unwrap()
        .with_artifact_type = false;
    // Archived after the first look-up and the manifest read, before the last look-up.
    let (target, mut lookups) = (digest.clone(), 0);
    registry.set_hook(move |op, state| {
        if op == Op::DescribeTag {
            lookups += 1;
            if lookups == 2 {
                state.set_status(REPO, &target, ImageStatus::Archived);
            }
        }
    });
    let pruner = Pruner::new(config(&[]), registry);
    let report = pruner
        .handle(branch_deleted("feature/x", DELETED_AT))
        .await
        .unwrap();
    assert_eq!(report["tags"][0]["reason"], "not_active", "{report}");
    assert_eq!(tag_of(&pruner.registry, "cache-feature-x"), Some(digest));
}

/// Records what the audit trail was told, in order.
#[derive(Default)]
struct Recorder {
    manifests: Mutex<Vec<String>>,
    unconfirmed: Mutex<Vec<String>>,
    tags: Mutex<Vec<String>>,
}

impl AuditTrail for Recorder {
    fn manifests(&self, batch: &RepositoryRun) {
        let mut m = self.manifests.lock().unwrap();
        m.extend(batch.deleted.iter().map(|d| d.digest.clone()));
        m.extend(batch.would_delete.iter().map(|d| d.digest.clone()));
        self.unconfirmed
            .lock()
            .unwrap()
            .extend(batch.delete_unconfirmed.iter().map(|d| d.digest.clone()));
    }
    fn tags(&self, tags: &[TagRun]) {
        self.tags
            .lock()
            .unwrap()
            .extend(tags.iter().map(|t| t.tag.clone()));
    }
}

#[tokio::test(start_paused = true)]
async fn every_deletion_has_its_audit_record_when_a_later_batch_fails() {
    let registry = registry_at(1_000);
    for _ in 0..150 {
        registry.state().push(REPO, Kind::Cache, None);
    }
    // The first delete batch goes through; every later delete call fails for good.
    let mut deletes = 0;
    registry.set_faults(move |op| {
        if op != Op::DeleteDigests {
            return None;
        }
        deletes += 1;
        (deletes > 1).then_some(Fault::ServerError)
    });
    let audit = Recorder::default();
    let run = Run {
        deadline: Deadline::NEVER,
        audit: &audit,
    };
    let settings = prune_settings(false);
    let result = prune_repository(&registry, REPO, &HashSet::new(), settings, run).await;
    assert!(result.is_err(), "the second batch failed");
    let deleted: Vec<String> = registry
        .state()
        .deleted
        .iter()
        .map(|(_, d)| d.clone())
        .collect();
    assert_eq!(deleted.len(), 100);
    assert_eq!(*audit.manifests.lock().unwrap(), deleted);
}

fn deleted_digests(registry: &MemoryRegistry) -> Vec<String> {
    let mut deleted: Vec<String> = registry
        .state()
        .deleted
        .iter()
        .map(|(_, d)| d.clone())
        .collect();
    deleted.sort();
    deleted
}

fn sorted(items: &Mutex<Vec<String>>) -> Vec<String> {
    let mut items = items.lock().unwrap().clone();
    items.sort();
    items
}

/// A delete whose answer was lost, then no time for the retry: before giving up, one more look-up
/// confirms what that call deleted, and each of those has its `manifest_deleted` line.
#[tokio::test(start_paused = true)]
async fn a_lost_answer_without_time_to_retry_is_still_audited() {
    let registry = registry_at(1_000);
    for _ in 0..5 {
        registry.state().push(REPO, Kind::Cache, None);
    }
    let time = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let clock = time.clone();
    registry.set_hook(move |op, _| {
        if op == Op::DeleteDigests {
            clock.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    });
    registry.set_faults(|op| (op == Op::DeleteDigests).then_some(Fault::LostAnswer));
    let audit = Recorder::default();
    let time_left = || time.load(std::sync::atomic::Ordering::SeqCst);
    let run = Run {
        deadline: Deadline::probe(&time_left),
        audit: &audit,
    };
    let result =
        prune_repository(&registry, REPO, &HashSet::new(), prune_settings(false), run).await;
    assert!(
        result.is_err(),
        "the delete's answer was lost and no time was left"
    );
    let deleted = deleted_digests(&registry);
    assert_eq!(deleted.len(), 5, "the lost call took effect");
    assert_eq!(sorted(&audit.manifests), deleted);
}

/// A delete whose answer was lost, then the re-check fails for good: whether the digests are gone
/// cannot be read, and each gets a `manifest_delete_unconfirmed` line rather than none.
#[tokio::test(start_paused = true)]
async fn a_lost_answer_whose_recheck_fails_leaves_unconfirmed_lines() {
    let registry = registry_at(1_000);
    for _ in 0..5 {
        registry.state().push(REPO, Kind::Cache, None);
    }
    let mut deletes = 0;
    registry.set_faults(move |op| match op {
        Op::DeleteDigests => {
            deletes += 1;
            Some(Fault::LostAnswer)
        }
        // Every look-up after the first delete fails (the first is the planning re-check).
        Op::CurrentTags if deletes > 0 => Some(Fault::ServerError),
        _ => None,
    });
    let audit = Recorder::default();
    let run = Run {
        deadline: Deadline::NEVER,
        audit: &audit,
    };
    let result =
        prune_repository(&registry, REPO, &HashSet::new(), prune_settings(false), run).await;
    assert!(result.is_err());
    let deleted = deleted_digests(&registry);
    assert_eq!(deleted.len(), 5);
    assert!(audit.manifests.lock().unwrap().is_empty(), "none confirmed");
    assert_eq!(sorted(&audit.unconfirmed), deleted, "each has its line");
}

#[tokio::test]
async fn a_dry_run_counts_no_deleted_bytes() {
    let registry = registry_at(1_000);
    for _ in 0..3 {
        registry.state().push(REPO, Kind::Cache, None);
    }
    let settings = prune_settings(true);
    let report = prune_repository(&registry, REPO, &HashSet::new(), settings, Run::UNBOUNDED)
        .await
        .unwrap();
    assert_eq!(report.would_delete.len(), 3);
    assert_eq!(report.deleted_bytes, 0);
}

fn repository_sweep(continuation: Option<Continuation>) -> Value {
    ecr_cache_pruner::core::trigger::continued_sweep_event(REPO, continuation)
}

fn sqs(body: &Value, receive_count: u32) -> Value {
    json!({"Records": [{"messageId": "m-1", "receiptHandle": "r", "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": receive_count.to_string(),
                       "SentTimestamp": "1796040000000", "SenderId": "x",
                       "ApproximateFirstReceiveTimestamp": "1796040000000"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}]})
}

fn sweeping_pruner(
    vars: &[(&str, &str)],
    stale: usize,
) -> (Pruner<MemoryRegistry, Branches, Queue>, Queue) {
    let registry = registry_at(1_000);
    for _ in 0..stale {
        registry.state().push(REPO, Kind::Cache, None);
    }
    let mut all = vec![
        ("SWEEP_REPOSITORIES", "*"),
        ("MAX_DELETIONS_PER_INVOCATION", "10"),
    ];
    all.extend_from_slice(vars);
    let queue = Queue::default();
    let pruner = Pruner::new(config(&all), registry)
        .with_github(Branches::default())
        .with_sweep_queue(queue.clone());
    (pruner, queue)
}

#[tokio::test]
async fn a_dry_run_sweep_reports_the_first_n_and_a_total_and_never_continues() {
    let (pruner, queue) = sweeping_pruner(&[("DRY_RUN", "true")], 25);
    let report = pruner.handle(repository_sweep(None)).await.unwrap();
    assert_eq!(
        report["repositories"][0]["would_delete"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    assert_eq!(report["repositories"][0]["remaining"], 15);
    assert!(queue.continued.lock().unwrap().is_empty(), "{report}");
}

/// A dry run never continues on any path: also when time runs out before its listing.
#[tokio::test]
async fn a_dry_run_sweep_out_of_time_does_not_continue() {
    let (pruner, queue) = sweeping_pruner(&[("DRY_RUN", "true")], 25);
    let passed = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let report = pruner
        .handle_with_deadline(repository_sweep(None), Some(passed))
        .await
        .unwrap();
    assert!(
        report["reason"]
            .as_str()
            .unwrap_or("")
            .contains("time ran out"),
        "{report}"
    );
    assert!(queue.continued.lock().unwrap().is_empty(), "{report}");
    // The same out of time in a live run continues (the guard is the dry run, not the path).
    let (pruner, queue) = sweeping_pruner(&[], 25);
    pruner
        .handle_with_deadline(repository_sweep(None), Some(passed))
        .await
        .unwrap();
    assert_eq!(queue.continued.lock().unwrap().len(), 1);
}

/// A sweep asks the deadline before its first call, GitHub's branch listing included.
#[tokio::test]
async fn a_sweep_after_the_stop_does_not_ask_github() {
    let registry = registry_at(1_000);
    registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-gone-branch"));
    let github = Branches::with("acme/app", &["main"]);
    let asked = github.asked.clone();
    let pruner = Pruner::new(
        config(&[("SWEEP_REPOSITORIES", "*"), ("GITHUB_OWNER", "acme")]),
        registry,
    )
    .with_github(github);
    let passed = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let _ = pruner
        .handle_with_deadline(repository_sweep(None), Some(passed))
        .await;
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(pruner.registry.calls().is_empty());
}

#[tokio::test]
async fn a_live_sweep_continues_with_its_progress_until_done() {
    let (pruner, queue) = sweeping_pruner(&[], 25);
    let mut message = repository_sweep(None);
    let mut invocations = 0;
    loop {
        invocations += 1;
        pruner.handle(message).await.unwrap();
        let Some((_, next)) = queue.continued.lock().unwrap().pop() else {
            break;
        };
        message = repository_sweep(Some(next));
    }
    assert_eq!(invocations, 3, "10 + 10 + 5");
    assert_eq!(pruner.registry.state().deleted.len(), 25);
}

#[tokio::test]
async fn a_continuation_without_progress_gives_up() {
    // Nothing is deletable: every candidate gained a tag at the re-check.
    let (pruner, queue) = sweeping_pruner(&[], 25);
    pruner.registry.set_hook(|op, state| {
        if op == Op::CurrentTags {
            let untagged: Vec<String> = state
                .images(REPO)
                .into_iter()
                .filter(|i| i.tags.is_empty())
                .map(|i| i.digest)
                .collect();
            for (n, digest) in untagged.iter().enumerate() {
                state.inject_retag(REPO, digest, &format!("pinned-{n}"));
            }
        }
    });
    let previous = Continuation {
        attempt: 2,
        remaining: Some(15),
    };
    let report = pruner
        .handle(repository_sweep(Some(previous)))
        .await
        .unwrap();
    assert_eq!(report["gave_up"], "no_progress", "{report}");
    assert!(queue.continued.lock().unwrap().is_empty());

    // And at the bound, even with progress.
    let (pruner, queue) = sweeping_pruner(&[], 25);
    let last = Continuation {
        attempt: MAX_CONTINUATIONS,
        remaining: Some(25),
    };
    let report = pruner.handle(repository_sweep(Some(last))).await.unwrap();
    assert_eq!(report["gave_up"], "too_many_continuations", "{report}");
    assert!(queue.continued.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_redelivered_sweep_message_continues_when_its_first_send_failed() {
    let (pruner, queue) = sweeping_pruner(&[], 25);
    *queue.failing_sends.lock().unwrap() = 1;
    let body = repository_sweep(None);
    // The first delivery deletes 10, then cannot queue its continuation: the record goes back.
    let first = pruner.handle(sqs(&body, 1)).await.unwrap();
    assert_eq!(handed_back(&first), vec!["m-1"], "{first}");
    assert!(queue.continued.lock().unwrap().is_empty());
    // SQS delivers it again: it continues, and the chain finishes the repository.
    let mut message = sqs(&body, 2);
    let mut invocations = 0;
    loop {
        invocations += 1;
        assert!(invocations < 10, "the chain ends");
        let answer = pruner.handle(message).await.unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
        let Some((_, next)) = queue.continued.lock().unwrap().pop() else {
            break;
        };
        message = sqs(&repository_sweep(Some(next)), 1);
    }
    assert_eq!(
        pruner.registry.state().deleted.len(),
        25,
        "nothing left behind"
    );
}

/// A redelivery after the first delivery did queue its continuation forks a second chain: both
/// end once the repository is done, and nothing is deleted twice.
#[tokio::test]
async fn a_duplicate_continuation_chain_ends_with_the_work() {
    let (pruner, queue) = sweeping_pruner(&[], 25);
    let body = repository_sweep(None);
    pruner.handle(sqs(&body, 1)).await.unwrap();
    pruner.handle(sqs(&body, 2)).await.unwrap();
    assert_eq!(queue.continued.lock().unwrap().len(), 2, "two chains");
    let mut handled = 0;
    loop {
        let next = queue.continued.lock().unwrap().pop();
        let Some((_, next)) = next else { break };
        handled += 1;
        assert!(
            handled <= 2 * (MAX_CONTINUATIONS as usize + 1),
            "chains are bounded"
        );
        let answer = pruner
            .handle(sqs(&repository_sweep(Some(next)), 1))
            .await
            .unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    let state = pruner.registry.state();
    assert_eq!(state.deleted.len(), 25, "everything, once each");
    assert!(state.violations.is_empty(), "{:?}", state.violations);
}

#[tokio::test]
async fn a_transient_github_failure_in_a_sweep_still_prunes_manifests() {
    let registry = registry_at(1_000);
    for _ in 0..3 {
        registry.state().push(REPO, Kind::Cache, None);
    }
    let old = registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-gone-branch"));
    let failing = Branches {
        failing: true,
        ..Branches::default()
    };
    let pruner = Pruner::new(
        config(&[
            ("SWEEP_REPOSITORIES", "*"),
            ("GITHUB_OWNER", "acme"),
            ("STALE_CACHE_DAYS", "1"),
        ]),
        registry,
    )
    .with_github(failing);
    let report = pruner.handle(repository_sweep(None)).await.unwrap();
    assert_eq!(pruner.registry.state().deleted.len(), 3, "{report}");
    assert!(report["repositories"][0]["tag_expiry_skipped"]
        .as_str()
        .unwrap()
        .contains("500"));
    assert_eq!(tag_of(&pruner.registry, "cache-gone-branch"), Some(old));
}

/// A token that was rotated: the first read gives the old one, a re-read the new one.
struct Rotating {
    reads: Mutex<Vec<&'static str>>,
}

impl ecr_cache_pruner::adapters::github::TokenSource for Rotating {
    async fn token(&self) -> Result<String, String> {
        Ok(self.reads.lock().unwrap().remove(0).to_owned())
    }
    async fn reread(&self) -> Result<String, String> {
        Ok(self.reads.lock().unwrap().remove(0).to_owned())
    }
}

#[tokio::test]
async fn a_rotated_github_token_is_read_again_when_refused() {
    let github = support::fake_github::FakeGithub::start(HashMap::from([(
        "acme/app".to_owned(),
        vec!["main".to_owned()],
    )]))
    .await;
    let source = Rotating {
        reads: Mutex::new(vec!["ghp_rotatedaway", support::fake_github::TOKEN]),
    };
    let lister = ecr_cache_pruner::adapters::github::GithubWithToken::new(&github.url, source);
    assert_eq!(lister.branches("acme/app").await.unwrap(), vec!["main"]);
    assert_eq!(
        github.requests.lock().unwrap().len(),
        2,
        "refused once, then listed"
    );
    // The new client is kept: no more reads of the secret.
    assert_eq!(lister.branches("acme/app").await.unwrap(), vec!["main"]);
}

fn push_event(digest: &str) -> Value {
    push_event_in(REPO, digest)
}

fn push_event_in(repository: &str, digest: &str) -> Value {
    json!({"version": "0", "id": "push-1", "detail-type": "ECR Image Action", "source": "aws.ecr",
           "account": "123456789012", "time": rfc3339(DELETED_AT), "region": "us-east-1",
           "resources": [], "detail": {"result": "SUCCESS", "repository-name": repository,
           "image-digest": digest, "action-type": "PUSH", "image-tag": "cache-main"}})
}

#[tokio::test]
async fn an_archived_index_skips_the_repository_without_retries() {
    let registry = registry_at(1_000);
    let child = registry.state().push(REPO, Kind::Cache, None);
    let index = registry
        .state()
        .push(REPO, Kind::Index(vec![child]), Some("v1"));
    registry
        .state()
        .set_status(REPO, &index, ImageStatus::Archived);
    registry.state().push(REPO, Kind::Cache, None);
    let pushed = registry.state().push(REPO, Kind::Cache, Some("cache-main"));
    let pruner = Pruner::new(config(&[]), registry);

    // Invoked directly: succeeds, says why, deletes nothing.
    let report = pruner.handle(push_event(&pushed)).await.unwrap();
    assert_eq!(report["outcome"], "skipped", "{report}");
    assert!(report["reason"]
        .as_str()
        .unwrap()
        .contains("could not be read"));
    // Through the queue: the record is not failed (it would only reach the DLQ five times later).
    let response = pruner.handle(sqs(&push_event(&pushed), 1)).await.unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert!(pruner.registry.state().deleted.is_empty());
}

/// Lasting by evidence: an ACTIVE index whose read fails once, whatever the failure (a KMS error,
/// an upstream outage, `ImageNotFound` after a concurrent delete, no answer at all), is transient.
/// The record goes back to the queue, nothing is deleted and the repository is not skipped; the
/// redelivery reads the index and prunes.
#[tokio::test]
async fn an_active_index_whose_read_fails_once_is_retried_not_skipped() {
    let failures = [
        Some(("KmsError", "the key could not be used")),
        Some(("UpstreamUnavailable", "try again")),
        Some(("ImageNotFound", "the image does not exist")),
        None,
    ];
    // ACTIVE, and ACTIVATING (being restored: it reads once it is ACTIVE again).
    for status in [ImageStatus::Active, ImageStatus::Activating] {
        for failure in failures {
            let registry = registry_at(1_000);
            let child = registry.state().push(REPO, Kind::Cache, None);
            let index = registry
                .state()
                .push(REPO, Kind::Index(vec![child.clone()]), Some("v1"));
            let stale = registry.state().push(REPO, Kind::Cache, None);
            let pushed = registry.state().push(REPO, Kind::Cache, Some("cache-main"));
            registry.state().set_status(REPO, &index, status);
            let planned = failure.map(|(code, message)| (code.to_owned(), message.to_owned()));
            registry
                .state()
                .read_failures
                .insert(index.clone(), std::collections::VecDeque::from([planned]));
            let pruner = Pruner::new(config(&[]), registry);

            let response = pruner.handle(sqs(&push_event(&pushed), 1)).await.unwrap();
            assert_eq!(
                response,
                json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]}),
                "{status:?} {failure:?}: handed back for a retry"
            );
            assert!(pruner.registry.state().deleted.is_empty(), "{failure:?}");

            // Restored meanwhile, or read fine the second time.
            pruner
                .registry
                .state()
                .set_status(REPO, &index, ImageStatus::Active);
            let response = pruner.handle(sqs(&push_event(&pushed), 2)).await.unwrap();
            assert_eq!(response, json!({"batchItemFailures": []}), "{failure:?}");
            let deleted: Vec<String> = pruner
                .registry
                .state()
                .deleted
                .iter()
                .map(|(_, d)| d.clone())
                .collect();
            assert_eq!(
                deleted,
                vec![stale],
                "{status:?} {failure:?}: the child stays"
            );
        }
    }
}

/// The same read failure on an index the listing says is ARCHIVED is lasting: skipped, not
/// handed back, whatever the failure code.
#[tokio::test]
async fn an_archived_index_is_lasting_whatever_the_failure() {
    for code in ["KmsError", "ImageNotFound", "UpstreamUnavailable"] {
        let registry = registry_at(1_000);
        let child = registry.state().push(REPO, Kind::Cache, None);
        let index = registry
            .state()
            .push(REPO, Kind::Index(vec![child]), Some("v1"));
        registry
            .state()
            .set_status(REPO, &index, ImageStatus::Archived);
        registry.state().read_failures.insert(
            index,
            std::collections::VecDeque::from([Some((code.to_owned(), "x".to_owned()))]),
        );
        registry.state().push(REPO, Kind::Cache, None);
        let pushed = registry.state().push(REPO, Kind::Cache, Some("cache-main"));
        let pruner = Pruner::new(config(&[]), registry);
        let response = pruner.handle(sqs(&push_event(&pushed), 1)).await.unwrap();
        assert_eq!(response, json!({"batchItemFailures": []}), "{code}");
        let report = pruner.handle(push_event(&pushed)).await.unwrap();
        assert_eq!(report["outcome"], "skipped", "{code}: {report}");
        assert!(pruner.registry.state().deleted.is_empty(), "{code}");
    }
}

/// An SQS batch of `(messageId, body)` records, each received once.
fn sqs_batch(records: &[(&str, &Value)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            let mut record = sqs(body, 1)["Records"][0].clone();
            record["messageId"] = json!(id);
            record
        })
        .collect();
    json!({ "Records": records })
}

fn handed_back(response: &Value) -> Vec<String> {
    let mut ids: Vec<String> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Records in one batch share the invocation's stop time: a record that cannot start before it
/// goes back to the queue untouched, never counted as an attempt (no give-up, no continuation).
#[tokio::test]
async fn records_that_cannot_start_before_the_stop_are_handed_back_untouched() {
    let (pruner, queue) = sweeping_pruner(&[], 25);
    let pushed = pruner
        .registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-main"));
    let batch = sqs_batch(&[
        ("sweep", &repository_sweep(None)),
        ("push", &push_event(&pushed)),
    ]);
    let passed = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let response = pruner
        .handle_with_deadline(batch, Some(passed))
        .await
        .unwrap();
    assert_eq!(handed_back(&response), vec!["push", "sweep"], "{response}");
    assert!(pruner.registry.calls().is_empty(), "nothing started");
    assert!(
        queue.continued.lock().unwrap().is_empty(),
        "no attempt counted"
    );
}

/// Cheap records first: a batch's pushes are pruned before its repository sweeps start, so a
/// long sweep cannot leave them to time out.
#[tokio::test]
async fn pushes_go_before_repository_sweeps_in_a_batch() {
    let (pruner, _queue) = sweeping_pruner(&[], 3);
    pruner.registry.state().create_repository("other");
    let pushed = pruner
        .registry
        .state()
        .push("other", Kind::Cache, Some("cache-main"));
    let batch = sqs_batch(&[
        ("sweep", &repository_sweep(None)),
        ("push", &push_event_in("other", &pushed)),
    ]);
    let response = pruner.handle(batch).await.unwrap();
    assert!(handed_back(&response).is_empty(), "{response}");
    let order: Vec<String> = pruner
        .registry
        .calls()
        .iter()
        .map(|c| c.repository.clone())
        .collect();
    let first_sweep_call = order.iter().position(|r| r == REPO).unwrap();
    let last_push_call = order.iter().rposition(|r| r == "other").unwrap();
    assert!(last_push_call < first_sweep_call, "{order:?}");
}

/// Sets whether DescribeImages reports `artifactMediaType` for every image of the repository.
fn set_typed(registry: &MemoryRegistry, typed: bool) {
    for image in registry
        .state()
        .repositories
        .get_mut(REPO)
        .unwrap()
        .values_mut()
    {
        image.with_artifact_type = typed;
    }
}

#[tokio::test]
async fn time_is_asked_before_every_manifest_read_batch() {
    let registry = registry_at(1_000);
    for _ in 0..250 {
        registry.state().push(REPO, Kind::Cache, None);
    }
    set_typed(&registry, false);
    // Time for the listing and the first of three read batches only.
    let asks = std::sync::atomic::AtomicUsize::new(0);
    let time_left = || asks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2;
    let run = Run {
        deadline: Deadline::probe(&time_left),
        audit: &ecr_cache_pruner::app::audit::NoAudit,
    };
    let settings = prune_settings(false);
    let err = prune_repository(&registry, REPO, &HashSet::new(), settings, run)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("time ran out"), "{err}");
    assert_eq!(
        registry.count(Op::ReadManifests),
        1,
        "no read after the deadline"
    );
    assert!(registry.state().deleted.is_empty());
}

#[tokio::test]
async fn manifests_that_describe_images_classifies_are_never_read() {
    // A BatchGetImage is a pull: it would make the images look used (lastRecordedPullTime).
    let registry = registry_at(1_000);
    for _ in 0..5 {
        registry.state().push(REPO, Kind::Cache, None);
    }
    registry.state().push(REPO, Kind::App, Some("v1"));
    let pushed = registry.state().push(REPO, Kind::Cache, Some("cache-main"));
    set_typed(&registry, true);
    let pruner = Pruner::new(config(&[]), registry);
    let report = pruner.handle(push_event(&pushed)).await.unwrap();
    assert_eq!(
        report["repositories"][0]["deleted"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(pruner.registry.count(Op::ReadManifests), 0);
}

#[test]
fn the_continuation_sample_decodes_with_its_progress() {
    let event = support::moto::event("repository-sweep-continuation.json");
    let cfg = config(&[("SWEEP_REPOSITORIES", "*")]);
    let decision = ecr_cache_pruner::core::trigger::decide(&event, &cfg.trigger_rules()).unwrap();
    assert_eq!(
        decision,
        ecr_cache_pruner::core::trigger::Decision::Act(
            ecr_cache_pruner::core::trigger::Trigger::RepositorySweep {
                repository: "my-app".into(),
                continuation: Some(Continuation {
                    attempt: 2,
                    remaining: Some(1200),
                }),
            }
        )
    );
}
