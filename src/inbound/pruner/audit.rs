//! Writes the audit trail ([`crate::app::audit`]) as JSON log lines, one per digest or tag, with the
//! Lambda request id. Logs Insights finds them by their `audit` field (the template's saved
//! queries).

use std::future::Future;

use std::io::Write;

use serde::Serialize;

use crate::app::audit::{manifest_records, tag_records, AuditRecord, AuditTrail, Cause};
use crate::app::branch_cleanup::TagRun;
use crate::app::prune::RepositoryRun;

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

/// The lines go straight to stdout as JSON, one object each with the record's fields at the top
/// level (`audit`, `repository`, `digest`, ...), in one write: a sweep can delete thousands of
/// digests, and the tracing formatter costs several times more per line.
fn write(records: Vec<AuditRecord>, tap: Option<&AuditTap>) {
    if records.is_empty() {
        return;
    }
    if let Some(tap) = tap {
        records.iter().for_each(tap);
    }
    let request_id = request_id();
    let mut out = Vec::with_capacity(records.len() * 512);
    for record in &records {
        let line = AuditLine {
            level: "INFO",
            message: "audit",
            record,
            request_id: &request_id,
        };
        serde_json::to_writer(&mut out, &line).expect("audit line serializes");
        out.push(b'\n');
    }
    let _ = std::io::stdout().lock().write_all(&out);
}

#[derive(Serialize)]
struct AuditLine<'a> {
    level: &'static str,
    message: &'static str,
    #[serde(flatten)]
    record: &'a AuditRecord,
    request_id: &'a str,
}

/// Hears every audit record as it is written (the model test checks that the records name
/// exactly what was deleted).
pub type AuditTap = dyn Fn(&AuditRecord) + Send + Sync;

/// The audit trail of one trigger, written as log lines as each deleting call returns.
pub struct LogAudit<'a> {
    pub cause: &'a Cause,
    pub tap: Option<&'a AuditTap>,
}

impl AuditTrail for LogAudit<'_> {
    fn manifests(&self, batch: &RepositoryRun) {
        write(manifest_records(batch, self.cause), self.tap);
    }
    fn tags(&self, done: &[TagRun]) {
        write(tag_records(done, self.cause), self.tap);
    }
}
