//! The pruning decision: repository snapshot + manifests read + settings → plan with a reason for
//! every candidate. No I/O; every safety rule of DESIGN.md §3 (1, 3, 7) is decided here, rule 2 is
//! decided here and again by [`apply_recheck`] just before deleting.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use super::manifest::{is_single_manifest_type, ManifestKind, BUILDKIT_CACHE_CONFIG, OCI_MANIFEST};

/// ECR's storage class state of an image. Only ACTIVE images are ever deleted (rule 8); images of
/// every status count for index references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImageStatus {
    /// Also what an image without a status is (ECR before the archive class, emulators).
    #[default]
    Active,
    Archived,
    Activating,
    /// A status this version does not know: treated like ARCHIVED.
    Other,
}

impl ImageStatus {
    /// ECR's `imageStatus` string; absent means ACTIVE.
    pub fn from_ecr(status: Option<&str>) -> Self {
        match status {
            None | Some("ACTIVE") => ImageStatus::Active,
            Some("ARCHIVED") => ImageStatus::Archived,
            Some("ACTIVATING") => ImageStatus::Activating,
            Some(_) => ImageStatus::Other,
        }
    }
}

/// One image as DescribeImages reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageRecord {
    pub digest: String,
    pub tags: Vec<String>,
    pub status: ImageStatus,
    /// Seconds since the Unix epoch.
    pub pushed_at: Option<i64>,
    /// ECR's `lastRecordedPullTime` (seconds since the Unix epoch), when it has one.
    pub last_pulled_at: Option<i64>,
    pub size_bytes: Option<i64>,
    pub manifest_media_type: Option<String>,
    pub artifact_media_type: Option<String>,
    /// The manifest this image refers to, when it is an OCI referrer (a signature, an
    /// attestation) and the listing says so (ECR's `subjectManifestDigest`); else read.
    pub subject: Option<String>,
}

impl ImageRecord {
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    /// The later of the push and the last recorded pull: when a build last used this image.
    /// Unknown when the push time is unknown (then nothing is judged by age).
    pub fn last_used_at(&self) -> Option<i64> {
        self.pushed_at.map(|pushed| {
            self.last_pulled_at
                .map_or(pushed, |pulled| pulled.max(pushed))
        })
    }
}

/// How a manifest was recognised as BuildKit cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifiedBy {
    ArtifactMediaType,
    Manifest,
}

/// Why a digest is deleted. Serialized as the sentence reports have always carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeleteReason {
    #[serde(rename = "untagged BuildKit cache manifest, not referenced by any index")]
    UntaggedUnreferencedCache,
    #[serde(rename = "referrer (signature or attestation) of a cache manifest deleted with it")]
    ReferrerOfDeletedCache,
}

impl std::fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeleteReason::UntaggedUnreferencedCache => {
                "untagged BuildKit cache manifest, not referenced by any index"
            }
            DeleteReason::ReferrerOfDeletedCache => {
                "referrer (signature or attestation) of a cache manifest deleted with it"
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedDeletion {
    pub digest: String,
    pub size_bytes: Option<i64>,
    pub pushed_at: Option<i64>,
    pub reason: DeleteReason,
    pub classified_by: ClassifiedBy,
    /// For a referrer (signature, attestation) deleted with its subject: that cache manifest.
    /// It is deleted only in the same re-checked batch as its subject, and only when the
    /// subject is deleted (or already gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// Why an untagged image is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum KeepReason {
    /// Referenced by an index or manifest list in the repository (multi-arch child,
    /// attestation, nested index).
    ReferencedByIndex { index: String },
    /// Not a BuildKit cache manifest (application image, index, attestation, ...).
    NotCacheManifest { media_type: Option<String> },
    /// Type could not be established; unknown is never deleted.
    UnknownType { detail: String },
    /// The digest the triggering event pushed; the next event or sweep will see it again.
    TriggerDigest,
    /// Had no tag in the snapshot but has one now.
    GainedTag { tags: Vec<String> },
    /// The tag was pushed again since the snapshot: it now names a fresh image.
    TagMoved { now: String },
    /// ARCHIVED or ACTIVATING: only ACTIVE images are deleted (rule 8).
    NotActive { status: ImageStatus },
    /// Another branch that still exists maps to the same cache tag: it owns the cache.
    BranchExists { branch: String },
    /// Deletable now, but not in the plan the operator confirmed (`ecr-cache-pruner sweep`).
    NotConfirmed,
    /// Pushed after the event that made the tag removable (a branch deletion, or the
    /// branch listing a sweep judged by): a branch of that name made it since, so it is fresh.
    PushedAfterEvent {
        pushed_at: Option<i64>,
        event_at: i64,
    },
    /// The branch list could not be read for a lasting reason (the GitHub repository does not
    /// exist, or the token cannot see it): no branch is judged gone.
    BranchesUnknown { error: String },
    /// The closed pull request is open again (re-opened): its cache is its own again.
    PullRequestOpen { number: u64 },
    /// A referrer whose subject (a cache manifest) was kept at the last look-up.
    SubjectKept { subject: String },
    /// A cache manifest with more referrers than one delete batch holds: deleting it would
    /// orphan some of them, so it is kept whole.
    TooManyReferrers { count: usize },
    /// Judged by its last use (unused, least recently used), then pushed or pulled again before
    /// the last look-up: a build is using it.
    UsedSinceJudged { used_at: Option<i64> },
    /// Cache promotion: the base branch's tag already names the group's cache.
    AlreadyPromoted,
    /// Cache promotion: the base branch's cache was pushed at or after the group's (or a push
    /// time is unknown): it stays.
    BaseCacheNewer {
        base_pushed_at: Option<i64>,
        group_pushed_at: Option<i64>,
    },
}

/// In words, for people (the JSON keeps the codes).
impl std::fmt::Display for KeepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeepReason::ReferencedByIndex { index } => write!(
                f,
                "referenced by the index {} (a multi-arch child or its attestation)",
                &index[..index.len().min(19)]
            ),
            KeepReason::NotCacheManifest { .. } => {
                f.write_str("not BuildKit cache (an application image or an index)")
            }
            KeepReason::UnknownType { detail } => {
                write!(f, "type unknown ({detail}), so never deleted")
            }
            KeepReason::TriggerDigest => f.write_str("the cache this push just made"),
            KeepReason::GainedTag { tags } => {
                write!(f, "tagged since it was listed ({})", tags.join(", "))
            }
            KeepReason::TagMoved { .. } => {
                f.write_str("its tag was pushed again since: it names a fresh image")
            }
            KeepReason::NotActive { .. } => {
                f.write_str("archived (or being restored), never deleted")
            }
            KeepReason::BranchExists { branch } => {
                write!(f, "the branch {branch} still exists and owns this cache")
            }
            KeepReason::NotConfirmed => f.write_str("not in the plan you confirmed"),
            KeepReason::PushedAfterEvent { .. } => {
                f.write_str("pushed after the event that made it removable: a fresh cache")
            }
            KeepReason::BranchesUnknown { .. } => {
                f.write_str("the branch list cannot be read, so no branch is judged gone")
            }
            KeepReason::PullRequestOpen { number } => {
                write!(f, "pull request #{number} is open again")
            }
            KeepReason::UsedSinceJudged { .. } => {
                f.write_str("pulled or pushed since it was judged unused: a build is using it")
            }
            KeepReason::AlreadyPromoted => f.write_str("the base branch already has this cache"),
            KeepReason::TooManyReferrers { count } => write!(
                f,
                "{count} signatures or attestations, more than one delete batch: kept whole"
            ),
            KeepReason::BaseCacheNewer { .. } => {
                f.write_str("the base branch's cache is not older than the merged group's")
            }
            KeepReason::SubjectKept { subject } => write!(
                f,
                "referrer of {}, which is kept",
                &subject[..subject.len().min(19)]
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptImage {
    pub digest: String,
    #[serde(flatten)]
    pub reason: KeepReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Plan {
    /// Oldest first.
    pub delete: Vec<PlannedDeletion>,
    /// Untagged images that are kept, with why. Tagged images are only counted.
    pub kept: Vec<KeptImage>,
    pub tagged_images: usize,
    /// Deletable candidates left for a later invocation because of the deletion cap.
    pub remaining: usize,
    /// Referrers (signatures, attestations) whose subject is no longer in the repository.
    pub orphaned_referrers: usize,
}

/// The most ids one ECR delete call takes (the ports' batch size): a cache manifest and its
/// referrers must fit one.
const BATCH_LIMIT: usize = 100;

/// Inputs the planner needs besides the snapshot.
#[derive(Debug, Clone, Default)]
pub struct PlanSettings {
    /// Digests never to delete in this run (the triggering event's own digests).
    pub protect_digests: HashSet<String>,
    pub max_deletions: usize,
    /// When set, only these digests may be deleted: the plan an operator was shown and
    /// confirmed. The run deletes the intersection of that plan and its own, never more.
    pub only_digests: Option<HashSet<String>>,
}

/// Digests whose manifest must be read before planning: every possible index (to learn what it
/// references) and every untagged image whose type `artifactMediaType` does not settle.
pub fn manifests_to_read(images: &[ImageRecord]) -> Vec<String> {
    let mut digests: BTreeSet<&str> = BTreeSet::new();
    for image in images {
        let may_be_index = !is_single_manifest_type(image.manifest_media_type.as_deref());
        // Only an OCI manifest can be a cache manifest: other single manifests need no read.
        let untyped_candidate = !image.is_tagged()
            && image.artifact_media_type.is_none()
            && !(is_single_manifest_type(image.manifest_media_type.as_deref())
                && image.manifest_media_type.as_deref() != Some(OCI_MANIFEST));
        if may_be_index || untyped_candidate {
            digests.insert(&image.digest);
        }
    }
    digests.into_iter().map(str::to_owned).collect()
}

/// Untagged OCI artifacts (signatures, attestations: `artifactMediaType` set and not a cache)
/// that no index references, whose manifest was not read: read after [`manifests_to_read`] to
/// learn each one's `subject`, so a cache manifest's referrers go with it. One BatchGetImage per
/// 100 of them.
pub fn referrers_to_read(
    images: &[ImageRecord],
    manifests: &HashMap<String, ManifestKind>,
) -> Vec<String> {
    let referenced = referenced_digests(manifests);
    images
        .iter()
        .filter(|i| {
            !i.is_tagged()
                && i.manifest_media_type.as_deref() == Some(OCI_MANIFEST)
                && i.artifact_media_type
                    .as_deref()
                    .is_some_and(|a| a != BUILDKIT_CACHE_CONFIG)
                && i.subject.is_none()
                && !manifests.contains_key(&i.digest)
                && !referenced.contains_key(&i.digest)
        })
        .map(|i| i.digest.clone())
        .collect()
}

/// The subject of an image that is an OCI referrer: from the listing, else its manifest.
fn subject_of<'m>(
    image: &'m ImageRecord,
    manifests: &'m HashMap<String, ManifestKind>,
) -> Option<&'m str> {
    if let Some(subject) = image.subject.as_deref() {
        return Some(subject);
    }
    match manifests.get(&image.digest) {
        Some(ManifestKind::OtherManifest {
            subject: Some(subject),
            ..
        }) => Some(subject),
        _ => None,
    }
}

/// Every digest referenced by an index in `manifests`, mapped to one index that references it.
pub fn referenced_digests(manifests: &HashMap<String, ManifestKind>) -> BTreeMap<String, String> {
    let mut referenced = BTreeMap::new();
    // Sorted so that the index named in a report is deterministic.
    let mut indexes: Vec<(&String, &Vec<String>)> = manifests
        .iter()
        .filter_map(|(digest, kind)| match kind {
            ManifestKind::Index { children } => Some((digest, children)),
            _ => None,
        })
        .collect();
    indexes.sort();
    for (index, children) in indexes {
        for child in children {
            referenced
                .entry(child.clone())
                .or_insert_with(|| index.clone());
        }
    }
    referenced
}

/// Decides whether an image is a BuildKit cache manifest (rule 1), from `artifactMediaType` and
/// the manifest read (if any); both must agree when both are known.
pub fn classify(
    image: &ImageRecord,
    manifest: Option<&ManifestKind>,
) -> Result<ClassifiedBy, KeepReason> {
    let from_artifact = image.artifact_media_type.as_deref();
    match (from_artifact, manifest) {
        // A manifest read always wins over metadata: both must agree for a deletion.
        (Some(artifact), Some(ManifestKind::CacheManifest))
            if artifact != BUILDKIT_CACHE_CONFIG =>
        {
            Err(KeepReason::UnknownType {
                detail: format!("artifactMediaType {artifact} contradicts a cache manifest"),
            })
        }
        (_, Some(ManifestKind::CacheManifest)) => Ok(ClassifiedBy::Manifest),
        (_, Some(ManifestKind::Index { .. })) => Err(KeepReason::NotCacheManifest {
            media_type: image.manifest_media_type.clone(),
        }),
        (
            _,
            Some(ManifestKind::OtherManifest {
                config_media_type, ..
            }),
        ) => Err(KeepReason::NotCacheManifest {
            media_type: config_media_type.clone(),
        }),
        (_, Some(ManifestKind::Unreadable { reason })) => Err(KeepReason::UnknownType {
            detail: reason.clone(),
        }),
        (Some(BUILDKIT_CACHE_CONFIG), None)
            if image.manifest_media_type.as_deref() == Some(OCI_MANIFEST) =>
        {
            Ok(ClassifiedBy::ArtifactMediaType)
        }
        (Some(BUILDKIT_CACHE_CONFIG), None) => Err(KeepReason::UnknownType {
            detail: format!(
                "cache artifactMediaType on manifest type {:?}",
                image.manifest_media_type
            ),
        }),
        (Some(other), None) => Err(KeepReason::NotCacheManifest {
            media_type: Some(other.to_owned()),
        }),
        (None, None) => match image.manifest_media_type.as_deref() {
            Some(t) if t != OCI_MANIFEST => Err(KeepReason::NotCacheManifest {
                media_type: Some(t.to_owned()),
            }),
            _ => Err(KeepReason::UnknownType {
                detail: "manifest was not read".into(),
            }),
        },
    }
}

/// Plans the deletions for one repository.
///
/// `manifests` holds what was read for [`manifests_to_read`]; it must contain every index of the
/// repository, otherwise the caller has to fail closed instead of planning.
pub fn plan(
    images: &[ImageRecord],
    manifests: &HashMap<String, ManifestKind>,
    settings: &PlanSettings,
) -> Plan {
    let referenced = referenced_digests(manifests);
    let mut result = Plan::default();
    let mut candidates = Vec::new();

    for image in images {
        if image.is_tagged() {
            result.tagged_images += 1;
            continue;
        }
        let keep = |reason| KeptImage {
            digest: image.digest.clone(),
            reason,
        };
        if let Some(index) = referenced.get(&image.digest) {
            result.kept.push(keep(KeepReason::ReferencedByIndex {
                index: index.clone(),
            }));
            continue;
        }
        if image.status != ImageStatus::Active {
            result.kept.push(keep(KeepReason::NotActive {
                status: image.status,
            }));
            continue;
        }
        match classify(image, manifests.get(&image.digest)) {
            Err(reason) => result.kept.push(keep(reason)),
            Ok(_) if settings.protect_digests.contains(&image.digest) => {
                result.kept.push(keep(KeepReason::TriggerDigest))
            }
            Ok(_)
                if settings
                    .only_digests
                    .as_ref()
                    .is_some_and(|only| !only.contains(&image.digest)) =>
            {
                result.kept.push(keep(KeepReason::NotConfirmed))
            }
            Ok(classified_by) => candidates.push(PlannedDeletion {
                digest: image.digest.clone(),
                size_bytes: image.size_bytes,
                pushed_at: image.pushed_at,
                reason: DeleteReason::UntaggedUnreferencedCache,
                classified_by,
                subject: None,
            }),
        }
    }

    // Oldest first, so a capped run removes the stalest cache; digest breaks ties for determinism.
    candidates.sort_by(|a, b| {
        (a.pushed_at.unwrap_or(i64::MIN), &a.digest)
            .cmp(&(b.pushed_at.unwrap_or(i64::MIN), &b.digest))
    });
    // A deleted cache manifest's referrers go with it, right after it (same batch): single OCI
    // manifests that are not cache (so never a candidate themselves), untagged, ACTIVE,
    // referenced by no index, not protected; nothing else's referrer is touched.
    let present: HashSet<&str> = images.iter().map(|i| i.digest.as_str()).collect();
    let mut referrers: BTreeMap<&str, Vec<&ImageRecord>> = BTreeMap::new();
    for image in images.iter().filter(|i| !i.is_tagged()) {
        let Some(subject) = subject_of(image, manifests) else {
            continue;
        };
        if !present.contains(subject) {
            result.orphaned_referrers += 1;
        }
        if may_ride_along(image, manifests, &referenced)
            && !settings.protect_digests.contains(&image.digest)
            && settings
                .only_digests
                .as_ref()
                .is_none_or(|only| only.contains(&image.digest))
        {
            referrers.entry(subject).or_default().push(image);
        }
    }
    // The cap counts images, referrers included; a cache manifest and its referrers are never
    // split (the first group may exceed a cap smaller than itself, or nothing would ever go).
    // A cache manifest with more referrers than one delete batch holds is kept whole: deleting
    // it would leave some of them orphaned.
    let mut delete = Vec::with_capacity(candidates.len());
    let mut full = false;
    // Referrers planned for deletion leave the kept list (once, not per referrer: a signed
    // repository has as many referrers as cache manifests).
    let mut riding: HashSet<&str> = HashSet::new();
    for candidate in candidates {
        let with = referrers
            .remove(candidate.digest.as_str())
            .unwrap_or_default();
        if with.len() >= BATCH_LIMIT {
            result.kept.push(KeptImage {
                digest: candidate.digest.clone(),
                reason: KeepReason::TooManyReferrers { count: with.len() },
            });
            continue;
        }
        // Oldest first: once a group does not fit, the rest wait too.
        if full || (!delete.is_empty() && delete.len() + 1 + with.len() > settings.max_deletions) {
            full = true;
            result.remaining += 1;
            continue;
        }
        let subject = candidate.digest.clone();
        delete.push(candidate);
        for referrer in with {
            riding.insert(referrer.digest.as_str());
            delete.push(PlannedDeletion {
                digest: referrer.digest.clone(),
                size_bytes: referrer.size_bytes,
                pushed_at: referrer.pushed_at,
                reason: DeleteReason::ReferrerOfDeletedCache,
                classified_by: ClassifiedBy::Manifest,
                subject: Some(subject.clone()),
            });
        }
    }
    result.kept.retain(|k| !riding.contains(k.digest.as_str()));
    result.delete = delete;
    result.kept.sort_by(|a, b| a.digest.cmp(&b.digest));
    result
}

/// A referrer that may be deleted with its subject: a single OCI manifest that is not cache (so
/// never a candidate itself), untagged, ACTIVE, referenced by no index.
fn may_ride_along(
    image: &ImageRecord,
    manifests: &HashMap<String, ManifestKind>,
    referenced: &BTreeMap<String, String>,
) -> bool {
    !image.is_tagged()
        && matches!(
            classify(image, manifests.get(&image.digest)),
            Err(KeepReason::NotCacheManifest { .. })
        )
        && image.manifest_media_type.as_deref() == Some(OCI_MANIFEST)
        && image.status == ImageStatus::Active
        && !referenced.contains_key(&image.digest)
}

/// The referrers (signatures, attestations) that go with `subject` when a tag removal takes it,
/// as planned deletions that name it: the same ones [`plan`] deletes with an untagged cache
/// manifest. `referenced` is [`referenced_digests`] of `manifests`.
pub fn referrers_of(
    subject: &str,
    images: &[ImageRecord],
    manifests: &HashMap<String, ManifestKind>,
    referenced: &BTreeMap<String, String>,
) -> Vec<PlannedDeletion> {
    let mut riders: Vec<PlannedDeletion> = images
        .iter()
        .filter(|i| subject_of(i, manifests) == Some(subject))
        .filter(|i| may_ride_along(i, manifests, referenced))
        .map(|referrer| PlannedDeletion {
            digest: referrer.digest.clone(),
            size_bytes: referrer.size_bytes,
            pushed_at: referrer.pushed_at,
            reason: DeleteReason::ReferrerOfDeletedCache,
            classified_by: ClassifiedBy::Manifest,
            subject: Some(subject.to_owned()),
        })
        .collect();
    riders.sort_by(|a, b| a.digest.cmp(&b.digest));
    riders
}

/// Splits planned deletions into batches of at most `size`, never separating a cache manifest
/// from its referrers (they are re-checked and deleted together; the planner keeps a cache
/// manifest whose group would not fit one batch).
pub fn batches(planned: Vec<PlannedDeletion>, size: usize) -> Vec<Vec<PlannedDeletion>> {
    let mut groups: Vec<Vec<PlannedDeletion>> = Vec::new();
    for deletion in planned {
        match (&deletion.subject, groups.last_mut()) {
            (Some(subject), Some(group)) if group.first().map(|d| &d.digest) == Some(subject) => {
                group.push(deletion)
            }
            _ => groups.push(vec![deletion]),
        }
    }
    let mut out: Vec<Vec<PlannedDeletion>> = Vec::new();
    for group in groups {
        debug_assert!(
            group.len() <= size,
            "a group larger than a batch was planned"
        );
        match out.last_mut() {
            Some(batch) if batch.len() + group.len() <= size => batch.extend(group),
            _ => out.push(group),
        }
    }
    out
}

/// An image as the re-check just before a delete sees it: its tags and its status now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageNow {
    pub tags: Vec<String>,
    pub status: ImageStatus,
}

/// A batch of planned deletions after the just-before-delete re-read of its tags (rule 2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rechecked {
    /// Still untagged: delete now.
    pub delete: Vec<PlannedDeletion>,
    /// Gained a tag since the snapshot: kept.
    pub kept: Vec<KeptImage>,
    /// No longer exist (a concurrent or earlier run deleted them).
    pub gone: Vec<String>,
}

/// Applies the re-check to `batch`. `current` maps each digest that still exists to its tags and
/// status now; a digest absent from it is already gone. The last look-up decides: a tag gained or
/// a status other than ACTIVE since the snapshot keeps the image (rules 2 and 8).
pub fn recheck(
    batch: Vec<PlannedDeletion>,
    current: &HashMap<String, ImageNow>,
    asked: &HashSet<String>,
) -> Rechecked {
    let mut result = Rechecked::default();
    for deletion in batch {
        match current.get(&deletion.digest) {
            None => result.gone.push(deletion.digest),
            Some(now) if !now.tags.is_empty() => result.kept.push(KeptImage {
                digest: deletion.digest,
                reason: KeepReason::GainedTag {
                    tags: now.tags.clone(),
                },
            }),
            Some(now) if now.status != ImageStatus::Active => result.kept.push(KeptImage {
                digest: deletion.digest,
                reason: KeepReason::NotActive { status: now.status },
            }),
            Some(_) => result.delete.push(deletion),
        }
    }
    // A referrer goes only with its subject: when the subject is kept now, so is the referrer.
    // A subject outside the batch (a tag removal took it) counts as gone only when `current`
    // was asked about it and has no answer for it: the caller looks subjects up too.
    let in_batch: HashSet<&str> = result
        .delete
        .iter()
        .map(|d| d.digest.as_str())
        .chain(result.gone.iter().map(String::as_str))
        .chain(result.kept.iter().map(|k| k.digest.as_str()))
        .collect();
    let gone_outside: Vec<String> = result
        .delete
        .iter()
        .filter_map(|d| d.subject.as_deref())
        .filter(|s| !in_batch.contains(s) && asked.contains(*s) && !current.contains_key(*s))
        .map(str::to_owned)
        .collect();
    let going: HashSet<String> = result
        .delete
        .iter()
        .map(|d| d.digest.clone())
        .chain(result.gone.iter().cloned())
        .chain(gone_outside)
        .collect();
    let (delete, orphaned_now): (Vec<_>, Vec<_>) = std::mem::take(&mut result.delete)
        .into_iter()
        .partition(|d| d.subject.as_ref().is_none_or(|s| going.contains(s)));
    result.delete = delete;
    result
        .kept
        .extend(orphaned_now.into_iter().map(|d| KeptImage {
            reason: KeepReason::SubjectKept {
                subject: d.subject.clone().unwrap_or_default(),
            },
            digest: d.digest,
        }));
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::manifest::{DOCKER_MANIFEST_V2, OCI_INDEX};
    use proptest::prelude::*;

    fn d(n: u32) -> String {
        format!("sha256:{n:064x}")
    }

    fn image(n: u32, tags: &[&str], manifest: &str, artifact: Option<&str>) -> ImageRecord {
        ImageRecord {
            digest: d(n),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            status: ImageStatus::Active,
            pushed_at: Some(1_700_000_000 + n as i64),
            last_pulled_at: None,
            size_bytes: Some(100 * n as i64),
            manifest_media_type: Some(manifest.to_owned()),
            artifact_media_type: artifact.map(str::to_owned),
            subject: None,
        }
    }

    fn settings(max: usize) -> PlanSettings {
        PlanSettings {
            protect_digests: HashSet::new(),
            max_deletions: max,
            only_digests: None,
        }
    }

    fn planned(plan: &Plan) -> Vec<String> {
        plan.delete.iter().map(|p| p.digest.clone()).collect()
    }

    fn kept_reason(plan: &Plan, digest: &str) -> KeepReason {
        plan.kept
            .iter()
            .find(|k| k.digest == digest)
            .unwrap_or_else(|| panic!("{digest} not kept"))
            .reason
            .clone()
    }

    #[test]
    fn deletes_untagged_cache_by_artifact_type_without_reading() {
        let images = vec![
            image(
                1,
                &["cache-main"],
                OCI_MANIFEST,
                Some(BUILDKIT_CACHE_CONFIG),
            ),
            image(2, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG)),
        ];
        assert!(manifests_to_read(&images).is_empty());
        let plan = plan(&images, &HashMap::new(), &settings(10));
        assert_eq!(planned(&plan), vec![d(2)]);
        assert_eq!(
            plan.delete[0].classified_by,
            ClassifiedBy::ArtifactMediaType
        );
        assert_eq!(plan.tagged_images, 1);
    }

    #[test]
    fn reads_manifest_when_artifact_type_is_absent() {
        let images = vec![image(3, &[], OCI_MANIFEST, None)];
        assert_eq!(manifests_to_read(&images), vec![d(3)]);
        let manifests = HashMap::from([(d(3), ManifestKind::CacheManifest)]);
        let plan = plan(&images, &manifests, &settings(10));
        assert_eq!(planned(&plan), vec![d(3)]);
        assert_eq!(plan.delete[0].classified_by, ClassifiedBy::Manifest);
    }

    #[test]
    fn rule1_non_cache_and_unknown_are_kept() {
        let images = vec![
            image(1, &[], OCI_MANIFEST, None),
            image(2, &[], OCI_MANIFEST, None),
            image(3, &[], OCI_MANIFEST, None),
            image(4, &[], DOCKER_MANIFEST_V2, None),
            image(
                5,
                &[],
                OCI_MANIFEST,
                Some("application/vnd.oci.image.config.v1+json"),
            ),
        ];
        let manifests = HashMap::from([
            (
                d(1),
                ManifestKind::OtherManifest {
                    config_media_type: Some("application/vnd.oci.image.config.v1+json".into()),
                    subject: None,
                },
            ),
            (
                d(2),
                ManifestKind::Unreadable {
                    reason: "boom".into(),
                },
            ),
            // d(3) was never read
        ]);
        let plan = plan(&images, &manifests, &settings(10));
        assert!(plan.delete.is_empty());
        assert!(matches!(
            kept_reason(&plan, &d(1)),
            KeepReason::NotCacheManifest { .. }
        ));
        assert!(matches!(
            kept_reason(&plan, &d(2)),
            KeepReason::UnknownType { .. }
        ));
        assert!(matches!(
            kept_reason(&plan, &d(3)),
            KeepReason::UnknownType { .. }
        ));
        assert!(matches!(
            kept_reason(&plan, &d(4)),
            KeepReason::NotCacheManifest { .. }
        ));
        assert!(matches!(
            kept_reason(&plan, &d(5)),
            KeepReason::NotCacheManifest { .. }
        ));
    }

    #[test]
    fn rule1_metadata_and_manifest_must_agree() {
        let images = vec![image(
            1,
            &[],
            OCI_MANIFEST,
            Some("application/vnd.example+type"),
        )];
        let manifests = HashMap::from([(d(1), ManifestKind::CacheManifest)]);
        let plan = plan(&images, &manifests, &settings(10));
        assert!(plan.delete.is_empty());
        // cache artifactMediaType on something that is not an OCI manifest: keep
        let images = vec![image(2, &[], OCI_INDEX, Some(BUILDKIT_CACHE_CONFIG))];
        let manifests = HashMap::from([(d(2), ManifestKind::Index { children: vec![] })]);
        assert!(plan_is_empty(&images, &manifests));
    }

    fn plan_is_empty(images: &[ImageRecord], manifests: &HashMap<String, ManifestKind>) -> bool {
        plan(images, manifests, &settings(10)).delete.is_empty()
    }

    #[test]
    fn rule2_tagged_cache_is_never_planned() {
        let images = vec![image(
            1,
            &["cache-main", "cache-dev"],
            OCI_MANIFEST,
            Some(BUILDKIT_CACHE_CONFIG),
        )];
        assert!(plan_is_empty(&images, &HashMap::new()));
    }

    #[test]
    fn a_confirmed_plan_bounds_what_is_deleted() {
        let cache = Some(BUILDKIT_CACHE_CONFIG);
        let images = vec![
            image(1, &[], OCI_MANIFEST, cache),
            image(2, &[], OCI_MANIFEST, cache),
            image(3, &[], OCI_MANIFEST, cache),
        ];
        let mut settings = settings(100);
        // Shown: 1 and 2 (and 9, since deleted by someone else). 3 appeared after the preview.
        settings.only_digests = Some([d(1), d(2), d(9)].into_iter().collect());
        let plan = plan(&images, &HashMap::new(), &settings);
        assert_eq!(planned(&plan), vec![d(1), d(2)]);
        assert_eq!(
            plan.kept,
            vec![KeptImage {
                digest: d(3),
                reason: KeepReason::NotConfirmed
            }]
        );
    }

    #[test]
    fn rule3_index_references_protect_cache_and_children() {
        // An untagged index (e.g. an old multi-arch build) still protects its children,
        // including a cache manifest someone referenced from an index, and nested indexes.
        let images = vec![
            image(10, &["v1"], OCI_INDEX, None),
            image(11, &[], OCI_INDEX, None),
            image(12, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG)),
            image(13, &[], OCI_MANIFEST, None),
            image(14, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG)),
        ];
        let to_read = manifests_to_read(&images);
        assert!(to_read.contains(&d(10)) && to_read.contains(&d(11)) && to_read.contains(&d(13)));
        let manifests = HashMap::from([
            (
                d(10),
                ManifestKind::Index {
                    children: vec![d(11)],
                },
            ),
            (
                d(11),
                ManifestKind::Index {
                    children: vec![d(12), d(13)],
                },
            ),
            (d(13), ManifestKind::CacheManifest),
        ]);
        let plan = plan(&images, &manifests, &settings(10));
        assert_eq!(planned(&plan), vec![d(14)]);
        assert_eq!(
            kept_reason(&plan, &d(11)),
            KeepReason::ReferencedByIndex { index: d(10) }
        );
        assert_eq!(
            kept_reason(&plan, &d(12)),
            KeepReason::ReferencedByIndex { index: d(11) }
        );
        assert_eq!(
            kept_reason(&plan, &d(13)),
            KeepReason::ReferencedByIndex { index: d(11) }
        );
    }

    #[test]
    fn schema1_manifests_are_kept_without_being_read() {
        use crate::core::manifest::{DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED};
        let images = vec![
            image(1, &[], DOCKER_MANIFEST_V1, None),
            image(2, &[], DOCKER_MANIFEST_V1_SIGNED, None),
        ];
        assert!(
            manifests_to_read(&images).is_empty(),
            "neither read nor an index"
        );
        let plan = plan(&images, &HashMap::new(), &settings(10));
        assert!(plan.delete.is_empty());
        assert!(matches!(
            kept_reason(&plan, &d(1)),
            KeepReason::NotCacheManifest { .. }
        ));
    }

    #[test]
    fn trigger_digest_is_kept() {
        let images = vec![image(1, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG))];
        let mut s = settings(10);
        s.protect_digests.insert(d(1));
        let plan = plan(&images, &HashMap::new(), &s);
        assert!(plan.delete.is_empty());
        assert_eq!(kept_reason(&plan, &d(1)), KeepReason::TriggerDigest);
    }

    #[test]
    fn cap_deletes_oldest_first_and_counts_the_rest() {
        let images: Vec<_> = (1..=5)
            .rev()
            .map(|n| image(n, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG)))
            .collect();
        let plan = plan(&images, &HashMap::new(), &settings(2));
        assert_eq!(planned(&plan), vec![d(1), d(2)]);
        assert_eq!(plan.remaining, 3);
    }

    #[test]
    fn recheck_keeps_an_image_archived_since_the_snapshot() {
        let images: Vec<_> = (1..=2)
            .map(|n| image(n, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG)))
            .collect();
        let plan = plan(&images, &HashMap::new(), &settings(10));
        assert_eq!(plan.delete.len(), 2, "both ACTIVE in the snapshot");
        let now = |status| ImageNow {
            tags: vec![],
            status,
        };
        let current = HashMap::from([
            (d(1), now(ImageStatus::Archived)),
            (d(2), now(ImageStatus::Active)),
        ]);
        let checked = recheck(plan.delete, &current, &HashSet::new());
        assert_eq!(checked.delete.len(), 1);
        assert_eq!(checked.delete[0].digest, d(2));
        assert_eq!(
            checked.kept,
            vec![KeptImage {
                digest: d(1),
                reason: KeepReason::NotActive {
                    status: ImageStatus::Archived
                },
            }]
        );
    }

    #[test]
    fn recheck_drops_retagged_and_reports_gone() {
        let images: Vec<_> = (1..=3)
            .map(|n| image(n, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG)))
            .collect();
        let plan = plan(&images, &HashMap::new(), &settings(10));
        let now = |tags: &[&str], status| ImageNow {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            status,
        };
        let current = HashMap::from([
            (d(1), now(&[], ImageStatus::Active)),
            (d(2), now(&["cache-main"], ImageStatus::Active)),
        ]);
        let checked = recheck(plan.delete, &current, &HashSet::new());
        assert_eq!(checked.gone, vec![d(3)]);
        assert_eq!(
            checked
                .delete
                .iter()
                .map(|p| p.digest.clone())
                .collect::<Vec<_>>(),
            vec![d(1)]
        );
        assert_eq!(
            checked.kept,
            vec![KeptImage {
                digest: d(2),
                reason: KeepReason::GainedTag {
                    tags: vec!["cache-main".into()]
                }
            }]
        );
    }

    #[test]
    fn rule8_only_active_images_are_deleted() {
        let mut archived = image(1, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG));
        archived.status = ImageStatus::Archived;
        let mut activating = image(2, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG));
        activating.status = ImageStatus::Activating;
        let active = image(3, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG));
        let plan = plan(
            &[archived, activating, active],
            &HashMap::new(),
            &settings(10),
        );
        assert_eq!(planned(&plan), vec![d(3)]);
        assert_eq!(
            kept_reason(&plan, &d(1)),
            KeepReason::NotActive {
                status: ImageStatus::Archived
            }
        );
        assert_eq!(
            kept_reason(&plan, &d(2)),
            KeepReason::NotActive {
                status: ImageStatus::Activating
            }
        );
    }

    #[test]
    fn rule8_an_archived_index_still_protects_its_children() {
        let mut index = image(10, &[], OCI_INDEX, None);
        index.status = ImageStatus::Archived;
        let child = image(11, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG));
        let manifests = HashMap::from([(
            d(10),
            ManifestKind::Index {
                children: vec![d(11)],
            },
        )]);
        let plan = plan(&[index, child], &manifests, &settings(10));
        assert!(plan.delete.is_empty());
        assert_eq!(
            kept_reason(&plan, &d(11)),
            KeepReason::ReferencedByIndex { index: d(10) }
        );
    }

    // ---- property tests over random repositories ----

    #[derive(Debug, Clone)]
    enum Kind {
        CacheByArtifact,
        CacheByManifest,
        AppImage,
        Attestation,
        Unreadable,
        Index(Vec<usize>),
    }

    /// (kind, tagged, archived) per image.
    fn arb_repo() -> impl Strategy<Value = Vec<(Kind, bool, bool)>> {
        let kind = prop_oneof![
            3 => Just(Kind::CacheByArtifact),
            3 => Just(Kind::CacheByManifest),
            2 => Just(Kind::AppImage),
            1 => Just(Kind::Attestation),
            1 => Just(Kind::Unreadable),
            2 => prop::collection::vec(0usize..40, 0..4).prop_map(Kind::Index),
        ];
        prop::collection::vec((kind, any::<bool>(), prop::bool::weighted(0.15)), 0..40)
    }

    fn build(repo: &[(Kind, bool, bool)]) -> (Vec<ImageRecord>, HashMap<String, ManifestKind>) {
        let mut images = Vec::new();
        let mut manifests = HashMap::new();
        for (i, (kind, tagged, archived)) in repo.iter().enumerate() {
            let n = i as u32;
            let tags: &[&str] = if *tagged { &["t"] } else { &[] };
            let (mt, artifact, manifest) = match kind {
                Kind::CacheByArtifact => (OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG), None),
                Kind::CacheByManifest => (OCI_MANIFEST, None, Some(ManifestKind::CacheManifest)),
                Kind::AppImage => (
                    OCI_MANIFEST,
                    None,
                    Some(ManifestKind::OtherManifest {
                        config_media_type: Some("application/vnd.oci.image.config.v1+json".into()),
                        subject: None,
                    }),
                ),
                Kind::Attestation => (OCI_MANIFEST, Some("application/vnd.in-toto+json"), None),
                Kind::Unreadable => (
                    OCI_MANIFEST,
                    None,
                    Some(ManifestKind::Unreadable { reason: "x".into() }),
                ),
                Kind::Index(children) => (
                    OCI_INDEX,
                    None,
                    Some(ManifestKind::Index {
                        children: children
                            .iter()
                            .filter(|&&c| c < repo.len())
                            .map(|&c| d(c as u32))
                            .collect(),
                    }),
                ),
            };
            let mut record = image(n, tags, mt, artifact);
            if *archived {
                record.status = ImageStatus::Archived;
            }
            images.push(record);
            if let Some(m) = manifest {
                manifests.insert(d(n), m);
            }
        }
        (images, manifests)
    }

    proptest! {
        #[test]
        fn plans_are_safe_and_complete(repo in arb_repo(), cap in 1usize..50) {
            let (images, manifests) = build(&repo);
            // the planner asked for exactly what we have (or more): nothing it needs is missing
            for digest in manifests_to_read(&images) {
                prop_assert!(manifests.contains_key(&digest), "planner wants {digest} we did not model");
            }
            let plan = plan(&images, &manifests, &settings(cap));
            // The rule-3 oracle comes from the generated indexes (of any status), not from the
            // planner's own reference walk.
            let referenced: HashSet<String> = repo
                .iter()
                .filter_map(|(kind, _, _)| match kind {
                    Kind::Index(children) => Some(children),
                    _ => None,
                })
                .flatten()
                .filter(|&&c| c < repo.len())
                .map(|&c| d(c as u32))
                .collect();
            let planned: HashSet<String> = plan.delete.iter().map(|p| p.digest.clone()).collect();
            let mut expected = HashSet::new();
            for (i, (kind, tagged, archived)) in repo.iter().enumerate() {
                let digest = d(i as u32);
                let is_cache = matches!(kind, Kind::CacheByArtifact | Kind::CacheByManifest);
                if planned.contains(&digest) {
                    prop_assert!(!tagged, "tagged digest planned");
                    prop_assert!(!referenced.contains(&digest), "index-referenced digest planned");
                    prop_assert!(is_cache, "non-cache manifest planned: {kind:?}");
                    prop_assert!(!archived, "archived image planned");
                }
                if is_cache && !tagged && !archived && !referenced.contains(&digest) {
                    expected.insert(digest);
                }
            }
            // complete: every deletable one is planned or counted as remaining
            prop_assert!(planned.is_subset(&expected));
            prop_assert_eq!(planned.len() + plan.remaining, expected.len());
            prop_assert!(planned.len() <= cap);
            // every untagged image is accounted for exactly once
            let untagged = repo.iter().filter(|(_, t, _)| !t).count();
            prop_assert_eq!(plan.kept.len() + planned.len() + plan.remaining, untagged);
        }
    }

    /// A referrer (signature) of `subject`, known from its manifest.
    fn signature(n: u32, subject: &str) -> (ImageRecord, ManifestKind) {
        (
            image(
                n,
                &[],
                OCI_MANIFEST,
                Some("application/vnd.cncf.notary.signature"),
            ),
            ManifestKind::OtherManifest {
                config_media_type: Some("application/vnd.cncf.notary.signature".into()),
                subject: Some(subject.to_owned()),
            },
        )
    }

    #[test]
    fn a_deleted_cache_manifest_takes_its_referrers_and_nothing_else() {
        let stale = image(1, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG));
        let live = image(
            2,
            &["cache-main"],
            OCI_MANIFEST,
            Some(BUILDKIT_CACHE_CONFIG),
        );
        let (sig_stale, k1) = signature(3, &d(1));
        let (sig_live, k2) = signature(4, &d(2));
        let (orphan, k3) = signature(5, &d(99));
        // A referrer the listing names a subject for needs no read.
        let mut listed = image(6, &[], OCI_MANIFEST, Some("application/vnd.dev.sbom"));
        listed.subject = Some(d(1));
        let images = vec![stale, live, sig_stale, sig_live, orphan, listed];
        let manifests = HashMap::from([(d(3), k1), (d(4), k2), (d(5), k3)]);
        assert_eq!(
            referrers_to_read(&images, &HashMap::new()),
            vec![d(3), d(4), d(5)],
            "unread untagged artifacts without a listed subject"
        );
        let p = plan(&images, &manifests, &settings(100));
        let deleted: Vec<(String, Option<String>)> = p
            .delete
            .iter()
            .map(|x| (x.digest.clone(), x.subject.clone()))
            .collect();
        assert_eq!(
            deleted,
            vec![(d(1), None), (d(3), Some(d(1))), (d(6), Some(d(1)))]
        );
        assert_eq!(p.delete[1].reason, DeleteReason::ReferrerOfDeletedCache);
        assert_eq!(p.orphaned_referrers, 1);
        let kept: Vec<&str> = p.kept.iter().map(|k| k.digest.as_str()).collect();
        assert!(kept.contains(&d(4).as_str()) && kept.contains(&d(5).as_str()));
        assert!(!kept.contains(&d(3).as_str()));
        // A confirmed plan that did not show the referrer does not delete it.
        let only = PlanSettings {
            only_digests: Some(HashSet::from([d(1)])),
            ..settings(100)
        };
        let p = plan(&images, &manifests, &only);
        assert_eq!(p.delete.len(), 1);
    }

    #[test]
    fn a_referrer_goes_only_with_its_subject_at_the_last_look_up() {
        let deletion = |n: u32, subject: Option<u32>| PlannedDeletion {
            digest: d(n),
            size_bytes: None,
            pushed_at: None,
            reason: DeleteReason::UntaggedUnreferencedCache,
            classified_by: ClassifiedBy::Manifest,
            subject: subject.map(d),
        };
        let untagged = ImageNow::default();
        let tagged = ImageNow {
            tags: vec!["cache-x".into()],
            ..Default::default()
        };
        // Subject 1 gained a tag: its referrer 2 stays. Subject 3 is gone: its referrer 4 goes.
        let current = HashMap::from([
            (d(1), tagged),
            (d(2), untagged.clone()),
            (d(4), untagged.clone()),
            (d(5), untagged.clone()),
            (d(6), untagged),
        ]);
        let batch = vec![
            deletion(1, None),
            deletion(2, Some(1)),
            deletion(3, None),
            deletion(4, Some(3)),
            deletion(5, None),
            deletion(6, Some(5)),
        ];
        let r = recheck(batch, &current, &HashSet::new());
        let deleted: Vec<String> = r.delete.iter().map(|x| x.digest.clone()).collect();
        assert_eq!(deleted, vec![d(4), d(5), d(6)]);
        assert!(r
            .kept
            .iter()
            .any(|k| k.digest == d(2) && matches!(k.reason, KeepReason::SubjectKept { .. })));
    }

    #[test]
    fn a_referrer_of_an_image_a_tag_removal_took_goes_only_once_it_is_gone() {
        let referrer = |n: u32, subject: u32| PlannedDeletion {
            digest: d(n),
            size_bytes: None,
            pushed_at: None,
            reason: DeleteReason::ReferrerOfDeletedCache,
            classified_by: ClassifiedBy::Manifest,
            subject: Some(d(subject)),
        };
        let untagged = ImageNow::default();
        // Subject 1 is gone (looked up, no answer); subject 3 is back (pushed again); subject 5
        // was not looked up at all: only 2 goes.
        let current = HashMap::from([
            (d(2), untagged.clone()),
            (d(3), untagged.clone()),
            (d(4), untagged.clone()),
            (d(6), untagged),
        ]);
        let asked = HashSet::from([d(1), d(3)]);
        let batch = vec![referrer(2, 1), referrer(4, 3), referrer(6, 5)];
        let r = recheck(batch, &current, &asked);
        let deleted: Vec<String> = r.delete.iter().map(|x| x.digest.clone()).collect();
        assert_eq!(deleted, vec![d(2)]);
        for kept in [d(4), d(6)] {
            assert!(r
                .kept
                .iter()
                .any(|k| k.digest == kept && matches!(k.reason, KeepReason::SubjectKept { .. })));
        }
    }

    #[test]
    fn referrers_of_a_subject_are_the_ones_the_planner_would_take_along() {
        let signature = |n: u32, subject: u32, tags: &[&str]| ImageRecord {
            subject: Some(d(subject)),
            ..image(
                n,
                tags,
                OCI_MANIFEST,
                Some("application/vnd.cncf.notary.signature"),
            )
        };
        let mut archived = signature(4, 1, &[]);
        archived.status = ImageStatus::Archived;
        let images = vec![
            image(1, &["cache-a"], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG)),
            signature(2, 1, &[]),
            signature(3, 1, &["sig"]),
            archived,
            signature(5, 1, &[]),
            signature(6, 9, &[]),
        ];
        // 5 is in an index: it stays.
        let referenced = BTreeMap::from([(d(5), d(7))]);
        let riders = referrers_of(&d(1), &images, &HashMap::new(), &referenced);
        let digests: Vec<&str> = riders.iter().map(|r| r.digest.as_str()).collect();
        assert_eq!(digests, vec![d(2).as_str()]);
        assert_eq!(riders[0].subject.as_deref(), Some(d(1).as_str()));
        assert_eq!(riders[0].reason, DeleteReason::ReferrerOfDeletedCache);
    }

    #[test]
    fn batches_never_separate_a_cache_manifest_from_its_referrers() {
        let mut planned = Vec::new();
        for n in 0..60u32 {
            planned.push(PlannedDeletion {
                digest: d(n * 2),
                size_bytes: None,
                pushed_at: None,
                reason: DeleteReason::UntaggedUnreferencedCache,
                classified_by: ClassifiedBy::Manifest,
                subject: None,
            });
            planned.push(PlannedDeletion {
                digest: d(n * 2 + 1),
                size_bytes: None,
                pushed_at: None,
                reason: DeleteReason::ReferrerOfDeletedCache,
                classified_by: ClassifiedBy::Manifest,
                subject: Some(d(n * 2)),
            });
        }
        let out = batches(planned.clone(), 7);
        assert!(out.iter().all(|b| b.len() <= 7));
        assert_eq!(out.iter().map(Vec::len).sum::<usize>(), 120);
        for batch in &out {
            for x in batch.iter().filter(|x| x.subject.is_some()) {
                assert!(batch.iter().any(|y| Some(&y.digest) == x.subject.as_ref()));
            }
        }
        assert_eq!(batches(planned, 100).len(), 2);
    }

    #[test]
    fn the_cap_counts_referrers_and_never_splits_a_group() {
        let mut images = Vec::new();
        let mut manifests = HashMap::new();
        for n in 1..=3u32 {
            images.push(image(n, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG)));
            let (sig, kind) = signature(10 + n, &d(n));
            images.push(sig);
            manifests.insert(d(10 + n), kind);
        }
        // Cap 5: two groups of two fit (4), the third would make 6.
        let p = plan(&images, &manifests, &settings(5));
        assert_eq!(p.delete.len(), 4);
        assert_eq!(p.remaining, 1);
        // A cap smaller than one group still lets the first group go.
        let p = plan(&images, &manifests, &settings(1));
        assert_eq!(p.delete.len(), 2);
        assert_eq!(p.remaining, 2);
        // A cache manifest with a batch's worth of referrers is kept whole.
        let mut crowded = vec![image(1, &[], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG))];
        let mut kinds = HashMap::new();
        for n in 0..100u32 {
            let (sig, kind) = signature(100 + n, &d(1));
            crowded.push(sig);
            kinds.insert(d(100 + n), kind);
        }
        let p = plan(&crowded, &kinds, &settings(1000));
        assert!(p.delete.is_empty());
        assert!(p
            .kept
            .iter()
            .any(|k| k.digest == d(1)
                && matches!(k.reason, KeepReason::TooManyReferrers { count: 100 })));
    }
}
