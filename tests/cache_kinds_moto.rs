//! Every cache a team makes, against moto: several caches per branch, pull-request caches
//! removed when the pull request closes (kept when pushed after the close, or when the pull
//! request is open again), and a merge queue group's caches removed when it is destroyed.

mod support;

use serde_json::{json, Value};
use support::moto::{ecr_client, event, pruner, rfc3339, unique_name};
use support::registry::*;

const TEMPLATES: &str = "api-cache-{branch},web-cache-{branch},cache-pr-{pr}";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn on(mut e: Value, repository: &str, at: i64) -> Value {
    e["detail"]["repository"]["name"] = json!(repository);
    e["detail"]["repository"]["full_name"] = json!(format!("acme/{repository}"));
    e["time"] = json!(rfc3339(at));
    e
}

fn pull_request_closed(repository: &str, number: u64, at: i64) -> Value {
    let mut e = on(event("github-pull-request-closed.json"), repository, at);
    e["detail"]["number"] = json!(number);
    e["detail"]["pull_request"]["number"] = json!(number);
    e
}

/// The tags something happened to (not those absent in the first place).
fn acted(report: &Value) -> Vec<(String, String)> {
    tags_of(report)
        .into_iter()
        .filter(|(_, outcome)| outcome != "tag_not_found")
        .collect()
}

fn tags_of(report: &Value) -> Vec<(String, String)> {
    report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tag"].as_str().unwrap().to_owned(),
                t["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_deleted_branch_loses_every_cache_of_its_templates() {
    let ecr = ecr_client();
    let name = unique_name("kinds");
    create_repository(&ecr, &name).await;
    let api = cache_manifest(&format!("{name}-api"));
    push(&ecr, &name, &api, Some("api-cache-feature-login")).await;
    let web = cache_manifest(&format!("{name}-web"));
    push(&ecr, &name, &web, Some("web-cache-feature-login")).await;
    let main = cache_manifest(&format!("{name}-main"));
    push(&ecr, &name, &main, Some("api-cache-main")).await;
    let pr = cache_manifest(&format!("{name}-pr"));
    push(&ecr, &name, &pr, Some("cache-pr-7")).await;

    let mut e = on(event("github-delete-branch.json"), &name, now());
    e["detail"]["ref"] = json!("feature/login");
    let report = pruner(&[("CACHE_TAG_TEMPLATES", TEMPLATES)])
        .handle(e)
        .await
        .unwrap();
    assert_eq!(
        tags_of(&report),
        vec![
            ("api-cache-feature-login".into(), "removed".into()),
            ("web-cache-feature-login".into(), "removed".into()),
        ]
    );
    let after = contents(&ecr, &name).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[&main.digest], vec!["api-cache-main"]);
    assert_eq!(after[&pr.digest], vec!["cache-pr-7"]);
}

#[tokio::test]
async fn a_closed_pull_request_loses_its_cache_unless_pushed_since() {
    let ecr = ecr_client();
    let name = unique_name("prs");
    create_repository(&ecr, &name).await;
    let closed = cache_manifest(&format!("{name}-pr-5"));
    push(&ecr, &name, &closed, Some("cache-pr-5")).await;
    let branch = cache_manifest(&format!("{name}-branch"));
    push(&ecr, &name, &branch, Some("api-cache-pr-5")).await;
    let reopened = cache_manifest(&format!("{name}-pr-6"));
    push(&ecr, &name, &reopened, Some("cache-pr-6")).await;
    let pruner = pruner(&[("CACHE_TAG_TEMPLATES", TEMPLATES)]);

    let report = pruner
        .handle(pull_request_closed(&name, 5, now()))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "tags_processed");
    assert_eq!(
        tags_of(&report),
        vec![("cache-pr-5".into(), "removed".into())]
    );
    assert_eq!(
        report["tags"][0]["removal"]["reason"],
        "pull_request_closed"
    );
    // Pull request 6 was closed an hour ago and re-opened; its cache was pushed since.
    let report = pruner
        .handle(pull_request_closed(&name, 6, now() - 3600))
        .await
        .unwrap();
    assert_eq!(
        report["tags"][0]["reason"], "pushed_after_event",
        "{report}"
    );
    let after = contents(&ecr, &name).await;
    assert!(!after.contains_key(&closed.digest));
    assert_eq!(after[&reopened.digest], vec!["cache-pr-6"]);
    assert_eq!(
        after[&branch.digest],
        vec!["api-cache-pr-5"],
        "the branch named pr-5 keeps its cache"
    );

    // Other actions, and a deployment without a {pr} template, change nothing.
    let mut opened = pull_request_closed(&name, 6, now());
    opened["detail"]["action"] = json!("reopened");
    let report = pruner.handle(opened).await.unwrap();
    assert_eq!(report["outcome"], "ignored");
    let report = support::moto::pruner(&[])
        .handle(pull_request_closed(&name, 6, now()))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "ignored");
    assert!(report["reason"]
        .as_str()
        .unwrap()
        .contains("no {pr} template"));
    assert_eq!(contents(&ecr, &name).await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_an_open_pull_request_keeps_its_cache() {
    let ecr = ecr_client();
    let name = unique_name("reopen");
    create_repository(&ecr, &name).await;
    let open = cache_manifest(&format!("{name}-pr-8"));
    push(&ecr, &name, &open, Some("cache-pr-8")).await;
    let closed = cache_manifest(&format!("{name}-pr-9"));
    push(&ecr, &name, &closed, Some("cache-pr-9")).await;
    // GitHub: #8 was re-opened after its close event; #9 stays closed.
    let github = support::fake_github::FakeGithub::start(
        [(
            format!("acme/{name}"),
            vec!["main".to_string(), "#8".to_string()],
        )]
        .into_iter()
        .collect(),
    )
    .await;
    let with_token = pruner(&[("CACHE_TAG_TEMPLATES", TEMPLATES)]).with_github(
        ecr_cache_pruner::adapters::github::GithubBranches::new(
            &github.url,
            support::fake_github::TOKEN,
        )
        .unwrap(),
    );
    let report = with_token
        .handle(pull_request_closed(&name, 8, now()))
        .await
        .unwrap();
    assert_eq!(report["tags"][0]["reason"], "pull_request_open", "{report}");
    let report = with_token
        .handle(pull_request_closed(&name, 9, now()))
        .await
        .unwrap();
    assert_eq!(
        tags_of(&report),
        vec![("cache-pr-9".into(), "removed".into())]
    );
    let after = contents(&ecr, &name).await;
    assert_eq!(after[&open.digest], vec!["cache-pr-8"]);
    assert!(!after.contains_key(&closed.digest));
}

#[tokio::test]
async fn a_destroyed_merge_group_loses_its_queue_branch_caches() {
    let ecr = ecr_client();
    let name = unique_name("queue");
    create_repository(&ecr, &name).await;
    let e = on(event("github-merge-group-destroyed.json"), &name, now());
    let branch = e["detail"]["merge_group"]["head_ref"]
        .as_str()
        .unwrap()
        .trim_start_matches("refs/heads/")
        .to_owned();
    let tag = format!(
        "api-cache-{}",
        ecr_cache_pruner::core::branch::cache_tag_for_branch("", &branch)
    );
    let group = cache_manifest(&format!("{name}-group"));
    push(&ecr, &name, &group, Some(&tag)).await;
    let main = cache_manifest(&format!("{name}-main"));
    push(&ecr, &name, &main, Some("api-cache-main")).await;

    let pruner = pruner(&[("CACHE_TAG_TEMPLATES", TEMPLATES)]);
    let mut checks = e.clone();
    checks["detail"]["action"] = json!("checks_requested");
    assert_eq!(pruner.handle(checks).await.unwrap()["outcome"], "ignored");
    let report = pruner.handle(e).await.unwrap();
    assert_eq!(
        tags_of(&report)[0],
        (tag.clone(), "removed".into()),
        "{report}"
    );
    assert_eq!(
        report["tags"][0]["removal"]["reason"],
        "merge_group_destroyed"
    );
    let after = contents(&ecr, &name).await;
    assert!(!after.contains_key(&group.digest));
    assert_eq!(after[&main.digest], vec!["api-cache-main"]);
}

/// A signed cache repository: each cache manifest has a signature (an OCI referrer). The
/// superseded cache manifest goes with its signature; the live one's signature, and a signature
/// whose subject is already gone, stay (the latter counted as orphaned).
#[tokio::test]
async fn a_deleted_cache_manifest_takes_its_signatures_and_nothing_else() {
    let ecr = ecr_client();
    let name = unique_name("signed");
    create_repository(&ecr, &name).await;
    let old = cache_manifest(&format!("{name}-old"));
    push(&ecr, &name, &old, None).await;
    let old_sig = signature_of(&format!("{name}-old"), &old.digest);
    push(&ecr, &name, &old_sig, None).await;
    let live = cache_manifest(&format!("{name}-live"));
    push(&ecr, &name, &live, Some("cache-main")).await;
    let live_sig = signature_of(&format!("{name}-live"), &live.digest);
    push(&ecr, &name, &live_sig, None).await;
    let orphan = signature_of(
        &format!("{name}-orphan"),
        &support::registry::fake_digest("gone"),
    );
    push(&ecr, &name, &orphan, None).await;

    let mut e = event("ecr-push-cache.json");
    e["detail"]["repository-name"] = json!(name);
    e["detail"]["image-digest"] = json!(live.digest);
    let report = pruner(&[]).handle(e).await.unwrap();
    let repo = &report["repositories"][0];
    let deleted: Vec<&str> = repo["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        deleted,
        vec![old.digest.as_str(), old_sig.digest.as_str()],
        "{report}"
    );
    assert_eq!(repo["deleted"][1]["subject"], json!(old.digest));
    assert_eq!(repo["orphaned_referrers"], 1);
    let after = contents(&ecr, &name).await;
    assert_eq!(after.len(), 3);
    assert!(after.contains_key(&live_sig.digest) && after.contains_key(&orphan.digest));
}

/// A tag removal that takes a signed cache (here: a pull request closed) takes its signatures
/// too, re-checked, with an audit line each; a signature of an image that keeps a tag stays.
#[tokio::test]
async fn a_closed_pull_requests_signed_cache_takes_its_signatures_along() {
    let ecr = ecr_client();
    let name = unique_name("signedpr");
    create_repository(&ecr, &name).await;
    let closed = cache_manifest(&format!("{name}-pr-7"));
    push(&ecr, &name, &closed, Some("cache-pr-7")).await;
    let closed_sig = signature_of(&format!("{name}-pr-7"), &closed.digest);
    push(&ecr, &name, &closed_sig, None).await;
    // Pull request 8's cache also carries a branch cache tag: removing cache-pr-8 keeps the
    // image, so its signature stays.
    let shared = cache_manifest(&format!("{name}-pr-8"));
    push(&ecr, &name, &shared, Some("cache-pr-8")).await;
    push(&ecr, &name, &shared, Some("api-cache-main")).await;
    let shared_sig = signature_of(&format!("{name}-pr-8"), &shared.digest);
    push(&ecr, &name, &shared_sig, None).await;
    let pruner = pruner(&[("CACHE_TAG_TEMPLATES", TEMPLATES)]);

    let report = pruner
        .handle(pull_request_closed(&name, 7, now()))
        .await
        .unwrap();
    assert_eq!(
        tags_of(&report),
        vec![("cache-pr-7".into(), "removed".into())]
    );
    assert_eq!(report["tags"][0]["image_deleted"], true, "{report}");
    assert_eq!(
        report["tags"][0]["referrers"]["deleted"],
        json!([closed_sig.digest]),
        "{report}"
    );
    let report = pruner
        .handle(pull_request_closed(&name, 8, now()))
        .await
        .unwrap();
    assert_eq!(report["tags"][0]["image_deleted"], false, "{report}");
    assert!(report["tags"][0].get("referrers").is_none(), "{report}");

    let after = contents(&ecr, &name).await;
    assert!(!after.contains_key(&closed.digest));
    assert!(!after.contains_key(&closed_sig.digest), "{after:?}");
    assert_eq!(after[&shared.digest], vec!["api-cache-main"]);
    assert!(after.contains_key(&shared_sig.digest));
}

/// Merge queue cache promotion (opt-in): a merged group's cache becomes the base branch's when
/// it is newer, with no layer copied (the same manifest, tagged); otherwise only its tag goes.
#[tokio::test]
async fn a_merged_group_cache_becomes_the_base_cache_only_when_newer() {
    let ecr = ecr_client();
    let name = unique_name("promote");
    create_repository(&ecr, &name).await;
    let destroyed = on(event("github-merge-group-destroyed.json"), &name, now() + 5);
    let branch = destroyed["detail"]["merge_group"]["head_ref"]
        .as_str()
        .unwrap()
        .trim_start_matches("refs/heads/")
        .to_owned();
    let group_tag = format!(
        "api-cache-{}",
        ecr_cache_pruner::core::branch::cache_tag_for_branch("", &branch)
    );
    let main = cache_manifest(&format!("{name}-main"));
    push(&ecr, &name, &main, Some("api-cache-main")).await;
    // ECR keeps push times in seconds: the group's cache is pushed a second later.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let group = cache_manifest(&format!("{name}-group"));
    push(&ecr, &name, &group, Some(&group_tag)).await;

    let vars = [
        ("CACHE_TAG_TEMPLATES", TEMPLATES),
        ("PROMOTE_MERGED_GROUP_CACHE", "true"),
    ];
    // Invalidated (not merged): only the group's tag goes.
    let mut invalidated = destroyed.clone();
    invalidated["detail"]["reason"] = json!("invalidated");
    let mut dry = vars.to_vec();
    dry.push(("DRY_RUN", "true"));
    let report = pruner(&dry).handle(invalidated).await.unwrap();
    assert_eq!(
        acted(&report),
        vec![(group_tag.clone(), "would_remove".into())]
    );

    // Merged and newer: promoted, audited, then the group's tag removed (its image stays).
    let report = pruner(&vars).handle(destroyed.clone()).await.unwrap();
    assert_eq!(
        acted(&report),
        vec![
            ("api-cache-main".into(), "promoted".into()),
            (group_tag.clone(), "removed".into()),
        ],
        "{report}"
    );
    assert_eq!(report["tags"][0]["from"], json!(main.digest));
    let after = contents(&ecr, &name).await;
    assert_eq!(after[&group.digest], vec!["api-cache-main"]);
    // The old base cache lost its tag: ECR keeps it untagged (for the next push's prune), moto
    // drops it.
    assert!(after.get(&main.digest).is_none_or(|t| t.is_empty()));

    // Again (redelivered): the base already has it.
    push(&ecr, &name, &group, Some(&group_tag)).await;
    let report = pruner(&vars).handle(destroyed.clone()).await.unwrap();
    assert_eq!(report["tags"][0]["reason"], "already_promoted", "{report}");

    // A base cache pushed after the group's stays (the group's tag first, then a second later
    // the base: pushed in the other order, the two can share a second).
    push(&ecr, &name, &group, Some(&group_tag)).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newer = cache_manifest(&format!("{name}-newer"));
    push(&ecr, &name, &newer, Some("api-cache-main")).await;
    let report = pruner(&vars).handle(destroyed).await.unwrap();
    assert_eq!(report["tags"][0]["reason"], "base_cache_newer", "{report}");
    assert_eq!(
        contents(&ecr, &name).await[&newer.digest],
        vec!["api-cache-main"]
    );
}
