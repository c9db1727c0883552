//! The `pruner` Lambda: prunes stale BuildKit cache manifests from ECR on push events, removes
//! deleted branches' cache tags, and sweeps on a schedule.

use ecr_cache_pruner::adapters::aws::load_config;
use ecr_cache_pruner::adapters::ecr::EcrRegistry;
use ecr_cache_pruner::adapters::sqs::SqsSweepQueue;
use ecr_cache_pruner::inbound::config::Config;
use ecr_cache_pruner::inbound::pruner::{audit, runtime_deadline, Pruner};
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    // Bad configuration fails the init, with the variable named, before any event is taken.
    let config = Config::from_env()?;
    let sdk = load_config().await;
    let queue = config
        .sweep_queue_url
        .clone()
        .map(|url| SqsSweepQueue::new(aws_sdk_sqs::Client::new(&sdk), url));
    let mut pruner = Pruner::new(config, EcrRegistry::new(aws_sdk_ecr::Client::new(&sdk)))
        .with_secrets(aws_sdk_secretsmanager::Client::new(&sdk));
    if let Some(queue) = queue {
        pruner = pruner.with_sweep_queue(queue);
    }
    let pruner = &pruner;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = runtime_deadline(event.context.deadline, std::time::SystemTime::now());
        let work = pruner.handle_with_deadline(event.payload, Some(deadline));
        audit::with_request_id(event.context.request_id, work).await
    }))
    .await
}
