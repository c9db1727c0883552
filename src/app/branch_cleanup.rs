//! Removing a deleted branch's cache tag (DESIGN.md §3 rule 4): by tag, never by digest, and only
//! when the tagged manifest is BuildKit cache.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::core::branch::listing_complete;
use crate::core::manifest::{is_single_manifest_type, ManifestKind};
use crate::core::plan::{
    classify, referenced_digests, referrers_of, ImageRecord, ImageStatus, KeepReason,
    PlannedDeletion,
};

use super::audit::{AuditTrail, NoAudit};
use super::deadline::Deadline;
use super::outcome::RepositoryRun;
pub use super::outcome::{ReferrersRun, TagOutcome, TagRun};
use super::ports::{
    BranchListError, BranchLister, ManifestRead, ReadOnly, Registry, RegistryError, RegistryReader,
    RegistryWriter, BATCH_SIZE,
};
use super::prune::{recheck_and_delete, take_snapshot, PruneError, Run};
use super::{reads, retry};

/// What a caller already read of the repository: which index references each digest (complete:
/// every index was read), the manifests it read, and its listing (for the referrers of an image
/// a removal takes).
#[derive(Debug, Clone, Copy)]
pub struct KnownRepository<'a> {
    pub references: &'a BTreeMap<String, String>,
    pub manifests: &'a HashMap<String, ManifestKind>,
    pub images: &'a [ImageRecord],
    /// In a confirmed sweep, the digests the operator was shown: a removal that would take a
    /// referrer (signature) outside them keeps its tag, so nothing unshown is deleted.
    pub confirmed: Option<&'a HashSet<String>>,
}

/// Removes `tag` when it names a BuildKit cache manifest. With `expected_digest`, the tag is only
/// removed while it still names that digest (a stale tag that was just pushed again is fresh).
/// With `pushed_before` (seconds since the epoch: the branch deletion's time, or when a sweep
/// listed the branches), only while its image was pushed no later than that second: a later push
/// came from a branch of that name created again (event time wins). Both times are whole seconds;
/// a push in the deletion's own second is the deleted branch's (a new branch cannot build a cache
/// that fast), and an image without a push time is kept.
///
/// Removing an image's last tag deletes the image, so then rule 3 applies too: the tag stays when
/// an index references the digest. `known` (which index references each digest, and the manifests
/// read) comes from the caller's snapshot; with None, the repository is read here, only when
/// needed.
///
/// Every read the decision needs comes first; then the tag is looked up again and removed in the
/// very next call, so a push that moves the tag has one round trip to slip in (reported as
/// `tag_moved` when it lands before the last look-up). A removal that fails in a way a retry may
/// fix is retried only after a new look-up.
#[allow(clippy::too_many_arguments)]
pub async fn remove_cache_tag<R: Registry>(
    registry: &R,
    repository: &str,
    tag: &str,
    expected_digest: Option<&str>,
    pushed_before: Option<i64>,
    known: Option<&KnownRepository<'_>>,
    dry_run: bool,
    audit: &dyn AuditTrail,
) -> Result<TagRun, PruneError> {
    let writer = (!dry_run).then_some(registry);
    judge_cache_tag(
        registry,
        writer,
        repository,
        tag,
        expected_digest,
        pushed_before,
        None,
        known,
        audit,
    )
    .await
}

/// What [`remove_cache_tag`] would do, over a registry it can only read: `WouldRemove` or why it
/// is kept (the savings report's and `plan`'s tag verdicts).
pub async fn judge_tag_removal<R: RegistryReader>(
    reader: &R,
    repository: &str,
    tag: &str,
    expected_digest: Option<&str>,
    pushed_before: Option<i64>,
    known: Option<&KnownRepository<'_>>,
) -> Result<TagRun, PruneError> {
    // Without a writer nothing is sent, so there is nothing to settle or audit.
    judge_cache_tag(
        reader,
        None::<&ReadOnly>,
        repository,
        tag,
        expected_digest,
        pushed_before,
        None,
        known,
        &NoAudit,
    )
    .await
}

/// The one implementation: reads through `registry`, removes through `writer`; without a writer
/// it only says what it would do. When the removal takes the image (its last tag), the image's
/// referrers (signatures) are deleted right after, re-checked like any deletion: each only while
/// untagged and ACTIVE, and only once the image is gone.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn judge_cache_tag<R: RegistryReader, W: RegistryWriter>(
    registry: &R,
    writer: Option<&W>,
    repository: &str,
    tag: &str,
    expected_digest: Option<&str>,
    pushed_before: Option<i64>,
    used_before: Option<i64>,
    known: Option<&KnownRepository<'_>>,
    audit: &dyn AuditTrail,
) -> Result<TagRun, PruneError> {
    let mut riders = Vec::new();
    let mut run = judge_tag_only(
        registry,
        writer,
        repository,
        tag,
        expected_digest,
        pushed_before,
        used_before,
        known,
        audit,
        &mut riders,
    )
    .await?;
    // (A removal left unconfirmed is an error, not an outcome: its referrers stay, orphans once
    // the image is gone; the retry finds the tag gone and cannot tell whose they were.)
    let took_image = matches!(
        run.outcome,
        TagOutcome::Removed {
            image_deleted: true
        }
    );
    if riders.is_empty() {
        return Ok(run);
    }
    if let (
        TagOutcome::WouldRemove {
            image_deleted: true,
        },
        None,
    ) = (&run.outcome, writer)
    {
        // A dry run's would-be deletions are in the audit trail like the prune path's.
        audit.manifests(&RepositoryRun {
            repository: repository.to_owned(),
            dry_run: true,
            would_delete: riders.clone(),
            ..Default::default()
        });
        run.referrers = Some(ReferrersRun {
            would_delete: riders.into_iter().map(|r| r.digest).collect(),
            ..Default::default()
        });
    } else if let (true, Some(writer)) = (took_image, writer) {
        run.referrers = Some(delete_referrers(registry, writer, repository, riders, audit).await);
    }
    Ok(run)
}

/// Deletes the referrers of an image a tag removal took, in one re-checked batch (the planner
/// kept the tag when they would not fit one): the subject is looked up with them, and a referrer
/// goes only when its subject is gone and it is still untagged and ACTIVE.
async fn delete_referrers<R: RegistryReader, W: RegistryWriter>(
    registry: &R,
    writer: &W,
    repository: &str,
    riders: Vec<PlannedDeletion>,
    audit: &dyn AuditTrail,
) -> ReferrersRun {
    let digests: Vec<String> = riders.iter().map(|r| r.digest.clone()).collect();
    let run = Run {
        deadline: Deadline::NEVER,
        audit,
    };
    match recheck_and_delete(registry, Some(writer), repository, riders, run).await {
        Ok(done) => ReferrersRun {
            deleted: done.deleted.into_iter().map(|d| d.digest).collect(),
            would_delete: vec![],
            already_deleted: done.already_deleted,
            kept: done.kept,
            error: (!done.failures.is_empty()).then(|| {
                let failed: Vec<String> = done
                    .failures
                    .iter()
                    .map(|f| format!("{} ({}: {})", f.image, f.code, f.message))
                    .collect();
                format!("referrer(s) not deleted: {}", failed.join(", "))
            }),
        },
        Err(err) => ReferrersRun {
            error: Some(format!(
                "referrer(s) {} of the removed image not deleted: {err}",
                digests.join(", ")
            )),
            ..Default::default()
        },
    }
}

/// [`judge_cache_tag`] without the referrers: `riders` receives those of the image, once known,
/// when removing the tag would take it.
#[allow(clippy::too_many_arguments)]
async fn judge_tag_only<R: RegistryReader, W: RegistryWriter>(
    registry: &R,
    writer: Option<&W>,
    repository: &str,
    tag: &str,
    expected_digest: Option<&str>,
    pushed_before: Option<i64>,
    used_before: Option<i64>,
    known: Option<&KnownRepository<'_>>,
    audit: &dyn AuditTrail,
    riders: &mut Vec<PlannedDeletion>,
) -> Result<TagRun, PruneError> {
    let report = |digest: Option<String>, image: Option<&ImageRecord>, outcome| TagRun {
        repository: repository.to_owned(),
        tag: tag.to_owned(),
        digest,
        other_tags: image
            .map(|i| i.tags.iter().filter(|t| *t != tag).cloned().collect())
            .unwrap_or_default(),
        outcome,
        removal: None,
        referrers: None,
    };
    let image = match registry.describe_tag(repository, tag).await {
        Ok(Some(image)) => image,
        Ok(None) => return Ok(report(None, None, TagOutcome::TagNotFound)),
        Err(err) if err.is_repository_gone() => {
            return Ok(report(None, None, TagOutcome::RepositoryNotFound))
        }
        Err(err) => return Err(err.into()),
    };
    let judged = image.digest.clone();
    let keep = |image: &ImageRecord, reason| {
        Ok(report(
            Some(judged.clone()),
            Some(image),
            TagOutcome::Kept(reason),
        ))
    };
    if let Some(expected) = expected_digest {
        if expected != judged {
            let moved = KeepReason::TagMoved {
                now: judged.clone(),
            };
            return Ok(report(
                Some(expected.to_owned()),
                Some(&image),
                TagOutcome::Kept(moved),
            ));
        }
    }
    if let Some(reason) = refusal(&image, pushed_before, used_before) {
        return keep(&image, reason);
    }
    let settled_by_metadata = image.artifact_media_type.is_some()
        && is_single_manifest_type(image.manifest_media_type.as_deref());
    let mut lookup_is_old = false;
    // A digest names fixed content: a manifest the caller's snapshot read is not read again (each
    // read is a pull).
    let from_snapshot = known.and_then(|known| known.manifests.get(&judged));
    let manifest = if settled_by_metadata {
        None
    } else if let Some(kind) = from_snapshot {
        Some(kind.clone())
    } else {
        lookup_is_old = true;
        reads::read_manifests(
            registry,
            repository,
            std::slice::from_ref(&judged),
            Deadline::NEVER,
        )
        .await?
        .unwrap_or_default()
        .kinds
        .remove(&judged)
    };
    if let Err(reason) = classify(&image, manifest.as_ref()) {
        return keep(&image, reason);
    }

    // Some(None): known to be unreferenced; None: not known yet.
    let mut reference: Option<Option<String>> =
        known.map(|known| known.references.get(&judged).cloned());
    let mut current = image;
    let mut attempts = 0;
    let mut sent = false;
    loop {
        if lookup_is_old {
            let looked_up = match registry.describe_tag(repository, tag).await {
                Ok(looked_up) => looked_up,
                Err(err) if sent => {
                    let err = err.into();
                    return settle_lost_removal(registry, repository, tag, &current, audit, err)
                        .await;
                }
                Err(err) => return Err(err.into()),
            };
            let previous = current.clone();
            current = match looked_up {
                Some(now) => now,
                // Our previous attempt most likely removed it before its answer was lost.
                None if sent => {
                    let image_deleted = current.tags.len() <= 1;
                    return Ok(report(
                        Some(judged.clone()),
                        Some(&current),
                        TagOutcome::Removed { image_deleted },
                    ));
                }
                None => return Ok(report(Some(judged.clone()), None, TagOutcome::TagNotFound)),
            };
            if current.digest != judged && sent {
                // Our earlier removal took effect before its answer was lost, and a push has
                // put the tag on another image since: the judged image lost the tag (and went,
                // when it was its last). Said so, so that its audit line is written.
                let image_deleted = previous.tags.iter().all(|t| t == tag);
                return Ok(report(
                    Some(judged.clone()),
                    Some(&previous),
                    TagOutcome::Removed { image_deleted },
                ));
            }
            if current.digest != judged {
                let moved = KeepReason::TagMoved {
                    now: current.digest.clone(),
                };
                return keep(&current, moved);
            }
            // The last look-up decides (rule 8): archived since the first look-up, it stays.
            if let Some(reason) = refusal(&current, pushed_before, used_before) {
                return keep(&current, reason);
            }
        }
        let image_deleted = current.tags.iter().all(|t| t == tag);
        if image_deleted {
            let index = match &reference {
                Some(known) => known.clone(),
                None => {
                    // Fails closed: an unreadable repository or index is an error.
                    let snapshot = take_snapshot(registry, repository, Deadline::NEVER).await?;
                    let references = referenced_digests(&snapshot.manifests);
                    *riders =
                        referrers_of(&judged, &snapshot.images, &snapshot.manifests, &references);
                    reference = Some(references.get(&judged).cloned());
                    lookup_is_old = true;
                    continue;
                }
            };
            if let Some(index) = index {
                return keep(&current, KeepReason::ReferencedByIndex { index });
            }
            if let Some(known) = known {
                *riders = referrers_of(&judged, known.images, known.manifests, known.references);
                if let Some(shown) = known.confirmed {
                    if riders.iter().any(|r| !shown.contains(&r.digest)) {
                        return keep(&current, KeepReason::NotConfirmed);
                    }
                }
            }
            // Its referrers go right after it, in one batch: more than a batch holds and the
            // tag stays (deleting the image would orphan some of them).
            if riders.len() >= BATCH_SIZE {
                return keep(
                    &current,
                    KeepReason::TooManyReferrers {
                        count: riders.len(),
                    },
                );
            }
        }
        let Some(writer) = writer else {
            return Ok(report(
                Some(judged.clone()),
                Some(&current),
                TagOutcome::WouldRemove { image_deleted },
            ));
        };
        attempts += 1;
        match writer.remove_tag(repository, tag).await {
            Ok(true) => {
                return Ok(report(
                    Some(judged.clone()),
                    Some(&current),
                    TagOutcome::Removed { image_deleted },
                ))
            }
            Ok(false) => return Ok(report(Some(judged.clone()), None, TagOutcome::TagNotFound)),
            Err(RegistryError::Transient { .. }) if attempts < retry::ATTEMPTS => {
                sent = true;
                lookup_is_old = true;
                retry::pause(attempts).await;
            }
            // This attempt's answer, or an earlier one's, may have been lost after it took effect.
            Err(err) if sent || matches!(err, RegistryError::Transient { .. }) => {
                return settle_lost_removal(registry, repository, tag, &current, audit, err.into())
                    .await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Before giving up after a removal whose answer may have been lost: one more look-up. The tag
/// gone: it was removed (the caller writes its `tag_removed` line). Still there: not removed, the
/// error stands. The look-up failing too: a `tag_remove_unconfirmed` line (ECR has no undelete:
/// never silence), then the error.
async fn settle_lost_removal<R: RegistryReader>(
    registry: &R,
    repository: &str,
    tag: &str,
    current: &ImageRecord,
    audit: &dyn AuditTrail,
    err: PruneError,
) -> Result<TagRun, PruneError> {
    let image_deleted = current.tags.iter().all(|t| t == tag);
    let run = |outcome| TagRun {
        repository: repository.to_owned(),
        tag: tag.to_owned(),
        digest: Some(current.digest.clone()),
        other_tags: current.tags.iter().filter(|t| *t != tag).cloned().collect(),
        outcome,
        removal: None,
        referrers: None,
    };
    match registry.describe_tag(repository, tag).await {
        Ok(None) => Ok(run(TagOutcome::Removed { image_deleted })),
        // On another image now: ours lost it (a push has put it elsewhere since).
        Ok(Some(now)) if now.digest != current.digest => {
            Ok(run(TagOutcome::Removed { image_deleted }))
        }
        Ok(Some(_)) => Err(err),
        Err(_) => {
            audit.tags(&[run(TagOutcome::RemoveUnconfirmed { image_deleted })]);
            Err(err)
        }
    }
}

/// Why the image a tag names may not lose that tag now, if it may not: only ACTIVE images
/// (removing an archived image's last tag would delete it, rule 8; any other tag of it could be
/// removed, but an archived cache is not worth the exception), and only one pushed before
/// `pushed_before`.
fn refusal(
    image: &ImageRecord,
    pushed_before: Option<i64>,
    used_before: Option<i64>,
) -> Option<KeepReason> {
    if image.status != ImageStatus::Active {
        return Some(KeepReason::NotActive {
            status: image.status,
        });
    }
    // Judged by when it was last used (unused for days, least recently used): a pull since
    // then is a build using it now.
    if let Some(judged) = used_before {
        if image.last_used_at().is_none_or(|used| used > judged) {
            return Some(KeepReason::UsedSinceJudged {
                used_at: image.last_used_at(),
            });
        }
    }
    match (pushed_before, image.pushed_at) {
        (Some(event_at), pushed_at) if pushed_at.is_none_or(|p| p > event_at) => {
            Some(KeepReason::PushedAfterEvent {
                pushed_at,
                event_at,
            })
        }
        _ => None,
    }
}

/// How many listings of one repository's branches one `LiveBranches` makes at most before it
/// gives up finding one complete (a repository whose branches keep changing while listed).
pub const MAX_BRANCH_LISTINGS: usize = 3;

/// Which branches of one GitHub repository exist, listed until a listing is found complete.
/// Branch names map to tags many-to-one (`feature/x` and `feature-x`), so a tag's owner can only
/// be found in a listing, and a paged listing can miss a branch: one ahead of its reading
/// position deleted before it ends shifts the rest back onto a page already read. A tag has no
/// live owner only when no listing so far holds one and one listing shows no sign of a shift
/// against the next (`core::branch::listing_complete`); every owner any listing names counts.
/// Listings and a failure are kept: one `LiveBranches` lists at most `MAX_BRANCH_LISTINGS` times.
pub struct LiveBranches<'g, B> {
    github: &'g B,
    github_repository: String,
    listings: Vec<Vec<String>>,
    failed: Option<BranchListError>,
}

impl<'g, B: BranchLister> LiveBranches<'g, B> {
    pub fn new(github: &'g B, github_repository: &str) -> Self {
        LiveBranches {
            github,
            github_repository: github_repository.to_owned(),
            listings: Vec::new(),
            failed: None,
        }
    }

    /// Starts from a listing already made (the sweep's).
    pub fn listed(github: &'g B, github_repository: &str, first: Vec<String>) -> Self {
        let mut live = LiveBranches::new(github, github_repository);
        live.listings.push(first);
        live
    }

    /// The branch that exists and owns `tag`, if any listing holds one; None once a listing
    /// holding none is found complete by the next. A repository still changing after
    /// `MAX_BRANCH_LISTINGS` listings, or no time left for the next listing, is an `Unavailable`
    /// error (a retry may find it quiet).
    pub async fn owner_of(
        &mut self,
        tag: &str,
        cache_tags: &crate::core::cache_tags::CacheTags,
        deadline: Deadline<'_>,
    ) -> Result<Option<String>, BranchListError> {
        for i in 0..MAX_BRANCH_LISTINGS {
            if self.listings.len() == i {
                if let Some(err) = &self.failed {
                    return Err(err.clone());
                }
                if !deadline.time_left() {
                    return Err(BranchListError::Unavailable {
                        repository: self.github_repository.clone(),
                        message: "no time left to list its branches again".into(),
                    });
                }
                match self.github.branches(&self.github_repository).await {
                    Ok(branches) => self.listings.push(branches),
                    Err(err) => {
                        self.failed = Some(err.clone());
                        return Err(err);
                    }
                }
            }
            if let Some(owner) = cache_tags.branch_with_tag(tag, &self.listings[i]) {
                return Ok(Some(owner.to_owned()));
            }
            if i > 0 && listing_complete(&self.listings[i - 1], &self.listings[i]) {
                return Ok(None);
            }
        }
        Err(BranchListError::Unavailable {
            repository: self.github_repository.clone(),
            message: format!(
                "its branches changed while they were listed {MAX_BRANCH_LISTINGS} times, so \
                 no listing is known to be complete"
            ),
        })
    }
}

/// Whether `image` is a BuildKit cache manifest: by `artifactMediaType`, else by reading it.
async fn cache_or_why<R: RegistryReader>(
    registry: &R,
    repository: &str,
    image: &ImageRecord,
) -> Result<Result<(), KeepReason>, PruneError> {
    let manifest = if image.artifact_media_type.is_none() {
        let read = crate::app::reads::read_manifests(
            registry,
            repository,
            std::slice::from_ref(&image.digest),
            crate::app::deadline::Deadline::NEVER,
        )
        .await?
        .unwrap_or_default();
        read.kinds.get(&image.digest).cloned()
    } else {
        None
    };
    Ok(classify(image, manifest.as_ref()).map(|_| ()))
}

/// Why a merged group's cache was not promoted.
fn not_promoted(repository: &str, tag: &str, digest: Option<String>, reason: KeepReason) -> TagRun {
    TagRun {
        repository: repository.to_owned(),
        tag: tag.to_owned(),
        digest,
        other_tags: vec![],
        outcome: TagOutcome::Kept(reason),
        removal: None,
        referrers: None,
    }
}

/// Cache promotion: points the base branch's cache tag `to` at the merged group's cache manifest
/// (named by `from`), with no layer copied, only when the group's manifest is an ACTIVE BuildKit
/// cache manifest pushed after the base's current one; both tags are looked up again right before
/// the move, which is audited like a deletion. The group's own tag is removed afterwards by the
/// branch path (its image stays: the base tag names it now). None: the group has no such tag
/// (its template was not built), nothing to promote.
pub async fn promote_cache<R: Registry>(
    registry: &R,
    repository: &str,
    from: &str,
    to: &str,
    dry_run: bool,
    audit: &dyn AuditTrail,
) -> Result<Option<TagRun>, PruneError> {
    let Some(group) = registry.describe_tag(repository, from).await? else {
        return Ok(None);
    };
    promote_judged(registry, repository, from, to, group, dry_run, audit)
        .await
        .map(Some)
}

/// [`promote_cache`] once the group's tag was found.
async fn promote_judged<R: Registry>(
    registry: &R,
    repository: &str,
    from: &str,
    to: &str,
    group: ImageRecord,
    dry_run: bool,
    audit: &dyn AuditTrail,
) -> Result<TagRun, PruneError> {
    if group.status != ImageStatus::Active {
        return Ok(not_promoted(
            repository,
            to,
            Some(group.digest),
            KeepReason::NotActive {
                status: group.status,
            },
        ));
    }
    // The group's manifest must be BuildKit cache.
    if let Err(reason) = cache_or_why(registry, repository, &group).await? {
        return Ok(not_promoted(repository, to, Some(group.digest), reason));
    }
    let base = registry.describe_tag(repository, to).await?;
    if let Some(base) = &base {
        // The base tag naming something else than cache (an image someone tagged so) is not
        // ours to move.
        if base.digest != group.digest {
            if let Err(reason) = cache_or_why(registry, repository, base).await? {
                return Ok(not_promoted(repository, to, Some(group.digest), reason));
            }
        }
        if base.digest == group.digest {
            return Ok(not_promoted(
                repository,
                to,
                Some(group.digest),
                KeepReason::AlreadyPromoted,
            ));
        }
        // Only a newer cache replaces the base's: pushed strictly after it.
        if !matches!((base.pushed_at, group.pushed_at), (Some(b), Some(g)) if g > b) {
            return Ok(not_promoted(
                repository,
                to,
                Some(group.digest),
                KeepReason::BaseCacheNewer {
                    base_pushed_at: base.pushed_at,
                    group_pushed_at: group.pushed_at,
                },
            ));
        }
    }
    // The group's manifest bytes, read before the last look-up, so that PutImage is the very
    // next call after it (a push landing in between is the only race left, as for removals).
    let read = registry
        .read_manifests(repository, std::slice::from_ref(&group.digest))
        .await?;
    let Some(ManifestRead::Body { body, media_type }) = read.get(&group.digest) else {
        return Ok(not_promoted(
            repository,
            to,
            Some(group.digest),
            KeepReason::UnknownType {
                detail: "the merged group's manifest could not be read".into(),
            },
        ));
    };
    // The last look-up: both tags still name what was judged (the group's first, then the
    // base's, then the move).
    let group_now = registry.describe_tag(repository, from).await?;
    let base_now = registry.describe_tag(repository, to).await?;
    let moved = base_now.as_ref().map(|i| &i.digest) != base.as_ref().map(|i| &i.digest)
        || group_now.as_ref().map(|i| &i.digest) != Some(&group.digest)
        || group_now.is_some_and(|g| g.status != ImageStatus::Active);
    if moved {
        return Ok(not_promoted(
            repository,
            to,
            Some(group.digest),
            KeepReason::TagMoved {
                now: base_now.map(|i| i.digest).unwrap_or_default(),
            },
        ));
    }
    let previous = base.map(|b| b.digest);
    let outcome = if dry_run {
        TagOutcome::WouldPromote {
            from: previous.clone(),
        }
    } else {
        match registry
            .put_tag(repository, to, &group.digest, body, media_type.as_deref())
            .await
        {
            Ok(()) => {}
            // The answer may be lost after the move took effect: one look-up settles it, so a
            // move that happened is audited now (its retry would find it already done).
            Err(err @ RegistryError::Transient { .. }) => {
                match registry.describe_tag(repository, to).await {
                    Ok(Some(now)) if now.digest == group.digest => {}
                    _ => return Err(err.into()),
                }
            }
            Err(err) => return Err(err.into()),
        }
        TagOutcome::Promoted {
            from: previous.clone(),
        }
    };
    let run = TagRun {
        repository: repository.to_owned(),
        tag: to.to_owned(),
        digest: Some(group.digest),
        other_tags: vec![],
        outcome,
        removal: None,
        referrers: None,
    };
    audit.tags(std::slice::from_ref(&run));
    Ok(run)
}
