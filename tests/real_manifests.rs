//! The classifier and the event decoder over artefacts real tools wrote: BuildKit cache exports
//! (image-manifest and index forms), buildx attestation indexes and manifests, Docker manifest
//! lists, GitHub webhook payloads and AWS's own ECR event samples. They are read in place from
//! the shared corpus (`../shared/real-manifests/`, or `REAL_MANIFESTS_DIR`), never copied into
//! the project: several sources' licences forbid it. Its SOURCES.md names each file's origin.
//! Where the corpus is absent (a user's clone) each test records itself as skipped and returns.

mod support;

use std::collections::HashSet;
use std::path::Path;

use ecr_cache_pruner::core::manifest::{classify_manifest, ManifestKind, BUILDKIT_CACHE_CONFIG};
use ecr_cache_pruner::core::trigger::{decide, Decision, Trigger};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::corpus::corpus_or_skip;
use support::moto::{config, ecr_client, pruner, unique_name};
use support::registry::{contents, create_repository, push, Manifest};

/// Every JSON file of the corpus whose name starts with `prefix`: (name, exact bytes).
fn files(corpus: &Path, prefix: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with(prefix) && name.ends_with(".json"))
        .map(|name| {
            let bytes = std::fs::read_to_string(corpus.join(&name)).unwrap();
            (name, bytes)
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no {prefix}* file in the corpus");
    found
}

fn media_type(body: &str) -> Option<String> {
    serde_json::from_str::<Value>(body).unwrap()["mediaType"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn every_real_buildkit_cache_manifest_is_cache() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    for (name, body) in files(&corpus, "buildkit-cache-image-manifest-") {
        let kind = classify_manifest(&body, media_type(&body).as_deref());
        assert_eq!(kind, ManifestKind::CacheManifest, "{name}");
    }
}

#[test]
fn nothing_else_in_the_corpus_is_cache() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let mut seen = 0;
    for prefix in [
        "buildkit-cache-index-",
        "buildkit-docs-attestation-",
        "buildx-",
        "docker-",
        "oci-image-manifest-",
    ] {
        for (name, body) in files(&corpus, prefix) {
            let kind = classify_manifest(&body, media_type(&body).as_deref());
            assert_ne!(kind, ManifestKind::CacheManifest, "{name}");
            assert!(
                !matches!(kind, ManifestKind::Unreadable { .. }),
                "{name}: {kind:?}"
            );
            seen += 1;
        }
    }
    assert!(seen >= 15, "{seen}");
}

#[test]
fn an_attestation_with_the_empty_config_and_an_artifact_type_is_not_cache() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let (name, body) = files(&corpus, "buildkit-docs-attestation-manifest-oci-artifact-")
        .pop()
        .unwrap();
    let kind = classify_manifest(&body, media_type(&body).as_deref());
    let ManifestKind::OtherManifest {
        config_media_type, ..
    } = kind
    else {
        panic!("{name}: {kind:?}")
    };
    assert_eq!(
        config_media_type.as_deref(),
        Some("application/vnd.oci.empty.v1+json")
    );
}

#[test]
fn every_real_index_references_each_of_its_manifests() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    for prefix in [
        "buildx-index-with-attestations-",
        "docker-manifest-list-",
        "buildkit-docs-attestation-index-",
        "buildkit-cache-index-",
    ] {
        for (name, body) in files(&corpus, prefix) {
            let parsed: Value = serde_json::from_str(&body).unwrap();
            let expected: HashSet<String> = parsed["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["digest"].as_str().unwrap().to_owned())
                .collect();
            let kind = classify_manifest(&body, media_type(&body).as_deref());
            let ManifestKind::Index { children } = kind else {
                panic!("{name}: {kind:?}")
            };
            let children: HashSet<String> = children.into_iter().collect();
            assert_eq!(children, expected, "{name}");
        }
    }
}

#[test]
fn the_cache_index_form_names_the_cache_config_last() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    // The index form (image-manifest=false) is an index, never a cache manifest to delete:
    // its "manifests" are layer blobs and the cache config.
    for (name, body) in files(&corpus, "buildkit-cache-index-") {
        let parsed: Value = serde_json::from_str(&body).unwrap();
        let last = parsed["manifests"].as_array().unwrap().last().cloned();
        assert_eq!(last.unwrap()["mediaType"], BUILDKIT_CACHE_CONFIG, "{name}");
    }
}

fn rules() -> ecr_cache_pruner::inbound::config::Config {
    config(&[("SWEEP_REPOSITORIES", "*")])
}

#[test]
fn every_real_ecr_event_is_decoded_or_ignored_with_a_reason() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let owned = rules();
    for (name, body) in files(&corpus, "ecr-event-") {
        let event: Value = serde_json::from_str(&body).unwrap();
        let decision = decide(&event, &owned.trigger_rules());
        let Ok(Decision::Ignore { reason }) = &decision else {
            panic!("{name}: {decision:?}")
        };
        // None of AWS's samples is a cache push: each says why it is left alone.
        let why = match name.as_str() {
            n if n.starts_with("ecr-event-push-") => "is not a cache tag",
            "ecr-event-delete-1.json" => "is not PUSH",
            n if n.contains("image-action-") => "is not PUSH",
            _ => "is not an image action",
        };
        assert!(reason.contains(why), "{name}: {reason}");
    }
}

#[test]
fn a_real_push_event_with_a_cache_tag_is_a_cache_push() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let owned = rules();
    let (_, body) = files(&corpus, "ecr-event-push-2").pop().unwrap();
    let mut event: Value = serde_json::from_str(&body).unwrap();
    event["detail"]["image-tag"] = json!("cache-main");
    let decision = decide(&event, &owned.trigger_rules()).unwrap();
    assert!(
        matches!(&decision, Decision::Act(Trigger::CachePush { tag, .. }) if tag == "cache-main"),
        "{decision:?}"
    );
    // AWS's other sample carries a shortened digest: refused as malformed, nothing done.
    let (_, body) = files(&corpus, "ecr-event-push-1").pop().unwrap();
    let mut event: Value = serde_json::from_str(&body).unwrap();
    event["detail"]["image-tag"] = json!("cache-main");
    let err = decide(&event, &owned.trigger_rules()).unwrap_err();
    assert!(err.to_string().contains("invalid image-digest"), "{err}");
}

fn github_event(detail_type: &str, payload: &str) -> Value {
    json!({"version": "0", "id": "e", "detail-type": detail_type, "source": "github.com",
           "account": "123456789012", "time": "2026-11-30T12:00:00Z", "region": "us-east-1",
           "resources": [], "detail": serde_json::from_str::<Value>(payload).unwrap()})
}

#[test]
fn real_github_payloads_are_decoded() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let owned = rules();
    for (name, body) in files(&corpus, "octokit-delete") {
        let decision = decide(&github_event("delete", &body), &owned.trigger_rules()).unwrap();
        let ref_type = serde_json::from_str::<Value>(&body).unwrap()["ref_type"].clone();
        match (ref_type.as_str(), &decision) {
            (Some("tag"), Decision::Ignore { reason }) => assert!(reason.contains("git tag")),
            (Some("branch"), Decision::Act(Trigger::BranchDeleted { .. })) => {}
            _ => panic!("{name}: {decision:?}"),
        }
    }
    for (name, body) in files(&corpus, "octokit-push") {
        // Pushes of commits and of a new branch: neither deletes a branch.
        let decision = decide(&github_event("push", &body), &owned.trigger_rules()).unwrap();
        assert!(matches!(decision, Decision::Ignore { .. }), "{name}");
    }
    // The same payload, as GitHub sends it when the branch is deleted.
    let (_, body) = files(&corpus, "octokit-push-payload").pop().unwrap();
    let mut payload: Value = serde_json::from_str(&body).unwrap();
    payload["deleted"] = json!(true);
    payload["ref"] = json!("refs/heads/feature/login");
    let decision = decide(
        &github_event("push", &payload.to_string()),
        &owned.trigger_rules(),
    )
    .unwrap();
    let Decision::Act(Trigger::BranchDeleted { tags, .. }) = decision else {
        panic!("{decision:?}")
    };
    assert_eq!(tags, vec!["cache-feature-login"]);
}

/// The exact bytes of a corpus file as a manifest to push (its sha256 is its digest).
fn real(corpus: &Path, name: &str) -> Manifest {
    let body = std::fs::read_to_string(corpus.join(name)).unwrap();
    let media_type: &'static str = Box::leak(media_type(&body).unwrap().into_boxed_str());
    let digest = format!("sha256:{:x}", Sha256::digest(body.as_bytes()));
    Manifest {
        body,
        media_type,
        digest,
    }
}

#[tokio::test]
async fn a_push_prunes_the_real_cache_manifests_and_nothing_else_on_moto() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let ecr = ecr_client();
    let name = unique_name("real");
    create_repository(&ecr, &name).await;
    let caches: Vec<Manifest> = files(&corpus, "buildkit-cache-image-manifest-")
        .into_iter()
        .map(|(file, _)| real(&corpus, &file))
        .collect();
    let (current, superseded) = caches.split_last().unwrap();
    for cache in superseded {
        push(&ecr, &name, cache, None).await;
    }
    // Untagged manifests that are not cache: an attestation, plain images.
    for file in [
        "buildx-attestation-manifest-1.json",
        "buildkit-docs-attestation-manifest-oci-artifact-example.json",
        "docker-image-manifest-plain-1.json",
        "oci-image-manifest-plain-1.json",
    ] {
        push(&ecr, &name, &real(&corpus, file), None).await;
    }
    push(&ecr, &name, current, Some("cache-main")).await;
    let before = contents(&ecr, &name).await;

    let mut event = support::moto::event("ecr-push-cache.json");
    event["detail"]["repository-name"] = json!(name);
    event["detail"]["image-digest"] = json!(current.digest);
    event["detail"]["image-tag"] = json!("cache-main");
    let report = pruner(&[]).handle(event).await.unwrap();

    let mut expected = before.clone();
    for cache in superseded {
        expected.remove(&cache.digest);
    }
    assert_eq!(contents(&ecr, &name).await, expected, "{report}");
    assert_eq!(
        report["repositories"][0]["deleted"]
            .as_array()
            .unwrap()
            .len(),
        superseded.len()
    );
}

#[test]
fn real_pull_request_and_merge_group_payloads_are_decoded() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let owned = ecr_cache_pruner::inbound::config::Config::from_lookup(|name| match name {
        "CACHE_TAG_TEMPLATES" => Some("cache-{branch},pr-{pr}-cache".into()),
        _ => None,
    })
    .unwrap();
    let rules = owned.trigger_rules();
    // GitHub's closed pull request (not merged): its {pr} tag goes.
    let (_, body) = files(&corpus, "octokit-pull-request-closed").pop().unwrap();
    let decision = decide(&github_event("pull_request", &body), &rules).unwrap();
    let Decision::Act(Trigger::PullRequestClosed { number, tags, .. }) = &decision else {
        panic!("{decision:?}")
    };
    assert_eq!((*number, tags.clone()), (2, vec!["pr-2-cache".to_owned()]));
    // A merge group asking for checks is not an end; the same group destroyed is (the schema
    // requires `reason`: merged, invalidated or dequeued).
    let (_, body) = files(&corpus, "octokit-merge-group-checks-requested")
        .pop()
        .unwrap();
    let decision = decide(&github_event("merge_group", &body), &rules).unwrap();
    assert!(matches!(decision, Decision::Ignore { .. }), "{decision:?}");
    let schema: Value = serde_json::from_str(
        &files(&corpus, "octokit-merge-group-destroyed.schema")
            .pop()
            .unwrap()
            .1,
    )
    .unwrap();
    let reasons = schema["properties"]["reason"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    let mut payload: Value = serde_json::from_str(&body).unwrap();
    payload["action"] = json!("destroyed");
    for reason in reasons {
        payload["reason"] = reason.clone();
        let decision = decide(&github_event("merge_group", &payload.to_string()), &rules).unwrap();
        let Decision::Act(Trigger::BranchDeleted { branch, tags, .. }) = &decision else {
            panic!("{reason}: {decision:?}")
        };
        assert!(
            branch.starts_with("gh-readonly-queue/main/pr-104-"),
            "{branch}"
        );
        assert_eq!(tags.len(), 1);
        assert!(
            tags[0].starts_with("cache-gh-readonly-queue-main-pr-104-"),
            "{tags:?}"
        );
    }
}
