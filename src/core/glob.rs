//! `*` globs over whole names (branches, repositories): `*` matches any run of characters,
//! including `/`.

/// A `*` glob over a whole name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Glob(pattern.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, branch: &str) -> bool {
        glob_match(&self.0, branch)
    }
}

/// Iterative wildcard match with backtracking to the last `*`: linear in practice, no recursion.
pub fn glob_match(pattern: &str, text: &str) -> bool {
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

/// Whether any of `globs` matches `name`.
pub fn any_matches(globs: &[Glob], name: &str) -> bool {
    globs.iter().any(|g| g.matches(name))
}

/// Parses a comma list of globs, ignoring blanks.
pub fn parse_list(raw: &str) -> Vec<Glob> {
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(Glob::new)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn lists() {
        let globs = parse_list(" team-a/*, app ,,");
        assert_eq!(globs.len(), 2);
        assert!(any_matches(&globs, "team-a/web"));
        assert!(any_matches(&globs, "app"));
        assert!(!any_matches(&globs, "team-b/web"));
    }
}
