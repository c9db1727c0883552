//! The `github-webhook` function: a Lambda function URL that authenticates GitHub deliveries by
//! their HMAC signature and forwards them to EventBridge (source `github.com`, detail-type = the
//! `X-GitHub-Event` header, detail = the payload), the shape of AWS's inbound-webhook quickstart.

use aws_lambda_events::http::{HeaderMap, HeaderValue};
use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use base64::Engine;
use lambda_runtime::tracing::{info, warn};
use serde_json::{json, Value};
use thiserror::Error;
use tokio::sync::OnceCell;

use crate::github::{decode_payload, verify_signature};

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
        Ok(WebhookConfig {
            secret_arn,
            event_bus,
        })
    }
}

/// Built once per container; the webhook secret is fetched on first use and cached.
pub struct Webhook {
    config: WebhookConfig,
    secrets: aws_sdk_secretsmanager::Client,
    events: aws_sdk_eventbridge::Client,
    secret: OnceCell<Vec<u8>>,
}

fn respond(status: i64, body: Value) -> LambdaFunctionUrlResponse {
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
        Webhook {
            config,
            secrets,
            events,
            secret: OnceCell::new(),
        }
    }

    async fn secret(&self) -> Result<&[u8], String> {
        self.secret
            .get_or_try_init(|| async {
                let output = self
                    .secrets
                    .get_secret_value()
                    .secret_id(&self.config.secret_arn)
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "reading the webhook secret failed: {}",
                            aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                        )
                    })?;
                match output.secret_string() {
                    Some(s) if !s.is_empty() => Ok(s.as_bytes().to_vec()),
                    _ => Err("the webhook secret has no SecretString".to_owned()),
                }
            })
            .await
            .map(Vec::as_slice)
    }

    pub async fn handle(&self, request: LambdaFunctionUrlRequest) -> LambdaFunctionUrlResponse {
        let delivery = header(&request.headers, "x-github-delivery")
            .unwrap_or("-")
            .to_owned();
        let event = header(&request.headers, "x-github-event")
            .unwrap_or("")
            .to_owned();
        let response = self.process(&request, &event).await;
        let status = response.status_code;
        if status < 300 {
            info!(%delivery, %event, status, "delivery handled");
        } else {
            warn!(%delivery, %event, status, body = response.body.as_deref().unwrap_or(""), "delivery refused");
        }
        response
    }

    async fn process(
        &self,
        request: &LambdaFunctionUrlRequest,
        event: &str,
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

        let secret = match self.secret().await {
            Ok(secret) => secret,
            Err(problem) => {
                warn!(%problem, "webhook secret unavailable");
                return respond(500, json!({"error": "webhook secret unavailable"}));
            }
        };
        if let Err(err) = verify_signature(
            secret,
            &body,
            header(&request.headers, "x-hub-signature-256"),
        ) {
            return respond(401, json!({"error": err.to_string()}));
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
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.config.event_bus)
            .source(EVENT_SOURCE)
            .detail_type(event)
            .detail(detail)
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
