//! Turning an incoming EventBridge event into something to do, or a reason to ignore it.
//! Pure: validation happens here, before any AWS call.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::config::Config;
use crate::names::{is_valid_digest, is_valid_repository_name};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A cache tag was pushed: prune that repository's stale cache manifests.
    CachePush {
        repository: String,
        digest: String,
        tag: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Act(Trigger),
    Ignore { reason: String },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TriggerError {
    #[error("not an EventBridge event: {0}")]
    NotEventBridge(String),
    #[error("malformed {source_name} event: {problem}")]
    Malformed {
        source_name: String,
        problem: String,
    },
}

fn malformed(source_name: &str, problem: impl Into<String>) -> TriggerError {
    TriggerError::Malformed {
        source_name: source_name.to_owned(),
        problem: problem.into(),
    }
}

fn ignore(reason: impl Into<String>) -> Decision {
    Decision::Ignore {
        reason: reason.into(),
    }
}

/// `detail` of an "ECR Image Action" event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct EcrImageAction {
    result: String,
    action_type: String,
    repository_name: String,
    #[serde(default)]
    image_digest: Option<String>,
    #[serde(default)]
    image_tag: Option<String>,
}

pub fn decide(event: &Value, config: &Config) -> Result<Decision, TriggerError> {
    let envelope: EventBridgeEvent<Value> = serde_path_to_error::deserialize(event)
        .map_err(|e| TriggerError::NotEventBridge(e.to_string()))?;
    match (envelope.source.as_str(), envelope.detail_type.as_str()) {
        ("aws.ecr", "ECR Image Action") => decide_ecr(envelope.detail, config),
        ("aws.ecr", other) => Ok(ignore(format!(
            "ECR event {other:?} is not an image action"
        ))),
        (source, detail_type) => Ok(ignore(format!(
            "no handling for source {source:?} detail-type {detail_type:?}"
        ))),
    }
}

fn decide_ecr(detail: Value, config: &Config) -> Result<Decision, TriggerError> {
    let action: EcrImageAction = serde_path_to_error::deserialize(detail)
        .map_err(|e| malformed("ECR Image Action", format!("detail.{e}")))?;
    if !is_valid_repository_name(&action.repository_name) {
        return Err(malformed(
            "ECR Image Action",
            format!("invalid repository-name {:?}", action.repository_name),
        ));
    }
    if action.action_type != "PUSH" {
        return Ok(ignore(format!(
            "action-type {} is not PUSH",
            action.action_type
        )));
    }
    if action.result != "SUCCESS" {
        return Ok(ignore(format!("push result is {}", action.result)));
    }
    let tag = action.image_tag.unwrap_or_default();
    if tag.is_empty() {
        return Ok(ignore("push by digest (no image-tag)"));
    }
    if !tag.starts_with(&config.cache_tag_prefix) {
        return Ok(ignore(format!(
            "tag {tag:?} does not start with cache prefix {:?}",
            config.cache_tag_prefix
        )));
    }
    let digest = action
        .image_digest
        .ok_or_else(|| malformed("ECR Image Action", "PUSH without image-digest"))?;
    if !is_valid_digest(&digest) {
        return Err(malformed(
            "ECR Image Action",
            format!("invalid image-digest {digest:?}"),
        ));
    }
    Ok(Decision::Act(Trigger::CachePush {
        repository: action.repository_name,
        digest,
        tag,
    }))
}
