//! Whole-repository reads over the [`RegistryReader`] port: listings that follow every page (and refuse
//! a page token that repeats, which would otherwise end a listing early and silently), manifest
//! reads in batches, and the tag re-check.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::core::manifest::{blobs, classify_manifest, Blob, ManifestKind};
use crate::core::plan::ImageRecord;

use super::deadline::Deadline;
use super::ports::{ImageNow, ManifestRead, Page, RegistryError, RegistryReader, BATCH_SIZE};

/// Follows `fetch` from the first page to the last. A token seen before means the listing would
/// loop (or, with the SDK paginator, stop early): that is an error, never a complete listing.
async fn all_pages<T, F, Fut>(
    operation: &'static str,
    repository: &str,
    mut fetch: F,
) -> Result<Vec<T>, RegistryError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, RegistryError>>,
{
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let mut token: Option<String> = None;
    loop {
        let page = fetch(token.take()).await?;
        items.extend(page.items);
        match page.next_token {
            None => return Ok(items),
            Some(next) if !seen.insert(next.clone()) => {
                return Err(RegistryError::Api {
                    operation,
                    repository: repository.to_owned(),
                    message: format!("nextToken {next:?} repeated: the listing is not complete"),
                })
            }
            Some(next) => token = Some(next),
        }
    }
}

/// Like [`list_images`], asking `deadline` before each page; None when time ran out.
pub async fn list_images<R: RegistryReader>(
    registry: &R,
    repository: &str,
    deadline: Deadline<'_>,
) -> Result<Option<Vec<ImageRecord>>, RegistryError> {
    let out_of_time = AtomicBool::new(false);
    let out_of_time = &out_of_time;
    let images = all_pages("DescribeImages", repository, |token| async move {
        if !deadline.time_left() {
            // An empty last page ends the listing; the flag says it is not complete.
            out_of_time.store(true, Ordering::Relaxed);
            return Ok(Page::default());
        }
        registry
            .list_images_page(repository, token.as_deref())
            .await
    })
    .await?;
    Ok((!out_of_time.load(Ordering::Relaxed)).then_some(images))
}

/// Names of every repository in the registry, sorted.
pub async fn list_repositories<R: RegistryReader>(
    registry: &R,
) -> Result<Vec<String>, RegistryError> {
    let mut names = all_pages("DescribeRepositories", "*", |token| async move {
        registry.list_repositories_page(token.as_deref()).await
    })
    .await?;
    names.sort();
    Ok(names)
}

/// Manifests read and classified, with each single manifest's blobs (for the reclaim estimate).
#[derive(Debug, Clone, Default)]
pub struct ManifestsRead {
    pub kinds: HashMap<String, ManifestKind>,
    pub blobs: HashMap<String, Vec<Blob>>,
}

/// Like [`read_manifests`], asking `deadline` before each batch; None when time ran out.
pub async fn read_manifests<R: RegistryReader>(
    registry: &R,
    repository: &str,
    digests: &[String],
    deadline: Deadline<'_>,
) -> Result<Option<ManifestsRead>, RegistryError> {
    let mut read = ManifestsRead::default();
    for chunk in digests.chunks(BATCH_SIZE) {
        if !deadline.time_left() {
            return Ok(None);
        }
        let mut answers = registry.read_manifests(repository, chunk).await?;
        for digest in chunk {
            let kind = match answers.remove(digest) {
                Some(ManifestRead::Body { body, media_type }) => {
                    read.blobs.insert(digest.clone(), blobs(&body));
                    classify_manifest(&body, media_type.as_deref())
                }
                Some(ManifestRead::Failed { reason }) => ManifestKind::Unreadable { reason },
                None => ManifestKind::Unreadable {
                    reason: "the registry answered neither the manifest nor a failure".into(),
                },
            };
            read.kinds.insert(digest.clone(), kind);
        }
    }
    Ok(Some(read))
}

/// Current tags and status of up to [`BATCH_SIZE`] digests; a digest missing from the answer is
/// gone.
/// DescribeImages by id fails whole when any id is gone (a concurrent run deleted it): then a
/// full listing answers instead, slower and rare, still exact.
pub async fn current_tags<R: RegistryReader>(
    registry: &R,
    repository: &str,
    digests: &[String],
) -> Result<HashMap<String, ImageNow>, RegistryError> {
    debug_assert!(digests.len() <= BATCH_SIZE);
    match registry.current_tags(repository, digests).await {
        Err(RegistryError::ImageNotFound { .. }) => {
            let wanted: HashSet<&String> = digests.iter().collect();
            // The fallback of a re-check right before a delete: a few pages, not cut short.
            Ok(list_images(registry, repository, Deadline::NEVER)
                .await?
                .unwrap_or_default()
                .into_iter()
                .filter(|image| wanted.contains(&image.digest))
                .map(|image| {
                    let now = ImageNow {
                        tags: image.tags,
                        status: image.status,
                    };
                    (image.digest, now)
                })
                .collect())
        }
        other => other,
    }
}
