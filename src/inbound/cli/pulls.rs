//! Manifest reads are pulls: ECR refreshes the image's `lastRecordedPullTime` on each
//! BatchGetImage unless the caller is a pull-time update exclusion, and lifecycle rules on
//! `sinceImagePulled` and the deployed `STALE_CACHE_DAYS` expiry read that time. The CLI runs as
//! the operator, so it says how many manifests it is about to read before each read, and counts
//! them; everything else passes through unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::app::ports::{
    DeleteOutcome, ImageNow, ManifestRead, Page, RegistryError, RegistryReader, RegistryWriter,
};
use crate::core::plan::ImageRecord;

/// What the operator is told the first time, before the first read.
pub const PULL_NOTE: &str = "each read is a pull: it refreshes the image's lastRecordedPullTime, which lifecycle rules and the pruner's STALE_CACHE_DAYS read, unless your IAM principal is a pull-time update exclusion (stack parameter PullTimeExcludedPrincipals)";

/// A registry that announces its manifest reads on stderr (unless quiet) and counts them.
pub struct PullNotice<R> {
    inner: R,
    announce: AtomicBool,
    explained: AtomicBool,
    reads: AtomicUsize,
}

impl<R> PullNotice<R> {
    pub fn new(inner: R, announce: bool) -> Self {
        PullNotice {
            inner,
            announce: AtomicBool::new(announce),
            explained: AtomicBool::new(false),
            reads: AtomicUsize::new(0),
        }
    }

    /// Manifests read so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }

    /// Stops announcing each read (the report says it once, up front, and counts them after:
    /// lines per read would tear its progress bar).
    pub fn count_only(&self) {
        self.announce.store(false, Ordering::Relaxed);
    }
}

impl<R: RegistryReader> RegistryReader for PullNotice<R> {
    async fn list_images_page(
        &self,
        repository: &str,
        next_token: Option<&str>,
    ) -> Result<Page<ImageRecord>, RegistryError> {
        self.inner.list_images_page(repository, next_token).await
    }

    async fn list_repositories_page(
        &self,
        next_token: Option<&str>,
    ) -> Result<Page<String>, RegistryError> {
        self.inner.list_repositories_page(next_token).await
    }

    async fn read_manifests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<HashMap<String, ManifestRead>, RegistryError> {
        if self.announce.load(Ordering::Relaxed) && !digests.is_empty() {
            if self.explained.swap(true, Ordering::Relaxed) {
                eprintln!("reading {} manifest(s) of {repository}", digests.len());
            } else {
                eprintln!(
                    "reading {} manifest(s) of {repository}; {PULL_NOTE}",
                    digests.len()
                );
            }
        }
        self.reads.fetch_add(digests.len(), Ordering::Relaxed);
        self.inner.read_manifests(repository, digests).await
    }

    async fn current_tags(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<HashMap<String, ImageNow>, RegistryError> {
        self.inner.current_tags(repository, digests).await
    }

    async fn describe_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<ImageRecord>, RegistryError> {
        self.inner.describe_tag(repository, tag).await
    }
}

impl<R: RegistryWriter> RegistryWriter for PullNotice<R> {
    async fn delete_digests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<DeleteOutcome, RegistryError> {
        self.inner.delete_digests(repository, digests).await
    }

    async fn remove_tag(&self, repository: &str, tag: &str) -> Result<bool, RegistryError> {
        self.inner.remove_tag(repository, tag).await
    }

    async fn put_tag(
        &self,
        repository: &str,
        tag: &str,
        digest: &str,
        manifest: &str,
        media_type: Option<&str>,
    ) -> Result<(), RegistryError> {
        self.inner
            .put_tag(repository, tag, digest, manifest, media_type)
            .await
    }
}
