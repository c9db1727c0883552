//! Operator CLI on the same core as the Lambda: preview everything a scheduled sweep would do in
//! one repository, sweep it (deleting only what was shown), or print a branch's cache tag.
//! AWS credentials, region and endpoint come from the standard chain (or `--profile`,
//! `--region`); the sweep's options from the same environment variables as the Lambda
//! (`STALE_CACHE_DAYS`, `KEEP_TAGS`, `PROTECTED_BRANCHES`, `CACHE_TAG_PREFIX`, `REPOSITORY_MAP`,
//! `GITHUB_OWNER`), with `GITHUB_TOKEN` for the gone-branch check.
//!
//! Exit codes: 0 success, 1 error (AWS, credentials, configuration), 2 usage, 3 repository not
//! found, 4 some deletions failed, 5 not confirmed, 6 changes pending (`plan --exit-code`).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use ecr_cache_pruner::adapters::ecr::EcrRegistry;
use ecr_cache_pruner::adapters::github::GithubBranches;
use ecr_cache_pruner::app::audit::{manifest_records, tag_records, Cause};
use ecr_cache_pruner::app::ports::RegistryError;
use ecr_cache_pruner::app::prune::PruneError;
use ecr_cache_pruner::app::sweep::{sweep_one, ConfirmedPlan, SweepError, SweepSettings};
use ecr_cache_pruner::core::branch::cache_tag_for_branch;
use ecr_cache_pruner::inbound::cli::{render_plan, CliReport};
use ecr_cache_pruner::inbound::config::{Config, DEFAULT_CACHE_TAG_PREFIX};

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
    },
    /// Sweep a repository: shows the plan, asks (unless --yes), then deletes what was shown and
    /// is still safe to delete now, never anything else.
    Sweep {
        #[arg(long, short)]
        repository: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        /// Cap on deletions in this run.
        #[arg(long, default_value_t = 100_000)]
        max_deletions: usize,
    },
    /// Print the cache tag the pruner derives for a branch (for CI scripts).
    TagFor {
        branch: String,
        #[arg(long, env = "CACHE_TAG_PREFIX", default_value = DEFAULT_CACHE_TAG_PREFIX)]
        prefix: String,
    },
}

const EXIT_ERROR: u8 = 1;
const EXIT_NO_REPOSITORY: u8 = 3;
const EXIT_PARTIAL: u8 = 4;
const EXIT_NOT_CONFIRMED: u8 = 5;
const EXIT_CHANGES_PENDING: u8 = 6;

/// Why the CLI stopped: an exit code, a short kind for scripts, and a sentence for people.
struct Failure {
    code: u8,
    kind: &'static str,
    message: String,
}

impl Failure {
    fn new(code: u8, kind: &'static str, message: impl Into<String>) -> Self {
        Failure {
            code,
            kind,
            message: message.into(),
        }
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

fn explain(err: SweepError) -> Failure {
    if let SweepError::Prune(PruneError::Registry(RegistryError::RepositoryNotFound {
        repository,
    })) = &err
    {
        return Failure::new(
            EXIT_NO_REPOSITORY,
            "repository_not_found",
            format!("repository {repository} does not exist (check the name and the region)"),
        );
    }
    let text = err.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("credential") {
        Failure::new(EXIT_ERROR, "no_credentials", format!("no usable AWS credentials: pass --profile, set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or log in with `aws sso login` ({text})"))
    } else if lower.contains("region") {
        Failure::new(
            EXIT_ERROR,
            "no_region",
            format!("no AWS region: pass --region or set AWS_REGION ({text})"),
        )
    } else if matches!(err, SweepError::Branches(_)) {
        Failure::new(EXIT_ERROR, "github", text)
    } else {
        Failure::new(EXIT_ERROR, "aws", text)
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What the CLI works with: ECR, GitHub when a token is given, and the sweep's settings from the
/// same variables the Lambda reads.
struct Session {
    ecr: EcrRegistry,
    github: Option<GithubBranches>,
    settings: SweepSettings,
}

async fn session(cli: &Cli) -> Result<Session, Failure> {
    let config =
        Config::from_env().map_err(|e| Failure::new(EXIT_ERROR, "configuration", e.to_string()))?;
    let github = match std::env::var("GITHUB_TOKEN") {
        Ok(token) if !token.trim().is_empty() => Some(
            GithubBranches::new(&config.github_api_url, token.trim())
                .map_err(|e| Failure::new(EXIT_ERROR, "github", e.to_string()))?,
        ),
        _ => None,
    };
    let sdk =
        ecr_cache_pruner::adapters::aws::load_config_for(cli.region.clone(), cli.profile.clone())
            .await;
    let mut settings = config.sweep_settings();
    // The operator names the repository: the deployment's scope does not apply, and the CLI
    // always shows the storage estimate.
    settings.estimate_reclaimed = true;
    Ok(Session {
        ecr: EcrRegistry::new(aws_sdk_ecr::Client::new(&sdk)),
        github,
        settings,
    })
}

/// One repository's sweep (dry run: the plan), behind a spinner.
async fn sweep_repository(
    session: &Session,
    repository: &str,
    settings: &SweepSettings,
    quiet: bool,
) -> Result<CliReport, Failure> {
    let verb = if settings.dry_run {
        "reading"
    } else {
        "sweeping"
    };
    let bar = (!quiet).then(|| spinner(&format!("{verb} {repository}")));
    let result = sweep_one(
        &session.ecr,
        settings,
        session.github.as_ref(),
        repository,
        now_secs(),
        ecr_cache_pruner::app::prune::Run::UNBOUNDED,
    )
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let (report, tags) = result.map_err(explain)?;
    Ok(CliReport::new(report, tags))
}

fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn print(report: &CliReport, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("report serializes")
        );
        // The audit trail, as the Lambda writes it, for the operator's own records.
        let cause = Cause::new("cli", None);
        let mut records = manifest_records(&report.report, &cause);
        records.extend(tag_records(&report.tags, &cause));
        for record in records {
            eprintln!(
                "{}",
                serde_json::to_string(&record).expect("audit serializes")
            );
        }
    } else {
        print!("{}", render_plan(report));
    }
}

fn confirm(planned: &CliReport, repository: &str) -> Result<(), Failure> {
    eprint!("{}", render_plan(planned));
    eprint!(
        "Delete these {} manifest(s) and remove {} tag(s) in {repository}? [y/N] ",
        planned.report.would_delete.len(),
        planned.tags_to_remove()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let interactive = std::io::stdin().is_terminal();
    let read = std::io::stdin().lock().read_line(&mut answer).unwrap_or(0);
    if read == 0 || !matches!(answer.trim(), "y" | "Y" | "yes") {
        eprintln!();
        let hint = if interactive {
            ""
        } else {
            " (stdin is not a terminal: pass --yes)"
        };
        return Err(Failure::new(
            EXIT_NOT_CONFIRMED,
            "not_confirmed",
            format!("not confirmed; nothing deleted{hint}"),
        ));
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    let json = cli.json;
    match &cli.command {
        Command::TagFor { branch, prefix } => {
            println!("{}", cache_tag_for_branch(prefix, branch));
            Ok(0)
        }
        Command::Plan {
            repository,
            exit_code,
        } => {
            let session = session(&cli).await?;
            let mut settings = session.settings.clone();
            settings.dry_run = true;
            settings.max_deletions = usize::MAX;
            let report = sweep_repository(&session, repository, &settings, json).await?;
            print(&report, json);
            Ok(if *exit_code && report.changes_pending {
                EXIT_CHANGES_PENDING
            } else {
                0
            })
        }
        Command::Sweep {
            repository,
            yes,
            max_deletions,
        } => {
            let session = session(&cli).await?;
            let mut settings = session.settings.clone();
            settings.dry_run = true;
            settings.max_deletions = *max_deletions;
            let planned = sweep_repository(&session, repository, &settings, json).await?;
            if !planned.changes_pending {
                print(&planned, json);
                return Ok(0);
            }
            if !yes {
                confirm(&planned, repository)?;
            }
            // Everything is found and checked again; only what was also shown is deleted.
            settings.dry_run = false;
            settings.confirmed = Some(ConfirmedPlan::from_dry_run(&planned.report, &planned.tags));
            let done = sweep_repository(&session, repository, &settings, json).await?;
            print(&done, json);
            Ok(if done.report.failures.is_empty() {
                0
            } else {
                EXIT_PARTIAL
            })
        }
    }
}
