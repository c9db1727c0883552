//! The github-webhook handler against moto: Secrets Manager for the secret, a custom EventBridge
//! bus whose rule targets an SQS queue, so we can see exactly what reached the bus. Ends with the
//! whole flow: signed delivery → bus → queue → pruner → registry.

mod support;

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::sqs::SqsEvent;
use base64::Engine;
use ecr_cache_pruner::core::webhook::sign;
use ecr_cache_pruner::inbound::webhook::{Webhook, WebhookConfig};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_eventbridge::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_eventbridge::config::{ConfigBag, Intercept};
use support::moto::{ecr_client, event, sdk_config, unique_name};
use support::registry::*;

const SAMPLE_SECRET: &str = "ecr-cache-pruner-example-secret";

struct Bus {
    webhook: Webhook,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    /// EventBridge calls the webhook made, to any bus: a webhook that published to the wrong bus
    /// (say `default`) would never show up in `drain`, but it shows up here.
    events_calls: CallCount,
    events: aws_sdk_eventbridge::Client,
    config: WebhookConfig,
    secret_arn: String,
}

/// Counts every call a client makes (EventBridge, Secrets Manager).
#[derive(Debug, Clone, Default)]
struct CallCount(Arc<AtomicUsize>);

impl Intercept for CallCount {
    fn name(&self) -> &'static str {
        "CallCount"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl CallCount {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A fresh bus + rule (branch deletions and pushes from github.com) → queue, and a webhook
/// handler whose secret lives in Secrets Manager.
async fn setup(secret: &str) -> Bus {
    let sdk = sdk_config();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let events_calls = CallCount::default();
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk)
            .interceptor(events_calls.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = unique_name("hook");
    let secret_arn = secrets
        .create_secret()
        .name(&name)
        .secret_string(secret)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    events.create_event_bus().name(&name).send().await.unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    events
        .put_rule()
        .name(&name)
        .event_bus_name(&name)
        .event_pattern(
            json!({"source": ["github.com"], "detail-type": ["delete", "push"]}).to_string(),
        )
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&name)
        .event_bus_name(&name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let config = WebhookConfig::from_lookup(|v| match v {
        "GITHUB_WEBHOOK_SECRET_ARN" => Some(secret_arn.clone()),
        "EVENT_BUS_NAME" => Some(name.clone()),
        _ => None,
    })
    .unwrap();
    // Setup made its own calls (bus, rule, targets): count the webhook's from zero.
    events_calls.0.store(0, Ordering::SeqCst);
    Bus {
        webhook: Webhook::new(config.clone(), secrets, events.clone()),
        sqs,
        queue_url,
        events_calls,
        events,
        config,
        secret_arn,
    }
}

impl Bus {
    async fn deliver(&self, request: Value) -> (i64, Value) {
        let request: LambdaFunctionUrlRequest = serde_json::from_value(request).unwrap();
        let response = self.webhook.handle(request).await;
        let body = serde_json::from_str(response.body.as_deref().unwrap_or("null")).unwrap();
        (response.status_code, body)
    }

    /// Everything that reached the queue, as SQS messages.
    async fn drain(&self) -> Vec<aws_sdk_sqs::types::Message> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        out.messages().to_vec()
    }
}

fn request(name: &str) -> Value {
    event(name)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The request as GitHub delivers it now: a delivery GUID created `ago` seconds back.
fn delivered(mut request: Value, ago: i64) -> Value {
    let guid =
        ecr_cache_pruner::core::webhook::delivery_guid_at(now_secs() - ago, 0x2c3d_4e5f_6a7b);
    request["headers"]["x-github-delivery"] = json!(guid);
    request
}

/// A delivery of an event GitHub created just now.
fn fresh(request: Value) -> Value {
    delivered(request, 0)
}

/// Replaces the body and re-signs it with `secret`.
fn with_body(mut request: Value, body: &str, secret: &str) -> Value {
    request["body"] = json!(body);
    request["headers"]["x-hub-signature-256"] = json!(sign(secret.as_bytes(), body.as_bytes()));
    request
}

#[tokio::test]
async fn signed_delivery_is_forwarded_with_the_quickstart_shape() {
    let bus = setup(SAMPLE_SECRET).await;
    let req = request("webhook-delete-branch.json");
    let payload: Value = serde_json::from_str(req["body"].as_str().unwrap()).unwrap();
    let (status, body) = bus.deliver(req).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["forwarded"], true);
    let messages = bus.drain().await;
    assert_eq!(messages.len(), 1);
    let on_bus: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(on_bus["source"], "github.com");
    assert_eq!(on_bus["detail-type"], "delete");
    assert_eq!(on_bus["detail"], payload);
}

#[tokio::test]
async fn form_encoded_and_base64_deliveries_are_forwarded() {
    let bus = setup(SAMPLE_SECRET).await;
    let (status, _) = bus
        .deliver(request("webhook-delete-branch-form.json"))
        .await;
    assert_eq!(status, 202);
    let mut b64 = request("webhook-delete-branch.json");
    let raw = b64["body"].as_str().unwrap().to_owned();
    b64["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&raw));
    b64["isBase64Encoded"] = json!(true);
    let (status, _) = bus.deliver(b64).await;
    assert_eq!(status, 202);
    assert_eq!(bus.events_calls.count(), 2, "one PutEvents per delivery");
    let messages = bus.drain().await;
    assert_eq!(messages.len(), 2);
    for m in messages {
        let on_bus: Value = serde_json::from_str(m.body().unwrap()).unwrap();
        assert_eq!(on_bus["detail"]["ref"], "feature/login");
        assert_eq!(on_bus["detail"]["ref_type"], "branch");
    }
}

#[tokio::test]
async fn forgeries_get_401_and_nothing_reaches_the_bus() {
    let bus = setup(SAMPLE_SECRET).await;
    let good = request("webhook-delete-branch.json");
    let body = good["body"].as_str().unwrap().to_owned();

    let mut missing = good.clone();
    missing["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-hub-signature-256");
    let mut sha1_only = missing.clone();
    sha1_only["headers"]["x-hub-signature"] =
        json!("sha1=6dcb09b5b57875f334f61aebed695e2e4193db5e");
    let mut malformed = good.clone();
    malformed["headers"]["x-hub-signature-256"] = json!("sha256=not-hex");
    let wrong_secret = with_body(good.clone(), &body, "guess");
    let mut tampered = good.clone();
    tampered["body"] = json!(body.replace("feature/login", "main"));

    for (what, req) in [
        ("missing", missing),
        ("sha1 only", sha1_only),
        ("malformed", malformed),
        ("wrong secret", wrong_secret),
        ("tampered body", tampered),
    ] {
        let (status, answer) = bus.deliver(req).await;
        assert_eq!(status, 401, "{what}: {answer}");
    }
    assert_eq!(bus.events_calls.count(), 0, "nothing may reach any bus");
    assert!(bus.drain().await.is_empty());
}

#[tokio::test]
async fn a_secret_stored_with_a_trailing_newline_still_verifies() {
    let bus = setup(&format!("{SAMPLE_SECRET}\n")).await;
    let (status, body) = bus.deliver(request("webhook-delete-branch.json")).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn a_rotated_secret_is_read_again_on_a_signature_mismatch() {
    let bus = setup(SAMPLE_SECRET).await;
    let sdk = sdk_config();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let webhook = Webhook::new(bus.config.clone(), secrets.clone(), bus.events.clone())
        .with_secret_recheck_age(std::time::Duration::ZERO);
    let deliver = |req: Value| {
        let req: LambdaFunctionUrlRequest = serde_json::from_value(req).unwrap();
        let webhook = &webhook;
        async move { webhook.handle(req).await.status_code }
    };
    let good = request("webhook-delete-branch.json");
    let body = good["body"].as_str().unwrap().to_owned();
    assert_eq!(
        deliver(good.clone()).await,
        202,
        "the first secret is cached"
    );

    secrets
        .put_secret_value()
        .secret_id(&bus.secret_arn)
        .secret_string("the-rotated-secret")
        .send()
        .await
        .unwrap();
    let rotated = with_body(good.clone(), &body, "the-rotated-secret");
    assert_eq!(deliver(rotated).await, 202, "re-read after the mismatch");
    // GitHub may still sign with the old secret until the operator changes it there too:
    // AWSPREVIOUS is accepted while the rotation is recent.
    let old = with_body(good.clone(), &body, SAMPLE_SECRET);
    assert_eq!(
        deliver(old.clone()).await,
        202,
        "the previous secret still works during the rotation"
    );
    let wrong = with_body(good, &body, "never-the-secret");
    assert_eq!(deliver(wrong).await, 401);

    // Once the rotation is older than the grace period, the previous secret is refused.
    let settled = Webhook::new(bus.config.clone(), secrets, bus.events.clone())
        .with_secret_recheck_age(std::time::Duration::ZERO)
        .with_rotation_grace(std::time::Duration::ZERO);
    let req: LambdaFunctionUrlRequest = serde_json::from_value(old).unwrap();
    assert_eq!(
        settled.handle(req).await.status_code,
        401,
        "the old secret no longer works after the rotation"
    );
}

#[tokio::test]
async fn ping_bad_bodies_and_oversize_are_answered_without_forwarding() {
    let bus = setup(SAMPLE_SECRET).await;
    let (status, body) = bus.deliver(request("webhook-ping.json")).await;
    assert_eq!(status, 200);
    assert_eq!(body["message"], "pong");

    let good = request("webhook-delete-branch.json");
    let not_json = with_body(good.clone(), "{not json", SAMPLE_SECRET);
    assert_eq!(bus.deliver(not_json).await.0, 400);
    let mut plain = with_body(good.clone(), "hello", SAMPLE_SECRET);
    plain["headers"]["content-type"] = json!("text/plain");
    assert_eq!(bus.deliver(plain).await.0, 400);
    let mut no_event = good.clone();
    no_event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-github-event");
    assert_eq!(bus.deliver(no_event).await.0, 400);
    let mut bad_b64 = good.clone();
    bad_b64["isBase64Encoded"] = json!(true);
    bad_b64["body"] = json!("%%%");
    assert_eq!(bus.deliver(bad_b64).await.0, 400);

    let huge = json!({"ref": "refs/heads/x", "deleted": false, "commits": ["x".repeat(300 * 1024)],
                      "repository": {"full_name": "acme/my-app"}})
    .to_string();
    let mut big = with_body(good, &huge, SAMPLE_SECRET);
    big["headers"]["x-github-event"] = json!("push");
    let (status, body) = bus.deliver(big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"));
    assert_eq!(bus.events_calls.count(), 0, "nothing may reach any bus");
    assert!(bus.drain().await.is_empty());
}

#[tokio::test]
async fn missing_secret_is_a_server_error_not_an_open_door() {
    let bus = setup(SAMPLE_SECRET).await;
    let sdk = sdk_config();
    let config = WebhookConfig::from_lookup(|v| match v {
        "GITHUB_WEBHOOK_SECRET_ARN" => {
            Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:does-not-exist".into())
        }
        _ => None,
    })
    .unwrap();
    let broken = Webhook::new(
        config,
        aws_sdk_secretsmanager::Client::new(&sdk),
        bus.events.clone(),
    );
    let req: LambdaFunctionUrlRequest =
        serde_json::from_value(request("webhook-delete-branch.json")).unwrap();
    assert_eq!(broken.handle(req).await.status_code, 500);
    assert_eq!(bus.events_calls.count(), 0, "nothing may reach any bus");
    assert!(bus.drain().await.is_empty());
}

#[tokio::test]
async fn end_to_end_branch_deletion_removes_only_that_branch_cache() {
    let ecr = ecr_client();
    let repository = unique_name("e2e");
    create_repository(&ecr, &repository).await;
    let main = cache_manifest(&format!("{repository}-main"));
    push(&ecr, &repository, &main, Some("cache-main")).await;
    let feature = cache_manifest(&format!("{repository}-feature"));
    push(&ecr, &repository, &feature, Some("cache-feature-login")).await;
    push(
        &ecr,
        &repository,
        &feature,
        Some("cache-feature-login-copy"),
    )
    .await;
    let app = app_manifest(&repository, "amd64");
    push(&ecr, &repository, &app, Some("v1")).await;

    // GitHub deletes feature/login and, in the same second, main (protected).
    let bus = setup(SAMPLE_SECRET).await;
    for branch in ["feature/login", "main"] {
        let mut payload: Value = serde_json::from_str(
            request("webhook-delete-branch.json")["body"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        payload["ref"] = json!(branch);
        payload["repository"]["full_name"] = json!(format!("acme/{repository}"));
        let req = with_body(
            fresh(request("webhook-delete-branch.json")),
            &payload.to_string(),
            SAMPLE_SECRET,
        );
        assert_eq!(bus.deliver(req).await.0, 202);
    }

    let records: Vec<Value> = bus
        .drain()
        .await
        .iter()
        .map(|m| json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                        "eventSource": "aws:sqs", "awsRegion": "us-east-1"}))
        .collect();
    assert_eq!(records.len(), 2);
    let batch: SqsEvent = serde_json::from_value(json!({"Records": records})).unwrap();
    let pruner = support::moto::pruner(&[]);
    let response = pruner
        .handle_sqs(batch, ecr_cache_pruner::app::deadline::Deadline::NEVER)
        .await;
    assert!(response.batch_item_failures.is_empty());

    let after = contents(&ecr, &repository).await;
    assert_eq!(after[&main.digest], vec!["cache-main"]);
    assert_eq!(
        after[&feature.digest],
        vec!["cache-feature-login-copy"],
        "other tag on the digest survives"
    );
    assert_eq!(after[&app.digest], vec!["v1"]);
}

#[tokio::test]
async fn forged_deliveries_do_not_read_the_secret_each_time() {
    // A secret never rotated has no AWSPREVIOUS version; its current version is minutes old, so a
    // mismatch looks like a rotation in progress. The previous version is asked for at most once
    // per re-check period, not once per forged delivery.
    let bus = setup(SAMPLE_SECRET).await;
    let sdk = sdk_config();
    let secret_calls = CallCount::default();
    let secrets = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk)
            .interceptor(secret_calls.clone())
            .build(),
    );
    let webhook = Webhook::new(bus.config.clone(), secrets, bus.events.clone());
    let good = request("webhook-delete-branch.json");
    let body = good["body"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        let forged = with_body(good.clone(), &body, "guess");
        let req: LambdaFunctionUrlRequest = serde_json::from_value(forged).unwrap();
        assert_eq!(webhook.handle(req).await.status_code, 401);
    }
    assert_eq!(
        secret_calls.count(),
        2,
        "the current secret once, the missing previous version once"
    );
    let req: LambdaFunctionUrlRequest = serde_json::from_value(good).unwrap();
    assert_eq!(webhook.handle(req).await.status_code, 202);
}

#[tokio::test]
async fn a_redelivered_deletion_is_judged_as_of_the_original_event() {
    // feature/login was deleted two days ago, then made again and pushed its cache today; the
    // old deletion is redelivered from GitHub's "Recent deliveries" (same GUID). No token: the
    // event's time is all the pruner has.
    let ecr = ecr_client();
    let repository = unique_name("redelivered");
    create_repository(&ecr, &repository).await;
    let fresh_cache = cache_manifest(&format!("{repository}-feature"));
    push(&ecr, &repository, &fresh_cache, Some("cache-feature-login")).await;

    let bus = setup(SAMPLE_SECRET).await;
    let mut payload: Value = serde_json::from_str(
        request("webhook-delete-branch.json")["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    payload["ref"] = json!("feature/login");
    payload["repository"]["full_name"] = json!(format!("acme/{repository}"));
    let two_days = 2 * 24 * 3600;
    let req = with_body(
        delivered(request("webhook-delete-branch.json"), two_days),
        &payload.to_string(),
        SAMPLE_SECRET,
    );
    assert_eq!(bus.deliver(req).await.0, 202);

    let messages = bus.drain().await;
    assert_eq!(messages.len(), 1);
    let forwarded: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    let time =
        ecr_cache_pruner::core::time::parse_rfc3339(forwarded["time"].as_str().unwrap()).unwrap();
    assert!(
        (now_secs() - two_days - time).abs() <= 1,
        "forwarded with the time GitHub created the event: {forwarded}"
    );

    let record = json!({"messageId": messages[0].message_id(), "receiptHandle": messages[0].receipt_handle(),
                        "body": messages[0].body(), "eventSource": "aws:sqs", "awsRegion": "us-east-1"});
    let batch: SqsEvent = serde_json::from_value(json!({"Records": [record]})).unwrap();
    let response = support::moto::pruner(&[])
        .handle_sqs(batch, ecr_cache_pruner::app::deadline::Deadline::NEVER)
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        contents(&ecr, &repository).await[&fresh_cache.digest],
        vec!["cache-feature-login"],
        "a cache pushed after the original deletion stays"
    );
}
