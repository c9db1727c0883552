//! The operator CLI's work with AWS and GitHub: the session (clients and settings from the same
//! variables the Lambda reads), one repository's sweep or plan within a deadline, the
//! confirmation prompt, the audit lines, and errors explained by their type.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use aws_credential_types::provider::ProvideCredentials;

use crate::adapters::ecr::EcrRegistry;
use crate::adapters::github::GithubBranches;
use crate::app::audit::{manifest_records, tag_records, AuditTrail, Cause, NoAudit};
use crate::app::branch_cleanup::TagRun;
use crate::app::deadline::Deadline;
use crate::app::ports::RegistryError;
use crate::app::prune::{PruneError, RepositoryRun, Run};
use crate::app::report::{report, Progress, ReportSettings};
use crate::app::sweep::{survey_one, sweep_one, ConfirmedPlan, SweepError, SweepSettings};
use crate::core::savings::{RepositorySavings, SavingsReport};
use crate::inbound::now_secs;

use super::rules::{shell_variables, EffectiveRules, RulesChoice, STACK_TOKEN_VARIABLE};
use super::{render_plan, CliRun};

pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NO_REPOSITORY: u8 = 3;
pub const EXIT_PARTIAL: u8 = 4;
pub const EXIT_NOT_CONFIRMED: u8 = 5;
pub const EXIT_CHANGES_PENDING: u8 = 6;

/// Why the CLI stopped: an exit code, a short kind for scripts, and a sentence for people.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub kind: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, kind: &'static str, message: impl Into<String>) -> Self {
        Failure {
            code,
            kind,
            message: message.into(),
        }
    }
}

/// A sentence and an exit code for a failed sweep, decided by the error's type.
pub fn explain(err: SweepError) -> Failure {
    let text = err.to_string();
    match &err {
        SweepError::Prune(PruneError::Registry(RegistryError::RepositoryNotFound {
            repository,
        })) => Failure::new(
            EXIT_NO_REPOSITORY,
            "repository_not_found",
            format!("repository {repository} does not exist (check the name and the region)"),
        ),
        SweepError::Prune(PruneError::Registry(RegistryError::NoCredentials {
            message, ..
        })) => no_credentials(message, std::env::var("AWS_PROFILE").ok().as_deref()),
        SweepError::Prune(PruneError::Registry(RegistryError::AccessDenied { .. })) => {
            Failure::new(EXIT_ERROR, "access_denied", text)
        }
        SweepError::Prune(PruneError::OutOfTime { .. }) => Failure::new(
            EXIT_ERROR,
            "out_of_time",
            format!("{text} (raise --timeout)"),
        ),
        SweepError::Branches(_) => Failure::new(EXIT_ERROR, "github", text),
        _ => Failure::new(EXIT_ERROR, "aws", text),
    }
}

/// No usable credentials: the provider's own words and what to do about them.
pub fn no_credentials(sentence: &str, profile: Option<&str>) -> Failure {
    let lower = sentence.to_ascii_lowercase();
    let hint = match profile {
        Some(profile) if lower.contains("sso") || lower.contains("token") => format!(
            "sign in with `aws sso login --profile {profile}`, then run this again"
        ),
        Some(profile) => format!(
            "check the profile `{profile}` in your AWS config file (AWS_CONFIG_FILE, default ~/.aws/config)"
        ),
        None => "pass --profile, set AWS_PROFILE, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            .to_owned(),
    };
    Failure::new(
        EXIT_ERROR,
        "no_credentials",
        format!("no usable AWS credentials ({sentence}); {hint}"),
    )
}

/// What the CLI works with: ECR, GitHub when the rules carry a token, the sweep's settings from
/// the rules (the stack's or the shell's, with where each came from), and the run's deadline.
pub struct Session {
    /// ECR, with each manifest read (a pull) announced before it is made.
    pub ecr: super::pulls::PullNotice<EcrRegistry>,
    pub github: Option<GithubBranches>,
    pub settings: SweepSettings,
    pub rules: EffectiveRules,
    pub deadline: Instant,
}

/// What the operator asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Read every manifest to estimate the storage freed (each read is a pull: opt-in).
    pub estimate_bytes: bool,
    /// No read or delete batch starts after this much time.
    pub timeout: Duration,
    /// Whose rules judge.
    pub rules: RulesChoice,
    /// Print the rules on stderr before reading (the human output).
    pub show_rules: bool,
}

/// `sweep` deletes: it judges with the deployed stack's rules or, by explicit choice, the shell's.
pub fn require_rules_choice(rules: &RulesChoice) -> Result<(), Failure> {
    match rules {
        RulesChoice::Unchosen => Err(Failure::new(
            EXIT_USAGE,
            "no_rules",
            "sweep deletes, so it needs to know whose rules to judge with: pass --stack NAME (the deployed pruner's) or --rules-from-env (this shell's variables)",
        )),
        _ => Ok(()),
    }
}

/// With a stack's rules, a repository outside the stack's `SWEEP_REPOSITORIES` is refused: its
/// pruner never acts there, so there is nothing of the stack's to preview or repeat.
pub fn check_scope(session: &Session, repository: &str) -> Result<(), Failure> {
    if session.rules.function.is_some() && !session.rules.config.in_scope(repository) {
        let scope = session
            .rules
            .rules
            .iter()
            .find(|r| r.variable == "SWEEP_REPOSITORIES")
            .map(|r| r.value.clone())
            .unwrap_or_default();
        return Err(Failure::new(
            EXIT_ERROR,
            "out_of_scope",
            format!(
                "repository {repository} is outside the scope of {} (SWEEP_REPOSITORIES={scope}): its pruner never acts there",
                session.rules.from
            ),
        ));
    }
    Ok(())
}

/// The SDK configuration the CLI's calls use: credentials checked first (a profile that does
/// not exist, an expired SSO sign-in or a failing credential_process is said as such), then the
/// region.
pub async fn aws(options: &SessionOptions) -> Result<aws_config::SdkConfig, Failure> {
    let sdk =
        crate::adapters::aws::load_config_for(options.region.clone(), options.profile.clone())
            .await;
    if let Some(profile) = &options.profile {
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
            eprintln!(
                "note: using the profile `{profile}` (--profile); AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment are ignored"
            );
        }
    }
    let profile = options
        .profile
        .clone()
        .or_else(|| std::env::var("AWS_PROFILE").ok());
    match sdk.credentials_provider() {
        None => {
            return Err(no_credentials(
                "no credentials provider is configured",
                profile.as_deref(),
            ))
        }
        Some(provider) => {
            if let Err(err) = provider.provide_credentials().await {
                return Err(no_credentials(
                    &crate::adapters::aws::sentence_of(&err),
                    profile.as_deref(),
                ));
            }
        }
    }
    if sdk.region().is_none() {
        return Err(Failure::new(
            EXIT_ERROR,
            "no_region",
            "no AWS region: pass --region, set AWS_REGION, or use a profile that names one",
        ));
    }
    Ok(sdk)
}

pub async fn session(options: &SessionOptions) -> Result<Session, Failure> {
    let sdk = aws(options).await?;
    let (rules, token) = match &options.rules {
        RulesChoice::Stack(stack) => stack_rules(&sdk, stack).await?,
        RulesChoice::Shell | RulesChoice::Unchosen => {
            let variables: std::collections::BTreeMap<String, String> = std::env::vars().collect();
            let rules = EffectiveRules::from_variables(&variables, "shell".into(), None)
                .map_err(|e| Failure::new(EXIT_ERROR, "configuration", e.to_string()))?;
            let token = variables
                .get("GITHUB_TOKEN")
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty());
            (rules, token)
        }
    };
    if options.show_rules {
        eprint!("{}", rules.render());
        if rules.config.dry_run {
            eprintln!(
                "(the rules say DRY_RUN=true: the deployed pruner deletes nothing; `sweep` still deletes what you confirm)"
            );
        }
        if options.rules == RulesChoice::Unchosen {
            eprintln!(
                "(these are this shell's rules, not a deployed stack's: pass --stack NAME to judge as the pruner does)"
            );
        }
    }
    let github = match token {
        Some(token) => Some(
            GithubBranches::new(&rules.config.github_api_url, &token)
                .map_err(|e| Failure::new(EXIT_ERROR, "github", e.to_string()))?,
        ),
        None => None,
    };
    let mut settings = rules.config.sweep_settings();
    // Only the CLI's flag reads every manifest for an estimate (each read is a pull).
    settings.estimate_reclaimed = options.estimate_bytes;
    Ok(Session {
        ecr: super::pulls::PullNotice::new(
            EcrRegistry::new(aws_sdk_ecr::Client::new(&sdk)),
            options.show_rules,
        ),
        github,
        settings,
        rules,
        deadline: Instant::now() + options.timeout,
    })
}

/// The deployed pruner's rules and GitHub token: its function's environment, and the token from
/// the secret that environment names (read as the operator; unreadable is an error, since
/// judging without the token would remove caches of branches the pruner sees alive).
/// A sentence and a kind for a failed look-up of a stack's resources.
fn stack_failure(e: crate::adapters::stack::StackError) -> Failure {
    use crate::adapters::stack::StackError;
    let kind = match e {
        StackError::StackNotFound { .. } => "stack_not_found",
        StackError::NoPruner { .. } => "no_pruner",
        StackError::NothingToMove { .. } => "nothing_to_move",
        StackError::AccessDenied { .. } => "access_denied",
        _ => "aws",
    };
    Failure::new(EXIT_ERROR, kind, e.to_string())
}

/// `move-webhook-secret`: copies the webhook secret of a stack deployed with the retired
/// `GitHubWebhookSecret` parameter into a secret of its own, and prints the overrides that
/// retire the parameter while keeping the value and the webhook's URL.
pub async fn move_webhook_secret(options: &SessionOptions, json: bool) -> Result<u8, Failure> {
    let RulesChoice::Stack(stack) = &options.rules else {
        return Err(Failure::new(
            EXIT_USAGE,
            "no_stack",
            "move-webhook-secret needs the stack: pass --stack NAME",
        ));
    };
    let sdk = aws(options).await?;
    let moved = crate::adapters::stack::move_webhook_secret(
        &aws_sdk_cloudformation::Client::new(&sdk),
        &aws_sdk_secretsmanager::Client::new(&sdk),
        stack,
    )
    .await
    .map_err(stack_failure)?;
    let overrides = format!(
        "GitHubWebhookSecret=\"\" GitHubWebhookSecretArn=\"{}\"",
        moved.to
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "stack": stack, "from": moved.from, "to": moved.to, "reused": moved.reused,
                "parameter_overrides": overrides,
            })
        );
    } else {
        let verb = if moved.reused {
            "already held in"
        } else {
            "copied to"
        };
        println!("the webhook secret of {stack} is {verb} {}", moved.to);
        println!("deploy with these overrides added (samconfig.toml's parameter_overrides, or --parameter-overrides):");
        println!("  {overrides}");
        println!("the webhook keeps its URL and GitHub keeps its secret; the stack's own copy is deleted by that deploy");
    }
    Ok(0)
}

async fn stack_rules(
    sdk: &aws_config::SdkConfig,
    stack: &str,
) -> Result<(EffectiveRules, Option<String>), Failure> {
    let pruner = crate::adapters::stack::deployed_pruner(
        &aws_sdk_cloudformation::Client::new(sdk),
        &aws_sdk_lambda::Client::new(sdk),
        stack,
    )
    .await
    .map_err(stack_failure)?;
    let rules = EffectiveRules::from_variables(
        &pruner.variables,
        format!("stack {stack}"),
        Some(pruner.function.clone()),
    )
    .map_err(|e| {
        Failure::new(
            EXIT_ERROR,
            "configuration",
            format!("the stack's pruner {}: {e}", pruner.function),
        )
    })?
    .ignoring_shell(&shell_variables());
    let token = match pruner
        .variables
        .get(STACK_TOKEN_VARIABLE)
        .filter(|arn| !arn.trim().is_empty())
    {
        None => None,
        Some(arn) => {
            let secret = crate::adapters::secrets::CachedSecret::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                arn.clone(),
            );
            let token = secret.get().await.map_err(|e| {
                Failure::new(
                    EXIT_ERROR,
                    "github_token",
                    format!("{e} (the stack checks live branches with this token; the CLI needs secretsmanager:GetSecretValue on it to judge the same way)"),
                )
            })?;
            Some(token.to_string())
        }
    };
    Ok((rules, token))
}

/// The audit trail on stderr as JSON lines, written as each deleting call returns (`--json`).
pub struct StderrAudit(pub Cause);

impl AuditTrail for StderrAudit {
    fn manifests(&self, batch: &RepositoryRun) {
        write_records(manifest_records(batch, &self.0));
    }
    fn tags(&self, tags: &[TagRun]) {
        write_records(tag_records(tags, &self.0));
    }
}

fn write_records(records: Vec<crate::app::audit::AuditRecord>) {
    let mut err = std::io::stderr().lock();
    for record in records {
        let _ = writeln!(
            err,
            "{}",
            serde_json::to_string(&record).expect("audit serializes")
        );
    }
}

/// One repository's plan: what a sweep would delete and untag there, and why. Read-only by type:
/// it goes through [`survey_one`], which holds no writer. Behind a spinner unless `quiet`, within
/// the session's deadline; with `audit`, its would-be audit lines go to stderr as it goes.
pub async fn plan_repository(
    session: &Session,
    repository: &str,
    settings: &SweepSettings,
    quiet: bool,
    audit: bool,
) -> Result<CliRun, Failure> {
    one_repository(session, repository, settings, quiet, audit, Pass::Plan).await
}

/// One repository's sweep (deletes, unless `settings.dry_run`), behind a spinner unless `quiet`,
/// within the session's deadline; with `audit`, its audit lines go to stderr as it goes.
pub async fn sweep_repository(
    session: &Session,
    repository: &str,
    settings: &SweepSettings,
    quiet: bool,
    audit: bool,
) -> Result<CliRun, Failure> {
    one_repository(session, repository, settings, quiet, audit, Pass::Sweep).await
}

/// `sweep`: plan (read-only), show it and ask (unless `yes`), then sweep again deleting only what
/// was shown and is still stale at the last look-up. Exit code: 0, or [`EXIT_PARTIAL`] when some
/// deletions failed.
pub async fn sweep_confirmed(
    session: &Session,
    repository: &str,
    max_deletions: Option<usize>,
    yes: bool,
    json: bool,
) -> Result<u8, Failure> {
    let mut settings = session.settings.clone();
    // The rules' cap (the stack's MAX_DELETIONS_PER_INVOCATION) unless the command line says.
    if let Some(cap) = max_deletions {
        settings.max_deletions = cap;
    }
    let planned = plan_repository(session, repository, &settings, json, false).await?;
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
    let done = sweep_repository(session, repository, &settings, json, json).await?;
    print(&done, json);
    Ok(
        if done.report.failures.is_empty() && !done.referrers_failed() {
            0
        } else {
            EXIT_PARTIAL
        },
    )
}

/// Which use case a pass over one repository runs.
#[derive(Clone, Copy)]
enum Pass {
    /// [`survey_one`]: reads only.
    Plan,
    /// [`sweep_one`]: deletes what the settings allow.
    Sweep,
}

async fn one_repository(
    session: &Session,
    repository: &str,
    settings: &SweepSettings,
    quiet: bool,
    audit: bool,
    pass: Pass,
) -> Result<CliRun, Failure> {
    check_scope(session, repository)?;
    let verb = match pass {
        Pass::Plan => "reading",
        Pass::Sweep => "sweeping",
    };
    let bar = (!quiet).then(|| spinner(&format!("{verb} {repository}")));
    let deadline = session.deadline;
    let trail = StderrAudit(Cause::new("cli", None));
    let run = Run {
        deadline: Deadline::at_instant(deadline),
        audit: if audit { &trail } else { &NoAudit },
    };
    let (ecr, github, now) = (&session.ecr, session.github.as_ref(), now_secs());
    let result = match pass {
        Pass::Plan => survey_one(ecr, settings, github, repository, now, run)
            .await
            .map(|swept| (swept.report, swept.tags)),
        Pass::Sweep => sweep_one(ecr, settings, github, repository, now, run).await,
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let (report, tags) = result.map_err(explain)?;
    let mut run = CliRun::new(report, tags);
    run.rules = Some(session.rules.clone());
    Ok(run)
}

fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The report: JSON on stdout, or the human table.
pub fn print(report: &CliRun, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("report serializes")
        );
    } else {
        print!("{}", render_plan(report));
    }
}

/// The savings report over the repositories in scope, with a progress bar on stderr unless
/// `quiet` (indicatif draws nothing when stderr is not a terminal).
pub async fn savings_report(
    session: &Session,
    settings: &ReportSettings,
    quiet: bool,
) -> Result<SavingsReport, Failure> {
    let deadline = session.deadline;
    let stop = Deadline::at_instant(deadline);
    if !quiet {
        eprintln!(
            "the report reads every ACTIVE single manifest in scope once (one BatchGetImage per 100 per repository), for its unique bytes; {}",
            super::pulls::PULL_NOTE
        );
    }
    session.ecr.count_only();
    let bar = ReportProgress(if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        spinner("listing repositories")
    });
    let result = report(
        &session.ecr,
        settings,
        session.github.as_ref(),
        now_secs(),
        stop,
        &bar,
    )
    .await;
    bar.0.finish_and_clear();
    if !quiet {
        eprintln!("{} manifest(s) read", session.ecr.reads());
    }
    result.map_err(|err| explain(err.into()))
}

struct ReportProgress(indicatif::ProgressBar);

impl Progress for ReportProgress {
    fn listed(&self, repositories: usize) {
        self.0.set_length(repositories as u64);
        self.0.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} repositories {msg}")
                .expect("template parses"),
        );
        self.0.set_message("");
    }
    fn finished(&self, repository: &RepositorySavings) {
        self.0.set_message(repository.repository.clone());
        self.0.inc(1);
    }
}

/// Shows the plan and asks; anything but yes is a refusal (and so is stdin at its end).
pub fn confirm(planned: &CliRun, repository: &str) -> Result<(), Failure> {
    eprint!("{}", render_plan(planned));
    eprint!(
        "Delete these {} manifest(s) and remove {} tag(s) in {repository}? [y/N] ",
        planned.report.would_delete.len() + planned.referrers_to_delete(),
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
