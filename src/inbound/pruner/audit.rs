//! Writes the audit trail ([`crate::app::audit`]) as log lines, one per digest or tag, with the
//! Lambda request id. Logs Insights finds them by `fields.audit` (the template's saved queries).

use std::future::Future;

use lambda_runtime::tracing::info;

use crate::app::audit::{manifest_records, tag_records, AuditRecord, Cause};
use crate::app::branch_cleanup::TagReport;
use crate::app::prune::RepositoryReport;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `work` with `request_id` on every audit line it writes.
pub async fn with_request_id<F: Future>(request_id: String, work: F) -> F::Output {
    REQUEST_ID.scope(request_id, work).await
}

fn request_id() -> String {
    REQUEST_ID.try_with(String::clone).unwrap_or_default()
}

fn write(records: Vec<AuditRecord>) {
    if records.is_empty() {
        return;
    }
    let request_id = request_id();
    for r in records {
        info!(
            audit = r.action.as_str(),
            repository = %r.repository,
            digest = r.digest.as_deref().unwrap_or_default(),
            tag = r.tag.as_deref().unwrap_or_default(),
            tags = %r.tags.join(","),
            reason = %r.reason,
            classified_by = r.classified_by.map(|c| match c {
                crate::core::plan::ClassifiedBy::ArtifactMediaType => "artifact_media_type",
                crate::core::plan::ClassifiedBy::Manifest => "manifest",
            }).unwrap_or_default(),
            image_deleted = r.image_deleted,
            size_bytes = r.size_bytes,
            dry_run = r.dry_run,
            trigger = r.cause.trigger,
            trigger_id = r.cause.trigger_id.as_deref().unwrap_or_default(),
            request_id = %request_id,
            "audit"
        );
    }
}

/// One line per deleted (or would-be-deleted) digest of `report`.
pub fn manifests(report: &RepositoryReport, cause: &Cause) {
    write(manifest_records(report, cause));
}

/// One line per removed (or would-be-removed) tag.
pub fn tags(tags: &[TagReport], cause: &Cause) {
    write(tag_records(tags, cause));
}
