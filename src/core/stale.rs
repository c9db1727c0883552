//! Stale branch caches: cache tags whose image no build has pushed or pulled for long, or whose
//! branch is gone, and that no protected branch can own. Pure: the caller removes them by tag after re-checking the digest.

use std::collections::HashMap;

use serde::Serialize;

use super::branch::ProtectedBranches;
use super::cache_tags::CacheTags;
use super::manifest::ManifestKind;
use super::plan::{classify, ImageRecord, ImageStatus};

/// Why a cache tag is removed. Serialized into reports and audit lines as `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum TagExpiry {
    /// Neither pushed nor pulled for more than `days` days (`STALE_CACHE_DAYS`).
    NotUsed { days: u32 },
    /// No branch of the owning GitHub repositories maps to the tag any more.
    BranchGone,
    /// GitHub reported the branch deleted.
    BranchDeleted,
    /// GitHub reported the pull request closed (merged or not).
    PullRequestClosed,
    /// A sweep found the pull request no longer open (its close event missed or failed).
    PullRequestNotOpen,
    /// GitHub reported the merge queue's group destroyed (merged, invalidated or dequeued).
    MergeGroupDestroyed,
    /// The repository's cache footprint (unique bytes) is over `CACHE_BUDGET`, and this cache is
    /// the least recently used that may go.
    OverBudget {
        footprint_bytes: u64,
        budget_bytes: u64,
    },
}

impl std::fmt::Display for TagExpiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TagExpiry::NotUsed { days } => {
                write!(
                    f,
                    "cache neither pushed nor pulled for more than {days} days"
                )
            }
            TagExpiry::BranchGone => f.write_str("branch no longer exists"),
            TagExpiry::BranchDeleted => f.write_str("branch deleted"),
            TagExpiry::PullRequestClosed => f.write_str("pull request closed"),
            TagExpiry::PullRequestNotOpen => f.write_str("pull request no longer open"),
            TagExpiry::MergeGroupDestroyed => f.write_str("merge queue group destroyed"),
            TagExpiry::OverBudget {
                footprint_bytes,
                budget_bytes,
            } => write!(
                f,
                "over budget: {} > {}, least recently used",
                super::budget::human_bytes(*footprint_bytes),
                super::budget::human_bytes(*budget_bytes)
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleTag {
    pub tag: String,
    pub digest: String,
    pub pushed_at: i64,
    /// Days since the image was last pushed or pulled.
    pub age_days: i64,
    #[serde(flatten)]
    pub why: TagExpiry,
}

fn old_enough(image: &ImageRecord, now_secs: i64, max_age_days: u32) -> bool {
    // A pull counts as use: a cache every build imports is not stale however old its push.
    match image.last_used_at() {
        // Unknown age is never stale.
        None => false,
        Some(used) => now_secs - used > i64::from(max_age_days) * 86_400,
    }
}

/// Images with a cache tag whose type `artifactMediaType` does not settle (to read before
/// [`gone_branch_tags`]).
pub fn prefixed_to_read(images: &[ImageRecord], cache_tags: &CacheTags) -> Vec<String> {
    images
        .iter()
        .filter(|i| {
            i.artifact_media_type.is_none() && i.tags.iter().any(|t| cache_tags.is_cache_tag(t))
        })
        .map(|i| i.digest.clone())
        .collect()
}

/// Cache tags whose branch no longer exists: a `{branch}` template's tag (a pull request's is
/// not a branch's), not the tag of any existing branch (`existing_tags`, computed with the same
/// templates), not a protected branch's tag,
/// naming a BuildKit cache manifest pushed at least `min_age_secs` ago (a branch created minutes
/// ago may not be in the branch list yet; an image of unknown age is never judged).
pub fn gone_branch_tags(
    images: &[ImageRecord],
    manifests: &HashMap<String, ManifestKind>,
    cache_tags: &CacheTags,
    protected: &ProtectedBranches,
    existing_tags: &std::collections::HashSet<String>,
    now_secs: i64,
    min_age_secs: i64,
) -> Vec<StaleTag> {
    let unlisted = Unlisted {
        listed: existing_tags,
        min_age_secs,
        why: TagExpiry::BranchGone,
    };
    unlisted.tags(images, manifests, cache_tags, protected, now_secs, |tag| {
        cache_tags.branch_part(tag).is_some()
    })
}

/// `{pr}` cache tags of pull requests that are not open (`open_tags`: the tags of the open ones,
/// computed with the same templates), naming a BuildKit cache manifest pushed at least
/// `min_age_secs` ago (a pull request opened minutes ago may not be listed yet; an image of unknown
/// age is never judged). The sweep's net for close events that never arrived.
pub fn closed_pull_request_tags(
    images: &[ImageRecord],
    manifests: &HashMap<String, ManifestKind>,
    cache_tags: &CacheTags,
    protected: &ProtectedBranches,
    open_tags: &std::collections::HashSet<String>,
    now_secs: i64,
    min_age_secs: i64,
) -> Vec<StaleTag> {
    let unlisted = Unlisted {
        listed: open_tags,
        min_age_secs,
        why: TagExpiry::PullRequestNotOpen,
    };
    unlisted.tags(images, manifests, cache_tags, protected, now_secs, |tag| {
        cache_tags.pr_part(tag).is_some()
    })
}

/// Tags of one kind that what GitHub listed as alive (`listed`) does not hold.
struct Unlisted<'a> {
    listed: &'a std::collections::HashSet<String>,
    min_age_secs: i64,
    why: TagExpiry,
}

impl Unlisted<'_> {
    /// The tags `of_kind` picks, not listed, naming an image pushed at least `min_age_secs` ago.
    fn tags(
        &self,
        images: &[ImageRecord],
        manifests: &HashMap<String, ManifestKind>,
        cache_tags: &CacheTags,
        protected: &ProtectedBranches,
        now_secs: i64,
        of_kind: impl Fn(&str) -> bool,
    ) -> Vec<StaleTag> {
        removable_cache_tags(
            images,
            manifests,
            cache_tags,
            protected,
            now_secs,
            self.why,
            |image, tag| {
                of_kind(tag)
                    && !self.listed.contains(tag)
                    && image
                        .pushed_at
                        .is_some_and(|pushed| now_secs - pushed >= self.min_age_secs)
            },
        )
    }
}

/// Cache tags (of any template) of BuildKit cache manifests that no protected branch can own and
/// that `select(image, tag)` picks, sorted by tag.
fn removable_cache_tags(
    images: &[ImageRecord],
    manifests: &HashMap<String, ManifestKind>,
    cache_tags: &CacheTags,
    protected: &ProtectedBranches,
    now_secs: i64,
    why: TagExpiry,
    select: impl Fn(&ImageRecord, &str) -> bool,
) -> Vec<StaleTag> {
    let mut found = Vec::new();
    for image in images {
        // Removing an archived image's last tag would delete it (rule 8).
        if image.status != ImageStatus::Active {
            continue;
        }
        if classify(image, manifests.get(&image.digest)).is_err() {
            continue;
        }
        let pushed_at = image.pushed_at.unwrap_or(now_secs);
        let used_at = image.last_used_at().unwrap_or(now_secs);
        for tag in &image.tags {
            if cache_tags.is_cache_tag(tag)
                && !cache_tags.protected_by(protected, tag)
                && select(image, tag)
            {
                found.push(StaleTag {
                    tag: tag.clone(),
                    digest: image.digest.clone(),
                    pushed_at,
                    age_days: (now_secs - used_at) / 86_400,
                    why,
                });
            }
        }
    }
    found.sort_by(|a, b| a.tag.cmp(&b.tag));
    found
}

/// Cache tags to remove: a cache tag of any template, image neither pushed nor pulled for more than
/// `max_age_days` (push time alone when ECR recorded no pull), image is a
/// BuildKit cache manifest, and no protected branch pattern can produce the tag.
pub fn stale_cache_tags(
    images: &[ImageRecord],
    manifests: &HashMap<String, ManifestKind>,
    cache_tags: &CacheTags,
    protected: &ProtectedBranches,
    now_secs: i64,
    max_age_days: u32,
) -> Vec<StaleTag> {
    removable_cache_tags(
        images,
        manifests,
        cache_tags,
        protected,
        now_secs,
        TagExpiry::NotUsed { days: max_age_days },
        |image, _| old_enough(image, now_secs, max_age_days),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::glob::parse_list;
    use crate::core::manifest::{BUILDKIT_CACHE_CONFIG, OCI_MANIFEST};

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn image(n: u8, tags: &[&str], age_days: i64, artifact: Option<&str>) -> ImageRecord {
        ImageRecord {
            digest: format!("sha256:{n:064x}"),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at: Some(NOW - age_days * DAY),
            size_bytes: Some(1),
            manifest_media_type: Some(OCI_MANIFEST.into()),
            artifact_media_type: artifact.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn old_unprotected_cache_tags_are_stale() {
        let protected = ProtectedBranches::new(parse_list("main,release/*"));
        let cache = Some(BUILDKIT_CACHE_CONFIG);
        let images = vec![
            image(1, &["cache-old-feature"], 40, cache),
            image(2, &["cache-fresh-feature"], 3, cache),
            image(3, &["cache-main"], 400, cache),
            image(4, &["cache-release-1.0"], 400, cache),
            image(
                5,
                &["cache-tools"],
                400,
                Some("application/vnd.oci.image.config.v1+json"),
            ),
            image(6, &["v1.0", "cache-x"], 40, cache),
            image(7, &["cache-unread"], 40, None),
        ];
        assert_eq!(
            prefixed_to_read(&images, &CacheTags::from_prefix("cache-")),
            vec![images[6].digest.clone()]
        );
        let stale = stale_cache_tags(
            &images,
            &HashMap::new(),
            &CacheTags::from_prefix("cache-"),
            &protected,
            NOW,
            30,
        );
        let tags: Vec<&str> = stale.iter().map(|s| s.tag.as_str()).collect();
        assert_eq!(tags, vec!["cache-old-feature", "cache-x"]);
        assert_eq!(stale[0].age_days, 40);

        let read = HashMap::from([(images[6].digest.clone(), ManifestKind::CacheManifest)]);
        let stale = stale_cache_tags(
            &images,
            &read,
            &CacheTags::from_prefix("cache-"),
            &protected,
            NOW,
            30,
        );
        assert_eq!(stale.len(), 3);
    }

    #[test]
    fn gone_branches_lose_their_cache_existing_ones_never() {
        let protected = ProtectedBranches::new(parse_list("main"));
        let cache = Some(BUILDKIT_CACHE_CONFIG);
        let images = vec![
            image(1, &["cache-feature-a"], 1, cache),
            image(2, &["cache-feature-b"], 1, cache),
            image(3, &["cache-main"], 1, cache),
            image(5, &["cache-just-created"], 0, cache),
            image(
                4,
                &["cache-tools"],
                1,
                Some("application/vnd.oci.image.config.v1+json"),
            ),
        ];
        let existing: std::collections::HashSet<String> =
            ["cache-feature-a".to_string()].into_iter().collect();
        let gone = gone_branch_tags(
            &images,
            &HashMap::new(),
            &CacheTags::from_prefix("cache-"),
            &protected,
            &existing,
            NOW,
            DAY / 2,
        );
        let tags: Vec<&str> = gone.iter().map(|s| s.tag.as_str()).collect();
        // cache-just-created was pushed less than the minimum age ago: not judged gone yet.
        assert_eq!(tags, vec!["cache-feature-b"]);
    }

    #[test]
    fn a_pull_request_cache_is_not_a_gone_branch_but_ages_like_any_cache() {
        let templates = CacheTags::parse("cache-{branch},pr-{pr}-cache").unwrap();
        let protected = ProtectedBranches::new(parse_list("main"));
        let cache = Some(BUILDKIT_CACHE_CONFIG);
        let images = vec![
            image(1, &["pr-12-cache"], 40, cache),
            image(2, &["cache-gone"], 40, cache),
        ];
        // No branch exists: only the branch template's tag is a gone branch's.
        let none = std::collections::HashSet::new();
        let gone = gone_branch_tags(
            &images,
            &HashMap::new(),
            &templates,
            &protected,
            &none,
            NOW,
            0,
        );
        let tags: Vec<&str> = gone.iter().map(|s| s.tag.as_str()).collect();
        assert_eq!(tags, vec!["cache-gone"]);
        // STALE_CACHE_DAYS covers every template.
        let stale = stale_cache_tags(&images, &HashMap::new(), &templates, &protected, NOW, 30);
        assert_eq!(stale.len(), 2);
    }

    #[test]
    fn a_pull_request_not_open_loses_its_cache_once_old_enough() {
        let templates = CacheTags::parse("cache-{branch},pr-{pr}-cache").unwrap();
        let protected = ProtectedBranches::new(parse_list("main"));
        let cache = Some(BUILDKIT_CACHE_CONFIG);
        let mut young = image(4, &["pr-14-cache"], 0, cache);
        young.pushed_at = Some(NOW - 60);
        let images = vec![
            image(1, &["pr-12-cache"], 2, cache),
            image(2, &["pr-13-cache"], 2, cache),
            image(3, &["cache-gone"], 2, cache),
            young,
            image(5, &["pr-15-cache"], 2, None),
        ];
        let open = std::collections::HashSet::from(["pr-13-cache".to_string()]);
        let closed = closed_pull_request_tags(
            &images,
            &HashMap::new(),
            &templates,
            &protected,
            &open,
            NOW,
            3600,
        );
        // 13 is open, 14 was pushed a minute ago, 15 is not BuildKit cache, cache-gone is a
        // branch's (not this rule's).
        let tags: Vec<&str> = closed.iter().map(|s| s.tag.as_str()).collect();
        assert_eq!(tags, vec!["pr-12-cache"]);
        assert_eq!(closed[0].why, TagExpiry::PullRequestNotOpen);
        assert_eq!(closed[0].why.to_string(), "pull request no longer open");
    }

    #[test]
    fn boundary_and_unknown_age() {
        let protected = ProtectedBranches::new(parse_list("main"));
        let mut exactly = image(1, &["cache-a"], 30, Some(BUILDKIT_CACHE_CONFIG));
        assert!(stale_cache_tags(
            &[exactly.clone()],
            &HashMap::new(),
            &CacheTags::from_prefix("cache-"),
            &protected,
            NOW,
            30
        )
        .is_empty());
        exactly.pushed_at = None;
        assert!(stale_cache_tags(
            &[exactly],
            &HashMap::new(),
            &CacheTags::from_prefix("cache-"),
            &protected,
            NOW,
            1
        )
        .is_empty());
    }

    #[test]
    fn a_recent_pull_keeps_an_old_push_fresh() {
        let protected = ProtectedBranches::new(parse_list("main"));
        let cache = Some(BUILDKIT_CACHE_CONFIG);
        let mut imported = image(1, &["cache-stable-branch"], 90, cache);
        imported.last_pulled_at = Some(NOW - 2 * DAY);
        let mut abandoned = image(2, &["cache-abandoned"], 90, cache);
        abandoned.last_pulled_at = Some(NOW - 45 * DAY);
        // ECR had no pull time: push time alone decides.
        let never_pulled = image(3, &["cache-never-pulled"], 40, cache);
        // A pull time older than the push (clock skew, re-push) does not make it older.
        let mut repushed = image(4, &["cache-repushed"], 5, cache);
        repushed.last_pulled_at = Some(NOW - 60 * DAY);
        let images = [imported, abandoned, never_pulled, repushed];
        let stale = stale_cache_tags(
            &images,
            &HashMap::new(),
            &CacheTags::from_prefix("cache-"),
            &protected,
            NOW,
            30,
        );
        let tags: Vec<(&str, i64)> = stale.iter().map(|s| (s.tag.as_str(), s.age_days)).collect();
        assert_eq!(
            tags,
            vec![("cache-abandoned", 45), ("cache-never-pulled", 40)]
        );
        assert!(stale
            .iter()
            .all(|s| s.why == TagExpiry::NotUsed { days: 30 }));
    }
}
