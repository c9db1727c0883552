//! The scheduled sweep: every repository in scope gets the push-path pruning and, optionally,
//! stale branch caches removed. Bounded by the invocation's deadline; what is not reached is
//! reported and handled by the next run.

use std::collections::HashSet;

use serde::Serialize;

use crate::branch_cleanup::{remove_cache_tag, TagReport};
use crate::config::Config;
use crate::core::branch::cache_tag_for_branch;
use crate::core::glob::any_matches;
use crate::core::plan::referenced_digests;
use crate::core::stale::{gone_branch_tags, prefixed_to_read, stale_cache_tags, StaleTag};
use crate::ecr::{Ecr, EcrError};
use crate::github_branches::GithubBranches;
use crate::prune::{prune_snapshot, take_snapshot, PruneSettings, RepositoryReport};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryFailure {
    pub repository: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Repositories matching `SWEEP_REPOSITORIES`.
    pub in_scope: usize,
    pub repositories: Vec<RepositoryReport>,
    /// Stale branch cache tags removed (or that would be, in a dry run) or kept, with why.
    pub tags: Vec<TagReport>,
    /// Repositories left for the next run because the time budget ran out.
    pub not_reached: Vec<String>,
    pub failures: Vec<RepositoryFailure>,
}

/// Sweeps the repositories in scope. `time_left` is asked before each repository; once it says
/// no, the rest is reported as `not_reached`. A failing repository does not stop the others.
pub async fn sweep(
    ecr: &Ecr,
    config: &Config,
    github: Option<&GithubBranches>,
    now_secs: i64,
    time_left: &(dyn Fn() -> bool + Sync),
) -> Result<SweepReport, EcrError> {
    let mut report = SweepReport::default();
    if config.sweep_repositories.is_empty() {
        return Ok(report);
    }
    let mut in_scope: Vec<String> = ecr
        .list_repositories()
        .await?
        .into_iter()
        .filter(|name| any_matches(&config.sweep_repositories, name))
        .collect();
    report.in_scope = in_scope.len();
    // Start at a different repository each day, so a registry too large for one run is still
    // covered over several runs.
    if !in_scope.is_empty() {
        let offset = (now_secs / 86_400) as usize % in_scope.len();
        in_scope.rotate_left(offset);
    }

    let settings = PruneSettings {
        dry_run: config.dry_run,
        max_deletions: config.max_deletions,
        estimate_reclaimed: true,
    };
    let mut repositories = in_scope.into_iter();
    for repository in repositories.by_ref() {
        if !time_left() {
            report.not_reached.push(repository);
            break;
        }
        match sweep_repository(ecr, config, github, &repository, now_secs, settings).await {
            Ok((pruned, tags)) => {
                report.repositories.push(pruned);
                report.tags.extend(tags);
            }
            Err(error) => report
                .failures
                .push(RepositoryFailure { repository, error }),
        }
    }
    report.not_reached.extend(repositories);
    Ok(report)
}

async fn sweep_repository(
    ecr: &Ecr,
    config: &Config,
    github: Option<&GithubBranches>,
    repository: &str,
    now_secs: i64,
    settings: PruneSettings,
) -> Result<(RepositoryReport, Vec<TagReport>), String> {
    let prefix = &config.cache_tag_prefix;
    // Asked first: if GitHub cannot answer, this repository is left alone entirely.
    let existing_tags = match github {
        Some(github) => existing_branch_tags(github, config, repository).await?,
        None => None,
    };

    let mut snapshot = take_snapshot(ecr, repository)
        .await
        .map_err(|e| e.to_string())?;
    let pruned = prune_snapshot(ecr, repository, &snapshot, &HashSet::new(), settings)
        .await
        .map_err(|e| e.to_string())?;
    if config.stale_cache_days.is_none() && existing_tags.is_none() {
        return Ok((pruned, vec![]));
    }

    let to_read: Vec<String> = prefixed_to_read(&snapshot.images, prefix)
        .into_iter()
        .filter(|d| !snapshot.manifests.contains_key(d))
        .collect();
    if !to_read.is_empty() {
        let read = ecr
            .read_manifests(repository, &to_read)
            .await
            .map_err(|e| e.to_string())?;
        snapshot.manifests.extend(read);
    }
    let protected = &config.protected_branches;
    let mut candidates: Vec<StaleTag> = match config.stale_cache_days {
        Some(days) => stale_cache_tags(
            &snapshot.images,
            &snapshot.manifests,
            prefix,
            protected,
            now_secs,
            days,
        ),
        None => vec![],
    };
    if let Some(existing) = &existing_tags {
        // Never the cache of a branch that still exists, however old.
        candidates.retain(|c| !existing.contains(&c.tag));
        candidates.extend(gone_branch_tags(
            &snapshot.images,
            &snapshot.manifests,
            prefix,
            protected,
            existing,
            now_secs,
        ));
        candidates.sort_by(|a, b| a.tag.cmp(&b.tag));
        candidates.dedup_by(|a, b| a.tag == b.tag);
    }

    // The snapshot read every index, so its references are complete (rule 3).
    let index_references = referenced_digests(&snapshot.manifests);
    let mut tags = Vec::new();
    for tag in candidates {
        let removed = remove_cache_tag(
            ecr,
            repository,
            &tag.tag,
            Some(&tag.digest),
            Some(&index_references),
            config.dry_run,
        )
        .await
        .map_err(|e| e.to_string())?;
        tags.push(removed);
    }
    Ok((pruned, tags))
}

/// Cache tags of every branch that exists in the GitHub repositories owning `repository`'s
/// caches, or None when no GitHub repository is known for it (then only age-based expiry runs).
async fn existing_branch_tags(
    github: &GithubBranches,
    config: &Config,
    repository: &str,
) -> Result<Option<HashSet<String>>, String> {
    let owners = config
        .repository_map
        .github_repositories_for(repository, config.github_owner.as_deref());
    if owners.is_empty() {
        return Ok(None);
    }
    let mut tags = HashSet::new();
    for full_name in owners {
        for branch in github.branches(&full_name).await? {
            tags.insert(cache_tag_for_branch(&config.cache_tag_prefix, &branch));
        }
    }
    Ok(Some(tags))
}
