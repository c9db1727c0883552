//! The savings report's arithmetic: what one repository holds in BuildKit cache and what a sweep
//! would delete from it now, sized by DescribeImages' `imageSizeInBytes`, and the totals over
//! many repositories. Pure: the plan and the tag verdicts come from the sweep's own dry run.

use std::collections::BTreeMap;

use serde::Serialize;

use super::plan::{ImageRecord, ImageStatus, PlannedDeletion};
use super::stale::TagExpiry;

/// ECR's list price for private repository storage (USD per GB-month, all regions, 2026-11).
pub const DEFAULT_PRICE_PER_GB_MONTH: f64 = 0.10;
/// AWS bills storage in binary gigabytes.
const GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// A cache tag the sweep would remove now, as its dry run reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringTag {
    pub tag: String,
    pub why: TagExpiry,
    /// It is the image's last tag: the image goes with it.
    pub image_goes: bool,
}

/// One branch cache: a tag under the cache prefix and the size of the image it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BranchCache {
    pub tag: String,
    pub bytes: i64,
    /// When a build last pushed or pulled it (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
}

/// One repository of the report. `error` set: it could not be read, and the numbers are zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RepositorySavings {
    pub repository: String,
    pub images: usize,
    /// Tags under the cache prefix.
    pub cache_tags: usize,
    /// Bytes of the images the cache tags name, plus the stale manifests.
    pub cache_bytes: i64,
    /// Untagged cache manifests a sweep would delete now.
    pub stale_manifests: usize,
    /// Their `imageSizeInBytes`, summed.
    pub stale_bytes: i64,
    /// Cache tags whose branch no longer exists, or whose pull request is no longer open
    /// (judged only with a GitHub token).
    pub gone_branch_tags: Vec<String>,
    /// Cache tags neither pushed nor pulled for `STALE_CACHE_DAYS` (when set).
    pub unused_tags: Vec<String>,
    /// Bytes of the images that go with those tags (their last tag).
    pub expiring_tag_bytes: i64,
    /// ARCHIVED or ACTIVATING images: never deleted, billed at the archive rate.
    pub archived_images: usize,
    /// Referrers (signatures, attestations) a sweep would delete with their stale subject
    /// (counted apart from `stale_manifests`; their bytes are in `stale_bytes`).
    pub stale_referrers: usize,
    /// Referrers whose subject is no longer in the repository: never deleted, each one image
    /// against the repository's quota.
    pub orphaned_referrers: usize,
    pub branch_caches: Vec<BranchCache>,
    /// Distinct blobs of every cache manifest: what the cache really takes in ECR (a shared
    /// layer counted once, as ECR stores it).
    pub cache_unique_bytes: u64,
    /// Storage the stale manifests' deletion frees: blobs no other manifest references.
    pub stale_unique_bytes: u64,
    /// With a budget (`CACHE_BUDGET` or `report --budget`): the footprint and what it evicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetView>,
    /// Why the tag columns are empty although asked for (GitHub could not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_expiry_skipped: Option<String>,
    /// The repository could not be read (or not within the time given): nothing else is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A budget planned over one repository: what a sweep with it would evict now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BudgetView {
    pub budget_bytes: u64,
    /// Unique bytes of the cache that stays after the stale manifests and expiring tags go.
    pub footprint_bytes: u64,
    pub footprint_after: u64,
    /// Cache tags the budget evicts, least recently used first.
    pub would_evict: Vec<String>,
    /// Storage those evictions free.
    pub evict_frees_bytes: u64,
    /// Protected, kept or young caches alone exceed the budget.
    pub unreachable: bool,
}

/// The totals line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub repositories: usize,
    /// Repositories with an `error`.
    pub repositories_failed: usize,
    pub images: usize,
    pub cache_tags: usize,
    pub cache_bytes: i64,
    pub stale_manifests: usize,
    pub stale_bytes: i64,
    pub gone_branch_tags: usize,
    pub unused_tags: usize,
    pub expiring_tag_bytes: i64,
    pub archived_images: usize,
    pub stale_referrers: usize,
    pub orphaned_referrers: usize,
    pub cache_unique_bytes: u64,
    pub stale_unique_bytes: u64,
    /// Repositories whose footprint is over their budget now.
    pub repositories_over_budget: usize,
    /// Cache tags the budgets evict, and the storage that frees.
    pub budget_evictions: usize,
    pub budget_frees_bytes: u64,
    /// `stale_unique_bytes` (the storage a sweep frees) at `price_per_gb_month`, rounded to cents.
    pub monthly_savings_usd: f64,
    pub price_per_gb_month: f64,
}

/// The whole report: totals, then repositories by stale bytes (largest first), then name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SavingsReport {
    pub totals: Totals,
    pub repositories: Vec<RepositorySavings>,
}

/// One repository from the sweep's dry run: its listing, the manifests it would delete and the
/// tags it would remove.
pub fn repository_savings(
    repository: &str,
    images: &[ImageRecord],
    would_delete: &[PlannedDeletion],
    expiring: &[ExpiringTag],
    cache_tags: &super::cache_tags::CacheTags,
) -> RepositorySavings {
    let size_of: BTreeMap<&str, i64> = images
        .iter()
        .flat_map(|i| {
            i.tags
                .iter()
                .map(|t| (t.as_str(), i.size_bytes.unwrap_or(0)))
        })
        .collect();
    let mut branch_caches: Vec<BranchCache> = images
        .iter()
        .flat_map(|image| {
            image
                .tags
                .iter()
                .filter(|t| cache_tags.is_cache_tag(t))
                .map(move |t| BranchCache {
                    tag: t.clone(),
                    bytes: image.size_bytes.unwrap_or(0),
                    last_used_at: image.last_used_at(),
                })
        })
        .collect();
    branch_caches.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.tag.cmp(&b.tag)));
    // An image under two cache tags is stored once.
    let tagged_cache_bytes: i64 = images
        .iter()
        .filter(|i| i.tags.iter().any(|t| cache_tags.is_cache_tag(t)))
        .map(|i| i.size_bytes.unwrap_or(0))
        .sum();
    let stale_bytes: i64 = would_delete.iter().map(|d| d.size_bytes.unwrap_or(0)).sum();
    let tags_of = |expired: fn(&TagExpiry) -> bool| -> Vec<String> {
        expiring
            .iter()
            .filter(|t| expired(&t.why))
            .map(|t| t.tag.clone())
            .collect()
    };
    RepositorySavings {
        repository: repository.to_owned(),
        images: images.len(),
        cache_tags: branch_caches.len(),
        cache_bytes: tagged_cache_bytes + stale_bytes,
        stale_manifests: would_delete.iter().filter(|d| d.subject.is_none()).count(),
        stale_referrers: would_delete.iter().filter(|d| d.subject.is_some()).count(),
        orphaned_referrers: 0,
        stale_bytes,
        gone_branch_tags: tags_of(|w| {
            matches!(
                w,
                TagExpiry::BranchGone | TagExpiry::BranchDeleted | TagExpiry::PullRequestNotOpen
            )
        }),
        unused_tags: tags_of(|w| matches!(w, TagExpiry::NotUsed { .. })),
        expiring_tag_bytes: expiring
            .iter()
            .filter(|t| t.image_goes)
            .map(|t| size_of.get(t.tag.as_str()).copied().unwrap_or(0))
            .sum(),
        archived_images: images
            .iter()
            .filter(|i| i.status != ImageStatus::Active)
            .count(),
        branch_caches,
        cache_unique_bytes: 0,
        stale_unique_bytes: 0,
        budget: None,
        tag_expiry_skipped: None,
        error: None,
    }
}

/// A repository the report could not read.
pub fn unreadable(repository: &str, error: String) -> RepositorySavings {
    RepositorySavings {
        repository: repository.to_owned(),
        error: Some(error),
        ..RepositorySavings::default()
    }
}

/// Totals and order; `price_per_gb_month` prices the stale bytes.
pub fn savings_report(
    mut repositories: Vec<RepositorySavings>,
    price_per_gb_month: f64,
) -> SavingsReport {
    repositories.sort_by(|a, b| {
        b.stale_unique_bytes
            .cmp(&a.stale_unique_bytes)
            .then_with(|| b.stale_bytes.cmp(&a.stale_bytes))
            .then_with(|| a.repository.cmp(&b.repository))
    });
    let mut t = Totals {
        repositories: repositories.len(),
        price_per_gb_month,
        ..Totals::default()
    };
    for r in &repositories {
        t.repositories_failed += usize::from(r.error.is_some());
        t.images += r.images;
        t.cache_tags += r.cache_tags;
        t.cache_bytes += r.cache_bytes;
        t.stale_manifests += r.stale_manifests;
        t.stale_bytes += r.stale_bytes;
        t.gone_branch_tags += r.gone_branch_tags.len();
        t.unused_tags += r.unused_tags.len();
        t.expiring_tag_bytes += r.expiring_tag_bytes;
        t.archived_images += r.archived_images;
        t.stale_referrers += r.stale_referrers;
        t.orphaned_referrers += r.orphaned_referrers;
        t.cache_unique_bytes = t.cache_unique_bytes.saturating_add(r.cache_unique_bytes);
        t.stale_unique_bytes = t.stale_unique_bytes.saturating_add(r.stale_unique_bytes);
        if let Some(budget) = &r.budget {
            t.repositories_over_budget += usize::from(budget.footprint_bytes > budget.budget_bytes);
            t.budget_evictions += budget.would_evict.len();
            t.budget_frees_bytes = t
                .budget_frees_bytes
                .saturating_add(budget.evict_frees_bytes);
        }
    }
    // What a sweep frees, not the summed image sizes (which count a shared layer once per image).
    t.monthly_savings_usd = monthly_cost(
        i64::try_from(t.stale_unique_bytes).unwrap_or(i64::MAX),
        price_per_gb_month,
    );
    SavingsReport {
        totals: t,
        repositories,
    }
}

/// `bytes` stored for a month at `price_per_gb_month`, rounded to cents.
pub fn monthly_cost(bytes: i64, price_per_gb_month: f64) -> f64 {
    (bytes as f64 / GB * price_per_gb_month * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::{ClassifiedBy, DeleteReason};

    fn image(digest: &str, tags: &[&str], size: i64, status: ImageStatus) -> ImageRecord {
        ImageRecord {
            digest: digest.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            status,
            pushed_at: Some(1_000),
            size_bytes: Some(size),
            ..ImageRecord::default()
        }
    }

    fn stale(digest: &str, size: i64) -> PlannedDeletion {
        PlannedDeletion {
            digest: digest.into(),
            size_bytes: Some(size),
            pushed_at: Some(1_000),
            reason: DeleteReason::UntaggedUnreferencedCache,
            classified_by: ClassifiedBy::ArtifactMediaType,
            subject: None,
        }
    }

    #[test]
    fn sizes_come_from_the_listing_and_the_plan() {
        let images = [
            image("a", &["cache-main", "cache-dev"], 300, ImageStatus::Active),
            image("b", &["cache-feature-x"], 200, ImageStatus::Active),
            image("c", &["v1.0"], 5_000, ImageStatus::Active),
            image("d", &[], 100, ImageStatus::Active),
            image("e", &[], 40, ImageStatus::Active),
            image("f", &[], 7, ImageStatus::Archived),
        ];
        let expiring = [ExpiringTag {
            tag: "cache-feature-x".into(),
            why: TagExpiry::BranchGone,
            image_goes: true,
        }];
        let r = repository_savings(
            "app",
            &images,
            &[stale("d", 100), stale("e", 40)],
            &expiring,
            &super::super::cache_tags::CacheTags::from_prefix("cache-"),
        );
        assert_eq!(r.images, 6);
        assert_eq!(r.cache_tags, 3);
        // "a" counted once although two cache tags name it; the application image not at all.
        assert_eq!(r.cache_bytes, 300 + 200 + 140);
        assert_eq!((r.stale_manifests, r.stale_bytes), (2, 140));
        assert_eq!(r.gone_branch_tags, ["cache-feature-x"]);
        assert!(r.unused_tags.is_empty());
        assert_eq!(r.expiring_tag_bytes, 200);
        assert_eq!(r.archived_images, 1);
        assert_eq!(r.branch_caches[0].tag, "cache-dev");
        assert_eq!(r.branch_caches[2].bytes, 200);
    }

    #[test]
    fn totals_add_up_and_the_largest_saving_comes_first() {
        let small = RepositorySavings {
            repository: "a".into(),
            stale_manifests: 1,
            stale_bytes: 1 << 30,
            stale_unique_bytes: 1 << 29,
            cache_bytes: 3 << 30,
            ..RepositorySavings::default()
        };
        let large = RepositorySavings {
            repository: "b".into(),
            stale_manifests: 4,
            stale_bytes: 9 << 30,
            stale_unique_bytes: 9 << 29,
            budget: Some(BudgetView {
                budget_bytes: 1 << 30,
                footprint_bytes: 2 << 30,
                footprint_after: 1 << 30,
                would_evict: vec!["cache-x".into()],
                evict_frees_bytes: 1 << 30,
                unreachable: false,
            }),
            cache_bytes: 10 << 30,
            unused_tags: vec!["cache-old".into()],
            ..RepositorySavings::default()
        };
        let report = savings_report(
            vec![small, unreadable("c", "AccessDenied".into()), large],
            DEFAULT_PRICE_PER_GB_MONTH,
        );
        let names: Vec<&str> = report
            .repositories
            .iter()
            .map(|r| r.repository.as_str())
            .collect();
        assert_eq!(names, ["b", "a", "c"]);
        let t = &report.totals;
        assert_eq!((t.repositories, t.repositories_failed), (3, 1));
        assert_eq!((t.stale_manifests, t.stale_bytes), (5, 10 << 30));
        assert_eq!(t.cache_bytes, 13 << 30);
        assert_eq!(t.unused_tags, 1);
        // Priced by the unique bytes freed (5 GiB), not the summed sizes (10 GiB).
        assert_eq!(t.stale_unique_bytes, 5 << 30);
        assert_eq!(t.monthly_savings_usd, 0.5);
        assert_eq!((t.repositories_over_budget, t.budget_evictions), (1, 1));
        assert_eq!(t.budget_frees_bytes, 1 << 30);
        assert_eq!(monthly_cost(1 << 29, 0.10), 0.05);
        assert_eq!(monthly_cost(0, 0.10), 0.0);
    }

    #[test]
    fn signatures_going_with_stale_cache_are_counted_apart() {
        let mut sig = stale("s", 2);
        sig.reason = DeleteReason::ReferrerOfDeletedCache;
        sig.subject = Some("d".into());
        let r = repository_savings(
            "app",
            &[],
            &[stale("d", 100), sig],
            &[],
            &crate::core::cache_tags::CacheTags::from_prefix("cache-"),
        );
        assert_eq!(
            (r.stale_manifests, r.stale_referrers, r.stale_bytes),
            (1, 1, 102)
        );
        let mut orphaned = r.clone();
        orphaned.orphaned_referrers = 3;
        let report = savings_report(vec![orphaned], 0.10);
        assert_eq!(report.totals.stale_referrers, 1);
        assert_eq!(report.totals.orphaned_referrers, 3);
    }
}
