//! The `ecr-cache-pruner` CLI binary against moto, through the standard AWS environment.

mod support;

use std::process::{Command, Output, Stdio};

use support::moto::{ecr_client, endpoint, unique_name};
use support::registry::*;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecr-cache-pruner"))
        .args(args)
        .env_clear()
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn seeded() -> (String, Manifest, Manifest) {
    repository_with_stale_cache(&ecr_client(), "cli").await
}

#[tokio::test]
async fn plan_shows_the_digest_and_deletes_nothing() {
    let (name, stale, _) = seeded().await;
    let before = contents(&ecr_client(), &name).await;

    let out = cli(&["plan", "--repository", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains(&stale.digest[..19]), "{table}");
    assert!(
        table.contains("untagged BuildKit cache manifest"),
        "{table}"
    );
    assert!(
        table.contains("total: 1 manifest(s) would delete"),
        "{table}"
    );

    let out = cli(&["plan", "--repository", &name, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["would_delete"][0]["digest"],
        serde_json::json!(stale.digest)
    );
    assert_eq!(contents(&ecr_client(), &name).await, before);
}

#[tokio::test]
async fn sweep_asks_first_and_deletes_with_yes() {
    let (name, stale, current) = seeded().await;

    let refused = cli(&["sweep", "--repository", &name]);
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("--yes"));
    assert!(contents(&ecr_client(), &name)
        .await
        .contains_key(&stale.digest));

    let out = cli(&["sweep", "--repository", &name, "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("total: 1 manifest(s) deleted"),
        "{}",
        text(&out.stdout)
    );
    let after = contents(&ecr_client(), &name).await;
    assert!(!after.contains_key(&stale.digest));
    assert!(after.contains_key(&current.digest));
}

#[test]
fn tag_for_prints_the_derived_tag() {
    let out = cli(&["tag-for", "feature/login"]);
    assert_eq!(text(&out.stdout), "cache-feature-login\n");
    let out = cli(&["tag-for", "fix/x", "--prefix", "bk-"]);
    assert_eq!(text(&out.stdout), "bk-fix-x\n");
}

#[test]
fn clear_errors_and_exit_codes() {
    let missing = cli(&["plan", "--repository", &unique_name("absent")]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(
        text(&missing.stderr).contains("does not exist"),
        "{}",
        text(&missing.stderr)
    );

    let usage = cli(&["plan"]);
    assert_eq!(usage.status.code(), Some(2));

    let no_credentials = Command::new(env!("CARGO_BIN_EXE_ecr-cache-pruner"))
        .args(["plan", "--repository", "my-app"])
        .env_clear()
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(no_credentials.status.code(), Some(1));
    assert!(
        text(&no_credentials.stderr).contains("credentials"),
        "{}",
        text(&no_credentials.stderr)
    );
}

#[tokio::test]
async fn reclaimed_bytes_count_only_layers_no_kept_manifest_uses() {
    let ecr = ecr_client();
    let name = unique_name("reclaim");
    create_repository(&ecr, &name).await;
    let base = format!("{name}-base");
    let deps = format!("{name}-deps");
    let (old_src, new_src) = (format!("{name}-src-old"), format!("{name}-src-new"));
    // Consecutive caches of one branch: same base and dependency layers, new source layer.
    let old = cache_manifest_with_layers(
        &format!("{name}-old"),
        &[
            (&base, 100_000_000),
            (&deps, 50_000_000),
            (&old_src, 3_000_000),
        ],
    );
    let new = cache_manifest_with_layers(
        &format!("{name}-new"),
        &[
            (&base, 100_000_000),
            (&deps, 50_000_000),
            (&new_src, 3_100_000),
        ],
    );
    push(&ecr, &name, &old, None).await;
    push(&ecr, &name, &new, Some("cache-main")).await;

    let out = cli(&["plan", "--repository", &name, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["would_delete"][0]["digest"],
        serde_json::json!(old.digest)
    );
    // Only the old source layer and the old config are freed.
    assert_eq!(report["reclaimed_bytes_estimate"], 3_000_000 + 1000);
}
