//! Why an invocation failed, as the Lambda runtime reports it (`errorType`, `errorMessage`).

use thiserror::Error;

use crate::app::ports::{BranchListError, QueueError, RegistryError};
use crate::app::prune::PruneError;
use crate::core::trigger::TriggerError;

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error(transparent)]
    BadEvent(#[from] TriggerError),
    #[error("unrecognised input: expected an EventBridge event or an SQS event ({0})")]
    UnknownInput(String),
    #[error(transparent)]
    Prune(#[from] PruneError),
    #[error(transparent)]
    Branches(#[from] BranchListError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("sweep: {count} repositor(y/ies) failed, first {repository}: {error}")]
    SweepFailures {
        count: usize,
        repository: String,
        error: String,
    },
    #[error("{repository}: {count} deletion(s) failed, first {code}: {message}; the event will be retried")]
    DeleteFailures {
        repository: String,
        count: usize,
        code: String,
        message: String,
    },
}

impl From<RegistryError> for HandlerError {
    fn from(err: RegistryError) -> Self {
        HandlerError::Prune(err.into())
    }
}

impl HandlerError {
    fn kind(&self) -> &'static str {
        match self {
            HandlerError::BadEvent(_) => "BadEvent",
            HandlerError::UnknownInput(_) => "UnknownInput",
            HandlerError::Prune(_) => "PruneFailed",
            HandlerError::DeleteFailures { .. } => "DeleteFailures",
            HandlerError::SweepFailures { .. } => "SweepFailures",
            HandlerError::Branches(_) => "GitHub",
            HandlerError::Queue(_) => "SweepQueue",
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(err: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.kind().to_owned(),
            error_message: err.to_string(),
        }
    }
}
