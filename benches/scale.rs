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

    for estimate in [false, true] {
        let sweep_registry = registry();
        let rss = status_kib("VmHWM:");
        let settings = SweepSettings {
            repositories: parse_list("*"),
            cache_tags: ecr_cache_pruner::core::cache_tags::CacheTags::from_prefix("cache-"),
            protected_branches: ProtectedBranches::new(parse_list("main,master")),
            dry_run: false,
            max_deletions: 100_000,
            stale_cache_days: None,
            keep_tags: vec![],
            gone_branch_min_age_hours: 24,
            cache_budget: Default::default(),
            cache_budget_min_age_minutes: 60,
            unique_bytes: false,
            repository_map: Default::default(),
            github_owner: None,
            estimate_reclaimed: estimate,
            confirmed: None,
            plan_only: false,
        };
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
        let what = if estimate {
            "sweep (no cap, ESTIMATE_RECLAIMED_BYTES=true)"
        } else {
            "sweep (no cap, default settings)"
        };
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
}
