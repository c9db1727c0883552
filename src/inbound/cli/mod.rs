//! The operator CLI (`ecr-cache-pruner`): human tables from the same reports the Lambda returns
//! (here), the savings report's table and page ([`report`]), and its session with AWS and GitHub
//! ([`session`]); `src/bin` only parses arguments.

pub mod pulls;
pub mod report;
pub mod rules;
pub mod session;

use std::fmt::Write;

use serde::Serialize;

use crate::app::branch_cleanup::{TagOutcome, TagRun};
use crate::app::prune::RepositoryRun;

/// What the CLI prints for one repository: the manifests part (the fields of the Lambda's
/// repository report, unchanged) and the cache tags the sweep removes.
#[derive(Debug, Clone, Serialize)]
pub struct CliRun {
    #[serde(flatten)]
    pub report: RepositoryRun,
    pub tags: Vec<TagRun>,
    /// Something would be (or was) deleted or removed.
    pub changes_pending: bool,
    /// The rules judged with, and where each came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<rules::EffectiveRules>,
}

impl CliRun {
    pub fn new(report: RepositoryRun, tags: Vec<TagRun>) -> Self {
        let mut out = CliRun {
            report,
            tags,
            changes_pending: false,
            rules: None,
        };
        out.changes_pending = !out.report.would_delete.is_empty()
            || !out.report.deleted.is_empty()
            || out.tags_to_remove() > 0;
        out
    }

    /// Tags removed, or in a dry run to remove.
    pub fn tags_to_remove(&self) -> usize {
        self.tags
            .iter()
            .filter(|t| {
                matches!(
                    t.outcome,
                    TagOutcome::Removed { .. } | TagOutcome::WouldRemove { .. }
                )
            })
            .count()
    }

    /// Referrers (signatures) the tag removals take along with their images.
    pub fn referrers_to_delete(&self) -> usize {
        self.tags
            .iter()
            .filter_map(|t| t.referrers.as_ref())
            .map(|r| r.would_delete.len())
            .sum()
    }

    /// Whether a tag removal's referrers could not be deleted (they are orphans now).
    pub fn referrers_failed(&self) -> bool {
        self.tags
            .iter()
            .filter_map(|t| t.referrers.as_ref())
            .any(|r| r.error.is_some())
    }
}

/// The manifests table, then the cache tags.
pub fn render_plan(plan: &CliRun) -> String {
    let mut out = render_report(&plan.report);
    let title = if plan.report.dry_run {
        "cache tags to remove"
    } else {
        "cache tags removed"
    };
    let rows: Vec<&TagRun> = plan
        .tags
        .iter()
        .filter(|t| {
            matches!(
                t.outcome,
                TagOutcome::Removed { .. } | TagOutcome::WouldRemove { .. }
            )
        })
        .collect();
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(out, "{title}:");
    let _ = writeln!(out, "  {:<32} {:<22} REASON", "TAG", "DIGEST");
    for t in rows {
        let digest = t
            .digest
            .as_deref()
            .map(|d| format!("{}...", short(d)))
            .unwrap_or_default();
        let reason = t.removal.map(|r| r.to_string()).unwrap_or_default();
        let also = match t.outcome {
            TagOutcome::Removed {
                image_deleted: true,
            }
            | TagOutcome::WouldRemove {
                image_deleted: true,
            } => " (last tag: the image goes too)",
            _ => "",
        };
        let _ = writeln!(out, "  {:<32} {digest:<22} {reason}{also}", t.tag);
        // The image's referrers (signatures) go with it.
        if let Some(referrers) = &t.referrers {
            for signature in referrers.would_delete.iter().chain(&referrers.deleted) {
                let _ = writeln!(
                    out,
                    "  {:<32} {:<22} referrer (signature) of the image above, deleted with it",
                    "",
                    format!("{}...", short(signature))
                );
            }
            if let Some(error) = &referrers.error {
                let _ = writeln!(out, "  {:<32} {error}", "");
            }
        }
    }
    out
}

/// Human-readable size (binary units).
pub fn human_bytes(bytes: i64) -> String {
    crate::core::budget::human_bytes(bytes.max(0).unsigned_abs())
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

fn timestamp(secs: Option<i64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) => {
            let (y, m, d, hour, minute, _) = crate::core::time::civil(s);
            format!("{y:04}-{m:02}-{d:02} {hour:02}:{minute:02}Z")
        }
    }
}

/// The plan (or result) of one repository as a table with totals.
pub fn render_report(report: &RepositoryRun) -> String {
    let mut out = String::new();
    let (title, rows) = if report.dry_run {
        ("would delete", &report.would_delete)
    } else {
        ("deleted", &report.deleted)
    };
    let _ = writeln!(
        out,
        "{}: {} images scanned, {} tagged",
        report.repository, report.images_scanned, report.tagged_images
    );
    if rows.is_empty() {
        let _ = writeln!(out, "nothing to delete");
    } else {
        let _ = writeln!(out, "{title}:");
        let _ = writeln!(
            out,
            "  {:<22} {:<10} {:<18} {:>10}  REASON",
            "DIGEST", "TAGS", "PUSHED AT", "SIZE"
        );
        for d in rows {
            let _ = writeln!(
                out,
                "  {:<22} {:<10} {:<18} {:>10}  {}",
                format!("{}...", short(&d.digest)),
                "<none>",
                timestamp(d.pushed_at),
                d.size_bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
                d.reason
            );
        }
    }
    if !report.kept.is_empty() {
        let _ = writeln!(out, "kept (untagged):");
        for k in &report.kept {
            let _ = writeln!(out, "  {}...  {}", short(&k.digest), k.reason);
        }
    }
    for f in &report.failures {
        let _ = writeln!(out, "FAILED {}: {} {}", f.image, f.code, f.message);
    }
    let reclaimed = report
        .reclaimed_bytes_estimate
        .map(|b| format!(", {} reclaimed (estimate)", human_bytes(b as i64)))
        .unwrap_or_default();
    // The sizes of the rows shown: a dry run deletes nothing, so its deleted_bytes is 0.
    let shown_bytes: i64 = rows.iter().filter_map(|d| d.size_bytes).sum();
    let _ = writeln!(
        out,
        "total: {} manifest(s) {title}, {} by manifest size{reclaimed}; {} kept untagged; {} left for a later run",
        rows.len(),
        human_bytes(shown_bytes),
        report.kept.len(),
        report.remaining
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(157_286_400), "150.0 MiB");
        assert_eq!(timestamp(Some(0)), "1970-01-01 00:00Z");
        assert_eq!(timestamp(Some(1_795_774_530)), "2026-11-27 10:15Z");
        assert_eq!(timestamp(None), "-");
    }

    #[test]
    fn a_dry_run_totals_the_sizes_it_would_delete() {
        use crate::core::plan::{ClassifiedBy, DeleteReason, PlannedDeletion};
        let planned = |n: i64| PlannedDeletion {
            digest: format!("sha256:{n:064}"),
            size_bytes: Some(n * 1024 * 1024),
            pushed_at: Some(0),
            reason: DeleteReason::UntaggedUnreferencedCache,
            classified_by: ClassifiedBy::ArtifactMediaType,
            subject: None,
        };
        let report = RepositoryRun {
            repository: "r".into(),
            dry_run: true,
            would_delete: vec![planned(100), planned(200)],
            ..Default::default()
        };
        let text = render_report(&report);
        assert!(
            text.contains("2 manifest(s) would delete, 300.0 MiB by manifest size"),
            "{text}"
        );
    }
}
