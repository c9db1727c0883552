//! The `github-webhook` Lambda: verifies GitHub deliveries and puts them on EventBridge.

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use ecr_cache_pruner::handler::webhook::{Webhook, WebhookConfig};
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = WebhookConfig::from_env()?;
    let sdk = ecr_cache_pruner::aws::load_config().await;
    let webhook = Webhook::new(
        config,
        aws_sdk_secretsmanager::Client::new(&sdk),
        aws_sdk_eventbridge::Client::new(&sdk),
    );
    let webhook = &webhook;
    run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
            Ok::<_, Error>(webhook.handle(event.payload).await)
        },
    ))
    .await
}
