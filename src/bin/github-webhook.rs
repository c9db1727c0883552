//! The `github-webhook` Lambda: verifies GitHub deliveries and puts them on EventBridge.

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use ecr_cache_pruner::inbound::webhook::{Webhook, WebhookConfig};
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = WebhookConfig::from_env()?;
    let sdk = ecr_cache_pruner::adapters::aws::load_config().await;
    // GitHub waits 10 s: give up on EventBridge (retries included) in time to answer a clear 502.
    let events_config = aws_sdk_eventbridge::config::Builder::from(&sdk)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(std::time::Duration::from_secs(7))
                .build(),
        )
        .build();
    let webhook = Webhook::new(
        config,
        aws_sdk_secretsmanager::Client::new(&sdk),
        aws_sdk_eventbridge::Client::from_conf(events_config),
    );
    let webhook = &webhook;
    run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
            Ok::<_, Error>(webhook.handle(event.payload).await)
        },
    ))
    .await
}
