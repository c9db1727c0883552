//! The savings report: the sweep's own dry run over every repository in scope, a few at a time,
//! sized by DescribeImages. Read-only by type: it is built over a [`RegistryReader`], which has
//! no method that deletes or untags, and surveys each repository with
//! [`survey_one`](super::sweep::survey_one), which holds no writer; a deletion from here does not
//! compile.

use futures_util::stream::{self, StreamExt};

use crate::core::glob::{any_matches, Glob};
use crate::core::savings::{
    repository_savings, savings_report, unreadable, BudgetView, ExpiringTag, RepositorySavings,
    SavingsReport,
};

use crate::core::stale::TagExpiry;

use super::audit::NoAudit;
use super::branch_cleanup::TagOutcome;
use super::deadline::Deadline;
use super::ports::{BranchLister, RegistryError, RegistryReader};
use super::prune::{PruneError, Run};
use super::reads;
use super::sweep::{survey_one, SweepError, SweepSettings};

/// What to report on and how.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// The sweep's settings (prefix, protected branches, expiry rules); dry run is forced.
    pub sweep: SweepSettings,
    /// Repositories to cover; empty covers every repository.
    pub scope: Vec<Glob>,
    /// Repositories read at the same time (at least 1).
    pub concurrency: usize,
    pub price_per_gb_month: f64,
    /// `--budget`: plan this budget for every repository (instead of the rules' `CACHE_BUDGET`).
    pub budget: Option<u64>,
}

/// Hears how far the report is (for a progress bar).
pub trait Progress: Sync {
    fn listed(&self, _repositories: usize) {}
    fn finished(&self, _repository: &RepositorySavings) {}
}

impl Progress for () {}

/// Reads every repository in scope, `concurrency` at a time, and reports what it holds and what
/// a sweep would delete now. A repository that cannot be read is reported with its error; only
/// a failure to list the repositories fails the report. Deletes nothing.
pub async fn report<R: RegistryReader, B: BranchLister>(
    registry: &R,
    settings: &ReportSettings,
    github: Option<&B>,
    now_secs: i64,
    deadline: Deadline<'_>,
    progress: &dyn Progress,
) -> Result<SavingsReport, RegistryError> {
    let mut sweep = settings.sweep.clone();
    // Only the plan: every would-be deletion, as listed (no look-up before deletions that never
    // come).
    sweep.max_deletions = usize::MAX;
    sweep.confirmed = None;
    sweep.estimate_reclaimed = false;
    sweep.plan_only = true;
    // Unique bytes need every manifest's blob list: the report reads them all.
    sweep.unique_bytes = true;
    if let Some(bytes) = settings.budget {
        sweep.cache_budget = crate::core::budget::CacheBudget::everywhere(bytes);
    }
    let sweep = &sweep;

    let in_scope: Vec<String> = reads::list_repositories(registry)
        .await?
        .into_iter()
        .filter(|name| settings.scope.is_empty() || any_matches(&settings.scope, name))
        .collect();
    progress.listed(in_scope.len());
    let run = Run {
        deadline,
        audit: &NoAudit,
    };
    let surveyed: Vec<Option<RepositorySavings>> = stream::iter(in_scope)
        .map(|repository| async move {
            let one = survey_repository(registry, sweep, github, &repository, now_secs, run).await;
            if let Some(one) = &one {
                progress.finished(one);
            }
            one
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    Ok(savings_report(
        surveyed.into_iter().flatten().collect(),
        settings.price_per_gb_month,
    ))
}

/// One repository; None when it was deleted since the listing.
async fn survey_repository<R: RegistryReader, B: BranchLister>(
    registry: &R,
    sweep: &SweepSettings,
    github: Option<&B>,
    repository: &str,
    now_secs: i64,
    run: Run<'_>,
) -> Option<RepositorySavings> {
    if !run.deadline.time_left() {
        return Some(unreadable(repository, not_finished()));
    }
    let swept = match survey_one(registry, sweep, github, repository, now_secs, run).await {
        Ok(swept) => swept,
        Err(SweepError::Prune(err)) if err.is_repository_gone() => return None,
        Err(SweepError::Prune(PruneError::OutOfTime { .. })) => {
            return Some(unreadable(repository, not_finished()))
        }
        Err(err) => return Some(unreadable(repository, err.to_string())),
    };
    if swept.report.out_of_time {
        return Some(unreadable(repository, not_finished()));
    }
    let expiring: Vec<ExpiringTag> = swept
        .tags
        .iter()
        .filter_map(|t| match (&t.outcome, t.removal) {
            // The budget's evictions have their own columns.
            (_, Some(TagExpiry::OverBudget { .. })) => None,
            (TagOutcome::WouldRemove { image_deleted }, Some(why)) => Some(ExpiringTag {
                tag: t.tag.clone(),
                why,
                image_goes: *image_deleted,
            }),
            _ => None,
        })
        .collect();
    let mut savings = repository_savings(
        repository,
        &swept.images,
        &swept.report.would_delete,
        &expiring,
        &sweep.cache_tags,
    );
    if let Some(unique) = swept.unique {
        savings.cache_unique_bytes = unique.cache_unique_bytes;
        savings.stale_unique_bytes = unique.stale_unique_bytes;
    }
    savings.budget = swept.report.budget.as_ref().map(|b| BudgetView {
        budget_bytes: b.budget_bytes,
        footprint_bytes: b.footprint_bytes,
        footprint_after: b.footprint_after,
        would_evict: b.evicted.clone(),
        evict_frees_bytes: b.storage_freed,
        unreachable: b.unreachable,
    });
    savings.tag_expiry_skipped = swept.report.tag_expiry_skipped;
    savings.orphaned_referrers = swept.report.orphaned_referrers;
    Some(savings)
}

fn not_finished() -> String {
    "not finished within the time given (raise --timeout)".to_owned()
}
