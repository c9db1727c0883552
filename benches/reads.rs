//! Manifest reads per push and per sweep. Each BatchGetImage is a pull: ECR refreshes the image's
//! `lastRecordedPullTime`, which lifecycle rules (`sinceImagePulled`) and `STALE_CACHE_DAYS` read,
//! so a read the decision does not need makes an image look used. Over the in-memory registry
//! (`tests/support/memory.rs`), with and without `artifactMediaType` (real ECR may report it for
//! cache manifests; moto never does).
//!
//!     cargo bench --bench reads

#[allow(dead_code)]
#[path = "../tests/support/memory.rs"]
mod memory;

use std::collections::HashSet;

use ecr_cache_pruner::adapters::github::GithubBranches;
use ecr_cache_pruner::app::prune::{prune_repository, PruneSettings, Run};
use ecr_cache_pruner::app::sweep::{sweep_one, SweepSettings};
use ecr_cache_pruner::core::branch::ProtectedBranches;
use ecr_cache_pruner::core::glob::parse_list;
use memory::{Kind, MemoryRegistry, Op};

const REPO: &str = "app";
const BRANCH_CACHES: usize = 800;
const APPS: usize = 50;
const STALE: usize = 150;
/// Branch caches last pushed more than `STALE_CACHE_DAYS` ago.
const OLD_CACHES: usize = 40;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn registry(typed: bool) -> MemoryRegistry {
    let registry = MemoryRegistry::new(1000);
    let mut state = registry.state();
    state.now = now() - 90 * 86_400;
    for i in 0..OLD_CACHES {
        state.push_with_new_tag(REPO, Kind::Cache, &format!("cache-old-{i}"));
    }
    // Everything else was pushed this week.
    state.now = now() - 3 * 86_400;
    for i in 0..BRANCH_CACHES - OLD_CACHES {
        state.push_with_new_tag(REPO, Kind::Cache, &format!("cache-branch-{i}"));
    }
    for i in 0..APPS {
        state.push_with_new_tag(REPO, Kind::App, &format!("v{i}"));
    }
    for _ in 0..STALE {
        state.push(REPO, Kind::Cache, None);
    }
    for image in state.repositories.get_mut(REPO).unwrap().values_mut() {
        image.with_artifact_type = typed;
    }
    drop(state);
    registry
}

/// (BatchGetImage calls, digests read)
fn reads(registry: &MemoryRegistry) -> (usize, usize) {
    let calls: Vec<_> = registry
        .calls()
        .into_iter()
        .filter(|c| c.op == Op::ReadManifests)
        .collect();
    (calls.len(), calls.iter().map(|c| c.ids.len()).sum())
}

fn settings() -> SweepSettings {
    SweepSettings {
        repositories: parse_list("*"),
        cache_tags: ecr_cache_pruner::core::cache_tags::CacheTags::from_prefix("cache-"),
        protected_branches: ProtectedBranches::new(parse_list("main")),
        dry_run: true,
        max_deletions: 1000,
        stale_cache_days: Some(30),
        keep_tags: vec![],
        gone_branch_min_age_hours: 24,
        cache_budget: Default::default(),
        cache_budget_min_age_minutes: 60,
        unique_bytes: false,
        repository_map: Default::default(),
        github_owner: None,
        estimate_reclaimed: false,
        confirmed: None,
        plan_only: false,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let images = BRANCH_CACHES + APPS + STALE;
    println!("Repository: {images} images ({BRANCH_CACHES} branch caches, {OLD_CACHES} of them unused for 90 days; {APPS} tagged app images; {STALE} superseded caches). Dry run.\n");
    println!(
        "| run | artifactMediaType | BatchGetImage calls | images read (pulled) | 0.2.0 read |"
    );
    println!("| --- | --- | ---: | ---: | ---: |");
    for typed in [true, false] {
        let label = if typed { "reported" } else { "absent (moto)" };
        let push = registry(typed);
        let settings_push = PruneSettings {
            dry_run: true,
            max_deletions: 1000,
            estimate_reclaimed: false,
            plan_only: false,
        };
        runtime
            .block_on(prune_repository(
                &push,
                REPO,
                &HashSet::new(),
                settings_push,
                Run::UNBOUNDED,
            ))
            .unwrap();
        let (calls, read) = reads(&push);
        // 0.2.0 read the same on a push: the untyped candidates (and indexes).
        println!("| push | {label} | {calls} | {read} | {read} |");

        let swept = registry(typed);
        runtime
            .block_on(sweep_one::<_, GithubBranches>(
                &swept,
                &settings(),
                None,
                REPO,
                now(),
                Run::UNBOUNDED,
            ))
            .unwrap();
        let (calls, read) = reads(&swept);
        // 0.2.0 read every prefixed tag without artifactMediaType for the tag expiry, old or not,
        // and each expired tag's manifest once more just before removing it.
        let before = if typed {
            read
        } else {
            STALE + BRANCH_CACHES + OLD_CACHES
        };
        println!("| sweep, `STALE_CACHE_DAYS=30` | {label} | {calls} | {read} | {before} |");
    }

    // Signed caches: every cache manifest has a signature (an OCI referrer). Real ECR names a
    // referrer's subject in the listing (with its artifactMediaType here); moto does not, and
    // then every unread untagged artifact is read once to learn its subject.
    println!("\nSigned: the same repository with one signature per cache manifest ({} signatures). Push, deleting.\n", BRANCH_CACHES + STALE);
    println!("| subject in the listing | BatchGetImage calls | images read | deleted (caches + signatures) | BatchDeleteImage calls |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for typed in [true, false] {
        let signed = registry(typed);
        {
            let mut state = signed.state();
            let caches: Vec<String> = state.repositories[REPO]
                .values()
                .filter(|i| i.kind == Kind::Cache)
                .map(|i| i.digest.clone())
                .collect();
            for cache in caches {
                state.push(REPO, Kind::Signature(cache), None);
            }
            for image in state.repositories.get_mut(REPO).unwrap().values_mut() {
                image.with_artifact_type = typed;
            }
        }
        let settings_push = PruneSettings {
            dry_run: false,
            max_deletions: 1000,
            estimate_reclaimed: false,
            plan_only: false,
        };
        let run = runtime
            .block_on(prune_repository(
                &signed,
                REPO,
                &HashSet::new(),
                settings_push,
                Run::UNBOUNDED,
            ))
            .unwrap();
        let (calls, read) = reads(&signed);
        let deletes = signed
            .calls()
            .into_iter()
            .filter(|c| c.op == Op::DeleteDigests)
            .count();
        let label = if typed { "yes (ECR)" } else { "no (moto)" };
        println!(
            "| {label} | {calls} | {read} | {} | {deletes} |",
            run.deleted.len()
        );
    }
}
