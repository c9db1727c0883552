//! Speed and memory of the pure planner and of a whole repository prune (ECR replaced by
//! aws-smithy-mocks, so this measures our code and the SDK's client stack, not the network).
//! Run: `cargo bench --bench prune`. Results are recorded in BENCHMARKS.md.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ecr::primitives::DateTime;
use aws_sdk_ecr::types::{ImageDetail, ImageIdentifier};
use aws_sdk_ecr::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use ecr_cache_pruner::adapters::ecr::EcrRegistry;
use ecr_cache_pruner::app::prune::{prune_repository, PruneSettings, Run};
use ecr_cache_pruner::core::manifest::{
    ManifestKind, BUILDKIT_CACHE_CONFIG, OCI_INDEX, OCI_MANIFEST,
};
use ecr_cache_pruner::core::plan::{manifests_to_read, plan, ImageRecord, PlanSettings};

fn digest(n: usize) -> String {
    format!("sha256:{n:064x}")
}

/// A repository of `n` images: 1 in 5 an untagged superseded cache manifest, 1 in 20 an index
/// with two children, the rest tagged caches and images.
fn repository(n: usize) -> (Vec<ImageRecord>, HashMap<String, ManifestKind>) {
    let mut images = Vec::with_capacity(n);
    let mut manifests = HashMap::new();
    for i in 0..n {
        let (tags, media, artifact) = match i % 20 {
            0 => (vec![format!("v{i}")], OCI_INDEX, None),
            1 | 2 => (
                vec![],
                OCI_MANIFEST,
                Some("application/vnd.oci.image.config.v1+json"),
            ),
            3..=6 => (vec![], OCI_MANIFEST, Some(BUILDKIT_CACHE_CONFIG)),
            _ => (
                vec![format!("cache-b{i}")],
                OCI_MANIFEST,
                Some(BUILDKIT_CACHE_CONFIG),
            ),
        };
        if media == OCI_INDEX {
            manifests.insert(
                digest(i),
                ManifestKind::Index {
                    children: vec![digest(i + 1), digest(i + 2)],
                },
            );
        }
        images.push(ImageRecord {
            digest: digest(i),
            tags,
            pushed_at: Some(1_790_000_000 + i as i64),
            size_bytes: Some(200_000_000),
            manifest_media_type: Some(media.into()),
            artifact_media_type: artifact.map(str::to_owned),
            ..Default::default()
        });
    }
    (images, manifests)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Peak resident set size of this process so far, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn detail(image: &ImageRecord) -> ImageDetail {
    ImageDetail::builder()
        .image_digest(&image.digest)
        .set_image_tags(if image.tags.is_empty() {
            None
        } else {
            Some(image.tags.clone())
        })
        .image_manifest_media_type(image.manifest_media_type.clone().unwrap())
        .set_artifact_media_type(image.artifact_media_type.clone())
        .image_size_in_bytes(200_000_000)
        .image_pushed_at(DateTime::from_secs(image.pushed_at.unwrap()))
        .build()
}

async fn prune_with_mocks(n: usize) -> (Duration, usize) {
    let (images, _) = repository(n);
    let pages = images.clone();
    let list = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids().is_empty())
        .then_compute_output(move |req| {
            let page: usize = req.next_token().map(|t| t.parse().unwrap()).unwrap_or(0);
            let chunk = pages
                .iter()
                .skip(page * 1000)
                .take(1000)
                .map(detail)
                .collect();
            DescribeImagesOutput::builder()
                .set_image_details(Some(chunk))
                .set_next_token((pages.len() > (page + 1) * 1000).then(|| (page + 1).to_string()))
                .build()
        });
    // Like `recheck` in tests/pruner_mocks.rs, deliberately not shared: the bench answers from
    // the core's ImageRecords, the tests from their own image type, and a bench that includes the
    // test harness would change whenever the tests do.
    let by_id_images = images.clone();
    let recheck = mock!(Client::describe_images)
        .match_requests(|r| !r.image_ids().is_empty())
        .then_compute_output(move |req| {
            let wanted: HashSet<&str> = req
                .image_ids()
                .iter()
                .filter_map(|i| i.image_digest())
                .collect();
            DescribeImagesOutput::builder()
                .set_image_details(Some(
                    by_id_images
                        .iter()
                        .filter(|i| wanted.contains(i.digest.as_str()))
                        .map(detail)
                        .collect(),
                ))
                .build()
        });
    let get = mock!(Client::batch_get_image).then_compute_output(|req| {
        let images = req
            .image_ids()
            .iter()
            .map(|id| {
                let d = id.image_digest().unwrap();
                let n = usize::from_str_radix(&d[7..], 16).unwrap();
                let body = format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}},{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}}]}}"#,
                    digest(n + 1),
                    digest(n + 2)
                );
                aws_sdk_ecr::types::Image::builder()
                    .image_id(ImageIdentifier::builder().image_digest(d).build())
                    .image_manifest(body)
                    .image_manifest_media_type(OCI_INDEX)
                    .build()
            })
            .collect();
        BatchGetImageOutput::builder().set_images(Some(images)).build()
    });
    let delete = mock!(Client::batch_delete_image).then_compute_output(|req| {
        BatchDeleteImageOutput::builder()
            .set_image_ids(Some(req.image_ids().to_vec()))
            .build()
    });
    let client = mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        &[&list, &recheck, &get, &delete]
    );
    let ecr = EcrRegistry::new(client);
    let settings = PruneSettings {
        dry_run: false,
        max_deletions: 100_000,
        estimate_reclaimed: false,
        plan_only: false,
    };
    let start = Instant::now();
    let report = prune_repository(&ecr, "bench", &HashSet::new(), settings, Run::UNBOUNDED)
        .await
        .unwrap();
    (start.elapsed(), report.deleted.len())
}

fn main() {
    println!("| what | images | median | notes |");
    println!("| --- | ---: | ---: | --- |");
    // Whole-prune runs first, so the peak RSS they report is not the planner's large datasets.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = peak_rss_kib();
    for n in [1_000, 10_000] {
        let (elapsed, deleted) = runtime.block_on(prune_with_mocks(n));
        println!(
            "| prune_repository via SDK (mocked ECR) | {n} | {elapsed:.2?} | {deleted} deleted; peak RSS {} MiB (was {} MiB before) |",
            peak_rss_kib() / 1024,
            before / 1024
        );
    }
    for n in [1_000, 10_000, 100_000] {
        let (images, manifests) = repository(n);
        let settings = PlanSettings {
            protect_digests: HashSet::new(),
            max_deletions: 1000,
            only_digests: None,
        };
        let runs = if n >= 100_000 { 5 } else { 30 };
        let samples: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                let to_read = manifests_to_read(&images);
                let p = plan(&images, &manifests, &settings);
                std::hint::black_box((to_read, p));
                start.elapsed()
            })
            .collect();
        println!(
            "| plan (pure core) | {n} | {:.2?} | {runs} runs |",
            median(samples)
        );
    }
}
