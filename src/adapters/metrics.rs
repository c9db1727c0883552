//! CloudWatch Embedded Metric Format: one JSON log line per repository and invocation, turned
//! into metrics by CloudWatch Logs without any API call or permission.

use serde_json::{json, Value};

use crate::app::branch_cleanup::{TagOutcome, TagReport};
use crate::app::prune::RepositoryReport;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryMetrics {
    pub repository: String,
    pub manifests_deleted: usize,
    pub tags_removed: usize,
    pub failures: usize,
    /// Bytes of blobs referenced only by deleted manifests: an estimate of storage freed (ECR
    /// stores each layer once per repository). Absent when not computed.
    pub bytes_reclaimed_estimate: Option<u64>,
}

impl RepositoryMetrics {
    pub fn from_prune(report: &RepositoryReport) -> Self {
        RepositoryMetrics {
            repository: report.repository.clone(),
            manifests_deleted: report.deleted.len(),
            tags_removed: 0,
            failures: report.failures.len(),
            bytes_reclaimed_estimate: if report.dry_run {
                None
            } else {
                report.reclaimed_bytes_estimate
            },
        }
    }

    pub fn add_tag(&mut self, tag: &TagReport) {
        if matches!(tag.outcome, TagOutcome::Removed { .. }) {
            self.tags_removed += 1;
        }
    }
}

/// The EMF document for one repository.
pub fn emf(namespace: &str, metrics: &RepositoryMetrics, timestamp_ms: u64) -> Value {
    let mut names = vec![
        json!({"Name": "ManifestsDeleted", "Unit": "Count"}),
        json!({"Name": "TagsRemoved", "Unit": "Count"}),
        json!({"Name": "Failures", "Unit": "Count"}),
    ];
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Repository"]],
                "Metrics": [],
            }],
        },
        "Repository": metrics.repository,
        "ManifestsDeleted": metrics.manifests_deleted,
        "TagsRemoved": metrics.tags_removed,
        "Failures": metrics.failures,
    });
    if let Some(bytes) = metrics.bytes_reclaimed_estimate {
        names.push(json!({"Name": "BytesReclaimedEstimate", "Unit": "Bytes"}));
        doc["BytesReclaimedEstimate"] = json!(bytes);
    }
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"] = Value::Array(names);
    doc
}

/// Writes the EMF lines to stdout, where the Lambda log agent picks them up.
pub fn emit(namespace: &str, metrics: &[RepositoryMetrics]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for m in metrics {
        println!("{}", emf(namespace, m, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the EMF specification's structural rules on a document.
    fn assert_valid_emf(doc: &Value) {
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_u64());
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert!(!directives.is_empty());
        for d in directives {
            assert!(d["Namespace"].as_str().is_some_and(|n| !n.is_empty()));
            for set in d["Dimensions"].as_array().unwrap() {
                for key in set.as_array().unwrap() {
                    assert!(
                        doc[key.as_str().unwrap()].is_string(),
                        "dimension {key} must be a string member"
                    );
                }
            }
            let metrics = d["Metrics"].as_array().unwrap();
            assert!(metrics.len() <= 100);
            for m in metrics {
                let name = m["Name"].as_str().unwrap();
                assert!(
                    doc[name].is_number(),
                    "metric {name} must be a number member"
                );
                assert!(["Count", "Bytes"].contains(&m["Unit"].as_str().unwrap()));
            }
        }
    }

    #[test]
    fn emf_documents_are_valid() {
        let mut m = RepositoryMetrics {
            repository: "team/app".into(),
            manifests_deleted: 3,
            tags_removed: 1,
            failures: 0,
            bytes_reclaimed_estimate: Some(157_286_400),
        };
        let doc = emf("EcrCachePruner", &m, 1_795_774_530_000);
        assert_valid_emf(&doc);
        assert_eq!(doc["BytesReclaimedEstimate"], 157_286_400);
        // the line is one JSON object on one line
        let line = doc.to_string();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), doc);

        m.bytes_reclaimed_estimate = None;
        let doc = emf("EcrCachePruner", &m, 1);
        assert_valid_emf(&doc);
        assert!(doc.get("BytesReclaimedEstimate").is_none());
    }
}
