//! The pruner against a real moto server over HTTP, driven by the sample events in `events/`.

mod support;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use support::moto::{ecr_client, event, pruner, unique_name};
use support::registry::*;

/// The cache-tag push sample, retargeted at `repository` and `digest`.
fn push_event(repository: &str, digest: &str) -> Value {
    let mut e = event("ecr-push-cache.json");
    e["detail"]["repository-name"] = json!(repository);
    e["detail"]["image-digest"] = json!(digest);
    e
}

/// A repository as CI leaves it after a few builds: the current `cache-main` and
/// `cache-feature-login`, two superseded cache manifests, a multi-arch release with provenance,
/// an untagged app image, and a cache manifest that some index references.
struct Scenario {
    repository: String,
    current_cache: Manifest,
    stale: Vec<Manifest>,
    keep: Vec<(String, &'static str)>,
}

async fn seed(ecr: &aws_sdk_ecr::Client) -> Scenario {
    let repository = unique_name("app");
    create_repository(ecr, &repository).await;

    let stale = vec![
        cache_manifest(&format!("{repository}-old1")),
        cache_manifest(&format!("{repository}-old2")),
    ];
    for m in &stale {
        push(ecr, &repository, m, None).await;
    }
    let current_cache = cache_manifest(&format!("{repository}-main"));
    push(ecr, &repository, &current_cache, Some("cache-main")).await;
    let feature_cache = cache_manifest(&format!("{repository}-feature"));
    push(
        ecr,
        &repository,
        &feature_cache,
        Some("cache-feature-login"),
    )
    .await;

    let amd64 = app_manifest(&repository, "amd64");
    let arm64 = app_manifest(&repository, "arm64");
    let provenance = attestation_manifest(&repository, &amd64.digest);
    for m in [&amd64, &arm64, &provenance] {
        push(ecr, &repository, m, None).await;
    }
    let release = index(&[
        (&amd64, platform("amd64")),
        (&arm64, platform("arm64")),
        (&provenance, attestation_of(&amd64.digest)),
    ]);
    push(ecr, &repository, &release, Some("v1.4.2")).await;

    let orphan_app = app_manifest(&format!("{repository}-orphan"), "amd64");
    push(ecr, &repository, &orphan_app, None).await;

    let referenced_cache = cache_manifest(&format!("{repository}-referenced"));
    push(ecr, &repository, &referenced_cache, None).await;
    let odd_index = index(&[(&referenced_cache, json!({}))]);
    push(ecr, &repository, &odd_index, Some("bundle")).await;

    let keep = vec![
        (current_cache.digest.clone(), "tagged current cache"),
        (feature_cache.digest.clone(), "tagged feature cache"),
        (amd64.digest.clone(), "multi-arch child amd64"),
        (arm64.digest.clone(), "multi-arch child arm64"),
        (provenance.digest.clone(), "attestation manifest"),
        (release.digest.clone(), "tagged index"),
        (orphan_app.digest.clone(), "untagged non-cache image"),
        (
            referenced_cache.digest.clone(),
            "index-referenced cache manifest",
        ),
        (odd_index.digest.clone(), "tagged index of a cache manifest"),
    ];
    Scenario {
        repository,
        current_cache,
        stale,
        keep,
    }
}

fn reported(report: &Value, key: &str) -> Vec<String> {
    let mut digests: Vec<String> = report["repositories"][0][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_owned())
        .collect();
    digests.sort();
    digests
}

fn sorted(manifests: &[Manifest]) -> Vec<String> {
    let mut v: Vec<String> = manifests.iter().map(|m| m.digest.clone()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn push_prunes_stale_cache_and_keeps_everything_else() {
    let ecr = ecr_client();
    let s = seed(&ecr).await;
    let report = pruner(&[])
        .handle(push_event(&s.repository, &s.current_cache.digest))
        .await
        .expect("prune succeeds");

    assert_eq!(report["outcome"], "pruned");
    assert_eq!(report["dry_run"], false);
    assert_eq!(reported(&report, "deleted"), sorted(&s.stale));
    for entry in report["repositories"][0]["deleted"].as_array().unwrap() {
        assert!(entry["reason"]
            .as_str()
            .unwrap()
            .contains("untagged BuildKit cache manifest"));
        assert!(entry["size_bytes"].is_number());
    }
    let after = contents(&ecr, &s.repository).await;
    for m in &s.stale {
        assert!(
            !after.contains_key(&m.digest),
            "stale cache {} survived",
            m.digest
        );
    }
    for (digest, what) in &s.keep {
        assert!(after.contains_key(digest), "{what} ({digest}) was deleted");
    }
    assert_eq!(after.len(), s.keep.len());
    assert_eq!(after[&s.current_cache.digest], vec!["cache-main"]);

    // kept untagged images carry their reasons
    let kept = &report["repositories"][0]["kept"];
    let reason_of = |digest: &str| {
        kept.as_array()
            .unwrap()
            .iter()
            .find(|k| k["digest"] == digest)
            .map(|k| k["reason"].as_str().unwrap().to_owned())
    };
    let keep: BTreeMap<&str, &str> = s.keep.iter().map(|(d, w)| (*w, d.as_str())).collect();
    assert_eq!(
        reason_of(keep["index-referenced cache manifest"]).as_deref(),
        Some("referenced_by_index")
    );
    assert_eq!(
        reason_of(keep["attestation manifest"]).as_deref(),
        Some("referenced_by_index")
    );
    assert_eq!(
        reason_of(keep["untagged non-cache image"]).as_deref(),
        Some("not_cache_manifest")
    );
}

#[tokio::test]
async fn dry_run_reports_and_deletes_nothing() {
    let ecr = ecr_client();
    let s = seed(&ecr).await;
    let before = contents(&ecr, &s.repository).await;
    let report = pruner(&[("DRY_RUN", "true")])
        .handle(push_event(&s.repository, &s.current_cache.digest))
        .await
        .unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(reported(&report, "would_delete"), sorted(&s.stale));
    assert!(reported(&report, "deleted").is_empty());
    assert_eq!(contents(&ecr, &s.repository).await, before);
}

#[tokio::test]
async fn duplicate_event_succeeds_and_changes_nothing() {
    let ecr = ecr_client();
    let s = seed(&ecr).await;
    let p = pruner(&[]);
    let event = push_event(&s.repository, &s.current_cache.digest);
    p.handle(event.clone()).await.unwrap();
    let after_first = contents(&ecr, &s.repository).await;
    let second = p.handle(event).await.expect("duplicate delivery is fine");
    assert_eq!(second["outcome"], "pruned");
    assert!(reported(&second, "deleted").is_empty());
    assert_eq!(contents(&ecr, &s.repository).await, after_first);
}

#[tokio::test]
async fn triggering_digest_is_kept_even_if_already_untagged() {
    // The pushed manifest was superseded before the (delayed) event arrived: it is left for the
    // next event rather than deleted by its own event.
    let ecr = ecr_client();
    let repository = unique_name("trig");
    create_repository(&ecr, &repository).await;
    let pushed = cache_manifest(&format!("{repository}-pushed"));
    push(&ecr, &repository, &pushed, None).await;
    let newer = cache_manifest(&format!("{repository}-newer"));
    push(&ecr, &repository, &newer, Some("cache-main")).await;
    let report = pruner(&[])
        .handle(push_event(&repository, &pushed.digest))
        .await
        .unwrap();
    assert!(reported(&report, "deleted").is_empty());
    assert!(contents(&ecr, &repository)
        .await
        .contains_key(&pushed.digest));
    assert_eq!(
        report["repositories"][0]["kept"][0]["reason"],
        "trigger_digest"
    );
}

#[tokio::test]
async fn sqs_batch_prunes_each_repository_once() {
    let ecr = ecr_client();
    let a = seed(&ecr).await;
    let b = seed(&ecr).await;
    let mut batch = event("sqs-batch-pushes.json");
    for (record, s) in batch["Records"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip([&a, &b])
    {
        let body = push_event(&s.repository, &s.current_cache.digest);
        record["body"] = json!(body.to_string());
    }
    let response = pruner(&[]).handle(batch).await.unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    for s in [&a, &b] {
        let after = contents(&ecr, &s.repository).await;
        assert_eq!(after.len(), s.keep.len(), "{}", s.repository);
        assert!(s.stale.iter().all(|m| !after.contains_key(&m.digest)));
    }
}

#[tokio::test]
async fn sqs_batch_fails_only_the_bad_records() {
    let ecr = ecr_client();
    let s = seed(&ecr).await;
    let mut batch = event("sqs-batch-pushes.json");
    let records = batch["Records"].as_array_mut().unwrap();
    records[0]["body"] = json!(push_event(&s.repository, &s.current_cache.digest).to_string());
    let missing = unique_name("gone");
    let mut bad = push_event(&missing, &s.current_cache.digest);
    bad["detail"]["image-digest"] = json!("sha256:not-a-digest");
    records[1]["body"] = json!(bad.to_string());
    let bad_id = records[1]["messageId"].clone();
    let response = pruner(&[]).handle(batch).await.unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": bad_id}]})
    );
    assert_eq!(contents(&ecr, &s.repository).await.len(), s.keep.len());
}

#[tokio::test]
async fn a_failed_record_without_message_id_does_not_fail_the_whole_batch() {
    let ecr = ecr_client();
    let s = seed(&ecr).await;
    let mut batch = event("sqs-batch-pushes.json");
    let records = batch["Records"].as_array_mut().unwrap();
    records[0]["body"] = json!(push_event(&s.repository, &s.current_cache.digest).to_string());
    records[1]["body"] = json!("not json");
    records[1].as_object_mut().unwrap().remove("messageId");
    let response = pruner(&[]).handle(batch).await.unwrap();
    // An empty itemIdentifier would make Lambda retry every record of the batch.
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert_eq!(contents(&ecr, &s.repository).await.len(), s.keep.len());
}

#[tokio::test]
async fn ignored_events_delete_nothing() {
    let ecr = ecr_client();
    let s = seed(&ecr).await;
    let before = contents(&ecr, &s.repository).await;
    let p = pruner(&[]);
    for sample in [
        "ecr-push-app.json",
        "ecr-push-failed.json",
        "ecr-delete.json",
    ] {
        let mut e = event(sample);
        e["detail"]["repository-name"] = json!(s.repository);
        let report = p.handle(e).await.unwrap();
        assert_eq!(report["outcome"], "ignored", "{sample}");
        assert!(report["reason"].as_str().unwrap().len() > 5);
    }
    assert_eq!(contents(&ecr, &s.repository).await, before);
}

#[tokio::test]
async fn malformed_events_are_rejected_and_delete_nothing() {
    let ecr = ecr_client();
    let s = seed(&ecr).await;
    let before = contents(&ecr, &s.repository).await;
    let p = pruner(&[]);
    let mut no_repo = push_event(&s.repository, &s.current_cache.digest);
    no_repo["detail"]
        .as_object_mut()
        .unwrap()
        .remove("repository-name");
    let mut bad_digest = push_event(&s.repository, "sha256:xyz");
    bad_digest["detail"]["image-digest"] = json!("sha256:xyz");
    let mut bad_repo = push_event("Not A Repo", &s.current_cache.digest);
    bad_repo["detail"]["repository-name"] = json!("Not A Repo");
    let mut wrong_type = push_event(&s.repository, &s.current_cache.digest);
    wrong_type["detail"]["image-tag"] = json!(42);
    for (what, e, expect) in [
        ("missing repository-name", no_repo, "repository-name"),
        ("bad digest", bad_digest, "image-digest"),
        ("bad repository name", bad_repo, "repository-name"),
        ("tag of the wrong type", wrong_type, "image-tag"),
        (
            "not an event at all",
            json!({"hello": "world"}),
            "expected an EventBridge event or an SQS event",
        ),
    ] {
        let err = p.handle(e).await.expect_err(what);
        assert!(err.to_string().contains(expect), "{what}: {err}");
    }
    assert_eq!(contents(&ecr, &s.repository).await, before);
}

#[tokio::test]
async fn missing_repository_is_reported_not_retried() {
    let report = pruner(&[])
        .handle(push_event(
            &unique_name("nope"),
            &format!("sha256:{}", "a".repeat(64)),
        ))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "repository_not_found");
}

#[tokio::test]
async fn push_path_estimates_reclaimed_bytes_when_asked() {
    let ecr = ecr_client();
    let s = seed(&ecr).await;
    let plain = pruner(&[("DRY_RUN", "true")])
        .handle(push_event(&s.repository, &s.current_cache.digest))
        .await
        .unwrap();
    assert!(plain["repositories"][0]
        .get("reclaimed_bytes_estimate")
        .is_none());
    let estimated = pruner(&[("DRY_RUN", "true"), ("ESTIMATE_RECLAIMED_BYTES", "true")])
        .handle(push_event(&s.repository, &s.current_cache.digest))
        .await
        .unwrap();
    // The two stale caches share no layers with anything kept: all their blobs are freed.
    let per_manifest = 1832 + (52_428_800 + 52_428_801 + 52_428_802);
    assert_eq!(
        estimated["repositories"][0]["reclaimed_bytes_estimate"],
        2 * per_manifest
    );
}
