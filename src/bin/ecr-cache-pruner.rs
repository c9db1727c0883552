//! Operator CLI on the same core as the Lambda: preview everything a scheduled sweep would do in
//! one repository, sweep it (deleting only what was shown), report what many repositories hold
//! and what a sweep would save (read-only), or print a branch's cache tag.
//! AWS credentials, region and endpoint come from the standard chain (or `--profile`,
//! `--region`). The rules come from the deployed stack's pruner (`--stack NAME`: its function's
//! environment and GitHub token), or from this shell's variables (`--rules-from-env`:
//! `STALE_CACHE_DAYS`, `KEEP_TAGS`, `PROTECTED_BRANCHES`, `CACHE_TAG_PREFIX`, `REPOSITORY_MAP`,
//! `GITHUB_OWNER`, `GITHUB_TOKEN`, ...); `sweep` needs one of the two. Every run prints the rules
//! it judges with and where each came from.
//!
//! Exit codes: 0 success, 1 error (AWS, credentials, configuration), 2 usage, 3 repository not
//! found, 4 some deletions failed, 5 not confirmed, 6 changes pending (`plan --exit-code`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ecr_cache_pruner::app::report::ReportSettings;
use ecr_cache_pruner::core::branch::cache_tag_for_branch;
use ecr_cache_pruner::core::cache_tags::CacheTags;
use ecr_cache_pruner::core::glob::parse_list;
use ecr_cache_pruner::core::savings::DEFAULT_PRICE_PER_GB_MONTH;
use ecr_cache_pruner::core::time::format_rfc3339;
use ecr_cache_pruner::inbound::cli::report::{render_html, render_table};
use ecr_cache_pruner::inbound::cli::rules::RulesChoice;
use ecr_cache_pruner::inbound::cli::session::{
    move_webhook_secret, plan_repository, print, require_rules_choice, savings_report, session,
    sweep_confirmed, Failure, SessionOptions, EXIT_CHANGES_PENDING, EXIT_ERROR, EXIT_USAGE,
};
use ecr_cache_pruner::inbound::config::DEFAULT_CACHE_TAG_PREFIX;
use ecr_cache_pruner::inbound::now_secs;

#[derive(Parser)]
#[command(
    name = "ecr-cache-pruner",
    version,
    about = "Delete stale BuildKit registry cache from Amazon ECR, safely."
)]
struct Cli {
    /// AWS region (default: AWS_REGION or the profile's region).
    #[arg(long, global = true)]
    region: Option<String>,
    /// Named profile from the shared AWS config files (default: AWS_PROFILE).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Machine-readable output: the report as JSON on stdout, errors as a JSON object on stdout,
    /// and one JSON audit line per deletion on stderr.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds after which no read or delete batch starts (what was done is reported).
    #[arg(long, global = true, default_value_t = 3600)]
    timeout: u64,
    /// Judge with the rules of this deployed stack's pruner (its function's environment, its
    /// GitHub token, its scope and deletion cap). Default: ECR_CACHE_PRUNER_STACK.
    #[arg(long, global = true, value_name = "NAME")]
    stack: Option<String>,
    /// Judge with this shell's variables (KEEP_TAGS, STALE_CACHE_DAYS, GITHUB_TOKEN, ...) instead
    /// of a stack's, ECR_CACHE_PRUNER_STACK's included.
    #[arg(long, global = true, conflicts_with = "stack")]
    rules_from_env: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show everything a scheduled sweep would do in a repository, and why: untagged cache
    /// manifests to delete and, when configured, cache tags to remove. Deletes nothing.
    Plan {
        #[arg(long, short)]
        repository: String,
        /// Exit with 6 when the plan has something to delete (0 when it has nothing).
        #[arg(long)]
        exit_code: bool,
        /// Also estimate the storage freed. Reads every manifest, and each read is a pull
        /// (it refreshes lastRecordedPullTime, which lifecycle rules and staleness read).
        #[arg(long)]
        estimate_bytes: bool,
    },
    /// Sweep a repository: shows the plan, asks (unless --yes), then deletes what was shown and
    /// is still safe to delete now, never anything else.
    Sweep {
        #[arg(long, short)]
        repository: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        /// Cap on deletions in this run (default: the rules' MAX_DELETIONS_PER_INVOCATION, 1000
        /// unless set).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        max_deletions: Option<u32>,
    },
    /// Read-only report over many repositories: what BuildKit cache they hold, what a sweep would
    /// delete now (sized by DescribeImages), and what that saves per month. Deletes nothing.
    Report {
        /// Comma list of repository globs (default: SWEEP_REPOSITORIES, else every repository).
        #[arg(long)]
        repositories: Option<String>,
        /// Also write a self-contained HTML page with a chart to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Storage price that prices the stale bytes (USD per GB-month).
        #[arg(long, default_value_t = DEFAULT_PRICE_PER_GB_MONTH, value_parser = price)]
        price_per_gb_month: f64,
        /// Repositories read at the same time.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
        /// Plan a cache budget per repository (`20GiB`; binary units): each repository's
        /// footprint in unique bytes, and which caches that budget would evict (least recently
        /// used first) and the storage it frees. Default: the rules' CACHE_BUDGET, if any.
        #[arg(long, value_name = "SIZE", value_parser = budget_size)]
        budget: Option<u64>,
    },
    /// Move the webhook secret of a stack deployed with the retired GitHubWebhookSecret
    /// parameter into a secret of its own (`<stack>/github-webhook-secret`), and print the
    /// overrides that retire the parameter and keep the webhook's URL. Needs --stack.
    MoveWebhookSecret,
    /// Print the cache tag the pruner derives for a branch (for CI scripts): one line per
    /// {branch} template with CACHE_TAG_TEMPLATES (or --templates), else <prefix><branch>.
    TagFor {
        branch: String,
        #[arg(long, env = "CACHE_TAG_PREFIX", default_value = DEFAULT_CACHE_TAG_PREFIX)]
        prefix: String,
        /// Cache tag templates (`api-cache-{branch},cache-pr-{pr}`); wins over --prefix.
        #[arg(long, env = "CACHE_TAG_TEMPLATES")]
        templates: Option<String>,
    },
}

fn price(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err(format!(
            "{raw:?} is not a price (a number of USD, 0 or more)"
        )),
    }
}

fn budget_size(raw: &str) -> Result<u64, String> {
    match ecr_cache_pruner::core::budget::parse_size(raw) {
        Ok(0) => Err("a budget of 0 would evict every cache".to_owned()),
        Ok(bytes) => Ok(bytes),
        Err(err) => Err(err.to_string()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            if json {
                let error = serde_json::json!({"error": {
                    "kind": failure.kind, "exit_code": failure.code, "message": failure.message,
                }});
                println!("{error}");
            } else {
                eprintln!("error: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Whose rules judge. `--stack` and `--rules-from-env` on one command line are refused by clap;
/// an exported ECR_CACHE_PRUNER_STACK is a default that `--rules-from-env` overrides (a shell
/// that exports it for everyday use can still choose its own rules for one run).
fn rules_choice(
    stack: Option<&str>,
    rules_from_env: bool,
    exported_stack: impl FnOnce() -> Option<String>,
) -> RulesChoice {
    if rules_from_env {
        return RulesChoice::Shell;
    }
    match stack.map(str::to_string).or_else(exported_stack) {
        Some(stack) if !stack.trim().is_empty() => RulesChoice::Stack(stack.trim().into()),
        _ => RulesChoice::Unchosen,
    }
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    let json = cli.json;
    let mut options = SessionOptions {
        region: cli.region.clone(),
        profile: cli.profile.clone(),
        estimate_bytes: false,
        timeout: Duration::from_secs(cli.timeout),
        rules: rules_choice(cli.stack.as_deref(), cli.rules_from_env, || {
            std::env::var("ECR_CACHE_PRUNER_STACK").ok()
        }),
        show_rules: !json,
    };
    match &cli.command {
        Command::MoveWebhookSecret => move_webhook_secret(&options, json).await,
        Command::TagFor {
            branch,
            prefix,
            templates,
        } => {
            let tags = match templates.as_deref().filter(|t| !t.trim().is_empty()) {
                None => vec![cache_tag_for_branch(prefix, branch)],
                Some(spec) => CacheTags::parse(spec)
                    .map_err(|e| Failure::new(EXIT_USAGE, "configuration", e.to_string()))?
                    .for_branch(branch),
            };
            for tag in tags {
                println!("{tag}");
            }
            Ok(0)
        }
        Command::Plan {
            repository,
            exit_code,
            estimate_bytes,
        } => {
            options.estimate_bytes = *estimate_bytes;
            let session = session(&options).await?;
            let mut settings = session.settings.clone();
            settings.max_deletions = usize::MAX;
            let report = plan_repository(&session, repository, &settings, json, json).await?;
            print(&report, json);
            Ok(if *exit_code && report.changes_pending {
                EXIT_CHANGES_PENDING
            } else {
                0
            })
        }
        Command::Report {
            repositories,
            html,
            price_per_gb_month,
            concurrency,
            budget,
        } => {
            let session = session(&options).await?;
            let scope = match repositories {
                Some(globs) => parse_list(globs),
                None => session.settings.repositories.clone(),
            };
            let settings = ReportSettings {
                sweep: session.settings.clone(),
                scope,
                concurrency: usize::from(*concurrency),
                price_per_gb_month: *price_per_gb_month,
                budget: *budget,
            };
            let report = savings_report(&session, &settings, json).await?;
            if let Some(path) = html {
                let page = render_html(&report, &format_rfc3339(now_secs()));
                std::fs::write(path, page).map_err(|e| {
                    Failure::new(
                        EXIT_ERROR,
                        "io",
                        format!("cannot write {}: {e}", path.display()),
                    )
                })?;
                let written = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                eprintln!("report page written to {}", written.display());
            }
            if json {
                let mut value = serde_json::to_value(&report).expect("report serializes");
                value["rules"] = serde_json::to_value(&session.rules).expect("rules serialize");
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).expect("report serializes")
                );
            } else {
                print!("{}", render_table(&report));
            }
            Ok(0)
        }
        Command::Sweep {
            repository,
            yes,
            max_deletions,
        } => {
            require_rules_choice(&options.rules)?;
            let session = session(&options).await?;
            let cap = max_deletions.map(|n| n as usize);
            sweep_confirmed(&session, repository, cap, *yes, json).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported(name: &str) -> impl FnOnce() -> Option<String> + '_ {
        move || Some(name.to_string())
    }

    #[test]
    fn an_exported_stack_is_a_default_the_shell_rules_override() {
        assert_eq!(
            rules_choice(None, false, exported("prod")),
            RulesChoice::Stack("prod".into())
        );
        assert_eq!(
            rules_choice(None, true, exported("prod")),
            RulesChoice::Shell
        );
        assert_eq!(
            rules_choice(Some("staging"), false, exported("prod")),
            RulesChoice::Stack("staging".into())
        );
        assert_eq!(rules_choice(None, false, || None), RulesChoice::Unchosen);
        assert_eq!(
            rules_choice(None, false, exported("  ")),
            RulesChoice::Unchosen
        );
    }

    #[test]
    fn stack_and_rules_from_env_on_one_command_line_are_refused() {
        let both = Cli::try_parse_from([
            "ecr-cache-pruner",
            "--stack",
            "prod",
            "--rules-from-env",
            "plan",
            "--repository",
            "app",
        ]);
        assert!(both.is_err());
        let shell = Cli::try_parse_from([
            "ecr-cache-pruner",
            "--rules-from-env",
            "plan",
            "--repository",
            "app",
        ]);
        assert!(shell.is_ok());
    }
}
