//! Branch names, cache tags and protected-branch globs.

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

/// A `*` glob over a whole branch name (`*` matches any run of characters, including `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchGlob(String);

impl BranchGlob {
    pub fn new(pattern: &str) -> Self {
        BranchGlob(pattern.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, branch: &str) -> bool {
        glob_match(&self.0, branch)
    }
}

/// Iterative wildcard match with backtracking to the last `*`: linear in practice, no recursion.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The protected-branch list (`PROTECTED_BRANCHES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedBranches(Vec<BranchGlob>);

impl ProtectedBranches {
    pub fn new(patterns: Vec<BranchGlob>) -> Self {
        ProtectedBranches(patterns)
    }

    pub fn patterns(&self) -> &[BranchGlob] {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn protected(list: &[&str]) -> ProtectedBranches {
        ProtectedBranches::new(list.iter().map(|p| BranchGlob::new(p)).collect())
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
    fn globs() {
        assert!(glob_match("main", "main"));
        assert!(!glob_match("main", "mainline"));
        assert!(glob_match("release/*", "release/1.2"));
        assert!(glob_match("release/*", "release/a/b"));
        assert!(!glob_match("release/*", "release-1.2"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*-hotfix", "x-hotfix"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
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
}
