//! Turning an incoming EventBridge event into something to do, or a reason to ignore it.
//! Pure: validation happens here, before any AWS call.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::branch::ProtectedBranches;
use super::cache_tags::{CacheTags, Placeholder};
use super::glob::{any_matches, Glob};
use super::names::{is_valid_digest, is_valid_repository_name, is_valid_tag};
use super::repository_map::RepositoryMap;
use super::stale::TagExpiry;
use super::time::parse_rfc3339;

/// The settings that decide what an event means (a view of the pruner's configuration).
#[derive(Debug, Clone, Copy)]
pub struct TriggerRules<'a> {
    pub cache_tags: &'a CacheTags,
    pub protected_branches: &'a ProtectedBranches,
    pub repository_map: &'a RepositoryMap,
    /// Tags never removed (`KEEP_TAGS`).
    pub keep_tags: &'a [Glob],
    /// A scheduled event sweeps only when repositories to sweep are configured.
    pub sweep_enabled: bool,
    /// Repositories the sweep covers (`SWEEP_REPOSITORIES`).
    pub sweep_scope: &'a [Glob],
    /// A merged merge group's cache becomes its base branch's (`PROMOTE_MERGED_GROUP_CACHE`).
    pub promote_merged_groups: bool,
}

/// A cache tag to point at the merged group's cache manifest (`to`, the base branch's tag of
/// the same template as `from`, the group's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Promotion {
    pub from: String,
    pub to: String,
}

/// The EventBridge envelope fields the pruner reads; any other field is ignored.
#[derive(Debug, Deserialize)]
struct Envelope {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    #[serde(default)]
    detail: Value,
    /// When the event happened (RFC 3339); absent in hand-made events.
    #[serde(default)]
    time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// A cache tag was pushed: prune that repository's stale cache manifests.
    CachePush {
        repository: String,
        digest: String,
        tag: String,
    },
    /// A branch was deleted on GitHub (or a merge queue's group, whose temporary branch it is,
    /// was destroyed): remove its cache tags (every `{branch}` template's) from the mapped
    /// repositories.
    BranchDeleted {
        github_repository: String,
        branch: String,
        tags: Vec<String>,
        repositories: Vec<String>,
        /// What ended the branch: `branch_deleted` or `merge_group_destroyed`.
        ended_by: TagExpiry,
        /// A merged group's caches to promote to its base branch first (opt-in).
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        promotions: Vec<Promotion>,
        /// The deletion event's time (seconds since the epoch): only a cache pushed before it
        /// belonged to the deleted branch; a later one belongs to a branch of the same name
        /// created again. None for an event without `time` (then judged at handling time).
        #[serde(skip_serializing_if = "Option::is_none")]
        deleted_at: Option<i64>,
    },
    /// A pull request was closed (merged or not): remove its cache tags (every `{pr}`
    /// template's) from the mapped repositories.
    PullRequestClosed {
        github_repository: String,
        number: u64,
        tags: Vec<String>,
        repositories: Vec<String>,
        /// The close event's time: a cache pushed after it belongs to the pull request re-opened.
        #[serde(skip_serializing_if = "Option::is_none")]
        closed_at: Option<i64>,
    },
    /// A scheduled run: sweep every repository in scope (inline, or one queue message each).
    Sweep,
    /// Sweep exactly one repository: a fan-out message, or a continuation.
    RepositorySweep {
        repository: String,
        /// Set on a message that continues an unfinished sweep of the repository.
        #[serde(skip_serializing_if = "Option::is_none")]
        continuation: Option<Continuation>,
    },
}

/// How far an unfinished repository sweep got: carried by the message that continues it, so a
/// sweep that makes no progress, or needs too many invocations, stops instead of re-queueing
/// itself for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continuation {
    /// 1 for the first continuation of a sweep.
    pub attempt: u32,
    /// Deletable manifests the previous invocation left (the progress cursor: it must shrink);
    /// None when that invocation ran out of time before it knew.
    #[serde(default)]
    pub remaining: Option<usize>,
}

/// A sweep gives up after this many continuations (each one invocation; at the default cap of
/// 1,000 deletions that is 24,000 manifests in one repository between two schedules).
pub const MAX_CONTINUATIONS: u32 = 24;

/// What to do when a repository sweep did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Send this continuation.
    Continue(Continuation),
    /// Stop here: the next schedule starts again.
    GiveUp(GiveUpReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GiveUpReason {
    /// The previous invocation left as much as this one (or more), and this one deleted nothing.
    NoProgress,
    /// [`MAX_CONTINUATIONS`] reached.
    TooManyContinuations,
}

/// Whether to continue an unfinished sweep. `previous` is the continuation this invocation
/// received, `remaining` what it left (None: out of time before knowing), `progressed` whether it
/// deleted or removed anything.
pub fn next_step(
    previous: Option<Continuation>,
    remaining: Option<usize>,
    progressed: bool,
) -> NextStep {
    let attempt = previous.map_or(1, |p| p.attempt.saturating_add(1));
    if attempt > MAX_CONTINUATIONS {
        return NextStep::GiveUp(GiveUpReason::TooManyContinuations);
    }
    if let Some(previous) = previous {
        let shrank = match (previous.remaining, remaining) {
            (Some(before), Some(now)) => now < before,
            _ => false,
        };
        if !progressed && !shrank {
            return NextStep::GiveUp(GiveUpReason::NoProgress);
        }
    }
    NextStep::Continue(Continuation { attempt, remaining })
}

impl Trigger {
    pub const CACHE_PUSH: &'static str = "cache_push";
    pub const BRANCH_DELETED: &'static str = "branch_deleted";
    pub const PULL_REQUEST_CLOSED: &'static str = "pull_request_closed";
    pub const SWEEP: &'static str = "sweep";
    pub const REPOSITORY_SWEEP: &'static str = "repository_sweep";

    /// The `kind` the trigger serializes with (audit lines carry it).
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::CachePush { .. } => Self::CACHE_PUSH,
            Trigger::BranchDeleted { .. } => Self::BRANCH_DELETED,
            Trigger::PullRequestClosed { .. } => Self::PULL_REQUEST_CLOSED,
            Trigger::Sweep => Self::SWEEP,
            Trigger::RepositorySweep { .. } => Self::REPOSITORY_SWEEP,
        }
    }
}

/// The source and detail-type of the pruner's own fan-out messages.
pub const FAN_OUT_SOURCE: &str = "ecr-cache-pruner";
pub const REPOSITORY_SWEEP: &str = "Repository Sweep";

/// The EventBridge-shaped message that asks for one repository's sweep.
pub fn repository_sweep_event(repository: &str) -> Value {
    continued_sweep_event(repository, None)
}

/// The message that asks for one repository's sweep, continuing an unfinished one when
/// `continuation` is set.
pub fn continued_sweep_event(repository: &str, continuation: Option<Continuation>) -> Value {
    let mut detail = serde_json::json!({"repository-name": repository});
    if let Some(continuation) = continuation {
        detail["continuation"] = serde_json::json!(continuation);
    }
    serde_json::json!({
        "version": "0",
        "id": "",
        "detail-type": REPOSITORY_SWEEP,
        "source": FAN_OUT_SOURCE,
        "account": "",
        "time": "",
        "region": "",
        "resources": [],
        "detail": detail,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Act(Trigger),
    Ignore { reason: String },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TriggerError {
    #[error("not an EventBridge event: {0}")]
    NotEventBridge(String),
    #[error("malformed {source_name} event: {problem}")]
    Malformed {
        source_name: String,
        problem: String,
    },
}

fn malformed(source_name: &str, problem: impl Into<String>) -> TriggerError {
    TriggerError::Malformed {
        source_name: source_name.to_owned(),
        problem: problem.into(),
    }
}

fn ignore(reason: impl Into<String>) -> Decision {
    Decision::Ignore {
        reason: reason.into(),
    }
}

/// `detail` of an "ECR Image Action" event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct EcrImageAction {
    result: String,
    action_type: String,
    repository_name: String,
    #[serde(default)]
    image_digest: Option<String>,
    #[serde(default)]
    image_tag: Option<String>,
}

pub fn decide(event: &Value, config: &TriggerRules) -> Result<Decision, TriggerError> {
    let envelope: Envelope = serde_path_to_error::deserialize(event)
        .map_err(|e| TriggerError::NotEventBridge(e.to_string()))?;
    match (envelope.source.as_str(), envelope.detail_type.as_str()) {
        ("aws.ecr", "ECR Image Action") => decide_ecr(envelope.detail, config),
        ("aws.ecr", other) => Ok(ignore(format!(
            "ECR event {other:?} is not an image action"
        ))),
        ("github.com", event) => {
            let time = match envelope.time.as_deref().filter(|t| !t.is_empty()) {
                None => None,
                Some(text) => Some(parse_rfc3339(text).ok_or_else(|| {
                    malformed(
                        &format!("GitHub {event}"),
                        format!("time {text:?} is not an RFC 3339 time"),
                    )
                })?),
            };
            decide_github(event, envelope.detail, time, config)
        }
        ("aws.events" | "aws.scheduler", "Scheduled Event") => {
            if !config.sweep_enabled {
                Ok(ignore("scheduled sweep, but SWEEP_REPOSITORIES is not set"))
            } else {
                Ok(Decision::Act(Trigger::Sweep))
            }
        }
        (FAN_OUT_SOURCE, REPOSITORY_SWEEP) => decide_repository_sweep(envelope.detail, config),
        (source, detail_type) => Ok(ignore(format!(
            "no handling for source {source:?} detail-type {detail_type:?}"
        ))),
    }
}

fn decide_ecr(detail: Value, config: &TriggerRules) -> Result<Decision, TriggerError> {
    let action: EcrImageAction = serde_path_to_error::deserialize(detail)
        .map_err(|e| malformed("ECR Image Action", format!("detail.{e}")))?;
    if !is_valid_repository_name(&action.repository_name) {
        return Err(malformed(
            "ECR Image Action",
            format!("invalid repository-name {:?}", action.repository_name),
        ));
    }
    if action.action_type != "PUSH" {
        return Ok(ignore(format!(
            "action-type {} is not PUSH",
            action.action_type
        )));
    }
    if action.result != "SUCCESS" {
        return Ok(ignore(format!("push result is {}", action.result)));
    }
    let tag = action.image_tag.unwrap_or_default();
    if tag.is_empty() {
        return Ok(ignore("push by digest (no image-tag)"));
    }
    if !config.cache_tags.is_cache_tag(&tag) {
        return Ok(ignore(format!(
            "tag {tag:?} is not a cache tag ({})",
            config.cache_tags.text()
        )));
    }
    let digest = action
        .image_digest
        .ok_or_else(|| malformed("ECR Image Action", "PUSH without image-digest"))?;
    if !is_valid_digest(&digest) {
        return Err(malformed(
            "ECR Image Action",
            format!("invalid image-digest {digest:?}"),
        ));
    }
    Ok(Decision::Act(Trigger::CachePush {
        repository: action.repository_name,
        digest,
        tag,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RepositorySweepDetail {
    repository_name: String,
    #[serde(default)]
    continuation: Option<Continuation>,
}

fn decide_repository_sweep(detail: Value, config: &TriggerRules) -> Result<Decision, TriggerError> {
    let detail: RepositorySweepDetail = serde_path_to_error::deserialize(detail)
        .map_err(|e| malformed(REPOSITORY_SWEEP, format!("detail.{e}")))?;
    let repository = detail.repository_name;
    if !is_valid_repository_name(&repository) {
        return Err(malformed(
            REPOSITORY_SWEEP,
            format!("invalid repository-name {repository:?}"),
        ));
    }
    if !config.sweep_enabled {
        return Ok(ignore(
            "repository sweep, but SWEEP_REPOSITORIES is not set",
        ));
    }
    if !any_matches(config.sweep_scope, &repository) {
        return Ok(ignore(format!(
            "repository {repository} is not in SWEEP_REPOSITORIES"
        )));
    }
    Ok(Decision::Act(Trigger::RepositorySweep {
        repository,
        continuation: detail.continuation,
    }))
}

/// The parts of a GitHub `delete` or `push` payload the pruner reads.
#[derive(Debug, Deserialize)]
struct GithubPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    ref_type: Option<String>,
    #[serde(default)]
    deleted: Option<bool>,
    repository: GithubRepository,
}

#[derive(Debug, Deserialize)]
struct GithubRepository {
    full_name: String,
}

/// `detail` of a `merge_group` delivery (the parts the pruner reads).
#[derive(Debug, Deserialize)]
struct MergeGroupPayload {
    action: String,
    /// `merged`, `invalidated` or `dequeued` (for `destroyed`).
    #[serde(default)]
    reason: Option<String>,
    merge_group: MergeGroup,
    repository: GithubRepository,
}

#[derive(Debug, Deserialize)]
struct MergeGroup {
    head_ref: String,
    #[serde(default)]
    base_ref: Option<String>,
}

/// `detail` of a `pull_request` delivery (the parts the pruner reads).
#[derive(Debug, Deserialize)]
struct PullRequestPayload {
    action: String,
    number: u64,
    repository: GithubRepository,
}

fn decide_github(
    event: &str,
    detail: Value,
    time: Option<i64>,
    config: &TriggerRules,
) -> Result<Decision, TriggerError> {
    let source_name = format!("GitHub {event}");
    match event {
        "delete" | "push" => {}
        "merge_group" => {
            let payload: MergeGroupPayload = serde_path_to_error::deserialize(detail)
                .map_err(|e| malformed(&source_name, format!("detail.{e}")))?;
            if payload.action != "destroyed" {
                return Ok(ignore(format!(
                    "merge_group {}, not destroyed",
                    payload.action
                )));
            }
            let Some(branch) = payload.merge_group.head_ref.strip_prefix("refs/heads/") else {
                return Err(malformed(
                    &source_name,
                    format!(
                        "detail.merge_group.head_ref {:?} is not a branch",
                        payload.merge_group.head_ref
                    ),
                ));
            };
            let decision = branch_ended(
                branch.to_owned(),
                payload.repository.full_name,
                time,
                TagExpiry::MergeGroupDestroyed,
                &source_name,
                config,
            )?;
            // Merged: the base branch is about to build exactly this; its cache can become the
            // base's (opt-in), for each template, unless KEEP_TAGS holds the base's tag.
            let base = payload
                .merge_group
                .base_ref
                .as_deref()
                .and_then(|r| r.strip_prefix("refs/heads/"));
            return Ok(match (decision, base) {
                (Decision::Act(Trigger::BranchDeleted { github_repository, branch, tags, repositories, ended_by, deleted_at, .. }), Some(base))
                    if config.promote_merged_groups && payload.reason.as_deref() == Some("merged") =>
                {
                    let promotions = config
                        .cache_tags
                        .for_branch(&branch)
                        .into_iter()
                        .zip(config.cache_tags.for_branch(base))
                        .filter(|(from, to)| {
                            tags.contains(from) && is_valid_tag(to) && !any_matches(config.keep_tags, to)
                        })
                        .map(|(from, to)| Promotion { from, to })
                        .collect();
                    Decision::Act(Trigger::BranchDeleted {
                        github_repository,
                        branch,
                        tags,
                        repositories,
                        ended_by,
                        promotions,
                        deleted_at,
                    })
                }
                (decision, _) => decision,
            });
        }
        "pull_request" => {
            let payload: PullRequestPayload = serde_path_to_error::deserialize(detail)
                .map_err(|e| malformed(&source_name, format!("detail.{e}")))?;
            if payload.action != "closed" {
                return Ok(ignore(format!(
                    "pull_request {}, not closed",
                    payload.action
                )));
            }
            return pull_request_closed(payload, time, &source_name, config);
        }
        _ => {
            return Ok(ignore(format!(
                "GitHub event {event:?} is not a branch deletion, a closed pull request or a destroyed merge group"
            )))
        }
    }
    let payload: GithubPayload = serde_path_to_error::deserialize(detail)
        .map_err(|e| malformed(&source_name, format!("detail.{e}")))?;
    let branch = match event {
        "delete" => match payload.ref_type.as_deref() {
            Some("branch") => payload.git_ref,
            Some("tag") => {
                return Ok(ignore(format!(
                    "git tag {} deleted, not a branch",
                    payload.git_ref
                )))
            }
            other => {
                return Err(malformed(
                    &source_name,
                    format!("detail.ref_type {other:?} is not branch or tag"),
                ))
            }
        },
        _ => {
            if payload.deleted != Some(true) {
                return Ok(ignore("push of commits, not a branch deletion"));
            }
            match payload.git_ref.strip_prefix("refs/heads/") {
                Some(branch) => branch.to_owned(),
                None => {
                    return Ok(ignore(format!(
                        "deleted ref {} is not a branch",
                        payload.git_ref
                    )))
                }
            }
        }
    };
    branch_ended(
        branch,
        payload.repository.full_name,
        time,
        TagExpiry::BranchDeleted,
        &source_name,
        config,
    )
}

fn checked_full_name(source_name: &str, full_name: &str) -> Result<(), TriggerError> {
    if !matches!(full_name.split_once('/'), Some((o, n)) if !o.is_empty() && !n.is_empty()) {
        return Err(malformed(
            source_name,
            format!("detail.repository.full_name {full_name:?} is not owner/name"),
        ));
    }
    Ok(())
}

/// The ECR repositories of a GitHub repository, or why none can be acted on (the reason an
/// ignored decision carries).
fn mapped_repositories(config: &TriggerRules, full_name: &str) -> Result<Vec<String>, String> {
    let repositories = config.repository_map.ecr_repositories(full_name);
    if let Some(bad) = repositories.iter().find(|r| !is_valid_repository_name(r)) {
        return Err(format!(
            "GitHub repository {full_name} maps to {bad:?}, not a valid ECR repository name; set REPOSITORY_MAP"
        ));
    }
    Ok(repositories)
}

/// Why a protected branch owns `tag`: the ended branch is protected itself, or a protected
/// pattern can make the same tag (branch names map to tags many-to-one).
fn protected_owner(config: &TriggerRules, branch: &str, tag: &str) -> Option<String> {
    if config.protected_branches.is_protected(branch) {
        return Some(format!("branch {branch} is protected"));
    }
    config
        .cache_tags
        .protected_by(config.protected_branches, tag)
        .then(|| {
            format!(
                "tag {tag} of branch {branch} is also the cache tag of a protected branch pattern"
            )
        })
}

/// A branch ended (deleted, or its merge group destroyed): its `{branch}` templates' tags, less
/// those a protected branch pattern could own, `KEEP_TAGS` and invalid tags.
fn branch_ended(
    branch: String,
    full_name: String,
    deleted_at: Option<i64>,
    ended_by: TagExpiry,
    source_name: &str,
    config: &TriggerRules,
) -> Result<Decision, TriggerError> {
    if branch.is_empty() {
        return Err(malformed(source_name, "empty branch name"));
    }
    checked_full_name(source_name, &full_name)?;
    if !config.cache_tags.has(Placeholder::Branch) {
        return Ok(ignore(format!(
            "no {{branch}} template in CACHE_TAG_TEMPLATES ({})",
            config.cache_tags.text()
        )));
    }
    let mut tags = Vec::new();
    let mut left = Vec::new();
    for tag in config.cache_tags.for_branch(&branch) {
        if let Some(why) = protected_owner(config, &branch, &tag) {
            left.push(why);
        } else if any_matches(config.keep_tags, &tag) {
            left.push(format!("tag {tag} of branch {branch} matches KEEP_TAGS"));
        } else if !is_valid_tag(&tag) {
            left.push(format!(
                "branch {branch} maps to {tag:?}, which is not a valid image tag"
            ));
        } else {
            tags.push(tag);
        }
    }
    if tags.is_empty() {
        return Ok(ignore(left.join("; ")));
    }
    let repositories = match mapped_repositories(config, &full_name) {
        Ok(r) => r,
        Err(reason) => return Ok(ignore(reason)),
    };
    Ok(Decision::Act(Trigger::BranchDeleted {
        github_repository: full_name,
        branch,
        tags,
        repositories,
        ended_by,
        promotions: Vec::new(),
        deleted_at,
    }))
}

/// A pull request closed: its `{pr}` templates' tags, less `KEEP_TAGS` and invalid tags.
fn pull_request_closed(
    payload: PullRequestPayload,
    closed_at: Option<i64>,
    source_name: &str,
    config: &TriggerRules,
) -> Result<Decision, TriggerError> {
    let full_name = payload.repository.full_name;
    checked_full_name(source_name, &full_name)?;
    let number = payload.number;
    if number == 0 {
        return Err(malformed(source_name, "detail.number is 0"));
    }
    if !config.cache_tags.has(Placeholder::Pr) {
        return Ok(ignore(format!(
            "no {{pr}} template in CACHE_TAG_TEMPLATES ({}): pull requests have no cache of their own",
            config.cache_tags.text()
        )));
    }
    let (tags, kept): (Vec<String>, Vec<String>) = config
        .cache_tags
        .for_pr(number)
        .into_iter()
        .partition(|t| !any_matches(config.keep_tags, t) && is_valid_tag(t));
    if tags.is_empty() {
        return Ok(ignore(format!(
            "tags {kept:?} of pull request {number} match KEEP_TAGS"
        )));
    }
    let repositories = match mapped_repositories(config, &full_name) {
        Ok(r) => r,
        Err(reason) => return Ok(ignore(reason)),
    };
    Ok(Decision::Act(Trigger::PullRequestClosed {
        github_repository: full_name,
        number,
        tags,
        repositories,
        closed_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Owns what [`TriggerRules`] borrows; defaults as the pruner's configuration has them.
    struct Rules {
        tags: CacheTags,
        promote: bool,
        protected: ProtectedBranches,
        map: RepositoryMap,
        keep: Vec<Glob>,
        scope: Vec<Glob>,
    }

    impl Rules {
        fn get(&self) -> TriggerRules<'_> {
            TriggerRules {
                cache_tags: &self.tags,
                protected_branches: &self.protected,
                repository_map: &self.map,
                keep_tags: &self.keep,
                sweep_enabled: true,
                sweep_scope: &self.scope,
                promote_merged_groups: self.promote,
            }
        }
    }

    fn config(vars: &[(&str, &str)]) -> Rules {
        let var = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        Rules {
            promote: var("PROMOTE_MERGED_GROUP_CACHE") == Some("true"),
            tags: match var("CACHE_TAG_TEMPLATES") {
                Some(spec) => CacheTags::parse(spec).unwrap(),
                None => CacheTags::from_prefix("cache-"),
            },
            protected: ProtectedBranches::new(crate::core::glob::parse_list(
                var("PROTECTED_BRANCHES").unwrap_or("main,master"),
            )),
            map: RepositoryMap::parse(var("REPOSITORY_MAP").unwrap_or("")).unwrap(),
            keep: crate::core::glob::parse_list(var("KEEP_TAGS").unwrap_or("")),
            scope: crate::core::glob::parse_list("team-a/*"),
        }
    }

    fn github(detail_type: &str, detail: Value) -> Value {
        json!({"version": "0", "id": "x", "detail-type": detail_type, "source": "github.com",
               "account": "123456789012", "time": "2026-11-27T10:00:00Z", "region": "us-east-1",
               "resources": [], "detail": detail})
    }

    fn delete(branch: &str, ref_type: &str) -> Value {
        github(
            "delete",
            json!({"ref": branch, "ref_type": ref_type, "pusher_type": "user",
                                 "repository": {"full_name": "acme/My-App", "name": "My-App"}}),
        )
    }

    #[test]
    fn branch_delete_maps_to_tag_and_repository() {
        let d = decide(&delete("feature/login", "branch"), &config(&[]).get()).unwrap();
        assert_eq!(
            d,
            Decision::Act(Trigger::BranchDeleted {
                github_repository: "acme/My-App".into(),
                branch: "feature/login".into(),
                tags: vec!["cache-feature-login".into()],
                repositories: vec!["my-app".into()],
                ended_by: TagExpiry::BranchDeleted,
                promotions: vec![],
                deleted_at: Some(1_795_773_600),
            })
        );
    }

    #[test]
    fn branch_delete_time_is_read_and_a_bad_time_refused() {
        let mut event = delete("feature/login", "branch");
        event["time"] = json!("not a time");
        let err = decide(&event, &config(&[]).get()).unwrap_err();
        assert!(err.to_string().contains("not an RFC 3339 time"), "{err}");
        event.as_object_mut().unwrap().remove("time");
        let Decision::Act(Trigger::BranchDeleted { deleted_at, .. }) =
            decide(&event, &config(&[]).get()).unwrap()
        else {
            panic!("not a branch deletion")
        };
        assert_eq!(deleted_at, None);
    }

    #[test]
    fn continuations_must_make_progress_and_stop_at_the_bound() {
        let c = |attempt, remaining| Continuation { attempt, remaining };
        // The first unfinished invocation continues.
        assert_eq!(
            next_step(None, Some(500), true),
            NextStep::Continue(c(1, Some(500)))
        );
        // Remaining shrank: continue; it did not and nothing was deleted: give up.
        assert_eq!(
            next_step(Some(c(1, Some(500))), Some(400), false),
            NextStep::Continue(c(2, Some(400)))
        );
        assert_eq!(
            next_step(Some(c(1, Some(500))), Some(500), false),
            NextStep::GiveUp(GiveUpReason::NoProgress)
        );
        // Out of time twice without deleting anything is no progress either.
        assert_eq!(
            next_step(Some(c(3, None)), None, false),
            NextStep::GiveUp(GiveUpReason::NoProgress)
        );
        // Progress by deletions continues, up to the bound.
        assert_eq!(
            next_step(Some(c(MAX_CONTINUATIONS - 1, None)), None, true),
            NextStep::Continue(c(MAX_CONTINUATIONS, None))
        );
        assert_eq!(
            next_step(Some(c(MAX_CONTINUATIONS, Some(9))), Some(1), true),
            NextStep::GiveUp(GiveUpReason::TooManyContinuations)
        );
    }

    #[test]
    fn a_continuation_round_trips_through_its_message() {
        let rules_config = config(&[]);
        let rules = rules_config.get();
        let continuation = Continuation {
            attempt: 3,
            remaining: Some(1200),
        };
        let message = continued_sweep_event("team-a/web", Some(continuation));
        assert_eq!(
            decide(&message, &rules).unwrap(),
            Decision::Act(Trigger::RepositorySweep {
                repository: "team-a/web".into(),
                continuation: Some(continuation),
            })
        );
    }

    #[test]
    fn push_with_deleted_true_is_a_branch_delete() {
        let e = github(
            "push",
            json!({"ref": "refs/heads/fix/x", "deleted": true, "after": "0000000000000000000000000000000000000000",
                                      "repository": {"full_name": "acme/app"}}),
        );
        let d = decide(
            &e,
            &config(&[("REPOSITORY_MAP", "acme/app=app,acme/app=app-cache")]).get(),
        )
        .unwrap();
        let Decision::Act(Trigger::BranchDeleted {
            tags, repositories, ..
        }) = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(tags, vec!["cache-fix-x"]);
        assert_eq!(repositories, vec!["app", "app-cache"]);
    }

    #[test]
    fn ignored_github_events() {
        let owned = config(&[
            ("PROTECTED_BRANCHES", "main,release/*"),
            ("KEEP_TAGS", "cache-pr-*"),
        ]);
        let c = owned.get();
        let cases = [
            delete("v1.0.0", "tag"),
            delete("main", "branch"),
            delete("release/1.2", "branch"),
            delete("release-1.2", "branch"), // collides with release/1.2's tag
            delete("pr/42", "branch"),       // cache-pr-42 matches KEEP_TAGS
            github(
                "push",
                json!({"ref": "refs/heads/x", "deleted": false, "repository": {"full_name": "a/b"}}),
            ),
            github(
                "push",
                json!({"ref": "refs/tags/v1", "deleted": true, "repository": {"full_name": "a/b"}}),
            ),
            github("issues", json!({"action": "opened"})),
            github("ping", json!({"zen": "Design for failure."})),
        ];
        for e in cases {
            assert!(
                matches!(decide(&e, &c).unwrap(), Decision::Ignore { .. }),
                "{e}"
            );
        }
    }

    #[test]
    fn repository_sweep_messages() {
        let owned = config(&[]);
        let rules = owned.get();
        assert_eq!(
            decide(&repository_sweep_event("team-a/web"), &rules).unwrap(),
            Decision::Act(Trigger::RepositorySweep {
                repository: "team-a/web".into(),
                continuation: None,
            })
        );
        assert!(matches!(
            decide(&repository_sweep_event("team-b/web"), &rules).unwrap(),
            Decision::Ignore { .. }
        ));
        assert!(decide(&repository_sweep_event("Bad Name"), &rules).is_err());
    }

    #[test]
    fn malformed_github_events() {
        let owned = config(&[]);
        let c = owned.get();
        let no_repo = github("delete", json!({"ref": "x", "ref_type": "branch"}));
        let err = decide(&no_repo, &c).unwrap_err();
        assert!(err.to_string().contains("repository"), "{err}");
        let bad_type = github(
            "delete",
            json!({"ref": 5, "ref_type": "branch", "repository": {"full_name": "a/b"}}),
        );
        assert!(decide(&bad_type, &c)
            .unwrap_err()
            .to_string()
            .contains("ref"));
        let bad_name = github(
            "delete",
            json!({"ref": "x", "ref_type": "branch", "repository": {"full_name": "nope"}}),
        );
        assert!(decide(&bad_name, &c).is_err());
    }

    #[test]
    fn kind_is_the_serialized_kind() {
        let triggers = [
            Trigger::CachePush {
                repository: "app".into(),
                digest: "sha256:1".into(),
                tag: "cache-main".into(),
            },
            Trigger::BranchDeleted {
                github_repository: "org/app".into(),
                branch: "x".into(),
                tags: vec!["cache-x".into()],
                repositories: vec![],
                ended_by: TagExpiry::BranchDeleted,
                promotions: vec![],
                deleted_at: None,
            },
            Trigger::PullRequestClosed {
                github_repository: "org/app".into(),
                number: 1,
                tags: vec!["cache-pr-1".into()],
                repositories: vec![],
                closed_at: None,
            },
            Trigger::Sweep,
            Trigger::RepositorySweep {
                repository: "app".into(),
                continuation: None,
            },
        ];
        for t in triggers {
            assert_eq!(serde_json::to_value(&t).unwrap()["kind"], t.kind());
        }
    }

    fn sample(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_closed_pull_request_names_its_pr_tags() {
        let closed = sample(include_str!("../../events/github-pull-request-closed.json"));
        let owned = config(&[(
            "CACHE_TAG_TEMPLATES",
            "cache-{branch},pr-{pr}-cache,pr-{pr}-api",
        )]);
        let d = decide(&closed, &owned.get()).unwrap();
        assert_eq!(
            d,
            Decision::Act(Trigger::PullRequestClosed {
                github_repository: "acme/my-app".into(),
                number: 123,
                tags: vec!["pr-123-cache".into(), "pr-123-api".into()],
                repositories: vec!["my-app".into()],
                closed_at: Some(1_795_776_123),
            })
        );
        // Re-opened, edited, or no {pr} template: nothing to do.
        for action in ["opened", "reopened", "synchronize", "edited"] {
            let mut other = closed.clone();
            other["detail"]["action"] = json!(action);
            assert!(matches!(
                decide(&other, &owned.get()).unwrap(),
                Decision::Ignore { .. }
            ));
        }
        let Decision::Ignore { reason } = decide(&closed, &config(&[]).get()).unwrap() else {
            panic!()
        };
        assert!(reason.contains("no {pr} template"), "{reason}");
        // KEEP_TAGS wins over a closed pull request too.
        let keep = config(&[
            ("CACHE_TAG_TEMPLATES", "pr-{pr}-cache"),
            ("KEEP_TAGS", "pr-123-*"),
        ]);
        assert!(matches!(
            decide(&closed, &keep.get()).unwrap(),
            Decision::Ignore { .. }
        ));
        let mut bad = closed.clone();
        bad["detail"]["number"] = json!("one");
        assert!(decide(&bad, &owned.get()).is_err());
    }

    #[test]
    fn a_destroyed_merge_group_ends_its_queue_branch() {
        let destroyed = sample(include_str!(
            "../../events/github-merge-group-destroyed.json"
        ));
        let owned = config(&[(
            "CACHE_TAG_TEMPLATES",
            "api-cache-{branch},web-cache-{branch}",
        )]);
        let Decision::Act(Trigger::BranchDeleted {
            branch,
            tags,
            ended_by,
            ..
        }) = decide(&destroyed, &owned.get()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            branch,
            "gh-readonly-queue/main/pr-123-3e5f7a9c1d2e4f6a8b0c2d4e6f8a0b1c2d3e4f5a"
        );
        assert_eq!(ended_by, TagExpiry::MergeGroupDestroyed);
        assert_eq!(
            tags,
            vec![
                "api-cache-gh-readonly-queue-main-pr-123-3e5f7a9c1d2e4f6a8b0c2d4e6f8a0b1c2d3e4f5a",
                "web-cache-gh-readonly-queue-main-pr-123-3e5f7a9c1d2e4f6a8b0c2d4e6f8a0b1c2d3e4f5a",
            ]
        );
        let mut requested = destroyed.clone();
        requested["detail"]["action"] = json!("checks_requested");
        assert!(matches!(
            decide(&requested, &owned.get()).unwrap(),
            Decision::Ignore { .. }
        ));
        let mut not_a_branch = destroyed.clone();
        not_a_branch["detail"]["merge_group"]["head_ref"] = json!("refs/tags/x");
        assert!(decide(&not_a_branch, &owned.get()).is_err());
        // A queue branch matching a protected pattern keeps its caches.
        let protected = config(&[
            ("CACHE_TAG_TEMPLATES", "api-cache-{branch}"),
            ("PROTECTED_BRANCHES", "main,gh-readonly-queue/*"),
        ]);
        assert!(matches!(
            decide(&destroyed, &protected.get()).unwrap(),
            Decision::Ignore { .. }
        ));
    }

    #[test]
    fn a_merged_group_promotes_its_caches_only_when_asked() {
        let destroyed = sample(include_str!(
            "../../events/github-merge-group-destroyed.json"
        ));
        let promotions = |vars: &[(&str, &str)], reason: &str| {
            let mut e = destroyed.clone();
            e["detail"]["reason"] = json!(reason);
            match decide(&e, &config(vars).get()).unwrap() {
                Decision::Act(Trigger::BranchDeleted { promotions, .. }) => promotions,
                other => panic!("{other:?}"),
            }
        };
        let on = [
            (
                "CACHE_TAG_TEMPLATES",
                "api-cache-{branch},web-cache-{branch}",
            ),
            ("PROMOTE_MERGED_GROUP_CACHE", "true"),
            ("KEEP_TAGS", "web-cache-main"),
        ];
        let p = promotions(&on, "merged");
        assert_eq!(p.len(), 1, "KEEP_TAGS holds web-cache-main: {p:?}");
        assert_eq!(p[0].to, "api-cache-main");
        assert!(p[0]
            .from
            .starts_with("api-cache-gh-readonly-queue-main-pr-123-"));
        assert!(promotions(&on, "invalidated").is_empty());
        assert!(promotions(&on, "dequeued").is_empty());
        assert!(promotions(&on[..1], "merged").is_empty(), "opt-in");
    }
}
