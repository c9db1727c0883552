//! What a run did, per repository and per tag: the outcome types every use case returns and the
//! audit trail records. Their own module, so that the use cases (prune, branch clean-up) and the
//! audit trail depend on them and not on one another.

use serde::Serialize;

use crate::core::plan::{KeepReason, KeptImage, PlannedDeletion};
use crate::core::stale::TagExpiry;

use super::ports::ImageFailure;

/// What one run did in one repository, part of the invocation's answer. (In this crate "report"
/// means only the savings report.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepositoryRun {
    pub repository: String,
    pub dry_run: bool,
    pub images_scanned: usize,
    pub tagged_images: usize,
    /// ARCHIVED or ACTIVATING images (never deleted; still counted for index references).
    pub images_not_active: usize,
    /// Deleted in this run (empty in a dry run).
    pub deleted: Vec<PlannedDeletion>,
    /// What a dry run would delete (empty otherwise).
    pub would_delete: Vec<PlannedDeletion>,
    /// Planned but already gone (a concurrent or earlier run deleted them).
    pub already_deleted: Vec<String>,
    /// Sent in a delete call whose answer was lost, and whether they are gone could not be read
    /// afterwards: perhaps deleted. Each has an audit line of its own (ECR has no undelete).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delete_unconfirmed: Vec<PlannedDeletion>,
    pub kept: Vec<KeptImage>,
    pub failures: Vec<ImageFailure>,
    /// Deletable cache manifests left for a later run by the deletion cap or the deadline.
    pub remaining: usize,
    /// Referrers (signatures, attestations) whose subject is no longer in the repository: left
    /// alone (what their subject was cannot be known), counted.
    #[serde(skip_serializing_if = "is_zero")]
    pub orphaned_referrers: usize,
    /// The invocation's deadline stopped the deletions before the plan was done.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub out_of_time: bool,
    /// Sum of `imageSizeInBytes` of the deleted manifests. Cache manifests share layers, so the
    /// storage actually freed can be less: see `reclaimed_bytes_estimate`.
    pub deleted_bytes: i64,
    /// Estimate of the storage freed: blobs referenced by deleted manifests and by no remaining
    /// one. Only computed when asked for (`ESTIMATE_RECLAIMED_BYTES`, the CLI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reclaimed_bytes_estimate: Option<u64>,
    /// Sweep only: why stale and gone branch tags were not judged this time (GitHub could not
    /// say which branches exist). The manifests were still pruned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_expiry_skipped: Option<String>,
    /// Sweep with `CACHE_BUDGET`: the footprint, the evictions and whether the budget holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<super::budget::BudgetRun>,
    /// The GitHub failure behind `tag_expiry_skipped` is lasting (the repository unknown to
    /// GitHub): only then is the repository counted as skipped; a 5xx waits for the next sweep.
    #[serde(skip)]
    pub tag_expiry_skipped_lasting: bool,
}

impl RepositoryRun {
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }

    /// Digests this run deleted, or in a dry run would delete.
    pub fn gone_digests(&self) -> Vec<String> {
        self.deleted
            .iter()
            .chain(&self.would_delete)
            .map(|d| d.digest.clone())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TagOutcome {
    /// The tag is gone; the image too when this was its last tag.
    Removed {
        image_deleted: bool,
    },
    WouldRemove {
        image_deleted: bool,
    },
    /// Sent in a removal whose answer was lost; whether the tag is gone could not be read.
    RemoveUnconfirmed {
        image_deleted: bool,
    },
    /// Nothing to do: the tag does not exist (already removed, or never pushed).
    TagNotFound,
    RepositoryNotFound,
    /// The repository is outside the repositories this deployment may touch
    /// (`SWEEP_REPOSITORIES`): nothing was asked of it.
    NotInScope,
    /// The tag points at something that is not BuildKit cache: left alone.
    Kept(KeepReason),
    /// Left alone for a lasting reason (access refused, an index that cannot be read).
    Skipped {
        error: String,
    },
    /// The tag (a base branch's cache tag) now names the merged group's cache manifest; `from`
    /// is the digest it named before (None: the tag did not exist).
    Promoted {
        from: Option<String>,
    },
    /// What a dry run would have promoted.
    WouldPromote {
        from: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagRun {
    pub repository: String,
    pub tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Other tags on the same digest; they survive.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_tags: Vec<String>,
    #[serde(flatten)]
    pub outcome: TagOutcome,
    /// Why the tag was up for removal (the branch deleted or gone, or the cache unused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal: Option<TagExpiry>,
    /// When the removal took the image: its referrers (signatures), deleted right after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrers: Option<ReferrersRun>,
}

/// What became of the referrers of an image a tag removal took (rule: a referrer goes only with
/// its subject, re-checked; never one of an image that stays).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReferrersRun {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_delete: Vec<String>,
    /// Gone before the delete (someone else deleted them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub already_deleted: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<KeptImage>,
    /// The delete failed after retries (or was refused): these referrers are now orphans the
    /// report counts; the run reports a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TagRun {
    /// The report for a tag left alone before any registry call.
    pub fn kept(repository: &str, tag: &str, reason: KeepReason) -> Self {
        TagRun {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            digest: None,
            other_tags: vec![],
            outcome: TagOutcome::Kept(reason),
            removal: None,
            referrers: None,
        }
    }

    /// The same report, saying why the tag was up for removal.
    pub fn because(mut self, removal: TagExpiry) -> Self {
        self.removal = Some(removal);
        self
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
