//! Finds or starts the moto server the integration tests talk to.
//!
//! `MOTO_ENDPOINT` (set by `scripts/test.sh`) names a running server; without it the first test
//! starts one from `.venv/bin/moto_server` (or `PATH`) that lives as long as the test process.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_ecr::config::{BehaviorVersion, Credentials, Region};

static ENDPOINT: OnceLock<String> = OnceLock::new();
// Held for the life of the test process: when it exits, the pipe closes and the shell kills moto.
static SERVER: Mutex<Option<Child>> = Mutex::new(None);

pub fn endpoint() -> &'static str {
    ENDPOINT.get_or_init(|| {
        if let Ok(url) = std::env::var("MOTO_ENDPOINT") {
            return url;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let local = super::project_dir().join(".venv/bin/moto_server");
        let binary = if local.exists() {
            local.display().to_string()
        } else {
            "moto_server".to_owned()
        };
        let script = format!(
            "'{binary}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid"
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start moto_server (run scripts/setup.sh)");
        *SERVER.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        format!("http://127.0.0.1:{port}")
    })
}

pub fn sdk_config() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(aws_sdk_ecr::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "tests"),
        ))
        .build()
}

pub fn ecr_client() -> aws_sdk_ecr::Client {
    aws_sdk_ecr::Client::new(&sdk_config())
}

/// A repository name no other test (or earlier run against the same server) uses.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Reads a sample event from `events/`.
pub fn event(name: &str) -> serde_json::Value {
    let path = format!("{}/events/{name}", super::project_dir().display());
    let mut text = String::new();
    std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .read_to_string(&mut text)
        .unwrap();
    let mut event: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The sample happens now, after whatever the test pushed (a branch deletion removes only a
    // cache pushed before its event's time).
    if event.get("time").is_some() {
        event["time"] = serde_json::json!(rfc3339(now_secs()));
    }
    event
}

pub use ecr_cache_pruner::inbound::now_secs;

/// `secs` since the epoch as EventBridge writes times (`2026-11-30T16:18:28Z`).
pub fn rfc3339(secs: i64) -> String {
    ecr_cache_pruner::core::time::format_rfc3339(secs)
}

/// Creates a Secrets Manager secret with a unique name; returns its ARN.
pub async fn create_secret(prefix: &str, value: &str) -> String {
    aws_sdk_secretsmanager::Client::new(&sdk_config())
        .create_secret()
        .name(unique_name(prefix))
        .secret_string(value)
        .send()
        .await
        .expect("create secret")
        .arn()
        .expect("secret ARN")
        .to_owned()
}

/// The pruner's configuration from `(variable, value)` pairs, as the environment would give it.
pub fn config(vars: &[(&str, &str)]) -> ecr_cache_pruner::inbound::config::Config {
    ecr_cache_pruner::inbound::config::Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

/// The ECR adapter on moto.
pub fn registry() -> ecr_cache_pruner::adapters::ecr::EcrRegistry {
    ecr_cache_pruner::adapters::ecr::EcrRegistry::new(ecr_client())
}

/// The pruner handler on moto with the given configuration.
pub fn pruner(vars: &[(&str, &str)]) -> ecr_cache_pruner::inbound::pruner::Pruner {
    ecr_cache_pruner::inbound::pruner::Pruner::new(config(vars), registry())
}
