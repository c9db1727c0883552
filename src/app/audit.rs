//! The audit trail: one record per digest deleted (or, in a dry run, that would be) and per cache
//! tag removed (or that would be), with the reason and what caused it. Pure: the Lambda logs these
//! as JSON lines, the CLI prints them with `--json`.

use serde::Serialize;

use crate::core::plan::{ClassifiedBy, PlannedDeletion};
use crate::core::stale::TagExpiry;

use super::outcome::{RepositoryRun, TagOutcome, TagRun};

/// Where audit records go as each call that deleted something returns (not when the whole run
/// is done: ECR has no undelete, and a run that fails half-way must leave a line for what it did).
pub trait AuditTrail: Sync {
    /// The deletions (or, in a dry run, would-be deletions) of one batch just done: `batch` holds
    /// only them.
    fn manifests(&self, batch: &RepositoryRun);
    /// Tags just removed (or that would be).
    fn tags(&self, tags: &[TagRun]);
}

/// An audit trail that keeps nothing (library callers and tests that read the run instead).
pub struct NoAudit;

impl AuditTrail for NoAudit {
    fn manifests(&self, _: &RepositoryRun) {}
    fn tags(&self, _: &[TagRun]) {}
}

/// An audit trail that says why a tag was up for removal on every tag line that does not: a
/// removal whose answer was lost and could not be settled is audited deep in the removal
/// (`tag_remove_unconfirmed`), before its caller can say why.
pub struct Because<'a> {
    pub trail: &'a dyn AuditTrail,
    pub why: TagExpiry,
}

impl AuditTrail for Because<'_> {
    fn manifests(&self, batch: &RepositoryRun) {
        self.trail.manifests(batch);
    }

    fn tags(&self, tags: &[TagRun]) {
        let said: Vec<TagRun> = tags
            .iter()
            .map(|t| match t.removal {
                Some(_) => t.clone(),
                None => t.clone().because(self.why),
            })
            .collect();
        self.trail.tags(&said);
    }
}

/// What was done to one digest or tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    ManifestDeleted,
    ManifestWouldDelete,
    /// Sent in a delete call whose answer was lost; whether it is gone could not be read.
    ManifestDeleteUnconfirmed,
    TagRemoved,
    /// Sent in a tag removal whose answer was lost; whether it is gone could not be read.
    TagRemoveUnconfirmed,
    TagWouldRemove,
    /// A base branch's cache tag moved to a merged group's cache manifest (or would, dry run).
    TagPromoted,
    TagWouldPromote,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ManifestDeleted => "manifest_deleted",
            AuditAction::ManifestWouldDelete => "manifest_would_delete",
            AuditAction::ManifestDeleteUnconfirmed => "manifest_delete_unconfirmed",
            AuditAction::TagRemoved => "tag_removed",
            AuditAction::TagRemoveUnconfirmed => "tag_remove_unconfirmed",
            AuditAction::TagWouldRemove => "tag_would_remove",
            AuditAction::TagPromoted => "tag_promoted",
            AuditAction::TagWouldPromote => "tag_would_promote",
        }
    }
}

/// What asked for the work: the trigger's kind (`cache_push`, `branch_deleted`, `sweep`,
/// `repository_sweep`, `cli`) and its id (the EventBridge event id, or the SQS message ids of the
/// records a batch grouped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub trigger: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
}

impl Cause {
    pub fn new(trigger: &'static str, trigger_id: Option<String>) -> Self {
        Cause {
            trigger,
            trigger_id,
        }
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    #[serde(rename = "audit")]
    pub action: AuditAction,
    pub repository: String,
    pub digest: Option<String>,
    /// The tag removed (tag records only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Tags the digest keeps (tag records; a deleted manifest had none).
    pub tags: Vec<String>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classified_by: Option<ClassifiedBy>,
    /// Removing the tag deleted the image too (it was its last tag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_deleted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    pub dry_run: bool,
    #[serde(flatten)]
    pub cause: Cause,
}

/// The records of a repository's manifests: deleted ones (and those perhaps deleted by a call
/// whose answer was lost), or in a dry run the would-be ones.
pub fn manifest_records(report: &RepositoryRun, cause: &Cause) -> Vec<AuditRecord> {
    let rows: Vec<(AuditAction, &PlannedDeletion)> = if report.dry_run {
        report
            .would_delete
            .iter()
            .map(|d| (AuditAction::ManifestWouldDelete, d))
            .collect()
    } else {
        let deleted = report
            .deleted
            .iter()
            .map(|d| (AuditAction::ManifestDeleted, d));
        let unconfirmed = report
            .delete_unconfirmed
            .iter()
            .map(|d| (AuditAction::ManifestDeleteUnconfirmed, d));
        deleted.chain(unconfirmed).collect()
    };
    rows.into_iter()
        .map(|(action, d)| AuditRecord {
            action,
            repository: report.repository.clone(),
            digest: Some(d.digest.clone()),
            tag: None,
            tags: vec![],
            reason: d.reason.to_string(),
            classified_by: Some(d.classified_by),
            image_deleted: None,
            size_bytes: d.size_bytes,
            dry_run: report.dry_run,
            cause: cause.clone(),
        })
        .collect()
}

/// The records of tags removed (or that a dry run would remove); kept and absent tags have none.
pub fn tag_records(tags: &[TagRun], cause: &Cause) -> Vec<AuditRecord> {
    tags.iter()
        .filter_map(|t| {
            let (action, image_deleted, dry_run) = match t.outcome {
                TagOutcome::Removed { image_deleted } => {
                    (AuditAction::TagRemoved, image_deleted, false)
                }
                TagOutcome::WouldRemove { image_deleted } => {
                    (AuditAction::TagWouldRemove, image_deleted, true)
                }
                TagOutcome::RemoveUnconfirmed { image_deleted } => {
                    (AuditAction::TagRemoveUnconfirmed, image_deleted, false)
                }
                // The tags the base tag's previous image keeps are not known here: `tags` lists
                // the digest it named before, as `from`.
                TagOutcome::Promoted { .. } => (AuditAction::TagPromoted, false, false),
                TagOutcome::WouldPromote { .. } => (AuditAction::TagWouldPromote, false, true),
                _ => return None,
            };
            Some(AuditRecord {
                action,
                repository: t.repository.clone(),
                digest: t.digest.clone(),
                tag: Some(t.tag.clone()),
                tags: t.other_tags.clone(),
                reason: match &t.outcome {
                    TagOutcome::Promoted { from } | TagOutcome::WouldPromote { from } => format!(
                        "merged merge-queue group's cache promoted to the base branch, replacing {}",
                        from.as_deref().unwrap_or("no cache")
                    ),
                    _ => t
                        .removal
                        .map_or_else(|| "cache tag".to_owned(), |r| r.to_string()),
                },
                classified_by: None,
                image_deleted: Some(image_deleted),
                size_bytes: None,
                dry_run,
                cause: cause.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::{DeleteReason, PlannedDeletion};
    use crate::core::stale::TagExpiry;

    fn deletion(n: u8) -> PlannedDeletion {
        PlannedDeletion {
            digest: format!("sha256:{n:064x}"),
            size_bytes: Some(10),
            pushed_at: None,
            reason: DeleteReason::UntaggedUnreferencedCache,
            classified_by: ClassifiedBy::Manifest,
            subject: None,
        }
    }

    #[test]
    fn one_record_per_deleted_or_would_be_deleted_digest() {
        let cause = Cause::new("cache_push", Some("event-1".into()));
        let mut report = RepositoryRun {
            repository: "app".into(),
            deleted: vec![deletion(1), deletion(2)],
            ..Default::default()
        };
        let records = manifest_records(&report, &cause);
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[1].digest.as_deref(),
            Some(deletion(2).digest.as_str())
        );
        assert_eq!(records[0].action, AuditAction::ManifestDeleted);
        let line = serde_json::to_value(&records[0]).unwrap();
        assert_eq!(line["trigger"], "cache_push");
        assert_eq!(line["trigger_id"], "event-1");
        assert_eq!(line["classified_by"], "manifest");
        assert_eq!(
            line["reason"],
            "untagged BuildKit cache manifest, not referenced by any index"
        );

        report.dry_run = true;
        report.would_delete = std::mem::take(&mut report.deleted);
        let records = manifest_records(&report, &cause);
        assert_eq!(records.len(), 2);
        assert!(records
            .iter()
            .all(|r| r.dry_run && r.action == AuditAction::ManifestWouldDelete));
    }

    #[test]
    fn only_removed_tags_are_recorded() {
        let cause = Cause::new("sweep", None);
        let tag = |name: &str, outcome| TagRun {
            repository: "app".into(),
            tag: name.into(),
            digest: Some("sha256:1".into()),
            other_tags: vec!["v1".into()],
            outcome,
            removal: Some(TagExpiry::NotUsed { days: 30 }),
            referrers: None,
        };
        let tags = [
            tag(
                "cache-a",
                TagOutcome::Removed {
                    image_deleted: false,
                },
            ),
            tag(
                "cache-b",
                TagOutcome::WouldRemove {
                    image_deleted: true,
                },
            ),
            tag("cache-c", TagOutcome::TagNotFound),
        ];
        let records = tag_records(&tags, &cause);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].action, AuditAction::TagRemoved);
        assert_eq!(records[0].tags, vec!["v1".to_string()]);
        assert_eq!(
            records[0].reason,
            "cache neither pushed nor pulled for more than 30 days"
        );
        assert!(records[1].dry_run && records[1].image_deleted == Some(true));
    }
}
