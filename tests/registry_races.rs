//! Races, lost answers and deadlines between two calls, through the `Registry` port and the in-memory
//! registry (moto cannot move a tag in the middle of a run, or lose an answer after acting).

mod support;

use std::collections::HashSet;

use ecr_cache_pruner::app::audit::NoAudit;
use ecr_cache_pruner::app::branch_cleanup::{remove_cache_tag, TagOutcome};
use ecr_cache_pruner::app::deadline::Deadline;
use ecr_cache_pruner::app::prune::{prune_repository, PruneSettings, Run};
use ecr_cache_pruner::core::plan::KeepReason;
use support::memory::{Fault, Kind, MemoryRegistry, Op};

const REPO: &str = "app";

fn settings() -> PruneSettings {
    PruneSettings {
        dry_run: false,
        max_deletions: 1000,
        estimate_reclaimed: false,
        plan_only: false,
    }
}

/// Faults only on the first call of `op`.
fn once(op: Op, fault: Fault) -> impl FnMut(Op) -> Option<Fault> + Send {
    let mut fired = false;
    move |called| (called == op && !std::mem::replace(&mut fired, true)).then_some(fault)
}

#[tokio::test(start_paused = true)]
async fn a_tag_pushed_again_before_the_last_look_up_is_kept_as_tag_moved() {
    let registry = MemoryRegistry::default();
    let judged = registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-feature-x"));
    // The reads the decision needs (the manifest, the repository's indexes) give CI time to push
    // the branch's cache again.
    let fresh = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = fresh.clone();
    registry.set_hook(move |op, state| {
        let reading = op == Op::ListImages || op == Op::ReadManifests;
        let mut pushed = seen.lock().unwrap();
        if reading && pushed.is_none() {
            *pushed = Some(state.inject_push(REPO, Kind::Cache, Some("cache-feature-x")));
        }
    });
    let report = remove_cache_tag(
        &registry,
        REPO,
        "cache-feature-x",
        None,
        None,
        None,
        false,
        &NoAudit,
    )
    .await
    .unwrap();
    let fresh = fresh.lock().unwrap().clone().expect("the hook pushed");
    assert_eq!(report.digest.as_deref(), Some(judged.as_str()));
    assert_eq!(
        report.outcome,
        TagOutcome::Kept(KeepReason::TagMoved { now: fresh.clone() })
    );
    let state = registry.state();
    let still = state.images(REPO);
    assert!(still
        .iter()
        .any(|i| i.digest == fresh && i.tags.contains("cache-feature-x")));
    assert!(state.violations.is_empty() && state.races.is_empty());
    assert_eq!(registry.count(Op::RemoveTag), 0);
}

#[tokio::test(start_paused = true)]
async fn a_tag_removal_whose_answer_was_lost_is_reported_as_removed() {
    let registry = MemoryRegistry::default();
    registry.state().push(REPO, Kind::Cache, Some("cache-gone"));
    registry.set_faults(once(Op::RemoveTag, Fault::LostAnswer));
    let report = remove_cache_tag(
        &registry,
        REPO,
        "cache-gone",
        None,
        None,
        None,
        false,
        &NoAudit,
    )
    .await
    .unwrap();
    assert_eq!(
        report.outcome,
        TagOutcome::Removed {
            image_deleted: true
        }
    );
    assert_eq!(registry.count(Op::RemoveTag), 1, "nothing left to remove");
    assert!(registry.state().images(REPO).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_delete_whose_answer_was_lost_counts_as_deleted_and_is_not_an_error() {
    let registry = MemoryRegistry::default();
    let stale: Vec<String> = (0..3)
        .map(|_| registry.state().push(REPO, Kind::Cache, None))
        .collect();
    registry.state().push(REPO, Kind::Cache, Some("cache-main"));
    registry.set_faults(once(Op::DeleteDigests, Fault::LostAnswer));
    let report = prune_repository(&registry, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap();
    let deleted: HashSet<String> = report.deleted.iter().map(|d| d.digest.clone()).collect();
    assert_eq!(deleted, stale.into_iter().collect());
    assert!(report.already_deleted.is_empty());
    assert_eq!(registry.count(Op::DeleteDigests), 1);
    assert_eq!(
        registry.count(Op::CurrentTags),
        2,
        "re-checked before giving up on it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_throttled_delete_is_re_checked_and_a_digest_re_tagged_meanwhile_survives() {
    let registry = MemoryRegistry::default();
    let stale: Vec<String> = (0..3)
        .map(|_| registry.state().push(REPO, Kind::Cache, None))
        .collect();
    registry.set_faults(once(Op::DeleteDigests, Fault::Throttle));
    let retag = stale[1].clone();
    let mut done = false;
    registry.set_hook(move |op, state| {
        // After the throttled attempt, before the re-check of the retry.
        if op == Op::CurrentTags && state.seq > 3 && !std::mem::replace(&mut done, true) {
            state.inject_retag(REPO, &retag, "cache-main");
        }
    });
    let report = prune_repository(&registry, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap();
    let deleted: HashSet<&str> = report.deleted.iter().map(|d| d.digest.as_str()).collect();
    assert_eq!(
        deleted,
        HashSet::from([stale[0].as_str(), stale[2].as_str()])
    );
    let state = registry.state();
    assert!(state.violations.is_empty(), "{:?}", state.violations);
    assert!(state.images(REPO).iter().any(|i| i.digest == stale[1]));
}

#[tokio::test]
async fn batches_stay_within_ecr_limits_and_pages_are_followed() {
    let registry = MemoryRegistry::new(7);
    for _ in 0..250 {
        registry.state().push(REPO, Kind::Cache, None);
    }
    let report = prune_repository(&registry, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap();
    assert_eq!(report.deleted.len(), 250);
    assert_eq!(registry.count(Op::ListImages), 250usize.div_ceil(7));
    for call in registry.calls() {
        assert!(call.ids.len() <= 100, "{call:?}");
    }
    // Each batch: its re-check, then its delete, in that order.
    let order: Vec<Op> = registry
        .calls()
        .into_iter()
        .map(|c| c.op)
        .filter(|op| matches!(op, Op::CurrentTags | Op::DeleteDigests))
        .collect();
    assert_eq!(
        order,
        [Op::CurrentTags, Op::DeleteDigests].repeat(3),
        "re-check and delete alternate per batch"
    );
}

fn sweep_settings() -> ecr_cache_pruner::app::sweep::SweepSettings {
    support::moto::config(&[("SWEEP_REPOSITORIES", "*")]).sweep_settings()
}

const NO_GITHUB: Option<&ecr_cache_pruner::adapters::github::GithubBranches> = None;

#[tokio::test]
async fn the_sweep_stops_inside_a_repository_when_time_runs_out() {
    let registry = MemoryRegistry::default();
    for _ in 0..250 {
        registry.state().push(REPO, Kind::Cache, None);
    }
    // Time runs out once the first batch is deleted.
    let time_left = || registry.count(Op::DeleteDigests) == 0;
    let mut finished = 0;
    let report = ecr_cache_pruner::app::sweep::sweep(
        &registry,
        &sweep_settings(),
        NO_GITHUB,
        0,
        ecr_cache_pruner::app::prune::Run {
            deadline: Deadline::probe(&time_left),
            audit: &ecr_cache_pruner::app::audit::NoAudit,
        },
        &mut |_| finished += 1,
    )
    .await
    .unwrap();
    let repository = &report.repositories[0];
    assert!(repository.out_of_time);
    assert_eq!(repository.deleted.len(), 100);
    assert_eq!(repository.remaining, 150);
    assert_eq!(report.not_reached, vec![REPO.to_owned()]);
    assert_eq!(finished, 1, "reported as soon as it stopped");
    assert_eq!(registry.state().images(REPO).len(), 150);
}

#[tokio::test]
async fn time_running_out_while_listing_deletes_nothing() {
    let registry = MemoryRegistry::new(10);
    for _ in 0..50 {
        registry.state().push(REPO, Kind::Cache, None);
    }
    let time_left = || registry.count(Op::ListImages) < 3;
    let report = ecr_cache_pruner::app::sweep::sweep(
        &registry,
        &sweep_settings(),
        NO_GITHUB,
        0,
        ecr_cache_pruner::app::prune::Run {
            deadline: Deadline::probe(&time_left),
            audit: &ecr_cache_pruner::app::audit::NoAudit,
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(report.repositories.is_empty());
    assert!(report.failures.is_empty());
    assert_eq!(report.not_reached, vec![REPO.to_owned()]);
    assert_eq!(registry.count(Op::DeleteDigests), 0);
}

#[tokio::test]
async fn a_repository_deleted_during_the_sweep_is_skipped_not_failed() {
    let registry = MemoryRegistry::default();
    registry.state().push("a-gone", Kind::Cache, None);
    registry.state().push("b-kept", Kind::Cache, None);
    registry.set_hook(|op, state| {
        if op == Op::ListImages {
            state.repositories.remove("a-gone");
        }
    });
    let report = ecr_cache_pruner::app::sweep::sweep(
        &registry,
        &sweep_settings(),
        NO_GITHUB,
        0,
        ecr_cache_pruner::app::prune::Run::UNBOUNDED,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.in_scope, 2);
    assert_eq!(report.repositories.len(), 1);
    assert_eq!(report.repositories[0].repository, "b-kept");
}

/// Keeps the tag lines an audit trail is given.
#[derive(Default)]
struct Tags(std::sync::Mutex<Vec<ecr_cache_pruner::app::branch_cleanup::TagRun>>);

impl ecr_cache_pruner::app::audit::AuditTrail for Tags {
    fn manifests(&self, _: &ecr_cache_pruner::app::outcome::RepositoryRun) {}
    fn tags(&self, tags: &[ecr_cache_pruner::app::branch_cleanup::TagRun]) {
        self.0.lock().unwrap().extend(tags.iter().cloned());
    }
}

const GROUP_TAG: &str = "cache-gh-readonly-queue-main-pr-1-abc";

/// A base cache, then the merge group's newer one.
fn promotion_setup() -> (MemoryRegistry, String, String) {
    let registry = MemoryRegistry::default();
    let base = registry.state().push(REPO, Kind::Cache, Some("cache-main"));
    let group = registry.state().push(REPO, Kind::Cache, Some(GROUP_TAG));
    (registry, base, group)
}

async fn promote(
    registry: &MemoryRegistry,
    audit: &Tags,
) -> Result<
    Option<ecr_cache_pruner::app::branch_cleanup::TagRun>,
    ecr_cache_pruner::app::prune::PruneError,
> {
    ecr_cache_pruner::app::branch_cleanup::promote_cache(
        registry,
        REPO,
        GROUP_TAG,
        "cache-main",
        false,
        audit,
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn a_promotion_is_audited_as_it_is_made() {
    let (registry, base, group) = promotion_setup();
    let audit = Tags::default();
    let run = promote(&registry, &audit).await.unwrap().unwrap();
    assert_eq!(
        run.outcome,
        TagOutcome::Promoted {
            from: Some(base.clone())
        }
    );
    let lines = audit.0.lock().unwrap().clone();
    assert_eq!(lines, vec![run]);
    let state = registry.state();
    assert!(state
        .images(REPO)
        .iter()
        .any(|i| i.digest == group && i.tags.contains("cache-main")));
    assert!(state.violations.is_empty(), "{:?}", state.violations);
}

/// CI pushes the base branch's cache while the promotion reads the group's manifest (just
/// before its last look-up): the newer base cache stays, nothing is moved.
#[tokio::test(start_paused = true)]
async fn a_base_cache_pushed_before_the_last_look_up_is_not_replaced() {
    let (registry, _, group) = promotion_setup();
    let fresh = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = fresh.clone();
    registry.set_hook(move |op, state| {
        let mut pushed = seen.lock().unwrap();
        if op == Op::ReadManifests && pushed.is_none() {
            *pushed = Some(state.inject_push(REPO, Kind::Cache, Some("cache-main")));
        }
    });
    let audit = Tags::default();
    let run = promote(&registry, &audit).await.unwrap().unwrap();
    let fresh = fresh.lock().unwrap().clone().expect("the hook pushed");
    assert_eq!(
        run.outcome,
        TagOutcome::Kept(KeepReason::TagMoved { now: fresh.clone() })
    );
    assert_eq!(run.digest.as_deref(), Some(group.as_str()));
    assert_eq!(registry.count(Op::PutTag), 0);
    assert!(audit.0.lock().unwrap().is_empty());
    assert!(registry
        .state()
        .images(REPO)
        .iter()
        .any(|i| i.digest == fresh && i.tags.contains("cache-main")));
}

/// PutImage took effect and its answer was lost: one look-up settles it as promoted, with its
/// audit line. Refused outright (nothing applied): an error, no line, the base unchanged.
#[tokio::test(start_paused = true)]
async fn a_promotion_whose_answer_was_lost_is_settled_by_one_look_up() {
    let (registry, base, group) = promotion_setup();
    registry.set_faults(once(Op::PutTag, Fault::LostAnswer));
    let audit = Tags::default();
    let run = promote(&registry, &audit).await.unwrap().unwrap();
    assert_eq!(run.outcome, TagOutcome::Promoted { from: Some(base) });
    assert_eq!(audit.0.lock().unwrap().len(), 1);
    assert!(registry
        .state()
        .images(REPO)
        .iter()
        .any(|i| i.digest == group && i.tags.contains("cache-main")));

    let (registry, base, _) = promotion_setup();
    registry.set_faults(once(Op::PutTag, Fault::ServerError));
    let audit = Tags::default();
    assert!(promote(&registry, &audit).await.is_err());
    assert!(audit.0.lock().unwrap().is_empty());
    assert!(registry
        .state()
        .images(REPO)
        .iter()
        .any(|i| i.digest == base && i.tags.contains("cache-main")));
}

/// A signed cache tagged `cache-feature-s` and its signature; returns both digests.
fn signed_cache() -> (MemoryRegistry, String, String) {
    let registry = MemoryRegistry::default();
    let cache = registry
        .state()
        .push(REPO, Kind::Cache, Some("cache-feature-s"));
    let signature = registry
        .state()
        .push(REPO, Kind::Signature(cache.clone()), None);
    (registry, cache, signature)
}

/// Removes `cache-feature-s`, which takes its image (its last tag).
async fn remove_signed_cache_tag(
    registry: &MemoryRegistry,
) -> ecr_cache_pruner::app::branch_cleanup::TagRun {
    let report = remove_cache_tag(
        registry,
        REPO,
        "cache-feature-s",
        None,
        None,
        None,
        false,
        &NoAudit,
    )
    .await
    .unwrap();
    assert_eq!(
        report.outcome,
        TagOutcome::Removed {
            image_deleted: true
        }
    );
    report
}

/// A signed cache removed by its last tag takes its signature in three more calls: the signature
/// re-checked, the subject looked up alone (ImageNotFound: gone, no listing needed), the delete.
#[tokio::test(start_paused = true)]
async fn a_signed_cache_removed_by_its_tag_takes_its_signature_in_three_more_calls() {
    let (registry, cache, signature) = signed_cache();
    let report = remove_signed_cache_tag(&registry).await;
    let referrers = report.referrers.expect("the signature's fate");
    assert_eq!(referrers.deleted, vec![signature.clone()]);
    assert!(referrers.error.is_none());
    let state = registry.state();
    assert!(state.images(REPO).is_empty());
    assert!(state.violations.is_empty(), "{:?}", state.violations);
    drop(state);
    // One listing (the index check), none more; the subject and the signature looked up once each.
    assert_eq!(registry.count(Op::ListImages), 1);
    assert_eq!(registry.count(Op::CurrentTags), 2);
    assert_eq!(registry.count(Op::DeleteDigests), 1);
    // The subject is looked up last, right before the delete: the signature first.
    let calls = registry.calls();
    let last: Vec<(Op, Vec<String>)> = calls[calls.len() - 3..]
        .iter()
        .map(|c| (c.op, c.ids.clone()))
        .collect();
    assert_eq!(
        last,
        vec![
            (Op::CurrentTags, vec![signature.clone()]),
            (Op::CurrentTags, vec![cache.clone()]),
            (Op::DeleteDigests, vec![signature.clone()]),
        ]
    );
}

/// The signature's delete fails for good: the tag removal stands, the failure is reported (the
/// signature is an orphan now), nothing else is touched.
#[tokio::test(start_paused = true)]
async fn a_signature_that_cannot_be_deleted_is_reported_not_hidden() {
    let (registry, _, signature) = signed_cache();
    registry.set_faults(|op| (op == Op::DeleteDigests).then_some(Fault::ServerError));
    let report = remove_signed_cache_tag(&registry).await;
    let referrers = report.referrers.clone().expect("the signature's fate");
    assert!(referrers.deleted.is_empty());
    assert!(
        referrers
            .error
            .as_deref()
            .is_some_and(|e| e.contains(&signature)),
        "{referrers:?}"
    );
    let mut metrics = ecr_cache_pruner::adapters::metrics::RepositoryMetrics::default();
    metrics.add_tag(&report);
    assert_eq!(metrics.failures, 1);
    let images = registry.state().images(REPO);
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].digest, signature);
}

/// `ecr-cache-pruner sweep` deletes only what it showed: a stale cache tag shown with its
/// signature is removed with it; a signature pushed for that image after the plan was shown
/// keeps the tag (and so the image and both signatures) instead of being deleted unseen.
#[tokio::test(start_paused = true)]
async fn a_confirmed_sweep_never_deletes_a_signature_it_did_not_show() {
    use ecr_cache_pruner::app::sweep::{sweep_one, ConfirmedPlan};
    const NO_GITHUB: Option<&ecr_cache_pruner::adapters::github::GithubBranches> = None;
    const LATER: i64 = 100 * 86_400;
    async fn sweep(
        registry: &MemoryRegistry,
        confirmed: Option<ConfirmedPlan>,
    ) -> (
        ecr_cache_pruner::app::prune::RepositoryRun,
        Vec<ecr_cache_pruner::app::branch_cleanup::TagRun>,
    ) {
        let mut settings =
            support::moto::config(&[("SWEEP_REPOSITORIES", "*"), ("STALE_CACHE_DAYS", "30")])
                .sweep_settings();
        settings.dry_run = confirmed.is_none();
        settings.confirmed = confirmed;
        sweep_one(registry, &settings, NO_GITHUB, REPO, LATER, Run::UNBOUNDED)
            .await
            .expect("sweep")
    }
    for signed_again in [false, true] {
        let registry = MemoryRegistry::default();
        let cache = registry.state().push(REPO, Kind::Cache, Some("cache-old"));
        let shown = registry
            .state()
            .push(REPO, Kind::Signature(cache.clone()), None);
        let (report, tags) = sweep(&registry, None).await;
        let referrers = tags[0].referrers.clone().expect("shown with its signature");
        assert_eq!(referrers.would_delete, vec![shown.clone()]);
        let plan = ConfirmedPlan::from_dry_run(&report, &tags);
        assert!(plan.digests.contains(&shown));
        if signed_again {
            registry
                .state()
                .push(REPO, Kind::Signature(cache.clone()), None);
        }
        let (_, tags) = sweep(&registry, Some(plan)).await;
        let left = registry.state().images(REPO).len();
        if signed_again {
            assert_eq!(
                tags[0].outcome,
                TagOutcome::Kept(KeepReason::NotConfirmed),
                "{tags:?}"
            );
            assert_eq!(left, 3, "the image and both signatures stay");
        } else {
            assert_eq!(
                tags[0].referrers.as_ref().map(|r| r.deleted.clone()),
                Some(vec![shown])
            );
            assert_eq!(left, 0);
        }
        assert!(registry.state().violations.is_empty());
    }
}
