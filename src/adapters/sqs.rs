//! The sweep queue on SQS: one EventBridge-shaped `Repository Sweep` message per repository, sent
//! with SendMessageBatch (at most 10 entries a call). Entries SQS reports as failed are sent once
//! more; what still fails is an error, so the scheduled invocation fails and is retried.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::app::ports::{QueueError, SweepQueue};
use crate::core::trigger::{continued_sweep_event, Continuation};

/// SendMessageBatch maximum.
const BATCH: usize = 10;

pub struct SqsSweepQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsSweepQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsSweepQueue {
            client,
            url: url.into(),
        }
    }

    /// Sends one batch; returns the repositories whose entries failed.
    async fn send(&self, repositories: &[String]) -> Result<Vec<String>, QueueError> {
        self.send_messages(repositories, None).await
    }

    async fn send_messages(
        &self,
        repositories: &[String],
        continuation: Option<Continuation>,
    ) -> Result<Vec<String>, QueueError> {
        let entries = repositories
            .iter()
            .enumerate()
            .map(|(i, repository)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(continued_sweep_event(repository, continuation).to_string())
                    .build()
                    .map_err(|e| QueueError(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError(DisplayErrorContext(&e).to_string()))?;
        Ok(output
            .failed()
            .iter()
            .filter_map(|f| f.id().parse::<usize>().ok())
            .filter_map(|i| repositories.get(i).cloned())
            .collect())
    }
}

impl SweepQueue for SqsSweepQueue {
    async fn enqueue(&self, repositories: &[String]) -> Result<(), QueueError> {
        for chunk in repositories.chunks(BATCH) {
            let failed = self.send(chunk).await?;
            if failed.is_empty() {
                continue;
            }
            let still = self.send(&failed).await?;
            if !still.is_empty() {
                return Err(QueueError(format!(
                    "SQS refused the messages for {} repositor(y/ies), first {}",
                    still.len(),
                    still[0]
                )));
            }
        }
        Ok(())
    }

    async fn continue_sweep(
        &self,
        repository: &str,
        continuation: Continuation,
    ) -> Result<(), QueueError> {
        let one = [repository.to_owned()];
        if self
            .send_messages(&one, Some(continuation))
            .await?
            .is_empty()
            || self
                .send_messages(&one, Some(continuation))
                .await?
                .is_empty()
        {
            return Ok(());
        }
        Err(QueueError(format!(
            "SQS refused the continuation of {repository}"
        )))
    }
}
