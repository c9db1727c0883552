//! The built `pruner` and `github-webhook` binaries under the Lambda Runtime API, configured only by the contract's
//! environment variables, with `AWS_ENDPOINT_URL` pointed at moto.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use support::moto::{ecr_client, endpoint, event};
use support::registry::*;
use support::runtime_api::{lambda_env, Answer, FakeRuntimeApi};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

async fn next_answer(api: &mut FakeRuntimeApi) -> Answer {
    tokio::time::timeout(Duration::from_secs(60), api.answers.recv())
        .await
        .expect("the function answered in time")
        .expect("runtime API still running")
}

#[tokio::test]
async fn pruner_binary_serves_events_and_survives_bad_input() {
    let ecr = ecr_client();
    let (repository, stale, current) = repository_with_stale_cache(&ecr, "bin").await;

    let mut good = event("ecr-push-cache.json");
    good["detail"]["repository-name"] = json!(repository);
    good["detail"]["image-digest"] = json!(current.digest);
    let mut bad = good.clone();
    bad["detail"]["image-digest"] = json!("sha256:nope");

    let mut api = FakeRuntimeApi::start(vec![bad, good]).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pruner"))
        .env_clear()
        .envs(lambda_env(&api.address, endpoint(), "pruner"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let first = next_answer(&mut api).await;
    assert_eq!(
        (first.request_id.as_str(), first.kind.as_str()),
        ("req-0", "error")
    );
    assert_eq!(first.body["errorType"], "BadEvent");
    assert!(first.body["errorMessage"]
        .as_str()
        .unwrap()
        .contains("image-digest"));

    let second = next_answer(&mut api).await;
    assert_eq!(
        (second.request_id.as_str(), second.kind.as_str()),
        ("req-1", "response")
    );
    assert_eq!(second.body["outcome"], "pruned");
    assert_eq!(
        second.body["repositories"][0]["deleted"][0]["digest"],
        json!(stale.digest)
    );
    let after = contents(&ecr, &repository).await;
    assert!(!after.contains_key(&stale.digest));
    assert!(after.contains_key(&current.digest));

    child.kill().await.unwrap();
    let mut logs = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    let summary: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "prune summary")
        .unwrap_or_else(|| panic!("no JSON summary line in logs:\n{logs}"));
    assert_eq!(summary["fields"]["deleted"], 1);
    assert_eq!(
        summary["span"]["requestId"], "req-1",
        "request id on the line: {summary}"
    );
}

#[tokio::test]
async fn pruner_binary_refuses_bad_configuration_at_init() {
    let api = FakeRuntimeApi::start(vec![]).await;
    let output = Command::new(env!("CARGO_BIN_EXE_pruner"))
        .env_clear()
        .envs(lambda_env(&api.address, endpoint(), "pruner"))
        .env("DRY_RUN", "maybe")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DRY_RUN"), "{stderr}");
}

#[tokio::test]
async fn github_webhook_binary_verifies_and_forwards() {
    let secret_arn =
        support::moto::create_secret("webhook-secret", "ecr-cache-pruner-example-secret").await;
    let signed = event("webhook-delete-branch.json");
    let mut forged = signed.clone();
    forged["headers"]["x-hub-signature-256"] = json!(format!("sha256={}", "0".repeat(64)));

    let mut api = FakeRuntimeApi::start(vec![forged, signed, event("webhook-ping.json")]).await;
    let _child = Command::new(env!("CARGO_BIN_EXE_github-webhook"))
        .env_clear()
        .envs(lambda_env(&api.address, endpoint(), "github-webhook"))
        .env("GITHUB_WEBHOOK_SECRET_ARN", &secret_arn)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let statuses: Vec<i64> = [
        next_answer(&mut api).await,
        next_answer(&mut api).await,
        next_answer(&mut api).await,
    ]
    .iter()
    .map(|a| {
        assert_eq!(a.kind, "response");
        a.body["statusCode"].as_i64().unwrap()
    })
    .collect();
    assert_eq!(statuses, vec![401, 202, 200]);
}

#[tokio::test]
async fn github_webhook_binary_requires_its_secret_arn() {
    let api = FakeRuntimeApi::start(vec![]).await;
    let output = Command::new(env!("CARGO_BIN_EXE_github-webhook"))
        .env_clear()
        .envs(lambda_env(&api.address, endpoint(), "github-webhook"))
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("GITHUB_WEBHOOK_SECRET_ARN"));
}
