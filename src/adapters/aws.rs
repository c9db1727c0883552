//! SDK configuration shared by every binary: the standard credential/region/endpoint chain
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_ECR`, ...) with adaptive retries for throttling.

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;

/// Attempts per request, first try included. Adaptive mode also rate-limits the client after a
/// throttling answer, so a burst of events does not stampede ECR.
pub const MAX_ATTEMPTS: u32 = 8;

/// The retry policy every client uses.
pub fn retry_config() -> RetryConfig {
    RetryConfig::adaptive().with_max_attempts(MAX_ATTEMPTS)
}

pub async fn load_config() -> aws_config::SdkConfig {
    load_config_for(None, None).await
}

/// The standard chain, with a region and a named profile when given (the CLI's `--region`,
/// `--profile`); unset, the environment and the shared config files decide.
pub async fn load_config_for(
    region: Option<String>,
    profile: Option<String>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config());
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader.load().await
}
