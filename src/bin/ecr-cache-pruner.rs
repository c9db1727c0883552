//! Operator CLI on the same core as the Lambda: plan, sweep one repository, or print a branch's
//! cache tag. AWS credentials, region and endpoint come from the standard chain.
//!
//! Exit codes: 0 success, 1 error (AWS, credentials, I/O), 2 usage, 3 repository not found,
//! 4 some deletions failed, 5 not confirmed.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ecr_cache_pruner::adapters::ecr::EcrRegistry;
use ecr_cache_pruner::app::ports::RegistryError;
use ecr_cache_pruner::app::prune::{
    prune_snapshot, take_snapshot, PruneError, PruneSettings, RepositoryReport,
};
use ecr_cache_pruner::core::branch::cache_tag_for_branch;
use ecr_cache_pruner::inbound::cli::render_report;
use ecr_cache_pruner::inbound::config::DEFAULT_CACHE_TAG_PREFIX;

#[derive(Parser)]
#[command(
    name = "ecr-cache-pruner",
    version,
    about = "Delete stale BuildKit registry cache from Amazon ECR, safely."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what would be deleted from a repository and why. Deletes nothing.
    Plan {
        #[arg(long, short)]
        repository: String,
        /// Print the JSON report instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete the stale cache manifests of a repository (asks first unless --yes).
    Sweep {
        #[arg(long, short)]
        repository: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        /// Cap on deletions in this run.
        #[arg(long, default_value_t = 100_000)]
        max_deletions: usize,
        #[arg(long)]
        json: bool,
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

fn explain(err: PruneError) -> Failure {
    if let PruneError::Registry(RegistryError::RepositoryNotFound { repository }) = &err {
        return (
            EXIT_NO_REPOSITORY,
            format!("repository {repository} does not exist (check the name and AWS_REGION)"),
        );
    }
    let text = err.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("credential") {
        (EXIT_ERROR, format!("no usable AWS credentials: set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or log in with `aws sso login` ({text})"))
    } else if lower.contains("region") {
        (
            EXIT_ERROR,
            format!("no AWS region: set AWS_REGION ({text})"),
        )
    } else {
        (EXIT_ERROR, text)
    }
}

async fn ecr() -> EcrRegistry {
    let sdk = ecr_cache_pruner::adapters::aws::load_config().await;
    EcrRegistry::new(aws_sdk_ecr::Client::new(&sdk))
}

fn print(report: &RepositoryReport, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("report serializes")
        );
    } else {
        print!("{}", render_report(report));
    }
}

/// Snapshot and plan (dry run) or prune one repository, behind a spinner.
async fn prune(
    ecr: &EcrRegistry,
    repository: &str,
    dry_run: bool,
    max_deletions: usize,
) -> Result<RepositoryReport, Failure> {
    let verb = if dry_run { "reading" } else { "pruning" };
    let bar = spinner(&format!("{verb} {repository}"));
    let settings = PruneSettings {
        dry_run,
        max_deletions,
        estimate_reclaimed: true,
    };
    let result = match take_snapshot(ecr, repository).await {
        Ok(snapshot) => prune_snapshot(ecr, repository, &snapshot, &HashSet::new(), settings).await,
        Err(err) => Err(err),
    };
    bar.finish_and_clear();
    result.map_err(explain)
}

fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::TagFor { branch, prefix } => {
            println!("{}", cache_tag_for_branch(&prefix, &branch));
            Ok(0)
        }
        Command::Plan { repository, json } => {
            let report = prune(&ecr().await, &repository, true, usize::MAX).await?;
            print(&report, json);
            Ok(0)
        }
        Command::Sweep {
            repository,
            yes,
            max_deletions,
            json,
        } => {
            let ecr = ecr().await;
            let planned = prune(&ecr, &repository, true, max_deletions).await?;
            if planned.would_delete.is_empty() {
                print(&planned, json);
                return Ok(0);
            }
            if !yes {
                eprint!("{}", render_report(&planned));
                eprint!(
                    "Delete these {} manifest(s) from {repository}? [y/N] ",
                    planned.would_delete.len()
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
                    return Err((
                        EXIT_NOT_CONFIRMED,
                        format!("not confirmed; nothing deleted{hint}"),
                    ));
                }
            }
            // Plans again from a fresh snapshot: what was shown may have changed meanwhile, and
            // every safety check must hold at delete time.
            let done = prune(&ecr, &repository, false, max_deletions).await?;
            print(&done, json);
            Ok(if done.failures.is_empty() {
                0
            } else {
                EXIT_PARTIAL
            })
        }
    }
}
