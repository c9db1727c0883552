//! Branch deletions in the pruner against moto: which cache tags go and which stay.

mod support;

use serde_json::{json, Value};
use support::moto::{ecr_client, event, pruner, unique_name};
use support::registry::*;

/// The `delete` sample for `branch`, on a GitHub repository `acme/<repository>`.
fn branch_deleted(repository: &str, branch: &str) -> Value {
    let mut e = event("github-delete-branch.json");
    e["detail"]["ref"] = json!(branch);
    e["detail"]["repository"]["name"] = json!(repository);
    e["detail"]["repository"]["full_name"] = json!(format!("acme/{repository}"));
    e
}

struct Repo {
    name: String,
    feature: Manifest,
    shared: Manifest,
    main: Manifest,
    app_under_prefix: Manifest,
    release_cache: Manifest,
}

async fn seed(ecr: &aws_sdk_ecr::Client) -> Repo {
    let name = unique_name("branches");
    create_repository(ecr, &name).await;
    let main = cache_manifest(&format!("{name}-main"));
    push(ecr, &name, &main, Some("cache-main")).await;
    let feature = cache_manifest(&format!("{name}-feature"));
    push(ecr, &name, &feature, Some("cache-feature-login")).await;
    // Two branches whose caches are byte-identical share one digest.
    let shared = cache_manifest(&format!("{name}-shared"));
    push(ecr, &name, &shared, Some("cache-fix-a")).await;
    push(ecr, &name, &shared, Some("cache-fix-b")).await;
    // Someone pushed an application image under the cache prefix.
    let app_under_prefix = app_manifest(&name, "amd64");
    push(ecr, &name, &app_under_prefix, Some("cache-tools")).await;
    let release_cache = cache_manifest(&format!("{name}-release"));
    push(ecr, &name, &release_cache, Some("cache-release-1.2")).await;
    Repo {
        name,
        feature,
        shared,
        main,
        app_under_prefix,
        release_cache,
    }
}

#[tokio::test]
async fn deleted_branch_loses_its_cache_tag_and_nothing_else() {
    let ecr = ecr_client();
    let r = seed(&ecr).await;
    let report = pruner(&[])
        .handle(branch_deleted(&r.name, "feature/login"))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "tags_processed");
    assert_eq!(report["tags"][0]["outcome"], "removed");
    assert_eq!(report["tags"][0]["tag"], "cache-feature-login");
    assert_eq!(report["tags"][0]["digest"], json!(r.feature.digest));
    let after = contents(&ecr, &r.name).await;
    assert!(
        !after.contains_key(&r.feature.digest),
        "last tag removed: image gone"
    );
    assert_eq!(after[&r.main.digest], vec!["cache-main"]);
    assert_eq!(after[&r.shared.digest], vec!["cache-fix-a", "cache-fix-b"]);
    assert_eq!(after[&r.app_under_prefix.digest], vec!["cache-tools"]);
    assert_eq!(after.len(), 4);
}

#[tokio::test]
async fn shared_digest_keeps_its_other_tags() {
    let ecr = ecr_client();
    let r = seed(&ecr).await;
    let report = pruner(&[])
        .handle(branch_deleted(&r.name, "fix/a"))
        .await
        .unwrap();
    assert_eq!(report["tags"][0]["outcome"], "removed");
    assert_eq!(report["tags"][0]["image_deleted"], false);
    assert_eq!(report["tags"][0]["other_tags"], json!(["cache-fix-b"]));
    assert_eq!(
        contents(&ecr, &r.name).await[&r.shared.digest],
        vec!["cache-fix-b"]
    );
}

#[tokio::test]
async fn push_with_deleted_true_removes_the_tag_too() {
    let ecr = ecr_client();
    let r = seed(&ecr).await;
    let mut e = event("github-push-deleted.json");
    e["detail"]["repository"]["full_name"] = json!(format!("acme/{}", r.name));
    pruner(&[]).handle(e).await.unwrap();
    assert!(!contents(&ecr, &r.name)
        .await
        .contains_key(&r.feature.digest));
}

#[tokio::test]
async fn protected_colliding_and_non_cache_tags_are_kept() {
    let ecr = ecr_client();
    let r = seed(&ecr).await;
    let before = contents(&ecr, &r.name).await;
    let p = pruner(&[("PROTECTED_BRANCHES", "main,release/*")]);
    for branch in ["main", "release/1.2", "release-1.2"] {
        let report = p.handle(branch_deleted(&r.name, branch)).await.unwrap();
        assert_eq!(report["outcome"], "ignored", "{branch}: {report}");
    }
    let report = p.handle(branch_deleted(&r.name, "tools")).await.unwrap();
    assert_eq!(report["tags"][0]["outcome"], "kept");
    assert_eq!(report["tags"][0]["reason"], "not_cache_manifest");
    let mut tag_event = event("github-delete-tag.json");
    tag_event["detail"]["repository"]["full_name"] = json!(format!("acme/{}", r.name));
    assert_eq!(p.handle(tag_event).await.unwrap()["outcome"], "ignored");
    assert_eq!(contents(&ecr, &r.name).await, before);
    assert!(before.contains_key(&r.release_cache.digest));
}

#[tokio::test]
async fn dry_run_reports_the_tag_and_keeps_it() {
    let ecr = ecr_client();
    let r = seed(&ecr).await;
    let before = contents(&ecr, &r.name).await;
    let report = pruner(&[("DRY_RUN", "true")])
        .handle(branch_deleted(&r.name, "feature/login"))
        .await
        .unwrap();
    assert_eq!(report["tags"][0]["outcome"], "would_remove");
    assert_eq!(report["tags"][0]["tag"], "cache-feature-login");
    assert_eq!(contents(&ecr, &r.name).await, before);
}

#[tokio::test]
async fn repeated_delete_and_missing_things_succeed() {
    let ecr = ecr_client();
    let r = seed(&ecr).await;
    let p = pruner(&[]);
    p.handle(branch_deleted(&r.name, "feature/login"))
        .await
        .unwrap();
    let again = p
        .handle(branch_deleted(&r.name, "feature/login"))
        .await
        .unwrap();
    assert_eq!(again["tags"][0]["outcome"], "tag_not_found");
    let never = p
        .handle(branch_deleted(&r.name, "never-built"))
        .await
        .unwrap();
    assert_eq!(never["tags"][0]["outcome"], "tag_not_found");
    let no_repo = p
        .handle(branch_deleted(&unique_name("unmapped"), "x"))
        .await
        .unwrap();
    assert_eq!(no_repo["tags"][0]["outcome"], "repository_not_found");
}

#[tokio::test]
async fn repository_map_fans_out_to_several_repositories() {
    let ecr = ecr_client();
    let (a, b) = (seed(&ecr).await, seed(&ecr).await);
    let map = format!("acme/monorepo={},acme/monorepo={}", a.name, b.name);
    let report = pruner(&[("REPOSITORY_MAP", &map)])
        .handle(branch_deleted("monorepo", "feature/login"))
        .await
        .unwrap();
    assert_eq!(report["tags"].as_array().unwrap().len(), 2);
    for r in [&a, &b] {
        assert!(!contents(&ecr, &r.name)
            .await
            .contains_key(&r.feature.digest));
    }
}

#[tokio::test]
async fn repositories_outside_the_deployment_scope_are_left_alone() {
    // The template scopes IAM (and SWEEP_REPOSITORIES) to RepositoryNamePattern: a GitHub
    // repository mapped to an ECR repository outside it is not in scope, not an AccessDenied.
    let ecr = ecr_client();
    let (inside, outside) = (seed(&ecr).await, seed(&ecr).await);
    let map = format!(
        "acme/monorepo={},acme/monorepo={}",
        inside.name, outside.name
    );
    let report = pruner(&[
        ("REPOSITORY_MAP", &map),
        ("SWEEP_REPOSITORIES", &inside.name),
    ])
    .handle(branch_deleted("monorepo", "feature/login"))
    .await
    .unwrap();
    let outcomes: Vec<(&str, &str)> = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["repository"].as_str().unwrap(),
                t["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (inside.name.as_str(), "removed"),
            (outside.name.as_str(), "not_in_scope")
        ]
    );
    assert!(contents(&ecr, &outside.name)
        .await
        .contains_key(&outside.feature.digest));
}

#[tokio::test]
async fn last_tag_of_an_index_referenced_cache_is_kept() {
    // Removing an image's last tag deletes the image; an index still needs it (rule 3).
    let ecr = ecr_client();
    let name = unique_name("refd");
    create_repository(&ecr, &name).await;
    let cache = cache_manifest(&format!("{name}-z"));
    push(&ecr, &name, &cache, Some("cache-feature-z")).await;
    let bundle = index(&[(&cache, json!({}))]);
    push(&ecr, &name, &bundle, Some("bundle")).await;
    let before = contents(&ecr, &name).await;

    let report = pruner(&[])
        .handle(branch_deleted(&name, "feature/z"))
        .await
        .unwrap();
    assert_eq!(report["tags"][0]["outcome"], "kept", "{report}");
    assert_eq!(report["tags"][0]["reason"], "referenced_by_index");
    assert_eq!(report["tags"][0]["index"], json!(bundle.digest));
    assert_eq!(contents(&ecr, &name).await, before);
}

#[tokio::test]
async fn branch_deletion_arrives_through_the_queue() {
    let ecr = ecr_client();
    let r = seed(&ecr).await;
    let mut batch = event("sqs-batch-branch-delete.json");
    let mut body: Value =
        serde_json::from_str(batch["Records"][0]["body"].as_str().unwrap()).unwrap();
    body["detail"]["repository"]["full_name"] = json!(format!("acme/{}", r.name));
    body["time"] = json!(support::moto::rfc3339(support::moto::now_secs()));
    batch["Records"][0]["body"] = json!(body.to_string());
    let response = pruner(&[]).handle(batch).await.unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert!(!contents(&ecr, &r.name)
        .await
        .contains_key(&r.feature.digest));
}
