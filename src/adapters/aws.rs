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
        // A profile named on the command line wins over key variables in the environment (as in
        // the AWS CLI); the default chain would try those first and quietly use another account.
        let credentials = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .profile_name(&profile)
            .build();
        loader = loader
            .profile_name(profile)
            .credentials_provider(credentials);
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader.load().await
}

/// An error and its causes as one line, each level once, at most 300 characters: what a person
/// reads instead of the SDK's nested debug context.
pub fn sentence_of(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        // One line: the default chain's error lists every provider it tried, one per line.
        let first = text.lines().next().unwrap_or("");
        let text = first
            .trim()
            .trim_end_matches("Attempted:")
            .trim_end_matches([':', ' ']);
        if !text.is_empty() && !parts.iter().any(|p| p.contains(text)) {
            parts.push(text.to_owned());
        }
        current = e.source();
    }
    let line = parts.join(": ");
    if line.chars().count() > 300 {
        line.chars().take(299).collect::<String>() + "…"
    } else {
        line
    }
}
