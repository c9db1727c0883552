//! Removing a deleted branch's cache tag (DESIGN.md §3 rule 4): by tag, never by digest, and only
//! when the tagged manifest is BuildKit cache.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::core::manifest::is_single_manifest_type;
use crate::core::plan::{classify, referenced_digests, ImageStatus, KeepReason};

use super::ports::Registry;
use super::prune::{take_snapshot, PruneError};
use super::reads;

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
    /// Nothing to do: the tag does not exist (already removed, or never pushed).
    TagNotFound,
    RepositoryNotFound,
    /// The tag points at something that is not BuildKit cache: left alone.
    Kept(KeepReason),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagReport {
    pub repository: String,
    pub tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Other tags on the same digest; they survive.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_tags: Vec<String>,
    #[serde(flatten)]
    pub outcome: TagOutcome,
}

/// Removes `tag` when it names a BuildKit cache manifest. With `expected_digest`, the tag is only
/// removed while it still names that digest (a stale tag that was just pushed again is fresh).
///
/// Removing an image's last tag deletes the image, so then rule 3 applies too: the tag stays when
/// an index references the digest. `index_references` (digest → an index referencing it) comes
/// from the caller's snapshot; with None, the repository is read here, only when needed.
pub async fn remove_cache_tag<R: Registry>(
    registry: &R,
    repository: &str,
    tag: &str,
    expected_digest: Option<&str>,
    index_references: Option<&BTreeMap<String, String>>,
    dry_run: bool,
) -> Result<TagReport, PruneError> {
    let report = |digest: Option<String>, other_tags: Vec<String>, outcome| TagReport {
        repository: repository.to_owned(),
        tag: tag.to_owned(),
        digest,
        other_tags,
        outcome,
    };
    let image = match registry.describe_tag(repository, tag).await {
        Ok(Some(image)) => image,
        Ok(None) => return Ok(report(None, vec![], TagOutcome::TagNotFound)),
        Err(err) if err.is_repository_gone() => {
            return Ok(report(None, vec![], TagOutcome::RepositoryNotFound))
        }
        Err(err) => return Err(err.into()),
    };
    let other_tags: Vec<String> = image.tags.iter().filter(|t| *t != tag).cloned().collect();
    if let Some(expected) = expected_digest {
        if expected != image.digest {
            let moved = KeepReason::TagMoved {
                now: image.digest.clone(),
            };
            return Ok(report(
                Some(expected.to_owned()),
                other_tags,
                TagOutcome::Kept(moved),
            ));
        }
    }
    // Removing an archived image's last tag would delete it (rule 8); any other tag of it could
    // be removed, but an archived cache is not worth the exception.
    if image.status != ImageStatus::Active {
        let status = image.status;
        return Ok(report(
            Some(image.digest),
            other_tags,
            TagOutcome::Kept(KeepReason::NotActive { status }),
        ));
    }
    let settled_by_metadata = image.artifact_media_type.is_some()
        && is_single_manifest_type(image.manifest_media_type.as_deref());
    let manifest = if settled_by_metadata {
        None
    } else {
        reads::read_manifests(registry, repository, std::slice::from_ref(&image.digest))
            .await?
            .kinds
            .remove(&image.digest)
    };
    if let Err(reason) = classify(&image, manifest.as_ref()) {
        return Ok(report(
            Some(image.digest),
            other_tags,
            TagOutcome::Kept(reason),
        ));
    }
    let image_deleted = other_tags.is_empty();
    if image_deleted {
        let index = match index_references {
            Some(references) => references.get(&image.digest).cloned(),
            // Fails closed: an unreadable repository or index is an error, nothing removed.
            None => referenced_digests(&take_snapshot(registry, repository).await?.manifests)
                .remove(&image.digest),
        };
        if let Some(index) = index {
            return Ok(report(
                Some(image.digest),
                other_tags,
                TagOutcome::Kept(KeepReason::ReferencedByIndex { index }),
            ));
        }
    }
    if dry_run {
        return Ok(report(
            Some(image.digest),
            other_tags,
            TagOutcome::WouldRemove { image_deleted },
        ));
    }
    let outcome = if registry.remove_tag(repository, tag).await? {
        TagOutcome::Removed { image_deleted }
    } else {
        TagOutcome::TagNotFound
    };
    Ok(report(Some(image.digest), other_tags, outcome))
}
