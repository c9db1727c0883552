//! `CACHE_BUDGET` through the sweep, over the in-memory registry (which shares blobs between
//! caches by layer name, reports ECR-like sizes, and moves tags or records pulls between calls):
//! least-recently-used order, protected and kept caches, the grace period, shared layers, the cap,
//! a dry run, a pull between the plan and the removal, and the reads it costs.

mod support;

use ecr_cache_pruner::app::audit::NoAudit;
use ecr_cache_pruner::app::branch_cleanup::{TagOutcome, TagRun};
use ecr_cache_pruner::app::deadline::Deadline;
use ecr_cache_pruner::app::prune::{RepositoryRun, Run};
use ecr_cache_pruner::app::sweep::sweep_one;
use ecr_cache_pruner::core::plan::KeepReason;
use ecr_cache_pruner::core::stale::TagExpiry;
use support::memory::{MemoryRegistry, Op};
use support::moto::config;

const REPO: &str = "app";
const MIB: u64 = 1 << 20;
/// Each cache manifest's own config blob.
const CFG: u64 = 1000;
/// Two hours after the pushes: older than the default grace period of 60 minutes.
const LATER: i64 = 2 * 3600;
const NO_GITHUB: Option<&ecr_cache_pruner::adapters::github::GithubBranches> = None;

async fn sweep(
    registry: &MemoryRegistry,
    vars: &[(&str, &str)],
    now: i64,
) -> (RepositoryRun, Vec<TagRun>) {
    let mut all = vec![("SWEEP_REPOSITORIES", "*")];
    all.extend_from_slice(vars);
    let settings = config(&all).sweep_settings();
    sweep_one(
        registry,
        &settings,
        NO_GITHUB,
        REPO,
        now,
        Run {
            deadline: Deadline::NEVER,
            audit: &NoAudit,
        },
    )
    .await
    .expect("sweep")
}

fn tags_now(registry: &MemoryRegistry) -> Vec<String> {
    let mut tags: Vec<String> = registry
        .state()
        .images(REPO)
        .into_iter()
        .flat_map(|i| i.tags)
        .collect();
    tags.sort();
    tags
}

fn evicted(tags: &[TagRun]) -> Vec<&str> {
    tags.iter()
        .filter(|t| matches!(t.removal, Some(TagExpiry::OverBudget { .. })))
        .filter(|t| {
            matches!(
                t.outcome,
                TagOutcome::Removed { .. } | TagOutcome::WouldRemove { .. }
            )
        })
        .map(|t| t.tag.as_str())
        .collect()
}

/// Four 40 MiB branch caches over a shared 100 MiB base, and main's; pushed in this order.
fn four_branches(registry: &MemoryRegistry) -> i64 {
    let mut state = registry.state();
    state.now = 1_000_000;
    state.push_cache_layers(
        REPO,
        Some("cache-main"),
        &[("base", 100 * MIB), ("main", 40 * MIB)],
    );
    for name in ["a", "b", "c", "d"] {
        let tag = format!("cache-{name}");
        state.push_cache_layers(REPO, Some(&tag), &[("base", 100 * MIB), (name, 40 * MIB)]);
    }
    state.now
}

#[tokio::test]
async fn the_least_recently_used_caches_go_until_the_footprint_fits() {
    let registry = MemoryRegistry::default();
    let pushed = four_branches(&registry);
    // b was pulled by a build an hour ago: used later than c and d, though pushed earlier.
    {
        let mut state = registry.state();
        state.now = pushed + 3600;
        let b = state
            .images(REPO)
            .into_iter()
            .find(|i| i.tags.contains("cache-b"))
            .unwrap();
        state.pull(REPO, &b.digest);
    }
    // Footprint: 100 + 5 × 40 = 300 MiB (and five configs); budget 220 MiB and a little: two
    // caches go (a, then c).
    let (run, tags) = sweep(&registry, &[("CACHE_BUDGET", "220.01MiB")], pushed + LATER).await;
    assert_eq!(evicted(&tags), ["cache-a", "cache-c"]);
    assert_eq!(tags_now(&registry), ["cache-b", "cache-d", "cache-main"]);
    let budget = run.budget.expect("a budget run");
    assert_eq!(budget.footprint_bytes, 300 * MIB + 5 * CFG);
    assert_eq!(budget.footprint_after, 220 * MIB + 3 * CFG);
    assert_eq!(budget.storage_freed, 80 * MIB + 2 * CFG);
    assert!(!budget.unreachable);
    assert_eq!(budget.bytes_over(), 0);
    // The reason says why, in words.
    let reason = tags[0].removal.unwrap().to_string();
    assert_eq!(
        reason,
        "over budget: 300.0 MiB > 220.0 MiB, least recently used"
    );
    let budget_line = serde_json::to_value(tags[0].removal.unwrap()).unwrap();
    assert_eq!(budget_line["reason"], "over_budget");
    assert!(registry.state().violations.is_empty());
}

#[tokio::test]
async fn protected_and_kept_caches_stay_and_an_unreachable_budget_is_said() {
    let registry = MemoryRegistry::default();
    let pushed = four_branches(&registry);
    let (run, tags) = sweep(
        &registry,
        &[("CACHE_BUDGET", "100MiB"), ("KEEP_TAGS", "cache-d")],
        pushed + LATER,
    )
    .await;
    // main (protected) and d (kept) alone are 180 MiB: a, b, c go, the budget still is not met.
    assert_eq!(evicted(&tags), ["cache-a", "cache-b", "cache-c"]);
    assert_eq!(tags_now(&registry), ["cache-d", "cache-main"]);
    let budget = run.budget.unwrap();
    assert!(budget.unreachable);
    assert_eq!(budget.footprint_after, 180 * MIB + 2 * CFG);
    assert_eq!(budget.bytes_over(), 80 * MIB + 2 * CFG);
    assert_eq!(budget.held, 2);
}

#[tokio::test]
async fn a_cache_younger_than_the_grace_period_is_never_evicted() {
    let registry = MemoryRegistry::default();
    let pushed = four_branches(&registry);
    // Ten minutes after the pushes: all four are in their first hour.
    let (run, tags) = sweep(&registry, &[("CACHE_BUDGET", "100MiB")], pushed + 600).await;
    assert!(evicted(&tags).is_empty());
    assert!(run.budget.unwrap().unreachable);
    // With a 5-minute grace period they may go.
    let (_, tags) = sweep(
        &registry,
        &[
            ("CACHE_BUDGET", "220.01MiB"),
            ("CACHE_BUDGET_MIN_AGE_MINUTES", "5"),
        ],
        pushed + 600,
    )
    .await;
    assert_eq!(evicted(&tags).len(), 2);
}

#[tokio::test]
async fn shared_layers_are_counted_once_and_the_size_sum_is_not_the_footprint() {
    let registry = MemoryRegistry::default();
    let pushed = four_branches(&registry);
    // ECR's sizes sum to 5 × 140 = 700 MiB; the footprint is 300 MiB (and the configs): within
    // a budget of 300 MiB and a little.
    let (run, tags) = sweep(&registry, &[("CACHE_BUDGET", "300.01MiB")], pushed + LATER).await;
    assert!(evicted(&tags).is_empty());
    let budget = run.budget.unwrap();
    assert_eq!(budget.footprint_bytes, 300 * MIB + 5 * CFG);
    assert_eq!(budget.footprint_after, budget.footprint_bytes);
    assert!(!budget.unreachable);
}

#[tokio::test]
async fn the_cap_bounds_evictions_with_the_other_removals() {
    let registry = MemoryRegistry::default();
    let pushed = four_branches(&registry);
    let (run, tags) = sweep(
        &registry,
        &[
            ("CACHE_BUDGET", "100MiB"),
            ("MAX_DELETIONS_PER_INVOCATION", "2"),
        ],
        pushed + LATER,
    )
    .await;
    assert_eq!(evicted(&tags), ["cache-a", "cache-b"]);
    let budget = run.budget.unwrap();
    assert!(budget.capped && budget.unreachable);
}

#[tokio::test]
async fn a_dry_run_reports_the_evictions_and_removes_nothing() {
    let registry = MemoryRegistry::default();
    let pushed = four_branches(&registry);
    let (run, tags) = sweep(
        &registry,
        &[("CACHE_BUDGET", "220.01MiB"), ("DRY_RUN", "true")],
        pushed + LATER,
    )
    .await;
    assert_eq!(evicted(&tags), ["cache-a", "cache-b"]);
    assert!(tags
        .iter()
        .all(|t| matches!(t.outcome, TagOutcome::WouldRemove { .. })));
    assert_eq!(run.budget.unwrap().evicted, ["cache-a", "cache-b"]);
    assert_eq!(registry.count(Op::RemoveTag), 0);
    assert_eq!(tags_now(&registry).len(), 5);
}

#[tokio::test]
async fn a_cache_pulled_after_the_plan_is_kept_at_the_last_look_up() {
    let registry = MemoryRegistry::default();
    let pushed = four_branches(&registry);
    // A build pulls cache-a right before the pruner's last look-up of it.
    registry.set_hook(|op, state| {
        if op == Op::DescribeTag {
            state.now += 1;
            let a = state
                .images(REPO)
                .into_iter()
                .find(|i| i.tags.contains("cache-a"));
            if let Some(a) = a {
                state.pull(REPO, &a.digest);
            }
        }
    });
    let (run, tags) = sweep(&registry, &[("CACHE_BUDGET", "260MiB")], pushed + LATER).await;
    let a = tags.iter().find(|t| t.tag == "cache-a").expect("judged");
    assert!(
        matches!(
            a.outcome,
            TagOutcome::Kept(KeepReason::UsedSinceJudged { .. })
        ),
        "{:?}",
        a.outcome
    );
    assert!(tags_now(&registry).contains(&"cache-a".to_owned()));
    // The plan evicted a and b; only b went: the numbers are what went, still over budget.
    let budget = run.budget.unwrap();
    assert_eq!(budget.evicted, ["cache-b"]);
    assert_eq!(budget.footprint_after, 260 * MIB + 4 * CFG);
    assert!(budget.unreachable);
    assert_eq!(budget.bytes_over(), 4 * CFG);
}

#[tokio::test]
async fn a_cache_retagged_to_a_fresh_push_is_not_evicted() {
    let registry = MemoryRegistry::default();
    let pushed = four_branches(&registry);
    let mut moved = false;
    registry.set_hook(move |op, state| {
        if op == Op::DescribeTag && !std::mem::replace(&mut moved, true) {
            state.inject_push(REPO, support::memory::Kind::Cache, Some("cache-a"));
        }
    });
    let (_, tags) = sweep(&registry, &[("CACHE_BUDGET", "260MiB")], pushed + LATER).await;
    let a = tags.iter().find(|t| t.tag == "cache-a").expect("judged");
    assert!(matches!(
        a.outcome,
        TagOutcome::Kept(KeepReason::TagMoved { .. })
    ));
    assert!(registry.state().violations.is_empty());
}

#[tokio::test]
async fn the_blob_reads_cost_one_call_per_hundred_manifests_and_none_twice() {
    let registry = MemoryRegistry::default();
    let pushed = {
        let mut state = registry.state();
        state.now = 1_000_000;
        for n in 0..250 {
            let tag = format!("cache-b{n}");
            let own = format!("own{n}");
            state.push_cache_layers(REPO, Some(&tag), &[("base", 10 * MIB), (&own, MIB)]);
        }
        state.now
    };
    let (run, _) = sweep(&registry, &[("CACHE_BUDGET", "100MiB")], pushed + LATER).await;
    let budget = run.budget.unwrap();
    assert_eq!(budget.footprint_bytes, 260 * MIB + 250 * CFG);
    assert!(budget.footprint_after <= 100 * MIB && !budget.unreachable);
    // 250 manifests: 3 BatchGetImage calls, whatever the snapshot had read before.
    let reads: Vec<usize> = registry
        .calls()
        .iter()
        .filter(|c| c.op == Op::ReadManifests)
        .map(|c| c.ids.len())
        .collect();
    assert!(
        reads.iter().sum::<usize>() <= 250,
        "a manifest read twice: {reads:?}"
    );
    assert!(reads.len() <= 3 + 1, "{reads:?}");
}
