//! Branch names, cache tags and protected-branch globs.

use super::glob::{glob_match, Glob};

/// The cache tag for a branch: `prefix` + branch with every run of characters outside
/// `[a-zA-Z0-9._-]` replaced by a single `-` (docker/metadata-action's rule).
/// `feature/login` → `cache-feature-login`.
pub fn cache_tag_for_branch(prefix: &str, branch: &str) -> String {
    let mut tag = String::with_capacity(prefix.len() + branch.len());
    tag.push_str(prefix);
    let mut in_run = false;
    for c in branch.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            tag.push(c);
            in_run = false;
        } else if !in_run {
            tag.push('-');
            in_run = true;
        }
    }
    tag
}

/// Whether another branch name could map to the same cache tag as `branch`: the rule maps names
/// many-to-one only through `-` (`feature/x`, `feature@x` and `feature-x` all give
/// `cache-feature-x`), so a tag without `-` after the prefix has exactly one branch.
pub fn tag_may_be_shared(prefix: &str, branch: &str) -> bool {
    cache_tag_for_branch(prefix, branch)[prefix.len()..].contains('-')
}

/// The protected-branch list (`PROTECTED_BRANCHES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedBranches(Vec<Glob>);

impl ProtectedBranches {
    pub fn new(patterns: Vec<Glob>) -> Self {
        ProtectedBranches(patterns)
    }

    pub fn patterns(&self) -> &[Glob] {
        &self.0
    }

    pub fn is_protected(&self, branch: &str) -> bool {
        self.0.iter().any(|g| g.matches(branch))
    }

    /// Whether `tag` could be the cache tag of some protected branch. Branch names map to tags
    /// many-to-one (`release/1.2` and `release-1.2` share `cache-release-1.2`), so a deleted
    /// branch's tag is only removed when no protected branch can produce the same tag.
    pub fn protects_tag(&self, prefix: &str, tag: &str) -> bool {
        let Some(rest) = tag.strip_prefix(prefix) else {
            return false;
        };
        self.0
            .iter()
            .any(|g| sanitized_glob_matches(g.as_str(), rest))
    }
}

/// Whether some branch matching `pattern` sanitizes to `sanitized`. The pattern's literal parts
/// are sanitized like a branch; `*` may produce any sanitized text. Conservative: when a literal
/// ends or starts with a character that sanitizes to `-`, the `-` may merge with the wildcard's
/// output, so those dashes are made optional by matching against a dash-collapsed form too.
fn sanitized_glob_matches(pattern: &str, sanitized: &str) -> bool {
    let sanitized_pattern: String = pattern
        .split('*')
        .map(|literal| cache_tag_for_branch("", literal))
        .collect::<Vec<_>>()
        .join("*");
    if glob_match(&sanitized_pattern, sanitized) {
        return true;
    }
    // A `*` next to a `-` can swallow it (e.g. `release/*` with branch `release/` + `/x`);
    // let each `-` adjacent to a `*` also match nothing.
    let relaxed = sanitized_pattern.replace("-*", "*").replace("*-", "*");
    glob_match(&relaxed, sanitized)
}

/// Whether `earlier`, a paged branch listing (pages by offset over a stable order), shows no
/// sign of a shift, checked against `later`, the next one. A paged listing misses a branch when
/// one ahead of its reading position is deleted before it ends: a branch it already read
/// (`later` then lacks it, or it was renamed: its old name is gone), or one created behind its
/// position and deleted again (the creation repeated a name in `earlier` first). So `earlier`
/// counts as complete when it repeats no name and `later` still holds every branch it read. Not
/// seen: a branch it read, deleted and created again before `later` reads it.
pub fn listing_complete(earlier: &[String], later: &[String]) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(earlier.len());
    let repeats = !earlier.iter().all(|b| seen.insert(b.as_str()));
    let later: std::collections::HashSet<&str> = later.iter().map(String::as_str).collect();
    !repeats && earlier.iter().all(|b| later.contains(b.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_tags_are_found() {
        assert!(tag_may_be_shared("cache-", "feature/x"));
        assert!(tag_may_be_shared("cache-", "feature-x"));
        assert!(!tag_may_be_shared("cache-", "main2"));
        assert!(!tag_may_be_shared("cache-", "v1.2_rc"));
    }

    fn protected(list: &[&str]) -> ProtectedBranches {
        ProtectedBranches::new(list.iter().map(|p| Glob::new(p)).collect())
    }

    #[test]
    fn tag_rule_matches_metadata_action() {
        assert_eq!(cache_tag_for_branch("cache-", "main"), "cache-main");
        assert_eq!(
            cache_tag_for_branch("cache-", "feature/login"),
            "cache-feature-login"
        );
        assert_eq!(cache_tag_for_branch("cache-", "a//b"), "cache-a-b");
        assert_eq!(
            cache_tag_for_branch("cache-", "fix/ünïcode+x"),
            "cache-fix-n-code-x"
        );
        assert_eq!(
            cache_tag_for_branch("cache-", "v1.2_rc-3"),
            "cache-v1.2_rc-3"
        );
    }

    #[test]
    fn protected_branches_and_colliding_tags() {
        let p = protected(&["main", "release/*"]);
        assert!(p.is_protected("main"));
        assert!(p.is_protected("release/1.2"));
        assert!(!p.is_protected("release-1.2"));
        // release-1.2 is not protected, but its tag is also release/1.2's tag.
        assert!(p.protects_tag("cache-", "cache-release-1.2"));
        assert!(p.protects_tag("cache-", "cache-main"));
        assert!(!p.protects_tag("cache-", "cache-feature-x"));
        assert!(!p.protects_tag("cache-", "cache-mainline"));
        assert!(!p.protects_tag("cache-", "other-main"));
    }

    #[test]
    fn a_listing_is_complete_when_the_next_still_holds_all_it_read() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // A branch created since (or one the first missed, which the union of both keeps): no
        // branch the first read is gone, so no page of it shifted.
        assert!(listing_complete(
            &names(&["a", "c"]),
            &names(&["a", "b", "c"])
        ));
        assert!(listing_complete(&[], &[]));
        // `a` deleted after the first listing read it: its later pages may have shifted.
        assert!(!listing_complete(&names(&["a", "c"]), &names(&["c", "d"])));
        // A name twice: a branch was created behind the reading position, and its deletion
        // before the end would shift a page back unseen.
        assert!(!listing_complete(
            &names(&["a", "b", "b"]),
            &names(&["a", "b"])
        ));
    }
}
