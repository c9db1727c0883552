//! The scheduled sweep: every repository in scope gets the push-path pruning and, optionally,
//! stale branch caches removed. Bounded by the invocation's deadline; what is not reached is
//! reported and handled by the next run.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use thiserror::Error;

use crate::core::branch::ProtectedBranches;
use crate::core::cache_tags::{CacheTags, Placeholder};
use crate::core::glob::{any_matches, Glob};
use crate::core::plan::{referenced_digests, ImageRecord, KeepReason};
use crate::core::repository_map::RepositoryMap;
use crate::core::stale::{
    closed_pull_request_tags, gone_branch_tags, prefixed_to_read, stale_cache_tags, StaleTag,
    TagExpiry,
};

use super::audit::Because;
use super::branch_cleanup::{judge_cache_tag, KnownRepository, LiveBranches, TagOutcome, TagRun};
use super::ports::{
    BranchListError, BranchLister, ReadOnly, Registry, RegistryError, RegistryReader,
    RegistryWriter,
};
use super::prune::{
    prune_snapshot_with, take_snapshot, PruneError, PruneSettings, RepositoryRun, Run, Snapshot,
};
use super::{budget, reads};

/// What the sweep needs to know (a view of the pruner's configuration).
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// Repositories in scope (`SWEEP_REPOSITORIES`); empty: no sweep.
    pub repositories: Vec<Glob>,
    /// The cache tags (templates) the sweep judges.
    pub cache_tags: crate::core::cache_tags::CacheTags,
    pub protected_branches: ProtectedBranches,
    pub dry_run: bool,
    pub max_deletions: usize,
    /// Remove cache tags not pushed for this many days.
    pub stale_cache_days: Option<u32>,
    /// Tags never removed (keep rules win).
    pub keep_tags: Vec<Glob>,
    /// Gone-branch expiry only judges tags whose image is at least this old.
    pub gone_branch_min_age_hours: u32,
    /// Cache footprint allowed per repository; over it, the least recently used branch caches
    /// are evicted.
    pub cache_budget: crate::core::budget::CacheBudget,
    pub cache_budget_min_age_minutes: u32,
    /// Read every manifest's blob list and size the cache in unique bytes (the savings report;
    /// a budget does it for the repositories it covers).
    pub unique_bytes: bool,
    /// Which GitHub repositories own an ECR repository's caches (gone-branch expiry).
    pub repository_map: RepositoryMap,
    pub github_owner: Option<String>,
    pub estimate_reclaimed: bool,
    /// Set by the CLI's `sweep`: delete and remove only what the operator was shown.
    pub confirmed: Option<ConfirmedPlan>,
    /// See [`PruneSettings::plan_only`] (the savings report).
    pub plan_only: bool,
}

/// What an operator was shown and confirmed. A sweep run with it deletes the intersection of
/// this plan and the one it makes again (which re-checks everything), never more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfirmedPlan {
    pub digests: HashSet<String>,
    /// (tag, digest it named when shown): a tag pushed again since is fresh, and stays.
    pub tags: HashSet<(String, String)>,
}

impl ConfirmedPlan {
    /// The plan of a dry-run sweep of one repository.
    pub fn from_dry_run(report: &RepositoryRun, tags: &[TagRun]) -> Self {
        ConfirmedPlan {
            // With the referrers (signatures) a shown tag removal would take along.
            digests: report
                .would_delete
                .iter()
                .map(|d| d.digest.clone())
                .chain(
                    tags.iter()
                        .filter_map(|t| t.referrers.as_ref())
                        .flat_map(|r| r.would_delete.iter().cloned()),
                )
                .collect(),
            tags: tags
                .iter()
                .filter(|t| matches!(t.outcome, TagOutcome::WouldRemove { .. }))
                .filter_map(|t| Some((t.tag.clone(), t.digest.clone()?)))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty() && self.tags.is_empty()
    }
}

/// Why one repository of the sweep was left alone.
#[derive(Debug, Error)]
pub enum SweepError {
    #[error(transparent)]
    Prune(#[from] PruneError),
    #[error(transparent)]
    Branches(#[from] BranchListError),
}

impl From<RegistryError> for SweepError {
    fn from(err: RegistryError) -> Self {
        SweepError::Prune(err.into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryFailure {
    pub repository: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Repositories matching `SWEEP_REPOSITORIES`.
    pub in_scope: usize,
    pub repositories: Vec<RepositoryRun>,
    /// Stale branch cache tags removed (or that would be, in a dry run) or kept, with why.
    pub tags: Vec<TagRun>,
    /// Repositories left for the next run because the time budget ran out: not started, or
    /// stopped part-way (then their report is in `repositories`, with `out_of_time`).
    pub not_reached: Vec<String>,
    pub failures: Vec<RepositoryFailure>,
    /// Left alone for a lasting reason (an index that cannot be read, access refused): reported,
    /// not failures, so the schedule is not retried for them.
    pub skipped: Vec<RepositoryFailure>,
}

/// One repository of the sweep, as soon as it is finished (for logs and metrics that should not
/// wait for the whole sweep).
#[derive(Debug, Clone, Copy)]
pub enum Swept<'a> {
    Done {
        report: &'a RepositoryRun,
        tags: &'a [TagRun],
    },
    Failed(&'a RepositoryFailure),
    /// Left alone for a lasting reason.
    Skipped(&'a RepositoryFailure),
}

/// Sweeps the repositories in scope. `run.deadline` is asked before each repository and before
/// each call inside one; once it says no, the work stops cleanly (nothing half-known is acted on) and
/// the rest is reported as `not_reached`. A failing repository does not stop the others, and a
/// repository deleted meanwhile is skipped. `finished` hears of each repository when it is done.
pub async fn sweep<R: Registry, B: BranchLister>(
    registry: &R,
    settings: &SweepSettings,
    github: Option<&B>,
    now_secs: i64,
    run: Run<'_>,
    finished: &mut (dyn FnMut(Swept<'_>) + Send),
) -> Result<SweepReport, RegistryError> {
    let mut report = SweepReport::default();
    let in_scope = repositories_in_scope(registry, settings, now_secs).await?;
    report.in_scope = in_scope.len();
    let mut repositories = in_scope.into_iter();
    for repository in repositories.by_ref() {
        if !run.deadline.time_left() {
            report.not_reached.push(repository);
            break;
        }
        let swept = sweep_one(registry, settings, github, &repository, now_secs, run).await;
        match swept {
            Ok((pruned, tags)) => {
                finished(Swept::Done {
                    report: &pruned,
                    tags: &tags,
                });
                if pruned.out_of_time {
                    report.not_reached.push(repository);
                }
                report.repositories.push(pruned);
                report.tags.extend(tags);
            }
            Err(SweepError::Prune(err)) if err.is_repository_gone() => {}
            Err(SweepError::Prune(PruneError::OutOfTime { .. })) => {
                report.not_reached.push(repository);
                break;
            }
            Err(SweepError::Prune(err)) if err.is_lasting() => {
                let skipped = RepositoryFailure {
                    repository,
                    error: err.to_string(),
                };
                finished(Swept::Skipped(&skipped));
                report.skipped.push(skipped);
            }
            Err(error) => {
                let failure = RepositoryFailure {
                    repository,
                    error: error.to_string(),
                };
                finished(Swept::Failed(&failure));
                report.failures.push(failure);
            }
        }
    }
    report.not_reached.extend(repositories);
    Ok(report)
}

/// The repositories the sweep covers, starting at a different one each day, so a registry too
/// large for one run is still covered over several runs.
pub async fn repositories_in_scope<R: Registry>(
    registry: &R,
    settings: &SweepSettings,
    now_secs: i64,
) -> Result<Vec<String>, RegistryError> {
    if settings.repositories.is_empty() {
        return Ok(vec![]);
    }
    let mut in_scope: Vec<String> = reads::list_repositories(registry)
        .await?
        .into_iter()
        .filter(|name| any_matches(&settings.repositories, name))
        .collect();
    if !in_scope.is_empty() {
        let offset = (now_secs / 86_400) as usize % in_scope.len();
        in_scope.rotate_left(offset);
    }
    Ok(in_scope)
}

/// Sweeps one repository: its stale cache manifests, then stale and gone branch tags when
/// configured. Stops cleanly when `run.deadline` says no (its run says `out_of_time`). When
/// GitHub cannot say which branches exist, only the tag expiry is skipped (said in
/// `tag_expiry_skipped`): the untagged manifests need no GitHub and are still pruned.
pub async fn sweep_one<R: Registry, B: BranchLister>(
    registry: &R,
    settings: &SweepSettings,
    github: Option<&B>,
    repository: &str,
    now_secs: i64,
    run: Run<'_>,
) -> Result<(RepositoryRun, Vec<TagRun>), SweepError> {
    let swept = sweep_one_listed(registry, settings, github, repository, now_secs, run).await?;
    Ok((swept.report, swept.tags))
}

/// One repository swept, with the images its listing found (what the savings report sizes).
#[derive(Debug, Clone)]
pub struct SweptRepository {
    pub report: RepositoryRun,
    pub tags: Vec<TagRun>,
    /// Every image of the listing the sweep judged by, of every status.
    pub images: Vec<ImageRecord>,
    /// The cache in unique bytes, when a budget or the report asked for it.
    pub unique: Option<budget::UniqueBytes>,
}

/// [`sweep_one`], also handing back the listing it judged by.
pub async fn sweep_one_listed<R: Registry, B: BranchLister>(
    registry: &R,
    settings: &SweepSettings,
    github: Option<&B>,
    repository: &str,
    now_secs: i64,
    run: Run<'_>,
) -> Result<SweptRepository, SweepError> {
    sweep_one_with(
        registry,
        Some(registry),
        settings,
        github,
        repository,
        now_secs,
        run,
    )
    .await
}

/// What [`sweep_one_listed`] would do, over a registry it can only read: always a dry run. The
/// savings report is built on this: it holds no writer, so it cannot delete or untag.
pub async fn survey_one<R: RegistryReader, B: BranchLister>(
    reader: &R,
    settings: &SweepSettings,
    github: Option<&B>,
    repository: &str,
    now_secs: i64,
    run: Run<'_>,
) -> Result<SweptRepository, SweepError> {
    let settings = SweepSettings {
        dry_run: true,
        ..settings.clone()
    };
    sweep_one_with(
        reader,
        None::<&ReadOnly>,
        &settings,
        github,
        repository,
        now_secs,
        run,
    )
    .await
}

/// The one implementation: reads through `registry`, deletes and untags through `writer`;
/// without a writer it is a dry run whatever `settings` say.
async fn sweep_one_with<R: RegistryReader, W: RegistryWriter, B: BranchLister>(
    registry: &R,
    writer: Option<&W>,
    settings: &SweepSettings,
    github: Option<&B>,
    repository: &str,
    now_secs: i64,
    run: Run<'_>,
) -> Result<SweptRepository, SweepError> {
    let writer = writer.filter(|_| !settings.dry_run);
    // Time is asked before the first call, GitHub's included.
    if !run.deadline.time_left() {
        return Err(SweepError::Prune(PruneError::OutOfTime {
            repository: repository.to_owned(),
        }));
    }
    // Asked first, so that every branch pushed after this listing is judged fresh (event time
    // wins: `now_secs` is no later than the listing).
    let (existing_tags, github_error): (_, Option<BranchListError>) = match github {
        Some(github) => match live_tags(github, settings, repository).await {
            Ok(tags) => (tags, None),
            Err(err) => (None, Some(err)),
        },
        None => (None, None),
    };

    let prune = PruneSettings {
        dry_run: settings.dry_run,
        max_deletions: settings.max_deletions,
        estimate_reclaimed: settings.estimate_reclaimed,
        plan_only: settings.plan_only,
    };
    let mut snapshot = take_snapshot(registry, repository, run.deadline).await?;
    let no_digest = HashSet::new();
    let confirmed = settings.confirmed.as_ref();
    let pruned = prune_snapshot_with(
        registry,
        writer,
        repository,
        &snapshot,
        &no_digest,
        confirmed.map(|c| &c.digests),
        prune,
        run,
    )
    .await?;
    let mut pruned = pruned;
    let mut tags = Vec::new();
    'expiry: {
        if let Some(err) = github_error {
            // Without the branch list no tag can be judged: not even by age, since a branch that
            // exists keeps its cache however old. (The budget needs no branch list.)
            pruned.tag_expiry_skipped = Some(err.to_string());
            pruned.tag_expiry_skipped_lasting = err.is_lasting();
            break 'expiry;
        }
        let expire_tags = settings.stale_cache_days.is_some() || existing_tags.is_some();
        if !expire_tags || pruned.out_of_time {
            break 'expiry;
        }
        tags = expire_tags_of(
            registry,
            writer,
            settings,
            repository,
            &mut snapshot,
            existing_tags.as_ref(),
            github,
            now_secs,
            run,
            &mut pruned,
        )
        .await?;
    }

    let budget_bytes = settings.cache_budget.for_repository(repository);
    let mut unique = None;
    if (budget_bytes.is_some() || settings.unique_bytes) && !pruned.out_of_time {
        let budgeted = budget::judge(
            registry,
            writer,
            settings,
            repository,
            &mut snapshot,
            budget_bytes,
            now_secs,
            run,
            &mut pruned,
            &mut tags,
        )
        .await?;
        unique = budgeted;
    }
    Ok(SweptRepository {
        report: pruned,
        tags,
        images: snapshot.images,
        unique,
    })
}

/// Stale and gone branch tags of one repository, removed (or judged, in a dry run).
#[allow(clippy::too_many_arguments)]
async fn expire_tags_of<R: RegistryReader, W: RegistryWriter, B: BranchLister>(
    registry: &R,
    writer: Option<&W>,
    settings: &SweepSettings,
    repository: &str,
    snapshot: &mut Snapshot,
    existing_tags: Option<&LiveTags>,
    github: Option<&B>,
    now_secs: i64,
    run: Run<'_>,
    pruned: &mut RepositoryRun,
) -> Result<Vec<TagRun>, SweepError> {
    let cache_tags = &settings.cache_tags;
    // A manifest read is a pull (it refreshes lastRecordedPullTime): only the images a tag
    // expiry could judge are read, never a live branch's recent cache.
    let stale_before = settings
        .stale_cache_days
        .map(|days| now_secs - i64::from(days) * 86_400);
    let gone_before = now_secs - i64::from(settings.gone_branch_min_age_hours) * 3600;
    let could_expire: HashSet<&str> = snapshot
        .images
        .iter()
        .filter(|image| {
            let old_enough = stale_before
                .zip(image.last_used_at())
                .is_some_and(|(cutoff, used)| used < cutoff);
            let gone = existing_tags.is_some_and(|live| {
                image.pushed_at.is_some_and(|p| p <= gone_before)
                    && image.tags.iter().any(|t| live.gone(cache_tags, t))
            });
            old_enough || gone
        })
        .map(|image| image.digest.as_str())
        .collect();
    let to_read: Vec<String> = prefixed_to_read(&snapshot.images, cache_tags)
        .into_iter()
        .filter(|d| could_expire.contains(d.as_str()) && !snapshot.manifests.contains_key(d))
        .collect();
    let Some(read) = reads::read_manifests(registry, repository, &to_read, run.deadline).await?
    else {
        pruned.out_of_time = true;
        return Ok(vec![]);
    };
    snapshot.manifests.extend(read.kinds);
    snapshot.blobs.extend(read.blobs);
    let protected = &settings.protected_branches;
    let mut candidates: Vec<StaleTag> = match settings.stale_cache_days {
        Some(days) => stale_cache_tags(
            &snapshot.images,
            &snapshot.manifests,
            cache_tags,
            protected,
            now_secs,
            days,
        ),
        None => vec![],
    };
    if let Some(live) = existing_tags {
        let existing = &live.branches;
        // Never the cache of a branch that still exists, or of an open pull request, however
        // old.
        candidates.retain(|c| !live.alive(&c.tag));
        candidates.extend(gone_branch_tags(
            &snapshot.images,
            &snapshot.manifests,
            cache_tags,
            protected,
            existing,
            now_secs,
            i64::from(settings.gone_branch_min_age_hours) * 3600,
        ));
        if let Some(open) = &live.pull_requests {
            candidates.extend(closed_pull_request_tags(
                &snapshot.images,
                &snapshot.manifests,
                cache_tags,
                protected,
                open,
                now_secs,
                i64::from(settings.gone_branch_min_age_hours) * 3600,
            ));
        }
        candidates.sort_by(|a, b| a.tag.cmp(&b.tag));
        candidates.dedup_by(|a, b| a.tag == b.tag);
    }
    // Keep rules win over every expiry.
    candidates.retain(|c| !any_matches(&settings.keep_tags, &c.tag));
    if let Some(confirmed) = &settings.confirmed {
        candidates.retain(|c| confirmed.tags.contains(&(c.tag.clone(), c.digest.clone())));
    }
    let used_at: HashMap<&str, Option<i64>> = snapshot
        .images
        .iter()
        .map(|i| (i.digest.as_str(), i.last_used_at()))
        .collect();

    // The snapshot read every index, so its references are complete (rule 3).
    let index_references = referenced_digests(&snapshot.manifests);
    let known = KnownRepository {
        references: &index_references,
        manifests: &snapshot.manifests,
        images: &snapshot.images,
        confirmed: settings.confirmed.as_ref().map(|c| &c.digests),
    };
    let mut tags = Vec::new();
    // The branches of each owning repository, listed again once a `{branch}` tag the first
    // listing left ownerless is about to go: None until then.
    let mut relisting: Option<Vec<LiveBranches<'_, B>>> = None;
    for tag in candidates {
        if !run.deadline.time_left() {
            pruned.out_of_time = true;
            break;
        }
        // A paged branch listing can miss a branch that exists (one already read deleted before
        // it ends shifts the rest back), and a branch's name cannot be recovered from its tag to
        // ask about it alone: every `{branch}` tag the first listing left ownerless, whatever
        // expiry judged it, goes only once a listing holding no owner shows no sign of a page
        // shift against the next (LiveBranches); an owner in any listing keeps it, and so does
        // any doubt.
        let unlisted_branch = existing_tags
            .filter(|live| live.branch_gone(cache_tags, &tag.tag))
            .zip(github);
        if let Some((live, github)) = unlisted_branch {
            let owners = relisting.get_or_insert_with(|| {
                live.listed
                    .iter()
                    .map(|(full_name, first)| {
                        LiveBranches::listed(github, full_name, first.clone())
                    })
                    .collect()
            });
            let mut reason = None;
            for owner in owners.iter_mut() {
                reason = match owner.owner_of(&tag.tag, cache_tags, run.deadline).await {
                    Ok(None) => continue,
                    Ok(Some(branch)) => Some(KeepReason::BranchExists { branch }),
                    Err(err) => Some(KeepReason::BranchesUnknown {
                        error: err.to_string(),
                    }),
                };
                break;
            }
            if let Some(reason) = reason {
                let mut kept = TagRun::kept(repository, &tag.tag, reason).because(tag.why);
                kept.digest = Some(tag.digest.clone());
                tags.push(kept);
                continue;
            }
            // Listing takes time: asked again before the removal.
            if !run.deadline.time_left() {
                pruned.out_of_time = true;
                break;
            }
        }
        // A listing of open pull requests can miss one (another closing between two pages
        // shifts the rest): each pull request's tag the listing did not hold is asked about
        // again, alone, in every owning repository, whatever expiry judged it (an idle open
        // pull request's cache is also old); open there, or no answer, and it stays.
        let unlisted_pull_request = existing_tags.is_some_and(|live| {
            cache_tags.pr_part(&tag.tag).is_some() && live.gone(cache_tags, &tag.tag)
        });
        if unlisted_pull_request {
            let number = cache_tags.pr_part(&tag.tag);
            if let Some(reason) =
                pull_request_open_anywhere(github, settings, repository, number).await
            {
                let mut kept = TagRun::kept(repository, &tag.tag, reason).because(tag.why);
                kept.digest = Some(tag.digest.clone());
                tags.push(kept);
                continue;
            }
        }
        // Judged unused by its last use: a pull since the listing keeps it. Not when this run
        // read the manifest itself (a pruner that is not a pull-time exclusion made that pull).
        let used_before = match tag.why {
            TagExpiry::NotUsed { .. } if !known.manifests.contains_key(&tag.digest) => {
                used_at.get(tag.digest.as_str()).copied().flatten()
            }
            _ => None,
        };
        let report = judge_cache_tag(
            registry,
            writer,
            repository,
            &tag.tag,
            Some(&tag.digest),
            Some(now_secs),
            used_before,
            Some(&known),
            &Because {
                trail: run.audit,
                why: tag.why,
            },
        )
        .await?
        .because(tag.why);
        run.audit.tags(std::slice::from_ref(&report));
        tags.push(report);
    }
    Ok(tags)
}

/// Why pull request `number`'s cache stays after all, asking each GitHub repository owning
/// `repository`'s caches alone; None when it is open in none of them. Any doubt keeps it.
async fn pull_request_open_anywhere<B: BranchLister>(
    github: Option<&B>,
    settings: &SweepSettings,
    repository: &str,
    number: Option<u64>,
) -> Option<KeepReason> {
    let unknown = |error: String| Some(KeepReason::BranchesUnknown { error });
    let (Some(github), Some(number)) = (github, number) else {
        return unknown("no pull request to ask GitHub about".into());
    };
    let owners = settings
        .repository_map
        .github_repositories_for(repository, settings.github_owner.as_deref());
    for full_name in owners {
        match github.pull_request_open(&full_name, number).await {
            Ok(false) => {}
            // The listing just read this repository: a 404 is "no such pull request here".
            Err(BranchListError::Refused { status: 404, .. }) => {}
            Ok(true) => return Some(KeepReason::PullRequestOpen { number }),
            Err(err) => return unknown(err.to_string()),
        }
    }
    None
}

/// The cache tags of what is alive in GitHub for one repository's caches.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveTags {
    /// Every `{branch}` tag of every existing branch.
    branches: HashSet<String>,
    /// The branches each owning GitHub repository listed.
    listed: Vec<(String, Vec<String>)>,
    /// Every `{pr}` tag of every open pull request; None without a `{pr}` template.
    pull_requests: Option<HashSet<String>>,
}

impl LiveTags {
    /// The tag belongs to a branch that exists or a pull request that is open.
    fn alive(&self, tag: &str) -> bool {
        self.branches.contains(tag)
            || self
                .pull_requests
                .as_ref()
                .is_some_and(|open| open.contains(tag))
    }

    /// The tag is a `{branch}` tag of no listed branch.
    fn branch_gone(&self, cache_tags: &CacheTags, tag: &str) -> bool {
        cache_tags.branch_part(tag).is_some() && !self.branches.contains(tag)
    }

    /// The tag is a `{branch}` tag of no existing branch, or a `{pr}` tag of no open pull request.
    fn gone(&self, cache_tags: &CacheTags, tag: &str) -> bool {
        let branch_gone = self.branch_gone(cache_tags, tag);
        let pull_request_gone = cache_tags.pr_part(tag).is_some()
            && self
                .pull_requests
                .as_ref()
                .is_some_and(|open| !open.contains(tag));
        branch_gone || pull_request_gone
    }
}

/// Cache tags of every branch that exists, and (with a `{pr}` template) of every open pull
/// request, in the GitHub repositories owning `repository`'s caches; None when no GitHub
/// repository is known for it (then only age-based expiry runs). A listing that fails fails the
/// whole: no tag is judged gone on half a picture.
async fn live_tags<B: BranchLister>(
    github: &B,
    settings: &SweepSettings,
    repository: &str,
) -> Result<Option<LiveTags>, BranchListError> {
    let owners = settings
        .repository_map
        .github_repositories_for(repository, settings.github_owner.as_deref());
    if owners.is_empty() {
        return Ok(None);
    }
    let cache_tags = &settings.cache_tags;
    let mut live = LiveTags {
        pull_requests: cache_tags.has(Placeholder::Pr).then(HashSet::new),
        ..Default::default()
    };
    for full_name in owners {
        let branches = github.branches(&full_name).await?;
        for branch in &branches {
            live.branches.extend(cache_tags.for_branch(branch));
        }
        live.listed.push((full_name.clone(), branches));
        if let Some(open) = live.pull_requests.as_mut() {
            for number in github.open_pull_requests(&full_name).await? {
                open.extend(cache_tags.for_pr(number));
            }
        }
    }
    Ok(Some(live))
}
