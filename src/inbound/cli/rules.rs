//! Which rules the CLI judges with, and where each came from: the deployed stack's pruner
//! (`--stack`), the operator's shell (`--rules-from-env`), or the defaults. A plan made with rules
//! that are not the stack's says so before anything is read.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::inbound::config::{Config, ConfigError};

/// Where the CLI takes its rules from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RulesChoice {
    /// The environment of the named stack's `PrunerFunction`.
    Stack(String),
    /// The shell's variables, chosen explicitly (`--rules-from-env`).
    Shell,
    /// Neither was chosen: the shell's variables, for the read-only commands only.
    #[default]
    Unchosen,
}

/// One rule as the run uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRow {
    pub variable: &'static str,
    pub value: String,
    /// `stack <name>`, `shell` or `default`.
    pub source: String,
}

/// The rules of a run: the configuration built from them and the rows printed about them.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveRules {
    #[serde(skip)]
    pub config: Config,
    /// `stack <name>` or `shell`.
    pub from: String,
    /// The function whose environment was read, with `--stack`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    pub rules: Vec<RuleRow>,
    /// Rule variables set in the shell that a `--stack` run ignores.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_from_shell: Vec<&'static str>,
}

/// The variables that change what the CLI judges, with what their absence means.
const RULES: [(&str, &str); 16] = [
    (
        "CACHE_TAG_PREFIX",
        crate::inbound::config::DEFAULT_CACHE_TAG_PREFIX,
    ),
    ("CACHE_TAG_TEMPLATES", "(<CACHE_TAG_PREFIX>{branch})"),
    // `sweep` asks and then deletes whatever this says; `plan` and `report` never delete.
    ("DRY_RUN", "false"),
    ("PROMOTE_MERGED_GROUP_CACHE", "false"),
    (
        "PROTECTED_BRANCHES",
        crate::inbound::config::DEFAULT_PROTECTED_BRANCHES,
    ),
    ("KEEP_TAGS", "(none)"),
    ("STALE_CACHE_DAYS", "(off)"),
    ("GONE_BRANCH_MIN_AGE_HOURS", "24"),
    ("CACHE_BUDGET", "(none)"),
    ("CACHE_BUDGET_MIN_AGE_MINUTES", "60"),
    ("SWEEP_REPOSITORIES", "(any repository)"),
    ("MAX_DELETIONS_PER_INVOCATION", "1000"),
    ("REPOSITORY_MAP", "(none)"),
    ("GITHUB_OWNER", "(none)"),
    (
        "GITHUB_API_URL",
        crate::adapters::github::DEFAULT_GITHUB_API_URL,
    ),
    ("GITHUB_TOKEN", "(none: live branches are not checked)"),
];

/// The variable that carries the GitHub token in each source.
pub const STACK_TOKEN_VARIABLE: &str = "GITHUB_TOKEN_SECRET_ARN";

impl EffectiveRules {
    /// Rules from `variables` (a stack's function environment, or the shell's), labelled `from`.
    /// The token row says whether a token is used, never its value: from a stack, the secret's
    /// ARN; from the shell, "set".
    pub fn from_variables(
        variables: &BTreeMap<String, String>,
        from: String,
        function: Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            variables
                .get(name)
                .filter(|v| !v.trim().is_empty())
                .cloned()
        };
        let config = Config::from_lookup(get)?;
        let rules = RULES
            .iter()
            .map(|(variable, default)| {
                let set = if *variable == "GITHUB_TOKEN" && function.is_some() {
                    get(STACK_TOKEN_VARIABLE).map(|arn| format!("from secret {arn}"))
                } else if *variable == "GITHUB_TOKEN" {
                    get(variable).map(|_| "set".to_owned())
                } else {
                    get(variable)
                };
                match set {
                    Some(value) => RuleRow {
                        variable,
                        value,
                        source: from.clone(),
                    },
                    None => RuleRow {
                        variable,
                        value: (*default).to_owned(),
                        source: "default".to_owned(),
                    },
                }
            })
            .collect();
        Ok(EffectiveRules {
            config,
            from,
            function,
            rules,
            ignored_from_shell: Vec::new(),
        })
    }

    /// Notes the rule variables the shell sets that this (stack) run does not use.
    pub fn ignoring_shell(mut self, shell: &BTreeMap<String, String>) -> Self {
        self.ignored_from_shell = RULES
            .iter()
            .map(|(variable, _)| *variable)
            .filter(|v| shell.get(*v).is_some_and(|value| !value.trim().is_empty()))
            .collect();
        self
    }

    /// The rules as printed before a run (on stderr).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let whose = match &self.function {
            Some(function) => format!("{} (function {function})", self.from),
            None => self.from.clone(),
        };
        let _ = writeln!(out, "rules from {whose}:");
        for row in &self.rules {
            let _ = writeln!(
                out,
                "  {:<29} {:<40} {}",
                row.variable, row.value, row.source
            );
        }
        if !self.ignored_from_shell.is_empty() {
            let _ = writeln!(
                out,
                "ignored (set in this shell, not the stack's): {}",
                self.ignored_from_shell.join(", ")
            );
        }
        out
    }
}

/// The shell's variables that matter to the rules (and the token).
pub fn shell_variables() -> BTreeMap<String, String> {
    RULES
        .iter()
        .filter_map(|(name, _)| std::env::var(name).ok().map(|v| ((*name).to_owned(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn each_rule_says_where_it_came_from() {
        let rules = EffectiveRules::from_variables(
            &vars(&[
                ("KEEP_TAGS", "cache-release-*"),
                (
                    "GITHUB_TOKEN_SECRET_ARN",
                    "arn:aws:secretsmanager:r:1:secret:t",
                ),
                ("STALE_CACHE_DAYS", ""),
            ]),
            "stack prod".into(),
            Some("prod-PrunerFunction-X".into()),
        )
        .unwrap()
        .ignoring_shell(&vars(&[("KEEP_TAGS", "x"), ("STALE_CACHE_DAYS", "")]));
        let row = |v: &str| {
            rules
                .rules
                .iter()
                .find(|r| r.variable == v)
                .unwrap()
                .clone()
        };
        assert_eq!(row("KEEP_TAGS").source, "stack prod");
        assert_eq!(row("KEEP_TAGS").value, "cache-release-*");
        // Empty is unset, as in the pruner.
        assert_eq!(row("STALE_CACHE_DAYS").source, "default");
        assert_eq!(row("PROTECTED_BRANCHES").value, "main,master");
        assert!(row("GITHUB_TOKEN").value.contains("arn:aws:secretsmanager"));
        assert_eq!(rules.config.keep_tags.len(), 1);
        assert_eq!(rules.ignored_from_shell, vec!["KEEP_TAGS"]);
        let text = rules.render();
        assert!(text.contains("rules from stack prod (function prod-PrunerFunction-X)"));
        assert!(text.contains("ignored (set in this shell, not the stack's): KEEP_TAGS"));
    }

    #[test]
    fn a_shell_token_is_said_to_be_set_never_shown() {
        let rules = EffectiveRules::from_variables(
            &vars(&[("GITHUB_TOKEN", "ghp_secret")]),
            "shell".into(),
            None,
        )
        .unwrap();
        assert!(!rules.render().contains("ghp_secret"));
        assert!(rules.render().contains("GITHUB_TOKEN"));
    }

    #[test]
    fn a_bad_stack_variable_is_a_configuration_error() {
        let err = EffectiveRules::from_variables(
            &vars(&[("STALE_CACHE_DAYS", "soon")]),
            "stack s".into(),
            Some("f".into()),
        )
        .unwrap_err();
        assert_eq!(err.variable, "STALE_CACHE_DAYS");
    }
}
