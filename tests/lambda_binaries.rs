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

/// The pruner binary under test: the one cargo built for the tests, or `PRUNER_BINARY` (the
/// release build, as `scripts/release-binary-test.sh` runs it), started through
/// `PRUNER_BINARY_RUNNER` when set (an emulator and its arguments, e.g. `qemu-aarch64-static -L
/// /usr/aarch64-linux-gnu` for the arm64 bootstrap SAM builds).
fn pruner_command() -> Command {
    let binary =
        std::env::var("PRUNER_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pruner").to_owned());
    let runner = std::env::var("PRUNER_BINARY_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(binary);
            command
        }
        None => Command::new(binary),
    }
}

/// The pruner binary under the fake runtime `api`, with the contract's environment and `vars`.
fn spawn_pruner(api: &FakeRuntimeApi, vars: &[(&str, &str)]) -> tokio::process::Child {
    pruner_command()
        .env_clear()
        .envs(lambda_env(&api.address, endpoint(), "pruner"))
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Stops the child and returns the JSON lines it wrote to stdout.
async fn json_lines(mut child: tokio::process::Child) -> Vec<Value> {
    child.kill().await.unwrap();
    let mut logs = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

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
    let child = spawn_pruner(&api, &[]);

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

    let lines = json_lines(child).await;
    let summary = lines
        .iter()
        .find(|l| l["fields"]["message"] == "prune summary")
        .unwrap_or_else(|| panic!("no JSON summary line in logs: {lines:?}"));
    assert_eq!(summary["fields"]["deleted"], 1);
    assert_eq!(
        summary["span"]["requestId"], "req-1",
        "request id on the line: {summary}"
    );
}

/// Runs the pruner binary on one push event and returns its answer and its JSON log lines.
async fn prune_once(
    repository: &str,
    digest: &str,
    dry_run: bool,
    vars: &[(&str, &str)],
) -> (Answer, Vec<Value>) {
    let mut push = event("ecr-push-cache.json");
    push["detail"]["repository-name"] = json!(repository);
    push["detail"]["image-digest"] = json!(digest);
    let mut api = FakeRuntimeApi::start(vec![push]).await;
    let dry_run = dry_run.to_string();
    let mut all = vec![("DRY_RUN", dry_run.as_str())];
    all.extend_from_slice(vars);
    let child = spawn_pruner(&api, &all);
    let answer = next_answer(&mut api).await;
    let lines = json_lines(child).await;
    (answer, lines)
}

fn audit_digests(lines: &[Value], action: &str) -> Vec<String> {
    let mut digests: Vec<String> = lines
        .iter()
        .filter(|l| l["audit"] == action)
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    digests.sort();
    digests
}

#[tokio::test]
async fn pruner_binary_writes_one_audit_line_per_digest() {
    let ecr = ecr_client();
    let (repository, first_stale, current) = repository_with_stale_cache(&ecr, "audit").await;
    let mut stale = vec![first_stale.digest.clone()];
    for i in 0..4 {
        let m = cache_manifest(&format!("{repository}-more-{i}"));
        push(&ecr, &repository, &m, None).await;
        stale.push(m.digest);
    }
    stale.sort();

    // Dry run: one would-delete line per digest, nothing deleted, the would-be metric published.
    let (answer, lines) = prune_once(&repository, &current.digest, true, &[]).await;
    assert_eq!(answer.body["outcome"], "pruned", "{:?}", answer.body);
    assert_eq!(audit_digests(&lines, "manifest_would_delete"), stale);
    assert!(audit_digests(&lines, "manifest_deleted").is_empty());
    assert!(
        lines.iter().any(|l| l["ManifestsWouldDelete"] == 5),
        "EMF line with ManifestsWouldDelete"
    );
    assert_eq!(contents(&ecr, &repository).await.len(), 6);

    // Live: one deleted line per digest actually deleted, with what caused it.
    // (With the metrics pooled over repositories, to check that setting on the way.)
    let pooled = [("METRICS_PER_REPOSITORY", "false")];
    let (answer, lines) = prune_once(&repository, &current.digest, false, &pooled).await;
    let emf = lines
        .iter()
        .find(|l| l.get("_aws").is_some())
        .expect("an EMF line");
    assert_eq!(emf["Repository"], "(all)");
    assert_eq!(emf["ManifestsDeleted"], 5);
    let mut reported: Vec<String> = answer.body["repositories"][0]["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_owned())
        .collect();
    reported.sort();
    assert_eq!(reported, stale);
    assert_eq!(audit_digests(&lines, "manifest_deleted"), stale);
    let line = &lines
        .iter()
        .find(|l| l["audit"] == "manifest_deleted")
        .unwrap();
    assert_eq!(line["repository"], json!(repository));
    assert_eq!(line["trigger"], "cache_push");
    assert_eq!(line["trigger_id"], event("ecr-push-cache.json")["id"]);
    assert_eq!(line["request_id"], answer.request_id.as_str());
    assert_eq!(line["dry_run"], false);
    assert!(line["reason"]
        .as_str()
        .unwrap()
        .contains("untagged BuildKit cache"));
    assert!(["manifest", "artifact_media_type"].contains(&line["classified_by"].as_str().unwrap()));
    assert_eq!(contents(&ecr, &repository).await.len(), 1);
}

#[tokio::test]
async fn pruner_binary_refuses_bad_configuration_at_init() {
    let api = FakeRuntimeApi::start(vec![]).await;
    let output = pruner_command()
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

/// A flood of unsigned requests at the public URL, on loopback and bounded (300 requests): each
/// is refused and counted in the `DeliveriesRejected` metric, none reaches EventBridge, and
/// once warm none reads Secrets Manager (the cached secret answers; a mismatch asks for the
/// previous version at most once per re-check period). Cost per rejection is measured in
/// `cargo bench --bench webhook` (BENCHMARKS.md), not asserted here.
#[tokio::test]
async fn a_flood_of_unsigned_requests_is_refused_cheaply_and_counted() {
    const FLOOD: usize = 300;
    let secret_arn =
        support::moto::create_secret("flood-secret", "ecr-cache-pruner-example-secret").await;
    let proxy = support::deny_proxy::DenyProxy::start(endpoint(), "(none)").await;
    let signed = event("webhook-delete-branch.json");
    let mut forged = signed.clone();
    forged["headers"]["x-hub-signature-256"] = json!(format!("sha256={}", "0".repeat(64)));
    let mut events = vec![forged.clone(); FLOOD];
    // Unsigned and junk bodies too.
    events[1]["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-hub-signature-256");
    events[2]["body"] = json!("not json");
    events.push(signed);

    let mut api = FakeRuntimeApi::start(events).await;
    let child = Command::new(env!("CARGO_BIN_EXE_github-webhook"))
        .env_clear()
        .envs(lambda_env(&api.address, &proxy.url, "ecp-github-webhook"))
        .env("GITHUB_WEBHOOK_SECRET_ARN", &secret_arn)
        .env("METRICS_NAMESPACE", "FloodTest")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Read stdout as it comes: a flood's log lines would fill the pipe and stall the function.
    let mut child = child;
    let mut stdout = child.stdout.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut logs = String::new();
        stdout.read_to_string(&mut logs).await.unwrap();
        logs
    });
    let mut statuses = std::collections::BTreeMap::new();
    let mut secret_reads_after_warm = 0;
    for n in 0..=FLOOD {
        let answer = next_answer(&mut api).await;
        *statuses
            .entry(answer.body["statusCode"].as_i64().unwrap())
            .or_insert(0) += 1;
        if n == 10 {
            secret_reads_after_warm = count(&proxy, "secretsmanager.GetSecretValue");
        }
    }
    assert_eq!(
        statuses,
        [(401, FLOOD), (202, 1)].into_iter().collect(),
        "every forged request refused, the signed one forwarded"
    );
    assert!(
        secret_reads_after_warm <= 2,
        "the current secret once, the missing previous version once"
    );
    assert_eq!(
        count(&proxy, "secretsmanager.GetSecretValue"),
        secret_reads_after_warm,
        "no Secrets Manager call once warm"
    );
    assert_eq!(
        count(&proxy, "AWSEvents.PutEvents"),
        1,
        "only the signed one"
    );

    child.kill().await.unwrap();
    let lines: Vec<Value> = reader
        .await
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let rejected: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("DeliveriesRejected").is_some())
        .collect();
    assert_eq!(rejected.len(), FLOOD);
    let metric = &rejected[0];
    assert_eq!(
        metric["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "FloodTest"
    );
    assert_eq!(metric["Webhook"], "ecp-github-webhook");
    assert_eq!(metric["status"], 401);
}

fn count(proxy: &support::deny_proxy::DenyProxy, target: &str) -> usize {
    proxy
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.as_str() == target)
        .count()
}
