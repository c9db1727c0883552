//! Pruner configuration from the environment (DESIGN.md §4), validated once at init.

use thiserror::Error;

use crate::app::sweep::SweepSettings;
use crate::core::branch::ProtectedBranches;
use crate::core::cache_tags::CacheTags;
use crate::core::glob::{parse_list, Glob};
use crate::core::repository_map::RepositoryMap;
use crate::core::trigger::TriggerRules;

pub const DEFAULT_CACHE_TAG_PREFIX: &str = "cache-";
pub const DEFAULT_PROTECTED_BRANCHES: &str = "main,master";
pub const DEFAULT_MAX_DELETIONS: usize = 1000;
pub const DEFAULT_GONE_BRANCH_MIN_AGE_HOURS: u32 = 24;
pub const DEFAULT_CACHE_BUDGET_MIN_AGE_MINUTES: u32 = 60;
/// Far above any sane batch, low enough that a typo cannot turn into an unbounded run.
const MAX_DELETIONS_LIMIT: usize = 100_000;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid {variable}={value:?}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub problem: String,
}

fn invalid(variable: &'static str, value: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        value: value.to_owned(),
        problem: problem.into(),
    }
}

/// `true`/`false` (any case); unset is false.
fn boolean(value: Option<String>, variable: &'static str) -> Result<bool, ConfigError> {
    match value {
        None => Ok(false),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid(variable, &v, "must be true or false")),
        },
    }
}

/// A whole number in `range`, or None when unset; `what` completes "must be a whole number ...".
fn bounded<T>(
    value: Option<String>,
    variable: &'static str,
    range: std::ops::RangeInclusive<T>,
    what: &str,
) -> Result<Option<T>, ConfigError>
where
    T: std::str::FromStr + PartialOrd,
{
    let Some(v) = value else { return Ok(None) };
    match v.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(invalid(
            variable,
            &v,
            format!("must be a whole number {what}"),
        )),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub cache_tag_prefix: String,
    /// The cache tags (`CACHE_TAG_TEMPLATES`, else `<CACHE_TAG_PREFIX>{branch}`).
    pub cache_tags: CacheTags,
    /// A merged merge group's cache becomes its base branch's (`PROMOTE_MERGED_GROUP_CACHE`).
    pub promote_merged_groups: bool,
    pub protected_branches: ProtectedBranches,
    pub dry_run: bool,
    pub repository_map: RepositoryMap,
    pub max_deletions: usize,
    /// Repositories the scheduled sweep covers (`SWEEP_REPOSITORIES`); empty: no sweep.
    pub sweep_repositories: Vec<Glob>,
    /// Remove cache tags of unprotected branches not pushed for this many days (`STALE_CACHE_DAYS`).
    pub stale_cache_days: Option<u32>,
    /// Tags never removed by any path (`KEEP_TAGS`, comma list of globs): keep rules win.
    pub keep_tags: Vec<Glob>,
    /// The gone-branch sweep only judges tags whose image is at least this old
    /// (`GONE_BRANCH_MIN_AGE_HOURS`, default 24).
    pub gone_branch_min_age_hours: u32,
    /// Cache footprint allowed per repository (`CACHE_BUDGET`); empty: no budget.
    pub cache_budget: crate::core::budget::CacheBudget,
    /// A cache pushed less than this long ago is never evicted for the budget
    /// (`CACHE_BUDGET_MIN_AGE_MINUTES`, default 60).
    pub cache_budget_min_age_minutes: u32,
    /// The queue a scheduled sweep fans out to, one message per repository (`SWEEP_QUEUE_URL`);
    /// unset: the scheduled event sweeps inline.
    pub sweep_queue_url: Option<String>,
    /// CloudWatch namespace of the embedded metrics (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// `METRICS_PER_REPOSITORY` (default true): one metric series per repository, or one for all.
    pub metrics_per_repository: bool,
    /// Also estimate bytes reclaimed on push events (`ESTIMATE_RECLAIMED_BYTES`; costs one
    /// BatchGetImage per 100 images of the repository). The sweep always estimates.
    pub estimate_reclaimed_on_push: bool,
    /// Secrets Manager secret holding a GitHub token (`GITHUB_TOKEN_SECRET_ARN`): when set, the
    /// sweep removes cache tags of branches that no longer exist and never those that do.
    pub github_token_secret_arn: Option<String>,
    /// GitHub REST API base URL (`GITHUB_API_URL`), for GitHub Enterprise Server.
    pub github_api_url: String,
    /// Owner of GitHub repositories named like their ECR repository (`GITHUB_OWNER`), for
    /// repositories `REPOSITORY_MAP` does not list.
    pub github_owner: Option<String>,
}

pub const DEFAULT_METRICS_NAMESPACE: &str = "EcrCachePruner";

impl Config {
    /// Whether this deployment may act on `repository`: any, when `SWEEP_REPOSITORIES` is unset;
    /// else only those it matches (the template sets it to the IAM-scoped pattern).
    pub fn in_scope(&self, repository: &str) -> bool {
        self.sweep_repositories.is_empty()
            || crate::core::glob::any_matches(&self.sweep_repositories, repository)
    }

    /// What decides the meaning of an event.
    pub fn trigger_rules(&self) -> TriggerRules<'_> {
        TriggerRules {
            cache_tags: &self.cache_tags,
            protected_branches: &self.protected_branches,
            repository_map: &self.repository_map,
            keep_tags: &self.keep_tags,
            sweep_enabled: !self.sweep_repositories.is_empty(),
            sweep_scope: &self.sweep_repositories,
            promote_merged_groups: self.promote_merged_groups,
        }
    }

    /// What the sweep needs.
    /// Where the embedded metrics go, and whether per repository.
    pub fn emf(&self) -> crate::adapters::metrics::Emf {
        crate::adapters::metrics::Emf {
            namespace: self.metrics_namespace.clone(),
            per_repository: self.metrics_per_repository,
        }
    }

    pub fn sweep_settings(&self) -> SweepSettings {
        SweepSettings {
            confirmed: None,
            plan_only: false,
            repositories: self.sweep_repositories.clone(),
            cache_tags: self.cache_tags.clone(),
            protected_branches: self.protected_branches.clone(),
            dry_run: self.dry_run,
            max_deletions: self.max_deletions,
            stale_cache_days: self.stale_cache_days,
            keep_tags: self.keep_tags.clone(),
            gone_branch_min_age_hours: self.gone_branch_min_age_hours,
            cache_budget: self.cache_budget.clone(),
            cache_budget_min_age_minutes: self.cache_budget_min_age_minutes,
            unique_bytes: false,
            repository_map: self.repository_map.clone(),
            github_owner: self.github_owner.clone(),
            // ESTIMATE_RECLAIMED_BYTES: one more BatchGetImage per 100 images of each repository.
            estimate_reclaimed: self.estimate_reclaimed_on_push,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the config from any variable source; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let cache_tag_prefix =
            get("CACHE_TAG_PREFIX").unwrap_or_else(|| DEFAULT_CACHE_TAG_PREFIX.to_owned());
        if cache_tag_prefix.len() > 100
            || !cache_tag_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            || !cache_tag_prefix.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(invalid(
                "CACHE_TAG_PREFIX",
                &cache_tag_prefix,
                "must be the start of a valid image tag: [A-Za-z0-9_][A-Za-z0-9._-]*, at most 100 characters",
            ));
        }

        let cache_tags = match get("CACHE_TAG_TEMPLATES") {
            None => CacheTags::from_prefix(&cache_tag_prefix),
            Some(spec) => {
                if get("CACHE_TAG_PREFIX").is_some() {
                    return Err(invalid(
                        "CACHE_TAG_TEMPLATES",
                        &spec,
                        "set either CACHE_TAG_TEMPLATES or CACHE_TAG_PREFIX, not both (the prefix is the template <prefix>{branch})",
                    ));
                }
                CacheTags::parse(&spec)
                    .map_err(|e| invalid("CACHE_TAG_TEMPLATES", &spec, e.to_string()))?
            }
        };

        let protected_raw =
            get("PROTECTED_BRANCHES").unwrap_or_else(|| DEFAULT_PROTECTED_BRANCHES.to_owned());
        let patterns = parse_list(&protected_raw);
        if patterns.is_empty() {
            return Err(invalid(
                "PROTECTED_BRANCHES",
                &protected_raw,
                "must name at least one branch or glob",
            ));
        }

        let dry_run = boolean(get("DRY_RUN"), "DRY_RUN")?;
        let promote_merged_groups = boolean(
            get("PROMOTE_MERGED_GROUP_CACHE"),
            "PROMOTE_MERGED_GROUP_CACHE",
        )?;
        let estimate_reclaimed_on_push =
            boolean(get("ESTIMATE_RECLAIMED_BYTES"), "ESTIMATE_RECLAIMED_BYTES")?;

        let repository_map = match get("REPOSITORY_MAP") {
            None => RepositoryMap::default(),
            Some(v) => RepositoryMap::parse(&v)
                .map_err(|p| invalid("REPOSITORY_MAP", &v, p.to_string()))?,
        };

        let max_deletions = bounded(
            get("MAX_DELETIONS_PER_INVOCATION"),
            "MAX_DELETIONS_PER_INVOCATION",
            1..=MAX_DELETIONS_LIMIT,
            &format!("from 1 to {MAX_DELETIONS_LIMIT}"),
        )?
        .unwrap_or(DEFAULT_MAX_DELETIONS);

        let sweep_repositories = get("SWEEP_REPOSITORIES")
            .map(|v| parse_list(&v))
            .unwrap_or_default();

        let stale_cache_days = bounded(
            get("STALE_CACHE_DAYS"),
            "STALE_CACHE_DAYS",
            1..=3650,
            "of days from 1 to 3650 (unset to disable)",
        )?;

        let keep_tags = get("KEEP_TAGS").map(|v| parse_list(&v)).unwrap_or_default();

        let gone_branch_min_age_hours = bounded(
            get("GONE_BRANCH_MIN_AGE_HOURS"),
            "GONE_BRANCH_MIN_AGE_HOURS",
            0..=8760,
            "of hours from 0 to 8760",
        )?
        .unwrap_or(DEFAULT_GONE_BRANCH_MIN_AGE_HOURS);

        let cache_budget = match get("CACHE_BUDGET") {
            None => crate::core::budget::CacheBudget::default(),
            Some(v) => crate::core::budget::CacheBudget::parse(&v)
                .map_err(|e| invalid("CACHE_BUDGET", &v, e.to_string()))?,
        };
        let cache_budget_min_age_minutes = bounded(
            get("CACHE_BUDGET_MIN_AGE_MINUTES"),
            "CACHE_BUDGET_MIN_AGE_MINUTES",
            0..=525_600,
            "of minutes from 0 to 525600",
        )?
        .unwrap_or(DEFAULT_CACHE_BUDGET_MIN_AGE_MINUTES);

        let metrics_namespace =
            get("METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_owned());
        if metrics_namespace.len() > 255 || metrics_namespace.starts_with(':') {
            return Err(invalid(
                "METRICS_NAMESPACE",
                &metrics_namespace,
                "must be a CloudWatch namespace of at most 255 characters",
            ));
        }

        let metrics_per_repository = match get("METRICS_PER_REPOSITORY") {
            None => true,
            value => boolean(value, "METRICS_PER_REPOSITORY")?,
        };

        let sweep_queue_url = get("SWEEP_QUEUE_URL");
        if let Some(url) = &sweep_queue_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(invalid("SWEEP_QUEUE_URL", url, "must be an SQS queue URL"));
            }
        }

        let github_token_secret_arn = get("GITHUB_TOKEN_SECRET_ARN");
        let github_api_url = get("GITHUB_API_URL")
            .unwrap_or_else(|| crate::adapters::github::DEFAULT_GITHUB_API_URL.to_owned());
        if !(github_api_url.starts_with("https://") || github_api_url.starts_with("http://")) {
            return Err(invalid(
                "GITHUB_API_URL",
                &github_api_url,
                "must be an http(s) URL",
            ));
        }
        let github_owner = get("GITHUB_OWNER");
        if let Some(owner) = &github_owner {
            if owner.contains('/') || owner.contains(char::is_whitespace) {
                return Err(invalid(
                    "GITHUB_OWNER",
                    owner,
                    "must be a GitHub user or organization name",
                ));
            }
        }

        Ok(Config {
            estimate_reclaimed_on_push,
            github_token_secret_arn,
            github_api_url,
            github_owner,
            cache_tag_prefix,
            cache_tags,
            promote_merged_groups,
            protected_branches: ProtectedBranches::new(patterns),
            dry_run,
            repository_map,
            max_deletions,
            sweep_repositories,
            stale_cache_days,
            keep_tags,
            gone_branch_min_age_hours,
            cache_budget,
            cache_budget_min_age_minutes,
            sweep_queue_url,
            metrics_namespace,
            metrics_per_repository,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn cache_budgets_are_read_or_refused_at_start_up() {
        // The same lists as the template's CacheBudget pattern check (check_template_rules.py).
        for good in [
            "20GiB",
            "1.5 TiB",
            "512MiB",
            "team-a/*=50GiB,*=20GiB",
            "team-a/*=50GiB, *=20GiB",
        ] {
            let c = config(&[("CACHE_BUDGET", good)]).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert!(!c.cache_budget.is_empty(), "{good}");
        }
        for bad in [
            "20GB",
            "20",
            "GiB",
            "lots",
            "team-a/*=50GiB,20GiB",
            "=5GiB",
            "20gib",
            "1..5GiB",
            "0GiB",
        ] {
            let err = config(&[("CACHE_BUDGET", bad)]).expect_err(bad);
            assert_eq!(err.variable, "CACHE_BUDGET", "{bad}");
        }
        let c = config(&[]).unwrap();
        assert!(c.cache_budget.is_empty());
        assert_eq!(c.cache_budget_min_age_minutes, 60);
        let c = config(&[
            ("CACHE_BUDGET", "team-a/*=50GiB,*=20GiB"),
            ("CACHE_BUDGET_MIN_AGE_MINUTES", "0"),
        ])
        .unwrap();
        assert_eq!(c.cache_budget.for_repository("team-a/api"), Some(50 << 30));
        assert_eq!(c.sweep_settings().cache_budget_min_age_minutes, 0);
        assert!(config(&[("CACHE_BUDGET_MIN_AGE_MINUTES", "an hour")]).is_err());
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.cache_tag_prefix, "cache-");
        assert!(c.protected_branches.is_protected("main"));
        assert!(c.protected_branches.is_protected("master"));
        assert!(!c.dry_run);
        assert_eq!(c.max_deletions, 1000);
        assert!(c.keep_tags.is_empty());
        assert_eq!(c.gone_branch_min_age_hours, 24);
        assert!(c.emf().per_repository);
        assert_eq!(
            c.repository_map.ecr_repositories("Org/My-App"),
            vec!["my-app"]
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("DRY_RUN", "maybe"),
            ("ESTIMATE_RECLAIMED_BYTES", "yes"),
            ("METRICS_PER_REPOSITORY", "no"),
            ("CACHE_TAG_PREFIX", "cache/"),
            ("CACHE_TAG_PREFIX", "-x"),
            ("PROTECTED_BRANCHES", " , "),
            ("REPOSITORY_MAP", "org/app"),
            ("REPOSITORY_MAP", "org/app=Bad Name"),
            ("REPOSITORY_MAP", "app=app"),
            ("MAX_DELETIONS_PER_INVOCATION", "0"),
            ("MAX_DELETIONS_PER_INVOCATION", "lots"),
            ("STALE_CACHE_DAYS", "0"),
            ("STALE_CACHE_DAYS", "a week"),
            ("GONE_BRANCH_MIN_AGE_HOURS", "-1"),
            ("GONE_BRANCH_MIN_AGE_HOURS", "a day"),
            ("SWEEP_QUEUE_URL", "prune-queue"),
            ("GITHUB_API_URL", "api.github.com"),
            ("GITHUB_OWNER", "a/b"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn explicit_values() {
        let c = config(&[
            ("DRY_RUN", "TRUE"),
            ("CACHE_TAG_PREFIX", "buildcache-"),
            ("PROTECTED_BRANCHES", "main, release/*"),
            (
                "REPOSITORY_MAP",
                "org/app=app, org/app=app-cache,Org/Web=frontend",
            ),
            ("MAX_DELETIONS_PER_INVOCATION", "50"),
            ("SWEEP_REPOSITORIES", "team-a/*,app"),
            ("STALE_CACHE_DAYS", "14"),
            ("KEEP_TAGS", "cache-*-amd64, cache-pr-*"),
            ("GONE_BRANCH_MIN_AGE_HOURS", "0"),
            ("METRICS_PER_REPOSITORY", "false"),
        ])
        .unwrap();
        assert!(!c.emf().per_repository);
        assert_eq!(c.sweep_repositories.len(), 2);
        assert_eq!(c.stale_cache_days, Some(14));
        assert_eq!(c.keep_tags.len(), 2);
        assert!(c.keep_tags[0].matches("cache-main-amd64"));
        assert_eq!(c.gone_branch_min_age_hours, 0);
        assert!(c.dry_run);
        assert_eq!(c.cache_tag_prefix, "buildcache-");
        assert!(c.protected_branches.is_protected("release/2"));
        assert_eq!(c.max_deletions, 50);
        assert_eq!(
            c.repository_map.ecr_repositories("org/app"),
            vec!["app", "app-cache"]
        );
        assert_eq!(
            c.repository_map.ecr_repositories("ORG/web"),
            vec!["frontend"]
        );
        assert_eq!(
            c.repository_map.ecr_repositories("other/thing"),
            vec!["thing"]
        );
    }

    #[test]
    fn cache_tag_templates_replace_the_prefix_and_overlaps_are_refused() {
        let c = config(&[("CACHE_TAG_TEMPLATES", "api-cache-{branch},cache-pr-{pr}")]).unwrap();
        assert_eq!(c.cache_tags.for_branch("a/b"), vec!["api-cache-a-b"]);
        assert_eq!(c.cache_tags.for_pr(7), vec!["cache-pr-7"]);
        let c = config(&[("CACHE_TAG_PREFIX", "bc-")]).unwrap();
        assert_eq!(c.cache_tags.for_branch("main"), vec!["bc-main"]);
        let err = config(&[("CACHE_TAG_TEMPLATES", "cache-{branch},cache-pr-{pr}")]).unwrap_err();
        assert_eq!(err.variable, "CACHE_TAG_TEMPLATES");
        assert!(err.problem.contains("both make the tag"), "{err}");
        let err = config(&[
            ("CACHE_TAG_TEMPLATES", "x-{branch}"),
            ("CACHE_TAG_PREFIX", "cache-"),
        ])
        .unwrap_err();
        assert!(err.problem.contains("not both"), "{err}");
        assert!(config(&[("CACHE_TAG_TEMPLATES", "cache-{ref}")]).is_err());
    }
}
