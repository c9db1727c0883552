//! The `github-webhook` function: a Lambda function URL that authenticates GitHub deliveries by
//! their HMAC signature and forwards them to EventBridge (source `github.com`, detail-type = the
//! `X-GitHub-Event` header, detail = the payload), the shape of AWS's inbound-webhook quickstart.

use crate::adapters::secrets::CachedSecret;
use crate::core::webhook::{decode_payload, verify_signature, SignatureError};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use base64::Engine;
use lambda_runtime::tracing::{info, warn};
use serde_json::{json, Value};
use thiserror::Error;

pub const DEFAULT_EVENT_BUS: &str = "default";
pub const EVENT_SOURCE: &str = "github.com";
/// EventBridge's PutEvents entry size limit.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid {variable}: {problem}")]
pub struct WebhookConfigError {
    pub variable: &'static str,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub secret_arn: String,
    pub event_bus: String,
    /// CloudWatch namespace of the rejected-deliveries metric (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`, set by Lambda): the metric's dimension,
    /// so each stack's alarm counts its own webhook.
    pub function_name: String,
}

impl WebhookConfig {
    pub fn from_env() -> Result<Self, WebhookConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, WebhookConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let secret_arn = get("GITHUB_WEBHOOK_SECRET_ARN").ok_or(WebhookConfigError {
            variable: "GITHUB_WEBHOOK_SECRET_ARN",
            problem: "must be set to the ARN (or name) of the Secrets Manager secret holding the webhook secret".into(),
        })?;
        let event_bus = get("EVENT_BUS_NAME").unwrap_or_else(|| DEFAULT_EVENT_BUS.to_owned());
        let metrics_namespace = get("METRICS_NAMESPACE")
            .unwrap_or_else(|| crate::inbound::config::DEFAULT_METRICS_NAMESPACE.to_owned());
        let function_name =
            get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "github-webhook".to_owned());
        Ok(WebhookConfig {
            secret_arn,
            event_bus,
            metrics_namespace,
            function_name,
        })
    }
}

/// A delivery whose GUID is older than this is logged as a redelivery.
const REDELIVERY_AGE_SECS: i64 = 600;

/// The metric a refused request adds to: `DeliveriesRejected` (Count) per webhook function.
pub const REJECTED_METRIC: &str = "DeliveriesRejected";

/// The embedded-metric line of one refused request (CloudWatch turns it into a metric with no
/// API call and no permission).
pub fn rejection_metric(namespace: &str, function: &str, status: i64, timestamp_ms: u64) -> Value {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Webhook"]],
                "Metrics": [{"Name": REJECTED_METRIC, "Unit": "Count"}],
            }],
        },
        "Webhook": function,
        REJECTED_METRIC: 1,
        "status": status,
    })
}

/// A cached secret this old is read again once when a signature does not match: the secret may
/// have been rotated, and every delivery must not get 401 until the container is recycled.
pub const SECRET_RECHECK_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// How long after a rotation deliveries signed with the previous secret are still accepted: the
/// time an operator needs to change the secret on both sides (GitHub and Secrets Manager), in
/// either order, without losing deliveries (GitHub redelivers only when asked, from its UI or API).
pub const ROTATION_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Built once per container; the webhook secret is fetched on first use and cached.
pub struct Webhook {
    config: WebhookConfig,
    secret: CachedSecret,
    /// The secret's `AWSPREVIOUS` version, read only when a signature does not match.
    previous: CachedSecret,
    events: aws_sdk_eventbridge::Client,
    secret_recheck_age: std::time::Duration,
    rotation_grace: std::time::Duration,
}

type Response = LambdaFunctionUrlResponse;

fn respond(status: i64, body: Value) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let mut response = LambdaFunctionUrlResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(body.to_string());
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Webhook {
    pub fn new(
        config: WebhookConfig,
        secrets: aws_sdk_secretsmanager::Client,
        events: aws_sdk_eventbridge::Client,
    ) -> Self {
        let secret = CachedSecret::new(secrets.clone(), config.secret_arn.clone());
        let previous =
            CachedSecret::new(secrets, config.secret_arn.clone()).with_stage("AWSPREVIOUS");
        Webhook {
            config,
            secret,
            previous,
            events,
            secret_recheck_age: SECRET_RECHECK_AGE,
            rotation_grace: ROTATION_GRACE,
        }
    }

    /// How long the previous secret stays valid after a rotation (tests use zero).
    pub fn with_rotation_grace(mut self, grace: std::time::Duration) -> Self {
        self.rotation_grace = grace;
        self
    }

    /// During a rotation (the current version created less than [`ROTATION_GRACE`] ago), whether
    /// the previous version signed this delivery.
    async fn signed_with_previous(&self, body: &[u8], signature: Option<&str>) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let rotated_at = self.secret.created_at().await;
        let in_grace = rotated_at
            .is_some_and(|at| now.saturating_sub(at) < self.rotation_grace.as_secs() as i64);
        if !in_grace {
            return false;
        }
        let previous = match self
            .previous
            .refresh_if_older_than(self.secret_recheck_age)
            .await
        {
            Ok(Some(fresh)) => fresh,
            // Read recently, or tried recently and not found: never one read per request.
            Ok(None) => match self.previous.cached().await {
                Some(cached) => cached,
                None => return false,
            },
            // No previous version (never rotated), or unreadable: nothing to accept.
            Err(_) => return false,
        };
        let ok = verify_signature(previous.as_bytes(), body, signature).is_ok();
        if ok {
            info!("delivery signed with the previous webhook secret (rotation in progress)");
        }
        ok
    }

    /// How old a cached secret must be to be re-read on a signature mismatch (tests use zero).
    pub fn with_secret_recheck_age(mut self, age: std::time::Duration) -> Self {
        self.secret_recheck_age = age;
        self
    }

    /// Checks the signature with the cached secret; on a mismatch, once more with a fresh read
    /// when the cached one is older than [`SECRET_RECHECK_AGE`] (GitHub may already sign with a
    /// new secret), then with the previous version during a rotation (GitHub may still sign
    /// with the old one).
    async fn authenticate(&self, body: &[u8], signature: Option<&str>) -> Result<(), Response> {
        let secret = self.secret.get().await.map_err(|problem| {
            warn!(%problem, "webhook secret unavailable");
            respond(500, json!({"error": "webhook secret unavailable"}))
        })?;
        let unauthorized = |err: SignatureError| respond(401, json!({"error": err.to_string()}));
        match verify_signature(secret.as_bytes(), body, signature) {
            Err(SignatureError::Mismatch) => {
                let fresh = match self
                    .secret
                    .refresh_if_older_than(self.secret_recheck_age)
                    .await
                {
                    Ok(Some(fresh)) => verify_signature(fresh.as_bytes(), body, signature),
                    Ok(None) => Err(SignatureError::Mismatch),
                    Err(problem) => {
                        warn!(%problem, "webhook secret could not be re-read");
                        Err(SignatureError::Mismatch)
                    }
                };
                if fresh.is_ok() || self.signed_with_previous(body, signature).await {
                    return Ok(());
                }
                Err(unauthorized(SignatureError::Mismatch))
            }
            other => other.map_err(unauthorized),
        }
    }

    pub async fn handle(&self, request: LambdaFunctionUrlRequest) -> LambdaFunctionUrlResponse {
        let delivery = header(&request.headers, "x-github-delivery")
            .unwrap_or("-")
            .to_owned();
        let event = header(&request.headers, "x-github-event")
            .unwrap_or("")
            .to_owned();
        let response = self.process(&request, &event, &delivery).await;
        let status = response.status_code;
        if status < 300 {
            info!(%delivery, %event, status, "delivery handled");
        } else {
            warn!(%delivery, %event, status, body = response.body.as_deref().unwrap_or(""), "delivery refused");
        }
        // Refused requests (bad signature, bad body, wrong method) are counted: a flood of them
        // is a bill, and GitHub's own deliveries refused mean a secret that no longer matches.
        if (400..500).contains(&status) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            println!(
                "{}",
                rejection_metric(
                    &self.config.metrics_namespace,
                    &self.config.function_name,
                    status,
                    now
                )
            );
        }
        response
    }

    async fn process(
        &self,
        request: &LambdaFunctionUrlRequest,
        event: &str,
        delivery: &str,
    ) -> LambdaFunctionUrlResponse {
        let method = request
            .request_context
            .http
            .method
            .as_deref()
            .unwrap_or("POST");
        if !method.eq_ignore_ascii_case("POST") {
            return respond(405, json!({"error": "GitHub deliveries are POST requests"}));
        }
        let raw = request.body.as_deref().unwrap_or("");
        let body = if request.is_base64_encoded {
            match base64::engine::general_purpose::STANDARD.decode(raw) {
                Ok(bytes) => bytes,
                Err(e) => {
                    return respond(
                        400,
                        json!({"error": format!("body is not valid base64: {e}")}),
                    )
                }
            }
        } else {
            raw.as_bytes().to_vec()
        };

        if let Err(response) = self
            .authenticate(&body, header(&request.headers, "x-hub-signature-256"))
            .await
        {
            return response;
        }

        if event.is_empty() {
            return respond(400, json!({"error": "missing X-GitHub-Event header"}));
        }
        let payload = match decode_payload(header(&request.headers, "content-type"), &body) {
            Ok(payload) => payload,
            Err(err) => return respond(400, json!({"error": err.to_string()})),
        };
        if event == "ping" {
            // Not forwarded: nothing downstream acts on it, and it proves the secret matches.
            return respond(
                200,
                json!({"message": "pong", "hook_id": payload.get("hook_id")}),
            );
        }

        let detail = payload.to_string();
        let entry_size = EVENT_SOURCE.len() + event.len() + detail.len();
        if entry_size > MAX_ENTRY_BYTES {
            return respond(
                413,
                json!({"error": format!("payload of {entry_size} bytes exceeds EventBridge's {MAX_ENTRY_BYTES}-byte event limit")}),
            );
        }
        // The event's time is when GitHub created it, when the delivery's GUID says so: a
        // redelivery (same GUID, any time within GitHub's 3 days) is then judged as of the
        // original deletion, and a cache pushed since by a new branch of that name is kept.
        // Otherwise EventBridge stamps the time of this call.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let created = crate::core::webhook::delivery_created_at(delivery).filter(|t| *t <= now);
        if let Some(created) = created.filter(|t| now - t > REDELIVERY_AGE_SECS) {
            info!(
                %delivery,
                age_secs = now - created,
                "delivery made earlier (a redelivery): forwarded with the time GitHub created it"
            );
        }
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.config.event_bus)
            .source(EVENT_SOURCE)
            .detail_type(event)
            .detail(detail)
            .set_time(created.map(aws_smithy_types::DateTime::from_secs))
            .build();
        match self.events.put_events().entries(entry).send().await {
            Ok(output) if output.failed_entry_count() == 0 => {
                let id = output
                    .entries()
                    .first()
                    .and_then(|e| e.event_id())
                    .unwrap_or_default();
                respond(202, json!({"forwarded": true, "event_id": id}))
            }
            Ok(output) => {
                let failure = output.entries().first();
                let code = failure.and_then(|e| e.error_code()).unwrap_or("unknown");
                let message = failure.and_then(|e| e.error_message()).unwrap_or("");
                respond(
                    502,
                    json!({"error": format!("EventBridge rejected the event: {code} {message}")}),
                )
            }
            Err(err) => respond(
                502,
                json!({"error": format!("EventBridge PutEvents failed: {}", aws_sdk_eventbridge::error::DisplayErrorContext(&err))}),
            ),
        }
    }
}
