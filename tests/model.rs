//! Model-based test: random repositories and random sequences of pushes, branch deletions and
//! sweeps, driven through the real pruner handler over the in-memory registry, with random faults
//! and concurrent pushes / re-tags between calls. The registry judges every delete against its own
//! state at that moment (DESIGN.md §3), never against the planner's code.

mod support;

use ecr_cache_pruner::core::plan::ImageStatus;
use ecr_cache_pruner::inbound::pruner::Pruner;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Value};
use support::memory::{Fault, Kind, MemoryRegistry, Op, State};

const REPO: &str = "app";
const BRANCHES: [&str; 4] = ["main", "feature/a", "feature-b", "fix/c"];
const PROTECTED: &str = "cache-main";
/// `KEEP_TAGS` in every scenario: the cache of `fix/c` is never removed either.
const KEPT: &str = "cache-fix-c";

fn cache_tag(branch: &str) -> String {
    format!("cache-{}", branch.replace('/', "-"))
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
}

#[derive(Debug, Clone)]
enum Action {
    Push(usize),
    DeleteBranch(usize),
    Sweep,
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
}

fn arb_seed() -> impl Strategy<Value = Seed> {
    prop_oneof![
        4 => prop::option::of(0..BRANCHES.len()).prop_map(Seed::Cache),
        2 => any::<bool>().prop_map(|tagged| Seed::MultiArch { tagged }),
        1 => Just(Seed::Nested),
        1 => any::<bool>().prop_map(|tagged| Seed::App { tagged }),
        1 => (0..BRANCHES.len()).prop_map(Seed::MisTagged),
    ]
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..BRANCHES.len()).prop_map(Action::Push),
        2 => (0..BRANCHES.len()).prop_map(Action::DeleteBranch),
        1 => Just(Action::Sweep),
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
    )
        .prop_map(
            |(
                seeds,
                actions,
                fault_percent,
                change_percent,
                (rng_seed, page_size, stale_expiry),
            )| {
                Scenario {
                    seeds,
                    actions,
                    fault_percent,
                    change_percent,
                    rng_seed,
                    page_size,
                    stale_expiry,
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
        };
        if *archived {
            state.set_status(REPO, &digest, ImageStatus::Archived);
        }
    }
}

/// A concurrent change a CI system could make between two of the pruner's calls.
fn concurrent_change(state: &mut State, rng: &mut Rng) {
    let untagged_cache: Vec<String> = state
        .images(REPO)
        .into_iter()
        .filter(|i| i.kind == Kind::Cache && i.tags.is_empty())
        .map(|i| i.digest)
        .collect();
    let branch = BRANCHES[(rng.next() % BRANCHES.len() as u64) as usize];
    match rng.next() % 3 {
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

fn branch_deleted(branch: &str) -> Value {
    json!({"version": "0", "id": "model", "detail-type": "delete", "source": "github.com",
           "account": "123456789012", "time": "2026-11-29T10:00:00Z", "region": "us-east-1",
           "resources": [], "detail": {"ref": branch, "ref_type": "branch",
           "repository": {"full_name": format!("acme/{REPO}")}}})
}

fn scheduled() -> Value {
    json!({"version": "0", "id": "model", "detail-type": "Scheduled Event",
           "source": "aws.scheduler", "account": "123456789012",
           "time": "2026-11-29T03:00:00Z", "region": "us-east-1", "resources": [], "detail": {}})
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
fn leftovers(state: &State, action: &Action, scenario: &Scenario) -> Vec<String> {
    let mut left = Vec::new();
    match action {
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
        Action::Push(_) | Action::Sweep => {
            // Every untagged ACTIVE cache manifest no index references is gone.
            let stale = state.stale(REPO);
            if !stale.is_empty() {
                left.push(format!("{action:?} left {} stale manifests", stale.len()));
            }
            if matches!(action, Action::Sweep) && scenario.stale_expiry {
                for image in state.images(REPO) {
                    for tag in image.tags.iter().filter(|t| t.starts_with("cache-")) {
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

fn run(scenario: &Scenario) -> Outcome {
    let registry = MemoryRegistry::new(scenario.page_size);
    seed_repository(&mut registry.state(), &scenario.seeds);
    let mut vars = vec![("SWEEP_REPOSITORIES", "*"), ("KEEP_TAGS", "cache-fix-*")];
    if scenario.stale_expiry {
        vars.push(("STALE_CACHE_DAYS", "1"));
    }
    let config = support::moto::config(&vars);
    let pruner = Pruner::new(config, registry);
    // Paused time: the pruner's retry pauses advance the clock instead of waiting.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let mut outcome = Outcome::default();
    let mut rng = Rng(scenario.rng_seed | 1);

    for action in &scenario.actions {
        let (faults_before, injected_before, deleted_before) = {
            let calls = pruner.registry.calls();
            let faults = calls.iter().filter(|c| c.fault.is_some()).count();
            let state = pruner.registry.state();
            (faults, state.injected, state.deleted.len())
        };
        let event = match action {
            Action::Push(b) => {
                let tag = cache_tag(BRANCHES[*b]);
                let digest = pruner.registry.state().push(REPO, Kind::Cache, Some(&tag));
                ecr_push(&digest, &tag)
            }
            Action::DeleteBranch(b) => branch_deleted(BRANCHES[*b]),
            Action::Sweep => scheduled(),
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
        pruner.registry.set_hook(move |_op: Op, state: &mut State| {
            if change_rng.percent(change_percent) {
                concurrent_change(state, &mut change_rng);
            }
        });
        let result = runtime.block_on(pruner.handle(event));
        pruner.registry.clear_hook_and_faults();

        let calls = pruner.registry.calls();
        let faults = calls.iter().filter(|c| c.fault.is_some()).count() - faults_before;
        let state = pruner.registry.state();
        let quiet = faults == 0 && state.injected == injected_before;
        // An archived index cannot be read (AWS does not say it can), so the repository's
        // references are not fully known: the run must fail closed and delete nothing.
        let unreadable_index = state
            .images(REPO)
            .iter()
            .any(|i| matches!(i.kind, Kind::Index(_)) && i.status != ImageStatus::Active);
        if quiet && unreadable_index {
            let reads_repository = !matches!(action, Action::DeleteBranch(_));
            if reads_repository && state.deleted.len() != deleted_before {
                outcome
                    .violations
                    .push(format!("{action:?} deleted with an unreadable index"));
            }
        } else if quiet {
            if let Err(err) = &result {
                outcome
                    .violations
                    .push(format!("{action:?} failed without any fault: {err}"));
            }
            outcome
                .leftovers
                .extend(leftovers(&state, action, scenario));
        }
    }
    let state = pruner.registry.state();
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
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

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
