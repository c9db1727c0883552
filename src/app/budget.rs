//! The cache budget in a sweep (`CACHE_BUDGET`): reads the blob lists the footprint needs (never a
//! manifest this run read already; ECR's `imageSizeInBytes` is no substitute: it counts a shared
//! layer once per image, and AWS does not document what it sums for an OCI artifact) — plans the evictions with the pure core ([`crate::core::budget`]), then removes
//! each evicted cache's tags, each re-checked at the last moment (still this digest, not pushed or
//! pulled since it was judged, still ACTIVE). The savings report uses the same reads for its
//! unique-byte numbers.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::core::budget::{cache_manifests, plan_budget, unique_bytes, BudgetInput, BudgetPlan};
use crate::core::manifest::is_single_manifest_type;
use crate::core::plan::{referenced_digests, ImageStatus};
use crate::core::reclaim::reclaimed_bytes;
use crate::core::stale::TagExpiry;

use super::audit::Because;
use super::branch_cleanup::{judge_cache_tag, KnownRepository, TagOutcome, TagRun};
use super::ports::{RegistryReader, RegistryWriter};
use super::prune::{RepositoryRun, Run, Snapshot};
use super::reads;
use super::sweep::{SweepError, SweepSettings};

/// A repository's cache in unique bytes (every blob counted once, as ECR stores it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UniqueBytes {
    /// Distinct blobs of every BuildKit cache manifest in the listing.
    pub cache_unique_bytes: u64,
    /// Blobs the stale manifests (what the sweep deletes now) reference and nothing else does:
    /// the storage their deletion frees.
    pub stale_unique_bytes: u64,
}

/// What the budget made of one repository in a sweep (its output and metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BudgetRun {
    pub budget_bytes: u64,
    /// The cache footprint (unique bytes) after this run's other removals, before evictions.
    pub footprint_bytes: u64,
    /// After the planned evictions.
    pub footprint_after: u64,
    /// Cache tags removed (or that a dry run would remove) for the budget.
    pub evicted: Vec<String>,
    /// Storage the planned evictions free (blobs nothing else references).
    pub storage_freed: u64,
    /// Over budget even after every eviction allowed: protected, kept or young caches alone
    /// exceed it, or the cap stopped it. Said, never forced.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unreachable: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub capped: bool,
    /// Cache tags over budget that may not be evicted (protected, kept, young, ...).
    pub held: usize,
    /// Cache manifests whose blob list could not be read (archived): not in the footprint.
    #[serde(skip_serializing_if = "is_zero")]
    pub unknown_blob_lists: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl BudgetRun {
    /// Bytes still over budget after the evictions (0 within budget).
    pub fn bytes_over(&self) -> u64 {
        self.footprint_after.saturating_sub(self.budget_bytes)
    }

    fn planned(plan: &BudgetPlan) -> Self {
        BudgetRun {
            budget_bytes: plan.budget_bytes,
            footprint_bytes: plan.footprint_bytes,
            footprint_after: plan.footprint_after,
            evicted: vec![],
            storage_freed: plan.storage_freed,
            unreachable: plan.unreachable,
            capped: plan.capped,
            held: plan.held.len(),
            unknown_blob_lists: plan.unknown_blob_lists,
        }
    }
}

/// Reads what the footprint needs and, with a budget, evicts down to it. Returns the unique
/// bytes (None when time ran out before the reads were done). `tags` gains the evictions.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn judge<R: RegistryReader, W: RegistryWriter>(
    registry: &R,
    writer: Option<&W>,
    settings: &SweepSettings,
    repository: &str,
    snapshot: &mut Snapshot,
    budget_bytes: Option<u64>,
    now_secs: i64,
    run: Run<'_>,
    pruned: &mut RepositoryRun,
    tags: &mut Vec<TagRun>,
) -> Result<Option<UniqueBytes>, SweepError> {
    let stale = pruned.gone_digests();
    // What this run removes anyway is not in the footprint the budget judges; a delete whose
    // answer was lost counts as done (a smaller footprint evicts less, never more).
    let mut going: HashSet<String> = stale.iter().cloned().collect();
    going.extend(pruned.already_deleted.iter().cloned());
    going.extend(pruned.delete_unconfirmed.iter().map(|d| d.digest.clone()));
    going.extend(
        tags.iter()
            .filter(|t| {
                matches!(
                    t.outcome,
                    TagOutcome::Removed {
                        image_deleted: true
                    } | TagOutcome::WouldRemove {
                        image_deleted: true
                    }
                )
            })
            .filter_map(|t| t.digest.clone()),
    );

    // Every ACTIVE single manifest's blob list (an archived one cannot be read); what this run
    // read already is not read again.
    let to_read: Vec<String> = snapshot
        .images
        .iter()
        .filter(|i| i.status == ImageStatus::Active)
        .filter(|i| is_single_manifest_type(i.manifest_media_type.as_deref()))
        .filter(|i| !snapshot.blobs.contains_key(&i.digest))
        .map(|i| i.digest.clone())
        .collect();
    let Some(read) = reads::read_manifests(registry, repository, &to_read, run.deadline).await?
    else {
        pruned.out_of_time = true;
        return Ok(None);
    };
    for (digest, kind) in read.kinds {
        snapshot.manifests.entry(digest).or_insert(kind);
    }
    snapshot.blobs.extend(read.blobs);
    let unique = UniqueBytes {
        cache_unique_bytes: unique_bytes(
            cache_manifests(&snapshot.images, &snapshot.manifests),
            &snapshot.blobs,
        ),
        stale_unique_bytes: reclaimed_bytes(&stale, &snapshot.blobs),
    };
    let Some(budget_bytes) = budget_bytes else {
        return Ok(Some(unique));
    };

    let references = referenced_digests(&snapshot.manifests);
    // The listing as it stands after the tag expiry: a tag it removed is not evicted again.
    let mut images = snapshot.images.clone();
    let position: HashMap<String, usize> = images
        .iter()
        .enumerate()
        .map(|(n, i)| (i.digest.clone(), n))
        .collect();
    for expired in tags.iter().filter(|t| {
        matches!(
            t.outcome,
            TagOutcome::Removed { .. } | TagOutcome::WouldRemove { .. }
        )
    }) {
        if let Some(&n) = expired.digest.as_ref().and_then(|d| position.get(d)) {
            images[n].tags.retain(|t| *t != expired.tag);
        }
    }
    let removals_so_far = stale.len()
        + tags
            .iter()
            .filter(|t| {
                matches!(
                    t.outcome,
                    TagOutcome::Removed { .. } | TagOutcome::WouldRemove { .. }
                )
            })
            .count();
    let input = BudgetInput {
        images: &images,
        kinds: &snapshot.manifests,
        blobs: &snapshot.blobs,
        referenced: &references,
        going: &going,
        cache_tags: &settings.cache_tags,
        protected: &settings.protected_branches,
        keep_tags: &settings.keep_tags,
        budget_bytes,
        min_age_secs: i64::from(settings.cache_budget_min_age_minutes) * 60,
        now_secs,
        cap: settings.max_deletions.saturating_sub(removals_so_far),
    };
    let plan = plan_budget(&input);
    let mut outcome = BudgetRun::planned(&plan);
    // Digests whose every cache tag went (or would go): what the numbers are made of.
    let mut evicted = HashSet::new();
    let known = KnownRepository {
        references: &references,
        manifests: &snapshot.manifests,
        images: &snapshot.images,
        confirmed: settings.confirmed.as_ref().map(|c| &c.digests),
    };
    let why = TagExpiry::OverBudget {
        footprint_bytes: plan.footprint_bytes,
        budget_bytes,
    };
    'evictions: for eviction in &plan.evict {
        // `sweep` evicts only what the operator was shown.
        if let Some(confirmed) = &settings.confirmed {
            let shown = eviction.tags.iter().all(|t| {
                confirmed
                    .tags
                    .contains(&(t.clone(), eviction.digest.clone()))
            });
            if !shown {
                continue;
            }
        }
        let mut all_gone = true;
        for tag in &eviction.tags {
            if !run.deadline.time_left() {
                pruned.out_of_time = true;
                break 'evictions;
            }
            let report = judge_cache_tag(
                registry,
                writer,
                repository,
                tag,
                Some(&eviction.digest),
                Some(now_secs),
                Some(eviction.used_at),
                Some(&known),
                &Because {
                    trail: run.audit,
                    why,
                },
            )
            .await?
            .because(why);
            run.audit.tags(std::slice::from_ref(&report));
            let outcome_now = report.outcome.clone();
            tags.push(report);
            match outcome_now {
                TagOutcome::Removed { .. } | TagOutcome::WouldRemove { .. } => {
                    outcome.evicted.push(tag.clone());
                }
                // Gone already (a concurrent removal): nothing to do for this tag.
                TagOutcome::TagNotFound => {}
                // Used, moved or changed since it was judged: the rest of its tags stay too.
                _ => {
                    all_gone = false;
                    break;
                }
            }
        }
        if all_gone {
            evicted.insert(eviction.digest.clone());
        }
    }
    // What was achieved, not what was planned: a cache kept at its last look-up, or not
    // confirmed, is still in the footprint (and BytesOverBudget says so).
    let (footprint_after, storage_freed) = crate::core::budget::after_evictions(&input, &evicted);
    outcome.footprint_after = footprint_after;
    outcome.storage_freed = storage_freed;
    outcome.unreachable = footprint_after > budget_bytes;
    pruned.budget = Some(outcome);
    Ok(Some(unique))
}
