//! The ECR adapter: the only place that talks to ECR. Each method is one kind of request,
//! batched to ECR's limits, and turns SDK types into the core's plain data.

use std::collections::HashMap;

use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::types::{ImageFailureCode, ImageIdentifier, TagStatus};
use aws_sdk_ecr::Client;
use serde::Serialize;
use thiserror::Error;

use crate::core::manifest::{blobs, classify_manifest, Blob, ManifestKind, ACCEPTED_MEDIA_TYPES};
use crate::core::plan::ImageRecord;

/// DescribeImages page size maximum.
pub const DESCRIBE_PAGE_SIZE: i32 = 1000;
/// BatchGetImage / BatchDeleteImage / DescribeImages-by-id maximum ids per call.
pub const BATCH_SIZE: usize = 100;

#[derive(Debug, Error)]
pub enum EcrError {
    #[error("repository {repository} does not exist")]
    RepositoryNotFound { repository: String },
    #[error("{operation} on {repository} failed: {message}")]
    Api {
        operation: &'static str,
        repository: String,
        message: String,
    },
}

/// Operation errors that can say "the repository does not exist".
trait RepositoryMissing {
    fn repository_missing(&self) -> bool;
}

macro_rules! repository_missing {
    ($($error:ty),*) => {$(
        impl RepositoryMissing for $error {
            fn repository_missing(&self) -> bool {
                self.is_repository_not_found_exception()
            }
        }
    )*};
}
repository_missing!(
    DescribeImagesError,
    aws_sdk_ecr::operation::batch_get_image::BatchGetImageError,
    aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageError
);

fn api_error<E, R>(operation: &'static str, repository: &str, err: SdkError<E, R>) -> EcrError
where
    E: RepositoryMissing + ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if err
        .as_service_error()
        .is_some_and(|e| e.repository_missing())
    {
        return EcrError::RepositoryNotFound {
            repository: repository.to_owned(),
        };
    }
    EcrError::Api {
        operation,
        repository: repository.to_owned(),
        message: DisplayErrorContext(&err).to_string(),
    }
}

fn is_image_not_found<R>(err: &SdkError<DescribeImagesError, R>) -> bool {
    matches!(
        err.as_service_error(),
        Some(DescribeImagesError::ImageNotFoundException(_))
    )
}

/// A per-image problem ECR reported in `failures`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageFailure {
    pub image: String,
    pub code: String,
    pub message: String,
}

/// What BatchDeleteImage did with the ids it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub deleted: Vec<String>,
    /// `ImageNotFound`: someone (maybe a concurrent run) deleted it already.
    pub already_gone: Vec<String>,
    pub failures: Vec<ImageFailure>,
}

#[derive(Clone, Debug)]
pub struct Ecr {
    client: Client,
}

fn record(digest: &str, detail: &aws_sdk_ecr::types::ImageDetail) -> ImageRecord {
    ImageRecord {
        digest: digest.to_owned(),
        tags: detail.image_tags().to_vec(),
        pushed_at: detail.image_pushed_at().map(|t| t.secs()),
        size_bytes: detail.image_size_in_bytes(),
        manifest_media_type: detail.image_manifest_media_type().map(str::to_owned),
        artifact_media_type: detail.artifact_media_type().map(str::to_owned),
    }
}

fn digest_id(digest: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_digest(digest).build()
}

impl Ecr {
    pub fn new(client: Client) -> Self {
        Ecr { client }
    }

    /// Every image of the repository, all pages. Tag status is decided by the caller from
    /// `imageTags`, never from a server-side filter.
    pub async fn list_images(&self, repository: &str) -> Result<Vec<ImageRecord>, EcrError> {
        let mut pages = self
            .client
            .describe_images()
            .repository_name(repository)
            .filter(
                aws_sdk_ecr::types::DescribeImagesFilter::builder()
                    .tag_status(TagStatus::Any)
                    .build(),
            )
            .max_results(DESCRIBE_PAGE_SIZE)
            .into_paginator()
            .send();
        let mut images = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api_error("DescribeImages", repository, e))?;
            for detail in page.image_details() {
                let Some(digest) = detail.image_digest() else {
                    return Err(EcrError::Api {
                        operation: "DescribeImages",
                        repository: repository.to_owned(),
                        message: "an image came back without a digest".into(),
                    });
                };
                images.push(record(digest, detail));
            }
        }
        Ok(images)
    }

    /// Names of every repository in the registry, all pages.
    pub async fn list_repositories(&self) -> Result<Vec<String>, EcrError> {
        let mut pages = self
            .client
            .describe_repositories()
            .max_results(DESCRIBE_PAGE_SIZE)
            .into_paginator()
            .send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| EcrError::Api {
                operation: "DescribeRepositories",
                repository: "*".into(),
                message: DisplayErrorContext(&e).to_string(),
            })?;
            names.extend(
                page.repositories()
                    .iter()
                    .filter_map(|r| r.repository_name().map(str::to_owned)),
            );
        }
        names.sort();
        Ok(names)
    }

    /// Reads and classifies manifests. A digest ECR could not return is `Unreadable`.
    pub async fn read_manifests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<HashMap<String, ManifestKind>, EcrError> {
        let (kinds, _) = self.read_manifests_with_blobs(repository, digests).await?;
        Ok(kinds)
    }

    /// Like [`Ecr::read_manifests`], also returning each manifest's config and layer blobs.
    pub async fn read_manifests_with_blobs(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<(HashMap<String, ManifestKind>, HashMap<String, Vec<Blob>>), EcrError> {
        let mut kinds = HashMap::with_capacity(digests.len());
        let mut all_blobs = HashMap::with_capacity(digests.len());
        for chunk in digests.chunks(BATCH_SIZE) {
            let mut request = self
                .client
                .batch_get_image()
                .repository_name(repository)
                .set_image_ids(Some(chunk.iter().map(|d| digest_id(d)).collect()));
            for media_type in ACCEPTED_MEDIA_TYPES {
                request = request.accepted_media_types(media_type);
            }
            let output = request
                .send()
                .await
                .map_err(|e| api_error("BatchGetImage", repository, e))?;
            for image in output.images() {
                let digest = image.image_id().and_then(|id| id.image_digest());
                if let (Some(digest), Some(body)) = (digest, image.image_manifest()) {
                    all_blobs.insert(digest.to_owned(), blobs(body));
                    kinds.insert(
                        digest.to_owned(),
                        classify_manifest(body, image.image_manifest_media_type()),
                    );
                }
            }
            for failure in output.failures() {
                if let Some(digest) = failure.image_id().and_then(|id| id.image_digest()) {
                    kinds.insert(
                        digest.to_owned(),
                        ManifestKind::Unreadable {
                            reason: format!(
                                "BatchGetImage failure {}: {}",
                                failure
                                    .failure_code()
                                    .map(|c| c.as_str())
                                    .unwrap_or("unknown"),
                                failure.failure_reason().unwrap_or("")
                            ),
                        },
                    );
                }
            }
            for digest in chunk {
                kinds
                    .entry(digest.clone())
                    .or_insert_with(|| ManifestKind::Unreadable {
                        reason: "BatchGetImage returned neither the manifest nor a failure".into(),
                    });
            }
        }
        Ok((kinds, all_blobs))
    }

    /// Current tags of the given digests; a digest missing from the answer no longer exists.
    pub async fn current_tags(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<HashMap<String, Vec<String>>, EcrError> {
        let mut tags = HashMap::with_capacity(digests.len());
        for chunk in digests.chunks(BATCH_SIZE) {
            let result = self
                .client
                .describe_images()
                .repository_name(repository)
                .set_image_ids(Some(chunk.iter().map(|d| digest_id(d)).collect()))
                .send()
                .await;
            match result {
                Ok(output) => {
                    for detail in output.image_details() {
                        if let Some(digest) = detail.image_digest() {
                            tags.insert(digest.to_owned(), detail.image_tags().to_vec());
                        }
                    }
                }
                // DescribeImages by id fails the whole call when any id is gone (a concurrent
                // run deleted it). Fall back to a full listing: slower, rare, still exact.
                Err(err) if is_image_not_found(&err) => {
                    let all = self.list_images(repository).await?;
                    let wanted: std::collections::HashSet<&String> = digests.iter().collect();
                    return Ok(all
                        .into_iter()
                        .filter(|image| wanted.contains(&image.digest))
                        .map(|image| (image.digest, image.tags))
                        .collect());
                }
                Err(err) => return Err(api_error("DescribeImages", repository, err)),
            }
        }
        Ok(tags)
    }

    /// Deletes images by digest (removing every tag they have: callers re-check tags first).
    pub async fn delete_digests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<DeleteOutcome, EcrError> {
        let mut outcome = DeleteOutcome::default();
        for chunk in digests.chunks(BATCH_SIZE) {
            let output = self
                .client
                .batch_delete_image()
                .repository_name(repository)
                .set_image_ids(Some(chunk.iter().map(|d| digest_id(d)).collect()))
                .send()
                .await
                .map_err(|e| api_error("BatchDeleteImage", repository, e))?;
            let mut failed = std::collections::HashSet::new();
            for failure in output.failures() {
                let digest = failure
                    .image_id()
                    .and_then(|id| id.image_digest())
                    .unwrap_or_default()
                    .to_owned();
                failed.insert(digest.clone());
                match failure.failure_code() {
                    Some(ImageFailureCode::ImageNotFound) => outcome.already_gone.push(digest),
                    code => outcome.failures.push(ImageFailure {
                        image: digest,
                        code: code
                            .map(|c| c.as_str().to_owned())
                            .unwrap_or_else(|| "Unknown".into()),
                        message: failure.failure_reason().unwrap_or_default().to_owned(),
                    }),
                }
            }
            // Success is "asked for and not reported as failed": ECR's imageIds list is not
            // reliable for untagged digests in every implementation.
            outcome
                .deleted
                .extend(chunk.iter().filter(|d| !failed.contains(*d)).cloned());
        }
        Ok(outcome)
    }

    /// Removes one tag (BatchDeleteImage by tag). Other tags on the same digest survive; the
    /// image goes only when this was its last tag. Returns false when the tag did not exist.
    pub async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, EcrError> {
        let output = self
            .client
            .batch_delete_image()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await
            .map_err(|e| api_error("BatchDeleteImage", repository, e))?;
        match output.failures().first() {
            None => Ok(true),
            Some(f) if f.failure_code() == Some(&ImageFailureCode::ImageNotFound) => Ok(false),
            Some(f) => Err(EcrError::Api {
                operation: "BatchDeleteImage",
                repository: repository.to_owned(),
                message: format!(
                    "{}: {}",
                    f.failure_code().map(|c| c.as_str()).unwrap_or("Unknown"),
                    f.failure_reason().unwrap_or_default()
                ),
            }),
        }
    }

    /// The tagged image's digest and type, or None when the tag does not exist.
    pub async fn describe_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<ImageRecord>, EcrError> {
        let result = self
            .client
            .describe_images()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        match result {
            Ok(output) => Ok(output
                .image_details()
                .first()
                .and_then(|d| Some(record(d.image_digest()?, d)))),
            Err(err) if is_image_not_found(&err) => Ok(None),
            Err(err) => Err(api_error("DescribeImages", repository, err)),
        }
    }
}
