//! The ECR adapter: the only code that talks to ECR. Each method is one ECR request (the SDK
//! retries throttles and 5xx, except on deletes), turning SDK types into the core's plain data;
//! [`errors`] turns ECR's errors and failure codes into the port's.

use std::collections::{HashMap, HashSet};

use aws_sdk_ecr::types::{
    DescribeImagesFilter, ImageDetail, ImageFailureCode, ImageIdentifier, ImageStatusFilter,
    TagStatus,
};
use aws_sdk_ecr::Client;

use crate::app::ports::{
    DeleteOutcome, ImageFailure, ImageNow, ManifestRead, Page, RegistryError, RegistryReader,
    RegistryWriter, BATCH_SIZE,
};
use crate::core::manifest::ACCEPTED_MEDIA_TYPES;
use crate::core::plan::{ImageRecord, ImageStatus};

mod errors;
use errors::{api_error, code_of, is_image_not_found, no_retries};

/// DescribeImages / DescribeRepositories page size maximum.
pub const DESCRIBE_PAGE_SIZE: i32 = 1000;

/// [`Registry`] on Amazon ECR.
#[derive(Clone, Debug)]
pub struct EcrRegistry {
    client: Client,
}

fn record(digest: &str, detail: &ImageDetail) -> ImageRecord {
    ImageRecord {
        digest: digest.to_owned(),
        tags: detail.image_tags().to_vec(),
        status: ImageStatus::from_ecr(detail.image_status().map(|s| s.as_str())),
        pushed_at: detail.image_pushed_at().map(|t| t.secs()),
        last_pulled_at: detail.last_recorded_pull_time().map(|t| t.secs()),
        size_bytes: detail.image_size_in_bytes(),
        manifest_media_type: detail.image_manifest_media_type().map(str::to_owned),
        artifact_media_type: detail.artifact_media_type().map(str::to_owned),
        subject: detail.subject_manifest_digest().map(str::to_owned),
    }
}

fn digest_ids(digests: &[String]) -> Vec<ImageIdentifier> {
    digests
        .iter()
        .map(|d| ImageIdentifier::builder().image_digest(d).build())
        .collect()
}

fn too_many(operation: &'static str, repository: &str, n: usize) -> Result<(), RegistryError> {
    if n > BATCH_SIZE {
        return Err(RegistryError::Api {
            operation,
            repository: repository.to_owned(),
            message: format!("{n} ids in one call; ECR takes at most {BATCH_SIZE}"),
        });
    }
    Ok(())
}

impl EcrRegistry {
    pub fn new(client: Client) -> Self {
        EcrRegistry { client }
    }
}

impl RegistryReader for EcrRegistry {
    async fn list_images_page(
        &self,
        repository: &str,
        next_token: Option<&str>,
    ) -> Result<Page<ImageRecord>, RegistryError> {
        // Tag status is decided from `imageTags`, never from a server-side filter; without an
        // `imageStatus` filter ECR lists ACTIVE images only, hiding archived indexes (rule 8).
        let filter = DescribeImagesFilter::builder()
            .tag_status(TagStatus::Any)
            .image_status(ImageStatusFilter::Any)
            .build();
        let page = self
            .client
            .describe_images()
            .repository_name(repository)
            .filter(filter)
            .max_results(DESCRIBE_PAGE_SIZE)
            .set_next_token(next_token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| api_error("DescribeImages", repository, e))?;
        let mut items = Vec::with_capacity(page.image_details().len());
        for detail in page.image_details() {
            let Some(digest) = detail.image_digest() else {
                return Err(RegistryError::Api {
                    operation: "DescribeImages",
                    repository: repository.to_owned(),
                    message: "an image came back without a digest".into(),
                });
            };
            items.push(record(digest, detail));
        }
        Ok(Page {
            items,
            next_token: page.next_token().map(str::to_owned),
        })
    }

    async fn list_repositories_page(
        &self,
        next_token: Option<&str>,
    ) -> Result<Page<String>, RegistryError> {
        let page = self
            .client
            .describe_repositories()
            .max_results(DESCRIBE_PAGE_SIZE)
            .set_next_token(next_token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| api_error("DescribeRepositories", "*", e))?;
        Ok(Page {
            items: page
                .repositories()
                .iter()
                .filter_map(|r| r.repository_name().map(str::to_owned))
                .collect(),
            next_token: page.next_token().map(str::to_owned),
        })
    }

    async fn read_manifests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<HashMap<String, ManifestRead>, RegistryError> {
        too_many("BatchGetImage", repository, digests.len())?;
        let mut request = self
            .client
            .batch_get_image()
            .repository_name(repository)
            .set_image_ids(Some(digest_ids(digests)));
        // Every manifest type, so ECR never converts a manifest.
        for media_type in ACCEPTED_MEDIA_TYPES {
            request = request.accepted_media_types(media_type);
        }
        let output = request
            .send()
            .await
            .map_err(|e| api_error("BatchGetImage", repository, e))?;
        let mut answers = HashMap::with_capacity(digests.len());
        for image in output.images() {
            let digest = image.image_id().and_then(|id| id.image_digest());
            if let (Some(digest), Some(body)) = (digest, image.image_manifest()) {
                answers.insert(
                    digest.to_owned(),
                    ManifestRead::Body {
                        body: body.to_owned(),
                        media_type: image.image_manifest_media_type().map(str::to_owned),
                    },
                );
            }
        }
        for failure in output.failures() {
            if let Some(digest) = failure.image_id().and_then(|id| id.image_digest()) {
                let failure = ImageFailure::new(
                    digest,
                    code_of(failure.failure_code()),
                    failure.failure_reason(),
                );
                answers.insert(
                    digest.to_owned(),
                    ManifestRead::Failed {
                        reason: format!(
                            "BatchGetImage failure {}: {}",
                            failure.code, failure.message
                        ),
                    },
                );
            }
        }
        Ok(answers)
    }

    async fn current_tags(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<HashMap<String, ImageNow>, RegistryError> {
        too_many("DescribeImages", repository, digests.len())?;
        let output = self
            .client
            .describe_images()
            .repository_name(repository)
            .set_image_ids(Some(digest_ids(digests)))
            .send()
            .await
            .map_err(|err| {
                if is_image_not_found(&err) {
                    RegistryError::ImageNotFound {
                        operation: "DescribeImages",
                        repository: repository.to_owned(),
                    }
                } else {
                    api_error("DescribeImages", repository, err)
                }
            })?;
        Ok(output
            .image_details()
            .iter()
            .filter_map(|d| {
                let now = ImageNow {
                    tags: d.image_tags().to_vec(),
                    status: ImageStatus::from_ecr(d.image_status().map(|s| s.as_str())),
                };
                Some((d.image_digest()?.to_owned(), now))
            })
            .collect())
    }

    async fn describe_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<ImageRecord>, RegistryError> {
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

impl RegistryWriter for EcrRegistry {
    async fn delete_digests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<DeleteOutcome, RegistryError> {
        too_many("BatchDeleteImage", repository, digests.len())?;
        let output = self
            .client
            .batch_delete_image()
            .repository_name(repository)
            .set_image_ids(Some(digest_ids(digests)))
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| api_error("BatchDeleteImage", repository, e))?;
        let mut outcome = DeleteOutcome::default();
        let mut failed = HashSet::new();
        // A failure that names no digest (ECR echoes the id it was given; a tag-only or empty id
        // is possible) could be about any digest of the batch.
        let mut anonymous = None;
        for failure in output.failures() {
            let code = code_of(failure.failure_code());
            let Some(digest) = failure.image_id().and_then(|id| id.image_digest()) else {
                anonymous.get_or_insert(ImageFailure::new("", code, failure.failure_reason()));
                continue;
            };
            failed.insert(digest.to_owned());
            match failure.failure_code() {
                Some(ImageFailureCode::ImageNotFound) => {
                    outcome.already_gone.push(digest.to_owned())
                }
                _ => {
                    outcome
                        .failures
                        .push(ImageFailure::new(digest, code, failure.failure_reason()))
                }
            }
        }
        let confirmed: HashSet<&str> = output
            .image_ids()
            .iter()
            .filter_map(|id| id.image_digest())
            .collect();
        for digest in digests.iter().filter(|d| !failed.contains(*d)) {
            match &anonymous {
                // Success is "asked for and not reported as failed": ECR's imageIds list is not
                // reliable for untagged digests in every implementation.
                None => outcome.deleted.push(digest.clone()),
                // With an unattributed failure, only what ECR confirmed counts as deleted.
                Some(_) if confirmed.contains(digest.as_str()) => {
                    outcome.deleted.push(digest.clone())
                }
                Some(failure) => outcome.failures.push(ImageFailure {
                    image: digest.clone(),
                    code: failure.code.clone(),
                    message: format!(
                        "a failure without a digest may be about this one: {}",
                        failure.message
                    ),
                }),
            }
        }
        Ok(outcome)
    }

    async fn put_tag(
        &self,
        repository: &str,
        tag: &str,
        digest: &str,
        manifest: &str,
        media_type: Option<&str>,
    ) -> Result<(), RegistryError> {
        self.client
            .put_image()
            .repository_name(repository)
            .image_manifest(manifest)
            .set_image_manifest_media_type(media_type.map(str::to_owned))
            .image_digest(digest)
            .image_tag(tag)
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| api_error("PutImage", repository, e))?;
        Ok(())
    }

    async fn remove_tag(&self, repository: &str, tag: &str) -> Result<bool, RegistryError> {
        let output = self
            .client
            .batch_delete_image()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| api_error("BatchDeleteImage", repository, e))?;
        match output.failures().first() {
            None => Ok(true),
            Some(f) if f.failure_code() == Some(&ImageFailureCode::ImageNotFound) => Ok(false),
            Some(f) => {
                let failure = ImageFailure::new(tag, code_of(f.failure_code()), f.failure_reason());
                Err(RegistryError::Api {
                    operation: "BatchDeleteImage",
                    repository: repository.to_owned(),
                    message: format!("{}: {}", failure.code, failure.message),
                })
            }
        }
    }
}
