//! CloudWatch Embedded Metric Format: one JSON log line per repository and invocation, turned
//! into metrics by CloudWatch Logs without any API call or permission.

use serde_json::{json, Value};

use crate::app::branch_cleanup::{TagOutcome, TagRun};
use crate::app::prune::RepositoryRun;
use crate::core::stale::TagExpiry;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryMetrics {
    pub repository: String,
    pub manifests_deleted: usize,
    pub tags_removed: usize,
    /// Dry run: what would have been deleted / removed (the rehearsal before switching on).
    pub manifests_would_delete: usize,
    pub tags_would_remove: usize,
    /// A dry run publishes the would-be metrics (zeros included) instead of the deleted ones.
    pub dry_run: bool,
    pub failures: usize,
    /// Left alone for a lasting reason (archived index, AccessDenied, GitHub repository not
    /// found): reported, not retried. Published only when non-zero.
    pub skipped: usize,
    /// A sweep continuation that gave up (no progress, or too many attempts). Only when non-zero.
    pub sweeps_given_up: usize,
    /// Bytes of blobs referenced only by deleted manifests: an estimate of storage freed (ECR
    /// stores each layer once per repository). Absent when not computed.
    pub bytes_reclaimed_estimate: Option<u64>,
    /// With `CACHE_BUDGET`: bytes of cache footprint still over the repository's budget after
    /// this run's evictions (0 within budget). Absent without a budget.
    pub bytes_over_budget: Option<u64>,
    /// Cache tags removed (or, in a dry run, that would be) because the repository was over budget.
    pub evicted_for_budget: usize,
}

impl RepositoryMetrics {
    pub fn from_prune(report: &RepositoryRun) -> Self {
        RepositoryMetrics {
            repository: report.repository.clone(),
            manifests_deleted: report.deleted.len(),
            tags_removed: 0,
            manifests_would_delete: report.would_delete.len(),
            tags_would_remove: 0,
            dry_run: report.dry_run,
            failures: report.failures.len(),
            // Tags not judged for a lasting reason (GitHub does not know the repository); a
            // transient GitHub failure is not a skip: the next sweep judges them.
            skipped: usize::from(
                report.tag_expiry_skipped.is_some() && report.tag_expiry_skipped_lasting,
            ),
            sweeps_given_up: 0,
            bytes_reclaimed_estimate: if report.dry_run {
                None
            } else {
                report.reclaimed_bytes_estimate
            },
            bytes_over_budget: report.budget.as_ref().map(|b| b.bytes_over()),
            evicted_for_budget: 0,
        }
    }

    pub fn add_tag(&mut self, tag: &TagRun) {
        let evicted = matches!(
            tag.outcome,
            TagOutcome::Removed { .. } | TagOutcome::WouldRemove { .. }
        ) && matches!(tag.removal, Some(TagExpiry::OverBudget { .. }));
        self.evicted_for_budget += usize::from(evicted);
        // The referrers a removal took with its image are manifests deleted; one that could not
        // be deleted is a failure (it is an orphan now).
        if let Some(referrers) = &tag.referrers {
            self.manifests_deleted += referrers.deleted.len();
            self.manifests_would_delete += referrers.would_delete.len();
            self.failures += usize::from(referrers.error.is_some());
        }
        match tag.outcome {
            TagOutcome::Removed { .. } => self.tags_removed += 1,
            TagOutcome::WouldRemove { .. } => {
                self.tags_would_remove += 1;
                self.dry_run = true;
            }
            _ => {}
        }
    }
}

/// The EMF document for one repository: three series, what was deleted (a live run) or what would
/// have been (a dry run: the rehearsal's numbers, not a live run's zeros), and failures.
pub fn emf(namespace: &str, metrics: &RepositoryMetrics, timestamp_ms: u64) -> Value {
    let (manifests, tags) = if metrics.dry_run {
        (
            ("ManifestsWouldDelete", metrics.manifests_would_delete),
            ("TagsWouldRemove", metrics.tags_would_remove),
        )
    } else {
        (
            ("ManifestsDeleted", metrics.manifests_deleted),
            ("TagsRemoved", metrics.tags_removed),
        )
    };
    let mut names = vec![
        json!({"Name": manifests.0, "Unit": "Count"}),
        json!({"Name": tags.0, "Unit": "Count"}),
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
        "Failures": metrics.failures,
    });
    doc[manifests.0] = json!(manifests.1);
    doc[tags.0] = json!(tags.1);
    // Rare events: published only when they happen, so they cost nothing otherwise.
    for (name, value) in [
        ("RepositoriesSkipped", metrics.skipped),
        ("SweepsGivenUp", metrics.sweeps_given_up),
    ] {
        if value > 0 {
            names.push(json!({"Name": name, "Unit": "Count"}));
            doc[name] = json!(value);
        }
    }
    // With a budget, both every time (zeros included): an alarm on BytesOverBudget > 0 then
    // sees a repository that cannot get under budget.
    if let Some(over) = metrics.bytes_over_budget {
        names.push(json!({"Name": "BytesOverBudget", "Unit": "Bytes"}));
        doc["BytesOverBudget"] = json!(over);
        names.push(json!({"Name": "EvictedForBudget", "Unit": "Count"}));
        doc["EvictedForBudget"] = json!(metrics.evicted_for_budget);
    }
    if let Some(bytes) = metrics.bytes_reclaimed_estimate {
        names.push(json!({"Name": "BytesReclaimedEstimate", "Unit": "Bytes"}));
        doc["BytesReclaimedEstimate"] = json!(bytes);
    }
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"] = Value::Array(names);
    doc
}

/// The `Repository` dimension value when metrics are not published per repository: every
/// repository's numbers add up in one series (3 custom metrics in all instead of 3 per repository;
/// the audit trail keeps the per-repository detail).
pub const ALL_REPOSITORIES: &str = "(all)";

/// Where and how the EMF lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emf {
    pub namespace: String,
    /// One series per repository (`Repository` = its name), or one for all ([`ALL_REPOSITORIES`]).
    pub per_repository: bool,
}

impl Emf {
    /// Writes the EMF lines to stdout, where the Lambda log agent picks them up.
    pub fn emit(&self, metrics: &[RepositoryMetrics]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for m in metrics {
            println!("{}", self.document(m, now));
        }
    }

    /// The EMF document of one repository's metrics, under this configuration.
    pub fn document(&self, metrics: &RepositoryMetrics, timestamp_ms: u64) -> Value {
        if self.per_repository {
            return emf(&self.namespace, metrics, timestamp_ms);
        }
        let pooled = RepositoryMetrics {
            repository: ALL_REPOSITORIES.to_owned(),
            ..metrics.clone()
        };
        emf(&self.namespace, &pooled, timestamp_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lasting_github_failure_counts_as_a_skipped_repository() {
        let mut report = RepositoryRun {
            repository: "app".into(),
            tag_expiry_skipped: Some("listing branches of acme/app: HTTP 502".into()),
            ..Default::default()
        };
        assert_eq!(RepositoryMetrics::from_prune(&report).skipped, 0, "a 5xx");
        report.tag_expiry_skipped_lasting = true;
        assert_eq!(RepositoryMetrics::from_prune(&report).skipped, 1, "a 404");
        report.tag_expiry_skipped = None;
        assert_eq!(RepositoryMetrics::from_prune(&report).skipped, 0);
    }

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
            ..Default::default()
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
        assert!(doc.get("ManifestsWouldDelete").is_none());
        assert!(doc.get("RepositoriesSkipped").is_none());

        m.skipped = 1;
        m.sweeps_given_up = 1;
        let doc = emf("EcrCachePruner", &m, 1);
        assert_valid_emf(&doc);
        assert_eq!(doc["RepositoriesSkipped"], 1);
        assert_eq!(doc["SweepsGivenUp"], 1);
    }

    #[test]
    fn pooled_metrics_name_no_repository() {
        let m = RepositoryMetrics {
            repository: "team/app".into(),
            manifests_deleted: 2,
            ..Default::default()
        };
        let pooled = Emf {
            namespace: "EcrCachePruner".into(),
            per_repository: false,
        };
        let doc = pooled.document(&m, 1);
        assert_valid_emf(&doc);
        assert_eq!(doc["Repository"], ALL_REPOSITORIES);
        assert_eq!(doc["ManifestsDeleted"], 2);
        let per_repository = Emf {
            per_repository: true,
            ..pooled
        };
        assert_eq!(per_repository.document(&m, 1)["Repository"], "team/app");
    }

    #[test]
    fn a_budget_publishes_what_is_over_and_what_was_evicted() {
        use crate::app::budget::BudgetRun;
        let mut report = RepositoryRun {
            repository: "app".into(),
            budget: Some(BudgetRun {
                budget_bytes: 100,
                footprint_bytes: 300,
                footprint_after: 150,
                ..BudgetRun::default()
            }),
            ..RepositoryRun::default()
        };
        let mut m = RepositoryMetrics::from_prune(&report);
        let mut tag = TagRun {
            repository: "app".into(),
            tag: "cache-x".into(),
            digest: None,
            other_tags: vec![],
            outcome: TagOutcome::Removed {
                image_deleted: true,
            },
            removal: None,
            referrers: None,
        }
        .because(TagExpiry::OverBudget {
            footprint_bytes: 300,
            budget_bytes: 100,
        });
        m.add_tag(&tag);
        tag.removal = Some(TagExpiry::BranchGone);
        m.add_tag(&tag);
        let doc = emf("EcrCachePruner", &m, 1);
        assert_valid_emf(&doc);
        assert_eq!(doc["BytesOverBudget"], 50);
        assert_eq!(doc["EvictedForBudget"], 1);
        assert_eq!(doc["TagsRemoved"], 2);
        // Within budget: zeros, still published; without a budget: absent.
        report.budget.as_mut().unwrap().footprint_after = 90;
        let doc = emf("EcrCachePruner", &RepositoryMetrics::from_prune(&report), 1);
        assert_eq!(doc["BytesOverBudget"], 0);
        report.budget = None;
        let doc = emf("EcrCachePruner", &RepositoryMetrics::from_prune(&report), 1);
        assert!(doc.get("BytesOverBudget").is_none() && doc.get("EvictedForBudget").is_none());
    }

    #[test]
    fn a_dry_run_publishes_what_it_would_delete() {
        let report = RepositoryRun {
            repository: "team/app".into(),
            dry_run: true,
            would_delete: vec![crate::core::plan::PlannedDeletion {
                digest: "sha256:1".into(),
                size_bytes: None,
                pushed_at: None,
                reason: crate::core::plan::DeleteReason::UntaggedUnreferencedCache,
                classified_by: crate::core::plan::ClassifiedBy::Manifest,
                subject: None,
            }],
            ..Default::default()
        };
        let mut m = RepositoryMetrics::from_prune(&report);
        m.add_tag(&TagRun {
            repository: "team/app".into(),
            tag: "cache-x".into(),
            digest: None,
            other_tags: vec![],
            outcome: TagOutcome::WouldRemove {
                image_deleted: true,
            },
            removal: None,
            referrers: None,
        });
        let doc = emf("EcrCachePruner", &m, 1);
        assert_valid_emf(&doc);
        assert_eq!(doc["ManifestsWouldDelete"], 1);
        assert_eq!(doc["TagsWouldRemove"], 1);
        // Three series in a dry run too: no live-run zeros beside the rehearsal's numbers.
        assert!(doc.get("ManifestsDeleted").is_none());
        assert!(doc.get("TagsRemoved").is_none());
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }
}
