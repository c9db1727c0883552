//! Pruning one repository: snapshot → read manifests → plan → for each batch of ≤100, re-check
//! its tags and delete it at once. Every snapshot read happens before any delete, and any read
//! error aborts the repository (fail closed).

use std::collections::{BTreeSet, HashMap, HashSet};

use thiserror::Error;

use crate::core::manifest::{is_single_manifest_type, Blob, ManifestKind};
use crate::core::plan::{self, ImageRecord, ImageStatus, KeptImage, PlanSettings, PlannedDeletion};

use super::audit::{AuditTrail, NoAudit};
use super::deadline::Deadline;
pub use super::outcome::RepositoryRun;
use super::ports::{
    ImageFailure, ReadOnly, Registry, RegistryError, RegistryReader, RegistryWriter, BATCH_SIZE,
};
use super::{reads, retry};

/// How a use case runs: the time it has (asked before every read and every delete batch) and
/// where its audit records go as each deleting call returns.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub deadline: Deadline<'a>,
    pub audit: &'a dyn AuditTrail,
}

impl Run<'static> {
    /// No deadline, no audit trail.
    pub const UNBOUNDED: Run<'static> = Run {
        deadline: Deadline::NEVER,
        audit: &NoAudit,
    };
}

#[derive(Debug, Clone, Copy)]
pub struct PruneSettings {
    pub dry_run: bool,
    pub max_deletions: usize,
    /// Read every manifest of the repository to estimate the bytes freed. Costs one BatchGetImage
    /// per 100 images, so pushes and the sweep leave it off unless `ESTIMATE_RECLAIMED_BYTES`;
    /// the CLI turns it on.
    pub estimate_reclaimed: bool,
    /// A dry run that reports the plan as listed, without looking its candidates up again (the
    /// savings report: nothing is deleted and the listing is seconds old, so the look-up would
    /// only double the calls). Ignored unless `dry_run`: a deletion is always re-checked.
    pub plan_only: bool,
}

#[derive(Debug, Error)]
pub enum PruneError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("time ran out while reading {repository}; nothing deleted there")]
    OutOfTime { repository: String },
    #[error("index {index} in {repository} could not be read ({reason}); nothing deleted")]
    UnreadableIndex {
        repository: String,
        index: String,
        reason: String,
        /// The listing said the index is ARCHIVED: it stays unreadable until someone restores
        /// it. Any other unreadable index (a failed read, a concurrent delete, no answer) may
        /// read fine on the next try.
        archived: bool,
    },
}

impl PruneError {
    /// See [`RegistryError::is_repository_gone`].
    pub fn is_repository_gone(&self) -> bool {
        matches!(self, PruneError::Registry(e) if e.is_repository_gone())
    }

    /// A condition a retry cannot fix, by evidence: an index the listing says is ARCHIVED (it
    /// stays so until restored), access refused, the repository gone. The repository is skipped
    /// and reported; everything else (an ACTIVE or ACTIVATING index whose read failed, whatever
    /// the failure code) is transient and retried.
    pub fn is_lasting(&self) -> bool {
        match self {
            PruneError::UnreadableIndex { archived, .. } => *archived,
            PruneError::Registry(e) => e.is_lasting(),
            PruneError::OutOfTime { .. } => false,
        }
    }
}

/// Everything known about a repository after the reads: the listing and every manifest read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub images: Vec<ImageRecord>,
    pub manifests: HashMap<String, ManifestKind>,
    /// Config and layer blobs of the manifests read so far.
    pub blobs: HashMap<String, Vec<Blob>>,
}

/// Like [`take_snapshot`], asking `deadline` before each call: out of time is
/// [`PruneError::OutOfTime`], and nothing is deleted.
pub async fn take_snapshot<R: RegistryReader>(
    registry: &R,
    repository: &str,
    deadline: Deadline<'_>,
) -> Result<Snapshot, PruneError> {
    let out_of_time = || PruneError::OutOfTime {
        repository: repository.to_owned(),
    };
    let images = reads::list_images(registry, repository, deadline)
        .await?
        .ok_or_else(out_of_time)?;
    let to_read = plan::manifests_to_read(&images);
    let reads::ManifestsRead {
        kinds: mut manifests,
        mut blobs,
    } = reads::read_manifests(registry, repository, &to_read, deadline)
        .await?
        .ok_or_else(out_of_time)?;
    // Then the referrers (signatures, attestations) the listing does not name a subject for, now
    // that the indexes are known: a cache manifest's referrers are deleted with it.
    let referrers = plan::referrers_to_read(&images, &manifests);
    if !referrers.is_empty() {
        let read = reads::read_manifests(registry, repository, &referrers, deadline)
            .await?
            .ok_or_else(out_of_time)?;
        manifests.extend(read.kinds);
        blobs.extend(read.blobs);
    }

    // Rule 3 depends on knowing every index, of every status: an index we could not read (an
    // archived one may not be readable) may reference a candidate, so the whole repository is
    // left alone.
    for image in &images {
        if is_single_manifest_type(image.manifest_media_type.as_deref()) {
            continue;
        }
        if let Some(ManifestKind::Unreadable { reason }) = manifests.get(&image.digest) {
            return Err(PruneError::UnreadableIndex {
                repository: repository.to_owned(),
                index: image.digest.clone(),
                reason: reason.clone(),
                archived: image.status == ImageStatus::Archived,
            });
        }
    }
    Ok(Snapshot {
        images,
        manifests,
        blobs,
    })
}

/// Like [`prune_repository`], within `run`'s time and writing its audit trail as it goes.
pub async fn prune_repository<R: Registry>(
    registry: &R,
    repository: &str,
    protect_digests: &HashSet<String>,
    settings: PruneSettings,
    run: Run<'_>,
) -> Result<RepositoryRun, PruneError> {
    let snapshot = take_snapshot(registry, repository, run.deadline).await?;
    prune_snapshot(
        registry,
        repository,
        &snapshot,
        protect_digests,
        None,
        settings,
        run,
    )
    .await
}

/// Like [`prune_snapshot`], asking `run.deadline` before each batch: when time runs out, the
/// batches not started are counted in `remaining` and the run says `out_of_time`. With
/// `only_digests`, nothing outside that set is deleted (an operator's confirmed plan). Each
/// batch's deletions go to `run.audit` as soon as its delete call returns, so a later failure
/// still leaves a record of what was deleted.
pub async fn prune_snapshot<R: Registry>(
    registry: &R,
    repository: &str,
    snapshot: &Snapshot,
    protect_digests: &HashSet<String>,
    only_digests: Option<&HashSet<String>>,
    settings: PruneSettings,
    run: Run<'_>,
) -> Result<RepositoryRun, PruneError> {
    prune_snapshot_with(
        registry,
        Some(registry),
        repository,
        snapshot,
        protect_digests,
        only_digests,
        settings,
        run,
    )
    .await
}

/// What [`prune_snapshot`] would do, over a registry it can only read: always a dry run
/// (the would-be deletions, re-checked unless `plan_only`, and their audit lines). The savings
/// report and `plan` are built on this: holding no writer, they cannot delete.
pub async fn plan_snapshot<R: RegistryReader>(
    reader: &R,
    repository: &str,
    snapshot: &Snapshot,
    only_digests: Option<&HashSet<String>>,
    settings: PruneSettings,
    run: Run<'_>,
) -> Result<RepositoryRun, PruneError> {
    let settings = PruneSettings {
        dry_run: true,
        ..settings
    };
    prune_snapshot_with(
        reader,
        None::<&ReadOnly>,
        repository,
        snapshot,
        &HashSet::new(),
        only_digests,
        settings,
        run,
    )
    .await
}

/// The one implementation: reads through `reader`, deletes through `writer`; without a writer
/// it is a dry run whatever `settings` say.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn prune_snapshot_with<R: RegistryReader, W: RegistryWriter>(
    reader: &R,
    writer: Option<&W>,
    repository: &str,
    snapshot: &Snapshot,
    protect_digests: &HashSet<String>,
    only_digests: Option<&HashSet<String>>,
    settings: PruneSettings,
    run: Run<'_>,
) -> Result<RepositoryRun, PruneError> {
    let writer = writer.filter(|_| !settings.dry_run);
    let settings = PruneSettings {
        dry_run: writer.is_none(),
        ..settings
    };
    let (images, manifests) = (&snapshot.images, &snapshot.manifests);
    let mut plan = plan::plan(
        images,
        manifests,
        &PlanSettings {
            protect_digests: protect_digests.clone(),
            max_deletions: settings.max_deletions,
            only_digests: only_digests.cloned(),
        },
    );

    let mut report = RepositoryRun {
        repository: repository.to_owned(),
        dry_run: settings.dry_run,
        images_scanned: images.len(),
        tagged_images: plan.tagged_images,
        images_not_active: images
            .iter()
            .filter(|i| i.status != ImageStatus::Active)
            .count(),
        remaining: plan.remaining,
        orphaned_referrers: plan.orphaned_referrers,
        ..Default::default()
    };

    let planned = std::mem::take(&mut plan.delete);
    if settings.dry_run && settings.plan_only {
        report.would_delete = planned;
        plan.kept.sort_by(|a, b| a.digest.cmp(&b.digest));
        report.kept = plan.kept;
        return Ok(report);
    }
    // Batches of at most 100 that keep each cache manifest with its referrers.
    let batches = plan::batches(planned, BATCH_SIZE);
    for (n, batch) in batches.iter().enumerate() {
        if !run.deadline.time_left() {
            report.out_of_time = true;
            report.remaining += batches[n..].iter().map(Vec::len).sum::<usize>();
            break;
        }
        let done = recheck_and_delete(reader, writer, repository, batch.clone(), run).await?;
        plan.kept.extend(done.kept);
        report.deleted.extend(done.deleted);
        report.would_delete.extend(done.would_delete);
        report.already_deleted.extend(done.already_deleted);
        report.failures.extend(done.failures);
    }
    // What was deleted: a dry run deleted nothing (its would-be bytes are in the audit trail).
    report.deleted_bytes = report
        .deleted
        .iter()
        .filter_map(|d| d.size_bytes)
        .fold(0i64, |sum, size| sum.saturating_add(size));
    plan.kept.sort_by(|a, b| a.digest.cmp(&b.digest));
    report.kept = plan.kept;
    if settings.estimate_reclaimed {
        let gone = report.gone_digests();
        // Out of time for the estimate's reads: no estimate (the deletions stand).
        report.reclaimed_bytes_estimate = if gone.is_empty() {
            Some(0)
        } else {
            estimate_reclaimed(reader, repository, snapshot, &gone, run.deadline).await?
        };
    }
    Ok(report)
}

/// What became of one batch.
#[derive(Debug, Default)]
pub(crate) struct BatchOutcome {
    pub deleted: Vec<PlannedDeletion>,
    pub would_delete: Vec<PlannedDeletion>,
    pub already_deleted: Vec<String>,
    pub kept: Vec<KeptImage>,
    pub failures: Vec<ImageFailure>,
}

/// Re-checks a batch's tags and deletes what is still untagged in the very next call (rule 2).
/// When that call fails in a way a retry may fix (throttle, 5xx, no answer), the batch is
/// re-checked again before the next attempt: an attempt whose answer was lost may have deleted
/// some of it, and a tag may have arrived meanwhile.
pub(crate) async fn recheck_and_delete<R: RegistryReader, W: RegistryWriter>(
    registry: &R,
    writer: Option<&W>,
    repository: &str,
    mut pending: Vec<PlannedDeletion>,
    run: Run<'_>,
) -> Result<BatchOutcome, PruneError> {
    let dry_run = writer.is_none();
    let record = |deleted: &[PlannedDeletion], would_delete: &[PlannedDeletion]| {
        if deleted.is_empty() && would_delete.is_empty() {
            return;
        }
        run.audit.manifests(&RepositoryRun {
            repository: repository.to_owned(),
            dry_run,
            deleted: deleted.to_vec(),
            would_delete: would_delete.to_vec(),
            ..Default::default()
        });
    };
    // Before giving up after a delete call whose answer was lost: a digest it asked for may be
    // gone. Confirmed gone by one more look-up: a `manifest_deleted` line; the look-up failing
    // too: a `manifest_delete_unconfirmed` line. Never silence: ECR has no undelete.
    let settle_lost = |sent: Vec<PlannedDeletion>| async move {
        if sent.is_empty() {
            return;
        }
        let digests: Vec<String> = sent.iter().map(|d| d.digest.clone()).collect();
        match reads::current_tags(registry, repository, &digests).await {
            Ok(current) => {
                let gone: Vec<PlannedDeletion> = sent
                    .into_iter()
                    .filter(|d| !current.contains_key(&d.digest))
                    .collect();
                record(&gone, &[]);
            }
            Err(_) => run.audit.manifests(&RepositoryRun {
                repository: repository.to_owned(),
                dry_run,
                delete_unconfirmed: sent,
                ..Default::default()
            }),
        }
    };
    let mut outcome = BatchOutcome::default();
    // Sent in an attempt that failed: if they are gone now, that attempt most likely did it.
    let mut in_flight: HashMap<String, PlannedDeletion> = HashMap::new();
    for attempt in 1..=retry::ATTEMPTS {
        let digests: Vec<String> = pending.iter().map(|d| d.digest.clone()).collect();
        // A referrer's subject outside the batch (a tag removal took it) is looked up too: the
        // referrer goes only when the subject is gone now. Alone, so that its ImageNotFound
        // (the usual answer) says "gone" in one call instead of a listing of the repository.
        let outside: BTreeSet<String> = pending
            .iter()
            .filter_map(|d| d.subject.clone())
            .filter(|s| !digests.contains(s))
            .collect();
        let asked: HashSet<String> = outside.iter().cloned().collect();
        let mut current = match reads::current_tags(registry, repository, &digests).await {
            Ok(current) => current,
            Err(err) => {
                settle_lost(in_flight.into_values().collect()).await;
                return Err(err.into());
            }
        };
        // The subjects last, right before the delete: the window for one to come back is the
        // same one round trip as for the batch itself.
        for subject in &outside {
            match registry
                .current_tags(repository, std::slice::from_ref(subject))
                .await
            {
                Ok(now) => current.extend(now),
                Err(RegistryError::ImageNotFound { .. }) => {}
                Err(err) => {
                    settle_lost(in_flight.into_values().collect()).await;
                    return Err(err.into());
                }
            }
        }
        let checked = plan::recheck(pending, &current, &asked);
        let mut deleted_before = Vec::new();
        for digest in checked.gone {
            match in_flight.remove(&digest) {
                Some(deletion) => deleted_before.push(deletion),
                None => outcome.already_deleted.push(digest),
            }
        }
        // Gone after an attempt whose answer was lost: that attempt most likely deleted them.
        record(&deleted_before, &[]);
        outcome.deleted.extend(deleted_before);
        outcome.kept.extend(checked.kept);
        let Some(writer) = writer else {
            record(&[], &checked.delete);
            outcome.would_delete = checked.delete;
            return Ok(outcome);
        };
        if checked.delete.is_empty() {
            return Ok(outcome);
        }
        let digests: Vec<String> = checked.delete.iter().map(|d| d.digest.clone()).collect();
        match writer.delete_digests(repository, &digests).await {
            Ok(result) => {
                let deleted: HashSet<&String> = result.deleted.iter().collect();
                let (done, _): (Vec<_>, Vec<_>) = checked
                    .delete
                    .into_iter()
                    .partition(|d| deleted.contains(&d.digest));
                record(&done, &[]);
                outcome.deleted.extend(done);
                outcome.already_deleted.extend(result.already_gone);
                outcome.failures.extend(result.failures);
                return Ok(outcome);
            }
            Err(RegistryError::Transient { .. })
                if attempt < retry::ATTEMPTS && run.deadline.time_left() =>
            {
                in_flight.extend(checked.delete.iter().map(|d| (d.digest.clone(), d.clone())));
                pending = checked.delete;
                retry::pause(attempt).await;
            }
            Err(err) => {
                if matches!(err, RegistryError::Transient { .. }) {
                    // The call may have taken effect before its answer was lost.
                    in_flight.extend(checked.delete.iter().map(|d| (d.digest.clone(), d.clone())));
                    settle_lost(in_flight.into_values().collect()).await;
                }
                return Err(err.into());
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Reads the blobs of every single manifest not read yet, then applies the pure estimate; None
/// when time ran out before the reads were done.
async fn estimate_reclaimed<R: RegistryReader>(
    registry: &R,
    repository: &str,
    snapshot: &Snapshot,
    gone: &[String],
    deadline: Deadline<'_>,
) -> Result<Option<u64>, PruneError> {
    let unread: Vec<String> = snapshot
        .images
        .iter()
        .filter(|i| is_single_manifest_type(i.manifest_media_type.as_deref()))
        .filter(|i| !snapshot.blobs.contains_key(&i.digest))
        .map(|i| i.digest.clone())
        .collect();
    let Some(read) = reads::read_manifests(registry, repository, &unread, deadline).await? else {
        return Ok(None);
    };
    let mut blobs = snapshot.blobs.clone();
    blobs.extend(read.blobs);
    Ok(Some(crate::core::reclaim::reclaimed_bytes(gone, &blobs)))
}
