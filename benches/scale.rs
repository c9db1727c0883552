//! One repository of 100,000 images through the in-memory registry (`tests/support/memory.rs`,
//! which behaves like ECR: 1,000-image pages, ≤100-id batches): ECR calls, CPU time and memory of
//! the pruning code for one push and for one repository sweep. The registry lives in the same
//! process, so its own memory is measured first and reported apart.
//!
//!     cargo bench --bench scale

#[allow(dead_code)]
#[path = "../tests/support/memory.rs"]
mod memory;

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use ecr_cache_pruner::adapters::github::GithubBranches;
use ecr_cache_pruner::app::prune::{prune_repository, PruneSettings, Run};
use ecr_cache_pruner::app::sweep::{sweep, SweepSettings};
use ecr_cache_pruner::core::branch::ProtectedBranches;
use ecr_cache_pruner::core::glob::parse_list;
use memory::{Kind, MemoryRegistry, Op};

const REPO: &str = "big";
const IMAGES: usize = 100_000;
const STALE: usize = 3_000;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// User + system CPU seconds of this process so far (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

fn calls(registry: &MemoryRegistry) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for call in registry.calls() {
        let name = match call.op {
            Op::ListImages | Op::CurrentTags | Op::DescribeTag => "DescribeImages",
            Op::ListRepositories => "DescribeRepositories",
            Op::ReadManifests => "BatchGetImage",
            Op::DeleteDigests | Op::RemoveTag => "BatchDeleteImage",
            Op::PutTag => "PutImage",
        };
        *out.entry(name).or_default() += 1;
    }
    out
}

fn registry() -> MemoryRegistry {
    let registry = MemoryRegistry::new(1000);
    let mut state = registry.state();
    for i in 0..IMAGES - STALE {
        match i % 20 {
            0 => state.push_with_new_tag(REPO, Kind::App, &format!("v{i}")),
            _ => state.push_with_new_tag(REPO, Kind::Cache, &format!("cache-branch-{i}")),
        };
    }
    for _ in 0..STALE {
        state.push(REPO, Kind::Cache, None);
    }
    drop(state);
    registry
}

fn row(
    what: &str,
    registry: &MemoryRegistry,
    cpu: f64,
    wall: f64,
    rss_before: u64,
    deleted: usize,
) {
    let calls = calls(registry);
    let total: usize = calls.values().sum();
    let detail: Vec<String> = calls.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "| {what} | {IMAGES} | {deleted} | {total} ({}) | {:.0} ms | {:.0} ms | +{} MiB |",
        detail.join(", "),
        cpu * 1000.0,
        wall * 1000.0,
        status_kib("VmHWM:").saturating_sub(rss_before) / 1024,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| run | images | deleted | ECR calls | CPU | wall | peak RSS above the registry |");
    println!("| --- | ---: | ---: | --- | ---: | ---: | ---: |");

    let push_registry = registry();
    let rss = status_kib("VmHWM:");
    let (cpu, start) = (cpu_seconds(), Instant::now());
    let settings = PruneSettings {
        dry_run: false,
        max_deletions: 1000,
        estimate_reclaimed: false,
        plan_only: false,
    };
    let report = runtime
        .block_on(prune_repository(
            &push_registry,
            REPO,
            &HashSet::new(),
            settings,
            Run::UNBOUNDED,
        ))
        .unwrap();
    row(
        "push (cap 1,000 deletions)",
        &push_registry,
        cpu_seconds() - cpu,
        start.elapsed().as_secs_f64(),
        rss,
        report.deleted.len(),
    );
    drop(push_registry);

    let sweep_settings = |estimate: bool, budget: &str| SweepSettings {
        repositories: parse_list("*"),
        cache_tags: ecr_cache_pruner::core::cache_tags::CacheTags::from_prefix("cache-"),
        protected_branches: ProtectedBranches::new(parse_list("main,master")),
        dry_run: false,
        max_deletions: 100_000,
        stale_cache_days: None,
        keep_tags: vec![],
        gone_branch_min_age_hours: 24,
        cache_budget: ecr_cache_pruner::core::budget::CacheBudget::parse(budget).unwrap(),
        cache_budget_min_age_minutes: 60,
        unique_bytes: false,
        repository_map: Default::default(),
        github_owner: None,
        estimate_reclaimed: estimate,
        confirmed: None,
        plan_only: false,
    };
    // Every tagged cache of the big repository is 50,001,000 bytes of its own: a budget 1,000
    // caches short of the footprint evicts exactly 1,000.
    let tagged_caches = (IMAGES - STALE) - (IMAGES - STALE).div_ceil(20);
    let budget = format!("{}B", (tagged_caches as u64 - 1000) * 50_001_000);
    for (what, estimate, budget) in [
        ("sweep (no cap, default settings)", false, ""),
        ("sweep (no cap, `ESTIMATE_RECLAIMED_BYTES=true`)", true, ""),
        (
            "sweep (no cap, `CACHE_BUDGET` 1,000 caches short)",
            false,
            budget.as_str(),
        ),
    ] {
        let sweep_registry = registry();
        let rss = status_kib("VmHWM:");
        let settings = sweep_settings(estimate, budget);
        let (cpu, start) = (cpu_seconds(), Instant::now());
        let report = runtime
            .block_on(sweep(
                &sweep_registry,
                &settings,
                None::<&GithubBranches>,
                1_800_000_000,
                ecr_cache_pruner::app::prune::Run::UNBOUNDED,
                &mut |_| {},
            ))
            .unwrap();
        row(
            what,
            &sweep_registry,
            cpu_seconds() - cpu,
            start.elapsed().as_secs_f64(),
            rss,
            report
                .repositories
                .iter()
                .map(|r| r.deleted.len())
                .sum::<usize>()
                + report.tags.len(),
        );
    }

    // The pure core alone over the same listing: the sweep's CPU above is mostly the in-memory
    // registry's (it finds a tag by scanning the repository, 2,000 times).
    {
        let big = registry();
        let state = big.state();
        let stored = state.images(REPO);
        drop(state);
        let images: Vec<ecr_cache_pruner::core::plan::ImageRecord> = runtime
            .block_on(ecr_cache_pruner::app::reads::list_images(
                &big,
                REPO,
                ecr_cache_pruner::app::deadline::Deadline::NEVER,
            ))
            .unwrap()
            .unwrap();
        let mut kinds = std::collections::HashMap::new();
        let mut blobs = std::collections::HashMap::new();
        for image in &stored {
            kinds.insert(
                image.digest.clone(),
                ecr_cache_pruner::core::manifest::classify_manifest(image.body(), None),
            );
            blobs.insert(
                image.digest.clone(),
                ecr_cache_pruner::core::manifest::blobs(image.body()),
            );
        }
        let settings = sweep_settings(false, &budget);
        let going: HashSet<String> = images
            .iter()
            .filter(|i| i.tags.is_empty())
            .map(|i| i.digest.clone())
            .collect();
        let references = std::collections::BTreeMap::new();
        let (cpu, start) = (cpu_seconds(), Instant::now());
        let plan = ecr_cache_pruner::core::budget::plan_budget(
            &ecr_cache_pruner::core::budget::BudgetInput {
                images: &images,
                kinds: &kinds,
                blobs: &blobs,
                referenced: &references,
                going: &going,
                cache_tags: &settings.cache_tags,
                protected: &settings.protected_branches,
                keep_tags: &settings.keep_tags,
                budget_bytes: ecr_cache_pruner::core::budget::parse_size(&budget).unwrap(),
                min_age_secs: 3600,
                now_secs: 1_800_000_000,
                cap: 100_000,
            },
        );
        println!(
            "| the budget's plan alone (pure core, listing and blob lists in hand) | {IMAGES} | {} | 0 | {:.0} ms | {:.0} ms | - |",
            plan.evict.len(),
            (cpu_seconds() - cpu) * 1000.0,
            start.elapsed().as_secs_f64() * 1000.0,
        );
    }

    // 1,000 repositories, each: 3 superseded caches, main's and 4 branch caches over a shared
    // 200 MB base (10 MB each of their own), an application image. The budget (231 MiB) evicts
    // the two least recently used branch caches of each.
    println!();
    println!("| sweep of 1,000 repositories | ECR calls | per repository | BatchGetImage per repository | evicted | CPU | wall |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (what, budget) in [
        ("without a budget", ""),
        ("`CACHE_BUDGET=231MiB`", "231MiB"),
    ] {
        let fleet = fleet();
        let settings = sweep_settings(false, budget);
        let (cpu, start) = (cpu_seconds(), Instant::now());
        let report = runtime
            .block_on(sweep(
                &fleet,
                &settings,
                None::<&GithubBranches>,
                1_800_000_000,
                ecr_cache_pruner::app::prune::Run::UNBOUNDED,
                &mut |_| {},
            ))
            .unwrap();
        let (cpu, wall) = (cpu_seconds() - cpu, start.elapsed().as_secs_f64());
        let calls = calls(&fleet);
        let total: usize = calls.values().sum();
        let reads = calls.get("BatchGetImage").copied().unwrap_or(0);
        let evicted = report.tags.len();
        assert_eq!(report.repositories.len(), FLEET);
        println!(
            "| {what} | {total} | {:.1} | {:.1} | {evicted} | {:.0} ms | {:.0} ms |",
            total as f64 / FLEET as f64,
            reads as f64 / FLEET as f64,
            cpu * 1000.0,
            wall * 1000.0,
        );
    }
}

const FLEET: usize = 1000;

fn fleet() -> MemoryRegistry {
    let registry = MemoryRegistry::new(1000);
    let mut state = registry.state();
    for r in 0..FLEET {
        let repo = format!("team/app-{r:04}");
        for _ in 0..3 {
            state.push(&repo, Kind::Cache, None);
        }
        let base = format!("base-{r}");
        for branch in ["main", "a", "b", "c", "d"] {
            let own = format!("{r}-{branch}");
            state.push_cache_layers(
                &repo,
                Some(&format!("cache-{branch}")),
                &[(base.as_str(), 200 << 20), (own.as_str(), 10 << 20)],
            );
        }
        state.push(&repo, Kind::App, Some("v1"));
    }
    drop(state);
    registry
}
