//! The cache tags a team makes (`CACHE_TAG_TEMPLATES`): templates with one placeholder each,
//! `{branch}` (the branch, sanitized as docker/metadata-action does) or `{pr}` (a pull request's
//! number). `CACHE_TAG_PREFIX=cache-` is the one template `cache-{branch}`. Several templates name
//! several caches per branch (`api-cache-{branch},web-cache-{branch}`) and pull-request caches
//! (`cache-pr-{pr}`). Two templates that can produce one tag for two different refs are refused:
//! deleting one ref's cache would delete the other's.

use std::collections::{BTreeSet, HashMap, VecDeque};

use thiserror::Error;

use super::branch::{cache_tag_for_branch, ProtectedBranches};

/// What a template's placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{branch}`: a branch name, sanitized to `[A-Za-z0-9._-]+`.
    Branch,
    /// `{pr}`: a pull request's number.
    Pr,
}

impl Placeholder {
    fn allows(self, c: char) -> bool {
        match self {
            Placeholder::Branch => c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
            Placeholder::Pr => c.is_ascii_digit(),
        }
    }

    fn text(self) -> &'static str {
        match self {
            Placeholder::Branch => "{branch}",
            Placeholder::Pr => "{pr}",
        }
    }
}

/// One template: literal text around one placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    pub before: String,
    pub placeholder: Placeholder,
    pub after: String,
}

impl TagTemplate {
    /// The template as written.
    pub fn text(&self) -> String {
        format!("{}{}{}", self.before, self.placeholder.text(), self.after)
    }

    /// The placeholder's part of `tag`, when `tag` is this template's.
    pub fn part_of<'t>(&self, tag: &'t str) -> Option<&'t str> {
        let middle = tag.strip_prefix(&self.before)?.strip_suffix(&self.after)?;
        (!middle.is_empty() && middle.chars().all(|c| self.placeholder.allows(c))).then_some(middle)
    }

    fn fill(&self, part: &str) -> String {
        format!("{}{part}{}", self.before, self.after)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    #[error("{template:?} must hold exactly one {{branch}} or {{pr}}")]
    Placeholder { template: String },
    #[error("{template:?} may only hold the characters of an image tag ([A-Za-z0-9._-]) around its placeholder")]
    Characters { template: String },
    #[error("{template:?} makes tags longer than ECR's 128 characters before the branch")]
    Length { template: String },
    #[error("no template given")]
    Empty,
    #[error("{template:?} has no literal text: every tag would be a cache tag")]
    NoLiteral { template: String },
    #[error("{first:?} and {second:?} both make the tag {example:?} (for two different refs): deleting one's cache would delete the other's; give them distinct literal text")]
    Ambiguous {
        first: String,
        second: String,
        example: String,
    },
}

/// The cache tags of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTags {
    templates: Vec<TagTemplate>,
}

impl CacheTags {
    /// `<prefix>{branch}`: what `CACHE_TAG_PREFIX` alone means.
    pub fn from_prefix(prefix: &str) -> Self {
        CacheTags {
            templates: vec![TagTemplate {
                before: prefix.to_owned(),
                placeholder: Placeholder::Branch,
                after: String::new(),
            }],
        }
    }

    /// A comma-separated list of templates; refused when one is malformed or two overlap.
    pub fn parse(spec: &str) -> Result<Self, TemplateError> {
        let mut templates = Vec::new();
        for text in spec.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            templates.push(parse_one(text)?);
        }
        if templates.is_empty() {
            return Err(TemplateError::Empty);
        }
        for (i, first) in templates.iter().enumerate() {
            for second in &templates[i + 1..] {
                if let Some(example) = shared_tag(first, second) {
                    return Err(TemplateError::Ambiguous {
                        first: first.text(),
                        second: second.text(),
                        example,
                    });
                }
            }
        }
        Ok(CacheTags { templates })
    }

    pub fn templates(&self) -> &[TagTemplate] {
        &self.templates
    }

    /// The templates as configured, comma-separated.
    pub fn text(&self) -> String {
        self.templates
            .iter()
            .map(TagTemplate::text)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every `{branch}` template's tag for `branch`.
    pub fn for_branch(&self, branch: &str) -> Vec<String> {
        let sanitized = cache_tag_for_branch("", branch);
        self.of(Placeholder::Branch)
            .map(|t| t.fill(&sanitized))
            .collect()
    }

    /// Every `{pr}` template's tag for pull request `number`.
    pub fn for_pr(&self, number: u64) -> Vec<String> {
        self.of(Placeholder::Pr)
            .map(|t| t.fill(&number.to_string()))
            .collect()
    }

    pub fn has(&self, placeholder: Placeholder) -> bool {
        self.of(placeholder).next().is_some()
    }

    fn of(&self, placeholder: Placeholder) -> impl Iterator<Item = &TagTemplate> {
        self.templates
            .iter()
            .filter(move |t| t.placeholder == placeholder)
    }

    /// Whether `tag` is a cache tag of any template.
    pub fn is_cache_tag(&self, tag: &str) -> bool {
        self.templates.iter().any(|t| t.part_of(tag).is_some())
    }

    /// The sanitized branch part of a `{branch}` template's tag.
    pub fn branch_part<'t>(&self, tag: &'t str) -> Option<&'t str> {
        self.of(Placeholder::Branch).find_map(|t| t.part_of(tag))
    }

    /// The pull request number of a `{pr}` template's tag.
    pub fn pr_part(&self, tag: &str) -> Option<u64> {
        // Only the number as a template writes it: `pr-012-cache` is no pull request's tag.
        self.of(Placeholder::Pr)
            .find_map(|t| t.part_of(tag))
            .filter(|n| !n.starts_with('0'))
            .and_then(|n| n.parse().ok())
    }

    /// Whether `tag` could be the cache tag of a protected branch (through any `{branch}`
    /// template): such a tag is never removed for a deleted or gone branch.
    pub fn protected_by(&self, protected: &ProtectedBranches, tag: &str) -> bool {
        self.of(Placeholder::Branch).any(|t| {
            t.part_of(tag).is_some_and(|part| {
                // The prefix form keeps its tested rule: a pattern's literals sanitized like a
                // branch, its `*` any sanitized text.
                protected.protects_tag("", part)
            })
        })
    }

    /// A branch in `branches` one of whose tags is `tag`: it owns that cache.
    pub fn branch_with_tag<'b>(&self, tag: &str, branches: &'b [String]) -> Option<&'b str> {
        let part = self.branch_part(tag)?;
        branches
            .iter()
            .find(|b| cache_tag_for_branch("", b) == part)
            .map(String::as_str)
    }
}

fn parse_one(text: &str) -> Result<TagTemplate, TemplateError> {
    let found: Vec<(usize, Placeholder)> = [Placeholder::Branch, Placeholder::Pr]
        .into_iter()
        .flat_map(|p| text.match_indices(p.text()).map(move |(i, _)| (i, p)))
        .collect();
    let [(at, placeholder)] = found[..] else {
        return Err(TemplateError::Placeholder {
            template: text.to_owned(),
        });
    };
    let before = &text[..at];
    let after = &text[at + placeholder.text().len()..];
    if !(before.chars().chain(after.chars()))
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(TemplateError::Characters {
            template: text.to_owned(),
        });
    }
    // A template without literal text would make every tag a cache tag; a tag starts with a
    // letter, a digit or `_` (the rule CACHE_TAG_PREFIX has always had).
    if before.is_empty() && after.is_empty() {
        return Err(TemplateError::NoLiteral {
            template: text.to_owned(),
        });
    }
    if before
        .chars()
        .next()
        .is_some_and(|c| !(c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(TemplateError::Characters {
            template: text.to_owned(),
        });
    }
    if before.len() + after.len() > 100 {
        return Err(TemplateError::Length {
            template: text.to_owned(),
        });
    }
    Ok(TagTemplate {
        before: before.to_owned(),
        placeholder,
        after: after.to_owned(),
    })
}

/// A tag both templates make, if any: the shortest, found by a breadth-first walk of the two
/// templates' automata side by side (literal positions, then the placeholder's loop). Exact for
/// these one-placeholder languages: characters outside the literals only matter by class, so one
/// representative of each class stands for the rest.
fn shared_tag(a: &TagTemplate, b: &TagTemplate) -> Option<String> {
    let mut alphabet: BTreeSet<char> = a
        .before
        .chars()
        .chain(a.after.chars())
        .chain(b.before.chars())
        .chain(b.after.chars())
        .collect();
    let letter = ('a'..='z').chain('A'..='Z').find(|c| !alphabet.contains(c));
    let digit = ('0'..='9').find(|c| !alphabet.contains(c));
    alphabet.extend(letter);
    alphabet.extend(digit);
    alphabet.extend(['.', '_', '-']);

    let start = (State::start(a), State::start(b));
    // Each pair reached, with the pair and character it was reached from (to spell the tag).
    let mut seen: HashMap<Pair, Option<(Pair, char)>> = HashMap::new();
    seen.insert(start, None);
    let mut queue = VecDeque::from([start]);
    while let Some(pair) = queue.pop_front() {
        if pair.0.accepts(a) && pair.1.accepts(b) {
            let mut text = Vec::new();
            let mut at = pair;
            while let Some(Some((from, c))) = seen.get(&at) {
                text.push(*c);
                at = *from;
            }
            return Some(text.into_iter().rev().collect());
        }
        for &c in &alphabet {
            for x in pair.0.step(a, c) {
                for y in pair.1.step(b, c) {
                    if let std::collections::hash_map::Entry::Vacant(e) = seen.entry((x, y)) {
                        e.insert(Some((pair, c)));
                        queue.push_back((x, y));
                    }
                }
            }
        }
    }
    None
}

type Pair = (State, State);

/// A position in a template's automaton: within `before`, in the placeholder (after at least one
/// character), or within `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum State {
    Before(usize),
    Part,
    After(usize),
}

impl State {
    fn start(_: &TagTemplate) -> State {
        State::Before(0)
    }

    fn accepts(self, t: &TagTemplate) -> bool {
        match self {
            State::After(i) => i == t.after.len(),
            State::Part => t.after.is_empty(),
            State::Before(_) => false,
        }
    }

    fn step(self, t: &TagTemplate, c: char) -> Vec<State> {
        let before = t.before.as_bytes();
        let after = t.after.as_bytes();
        let lit = |s: &[u8], i: usize| s.get(i).is_some_and(|&b| b as char == c);
        match self {
            State::Before(i) if i < before.len() => {
                if lit(before, i) {
                    vec![State::Before(i + 1)]
                } else {
                    vec![]
                }
            }
            // The placeholder's first character.
            State::Before(_) => {
                if t.placeholder.allows(c) {
                    vec![State::Part]
                } else {
                    vec![]
                }
            }
            State::Part => {
                let mut next = Vec::new();
                if t.placeholder.allows(c) {
                    next.push(State::Part);
                }
                if lit(after, 0) {
                    next.push(State::After(1));
                }
                next
            }
            State::After(i) => {
                if lit(after, i) {
                    vec![State::After(i + 1)]
                } else {
                    vec![]
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::glob::Glob;

    fn tags(spec: &str) -> CacheTags {
        CacheTags::parse(spec).unwrap()
    }

    #[test]
    fn branches_and_pull_requests_fill_their_templates() {
        let t = tags("api-cache-{branch}, web-cache-{branch},cache-pr-{pr}");
        assert_eq!(
            t.for_branch("feature/login"),
            vec!["api-cache-feature-login", "web-cache-feature-login"]
        );
        assert_eq!(t.for_pr(123), vec!["cache-pr-123"]);
        assert!(t.is_cache_tag("web-cache-main"));
        assert!(t.is_cache_tag("cache-pr-9"));
        assert!(!t.is_cache_tag("cache-pr-x"));
        assert!(!t.is_cache_tag("api-cache-"));
        assert_eq!(t.pr_part("cache-pr-42"), Some(42));
        assert_eq!(
            t.pr_part("cache-pr-042"),
            None,
            "not how a template writes 42"
        );
        assert_eq!(t.branch_part("api-cache-feature-x"), Some("feature-x"));
        let live = vec!["feature/x".to_owned()];
        assert_eq!(
            t.branch_with_tag("web-cache-feature-x", &live),
            Some("feature/x")
        );
        // Another branch with the same sanitized name owns the tag too (many-to-one).
        let other = vec!["main".to_owned(), "feature-x".to_owned()];
        assert_eq!(
            t.branch_with_tag("api-cache-feature-x", &other),
            Some("feature-x")
        );
        assert_eq!(t.branch_with_tag("api-cache-feature-y", &other), None);
        assert_eq!(t.branch_with_tag("cache-pr-1", &live), None);
        assert_eq!(CacheTags::from_prefix("cache-"), tags("cache-{branch}"));
        assert_eq!(
            t.text(),
            "api-cache-{branch},web-cache-{branch},cache-pr-{pr}"
        );
    }

    #[test]
    fn protection_covers_every_branch_template() {
        let t = tags("api-cache-{branch},web-cache-{branch},cache-pr-{pr}");
        let p = ProtectedBranches::new(vec![Glob::new("main"), Glob::new("release/*")]);
        assert!(t.protected_by(&p, "api-cache-main"));
        assert!(t.protected_by(&p, "web-cache-release-1.2"));
        assert!(!t.protected_by(&p, "web-cache-feature"));
        assert!(!t.protected_by(&p, "cache-pr-1"));
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in [
            "cache-",
            "cache-{branch}-{pr}",
            "cache/{branch}",
            "{branch}{branch}",
            " , ",
        ] {
            assert!(CacheTags::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}{{branch}}", "x".repeat(101));
        assert!(matches!(
            CacheTags::parse(&long),
            Err(TemplateError::Length { .. })
        ));
    }

    #[test]
    fn templates_that_can_make_one_tag_for_two_refs_are_refused() {
        // Branch `pr-12` and pull request 12 would share cache-pr-12.
        let err = CacheTags::parse("cache-{branch},cache-pr-{pr}").unwrap_err();
        let TemplateError::Ambiguous { example, .. } = &err else {
            panic!("{err}")
        };
        assert!(example.starts_with("cache-pr-"), "{example}");
        assert!(err.to_string().contains("cache-{branch}"));
        // Prefix inside another's placeholder, suffixes, digits only.
        for spec in [
            "cache-{branch},cache-{branch}-x",
            "{branch}-cache,x-{branch}-cache",
            "pr-{pr},pr-{pr}",
            "a{branch},{branch}b",
        ] {
            assert!(
                matches!(CacheTags::parse(spec), Err(TemplateError::Ambiguous { .. })),
                "{spec}"
            );
        }
        // Distinct literals keep them apart.
        for spec in [
            "branch-{branch},pr-{pr}",
            "api-cache-{branch},web-cache-{branch}",
            "cache-{branch},pr-{pr}-cache",
            "cache-pr-{pr},cache-mq-{pr}",
        ] {
            assert!(CacheTags::parse(spec).is_ok(), "{spec}");
        }
    }

    #[test]
    fn a_found_overlap_is_a_tag_of_both() {
        // The witness is a real tag of both templates, for any pair the search calls ambiguous.
        let pairs = [
            ("cache-{branch}", "cache-pr-{pr}"),
            ("a{branch}", "{branch}b"),
            ("{branch}-cache", "x-{branch}-cache"),
        ];
        for (x, y) in pairs {
            let (x, y) = (parse_one(x).unwrap(), parse_one(y).unwrap());
            let tag = shared_tag(&x, &y).unwrap();
            assert!(
                x.part_of(&tag).is_some() && y.part_of(&tag).is_some(),
                "{tag}"
            );
        }
    }
}
