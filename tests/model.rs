//! Model-based test: random repositories and random sequences of pushes, branch deletions and
//! sweeps, driven through the real pruner handler over the in-memory registry, with random faults
//! and concurrent pushes / re-tags between calls. The registry judges every delete against its own
//! state at that moment (DESIGN.md §3), never against the planner's code.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use ecr_cache_pruner::app::audit::{AuditAction, AuditRecord};
use ecr_cache_pruner::app::ports::{BranchListError, BranchLister, QueueError, SweepQueue};
use ecr_cache_pruner::core::plan::ImageStatus;
use ecr_cache_pruner::core::trigger::{continued_sweep_event, Continuation, MAX_CONTINUATIONS};
use ecr_cache_pruner::inbound::pruner::Pruner;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Value};
use support::memory::{Fault, Kind, MemoryRegistry, Op, State};
use support::moto::rfc3339;

const REPO: &str = "app";
const BRANCHES: [&str; 4] = ["main", "feature/a", "feature-b", "fix/c"];
const PROTECTED: &str = "cache-main";
/// `KEEP_TAGS` in every scenario: the cache of `fix/c` is never removed either.
const KEPT: &str = "cache-fix-c";

fn cache_tag(branch: &str) -> String {
    format!("cache-{}", branch.replace('/', "-"))
}

/// Pull requests 1..=PRS exist; their caches are `pr-<n>-cache`.
const PRS: u64 = 3;
const TEMPLATES: &str = "cache-{branch},pr-{pr}-cache";

fn pr_tag(n: u64) -> String {
    format!("pr-{n}-cache")
}

/// One image of the initial repository.
#[derive(Debug, Clone)]
enum Seed {
    /// A cache manifest, tagged with branch `Some(i)` or untagged (superseded).
    Cache(Option<usize>),
    /// A multi-arch image: index (tagged or not) over two platform images and an attestation.
    MultiArch { tagged: bool },
    /// An untagged index over a nested index over an app image and an untagged cache manifest.
    Nested,
    /// An app image, tagged or not.
    App { tagged: bool },
    /// An app image someone tagged with a branch's cache tag: never removed as cache.
    MisTagged(usize),
    /// A signed cache manifest (tagged with branch `Some(i)` or superseded) and its signature:
    /// the signature may only go with it.
    SignedCache(Option<usize>),
    /// A signed app image (tagged or not): its signature is never deleted.
    SignedApp { tagged: bool },
    /// Pull request `n`'s cache (`pr-<n>-cache`, a `{pr}` template).
    PrCache(u64),
}

#[derive(Debug, Clone)]
enum Action {
    Push(usize),
    DeleteBranch(usize),
    /// The branch is deleted, created again (and, when `pushed`, CI pushes a fresh cache under
    /// its tag) before the queued deletion is handled.
    DeleteThenRecreate {
        branch: usize,
        pushed: bool,
    },
    /// Pull request `n` is closed.
    ClosePr(u64),
    /// Pull request `n` is closed and its delivery never arrives (GitHub does not retry a failed
    /// one): only a sweep can take its cache. Not drawn by the property test (its cases stay
    /// as they were); `a_sweep_takes_the_cache_of_a_pull_request_closed_without_its_event` runs it.
    ClosePrUndelivered(u64),
    /// Pull request `n` is closed, then re-opened (and, when `pushed`, CI pushes a fresh cache
    /// under its tag) before the queued close is handled.
    CloseThenReopen {
        pr: u64,
        pushed: bool,
    },
    /// A merge queue group for pull request `pr` built its cache, then was destroyed (`merged`
    /// or not); a merged group's cache may become `main`'s (promotion is on).
    MergeGroup {
        pr: u64,
        merged: bool,
    },
    /// A scheduled sweep: fanned out over the queue, then every message and continuation handled.
    Sweep,
    /// One repository's sweep message, delivered as `delivery` says.
    RepositorySweep {
        delivery: Delivery,
    },
}

/// How a repository-sweep message's first delivery goes (SQS delivers at least once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Once,
    /// The invocation timed out after queueing its continuation: SQS delivers it again.
    TimedOutAfterQueueing,
    /// Its continuation's SendMessage failed: the record fails and SQS delivers it again.
    SendFails,
    /// Its continuation's SendMessage took effect but the answer was lost: the record fails
    /// and SQS delivers it again, with the continuation already queued.
    SendLost,
}

/// A fault of one continuation send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendFault {
    Fails,
    Lost,
}

#[derive(Debug, Clone)]
struct Scenario {
    seeds: Vec<(Seed, bool)>,
    actions: Vec<Action>,
    /// Per-call probability (in %) of a fault and of a concurrent change.
    fault_percent: u32,
    change_percent: u32,
    rng_seed: u64,
    page_size: usize,
    /// Sweeps also expire cache tags (`STALE_CACHE_DAYS=1`; every seeded image is old).
    stale_expiry: bool,
    /// A branch lister (GitHub) answers which branches exist.
    github: bool,
    dry_run: bool,
    /// `MAX_DELETIONS_PER_INVOCATION`: 2 makes sweeps continue over several messages.
    cap: usize,
    /// `CACHE_BUDGET` of [`BUDGET_BYTES`] (a quarter of the scenarios): sweeps evict the least
    /// recently used branch caches.
    budget: bool,
}

/// The model's budget: room for two of the registry's 50 MB caches.
const BUDGET: &str = "100MiB";
const BUDGET_BYTES: u64 = 100 << 20;

fn arb_seed() -> impl Strategy<Value = Seed> {
    prop_oneof![
        4 => prop::option::of(0..BRANCHES.len()).prop_map(Seed::Cache),
        2 => any::<bool>().prop_map(|tagged| Seed::MultiArch { tagged }),
        1 => Just(Seed::Nested),
        1 => any::<bool>().prop_map(|tagged| Seed::App { tagged }),
        1 => (0..BRANCHES.len()).prop_map(Seed::MisTagged),
        2 => prop::option::of(0..BRANCHES.len()).prop_map(Seed::SignedCache),
        1 => any::<bool>().prop_map(|tagged| Seed::SignedApp { tagged }),
        2 => (1..=PRS).prop_map(Seed::PrCache),
    ]
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..BRANCHES.len()).prop_map(Action::Push),
        2 => (0..BRANCHES.len()).prop_map(Action::DeleteBranch),
        1 => (0..BRANCHES.len(), any::<bool>())
            .prop_map(|(branch, pushed)| Action::DeleteThenRecreate { branch, pushed }),
        1 => (1..=PRS).prop_map(Action::ClosePr),
        1 => (1..=PRS, any::<bool>()).prop_map(|(pr, merged)| Action::MergeGroup { pr, merged }),
        1 => (1..=PRS, any::<bool>()).prop_map(|(pr, pushed)| Action::CloseThenReopen { pr, pushed }),
        1 => Just(Action::Sweep),
        1 => prop_oneof![
            Just(Delivery::Once),
            Just(Delivery::TimedOutAfterQueueing),
            Just(Delivery::SendFails),
            Just(Delivery::SendLost),
        ]
        .prop_map(|delivery| Action::RepositorySweep { delivery }),
    ]
}

fn arb_scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec((arb_seed(), prop::bool::weighted(0.15)), 0..16),
        prop::collection::vec(arb_action(), 1..6),
        prop_oneof![Just(0u32), Just(15), Just(35)],
        prop_oneof![Just(0u32), Just(20), Just(50)],
        (
            any::<u64>(),
            prop_oneof![Just(3usize), Just(1000)],
            any::<bool>(),
        ),
        (
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop_oneof![Just(2usize), Just(1000)],
            prop::bool::weighted(0.25),
        ),
    )
        .prop_map(
            |(
                seeds,
                actions,
                fault_percent,
                change_percent,
                (rng_seed, page_size, stale_expiry),
                (github, dry_run, cap, budget),
            )| {
                Scenario {
                    seeds,
                    actions,
                    fault_percent,
                    change_percent,
                    rng_seed,
                    page_size,
                    stale_expiry,
                    github,
                    dry_run,
                    cap,
                    budget,
                }
            },
        )
}

/// xorshift64*: small, seeded, good enough to pick faults and changes.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn percent(&mut self, p: u32) -> bool {
        (self.next() % 100) < u64::from(p)
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[(self.next() % items.len() as u64) as usize].clone())
    }
}

fn seed_repository(state: &mut State, seeds: &[(Seed, bool)]) {
    state.create_repository(REPO);
    state.protected_tags.insert(PROTECTED.to_owned());
    state.protected_tags.insert(KEPT.to_owned());
    for (seed, archived) in seeds {
        let digest = match seed {
            Seed::Cache(branch) => {
                let tag = branch.map(|b| cache_tag(BRANCHES[b]));
                state.push(REPO, Kind::Cache, tag.as_deref())
            }
            Seed::MultiArch { tagged } => {
                let amd = state.push(REPO, Kind::App, None);
                let arm = state.push(REPO, Kind::App, None);
                let att = state.push(REPO, Kind::Attestation, None);
                let tag = tagged.then_some("v1");
                state.push(REPO, Kind::Index(vec![amd, arm, att]), tag)
            }
            Seed::Nested => {
                let app = state.push(REPO, Kind::App, None);
                let cache = state.push(REPO, Kind::Cache, None);
                let inner = state.push(REPO, Kind::Index(vec![app, cache]), None);
                state.push(REPO, Kind::Index(vec![inner]), None)
            }
            Seed::App { tagged } => state.push(REPO, Kind::App, tagged.then_some("latest")),
            Seed::MisTagged(b) => state.push(REPO, Kind::App, Some(&cache_tag(BRANCHES[*b]))),
            Seed::SignedCache(branch) => {
                let tag = branch.map(|b| cache_tag(BRANCHES[b]));
                let cache = state.push(REPO, Kind::Cache, tag.as_deref());
                state.push(REPO, Kind::Signature(cache.clone()), None);
                cache
            }
            Seed::SignedApp { tagged } => {
                let app = state.push(REPO, Kind::App, tagged.then_some("latest"));
                state.push(REPO, Kind::Signature(app.clone()), None);
                app
            }
            Seed::PrCache(n) => state.push(REPO, Kind::Cache, Some(&pr_tag(*n))),
        };
        if *archived {
            state.set_status(REPO, &digest, ImageStatus::Archived);
        }
    }
}

/// A concurrent change a CI system could make between two of the pruner's calls.
/// With `pulls` (budget scenarios), builds also import caches; without, the changes are the
/// three that push, as before budgets existed (so those scenarios explore as often as they did).
fn concurrent_change(state: &mut State, rng: &mut Rng, pulls: bool) {
    let untagged_cache: Vec<String> = state
        .images(REPO)
        .into_iter()
        .filter(|i| i.kind == Kind::Cache && i.tags.is_empty())
        .map(|i| i.digest)
        .collect();
    let branch = BRANCHES[(rng.next() % BRANCHES.len() as u64) as usize];
    match rng.next() % if pulls { 4 } else { 3 } {
        // A build imports a branch's cache: it is used now (the budget's LRU order changes).
        3 => {
            let tagged: Vec<String> = state
                .images(REPO)
                .into_iter()
                .filter(|i| i.kind == Kind::Cache && !i.tags.is_empty())
                .map(|i| i.digest)
                .collect();
            if let Some(digest) = rng.pick(&tagged) {
                // A change like any other: the action is not quiet.
                state.injected += 1;
                state.now += 1;
                state.pull(REPO, &digest);
            }
        }
        // A byte-identical cache push re-tags an "old" digest.
        0 => {
            if let Some(digest) = rng.pick(&untagged_cache) {
                state.inject_retag(REPO, &digest, &cache_tag(branch));
            }
        }
        // A new cache push moves the branch's tag.
        1 => {
            state.inject_push(REPO, Kind::Cache, Some(&cache_tag(branch)));
        }
        // A new multi-arch build pushes untagged children, then the tagged index.
        _ => {
            let child = state.inject_push(REPO, Kind::App, None);
            state.inject_push(REPO, Kind::Index(vec![child]), Some("latest"));
        }
    }
}

fn ecr_push(digest: &str, tag: &str) -> Value {
    json!({"version": "0", "id": "model", "detail-type": "ECR Image Action", "source": "aws.ecr",
           "account": "123456789012", "time": "2026-11-29T10:00:00Z", "region": "us-east-1",
           "resources": [], "detail": {"result": "SUCCESS", "repository-name": REPO,
           "image-digest": digest, "action-type": "PUSH", "image-tag": tag}})
}

fn branch_deleted(branch: &str, at: i64) -> Value {
    json!({"version": "0", "id": "model", "detail-type": "delete", "source": "github.com",
           "account": "123456789012", "time": rfc3339(at), "region": "us-east-1",
           "resources": [], "detail": {"ref": branch, "ref_type": "branch",
           "repository": {"full_name": format!("acme/{REPO}")}}})
}

fn pr_closed(n: u64, at: i64) -> Value {
    json!({"version": "0", "id": "model", "detail-type": "pull_request", "source": "github.com",
           "account": "123456789012", "time": rfc3339(at), "region": "us-east-1",
           "resources": [], "detail": {"action": "closed", "number": n,
           "repository": {"full_name": format!("acme/{REPO}")}}})
}

/// The merge queue's temporary branch for pull request `pr`.
fn queue_branch(pr: u64) -> String {
    format!("gh-readonly-queue/main/pr-{pr}-0f3a")
}

fn merge_group_destroyed(pr: u64, merged: bool, at: i64) -> Value {
    json!({"version": "0", "id": "model", "detail-type": "merge_group", "source": "github.com",
           "account": "123456789012", "time": rfc3339(at), "region": "us-east-1",
           "resources": [], "detail": {"action": "destroyed",
           "reason": if merged { "merged" } else { "invalidated" },
           "merge_group": {"head_ref": format!("refs/heads/{}", queue_branch(pr)),
                           "base_ref": "refs/heads/main"},
           "repository": {"full_name": format!("acme/{REPO}")}}})
}

/// A ref ended and came back (a branch created again, a pull request re-opened) before its
/// event is handled: when `pushed`, CI pushes a fresh cache under `tag`. Returns the tag that must
/// survive the event, if any. Without GitHub only the push time can tell, so the ref always
/// pushed; with GitHub an old cache under the tag is the live ref's too.
fn came_back(state: &mut State, tag: String, pushed: bool, scenario: &Scenario) -> Option<String> {
    if pushed || !scenario.github {
        state.push(REPO, Kind::Cache, Some(&tag));
        Some(tag)
    } else if state.images(REPO).iter().any(|i| i.tags.contains(&tag)) {
        Some(tag)
    } else {
        None
    }
}

fn scheduled() -> Value {
    json!({"version": "0", "id": "model", "detail-type": "Scheduled Event",
           "source": "aws.scheduler", "account": "123456789012",
           "time": "2026-11-29T03:00:00Z", "region": "us-east-1", "resources": [], "detail": {}})
}

/// GitHub as the model sees it: which branches exist now, which pull requests are open.
#[derive(Clone, Default)]
struct Github {
    live: Arc<Mutex<BTreeSet<String>>>,
    open_prs: Arc<Mutex<BTreeSet<u64>>>,
    /// Branch listings so far.
    listings: Arc<Mutex<usize>>,
}

impl BranchLister for Github {
    /// Every other listing (the first, the third, ...) misses the lowest-named live branch, as a
    /// paged listing does when another branch is deleted between two pages: the pruner must not
    /// take a missed branch's cache on one listing's word. (Two listings in a row never both
    /// miss it.)
    async fn branches(&self, full_name: &str) -> Result<Vec<String>, BranchListError> {
        assert_eq!(full_name, format!("acme/{REPO}"));
        let mut listings = self.listings.lock().unwrap();
        *listings += 1;
        let skip = usize::from(*listings % 2 == 1);
        Ok(self
            .live
            .lock()
            .unwrap()
            .iter()
            .skip(skip)
            .cloned()
            .collect())
    }

    async fn pull_request_open(
        &self,
        full_name: &str,
        number: u64,
    ) -> Result<bool, BranchListError> {
        assert_eq!(full_name, format!("acme/{REPO}"));
        Ok(self.open_prs.lock().unwrap().contains(&number))
    }

    /// The listing misses the lowest-numbered open pull request, as a paged listing does when
    /// another closes between two pages: the pruner must ask about it alone before its cache
    /// goes (by any expiry).
    async fn open_pull_requests(&self, full_name: &str) -> Result<Vec<u64>, BranchListError> {
        assert_eq!(full_name, format!("acme/{REPO}"));
        Ok(self
            .open_prs
            .lock()
            .unwrap()
            .iter()
            .skip(1)
            .copied()
            .collect())
    }
}

impl Github {
    fn exists(&self, branch: &str) -> bool {
        self.live.lock().unwrap().contains(branch)
    }
}

/// The sweep queue: messages waiting, in order.
#[derive(Clone, Default)]
struct Queue {
    messages: Arc<Mutex<Vec<Value>>>,
    continuations: Arc<Mutex<usize>>,
    /// Faults for the next continuation sends, in order.
    send_faults: Arc<Mutex<std::collections::VecDeque<SendFault>>>,
}

impl SweepQueue for Queue {
    async fn enqueue(&self, repositories: &[String]) -> Result<(), QueueError> {
        let mut messages = self.messages.lock().unwrap();
        messages.extend(repositories.iter().map(|r| continued_sweep_event(r, None)));
        Ok(())
    }
    async fn continue_sweep(
        &self,
        repository: &str,
        continuation: Continuation,
    ) -> Result<(), QueueError> {
        let fault = self.send_faults.lock().unwrap().pop_front();
        if fault == Some(SendFault::Fails) {
            return Err(QueueError("SendMessage failed (model)".into()));
        }
        *self.continuations.lock().unwrap() += 1;
        let mut messages = self.messages.lock().unwrap();
        messages.push(continued_sweep_event(repository, Some(continuation)));
        match fault {
            Some(SendFault::Lost) => Err(QueueError("SendMessage answer lost (model)".into())),
            _ => Ok(()),
        }
    }
}

/// An SQS event of one record; `receive_count` > 1 is a redelivery.
fn sqs(body: &Value, receive_count: u32) -> Value {
    json!({"Records": [{"messageId": format!("m-{receive_count}"), "receiptHandle": "r",
        "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": receive_count.to_string()},
        "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1"}]})
}

/// What the scenario produced, for the invariants and the totals.
#[derive(Debug, Default)]
struct Outcome {
    violations: Vec<String>,
    races: usize,
    /// Quiet actions (no fault, no concurrent change) that left stale cache behind.
    leftovers: Vec<String>,
}

/// May `tag`, still naming `image`, stay after a run that should have removed it?
fn may_keep_tag(state: &State, tag: &str, image: &support::memory::StoredImage) -> bool {
    tag == PROTECTED
        || tag == KEPT
        || image.kind != Kind::Cache
        || image.status != ImageStatus::Active
        || (image.tags.len() == 1 && state.referenced(REPO).contains(&image.digest))
}

/// What a fault-free, undisturbed action should have removed and did not.
fn leftovers(
    state: &State,
    action: &Action,
    scenario: &Scenario,
    open_prs: &BTreeSet<u64>,
) -> Vec<String> {
    let mut left = Vec::new();
    match action {
        _ if scenario.dry_run => {}
        Action::DeleteThenRecreate { .. }
        | Action::CloseThenReopen { .. }
        | Action::ClosePrUndelivered(_) => {}
        Action::MergeGroup { pr, merged } => {
            let tag = cache_tag(&queue_branch(*pr));
            if let Some(image) = state
                .images(REPO)
                .into_iter()
                .find(|i| i.tags.contains(&tag))
                .filter(|i| !may_keep_tag(state, &tag, i))
            {
                left.push(format!("{action:?} left {tag} on {}", image.digest));
            }
            // Merged: main's cache is the group's now, unless main's tag named no cache.
            let main = state
                .images(REPO)
                .into_iter()
                .find(|i| i.tags.contains(PROTECTED));
            let promoted = state.promoted_tags.iter().any(|(_, t, _)| t == PROTECTED);
            let promotable =
                main.is_none_or(|m| m.kind == Kind::Cache && m.status == ImageStatus::Active);
            if *merged && promotable && !promoted {
                left.push(format!(
                    "{action:?} did not promote the merged group's cache"
                ));
            }
        }
        Action::ClosePr(n) => {
            let tag = pr_tag(*n);
            let image = state
                .images(REPO)
                .into_iter()
                .find(|i| i.tags.contains(&tag));
            if let Some(image) = image.filter(|i| !may_keep_tag(state, &tag, i)) {
                left.push(format!("{action:?} left {tag} on {}", image.digest));
            }
        }
        Action::Push(_) if scenario.cap < 1000 => {}
        Action::DeleteBranch(b) if scenario.github => {
            let _ = b;
        }
        Action::DeleteBranch(b) => {
            let tag = cache_tag(BRANCHES[*b]);
            let image = state
                .images(REPO)
                .into_iter()
                .find(|i| i.tags.contains(&tag));
            if let Some(image) = image.filter(|i| !may_keep_tag(state, &tag, i)) {
                left.push(format!("{action:?} left {tag} on {}", image.digest));
            }
        }
        Action::Push(_) | Action::Sweep | Action::RepositorySweep { .. } => {
            // Every untagged ACTIVE cache manifest no index references is gone.
            let stale = state.stale(REPO);
            if !stale.is_empty() {
                left.push(format!("{action:?} left {} stale manifests", stale.len()));
            }
            // (A capped sweep continues for the stale manifests, not for the budget: the next
            // day's sweep evicts the rest.)
            if !matches!(action, Action::Push(_)) && scenario.budget && scenario.cap >= 1000 {
                left.extend(over_budget(state).map(|f| format!("{action:?} left {f}")));
            }
            // With GitHub, a sweep removes the cache of every pull request no longer open (its
            // close event missed).
            if !matches!(action, Action::Push(_)) && scenario.github {
                let open = open_prs;
                for image in state.images(REPO) {
                    for tag in image.tags.iter() {
                        let closed = (1..=PRS).any(|n| pr_tag(n) == *tag && !open.contains(&n));
                        if closed && !may_keep_tag(state, tag, &image) {
                            left.push(format!("{action:?} left closed pull request's {tag}"));
                        }
                    }
                }
            }
            if !matches!(action, Action::Push(_)) && scenario.stale_expiry && !scenario.github {
                for image in state.images(REPO) {
                    for tag in image
                        .tags
                        .iter()
                        .filter(|t| t.starts_with("cache-") || t.starts_with("pr-"))
                    {
                        if !may_keep_tag(state, tag, &image) {
                            left.push(format!("{action:?} left stale tag {tag}"));
                        }
                    }
                }
            }
        }
    }
    left
}

/// A quiet sweep with a budget leaves the cache footprint (distinct blobs of every ACTIVE cache
/// manifest) within it, unless no cache it may evict is left: one whose tags are all cache tags,
/// none protected or kept, ACTIVE, referenced by no index.
fn over_budget(state: &State) -> Option<String> {
    let caches: Vec<_> = state
        .images(REPO)
        .into_iter()
        .filter(|i| i.kind == Kind::Cache && i.status == ImageStatus::Active)
        .collect();
    let mut blobs = std::collections::HashMap::new();
    for image in &caches {
        for blob in ecr_cache_pruner::core::manifest::blobs(image.body()) {
            blobs.insert(blob.digest, blob.size);
        }
    }
    let footprint: u64 = blobs.values().sum();
    let referenced = state.referenced(REPO);
    let evictable: Vec<&String> = caches
        .iter()
        .filter(|i| {
            !i.tags.is_empty()
                && i.tags.iter().all(|t| {
                    (t.starts_with("cache-") || t.starts_with("pr-")) && t != PROTECTED && t != KEPT
                })
                && !referenced.contains(&i.digest)
        })
        .flat_map(|i| &i.tags)
        .collect();
    (footprint > BUDGET_BYTES && !evictable.is_empty()).then(|| {
        format!("{footprint} bytes of cache over a {BUDGET_BYTES}-byte budget with {evictable:?} evictable")
    })
}

fn run(scenario: &Scenario) -> Outcome {
    if std::env::var_os("MODEL_TRACE").is_some() {
        eprintln!("scenario: {scenario:?}");
    }
    let registry = MemoryRegistry::new(scenario.page_size);
    seed_repository(&mut registry.state(), &scenario.seeds);
    let cap = scenario.cap.to_string();
    let mut vars = vec![
        ("SWEEP_REPOSITORIES", "*"),
        ("KEEP_TAGS", "cache-fix-*"),
        ("MAX_DELETIONS_PER_INVOCATION", cap.as_str()),
        ("GITHUB_OWNER", "acme"),
        ("GONE_BRANCH_MIN_AGE_HOURS", "0"),
        ("CACHE_TAG_TEMPLATES", TEMPLATES),
        ("PROMOTE_MERGED_GROUP_CACHE", "true"),
    ];
    if scenario.stale_expiry {
        vars.push(("STALE_CACHE_DAYS", "1"));
    }
    if scenario.dry_run {
        vars.push(("DRY_RUN", "true"));
    }
    if scenario.budget {
        // The registry's clock counts pushes from 0: every cache is older than any grace period
        // measured from now; 0 says so plainly.
        vars.push(("CACHE_BUDGET", BUDGET));
        vars.push(("CACHE_BUDGET_MIN_AGE_MINUTES", "0"));
    }
    let config = support::moto::config(&vars);
    let github = Github::default();
    github
        .live
        .lock()
        .unwrap()
        .extend(BRANCHES.iter().map(|b| b.to_string()));
    github.open_prs.lock().unwrap().extend(1..=PRS);
    let queue = Queue::default();
    // Every audit record the pruner writes, beside its log line.
    let audited: Arc<Mutex<Vec<AuditRecord>>> = Arc::default();
    let tap = audited.clone();
    let pruner = Pruner::new(config, registry)
        .with_sweep_queue(queue.clone())
        .with_audit_tap(move |record| tap.lock().unwrap().push(record.clone()));
    // With GitHub the pruner asks it which branches exist; without, it has no branch lister.
    let pruner = if scenario.github {
        pruner.with_github(github.clone())
    } else {
        pruner.with_github(Github::default()).without_github()
    };
    // Paused time: the pruner's retry pauses advance the clock instead of waiting.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let mut outcome = Outcome::default();
    let mut rng = Rng(scenario.rng_seed | 1);

    for action in &scenario.actions {
        let (faults_before, injected_before, deleted_before, removed_before, promoted_before) = {
            let calls = pruner.registry.calls();
            let faults = calls.iter().filter(|c| c.fault.is_some()).count();
            let state = pruner.registry.state();
            (
                faults,
                state.injected,
                state.deleted.len(),
                state.removed_tags.len(),
                state.promoted_tags.len(),
            )
        };
        let audited_before = audited.lock().unwrap().len();
        // A fresh cache the re-created branch pushed after its deletion: it must survive.
        let mut fresh_tag: Option<String> = None;
        let event = match action {
            Action::Push(b) => {
                let tag = cache_tag(BRANCHES[*b]);
                let digest = pruner.registry.state().push(REPO, Kind::Cache, Some(&tag));
                ecr_push(&digest, &tag)
            }
            Action::DeleteBranch(b) => {
                github.live.lock().unwrap().remove(BRANCHES[*b]);
                branch_deleted(BRANCHES[*b], pruner.registry.state().now)
            }
            Action::DeleteThenRecreate { branch, pushed } => {
                let name = BRANCHES[*branch];
                let deleted_at = pruner.registry.state().now;
                github.live.lock().unwrap().insert(name.to_owned());
                fresh_tag = came_back(
                    &mut pruner.registry.state(),
                    cache_tag(name),
                    *pushed,
                    scenario,
                );
                branch_deleted(name, deleted_at)
            }
            Action::ClosePr(n) => {
                github.open_prs.lock().unwrap().remove(n);
                pr_closed(*n, pruner.registry.state().now)
            }
            Action::ClosePrUndelivered(n) => {
                github.open_prs.lock().unwrap().remove(n);
                Value::Null
            }
            Action::CloseThenReopen { pr, pushed } => {
                let closed_at = pruner.registry.state().now;
                github.open_prs.lock().unwrap().insert(*pr);
                fresh_tag = came_back(&mut pruner.registry.state(), pr_tag(*pr), *pushed, scenario);
                pr_closed(*pr, closed_at)
            }
            Action::MergeGroup { pr, merged } => {
                let tag = cache_tag(&queue_branch(*pr));
                pruner.registry.state().push(REPO, Kind::Cache, Some(&tag));
                let at = pruner.registry.state().now;
                merge_group_destroyed(*pr, *merged, at)
            }
            Action::Sweep => scheduled(),
            Action::RepositorySweep { .. } => sqs(&continued_sweep_event(REPO, None), 1),
        };
        let mut fault_rng = Rng(rng.next() | 1);
        let fault_percent = scenario.fault_percent;
        pruner.registry.set_faults(move |_| {
            fault_rng.percent(fault_percent).then(|| {
                [Fault::ServerError, Fault::Throttle, Fault::LostAnswer]
                    [(fault_rng.next() % 3) as usize]
            })
        });
        let mut change_rng = Rng(rng.next() | 1);
        let change_percent = scenario.change_percent;
        let pulls = scenario.budget;
        // A budget per action: a sweep that continues over many messages must not face a
        // registry growing with every call it makes (no CI pushes that fast).
        let mut budget = 24;
        pruner.registry.set_hook(move |_op: Op, state: &mut State| {
            if budget > 0 && change_rng.percent(change_percent) {
                budget -= 1;
                concurrent_change(state, &mut change_rng, pulls);
            }
        });
        let continuations_before = *queue.continuations.lock().unwrap();
        // SQS: a record that fails is delivered again, up to maxReceiveCount (5) receives, then
        // goes to the dead-letter queue.
        let handle_record = |body: &Value, receive_count: u32| {
            let answer = runtime.block_on(pruner.handle(sqs(body, receive_count)));
            answer
                .as_ref()
                .ok()
                .and_then(|a| a["batchItemFailures"].as_array().map(|f| !f.is_empty()))
                .unwrap_or(true)
        };
        let mut result: Result<(), ecr_cache_pruner::inbound::pruner::HandlerError> = Ok(());
        let mut redeliveries: Vec<(Value, u32)> = Vec::new();
        let mut dead_letters = 0;
        match action {
            Action::RepositorySweep { delivery } => {
                let body = continued_sweep_event(REPO, None);
                match delivery {
                    Delivery::SendFails => queue
                        .send_faults
                        .lock()
                        .unwrap()
                        .push_back(SendFault::Fails),
                    Delivery::SendLost => {
                        queue.send_faults.lock().unwrap().push_back(SendFault::Lost)
                    }
                    _ => {}
                }
                let failed = handle_record(&body, 1);
                if failed || *delivery == Delivery::TimedOutAfterQueueing {
                    redeliveries.push((body, 2));
                }
                queue.send_faults.lock().unwrap().clear();
            }
            // Its delivery never arrives: nothing to handle.
            Action::ClosePrUndelivered(_) => {}
            _ => result = runtime.block_on(pruner.handle(event.clone())).map(|_| ()),
        }
        // Every queued message (fan-out, continuations) and every redelivery is handled, as the
        // event source would. Chains are bounded: each forks only on a redelivery.
        let mut handled = 0;
        loop {
            let next = redeliveries
                .pop()
                .or_else(|| queue.messages.lock().unwrap().pop().map(|m| (m, 1)));
            let Some((message, receive_count)) = next else {
                break;
            };
            handled += 1;
            if handled > 4 * (MAX_CONTINUATIONS as usize + 2) + 8 {
                outcome.violations.push(format!(
                    "{action:?}: the sweep re-queued itself without end"
                ));
                queue.messages.lock().unwrap().clear();
                break;
            }
            if handle_record(&message, receive_count) {
                if receive_count < 5 {
                    redeliveries.push((message, receive_count + 1));
                } else {
                    dead_letters += 1;
                }
            }
        }
        if dead_letters > 0 {
            result = result.and(Err(
                ecr_cache_pruner::inbound::pruner::HandlerError::UnknownInput(format!(
                    "{dead_letters} record(s) reached the dead-letter queue"
                )),
            ));
        }
        if scenario.dry_run && *queue.continuations.lock().unwrap() != continuations_before {
            outcome
                .violations
                .push(format!("{action:?}: a dry run continued"));
        }
        pruner.registry.clear_hook_and_faults();

        let calls = pruner.registry.calls();
        let faults = calls.iter().filter(|c| c.fault.is_some()).count() - faults_before;
        let state = pruner.registry.state();
        let quiet = faults == 0 && state.injected == injected_before;
        if scenario.dry_run
            && (state.deleted.len() != deleted_before
                || state.removed_tags.len() != removed_before
                || state.promoted_tags.len() != promoted_before)
        {
            outcome.violations.push(format!(
                "{action:?}: a dry run deleted or removed something"
            ));
        }
        // Budget evictions remove live branches' caches by design (least recently used first);
        // only a budget may, and never a protected or kept one (the registry checks those).
        let evicted: BTreeSet<String> = audited.lock().unwrap()[audited_before..]
            .iter()
            .filter(|r| r.reason.starts_with("over budget"))
            .filter_map(|r| r.tag.clone())
            .collect();
        if !scenario.budget && !evicted.is_empty() {
            outcome
                .violations
                .push(format!("{action:?} evicted {evicted:?} without a budget"));
        }
        // With GitHub, no path removes the cache tag of a branch that exists (but the budget).
        if scenario.github {
            for (_, tag) in &state.removed_tags[removed_before..] {
                if let Some(owner) = BRANCHES
                    .iter()
                    .find(|b| cache_tag(b) == *tag && github.exists(b))
                    .filter(|_| !evicted.contains(tag))
                {
                    outcome
                        .violations
                        .push(format!("{action:?} removed {tag} of live branch {owner}"));
                }
            }
        }
        // With GitHub, no path removes the cache of an open pull request (a close event of one
        // open again, a sweep's expiry; only a budget may).
        if scenario.github {
            for (_, tag) in &state.removed_tags[removed_before..] {
                if evicted.contains(tag) {
                    continue;
                }
                if let Some(n) = (1..=PRS).find(|n| pr_tag(*n) == *tag) {
                    if github.open_prs.lock().unwrap().contains(&n) {
                        outcome
                            .violations
                            .push(format!("{action:?} removed {tag} of open pull request {n}"));
                    }
                }
            }
        }
        // Unless a concurrent byte-identical push moved the tag onto an old digest meanwhile:
        // that image keeps its old push time, and without GitHub nothing tells it from the
        // deleted branch's cache (docs/how-it-works.md: one cold build at worst).
        let undisturbed = scenario.github || state.injected == injected_before;
        if let Some(tag) = fresh_tag.as_ref().filter(|_| undisturbed) {
            if !state.images(REPO).iter().any(|i| i.tags.contains(tag)) {
                outcome.violations.push(format!(
                    "{action:?} removed {tag}, pushed again after the branch deletion or pull request close"
                ));
            }
        }
        // An archived index cannot be read (AWS does not say it can), so the repository's
        // references are not fully known: the run must fail closed and delete nothing.
        let unreadable_index = state
            .images(REPO)
            .iter()
            .any(|i| matches!(i.kind, Kind::Index(_)) && i.status != ImageStatus::Active);
        if quiet && unreadable_index {
            let reads_repository = !matches!(
                action,
                Action::DeleteBranch(_)
                    | Action::DeleteThenRecreate { .. }
                    | Action::ClosePr(_)
                    | Action::CloseThenReopen { .. }
                    | Action::MergeGroup { .. }
            );
            if reads_repository && state.deleted.len() != deleted_before {
                outcome
                    .violations
                    .push(format!("{action:?} deleted with an unreadable index"));
            }
        } else if quiet {
            // A signed cache the pruner deleted (untagged, or by its last tag) takes its
            // signatures along: none of an image deleted in this action stays behind.
            let deleted_now: BTreeSet<&str> = state.deleted[deleted_before..]
                .iter()
                .map(|(_, d)| d.as_str())
                .collect();
            for image in state.images(REPO) {
                if let Kind::Signature(subject) = &image.kind {
                    if deleted_now.contains(subject.as_str())
                        && image.status == ImageStatus::Active
                        && image.tags.is_empty()
                    {
                        outcome.violations.push(format!(
                            "{action:?} deleted {subject} and left its signature {}",
                            image.digest
                        ));
                    }
                }
            }
            if let Err(err) = &result {
                outcome
                    .violations
                    .push(format!("{action:?} failed without any fault: {err}"));
            }
            outcome.leftovers.extend(leftovers(
                &state,
                action,
                scenario,
                &github.open_prs.lock().unwrap(),
            ));
        }
    }
    let state = pruner.registry.state();
    // Audit == deleted: every digest deleted has its line (`manifest_deleted`, the `tag_removed`
    // that took its last tag, or `manifest_delete_unconfirmed` when a lost answer could not be settled),
    // and every `manifest_deleted` line names a digest that is gone. A deletion the memory
    // registry excused as a race is one no re-check could see coming, so it is left out.
    let raced = |digest: &str| state.races.iter().any(|r| r.image.contains(digest));
    let deleted: BTreeSet<&str> = state.deleted.iter().map(|(_, d)| d.as_str()).collect();
    let records = audited.lock().unwrap();
    let lines = |wanted: &dyn Fn(&AuditRecord) -> bool| -> BTreeSet<String> {
        records
            .iter()
            .filter(|r| wanted(r))
            .filter_map(|r| r.digest.clone())
            .collect()
    };
    let manifest_deleted = lines(&|r| r.action == AuditAction::ManifestDeleted);
    // A tag removal's line names its digest whether or not the image went with it: a concurrent
    // untag of its other tag between the look-up and the removal makes it the last one.
    let covered = lines(&|r| {
        matches!(
            r.action,
            AuditAction::ManifestDeleted
                | AuditAction::ManifestDeleteUnconfirmed
                | AuditAction::TagRemoved
                | AuditAction::TagRemoveUnconfirmed
        )
    });
    for digest in &deleted {
        if !covered.contains(*digest) && !raced(digest) {
            let asked: Vec<String> = pruner
                .registry
                .calls()
                .iter()
                .filter(|c| c.ids.iter().any(|id| id.as_str() == *digest))
                .map(|c| {
                    format!(
                        "{:?}{}",
                        c.op,
                        if c.fault.is_some() { " (fault)" } else { "" }
                    )
                })
                .collect();
            let said: Vec<String> = records
                .iter()
                .filter(|r| r.digest.as_deref() == Some(*digest))
                .map(|r| format!("{:?}", r.action))
                .collect();
            let tag_calls: Vec<String> = pruner
                .registry
                .calls()
                .iter()
                .filter(|c| matches!(c.op, Op::RemoveTag | Op::DescribeTag))
                .map(|c| {
                    format!(
                        "{:?} {:?} #{}{}",
                        c.op,
                        c.ids,
                        c.seq,
                        if c.fault.is_some() {
                            format!(" ({:?})", c.fault)
                        } else {
                            String::new()
                        }
                    )
                })
                .collect();
            let all_lines: Vec<String> = records
                .iter()
                .map(|r| {
                    format!(
                        "{:?} {:?} {:?}",
                        r.action,
                        r.tag,
                        r.digest.as_deref().map(|d| &d[..15])
                    )
                })
                .collect();
            outcome.violations.push(format!(
                "{digest} was deleted without an audit line (calls naming it: {asked:?}; lines: {said:?}; tag calls: {tag_calls:?}; all lines: {all_lines:?})"
            ));
        }
    }
    for digest in &manifest_deleted {
        if !deleted.contains(digest.as_str()) {
            outcome.violations.push(format!(
                "an audit line says {digest} was deleted; it was not"
            ));
        }
    }
    drop(records);
    outcome.violations.extend(state.violations.iter().map(|v| {
        format!(
            "{} ({} in {}, call {})",
            v.rule, v.image, v.repository, v.seq
        )
    }));
    outcome.races = state.races.len();
    outcome
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn no_rule_is_ever_broken(scenario in arb_scenario()) {
        let outcome = run(&scenario);
        prop_assert!(outcome.violations.is_empty(), "violations: {:?}", outcome.violations);
        prop_assert!(outcome.leftovers.is_empty(), "left behind: {:?}", outcome.leftovers);
    }
}

/// Many scenarios under heavy concurrent change and no faults: races are counted (they need a
/// re-tag inside one round trip between a batch's re-check and its delete), violations fail.
#[test]
fn heavy_concurrent_change_breaks_no_rule() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut races, mut scenarios) = (0usize, 0usize);
    for _ in 0..300 {
        let mut scenario = arb_scenario().new_tree(&mut runner).unwrap().current();
        scenario.change_percent = 50;
        scenario.fault_percent = 0;
        let outcome = run(&scenario);
        assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
        races += outcome.races;
        scenarios += 1;
    }
    eprintln!("model: {scenarios} scenarios under concurrent change, {races} excused races");
}
/// GitHub does not retry a failed delivery: a pull request closed without its event leaves its
/// cache to the sweep, which (with a token) takes it, and keeps every open pull request's (the
/// model's open listing always misses one: pull request 1 here), with and without faults.
#[test]
fn a_sweep_takes_the_cache_of_a_pull_request_closed_without_its_event() {
    for (fault_percent, rng_seed) in [(0, 1), (0, 7), (10, 3), (20, 11)] {
        let scenario = Scenario {
            seeds: vec![
                (Seed::PrCache(1), false),
                (Seed::PrCache(2), false),
                (Seed::PrCache(3), false),
                (Seed::Cache(Some(1)), false),
            ],
            actions: vec![
                Action::ClosePrUndelivered(3),
                Action::ClosePrUndelivered(1),
                Action::Sweep,
                Action::Sweep,
            ],
            fault_percent,
            change_percent: 0,
            rng_seed,
            page_size: 1000,
            stale_expiry: false,
            github: true,
            dry_run: false,
            cap: 1000,
            budget: false,
        };
        let outcome = run(&scenario);
        assert!(
            outcome.violations.is_empty(),
            "{scenario:?}: {:?}",
            outcome.violations
        );
        assert!(
            outcome.leftovers.is_empty(),
            "{scenario:?}: left behind {:?}",
            outcome.leftovers
        );
    }
}

/// Continuations under every way a delivery can go (issue: a redelivered sweep never continued,
/// so a first delivery whose continuation send failed left the rest of the repository until the
/// next schedule). No registry fault and no concurrent change, a deletion cap of 2 so every sweep
/// continues: each repository must be finished (no leftovers), and the chains bounded.
#[test]
fn continuation_chains_survive_failed_and_lost_sends_and_redeliveries() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let deliveries = [
        Delivery::Once,
        Delivery::TimedOutAfterQueueing,
        Delivery::SendFails,
        Delivery::SendLost,
    ];
    for n in 0..120 {
        let mut scenario = arb_scenario().new_tree(&mut runner).unwrap().current();
        scenario.fault_percent = 0;
        scenario.change_percent = 0;
        scenario.dry_run = false;
        scenario.cap = 2;
        // Enough stale cache that one delivery cannot finish it.
        scenario
            .seeds
            .extend((0..6).map(|_| (Seed::Cache(None), false)));
        scenario.actions = vec![Action::RepositorySweep {
            delivery: deliveries[n % deliveries.len()],
        }];
        let outcome = run(&scenario);
        assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
        assert!(
            outcome.leftovers.is_empty(),
            "{:?}: {:?}",
            scenario.actions,
            outcome.leftovers
        );
    }
}
