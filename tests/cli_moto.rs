//! The `ecr-cache-pruner` CLI binary against moto, through the standard AWS environment.

mod support;

use std::process::{Command, Output, Stdio};

use support::moto::{ecr_client, endpoint, unique_name};
use support::registry::*;

/// The standard AWS environment pointed at moto: all the CLI gets.
fn aws_env() -> [(&'static str, &'static str); 4] {
    [
        ("AWS_ENDPOINT_URL", endpoint()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecr-cache-pruner"))
        .args(args)
        .env_clear()
        .envs(aws_env())
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
    // moto reports no artifactMediaType: the manifests are read, and that is said first.
    let said = text(&out.stderr);
    assert!(said.contains(&format!("manifest(s) of {name}")), "{said}");
    assert!(said.contains("each read is a pull"), "{said}");
    assert!(said.contains("PullTimeExcludedPrincipals"), "{said}");
    assert!(said.contains("rules from shell"), "{said}");
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

    let refused = cli(&["sweep", "--repository", &name, "--rules-from-env"]);
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("--yes"));
    assert!(contents(&ecr_client(), &name)
        .await
        .contains_key(&stale.digest));

    let out = cli(&["sweep", "--repository", &name, "--yes", "--rules-from-env"]);
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
    // Every {branch} template's tag, one per line; overlapping templates are a usage error.
    let out = cli(&[
        "tag-for",
        "fix/x",
        "--templates",
        "api-cache-{branch},web-cache-{branch},cache-pr-{pr}",
    ]);
    assert_eq!(text(&out.stdout), "api-cache-fix-x\nweb-cache-fix-x\n");
    let out = cli(&[
        "tag-for",
        "x",
        "--templates",
        "cache-{branch},cache-pr-{pr}",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cache-pr-"),
        "{}",
        text(&out.stderr)
    );
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
        .args(["--json", "plan", "--repository", "my-app"])
        .env_clear()
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(no_credentials.status.code(), Some(1));
    // Told apart by the credentials provider's error type, not by the message's wording.
    let error: serde_json::Value = serde_json::from_slice(&no_credentials.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "no_credentials", "{error}");
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

    // Without --estimate-bytes no manifest is read for an estimate (each read is a pull).
    let out = cli(&["plan", "--repository", &name, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.get("reclaimed_bytes_estimate").is_none(), "{report}");

    let out = cli(&["plan", "--repository", &name, "--json", "--estimate-bytes"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["would_delete"][0]["digest"],
        serde_json::json!(old.digest)
    );
    // Only the old source layer and the old config are freed.
    assert_eq!(report["reclaimed_bytes_estimate"], 3_000_000 + 1000);
}

/// The CLI as a child process of this (multi-threaded) test runtime, so a fake GitHub served
/// by the runtime keeps answering meanwhile.
fn cli_command(args: &[&str], vars: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ecr-cache-pruner"));
    command
        .args(args)
        .env_clear()
        .envs(aws_env())
        .envs(vars.iter().copied())
        .kill_on_drop(true);
    command
}

/// A repository `<team>/web` with one superseded cache manifest, `cache-main`, the cache of an
/// existing branch and the cache of a deleted one; GitHub knows `acme/web` with main and
/// feature-a.
struct GoneBranchSetup {
    name: String,
    stale: Manifest,
    live: Manifest,
    github: support::fake_github::FakeGithub,
}

impl GoneBranchSetup {
    async fn new(team: &str) -> Self {
        let ecr = ecr_client();
        let name = format!("{}/web", unique_name(team));
        create_repository(&ecr, &name).await;
        let stale = cache_manifest(&format!("{name}-stale"));
        push(&ecr, &name, &stale, None).await;
        let main = cache_manifest(&format!("{name}-main"));
        push(&ecr, &name, &main, Some("cache-main")).await;
        let live = cache_manifest(&format!("{name}-feature-a"));
        push(&ecr, &name, &live, Some("cache-feature-a")).await;
        let gone = cache_manifest(&format!("{name}-gone"));
        push(&ecr, &name, &gone, Some("cache-gone")).await;
        let branches = vec!["main".to_string(), "feature-a".to_string()];
        let github = support::fake_github::FakeGithub::start(
            [("acme/web".to_string(), branches)].into_iter().collect(),
        )
        .await;
        GoneBranchSetup {
            name,
            stale,
            live,
            github,
        }
    }

    fn vars(&self) -> Vec<(&str, &str)> {
        vec![
            ("GITHUB_TOKEN", support::fake_github::TOKEN),
            ("GITHUB_API_URL", self.github.url.as_str()),
            ("GITHUB_OWNER", "acme"),
            ("GONE_BRANCH_MIN_AGE_HOURS", "0"),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_previews_the_whole_sweep_including_tag_removals() {
    let setup = GoneBranchSetup::new("preview").await;
    let before = contents(&ecr_client(), &setup.name).await;
    let vars = setup.vars();

    let out = cli_command(&["plan", "--repository", &setup.name, "--exit-code"], &vars)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "changes pending: {}",
        text(&out.stderr)
    );
    let table = text(&out.stdout);
    assert!(table.contains(&setup.stale.digest[..19]), "{table}");
    assert!(table.contains("cache tags to remove"), "{table}");
    assert!(table.contains("cache-gone"), "{table}");
    assert!(table.contains("branch no longer exists"), "{table}");
    assert!(!table.contains("cache-feature-a"), "{table}");

    let out = cli_command(&["plan", "--repository", &setup.name, "--json"], &vars)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["changes_pending"], true);
    assert_eq!(report["tags"][0]["tag"], "cache-gone", "{report}");
    assert_eq!(report["tags"][0]["outcome"], "would_remove");
    assert_eq!(report["tags"][0]["removal"]["reason"], "branch_gone");
    // The audit lines of a dry run, on stderr.
    let audit: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| {
            let what = a["tag"].as_str().or(a["digest"].as_str()).unwrap();
            (a["audit"].as_str().unwrap(), what)
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("manifest_would_delete", setup.stale.digest.as_str()),
            ("tag_would_remove", "cache-gone"),
        ]
    );
    assert!(audit
        .iter()
        .all(|a| a["trigger"] == "cli" && a["dry_run"] == true));

    // Nothing pending: exit 0 with --exit-code.
    let clean = unique_name("clean");
    create_repository(&ecr_client(), &clean).await;
    let out = cli_command(&["plan", "--repository", &clean, "--exit-code"], &[])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(contents(&ecr_client(), &setup.name).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_deletes_only_what_it_showed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let setup = GoneBranchSetup::new("confirm").await;
    let ecr = ecr_client();
    let vars = setup.vars();
    let mut child = cli_command(
        &["sweep", "--repository", &setup.name, "--rules-from-env"],
        &vars,
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait for the question: the plan has been shown.
    let mut stderr = child.stderr.take().unwrap();
    let mut shown = Vec::new();
    while !String::from_utf8_lossy(&shown).contains("[y/N]") {
        let mut chunk = [0u8; 4096];
        let n = stderr.read(&mut chunk).await.unwrap();
        assert!(n > 0, "CLI ended before asking: {}", text(&shown));
        shown.extend_from_slice(&chunk[..n]);
    }
    let shown = text(&shown);
    assert!(
        shown.contains(&setup.stale.digest[..19]) && shown.contains("cache-gone"),
        "{shown}"
    );

    // While the operator reads: another cache push leaves a new stale manifest, a branch is
    // deleted on GitHub's side (a second gone tag appears), and cache-gone is pushed again.
    let newly_stale = cache_manifest(&format!("{}-newly-stale", setup.name));
    push(&ecr, &setup.name, &newly_stale, None).await;
    let also_gone = cache_manifest(&format!("{}-also-gone", setup.name));
    push(&ecr, &setup.name, &also_gone, Some("cache-also-gone")).await;
    let repushed = cache_manifest(&format!("{}-gone-again", setup.name));
    push(&ecr, &setup.name, &repushed, Some("cache-gone")).await;

    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"y\n").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));

    let after = contents(&ecr, &setup.name).await;
    assert!(
        !after.contains_key(&setup.stale.digest),
        "shown and still stale: deleted"
    );
    assert!(after.contains_key(&newly_stale.digest), "not shown: kept");
    assert_eq!(
        after[&also_gone.digest],
        vec!["cache-also-gone"],
        "not shown: kept"
    );
    assert_eq!(
        after[&repushed.digest],
        vec!["cache-gone"],
        "pushed again: fresh"
    );
    // (cache-gone's old digest is not checked: moto drops an image whose only tag moves, where
    // ECR keeps it untagged; the plan core's test covers a digest that was never shown.)
    assert_eq!(after[&setup.live.digest], vec!["cache-feature-a"]);
}

#[tokio::test]
async fn json_errors_and_global_region_and_profile() {
    let absent = unique_name("absent");
    let out = cli_command(&["--json", "plan", "--repository", &absent], &[])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(error["error"]["kind"], "repository_not_found");
    assert_eq!(error["error"]["exit_code"], 3);
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&absent));

    // --region wins over the environment; a named profile that does not exist is an error.
    let out = cli_command(
        &["plan", "--repository", &absent, "--region", "eu-west-1"],
        &[],
    )
    .env_remove("AWS_REGION")
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = cli_command(
        &["plan", "--repository", &absent, "--profile", "nobody"],
        &[
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ],
    )
    .env_remove("AWS_ACCESS_KEY_ID")
    .env_remove("AWS_SECRET_ACCESS_KEY")
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

/// A folder with an AWS config file holding `profiles` (text), for one test.
struct AwsHome {
    dir: std::path::PathBuf,
}

impl AwsHome {
    fn new(profiles: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_name("aws-home"));
        std::fs::create_dir_all(&dir).unwrap();
        let profiles = profiles.replace("{dir}", dir.to_str().unwrap());
        std::fs::write(dir.join("config"), profiles).unwrap();
        AwsHome { dir }
    }

    /// A `credential_process` helper that leaves a mark when it runs and prints moto's keys.
    fn credential_process(&self) -> String {
        let script = self.dir.join("credentials.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ntouch '{}'\nprintf '{{\"Version\": 1, \"AccessKeyId\": \"test\", \"SecretAccessKey\": \"test\"}}'\n",
                self.marker().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script.display().to_string()
    }

    fn marker(&self) -> std::path::PathBuf {
        self.dir.join("credential-process-ran")
    }

    /// The CLI with only this folder's config (HOME too: no SSO token cache, no ~/.aws).
    fn cli(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let home = self.dir.to_str().unwrap();
        Command::new(env!("CARGO_BIN_EXE_ecr-cache-pruner"))
            .args(args)
            .env_clear()
            .env("HOME", home)
            .env("AWS_ENDPOINT_URL", endpoint())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.dir.join("credentials"))
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for AwsHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn error_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap_or_else(|_| panic!("{} {}", text(&out.stdout), text(&out.stderr)))["error"]
        .clone()
}

#[tokio::test]
async fn a_credential_process_profile_works() {
    let (name, stale, _) = seeded().await;
    let home = AwsHome::new(
        "[profile ops]\nregion = us-east-1\ncredential_process = {dir}/credentials.sh\n",
    );
    home.credential_process();
    let out = home.cli(&["--profile", "ops", "plan", "--repository", &name], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&stale.digest[..19]));
    assert!(
        home.marker().exists(),
        "the profile's credential_process ran"
    );
}

#[tokio::test]
async fn the_named_profile_wins_over_key_variables() {
    let (name, _, _) = seeded().await;
    let home = AwsHome::new(
        "[profile ops]\nregion = us-east-1\ncredential_process = {dir}/credentials.sh\n",
    );
    home.credential_process();
    let keys = [
        ("AWS_ACCESS_KEY_ID", "AKIAOTHERACCOUNT0000"),
        ("AWS_SECRET_ACCESS_KEY", "other"),
    ];
    let out = home.cli(&["--profile", "ops", "plan", "--repository", &name], &keys);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(home.marker().exists(), "--profile's credentials were used");
    assert!(
        text(&out.stderr)
            .contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment are ignored"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_profile_is_named() {
    let home = AwsHome::new("[profile ops]\nregion = us-east-1\n");
    let out = home.cli(
        &["--json", "--profile", "nope", "plan", "--repository", "app"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let error = error_of(&out);
    assert_eq!(error["kind"], "no_credentials", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("nope"), "{message}");
    assert!(
        message.len() < 500,
        "one sentence, not the SDK's dump: {message}"
    );
    assert!(!message.contains("may be retried"), "{message}");
}

#[test]
fn an_sso_profile_without_a_sign_in_says_how_to_sign_in() {
    let home = AwsHome::new(
        "[profile corp]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Admin\nregion = us-east-1\n\
         [sso-session corp]\nsso_start_url = https://example.awsapps.com/start\nsso_region = us-east-1\n",
    );
    let out = home.cli(
        &["--json", "--profile", "corp", "plan", "--repository", "app"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let error = error_of(&out);
    assert_eq!(error["kind"], "no_credentials", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("aws sso login --profile corp"),
        "{message}"
    );
    assert!(message.len() < 500, "{message}");
}

/// A CloudFormation stack in moto whose `PrunerFunction` runs with `variables`, as a deployed
/// ecr-cache-pruner stack does.
async fn deployed_stack(prefix: &str, variables: &[(&str, &str)]) -> String {
    let stack = unique_name(prefix).replace(['/', '_'], "-");
    let env: serde_json::Map<String, serde_json::Value> = variables
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
        .collect();
    let template = serde_json::json!({"Resources": {
        "PrunerFunctionRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}}},
        "PrunerFunction": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "provided.al2023", "Handler": "bootstrap",
            "Role": {"Fn::GetAtt": ["PrunerFunctionRole", "Arn"]},
            "Code": {"ZipFile": "not run here"},
            "Environment": {"Variables": env}}}
    }});
    aws_sdk_cloudformation::Client::new(&support::moto::sdk_config())
        .create_stack()
        .stack_name(&stack)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
    stack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_judges_with_the_stack_rules_not_the_shell() {
    let setup = GoneBranchSetup::new("stackrules").await;
    let ecr = ecr_client();
    let token_arn = support::moto::create_secret("stack-token", support::fake_github::TOKEN).await;
    // The stack keeps `cache-gone` (KEEP_TAGS) and checks live branches with its own token.
    let stack = deployed_stack(
        "stack",
        &[
            ("KEEP_TAGS", "cache-gone"),
            ("GITHUB_TOKEN_SECRET_ARN", &token_arn),
            ("GITHUB_API_URL", setup.github.url.as_str()),
            ("GITHUB_OWNER", "acme"),
            ("GONE_BRANCH_MIN_AGE_HOURS", "0"),
            ("MAX_DELETIONS_PER_INVOCATION", "50"),
            ("SWEEP_REPOSITORIES", "*"),
        ],
    )
    .await;
    // The shell's rules would remove `cache-gone`.
    let shell = setup.vars();
    let out = cli_command(
        &["plan", "--repository", &setup.name, "--rules-from-env"],
        &shell,
    )
    .output()
    .await
    .unwrap();
    assert!(
        text(&out.stdout).contains("cache-gone"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("rules from shell"),
        "{}",
        text(&out.stderr)
    );

    // Neither rule source chosen: sweep refuses before it reads anything.
    let before = contents(&ecr, &setup.name).await;
    let out = cli_command(&["sweep", "--repository", &setup.name, "--yes"], &shell)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--stack NAME"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(contents(&ecr, &setup.name).await, before);

    // With the stack's rules, even with the shell's variables exported, cache-gone stays.
    let out = cli_command(
        &[
            "sweep",
            "--repository",
            &setup.name,
            "--stack",
            &stack,
            "--yes",
        ],
        &shell,
    )
    .output()
    .await
    .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("rules from stack {stack}")),
        "{stderr}"
    );
    assert!(stderr.contains("KEEP_TAGS"), "{stderr}");
    assert!(stderr.contains("cache-gone"), "{stderr}");
    assert!(stderr.contains("ignored (set in this shell"), "{stderr}");
    assert!(stdout.contains("total: 1 manifest(s) deleted"), "{stdout}");
    assert!(!stdout.contains("cache tags removed"), "{stdout}");
    let after = contents(&ecr, &setup.name).await;
    assert!(!after.contains_key(&setup.stale.digest));
    let tags: Vec<&String> = after.values().flatten().collect();
    assert!(tags.iter().any(|t| *t == "cache-gone"), "{after:?}");
    assert!(tags.iter().any(|t| *t == "cache-feature-a"), "{after:?}");

    // The JSON carries the rules and where each came from; the variable picks the stack too.
    let out = cli_command(
        &["plan", "--repository", &setup.name, "--json"],
        &[("ECR_CACHE_PRUNER_STACK", stack.as_str())],
    )
    .output()
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules = report["rules"]["rules"].as_array().unwrap();
    let keep = rules.iter().find(|r| r["variable"] == "KEEP_TAGS").unwrap();
    assert_eq!(keep["source"], format!("stack {stack}"));
    let cap = rules
        .iter()
        .find(|r| r["variable"] == "MAX_DELETIONS_PER_INVOCATION")
        .unwrap();
    assert_eq!(cap["value"], "50");

    // An exported stack is a default: `--rules-from-env` still chooses this shell's rules.
    let mut exported = shell.clone();
    exported.push(("ECR_CACHE_PRUNER_STACK", stack.as_str()));
    let out = cli_command(
        &[
            "plan",
            "--repository",
            &setup.name,
            "--rules-from-env",
            "--json",
        ],
        &exported,
    )
    .output()
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules = report["rules"]["rules"].as_array().unwrap();
    let keep = rules.iter().find(|r| r["variable"] == "KEEP_TAGS").unwrap();
    assert_ne!(keep["source"], format!("stack {stack}"), "{rules:?}");
    assert!(
        report["tags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|t| t["tag"] == "cache-gone")),
        "the shell's rules would remove cache-gone: {report}"
    );
}

#[tokio::test]
async fn a_stack_out_of_scope_or_missing_is_refused() {
    let (name, _, _) = seeded().await;
    let stack = deployed_stack("scoped", &[("SWEEP_REPOSITORIES", "team-z/*")]).await;
    let before = contents(&ecr_client(), &name).await;
    let out = cli_command(
        &[
            "sweep",
            "--repository",
            &name,
            "--stack",
            &stack,
            "--yes",
            "--json",
        ],
        &[],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(error_of(&out)["kind"], "out_of_scope");
    let out = cli_command(
        &[
            "plan",
            "--repository",
            &name,
            "--stack",
            "no-such-stack",
            "--json",
        ],
        &[],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(
        error_of(&out)["kind"],
        "stack_not_found",
        "{}",
        text(&out.stdout)
    );
    assert_eq!(contents(&ecr_client(), &name).await, before);
}

/// The move itself needs CloudFormation to make a secret, which moto does not ("No Moto
/// CloudFormation support for AWS::SecretsManager::Secret"): the LocalStack upgrade test
/// (scripts/deploy_test/upgrade_test.py) moves a 0.2.0 stack's secret and deploys over it.
#[tokio::test]
async fn moving_the_webhook_secret_needs_a_stack_that_has_one() {
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli_command(&args, &[]).output().await.unwrap()
    };
    let plain = deployed_stack("plain", &[]).await;
    let out = run(vec![
        "--json".into(),
        "move-webhook-secret".into(),
        "--stack".into(),
        plain,
    ])
    .await;
    assert_eq!(
        error_of(&out)["kind"],
        "nothing_to_move",
        "{}",
        text(&out.stdout)
    );
    let out = run(vec!["--json".into(), "move-webhook-secret".into()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(error_of(&out)["kind"], "no_stack");
}

/// `CACHE_BUDGET` in the operator's hands: `plan` shows the evictions with their reason in words;
/// `sweep` evicts what it showed and nothing it did not (a cache pushed while the operator read
/// the plan), never main's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_budget_evictions_and_sweep_evicts_only_those() {
    const MIB: u64 = 1 << 20;
    let ecr = ecr_client();
    let name = unique_name("cli-budget");
    create_repository(&ecr, &name).await;
    for branch in ["main", "a", "b"] {
        let own = format!("{name}-{branch}");
        let manifest = cache_manifest_with_layers(
            &own,
            &[(&format!("{name}-base"), 100 * MIB), (&own, 10 * MIB)],
        );
        push(&ecr, &name, &manifest, Some(&format!("cache-{branch}"))).await;
    }
    let vars = [
        ("CACHE_BUDGET", "115MiB"),
        ("CACHE_BUDGET_MIN_AGE_MINUTES", "0"),
    ];
    let plan = cli_command(&["plan", "--repository", &name, "--rules-from-env"], &vars)
        .output()
        .await
        .unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let table = text(&plan.stdout);
    assert!(
        table.contains("over budget: 130.0 MiB > 115.0 MiB, least recently used"),
        "{table}"
    );
    assert!(
        text(&plan.stderr).contains("CACHE_BUDGET"),
        "the rules line names it"
    );
    let shown: Vec<&str> = ["cache-a", "cache-b"]
        .into_iter()
        .filter(|t| table.contains(t))
        .collect();
    assert_eq!(shown.len(), 2, "{table}");
    assert!(
        contents(&ecr, &name).await.len() == 3,
        "plan deletes nothing"
    );

    // `sweep` asks; while the operator reads, another branch pushes its cache: over budget again,
    // the sweep's second plan would evict it too, but it was not shown.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut child = cli_command(&["sweep", "--repository", &name, "--rules-from-env"], &vars)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut asked = Vec::new();
    while !text(&asked).contains("[y/N]") {
        let mut chunk = [0u8; 4096];
        let n = stderr.read(&mut chunk).await.unwrap();
        assert!(n > 0, "CLI ended before asking: {}", text(&asked));
        asked.extend_from_slice(&chunk[..n]);
    }
    let own = format!("{name}-c");
    let late = cache_manifest_with_layers(
        &own,
        &[(&format!("{name}-base"), 100 * MIB), (&own, 10 * MIB)],
    );
    push(&ecr, &name, &late, Some("cache-c")).await;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"y\n").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    let after = contents(&ecr, &name).await;
    let mut tags: Vec<&String> = after.values().flatten().collect();
    tags.sort();
    assert_eq!(
        tags,
        [&"cache-c".to_owned(), &"cache-main".to_owned()],
        "{after:?}"
    );
}
