//! One cached Secrets Manager reader, shared by both Lambdas (the webhook secret, the GitHub
//! token): read on first use, kept for the container's life, trimmed (a secret pasted with a
//! trailing newline must still match), and re-readable when it may have been rotated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("reading secret {secret} failed: {message}")]
    Read { secret: String, message: String },
    #[error("secret {secret} has no SecretString (or only whitespace)")]
    Empty { secret: String },
}

pub struct CachedSecret {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    /// The version stage read (`AWSCURRENT` when None).
    stage: Option<&'static str>,
    cached: Mutex<Option<(Arc<str>, Instant)>>,
    /// When the version read was created (seconds since the epoch), when Secrets Manager says.
    created_at: Mutex<Option<i64>>,
    /// When a re-read was last tried, whatever its result: a version that does not exist (no
    /// `AWSPREVIOUS` before the first rotation) is not asked for again on every request.
    last_attempt: Mutex<Option<Instant>>,
}

impl CachedSecret {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        CachedSecret {
            client,
            secret_id: secret_id.into(),
            stage: None,
            cached: Mutex::new(None),
            created_at: Mutex::new(None),
            last_attempt: Mutex::new(None),
        }
    }

    /// Reads the version with `stage` (`AWSPREVIOUS`: the value before the last rotation).
    pub fn with_stage(mut self, stage: &'static str) -> Self {
        self.stage = Some(stage);
        self
    }

    /// The value read last, without reading.
    pub async fn cached(&self) -> Option<Arc<str>> {
        self.cached.lock().await.as_ref().map(|(v, _)| v.clone())
    }

    /// When the version last read was created (None before a read, or when not reported).
    pub async fn created_at(&self) -> Option<i64> {
        *self.created_at.lock().await
    }

    /// The secret, read once and then served from memory.
    pub async fn get(&self) -> Result<Arc<str>, SecretError> {
        let mut cached = self.cached.lock().await;
        if let Some((value, _)) = cached.as_ref() {
            return Ok(value.clone());
        }
        let value = self.read().await?;
        *cached = Some((value.clone(), Instant::now()));
        Ok(value)
    }

    /// Reads the secret again if the cached copy, and the last attempt to read it, are older than
    /// `age` (it may have been rotated); returns the new value when it was re-read, None when the
    /// cache (or a failed attempt) is recent.
    pub async fn refresh_if_older_than(
        &self,
        age: Duration,
    ) -> Result<Option<Arc<str>>, SecretError> {
        let mut cached = self.cached.lock().await;
        if matches!(cached.as_ref(), Some((_, at)) if at.elapsed() < age) {
            return Ok(None);
        }
        {
            let mut last = self.last_attempt.lock().await;
            if !age.is_zero() && last.is_some_and(|at| at.elapsed() < age) {
                return Ok(None);
            }
            *last = Some(Instant::now());
        }
        let value = self.read().await?;
        *cached = Some((value.clone(), Instant::now()));
        Ok(Some(value))
    }

    /// Reads the secret again now, whatever the cache holds (the value in use was refused).
    pub async fn reread(&self) -> Result<Arc<str>, SecretError> {
        let mut cached = self.cached.lock().await;
        let value = self.read().await?;
        *cached = Some((value.clone(), Instant::now()));
        Ok(value)
    }

    async fn read(&self) -> Result<Arc<str>, SecretError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .set_version_stage(self.stage.map(str::to_owned))
            .send()
            .await
            .map_err(|e| SecretError::Read {
                secret: self.secret_id.clone(),
                message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            })?;
        *self.created_at.lock().await = output.created_date().map(|d| d.secs());
        output
            .secret_string()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Arc::from)
            .ok_or_else(|| SecretError::Empty {
                secret: self.secret_id.clone(),
            })
    }
}
