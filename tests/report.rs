//! The savings report's use case over the in-memory registry: it deletes nothing whatever the
//! configuration says, it calls only what its numbers need, and it agrees with the sweep's plan.

mod support;

use ecr_cache_pruner::app::deadline::Deadline;
use ecr_cache_pruner::app::ports::{BranchListError, BranchLister};
use ecr_cache_pruner::app::prune::Run;
use ecr_cache_pruner::app::report::{report, ReportSettings};
use ecr_cache_pruner::app::sweep::sweep_one;
use support::memory::{Kind, MemoryRegistry, Op, ReaderOnly};
use support::moto::config;

/// 2026-11-30T12:00:00Z.
const NOW: i64 = 1_796_040_000;
const DAY: i64 = 86_400;

struct NoBranches;

impl BranchLister for NoBranches {
    async fn branches(&self, _: &str) -> Result<Vec<String>, BranchListError> {
        Ok(vec![])
    }
}

/// "app": three pushes of cache-main (two stale), a branch cache unused for 60 days, a
/// multi-arch image; "web": one push, nothing stale.
fn registry() -> MemoryRegistry {
    let registry = MemoryRegistry::new(2);
    let mut state = registry.state();
    state.now = NOW - 60 * DAY;
    state.push("app", Kind::Cache, Some("cache-old-branch"));
    state.now = NOW - 3600;
    for _ in 0..3 {
        state.push("app", Kind::Cache, Some("cache-main"));
    }
    let amd = state.push("app", Kind::App, None);
    let arm = state.push("app", Kind::App, None);
    state.push("app", Kind::Index(vec![amd, arm]), Some("v1"));
    state.push("web", Kind::Cache, Some("cache-main"));
    drop(state);
    registry
}

fn settings(vars: &[(&str, &str)]) -> ReportSettings {
    ReportSettings {
        sweep: config(vars).sweep_settings(),
        scope: vec![],
        concurrency: 8,
        price_per_gb_month: 0.10,
        budget: None,
    }
}

#[tokio::test]
async fn the_report_deletes_nothing_even_where_the_configuration_deletes() {
    let registry = registry();
    let before: Vec<_> = ["app", "web"]
        .map(|r| registry.state().images(r).len())
        .into();
    // A live deployment's settings: no dry run, tag expiry on.
    let live = settings(&[
        ("DRY_RUN", "false"),
        ("STALE_CACHE_DAYS", "30"),
        ("SWEEP_REPOSITORIES", "*"),
    ]);
    // Over a registry that can only be read: the report compiles against it (it holds no way to
    // delete or untag), whatever the configuration says.
    let reader = ReaderOnly(&registry);
    let saved = report(
        &reader,
        &live,
        None::<&NoBranches>,
        NOW,
        Deadline::NEVER,
        &(),
    )
    .await
    .unwrap();

    assert_eq!(registry.count(Op::DeleteDigests), 0);
    assert_eq!(registry.count(Op::RemoveTag), 0);
    let after: Vec<_> = ["app", "web"]
        .map(|r| registry.state().images(r).len())
        .into();
    assert_eq!(before, after);

    let app = &saved.repositories[0];
    assert_eq!(app.repository, "app");
    assert_eq!((app.stale_manifests, app.stale_bytes), (2, 2000));
    assert_eq!(app.unused_tags, ["cache-old-branch"]);
    assert_eq!(app.cache_tags, 2);
    assert_eq!(app.cache_bytes, 2000 + 2000);
    assert_eq!(saved.totals.stale_manifests, 2);
    assert_eq!(saved.totals.repositories, 2);
}

#[tokio::test]
async fn the_report_reads_the_listings_and_looks_nothing_up_again() {
    let registry = registry();
    // With tag expiry on, so that there are stale manifests and an expiring tag to look up.
    let saved = report(
        &registry,
        &settings(&[("STALE_CACHE_DAYS", "30")]),
        None::<&NoBranches>,
        NOW,
        Deadline::NEVER,
        &(),
    )
    .await
    .unwrap();
    assert_eq!(saved.totals.stale_manifests, 2);
    assert_eq!(saved.repositories[0].unused_tags, ["cache-old-branch"]);
    // The listing pages and the manifest reads (every ACTIVE single manifest, for unique
    // bytes); no re-check before a deletion that never comes, and one look-up per expiring tag
    // (what removing it would do to its image).
    assert_eq!(registry.count(Op::CurrentTags), 0);
    assert_eq!(registry.count(Op::DescribeTag), 1);
    assert_eq!(registry.count(Op::ListRepositories), 1);
    assert!(registry.count(Op::ListImages) <= 5);
}

#[tokio::test]
async fn the_report_says_what_a_dry_run_sweep_would_delete() {
    let registry = registry();
    let vars = [("STALE_CACHE_DAYS", "30"), ("SWEEP_REPOSITORIES", "*")];
    let saved = report(
        &registry,
        &settings(&vars),
        None::<&NoBranches>,
        NOW,
        Deadline::NEVER,
        &(),
    )
    .await
    .unwrap();
    let mut dry = config(&vars).sweep_settings();
    dry.dry_run = true;
    let (plan, tags) = sweep_one(
        &registry,
        &dry,
        None::<&NoBranches>,
        "app",
        NOW,
        Run::UNBOUNDED,
    )
    .await
    .unwrap();
    let app = saved
        .repositories
        .iter()
        .find(|r| r.repository == "app")
        .unwrap();
    assert_eq!(app.stale_manifests, plan.would_delete.len());
    assert_eq!(app.unused_tags.len(), tags.len());
}

#[tokio::test]
async fn the_scope_and_a_deadline_are_kept() {
    let registry = registry();
    let mut scoped = settings(&[]);
    scoped.scope = ecr_cache_pruner::core::glob::parse_list("w*");
    let saved = report(
        &registry,
        &scoped,
        None::<&NoBranches>,
        NOW,
        Deadline::NEVER,
        &(),
    )
    .await
    .unwrap();
    let names: Vec<&str> = saved
        .repositories
        .iter()
        .map(|r| r.repository.as_str())
        .collect();
    assert_eq!(names, ["web"]);

    // Out of time: every repository says so, none is reported as empty.
    let saved = report(
        &registry,
        &settings(&[]),
        None::<&NoBranches>,
        NOW,
        Deadline::probe(&|| false),
        &(),
    )
    .await
    .unwrap();
    assert_eq!(saved.totals.repositories_failed, 2);
    assert!(saved
        .repositories
        .iter()
        .all(|r| r.error.as_deref().unwrap().contains("--timeout")));
}

#[tokio::test]
async fn plan_only_never_skips_the_look_up_before_a_deletion() {
    // `plan_only` is the report's (always a dry run); a live run given it still re-checks every
    // candidate and deletes what is still stale.
    let registry = registry();
    let live = ecr_cache_pruner::app::prune::PruneSettings {
        dry_run: false,
        max_deletions: 100,
        estimate_reclaimed: false,
        plan_only: true,
    };
    let done = ecr_cache_pruner::app::prune::prune_repository(
        &registry,
        "app",
        &Default::default(),
        live,
        Run::UNBOUNDED,
    )
    .await
    .unwrap();
    assert_eq!(done.deleted.len(), 2, "{done:?}");
    assert!(registry.count(Op::CurrentTags) > 0);
}
