//! What moto cannot show: pagination, ECR failure codes, throttling, 5xx, and exact call counts.
//! ECR is replaced by aws-smithy-mocks rules; everything above the SDK is the real code.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use aws_smithy_async::test_util::instant_time_and_sleep;

use aws_sdk_ecr::error::ErrorMetadata;
use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
use aws_sdk_ecr::primitives::DateTime;
use aws_sdk_ecr::types::{
    Image, ImageDetail, ImageFailure, ImageFailureCode, ImageIdentifier, ImageStatus,
    ImageStatusFilter,
};
use aws_sdk_ecr::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use ecr_cache_pruner::adapters::ecr::EcrRegistry;
use ecr_cache_pruner::app::prune::{prune_repository, PruneError, PruneSettings, Run};
use serde_json::json;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CACHE: &str = "application/vnd.buildkit.cacheconfig.v0";
const REPO: &str = "my-app";

fn d(n: usize) -> String {
    format!("sha256:{n:064x}")
}

#[derive(Clone)]
struct Img {
    n: usize,
    tags: Vec<String>,
    manifest_type: &'static str,
    artifact: Option<&'static str>,
    /// ECR's `imageStatus`; None as before the archive storage class.
    status: Option<&'static str>,
}

fn tagged_cache(n: usize) -> Img {
    Img {
        n,
        tags: vec![format!("cache-b{n}")],
        manifest_type: OCI_MANIFEST,
        artifact: Some(CACHE),
        status: None,
    }
}
fn untagged_cache(n: usize) -> Img {
    Img {
        n,
        tags: vec![],
        manifest_type: OCI_MANIFEST,
        artifact: Some(CACHE),
        status: None,
    }
}
fn untagged_unknown(n: usize) -> Img {
    Img {
        n,
        tags: vec![],
        manifest_type: OCI_MANIFEST,
        artifact: None,
        status: None,
    }
}
fn tagged_index(n: usize) -> Img {
    Img {
        n,
        tags: vec![format!("v{n}")],
        manifest_type: OCI_INDEX,
        artifact: None,
        status: None,
    }
}

fn detail(img: &Img) -> ImageDetail {
    ImageDetail::builder()
        .image_digest(d(img.n))
        .set_image_tags(if img.tags.is_empty() {
            None
        } else {
            Some(img.tags.clone())
        })
        .image_manifest_media_type(img.manifest_type)
        .set_artifact_media_type(img.artifact.map(str::to_owned))
        .set_image_status(img.status.map(ImageStatus::from))
        .image_size_in_bytes(1000 + img.n as i64)
        .image_pushed_at(DateTime::from_secs(1_790_000_000 + img.n as i64))
        .build()
}

/// DescribeImages listing: pages of 1000 chained by next tokens `"1"`, `"2"`, ...
fn listing(images: Vec<Img>) -> Rule {
    mock!(Client::describe_images)
        .match_requests(|r| r.image_ids().is_empty())
        .then_compute_output(move |req| {
            let page: usize = req.next_token().map(|t| t.parse().unwrap()).unwrap_or(0);
            assert_eq!(req.max_results(), Some(1000));
            let chunk: Vec<ImageDetail> = images
                .iter()
                .skip(page * 1000)
                .take(1000)
                .map(detail)
                .collect();
            let more = images.len() > (page + 1) * 1000;
            DescribeImagesOutput::builder()
                .set_image_details(Some(chunk))
                .set_next_token(more.then(|| (page + 1).to_string()))
                .build()
        })
}

/// DescribeImages by id (the pre-delete re-check): answers with the given images' current state.
fn recheck(images: Vec<Img>) -> Rule {
    mock!(Client::describe_images)
        .match_requests(|r| !r.image_ids().is_empty())
        .then_compute_output(move |req| {
            assert!(req.image_ids().len() <= 100);
            let wanted: HashSet<&str> = req
                .image_ids()
                .iter()
                .filter_map(|i| i.image_digest())
                .collect();
            DescribeImagesOutput::builder()
                .set_image_details(Some(
                    images
                        .iter()
                        .filter(|i| wanted.contains(d(i.n).as_str()))
                        .map(detail)
                        .collect(),
                ))
                .build()
        })
}

/// BatchGetImage: indexes (n in `index_children`) reference the listed children; every other
/// digest is a cache manifest.
fn manifests(index_children: Vec<(usize, Vec<usize>)>) -> Rule {
    mock!(Client::batch_get_image).then_compute_output(move |req| {
        assert!(req.image_ids().len() <= 100);
        let images = req
            .image_ids()
            .iter()
            .map(|id| {
                let digest = id.image_digest().unwrap();
                let body = match index_children.iter().find(|(n, _)| d(*n) == digest) {
                    Some((_, children)) => json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                        "manifests": children.iter().map(|c| json!({"mediaType": OCI_MANIFEST, "digest": d(*c), "size": 1})).collect::<Vec<_>>()}),
                    None => json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": CACHE, "digest": d(999_999), "size": 1}, "layers": []}),
                };
                Image::builder()
                    .image_id(ImageIdentifier::builder().image_digest(digest).build())
                    .image_manifest(body.to_string())
                    .image_manifest_media_type(body["mediaType"].as_str().unwrap())
                    .build()
            })
            .collect();
        BatchGetImageOutput::builder().set_images(Some(images)).build()
    })
}

fn failure(digest: &str, code: ImageFailureCode) -> ImageFailure {
    ImageFailure::builder()
        .image_id(ImageIdentifier::builder().image_digest(digest).build())
        .failure_code(code)
        .failure_reason("from the mock")
        .build()
}

/// BatchDeleteImage: deletes everything except the digests given failure codes.
fn deleter(failures: Vec<(usize, ImageFailureCode)>) -> Rule {
    mock!(Client::batch_delete_image).then_compute_output(move |req| {
        assert!(
            req.image_ids().len() <= 100,
            "batch of {}",
            req.image_ids().len()
        );
        let mut out = BatchDeleteImageOutput::builder();
        for id in req.image_ids() {
            let digest = id.image_digest().unwrap();
            match failures.iter().find(|(n, _)| d(*n) == digest) {
                Some((_, code)) => out = out.failures(failure(digest, code.clone())),
                None => out = out.image_ids(id.clone()),
            }
        }
        out.build()
    })
}

fn client(rules: &[&Rule]) -> EcrRegistry {
    let retry = ecr_cache_pruner::adapters::aws::retry_config()
        .with_initial_backoff(Duration::from_millis(1));
    // Adaptive retry's backoff and client-side rate limiter sleep for real unless the client is
    // given a test sleep whose clock advances with every sleep (instantly).
    let (time, sleep) = instant_time_and_sleep(SystemTime::now());
    EcrRegistry::new(mock_client!(aws_sdk_ecr, RuleMode::MatchAny, rules, |c| c
        .retry_config(retry.clone())
        .time_source(time.clone())
        .sleep_impl(sleep.clone())))
}

fn settings() -> PruneSettings {
    PruneSettings {
        dry_run: false,
        max_deletions: 1000,
        estimate_reclaimed: false,
        plan_only: false,
    }
}

/// The four ECR operations of a prune, each a mock rule: the listing shows `listed`, the re-check
/// answers from `now`, indexes in `index_children` reference those children (every other manifest
/// read is cache), and BatchDeleteImage answers `failures`.
struct EcrMocks {
    list: Rule,
    check: Rule,
    get: Rule,
    delete: Rule,
}

impl EcrMocks {
    fn new(
        listed: Vec<Img>,
        now: Vec<Img>,
        index_children: Vec<(usize, Vec<usize>)>,
        failures: Vec<(usize, ImageFailureCode)>,
    ) -> Self {
        EcrMocks {
            list: listing(listed),
            check: recheck(now),
            get: manifests(index_children),
            delete: deleter(failures),
        }
    }

    /// A repository holding `images`, unchanged by delete time.
    fn unchanged(images: Vec<Img>) -> Self {
        EcrMocks::new(images.clone(), images, vec![], vec![])
    }

    async fn prune(&self, settings: PruneSettings) -> ecr_cache_pruner::app::prune::RepositoryRun {
        let ecr = client(&[&self.list, &self.check, &self.get, &self.delete]);
        prune_repository(&ecr, REPO, &HashSet::new(), settings, Run::UNBOUNDED)
            .await
            .unwrap()
    }

    fn calls(&self) -> usize {
        self.list.num_calls()
            + self.check.num_calls()
            + self.get.num_calls()
            + self.delete.num_calls()
    }
}

/// Prunes a repository holding `images` (unchanged by delete time), with `failures` answered by
/// BatchDeleteImage.
async fn prune_simple(
    images: Vec<Img>,
    failures: Vec<(usize, ImageFailureCode)>,
    settings: PruneSettings,
) -> ecr_cache_pruner::app::prune::RepositoryRun {
    EcrMocks::new(images.clone(), images, vec![], failures)
        .prune(settings)
        .await
}

fn sorted_digests<'a>(it: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<String> = it.cloned().collect();
    v.sort();
    v
}

#[tokio::test]
async fn snapshot_follows_pagination_beyond_1000_images() {
    // 2,500 images; untagged cache manifests spread over all three pages.
    let images: Vec<Img> = (0..2500)
        .map(|n| {
            if n % 20 == 0 {
                untagged_cache(n)
            } else {
                tagged_cache(n)
            }
        })
        .collect();
    let expected: Vec<String> = sorted_digests(
        images
            .iter()
            .filter(|i| i.tags.is_empty())
            .map(|i| d(i.n))
            .collect::<Vec<_>>()
            .iter(),
    );
    let mocks = EcrMocks::unchanged(images);
    let report = mocks.prune(settings()).await;
    assert_eq!(report.images_scanned, 2500);
    assert_eq!(
        sorted_digests(report.deleted.iter().map(|p| &p.digest)),
        expected
    );
    assert_eq!(mocks.list.num_calls(), 3);
    assert_eq!(
        mocks.check.num_calls(),
        2,
        "125 candidates re-checked in batches of 100"
    );
    assert_eq!(
        mocks.delete.num_calls(),
        2,
        "125 deletions in batches of 100"
    );
    assert_eq!(
        mocks.get.num_calls(),
        0,
        "artifactMediaType made manifest reads unnecessary"
    );
}

#[tokio::test]
async fn api_calls_for_a_typical_push_meet_the_budget() {
    // U images, I indexes to read, C candidates without artifactMediaType, D deletions.
    let mut images: Vec<Img> = (0..1200).map(tagged_cache).collect();
    images.extend((1200..1203).map(tagged_index)); // I = 3
    images.extend((1203..1208).map(untagged_unknown)); // C = 5 (classified by reading)
    images.extend((1208..1210).map(untagged_cache)); // 2 more by artifactMediaType
    let (u, i, c, dels) = (images.len(), 3usize, 5usize, 7usize);
    let index_children = (1200..1203).map(|n| (n, vec![n - 1200])).collect();
    let mocks = EcrMocks::new(images.clone(), images, index_children, vec![]);
    let report = mocks.prune(settings()).await;
    assert_eq!(report.deleted.len(), dels);
    let calls = mocks.calls();
    let budget = u.div_ceil(1000) + i.div_ceil(100) + c.div_ceil(100) + 2 * dels.div_ceil(100);
    // Indexes and unknown candidates share BatchGetImage batches, so we beat the budget by one.
    assert_eq!(
        calls,
        budget - 1,
        "list {} get {} recheck {} delete {}",
        mocks.list.num_calls(),
        mocks.get.num_calls(),
        mocks.check.num_calls(),
        mocks.delete.num_calls()
    );
}

#[tokio::test]
async fn referenced_by_manifest_list_failure_is_reported_and_the_rest_is_done() {
    let images: Vec<Img> = (0..4).map(untagged_cache).collect();
    let failures = vec![(2, ImageFailureCode::ImageReferencedByManifestList)];
    let report = prune_simple(images, failures, settings()).await;
    assert_eq!(
        sorted_digests(report.deleted.iter().map(|p| &p.digest)),
        vec![d(0), d(1), d(3)]
    );
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].code, "ImageReferencedByManifestList");
    assert!(
        !report.is_complete(),
        "a failure must make the invocation retry"
    );
}

#[tokio::test]
async fn image_not_found_on_delete_means_already_done() {
    let images: Vec<Img> = (0..3).map(untagged_cache).collect();
    let failures = vec![(1, ImageFailureCode::ImageNotFound)];
    let report = prune_simple(images, failures, settings()).await;
    assert!(report.is_complete());
    assert_eq!(report.already_deleted, vec![d(1)]);
    assert_eq!(report.deleted.len(), 2);
}

#[tokio::test]
async fn throttling_is_retried_then_succeeds() {
    let images: Vec<Img> = (0..3).map(untagged_cache).collect();
    let throttled = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids().is_empty())
        .sequence()
        .error(|| {
            DescribeImagesError::generic(
                ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .times(2)
        .output(|| {
            DescribeImagesOutput::builder()
                .set_image_details(Some((0..3).map(|n| detail(&untagged_cache(n))).collect()))
                .build()
        })
        .build();
    let (check, get, delete) = (recheck(images), manifests(vec![]), deleter(vec![]));
    let ecr = client(&[&throttled, &check, &get, &delete]);
    let report = prune_repository(&ecr, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap();
    assert_eq!(throttled.num_calls(), 3);
    assert_eq!(report.deleted.len(), 3);
}

#[tokio::test]
async fn server_error_on_a_later_snapshot_page_deletes_nothing() {
    // Page 1 is full of deletable cache, page 2 keeps failing: the snapshot is incomplete, so
    // nothing may be deleted (rule 5).
    let images: Vec<Img> = (0..1000).map(untagged_cache).collect();
    let page1 = images.clone();
    let list = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids().is_empty() && r.next_token().is_none())
        .then_output(move || {
            DescribeImagesOutput::builder()
                .set_image_details(Some(page1.iter().map(detail).collect()))
                .next_token("1")
                .build()
        });
    let broken = mock!(Client::describe_images)
        .match_requests(|r| r.next_token() == Some("1"))
        .sequence()
        .http_status(500, None)
        .repeatedly()
        .build();
    let (check, get, delete) = (recheck(images), manifests(vec![]), deleter(vec![]));
    let ecr = client(&[&list, &broken, &check, &get, &delete]);
    let err = prune_repository(&ecr, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap_err();
    assert!(matches!(err, PruneError::Registry(_)), "{err}");
    assert_eq!(
        broken.num_calls() as u32,
        ecr_cache_pruner::adapters::aws::MAX_ATTEMPTS,
        "5xx retried to the limit"
    );
    assert_eq!(delete.num_calls(), 0);
    assert_eq!(check.num_calls(), 0);
}

#[tokio::test]
async fn unreadable_index_deletes_nothing() {
    let mut images: Vec<Img> = (0..3).map(untagged_cache).collect();
    images.push(tagged_index(10));
    let get = mock!(Client::batch_get_image).then_output(|| {
        BatchGetImageOutput::builder()
            .failures(failure(&d(10), ImageFailureCode::KmsError))
            .build()
    });
    let (list, check, delete) = (listing(images.clone()), recheck(images), deleter(vec![]));
    let ecr = client(&[&list, &check, &get, &delete]);
    let err = prune_repository(&ecr, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap_err();
    assert!(matches!(err, PruneError::UnreadableIndex { .. }), "{err}");
    assert_eq!(delete.num_calls(), 0);
}

#[tokio::test]
async fn recheck_skips_digests_that_gained_a_tag() {
    // Snapshot says untagged; by delete time a byte-identical cache push re-tagged one.
    let before: Vec<Img> = (0..3).map(untagged_cache).collect();
    let mut now = before.clone();
    now[1].tags = vec!["cache-main".into()];
    let report = EcrMocks::new(before, now, vec![], vec![])
        .prune(settings())
        .await;
    assert_eq!(
        sorted_digests(report.deleted.iter().map(|p| &p.digest)),
        vec![d(0), d(2)]
    );
    assert!(report.kept.iter().any(|k| k.digest == d(1)));
}

#[tokio::test]
async fn recheck_falls_back_to_a_listing_when_a_candidate_vanished() {
    // DescribeImages by id fails whole when one id is gone (a concurrent run deleted it).
    let before: Vec<Img> = (0..3).map(untagged_cache).collect();
    let after: Vec<Img> = vec![before[0].clone(), before[2].clone()];
    let list = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids().is_empty())
        .sequence()
        .output({
            let b = before.clone();
            move || {
                DescribeImagesOutput::builder()
                    .set_image_details(Some(b.iter().map(detail).collect()))
                    .build()
            }
        })
        .output(move || {
            DescribeImagesOutput::builder()
                .set_image_details(Some(after.iter().map(detail).collect()))
                .build()
        })
        .build();
    let by_id = mock!(Client::describe_images)
        .match_requests(|r| !r.image_ids().is_empty())
        .then_error(|| {
            DescribeImagesError::ImageNotFoundException(
                aws_sdk_ecr::types::error::ImageNotFoundException::builder()
                    .message("gone")
                    .build(),
            )
        });
    let (get, delete) = (manifests(vec![]), deleter(vec![]));
    let ecr = client(&[&list, &by_id, &get, &delete]);
    let report = prune_repository(&ecr, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap();
    assert_eq!(report.already_deleted, vec![d(1)]);
    assert_eq!(
        sorted_digests(report.deleted.iter().map(|p| &p.digest)),
        vec![d(0), d(2)]
    );
}

#[tokio::test]
async fn deletion_cap_leaves_the_rest_for_later() {
    let images: Vec<Img> = (0..250).map(untagged_cache).collect();
    let capped = PruneSettings {
        max_deletions: 120,
        ..settings()
    };
    let report = prune_simple(images, vec![], capped).await;
    assert_eq!(report.deleted.len(), 120);
    assert_eq!(report.remaining, 130);
    // oldest first
    assert_eq!(report.deleted[0].digest, d(0));
}

#[tokio::test]
async fn archived_images_are_listed_protect_their_children_and_are_never_deleted() {
    // DescribeImages without an imageStatus filter hides ARCHIVED images: the listing must ask for
    // every status, or an archived index's children look unreferenced.
    let mut archived_index = tagged_index(10);
    archived_index.tags.clear();
    archived_index.status = Some("ARCHIVED");
    let mut archived_cache = untagged_cache(2);
    archived_cache.status = Some("ARCHIVED");
    let mut activating_cache = untagged_cache(3);
    activating_cache.status = Some("ACTIVATING");
    let images = vec![
        untagged_cache(0), // referenced by the archived index
        untagged_cache(1), // the only one to delete
        archived_cache,
        activating_cache,
        archived_index,
    ];
    let listed = images.clone();
    let list = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids().is_empty())
        .then_compute_output(move |req| {
            let status = req.filter().and_then(|f| f.image_status());
            assert_eq!(
                status,
                Some(&ImageStatusFilter::Any),
                "listing must ask for ANY status"
            );
            DescribeImagesOutput::builder()
                .set_image_details(Some(listed.iter().map(detail).collect()))
                .build()
        });
    let (check, get, delete) = (
        recheck(images),
        manifests(vec![(10, vec![0])]),
        deleter(vec![]),
    );
    let ecr = client(&[&list, &check, &get, &delete]);
    let report = prune_repository(&ecr, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap();
    assert_eq!(
        sorted_digests(report.deleted.iter().map(|p| &p.digest)),
        vec![d(1)]
    );
    let reason = |n: usize| {
        serde_json::to_value(
            &report
                .kept
                .iter()
                .find(|k| k.digest == d(n))
                .unwrap()
                .reason,
        )
        .unwrap()
    };
    assert_eq!(reason(0)["reason"], "referenced_by_index");
    assert_eq!(report.images_not_active, 3);
    assert_eq!(reason(2)["reason"], "not_active");
    assert_eq!(reason(2)["status"], "ARCHIVED");
    assert_eq!(reason(3)["status"], "ACTIVATING");
}

#[tokio::test]
async fn a_repeated_next_token_is_an_error_not_a_complete_listing() {
    // The SDK paginator stops silently on a repeated token; a listing that ends so is not
    // complete, so nothing may be deleted (rule 5).
    let images: Vec<Img> = (0..5).map(untagged_cache).collect();
    let page = images.clone();
    let list = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids().is_empty())
        .then_compute_output(move |_| {
            DescribeImagesOutput::builder()
                .set_image_details(Some(page.iter().map(detail).collect()))
                .next_token("same")
                .build()
        });
    let (check, get, delete) = (recheck(images), manifests(vec![]), deleter(vec![]));
    let ecr = client(&[&list, &check, &get, &delete]);
    let err = prune_repository(&ecr, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("repeated"), "{err}");
    assert_eq!(list.num_calls(), 2);
    assert_eq!(delete.num_calls(), 0);
}

#[tokio::test]
async fn a_failed_delete_is_retried_only_after_a_new_recheck() {
    // BatchDeleteImage answers 500 once. Meanwhile a byte-identical push re-tags d(1). The retry
    // must re-check first (and keep d(1)); an SDK-level retry of the same call would delete it.
    let untagged: Vec<Img> = (0..3).map(untagged_cache).collect();
    let mut retagged = untagged.clone();
    retagged[1].tags = vec!["cache-main".into()];
    let first_check = {
        let before = untagged.clone();
        mock!(Client::describe_images)
            .match_requests(|r| !r.image_ids().is_empty())
            .sequence()
            .output(move || {
                DescribeImagesOutput::builder()
                    .set_image_details(Some(before.iter().map(detail).collect()))
                    .build()
            })
            .build()
    };
    let failing_delete = mock!(Client::batch_delete_image)
        .sequence()
        .http_status(500, None)
        .build();
    let (list, later_checks, get, delete) = (
        listing(untagged),
        recheck(retagged),
        manifests(vec![]),
        deleter(vec![]),
    );
    let ecr = client(&[
        &list,
        &first_check,
        &later_checks,
        &get,
        &failing_delete,
        &delete,
    ]);
    let report = prune_repository(&ecr, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap();
    assert_eq!(
        failing_delete.num_calls(),
        1,
        "no SDK retry of BatchDeleteImage"
    );
    assert_eq!(first_check.num_calls() + later_checks.num_calls(), 2);
    assert_eq!(delete.num_calls(), 1);
    assert_eq!(
        sorted_digests(report.deleted.iter().map(|p| &p.digest)),
        vec![d(0), d(2)]
    );
    assert!(report.kept.iter().any(|k| k.digest == d(1)));
}

#[tokio::test]
async fn a_delete_that_keeps_failing_gives_up_after_the_attempts() {
    let images: Vec<Img> = (0..2).map(untagged_cache).collect();
    let broken_delete = mock!(Client::batch_delete_image)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let (list, check, get) = (listing(images.clone()), recheck(images), manifests(vec![]));
    let ecr = client(&[&list, &check, &get, &broken_delete]);
    tokio::time::pause();
    let err = prune_repository(&ecr, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("BatchDeleteImage"), "{err}");
    let attempts = ecr_cache_pruner::app::retry::ATTEMPTS as usize;
    assert_eq!(broken_delete.num_calls(), attempts);
    assert_eq!(
        check.num_calls(),
        attempts + 1,
        "one re-check before every attempt, and one after the last to settle what it may have deleted"
    );
}

#[tokio::test]
async fn a_delete_failure_without_a_digest_is_never_counted_as_deleted() {
    let images: Vec<Img> = (0..3).map(untagged_cache).collect();
    // ECR confirms d(0) and reports a failure whose id carries no digest.
    let delete = mock!(Client::batch_delete_image).then_output(|| {
        BatchDeleteImageOutput::builder()
            .image_ids(ImageIdentifier::builder().image_digest(d(0)).build())
            .failures(
                ImageFailure::builder()
                    .image_id(ImageIdentifier::builder().build())
                    .failure_code(ImageFailureCode::InvalidImageDigest)
                    .failure_reason("from the mock")
                    .build(),
            )
            .build()
    });
    let (list, check, get) = (listing(images.clone()), recheck(images), manifests(vec![]));
    let ecr = client(&[&list, &check, &get, &delete]);
    let report = prune_repository(&ecr, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap();
    assert_eq!(
        sorted_digests(report.deleted.iter().map(|p| &p.digest)),
        vec![d(0)]
    );
    let failed: Vec<&str> = report.failures.iter().map(|f| f.image.as_str()).collect();
    assert_eq!(failed, vec![d(1), d(2)]);
    assert!(report
        .failures
        .iter()
        .all(|f| f.code == "InvalidImageDigest"));
    assert!(!report.is_complete());
}

/// `STALE_CACHE_DAYS` counts pulls as use: the adapter must carry ECR's `lastRecordedPullTime`
/// (moto never reports one).
#[tokio::test]
async fn the_listing_carries_the_last_recorded_pull_time() {
    use ecr_cache_pruner::app::ports::RegistryReader;
    let pulled = DateTime::from_secs(1_795_000_000);
    let rule = mock!(Client::describe_images).then_output(move || {
        let base = detail(&tagged_cache(1));
        let never_pulled = detail(&tagged_cache(2));
        let pulled_detail = ImageDetail::builder()
            .set_image_digest(base.image_digest().map(str::to_owned))
            .set_image_tags(Some(base.image_tags().to_vec()))
            .set_image_pushed_at(base.image_pushed_at().cloned())
            .last_recorded_pull_time(pulled)
            .build();
        DescribeImagesOutput::builder()
            .image_details(pulled_detail)
            .image_details(never_pulled)
            .build()
    });
    let ecr = client(&[&rule]);
    let page = ecr.list_images_page("app", None).await.unwrap();
    assert_eq!(page.items[0].last_pulled_at, Some(1_795_000_000));
    assert_eq!(page.items[0].last_used_at(), Some(1_795_000_000));
    assert_eq!(page.items[1].last_pulled_at, None);
    assert_eq!(page.items[1].last_used_at(), page.items[1].pushed_at);
}

#[tokio::test]
async fn access_denied_is_a_lasting_refusal_not_a_transient_fault() {
    // An IAM policy scoped to other repositories: ECR answers 400 AccessDeniedException.
    let denied = mock!(Client::describe_images)
        .sequence()
        .http_status(
            400,
            Some(
                r#"{"__type":"AccessDeniedException","message":"User is not authorized to perform: ecr:DescribeImages"}"#
                    .into(),
            ),
        )
        .repeatedly()
        .build();
    let ecr = client(&[&denied]);
    let err = prune_repository(&ecr, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PruneError::Registry(ecr_cache_pruner::app::ports::RegistryError::AccessDenied { .. })
        ),
        "{err}"
    );
    assert!(err.is_lasting());
    assert_eq!(denied.num_calls(), 1, "not retried");
}

/// Signed caches on real ECR: DescribeImages names each signature's subject
/// (`subjectManifestDigest`), so the superseded cache manifest's signature is found and deleted
/// in the same BatchDeleteImage without reading a single manifest; the live cache's signature
/// stays. (moto reports no subject: the read path is tested there.)
#[tokio::test]
async fn a_listed_subject_takes_the_signature_along_without_a_read() {
    const NOTARY: &str = "application/vnd.cncf.notary.signature";
    let signature = |n: usize, subject: usize| {
        ImageDetail::builder()
            .image_digest(d(n))
            .image_manifest_media_type(OCI_MANIFEST)
            .artifact_media_type(NOTARY)
            .subject_manifest_digest(d(subject))
            .image_size_in_bytes(2048)
            .image_pushed_at(DateTime::from_secs(1_790_000_000 + n as i64))
            .build()
    };
    let images = vec![untagged_cache(1), tagged_cache(2)];
    let list = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids().is_empty())
        .then_output({
            let images = images.clone();
            move || {
                DescribeImagesOutput::builder()
                    .set_image_details(Some(images.iter().map(detail).collect()))
                    .image_details(signature(3, 1))
                    .image_details(signature(4, 2))
                    .build()
            }
        });
    let check = mock!(Client::describe_images)
        .match_requests(|r| !r.image_ids().is_empty())
        .then_compute_output(move |req| {
            let details = req
                .image_ids()
                .iter()
                .filter_map(|i| i.image_digest())
                .map(|digest| match digest {
                    x if x == d(3) => signature(3, 1),
                    x if x == d(4) => signature(4, 2),
                    x => detail(&images.iter().find(|i| d(i.n) == x).unwrap().clone()),
                })
                .collect();
            DescribeImagesOutput::builder()
                .set_image_details(Some(details))
                .build()
        });
    let get = manifests(vec![]);
    let delete = deleter(vec![]);
    let ecr = client(&[&list, &check, &get, &delete]);
    let report = prune_repository(&ecr, REPO, &HashSet::new(), settings(), Run::UNBOUNDED)
        .await
        .unwrap();
    let deleted: Vec<(String, Option<String>)> = report
        .deleted
        .iter()
        .map(|x| (x.digest.clone(), x.subject.clone()))
        .collect();
    assert_eq!(deleted, vec![(d(1), None), (d(3), Some(d(1)))]);
    assert_eq!(
        get.num_calls(),
        0,
        "the listing named every subject: nothing read"
    );
    assert_eq!(
        delete.num_calls(),
        1,
        "the signature went in its subject's batch"
    );
    assert_eq!(report.orphaned_referrers, 0);
}
