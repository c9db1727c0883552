//! What one refused request at the public webhook URL costs: the handler's time per forged
//! delivery next to a signed one (same run, ratio), the Secrets Manager and EventBridge calls over
//! a flood, and the process's peak memory. The network is replaced by aws-smithy-mocks (the
//! handler, signature check, secret cache and SDK client stack are real). The flood's bill is
//! computed from these numbers in docs/operations.md.
//!
//!     cargo bench --bench webhook

use std::time::{Duration, Instant};

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use ecr_cache_pruner::core::webhook::sign;
use ecr_cache_pruner::inbound::webhook::{Webhook, WebhookConfig};
use serde_json::{json, Value};

const SECRET: &str = "ecr-cache-pruner-example-secret";
const FLOOD: usize = 20_000;
const SIGNED: usize = 2_000;

fn request(signature: Option<&str>, body: &str) -> LambdaFunctionUrlRequest {
    let mut sample: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/webhook-delete-branch.json"
        ))
        .unwrap(),
    )
    .unwrap();
    sample["body"] = json!(body);
    match signature {
        Some(s) => sample["headers"]["x-hub-signature-256"] = json!(s),
        None => {
            sample["headers"]
                .as_object_mut()
                .unwrap()
                .remove("x-hub-signature-256");
        }
    }
    serde_json::from_value(sample).unwrap()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let get = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_compute_output(|req| {
        // The previous version does not exist before a first rotation.
        if req.version_stage() == Some("AWSPREVIOUS") {
            panic!("no previous version in this bench: the secret is old (no rotation)")
        }
        GetSecretValueOutput::builder()
            .secret_string(SECRET)
            // Created long ago: no rotation in progress, so no previous version is tried.
            .created_date(aws_smithy_types::DateTime::from_secs(1_700_000_000))
            .build()
    });
    let secrets = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&get]);
    let put = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
        PutEventsOutput::builder()
            .failed_entry_count(0)
            .entries(PutEventsResultEntry::builder().event_id("e").build())
            .build()
    });
    let events = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&put]);
    let config = WebhookConfig::from_lookup(|name| match name {
        "GITHUB_WEBHOOK_SECRET_ARN" => Some("arn:aws:secretsmanager:us-east-1:1:secret:s".into()),
        _ => None,
    })
    .unwrap();
    let webhook = Webhook::new(config, secrets, events);

    let body = r#"{"ref":"feature/x","ref_type":"branch","repository":{"full_name":"acme/app"}}"#;
    let good = sign(SECRET.as_bytes(), body.as_bytes());
    let forged = format!("sha256={}", "0".repeat(64));
    // Warm: the secret is read once, by the first delivery.
    assert_eq!(
        webhook.handle(request(Some(&good), body)).await.status_code,
        202
    );
    let (reads_warm, puts_warm) = (get.num_calls(), put.num_calls());
    let rss_before = peak_rss_kib();

    // Interleaved, so both see the same machine load.
    let (mut refused, mut accepted) = (Vec::new(), Vec::new());
    for i in 0..FLOOD {
        let signature = if i % 2 == 0 {
            Some(forged.as_str())
        } else {
            None
        };
        let req = request(signature, body);
        let started = Instant::now();
        let status = webhook.handle(req).await.status_code;
        refused.push(started.elapsed());
        assert_eq!(status, 401);
        if i % (FLOOD / SIGNED) == 0 {
            let req = request(Some(&good), body);
            let started = Instant::now();
            assert_eq!(webhook.handle(req).await.status_code, 202);
            accepted.push(started.elapsed());
        }
    }
    let signed = accepted.len();
    let (refused, accepted) = (median(refused), median(accepted));
    eprintln!("| what | requests | median per request | vs a signed delivery |");
    eprintln!("| --- | ---: | ---: | ---: |");
    eprintln!(
        "| refused (forged or unsigned), handler only | {FLOOD} | {refused:.2?} | {:.2}x |",
        refused.as_secs_f64() / accepted.as_secs_f64()
    );
    eprintln!("| accepted (signed, PutEvents mocked) | {signed} | {accepted:.2?} | 1.00x |");
    eprintln!();
    eprintln!(
        "Secrets Manager GetSecretValue calls: {} to warm, {} during {FLOOD} refusals; EventBridge PutEvents: {} for {} signed, {} for the refusals; peak RSS {} MiB ({} KiB more during the flood)",
        reads_warm,
        get.num_calls() - reads_warm,
        put.num_calls() - puts_warm,
        signed,
        put.num_calls() - puts_warm - signed,
        peak_rss_kib() / 1024,
        peak_rss_kib().saturating_sub(rss_before)
    );
}
