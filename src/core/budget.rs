//! A cache budget per repository (`CACHE_BUDGET`): a repository's cache footprint is the size of
//! the distinct blobs its BuildKit cache manifests reference (ECR stores a blob once per
//! repository, so summed image sizes overstate it), and a sweep over budget evicts whole branch
//! caches, least recently used first, until the footprint is within it. Pure: the sweep reads the
//! blob lists and removes the tags, re-checking each at the last moment.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use thiserror::Error;

use super::branch::ProtectedBranches;
use super::cache_tags::CacheTags;
use super::glob::{any_matches, Glob};
use super::manifest::{Blob, ManifestKind};
use super::plan::{classify, ImageRecord, ImageStatus};

const UNITS: [(&str, u64); 5] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("B", 1),
];

/// Why a `CACHE_BUDGET` value is refused (a start-up error: a budget half understood would evict
/// by the wrong size).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BudgetError {
    #[error("{0:?} is not a size: write a number and a binary unit (B, KiB, MiB, GiB or TiB), e.g. 20GiB")]
    NotASize(String),
    #[error("{0:?} uses a decimal unit: write binary units (KiB, MiB, GiB, TiB), as ECR bills")]
    DecimalUnit(String),
    #[error("{0:?} is larger than 16 EiB")]
    TooLarge(String),
    #[error("{0:?} is not `glob=size` (e.g. team-a/*=50GiB,*=20GiB)")]
    NotARule(String),
    #[error("a budget of 0 would evict every cache; leave CACHE_BUDGET empty for no budget")]
    Zero,
}

/// Parses `20GiB`, `1.5TiB`, `512 MiB` or `1000B` (binary units; a unit is required).
pub fn parse_size(text: &str) -> Result<u64, BudgetError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.trim();
    let Some(&(_, multiplier)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(if ["KB", "MB", "GB", "TB", "kB"].contains(&unit) {
            BudgetError::DecimalUnit(text.to_owned())
        } else {
            BudgetError::NotASize(text.to_owned())
        });
    };
    let not_a_size = || BudgetError::NotASize(text.to_owned());
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(not_a_size());
    }
    let bytes = match number.split_once('.') {
        None => number
            .parse::<u64>()
            .map_err(|_| BudgetError::TooLarge(text.to_owned()))?
            .checked_mul(multiplier),
        Some((whole, fraction)) => {
            if fraction.contains('.') || fraction.len() > 6 {
                return Err(not_a_size());
            }
            // Exact in integers: whole * m + fraction * m / 10^digits (truncated to a byte).
            let scale = 10u128.pow(fraction.len() as u32);
            let whole: u128 = whole.parse().map_err(|_| not_a_size())?;
            let fraction: u128 = fraction.parse().map_err(|_| not_a_size())?;
            let total = whole * u128::from(multiplier) + fraction * u128::from(multiplier) / scale;
            u64::try_from(total).ok()
        }
    };
    bytes.ok_or_else(|| BudgetError::TooLarge(text.to_owned()))
}

/// Human-readable size in binary units (`23.4 GiB`).
pub fn human_bytes(bytes: u64) -> String {
    match UNITS.iter().find(|(_, m)| bytes >= *m && *m > 1) {
        Some((unit, m)) => format!("{:.1} {unit}", bytes as f64 / *m as f64),
        None => format!("{bytes} B"),
    }
}

/// `CACHE_BUDGET`: one size for every repository, or `glob=size` rules (the first matching rule
/// wins; a repository no rule matches has no budget).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheBudget {
    rules: Vec<(Glob, u64)>,
}

impl CacheBudget {
    /// Empty text: no budget.
    pub fn parse(text: &str) -> Result<Self, BudgetError> {
        let mut rules = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (glob, size) = match part.split_once('=') {
                Some((glob, size)) if !glob.trim().is_empty() => (glob.trim(), size),
                Some(_) => return Err(BudgetError::NotARule(part.to_owned())),
                None if text.contains('=') => return Err(BudgetError::NotARule(part.to_owned())),
                None => ("*", part),
            };
            let bytes = parse_size(size)?;
            if bytes == 0 {
                return Err(BudgetError::Zero);
            }
            rules.push((Glob::new(glob), bytes));
        }
        Ok(CacheBudget { rules })
    }

    /// The same size for every repository (`report --budget`).
    pub fn everywhere(bytes: u64) -> Self {
        CacheBudget {
            rules: vec![(Glob::new("*"), bytes)],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn for_repository(&self, repository: &str) -> Option<u64> {
        self.rules
            .iter()
            .find(|(glob, _)| glob.matches(repository))
            .map(|(_, bytes)| *bytes)
    }

    /// Back to the configuration's words (`team-a/*=50.0 GiB,*=20.0 GiB`), for the CLI's rules line.
    pub fn describe(&self) -> String {
        self.rules
            .iter()
            .map(|(glob, bytes)| format!("{}={}", glob.as_str(), human_bytes(*bytes)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Size of the distinct blobs referenced by `manifests` (digests looked up in `blobs`; a digest
/// without a blob list adds nothing).
pub fn unique_bytes<'a>(
    manifests: impl IntoIterator<Item = &'a String>,
    blobs: &HashMap<String, Vec<Blob>>,
) -> u64 {
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for digest in manifests {
        for blob in blobs.get(digest).into_iter().flatten() {
            seen.insert(&blob.digest, blob.size);
        }
    }
    seen.values().fold(0u64, |s, b| s.saturating_add(*b))
}

/// The BuildKit cache manifests of a listing (any status, tagged or not): what the footprint
/// counts. Only what the classifier settles counts (an unread manifest is not known to be cache).
pub fn cache_manifests<'a>(
    images: &'a [ImageRecord],
    kinds: &HashMap<String, ManifestKind>,
) -> Vec<&'a String> {
    images
        .iter()
        .filter(|i| classify(i, kinds.get(&i.digest)).is_ok())
        .map(|i| &i.digest)
        .collect()
}

/// Why a branch cache over budget is not evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetHold {
    /// A protected branch's cache (`PROTECTED_BRANCHES`).
    Protected,
    /// Matches `KEEP_TAGS`.
    KeepTag,
    /// Pushed less than `CACHE_BUDGET_MIN_AGE_MINUTES` ago (or at an unknown time).
    TooYoung,
    /// The image also carries a tag that is not a cache tag: removing the cache tags would not
    /// free it.
    OtherTag,
    /// An index references it: its last tag cannot go (rule 3).
    ReferencedByIndex,
    /// Not ACTIVE (rule 8).
    NotActive,
}

/// One branch cache to evict: every cache tag of one manifest (the last removal deletes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Eviction {
    pub digest: String,
    pub tags: Vec<String>,
    /// When a build last pushed or pulled it: the LRU key.
    pub used_at: i64,
    /// How much the cache footprint shrinks by this eviction, after the ones before it.
    pub footprint_freed: u64,
    /// Storage it frees (blobs no remaining manifest of any kind references), after the ones
    /// before it.
    pub storage_freed: u64,
}

/// What the budget makes of one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BudgetPlan {
    pub budget_bytes: u64,
    /// The cache footprint after this run's other removals, before evictions.
    pub footprint_bytes: u64,
    pub footprint_after: u64,
    /// Least recently used first.
    pub evict: Vec<Eviction>,
    /// Storage the evictions free in all.
    pub storage_freed: u64,
    /// Still over budget after every eviction allowed: protected, kept or young caches alone
    /// exceed it, or the cap stopped the evictions.
    pub unreachable: bool,
    /// The deletion cap stopped the evictions.
    pub capped: bool,
    /// Cache tags over budget that may not be evicted, and why.
    pub held: BTreeMap<String, BudgetHold>,
    /// Cache manifests whose blob list is unknown (archived, unreadable): not in the footprint.
    pub unknown_blob_lists: usize,
}

/// Everything [`plan_budget`] decides from.
#[derive(Debug, Clone, Copy)]
pub struct BudgetInput<'a> {
    pub images: &'a [ImageRecord],
    pub kinds: &'a HashMap<String, ManifestKind>,
    /// Blob lists of the single manifests read (every ACTIVE one, for exact numbers).
    pub blobs: &'a HashMap<String, Vec<Blob>>,
    /// Digest → the index referencing it.
    pub referenced: &'a BTreeMap<String, String>,
    /// Manifests this run deletes (or would) before the budget is judged.
    pub going: &'a HashSet<String>,
    pub cache_tags: &'a CacheTags,
    pub protected: &'a ProtectedBranches,
    pub keep_tags: &'a [Glob],
    pub budget_bytes: u64,
    pub min_age_secs: i64,
    pub now_secs: i64,
    /// Tag removals allowed in this run.
    pub cap: usize,
}

/// Plans the evictions that bring the cache footprint within budget: least recently used first
/// (used = the later of last pull and push; ties by push time, then digest), whole caches only,
/// never a protected, kept or young cache. Evictions that would not shrink the footprint (their
/// blobs are all shared with caches that stay) are not made.
pub fn plan_budget(input: &BudgetInput<'_>) -> BudgetPlan {
    let BudgetInput {
        images,
        kinds,
        blobs,
        going,
        ..
    } = *input;
    let remaining: Vec<&ImageRecord> = images
        .iter()
        .filter(|i| !going.contains(&i.digest))
        .collect();
    let cache: HashSet<&String> = cache_manifests(images, kinds)
        .into_iter()
        .filter(|d| !going.contains(*d))
        .collect();
    // Per blob: how many remaining cache manifests, and how many remaining manifests of any kind,
    // reference it.
    let mut cache_refs: HashMap<&str, (u64, usize)> = HashMap::new();
    let mut all_refs: HashMap<&str, usize> = HashMap::new();
    let mut unknown = 0;
    for image in &remaining {
        let Some(list) = blobs.get(&image.digest) else {
            unknown += usize::from(cache.contains(&image.digest));
            continue;
        };
        let distinct: HashSet<&Blob> = list.iter().collect();
        for blob in distinct {
            *all_refs.entry(&blob.digest).or_default() += 1;
            if cache.contains(&image.digest) {
                cache_refs.entry(&blob.digest).or_insert((blob.size, 0)).1 += 1;
            }
        }
    }
    let footprint = cache_refs
        .values()
        .fold(0u64, |s, (size, _)| s.saturating_add(*size));
    let mut plan = BudgetPlan {
        budget_bytes: input.budget_bytes,
        footprint_bytes: footprint,
        footprint_after: footprint,
        unknown_blob_lists: unknown,
        ..BudgetPlan::default()
    };
    if footprint <= input.budget_bytes {
        return plan;
    }

    let mut candidates: Vec<(&ImageRecord, Vec<String>)> = Vec::new();
    for image in remaining.iter().filter(|i| cache.contains(&i.digest)) {
        let cache_tags: Vec<String> = image
            .tags
            .iter()
            .filter(|t| input.cache_tags.is_cache_tag(t))
            .cloned()
            .collect();
        if cache_tags.is_empty() {
            continue; // untagged cache: the prune's to judge, not the budget's
        }
        match hold(input, image, &cache_tags) {
            Some(why) => {
                for tag in cache_tags {
                    plan.held.insert(tag, why);
                }
            }
            None => candidates.push((image, cache_tags)),
        }
    }
    // Known push time: `hold` refuses images without one.
    let used = |i: &ImageRecord| i.last_used_at().unwrap_or(i64::MIN);
    candidates.sort_by(|(a, _), (b, _)| {
        used(a)
            .cmp(&used(b))
            .then_with(|| a.pushed_at.cmp(&b.pushed_at))
            .then_with(|| a.digest.cmp(&b.digest))
    });

    // The greedy pass: least recently used first, while over budget and within the cap (which
    // counts tags: each is one removal).
    let (cache_start, all_start) = (cache_refs.clone(), all_refs.clone());
    let mut now_footprint = footprint;
    let mut chosen: Vec<(&ImageRecord, Vec<String>)> = Vec::new();
    let mut tags_chosen = 0;
    for (image, tags) in candidates {
        if now_footprint <= input.budget_bytes {
            break;
        }
        if tags_chosen + tags.len() > input.cap {
            plan.capped = true;
            break;
        }
        let (footprint_freed, _) = release(image, blobs, &mut cache_refs, &mut all_refs);
        now_footprint = now_footprint.saturating_sub(footprint_freed);
        tags_chosen += tags.len();
        chosen.push((image, tags));
    }
    // An eviction whose every blob a cache that stays still references frees nothing: it only
    // costs a rebuild. Dropped until none is left (a dropped one stays, and may cover another).
    loop {
        let evicting: HashSet<&str> = chosen.iter().map(|(c, _)| c.digest.as_str()).collect();
        let staying: HashSet<&str> = remaining
            .iter()
            .filter(|i| cache.contains(&i.digest))
            .filter(|i| !evicting.contains(i.digest.as_str()))
            .flat_map(|i| blobs.get(&i.digest).into_iter().flatten())
            .map(|b| b.digest.as_str())
            .collect();
        let before = chosen.len();
        chosen.retain(|(image, _)| {
            !blobs
                .get(&image.digest)
                .into_iter()
                .flatten()
                .all(|b| staying.contains(b.digest.as_str()))
        });
        if chosen.len() == before {
            break;
        }
    }
    // What each eviction frees, after the ones before it.
    let (mut cache_refs, mut all_refs) = (cache_start, all_start);
    for (image, tags) in chosen {
        let (footprint_freed, storage_freed) =
            release(image, blobs, &mut cache_refs, &mut all_refs);
        plan.evict.push(Eviction {
            digest: image.digest.clone(),
            tags,
            used_at: used(image),
            footprint_freed,
            storage_freed,
        });
    }
    plan.footprint_after = footprint.saturating_sub(
        plan.evict
            .iter()
            .fold(0u64, |s, e| s.saturating_add(e.footprint_freed)),
    );
    plan.storage_freed = plan
        .evict
        .iter()
        .fold(0u64, |s, e| s.saturating_add(e.storage_freed));
    plan.unreachable = plan.footprint_after > input.budget_bytes;
    plan
}

/// Takes `image`'s blobs out of the reference counts: (cache footprint freed, storage freed).
fn release<'a>(
    image: &ImageRecord,
    blobs: &'a HashMap<String, Vec<Blob>>,
    cache_refs: &mut HashMap<&'a str, (u64, usize)>,
    all_refs: &mut HashMap<&'a str, usize>,
) -> (u64, u64) {
    let mut footprint_freed = 0u64;
    let mut storage_freed = 0u64;
    let list: HashSet<&Blob> = blobs.get(&image.digest).into_iter().flatten().collect();
    for blob in list {
        if let Some((size, refs)) = cache_refs.get_mut(blob.digest.as_str()) {
            *refs -= 1;
            if *refs == 0 {
                footprint_freed = footprint_freed.saturating_add(*size);
            }
        }
        if let Some(refs) = all_refs.get_mut(blob.digest.as_str()) {
            *refs -= 1;
            if *refs == 0 {
                storage_freed = storage_freed.saturating_add(blob.size);
            }
        }
    }
    (footprint_freed, storage_freed)
}

/// The footprint and the storage freed once `evicted` (digests) are gone as well as
/// `input.going`: what a sweep really achieved when some planned evictions were kept at the last
/// look-up, or not confirmed.
pub fn after_evictions(input: &BudgetInput<'_>, evicted: &HashSet<String>) -> (u64, u64) {
    let staying: Vec<&String> = cache_manifests(input.images, input.kinds)
        .into_iter()
        .filter(|d| !input.going.contains(*d) && !evicted.contains(*d))
        .collect();
    let going: Vec<String> = input.going.iter().cloned().collect();
    let both: Vec<String> = going.iter().chain(evicted).cloned().collect();
    let freed = super::reclaim::reclaimed_bytes(&both, input.blobs)
        .saturating_sub(super::reclaim::reclaimed_bytes(&going, input.blobs));
    (unique_bytes(staying, input.blobs), freed)
}

fn hold(input: &BudgetInput<'_>, image: &ImageRecord, cache_tags: &[String]) -> Option<BudgetHold> {
    if image.status != ImageStatus::Active {
        return Some(BudgetHold::NotActive);
    }
    if cache_tags
        .iter()
        .any(|t| input.cache_tags.protected_by(input.protected, t))
    {
        return Some(BudgetHold::Protected);
    }
    if cache_tags.iter().any(|t| any_matches(input.keep_tags, t)) {
        return Some(BudgetHold::KeepTag);
    }
    if image.tags.len() != cache_tags.len() {
        return Some(BudgetHold::OtherTag);
    }
    if input.referenced.contains_key(&image.digest) {
        return Some(BudgetHold::ReferencedByIndex);
    }
    match image.pushed_at {
        Some(pushed) if input.now_secs - pushed >= input.min_age_secs => None,
        _ => Some(BudgetHold::TooYoung),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::glob::parse_list;
    use crate::core::manifest::{BUILDKIT_CACHE_CONFIG, OCI_MANIFEST};
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;
    const MIB: u64 = 1 << 20;

    #[test]
    fn sizes_take_binary_units_only() {
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size(" 512 MiB "), Ok(512 << 20));
        assert_eq!(parse_size("1.5TiB"), Ok(3 << 39));
        assert_eq!(parse_size("1000B"), Ok(1000));
        assert_eq!(parse_size("0.5KiB"), Ok(512));
        assert!(matches!(
            parse_size("20GB"),
            Err(BudgetError::DecimalUnit(_))
        ));
        for bad in [
            "20", "GiB", "20 gib", "1..5GiB", ".5GiB", "5.GiB", "-1GiB", "20GiB x", "",
        ] {
            assert!(
                matches!(parse_size(bad), Err(BudgetError::NotASize(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_size("99999999999TiB"),
            Err(BudgetError::TooLarge(_))
        ));
    }

    #[test]
    fn budgets_are_one_size_or_first_matching_glob() {
        let one = CacheBudget::parse("20GiB").unwrap();
        assert_eq!(one.for_repository("any/thing"), Some(20 << 30));
        let rules = CacheBudget::parse("team-a/*=50GiB, *=20GiB").unwrap();
        assert_eq!(rules.for_repository("team-a/api"), Some(50 << 30));
        assert_eq!(rules.for_repository("team-b/api"), Some(20 << 30));
        let some = CacheBudget::parse("team-a/*=50GiB").unwrap();
        assert_eq!(some.for_repository("team-b/api"), None);
        assert!(CacheBudget::parse("").unwrap().is_empty());
        assert_eq!(
            CacheBudget::parse("team-a/*=50GiB,20GiB"),
            Err(BudgetError::NotARule("20GiB".into()))
        );
        assert_eq!(
            CacheBudget::parse("=5GiB"),
            Err(BudgetError::NotARule("=5GiB".into()))
        );
        assert_eq!(CacheBudget::parse("0GiB"), Err(BudgetError::Zero));
        assert!(CacheBudget::parse("*=lots").is_err());
        assert_eq!(rules.describe(), "team-a/*=50.0 GiB,*=20.0 GiB");
    }

    fn blob(name: &str, size: u64) -> Blob {
        Blob {
            digest: format!("sha256:{name}"),
            size,
        }
    }

    fn cache(
        n: u8,
        tags: &[&str],
        pushed_hours_ago: i64,
        pulled_hours_ago: Option<i64>,
    ) -> ImageRecord {
        ImageRecord {
            digest: format!("sha256:{n:064x}"),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at: Some(NOW - pushed_hours_ago * HOUR),
            last_pulled_at: pulled_hours_ago.map(|h| NOW - h * HOUR),
            size_bytes: Some(1),
            manifest_media_type: Some(OCI_MANIFEST.into()),
            artifact_media_type: Some(BUILDKIT_CACHE_CONFIG.into()),
            ..Default::default()
        }
    }

    struct Repo {
        images: Vec<ImageRecord>,
        blobs: HashMap<String, Vec<Blob>>,
        kinds: HashMap<String, ManifestKind>,
        referenced: BTreeMap<String, String>,
        going: HashSet<String>,
        tags: CacheTags,
        protected: ProtectedBranches,
        keep: Vec<Glob>,
    }

    impl Repo {
        fn new() -> Self {
            Repo {
                images: vec![],
                blobs: HashMap::new(),
                kinds: HashMap::new(),
                referenced: BTreeMap::new(),
                going: HashSet::new(),
                tags: CacheTags::from_prefix("cache-"),
                protected: ProtectedBranches::new(parse_list("main")),
                keep: parse_list("cache-keep-*"),
            }
        }

        fn add(&mut self, image: ImageRecord, blobs: &[Blob]) -> &mut Self {
            self.blobs.insert(image.digest.clone(), blobs.to_vec());
            self.images.push(image);
            self
        }

        fn plan(&self, budget: u64, cap: usize) -> BudgetPlan {
            plan_budget(&BudgetInput {
                images: &self.images,
                kinds: &self.kinds,
                blobs: &self.blobs,
                referenced: &self.referenced,
                going: &self.going,
                cache_tags: &self.tags,
                protected: &self.protected,
                keep_tags: &self.keep,
                budget_bytes: budget,
                min_age_secs: HOUR,
                now_secs: NOW,
                cap,
            })
        }
    }

    fn evicted(plan: &BudgetPlan) -> Vec<&str> {
        plan.evict
            .iter()
            .flat_map(|e| e.tags.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn least_recently_used_goes_first_until_within_budget() {
        let mut repo = Repo::new();
        repo.add(cache(1, &["cache-a"], 100, Some(2)), &[blob("a", 10 * MIB)])
            .add(cache(2, &["cache-b"], 50, None), &[blob("b", 10 * MIB)])
            .add(cache(3, &["cache-c"], 90, Some(30)), &[blob("c", 10 * MIB)])
            .add(cache(4, &["cache-main"], 500, None), &[blob("m", 10 * MIB)]);
        // 40 MiB against 25: c (used 30 h ago) then b (50 h ago) go... b is older: b first.
        let plan = repo.plan(25 * MIB, 100);
        assert_eq!(evicted(&plan), ["cache-b", "cache-c"]);
        assert_eq!(plan.footprint_bytes, 40 * MIB);
        assert_eq!(plan.footprint_after, 20 * MIB);
        assert!(!plan.unreachable);
        // A pull counts as use: a is last, though pushed first. main is protected.
        assert_eq!(plan.held.get("cache-main"), Some(&BudgetHold::Protected));
        // Within budget: nothing.
        assert!(repo.plan(40 * MIB, 100).evict.is_empty());
    }

    #[test]
    fn protected_kept_young_and_shared_caches_are_never_evicted() {
        let mut repo = Repo::new();
        repo.add(
            cache(1, &["cache-main"], 500, None),
            &[blob("m", 100 * MIB)],
        )
        .add(
            cache(2, &["cache-keep-x"], 400, None),
            &[blob("k", 10 * MIB)],
        )
        .add(cache(3, &["cache-new"], 0, None), &[blob("n", 10 * MIB)])
        .add(
            cache(4, &["cache-rel", "v1"], 300, None),
            &[blob("r", 10 * MIB)],
        )
        .add(cache(5, &["cache-idx"], 300, None), &[blob("i", 10 * MIB)])
        .add(cache(6, &["cache-old"], 300, None), &[blob("o", 10 * MIB)]);
        repo.referenced
            .insert(format!("sha256:{:064x}", 5), "sha256:index".into());
        let plan = repo.plan(50 * MIB, 100);
        assert_eq!(evicted(&plan), ["cache-old"]);
        assert!(
            plan.unreachable,
            "main alone is over budget: said, not forced"
        );
        assert_eq!(plan.held["cache-main"], BudgetHold::Protected);
        assert_eq!(plan.held["cache-keep-x"], BudgetHold::KeepTag);
        assert_eq!(plan.held["cache-new"], BudgetHold::TooYoung);
        assert_eq!(plan.held["cache-rel"], BudgetHold::OtherTag);
        assert_eq!(plan.held["cache-idx"], BudgetHold::ReferencedByIndex);
    }

    #[test]
    fn a_cache_sharing_every_blob_with_one_that_stays_is_not_evicted_for_nothing() {
        let mut repo = Repo::new();
        let shared = [blob("base", 30 * MIB)];
        repo.add(cache(1, &["cache-main"], 500, None), &shared)
            .add(cache(2, &["cache-copy"], 400, None), &shared);
        let plan = repo.plan(10 * MIB, 100);
        assert!(plan.evict.is_empty(), "evicting the copy frees nothing");
        assert!(plan.unreachable);
    }

    #[test]
    fn shared_layers_free_only_when_their_last_cache_goes() {
        let mut repo = Repo::new();
        repo.add(
            cache(1, &["cache-a"], 300, None),
            &[blob("base", 50 * MIB), blob("a", MIB)],
        )
        .add(
            cache(2, &["cache-b"], 200, None),
            &[blob("base", 50 * MIB), blob("b", MIB)],
        );
        let plan = repo.plan(10 * MIB, 100);
        assert_eq!(evicted(&plan), ["cache-a", "cache-b"]);
        assert_eq!(plan.evict[0].footprint_freed, MIB);
        assert_eq!(plan.evict[1].footprint_freed, 51 * MIB);
        assert_eq!(plan.footprint_after, 0);
    }

    #[test]
    fn an_application_image_sharing_a_layer_keeps_it_stored() {
        let mut repo = Repo::new();
        repo.add(cache(1, &["cache-a"], 300, None), &[blob("base", 50 * MIB)]);
        let mut app = cache(2, &["v1"], 300, None);
        app.artifact_media_type = Some("application/vnd.oci.image.config.v1+json".into());
        repo.add(app, &[blob("base", 50 * MIB)]);
        let plan = repo.plan(10 * MIB, 100);
        assert_eq!(evicted(&plan), ["cache-a"]);
        assert_eq!(plan.footprint_bytes, 50 * MIB, "the image is not cache");
        assert_eq!(plan.evict[0].footprint_freed, 50 * MIB);
        assert_eq!(
            plan.storage_freed, 0,
            "the image still references the layer"
        );
    }

    #[test]
    fn an_eviction_that_frees_nothing_is_not_made_even_before_one_that_does() {
        // a (least recently used) shares its only blob with main, which stays: evicting it frees
        // nothing, wherever it falls in the order.
        let mut repo = Repo::new();
        repo.add(cache(1, &["cache-main"], 500, None), &[blob("x", 10 * MIB)])
            .add(cache(2, &["cache-a"], 400, None), &[blob("x", 10 * MIB)])
            .add(cache(3, &["cache-b"], 300, None), &[blob("y", 10 * MIB)]);
        let plan = repo.plan(10 * MIB, 100);
        assert_eq!(evicted(&plan), ["cache-b"]);
        assert_eq!(plan.footprint_after, 10 * MIB);
        assert!(!plan.unreachable);
    }

    #[test]
    fn the_cap_counts_tags_and_never_splits_a_cache() {
        let mut repo = Repo::new();
        repo.add(
            cache(1, &["cache-a", "cache-a2"], 300, None),
            &[blob("a", 10 * MIB)],
        );
        let plan = repo.plan(MIB, 1);
        assert!(plan.evict.is_empty() && plan.capped);
        assert_eq!(evicted(&repo.plan(MIB, 2)), ["cache-a", "cache-a2"]);
    }

    #[test]
    fn what_a_sweep_achieved_is_counted_from_what_went() {
        let mut repo = Repo::new();
        repo.add(
            cache(1, &["cache-a"], 300, None),
            &[blob("a", 10 * MIB), blob("base", MIB)],
        )
        .add(
            cache(2, &["cache-b"], 200, None),
            &[blob("b", 10 * MIB), blob("base", MIB)],
        );
        let input = BudgetInput {
            images: &repo.images,
            kinds: &repo.kinds,
            blobs: &repo.blobs,
            referenced: &repo.referenced,
            going: &repo.going,
            cache_tags: &repo.tags,
            protected: &repo.protected,
            keep_tags: &repo.keep,
            budget_bytes: MIB,
            min_age_secs: HOUR,
            now_secs: NOW,
            cap: 100,
        };
        let a = format!("sha256:{:064x}", 1);
        assert_eq!(after_evictions(&input, &HashSet::new()), (21 * MIB, 0));
        assert_eq!(
            after_evictions(&input, &HashSet::from([a.clone()])),
            (11 * MIB, 10 * MIB)
        );
        let both = HashSet::from([a, format!("sha256:{:064x}", 2)]);
        assert_eq!(after_evictions(&input, &both), (0, 21 * MIB));
    }

    #[test]
    fn the_cap_stops_evictions_and_says_so() {
        let mut repo = Repo::new();
        for n in 1..=5u8 {
            let tag = format!("cache-{n}");
            repo.add(
                cache(n, &[&tag], 100 - i64::from(n), None),
                &[blob(&tag, 10 * MIB)],
            );
        }
        let plan = repo.plan(10 * MIB, 2);
        assert_eq!(evicted(&plan), ["cache-1", "cache-2"]);
        assert!(plan.capped && plan.unreachable);
    }

    #[test]
    fn what_this_run_deletes_anyway_is_not_in_the_footprint() {
        let mut repo = Repo::new();
        repo.add(
            cache(1, &[], 300, None),
            &[blob("stale", 50 * MIB), blob("shared", 5 * MIB)],
        )
        .add(
            cache(2, &["cache-a"], 300, None),
            &[blob("a", 5 * MIB), blob("shared", 5 * MIB)],
        );
        repo.going.insert(format!("sha256:{:064x}", 1));
        let plan = repo.plan(20 * MIB, 100);
        assert_eq!(plan.footprint_bytes, 10 * MIB);
        assert!(plan.evict.is_empty());
        // Over a smaller budget, evicting a frees the blob it shared with the stale manifest too:
        // that one goes in this run anyway.
        let plan = repo.plan(MIB, 100);
        assert_eq!(evicted(&plan), ["cache-a"]);
        assert_eq!(plan.storage_freed, 10 * MIB);
    }

    #[test]
    fn a_cache_whose_blobs_are_unknown_is_counted_apart() {
        let mut repo = Repo::new();
        repo.add(cache(1, &["cache-a"], 300, None), &[blob("a", 50 * MIB)]);
        let mut archived = cache(2, &["cache-b"], 300, None);
        archived.status = ImageStatus::Archived;
        repo.images.push(archived);
        let plan = repo.plan(10 * MIB, 100);
        assert_eq!(plan.unknown_blob_lists, 1);
        assert_eq!(evicted(&plan), ["cache-a"]);
    }

    /// (number, tagged, pushed hours ago, blob ids) per manifest.
    type Manifests = Vec<(u8, bool, i64, Vec<u8>)>;

    fn arbitrary_repo() -> impl Strategy<Value = (Manifests, u64)> {
        // (tag?, pushed hours ago, blob ids) per manifest; blobs 0..12 of size (id+1) MiB.
        let manifest = (
            any::<bool>(),
            0i64..400,
            proptest::collection::vec(0u8..12, 0..5),
        );
        (
            proptest::collection::vec(manifest, 1..10).prop_map(|ms| {
                ms.into_iter()
                    .enumerate()
                    .map(|(n, (tagged, age, blobs))| (n as u8, tagged, age, blobs))
                    .collect()
            }),
            0u64..100,
        )
    }

    fn build(manifests: &Manifests) -> Repo {
        let mut repo = Repo::new();
        for (n, tagged, age, ids) in manifests {
            let tag = format!("cache-{n}");
            let tags: Vec<&str> = if *tagged { vec![tag.as_str()] } else { vec![] };
            let blobs: Vec<Blob> = ids
                .iter()
                .map(|id| blob(&id.to_string(), (u64::from(*id) + 1) * MIB))
                .collect();
            repo.add(cache(*n, &tags, *age, None), &blobs);
        }
        repo
    }

    proptest! {
        #[test]
        fn freeing_never_exceeds_the_footprint_nor_counts_a_referenced_blob(
            (manifests, budget_mib) in arbitrary_repo()
        ) {
            let repo = build(&manifests);
            let plan = repo.plan(budget_mib * MIB, 100);
            let all: Vec<&String> = repo.images.iter().map(|i| &i.digest).collect();
            prop_assert_eq!(plan.footprint_bytes, unique_bytes(all, &repo.blobs));
            let freed: u64 = plan.evict.iter().map(|e| e.footprint_freed).sum();
            prop_assert!(freed <= plan.footprint_bytes);
            prop_assert_eq!(plan.footprint_after, plan.footprint_bytes - freed);
            // Exactly the blobs no remaining manifest references.
            let evicted: HashSet<&String> = plan.evict.iter().map(|e| &e.digest).collect();
            let remaining: Vec<&String> = repo.images.iter().map(|i| &i.digest)
                .filter(|d| !evicted.contains(d)).collect();
            prop_assert_eq!(plan.footprint_after, unique_bytes(remaining, &repo.blobs));
            let gone: Vec<String> = evicted.iter().map(|d| (*d).clone()).collect();
            prop_assert_eq!(plan.storage_freed, crate::core::reclaim::reclaimed_bytes(&gone, &repo.blobs));
            // Whole caches, LRU order, never a young one, and only while over budget.
            for pair in plan.evict.windows(2) {
                prop_assert!(pair[0].used_at <= pair[1].used_at);
            }
            for e in &plan.evict {
                prop_assert!(NOW - e.used_at >= HOUR);
            }
            if !plan.unreachable {
                prop_assert!(plan.footprint_after <= plan.budget_bytes);
                if let Some((last, before)) = plan.evict.split_last() {
                    let before_last = plan.footprint_bytes
                        - before.iter().map(|e| e.footprint_freed).sum::<u64>();
                    prop_assert!(before_last > plan.budget_bytes, "evicted {} past the budget", last.digest);
                }
            }
        }

        #[test]
        fn the_order_of_deletion_does_not_change_what_is_freed(
            (manifests, _) in arbitrary_repo(), seed in any::<u64>()
        ) {
            let repo = build(&manifests);
            let mut gone: Vec<String> = repo.images.iter().map(|i| i.digest.clone())
                .filter(|d| d.as_bytes()[d.len() - 1] % 2 == (seed % 2) as u8).collect();
            let forward = crate::core::reclaim::reclaimed_bytes(&gone, &repo.blobs);
            gone.reverse();
            prop_assert_eq!(forward, crate::core::reclaim::reclaimed_bytes(&gone, &repo.blobs));
            // One at a time, each against what is left, adds up to the same.
            let mut left = repo.blobs.clone();
            let mut stepwise = 0;
            for d in &gone {
                stepwise += crate::core::reclaim::reclaimed_bytes(std::slice::from_ref(d), &left);
                left.remove(d);
            }
            prop_assert_eq!(forward, stepwise);
        }
    }
}
