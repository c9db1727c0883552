//! The ports the use cases run over: a container registry and a branch lister. The ECR and GitHub
//! adapters implement them for production; tests implement them in memory to model ECR's
//! behaviour where emulators are kinder (pages, failure codes, faults, concurrent re-tags).
//!
//! Batch methods take at most [`BATCH_SIZE`] digests, as ECR's batch APIs do: the use cases do
//! the batching, so that the re-check of a batch and its delete call stay one round trip apart.

use std::collections::HashMap;
use std::future::Future;

use serde::Serialize;
use thiserror::Error;

pub use crate::core::plan::ImageNow;
use crate::core::plan::ImageRecord;
use crate::core::trigger::Continuation;

/// Maximum ids per BatchGetImage / BatchDeleteImage / DescribeImages-by-id call.
pub const BATCH_SIZE: usize = 100;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("repository {repository} does not exist")]
    RepositoryNotFound { repository: String },
    /// DescribeImages by id fails whole when any id asked for no longer exists.
    #[error("{operation} on {repository}: an image asked for does not exist")]
    ImageNotFound {
        operation: &'static str,
        repository: String,
    },
    /// A throttle, a 5xx, a timeout or a dropped connection: a retry may succeed, and the call
    /// may or may not have taken effect.
    #[error("{operation} on {repository} failed, may be retried: {message}")]
    Transient {
        operation: &'static str,
        repository: String,
        message: String,
    },
    /// The caller's IAM policy (or a repository policy, or an SCP) refuses it: lasting until
    /// someone changes a policy.
    #[error("{operation} on {repository} refused (AccessDenied): {message}")]
    AccessDenied {
        operation: &'static str,
        repository: String,
        message: String,
    },
    /// No usable AWS credentials (none found, expired, or the provider failed).
    #[error("{operation} on {repository}: no usable AWS credentials: {message}")]
    NoCredentials {
        operation: &'static str,
        repository: String,
        message: String,
    },
    #[error("{operation} on {repository} failed: {message}")]
    Api {
        operation: &'static str,
        repository: String,
        message: String,
    },
}

impl RegistryError {
    /// The repository is gone: nothing to do there, which is not a failure (one rule for every
    /// path: push, branch deletion, sweep).
    pub fn is_repository_gone(&self) -> bool {
        matches!(self, RegistryError::RepositoryNotFound { .. })
    }

    /// A condition a retry cannot fix (the repository gone, access refused): the repository is
    /// skipped and reported, not retried into the dead-letter queue.
    pub fn is_lasting(&self) -> bool {
        matches!(
            self,
            RegistryError::RepositoryNotFound { .. } | RegistryError::AccessDenied { .. }
        )
    }
}

/// One page of a listing. `next_token` is None on the last page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// What reading one manifest gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRead {
    Body {
        body: String,
        media_type: Option<String>,
    },
    /// ECR reported a failure for it, or answered neither the manifest nor a failure.
    Failed { reason: String },
}

/// A per-image problem ECR reported in `failures`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageFailure {
    pub image: String,
    pub code: String,
    pub message: String,
}

impl ImageFailure {
    pub fn new(image: &str, code: Option<&str>, message: Option<&str>) -> Self {
        ImageFailure {
            image: image.to_owned(),
            code: code.unwrap_or("Unknown").to_owned(),
            message: message.unwrap_or_default().to_owned(),
        }
    }
}

/// What a BatchDeleteImage by digest did with the ids it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub deleted: Vec<String>,
    /// `ImageNotFound`: someone (maybe a concurrent run) deleted it already.
    pub already_gone: Vec<String>,
    pub failures: Vec<ImageFailure>,
}

/// Reading a container registry (Amazon ECR in production). The savings report and `plan` are
/// built over this alone: they hold no way to delete or untag.
pub trait RegistryReader: Send + Sync {
    /// One DescribeImages page of every image of every status (ACTIVE, ARCHIVED, ACTIVATING).
    fn list_images_page(
        &self,
        repository: &str,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<Page<ImageRecord>, RegistryError>> + Send;

    /// One DescribeRepositories page of repository names.
    fn list_repositories_page(
        &self,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<Page<String>, RegistryError>> + Send;

    /// Reads up to [`BATCH_SIZE`] manifests; every digest asked for gets an answer.
    fn read_manifests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> impl Future<Output = Result<HashMap<String, ManifestRead>, RegistryError>> + Send;

    /// Current tags and status of up to [`BATCH_SIZE`] digests. When one of them no longer exists
    /// the whole call fails with [`RegistryError::ImageNotFound`], as ECR's DescribeImages does.
    /// A digest missing from the answer is treated as gone (never deleted).
    fn current_tags(
        &self,
        repository: &str,
        digests: &[String],
    ) -> impl Future<Output = Result<HashMap<String, ImageNow>, RegistryError>> + Send;

    /// The image a tag names, or None when the tag does not exist.
    fn describe_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<Option<ImageRecord>, RegistryError>> + Send;
}

/// Changing a container registry: deleting images and removing tags.
pub trait RegistryWriter: Send + Sync {
    /// Deletes up to [`BATCH_SIZE`] images by digest, removing every tag they have: callers
    /// re-check tags first. Never retried inside the adapter: a retry must follow a new re-check,
    /// so a failure that may be retried is [`RegistryError::Transient`].
    fn delete_digests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> impl Future<Output = Result<DeleteOutcome, RegistryError>> + Send;

    /// Removes one tag (BatchDeleteImage by tag): other tags on the digest survive, the image
    /// goes only when it was the last one. Returns false when the tag did not exist. Not retried
    /// inside the adapter, like [`RegistryWriter::delete_digests`].
    fn remove_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<bool, RegistryError>> + Send;

    /// Points `tag` at the existing manifest `digest` whose bytes are `manifest` (PutImage of the
    /// same bytes, read beforehand so this is one call: no layer is copied), moving it from the
    /// image it named. Not retried inside the adapter. A registry that cannot do it says so
    /// (cache promotion is then reported as failed, nothing changed).
    fn put_tag(
        &self,
        repository: &str,
        tag: &str,
        digest: &str,
        manifest: &str,
        media_type: Option<&str>,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send {
        let _ = (tag, digest, manifest, media_type);
        let repository = repository.to_owned();
        async move {
            Err(RegistryError::Api {
                operation: "PutImage",
                repository,
                message: "this registry cannot move tags".into(),
            })
        }
    }
}

/// A registry that can be read and changed: what the pruner and `sweep` take.
pub trait Registry: RegistryReader + RegistryWriter {}

impl<T: RegistryReader + RegistryWriter> Registry for T {}

/// No writer: a run given `None::<&ReadOnly>` for its writer can only report what it would do.
/// The type has no values, so no call through it can ever be made.
pub enum ReadOnly {}

impl RegistryWriter for ReadOnly {
    async fn delete_digests(&self, _: &str, _: &[String]) -> Result<DeleteOutcome, RegistryError> {
        match *self {}
    }

    async fn remove_tag(&self, _: &str, _: &str) -> Result<bool, RegistryError> {
        match *self {}
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BranchListError {
    #[error("{0:?} is not owner/name")]
    BadRepositoryName(String),
    #[error("listing branches of {repository}: GitHub answered {status}: {message}")]
    Refused {
        repository: String,
        status: u16,
        message: String,
    },
    #[error("listing branches of {repository}: {message}")]
    Unavailable { repository: String, message: String },
}

impl BranchListError {
    /// A condition a retry cannot fix: the GitHub repository does not exist (or the token may
    /// not see it), or the name is not one. The repository's tag expiry is skipped and reported.
    pub fn is_lasting(&self) -> bool {
        matches!(
            self,
            BranchListError::BadRepositoryName(_) | BranchListError::Refused { status: 404, .. }
        )
    }
}

/// Which branches exist in a source repository (GitHub in production).
pub trait BranchLister: Send + Sync {
    /// Every branch name of `owner/name`, all pages.
    fn branches(
        &self,
        full_name: &str,
    ) -> impl Future<Output = Result<Vec<String>, BranchListError>> + Send;

    /// The numbers of every open pull request of `owner/name`, all pages. Unknown by default: a
    /// lister that cannot tell says so, and the sweep then judges no pull request's cache gone.
    fn open_pull_requests(
        &self,
        full_name: &str,
    ) -> impl Future<Output = Result<Vec<u64>, BranchListError>> + Send {
        let repository = full_name.to_owned();
        async move {
            Err(BranchListError::Unavailable {
                repository,
                message: "this branch lister cannot list pull requests".into(),
            })
        }
    }

    /// Whether pull request `number` of `owner/name` is open now (re-opened after a close).
    /// Unknown by default: a lister that cannot tell says so, and the closed pull request's
    /// cache is then kept and the event retried.
    fn pull_request_open(
        &self,
        full_name: &str,
        number: u64,
    ) -> impl Future<Output = Result<bool, BranchListError>> + Send {
        let _ = number;
        let repository = full_name.to_owned();
        async move {
            Err(BranchListError::Unavailable {
                repository,
                message: "this branch lister cannot read pull requests".into(),
            })
        }
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("sending to the sweep queue failed: {0}")]
pub struct QueueError(pub String);

/// Where a sweep fans out to: one message per repository (SQS in production).
pub trait SweepQueue: Send + Sync {
    /// Sends one repository-sweep message per repository; all of them, or an error.
    fn enqueue(
        &self,
        repositories: &[String],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Sends the message that continues an unfinished sweep of `repository`.
    fn continue_sweep(
        &self,
        repository: &str,
        continuation: Continuation,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}
