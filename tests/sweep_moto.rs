//! The scheduled sweep against moto: scope, deadline, stale branch caches.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ecr_cache_pruner::adapters::github::GithubBranches;
use ecr_cache_pruner::adapters::sqs::SqsSweepQueue;
use ecr_cache_pruner::app::deadline::Deadline;
use ecr_cache_pruner::app::sweep::{sweep, Swept};
use ecr_cache_pruner::inbound::pruner::Pruner;
use serde_json::{json, Value};
use support::moto::{config, ecr_client, event, registry, unique_name};
use support::registry::*;

/// No GitHub check (the sweep is generic over the branch lister).
const NO_GITHUB: Option<&GithubBranches> = None;

/// Sweeps with `config` at `now_secs`, with all the time in the world and no GitHub check.
async fn sweep_at(
    config: &ecr_cache_pruner::inbound::config::Config,
    now_secs: i64,
) -> ecr_cache_pruner::app::sweep::SweepReport {
    sweep(
        &registry(),
        &config.sweep_settings(),
        NO_GITHUB,
        now_secs,
        ecr_cache_pruner::app::prune::Run::UNBOUNDED,
        &mut |_| {},
    )
    .await
    .unwrap()
}

struct Seeded {
    name: String,
    stale: Manifest,
    main: Manifest,
    feature: Manifest,
    app: Manifest,
}

/// A repository with one superseded cache manifest, `cache-main`, `cache-feature-x`, and an
/// application image under the cache prefix.
async fn seed(ecr: &aws_sdk_ecr::Client, name: String) -> Seeded {
    create_repository(ecr, &name).await;
    let stale = cache_manifest(&format!("{name}-stale"));
    push(ecr, &name, &stale, None).await;
    let main = cache_manifest(&format!("{name}-main"));
    push(ecr, &name, &main, Some("cache-main")).await;
    let feature = cache_manifest(&format!("{name}-feature"));
    push(ecr, &name, &feature, Some("cache-feature-x")).await;
    let app = app_manifest(&name, "amd64");
    push(ecr, &name, &app, Some("cache-tools")).await;
    Seeded {
        name,
        stale,
        main,
        feature,
        app,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn scheduled_event_sweeps_repositories_in_scope_only() {
    let ecr = ecr_client();
    let team = unique_name("sweep");
    let a = seed(&ecr, format!("{team}/web")).await;
    let b = seed(&ecr, format!("{team}/api")).await;
    let outside = seed(&ecr, format!("{team}-other")).await;
    let before_outside = contents(&ecr, &outside.name).await;

    let pruner = Pruner::new(
        config(&[("SWEEP_REPOSITORIES", &format!("{team}/*"))]),
        registry(),
    );
    for sample in ["scheduled-event.json", "scheduler-sweep.json"] {
        let report = pruner.handle(event(sample)).await.unwrap();
        assert_eq!(report["outcome"], "swept", "{sample}");
        assert_eq!(report["sweep"]["in_scope"], 2);
        assert_eq!(report["sweep"]["not_reached"], json!([]));
    }
    for r in [&a, &b] {
        let after = contents(&ecr, &r.name).await;
        assert!(
            !after.contains_key(&r.stale.digest),
            "{}: stale cache left",
            r.name
        );
        for kept in [&r.main, &r.feature, &r.app] {
            assert!(after.contains_key(&kept.digest));
        }
    }
    assert_eq!(
        contents(&ecr, &outside.name).await,
        before_outside,
        "out of scope untouched"
    );
}

#[tokio::test]
async fn scheduled_event_without_scope_is_ignored() {
    let report = Pruner::new(config(&[]), registry())
        .handle(event("scheduled-event.json"))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "ignored");
    assert!(report["reason"]
        .as_str()
        .unwrap()
        .contains("SWEEP_REPOSITORIES"));
}

#[tokio::test]
async fn tiny_time_budget_stops_cleanly_and_reports_the_rest() {
    let ecr = ecr_client();
    let team = unique_name("budget");
    let mut seeded = Vec::new();
    for n in 0..3 {
        seeded.push(seed(&ecr, format!("{team}/r{n}")).await);
    }
    let cfg = config(&[("SWEEP_REPOSITORIES", &format!("{team}/*"))]);

    // Room for exactly one repository: time runs out as soon as the first one is finished.
    let out_of_time = AtomicBool::new(false);
    let time_left = || !out_of_time.load(Ordering::SeqCst);
    let mut finished = Vec::new();
    let report = sweep(
        &registry(),
        &cfg.sweep_settings(),
        NO_GITHUB,
        now(),
        ecr_cache_pruner::app::prune::Run {
            deadline: Deadline::probe(&time_left),
            audit: &ecr_cache_pruner::app::audit::NoAudit,
        },
        &mut |swept| {
            if let Swept::Done { report, .. } = swept {
                finished.push(report.repository.clone());
                out_of_time.store(true, Ordering::SeqCst);
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(report.repositories.len(), 1);
    assert_eq!(report.not_reached.len(), 2);
    assert_eq!(finished, vec![report.repositories[0].repository.clone()]);
    let swept = &report.repositories[0].repository;
    for s in &seeded {
        let gone = !contents(&ecr, &s.name).await.contains_key(&s.stale.digest);
        assert_eq!(gone, &s.name == swept, "{}", s.name);
    }

    // Through the handler: an invocation whose deadline has passed starts nothing. (Its margin,
    // 30 s or a quarter of a shorter invocation, is decided once per invocation: `stop_by`'s
    // unit test covers it.)
    let pruner = Pruner::new(cfg, registry());
    let deadline = SystemTime::now() - Duration::from_secs(1);
    let report = pruner
        .handle_with_deadline(event("scheduled-event.json"), Some(deadline))
        .await
        .unwrap();
    assert_eq!(report["outcome"], "swept");
    assert_eq!(report["repositories"], json!([]));
    assert_eq!(report["sweep"]["not_reached"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn stale_branch_caches_expire_by_age() {
    let ecr = ecr_client();
    let team = unique_name("stale");
    let r = seed(&ecr, format!("{team}/web")).await;
    let scope = format!("{team}/*");

    // 10 days later, with a 30-day expiry: nothing is stale yet.
    let cfg = config(&[("SWEEP_REPOSITORIES", &scope), ("STALE_CACHE_DAYS", "30")]);
    let report = sweep_at(&cfg, now() + 10 * 86_400).await;
    assert!(report.tags.is_empty());

    // 40 days later: the feature branch cache expires; main (protected) and the app image stay.
    let dry = config(&[
        ("SWEEP_REPOSITORIES", &scope),
        ("STALE_CACHE_DAYS", "30"),
        ("DRY_RUN", "true"),
    ]);
    let report = sweep_at(&dry, now() + 40 * 86_400).await;
    let outcomes: Vec<(String, String)> = report
        .tags
        .iter()
        .map(|t| {
            (
                t.tag.clone(),
                serde_json::to_value(&t.outcome).unwrap()["outcome"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![("cache-feature-x".to_owned(), "would_remove".to_owned())]
    );
    assert!(
        contents(&ecr, &r.name)
            .await
            .contains_key(&r.feature.digest),
        "dry run keeps it"
    );

    let report = sweep_at(&cfg, now() + 40 * 86_400).await;
    assert_eq!(report.tags.len(), 1);
    let after = contents(&ecr, &r.name).await;
    assert!(!after.contains_key(&r.feature.digest));
    assert_eq!(after[&r.main.digest], vec!["cache-main"]);
    assert_eq!(after[&r.app.digest], vec!["cache-tools"]);
}

#[tokio::test]
async fn a_stale_tag_pushed_again_is_not_removed() {
    // The snapshot saw an old digest under the tag; by removal time CI pushed a new cache there.
    let ecr = ecr_client();
    let name = unique_name("moved");
    create_repository(&ecr, &name).await;
    let fresh = cache_manifest(&format!("{name}-fresh"));
    push(&ecr, &name, &fresh, Some("cache-feature-y")).await;
    let report = ecr_cache_pruner::app::branch_cleanup::remove_cache_tag(
        &registry(),
        &name,
        "cache-feature-y",
        Some("sha256:0000000000000000000000000000000000000000000000000000000000000000"),
        None,
        None,
        false,
        &ecr_cache_pruner::app::audit::NoAudit,
    )
    .await
    .unwrap();
    assert_eq!(
        serde_json::to_value(&report).unwrap()["reason"],
        "tag_moved"
    );
    assert!(contents(&ecr, &name).await.contains_key(&fresh.digest));
}

/// A pruner whose sweep asks the fake GitHub which branches exist.
async fn pruner_with_github(vars: &[(&str, &str)], github_url: &str) -> Pruner {
    let sdk = support::moto::sdk_config();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let arn = support::moto::create_secret("github-token", support::fake_github::TOKEN).await;
    let mut all: Vec<(&str, &str)> = vars.to_vec();
    all.push(("GITHUB_TOKEN_SECRET_ARN", &arn));
    all.push(("GITHUB_API_URL", github_url));
    Pruner::new(config(&all), registry()).with_secrets(secrets)
}

/// With a `{pr}` template and a token, the sweep removes the cache of every pull request that is
/// no longer open (a close event GitHub never delivered), never an open one's. (That an open one
/// keeps it however old, against `STALE_CACHE_DAYS`, is the model's check.)
#[tokio::test]
async fn a_sweep_removes_the_caches_of_pull_requests_no_longer_open() {
    let ecr = ecr_client();
    let team = unique_name("prs");
    let repo = format!("{team}/api");
    create_repository(&ecr, &repo).await;
    let mut caches = BTreeMap::new();
    for tag in [
        "pr-5-cache",
        "pr-6-cache",
        "pr-7-cache",
        "pr-8-cache",
        "pr-9-cache",
        "pr-10-cache",
        "cache-main",
    ] {
        let m = cache_manifest(&format!("{repo}-{tag}"));
        push(&ecr, &repo, &m, Some(tag)).await;
        caches.insert(tag, m.digest);
    }
    // Open: 6, 7 and 8 (two pages of the fake's page size), and 9, which the listing misses;
    // 5 closed without its event; 10 is no pull request of this repository (GitHub answers 404
    // when asked: not open here).
    let github = support::fake_github::FakeGithub::start(
        [(
            "acme/api".to_string(),
            ["main", "#6", "#7", "#8", "#9?", "404:10"]
                .map(String::from)
                .to_vec(),
        )]
        .into_iter()
        .collect(),
    )
    .await;
    let scope = format!("{team}/*");
    let vars = [
        ("SWEEP_REPOSITORIES", scope.as_str()),
        ("GITHUB_OWNER", "acme"),
        ("CACHE_TAG_TEMPLATES", "cache-{branch},pr-{pr}-cache"),
        ("GONE_BRANCH_MIN_AGE_HOURS", "0"),
    ];
    let pruner = pruner_with_github(&vars, &github.url).await;
    let report = pruner.handle(event("scheduled-event.json")).await.unwrap();
    let removed: Vec<(&str, &str)> = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["outcome"] == "removed")
        .map(|t| {
            (
                t["tag"].as_str().unwrap(),
                t["removal"]["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        removed,
        vec![
            ("pr-10-cache", "pull_request_not_open"),
            ("pr-5-cache", "pull_request_not_open")
        ],
        "{report}"
    );
    // 9 is asked again alone before its removal: open, it stays.
    let nine = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "pr-9-cache")
        .expect("pr-9-cache judged");
    assert_eq!(nine["outcome"], "kept", "{nine}");
    assert_eq!(nine["reason"], "pull_request_open", "{nine}");
    let after = contents(&ecr, &repo).await;
    assert!(!after.contains_key(&caches["pr-5-cache"]));
    for kept in [
        "pr-6-cache",
        "pr-7-cache",
        "pr-8-cache",
        "pr-9-cache",
        "cache-main",
    ] {
        assert!(after.contains_key(&caches[kept]), "{kept} removed");
    }
    let requests = github.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|p| p.contains("/pulls?") && p.contains("page=2")),
        "followed the open pull requests' pages: {requests:?}"
    );
}

#[tokio::test]
async fn github_check_removes_gone_branches_and_never_existing_ones() {
    let ecr = ecr_client();
    let team = unique_name("gh");
    let repo = format!("{team}/web");
    create_repository(&ecr, &repo).await;
    let mut caches = BTreeMap::new();
    for branch_tag in [
        "cache-main",
        "cache-feature-a",
        "cache-feature-b",
        "cache-fix-x",
        "cache-gone-1",
        "cache-gone-2",
        "cache-gone-amd64",
    ] {
        let m = cache_manifest(&format!("{repo}-{branch_tag}"));
        push(&ecr, &repo, &m, Some(branch_tag)).await;
        caches.insert(branch_tag, m.digest);
    }
    // Five existing branches: two pages of the fake's page size.
    let branches = ["main", "feature-a", "feature-b", "fix/x", "docs"]
        .map(String::from)
        .to_vec();
    let github = support::fake_github::FakeGithub::start(
        [("acme/web".to_string(), branches)].into_iter().collect(),
    )
    .await;
    let scope = format!("{team}/*");
    let vars = [
        ("SWEEP_REPOSITORIES", scope.as_str()),
        ("GITHUB_OWNER", "acme"),
        ("STALE_CACHE_DAYS", "30"),
        ("KEEP_TAGS", "cache-*-amd64"),
    ];
    // Pushed seconds ago: younger than GONE_BRANCH_MIN_AGE_HOURS (24 by default), so a branch
    // that is simply not listed yet is never judged gone.
    let young = pruner_with_github(&vars, &github.url).await;
    let report = young.handle(event("scheduled-event.json")).await.unwrap();
    assert_eq!(report["tags"], json!([]), "{report}");

    let mut all = vars.to_vec();
    all.push(("GONE_BRANCH_MIN_AGE_HOURS", "0"));
    let pruner = pruner_with_github(&all, &github.url).await;
    let report = pruner.handle(event("scheduled-event.json")).await.unwrap();
    let removed: Vec<&str> = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(removed, vec!["cache-gone-1", "cache-gone-2"], "{report}");
    let after = contents(&ecr, &repo).await;
    for kept in [
        "cache-gone-amd64", // KEEP_TAGS wins
        "cache-main",
        "cache-feature-a",
        "cache-feature-b",
        "cache-fix-x",
    ] {
        assert!(after.contains_key(&caches[kept]), "{kept} removed");
    }
    assert!(
        github
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.contains("page=2")),
        "followed pagination"
    );

    // Even when old enough for STALE_CACHE_DAYS, an existing branch keeps its cache.
    let github_client = ecr_cache_pruner::adapters::github::GithubBranches::new(
        &github.url,
        support::fake_github::TOKEN,
    )
    .unwrap();
    let always = || true;
    let report = sweep(
        &registry(),
        &pruner.config.sweep_settings(),
        Some(&github_client),
        now() + 400 * 86_400,
        ecr_cache_pruner::app::prune::Run {
            deadline: Deadline::probe(&always),
            audit: &ecr_cache_pruner::app::audit::NoAudit,
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(report.tags.is_empty(), "{:?}", report.tags);
}

/// A paged branch listing can miss a branch that exists (one already read deleted before the
/// listing ends shifts the rest back): a tag the first listing leaves ownerless goes only once a
/// listing holding no owner is found complete by the next (which still holds every branch it
/// read); a repository whose branches keep changing keeps it; a sweep that judges nothing gone
/// lists once.
#[tokio::test]
async fn a_branch_a_shifted_listing_missed_keeps_its_cache() {
    let ecr = ecr_client();
    let team = unique_name("relist");
    let (web, busy) = (format!("{team}/web"), format!("{team}/busy"));
    let mut caches = BTreeMap::new();
    for (repo, tag) in [
        (&web, "cache-main"),
        (&web, "cache-feature-a"),
        (&web, "cache-docs-x"),
        (&web, "cache-gone"),
        (&busy, "cache-gone"),
    ] {
        if !caches.keys().any(|(r, _)| r == repo) {
            create_repository(&ecr, repo).await;
        }
        let m = cache_manifest(&format!("{repo}-{tag}"));
        push(&ecr, repo, &m, Some(tag)).await;
        caches.insert((repo.clone(), tag), m.digest);
    }
    // web: `old-1` is deleted while the first listing is read, after it read `old-1`: `docs/x`
    // shifts back onto a page already read, and only the second listing holds it. busy: a
    // branch deleted during each listing, so none is ever found complete.
    let github = support::fake_github::FakeGithub::start(
        [
            (
                "acme/web".to_string(),
                ["main", "feature-a", "old-1<2", "docs/x@2"]
                    .map(String::from)
                    .to_vec(),
            ),
            (
                "acme/busy".to_string(),
                ["main", "a<2", "b<3", "c<4"].map(String::from).to_vec(),
            ),
        ]
        .into_iter()
        .collect(),
    )
    .await;
    let listings = |name: &str| github.branch_listings(name);
    let scope = format!("{team}/*");
    let vars = [
        ("SWEEP_REPOSITORIES", scope.as_str()),
        ("GITHUB_OWNER", "acme"),
        ("GONE_BRANCH_MIN_AGE_HOURS", "0"),
    ];
    let pruner = pruner_with_github(&vars, &github.url).await;
    let report = pruner.handle(event("scheduled-event.json")).await.unwrap();
    let judged: BTreeMap<(String, String), (String, String)> = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap_or_default().to_owned();
            ((s("repository"), s("tag")), (s("outcome"), s("reason")))
        })
        .collect();
    let row = |repo: &str, tag: &str| judged[&(repo.to_owned(), tag.to_owned())].clone();
    assert_eq!(judged.len(), 3, "{report}");
    assert_eq!(
        row(&web, "cache-docs-x"),
        ("kept".into(), "branch_exists".into())
    );
    assert_eq!(row(&web, "cache-gone").0, "removed", "{report}");
    assert_eq!(
        row(&busy, "cache-gone"),
        ("kept".into(), "branches_unknown".into())
    );
    // docs/x: found in the second. cache-gone: the first lost `old-1`, the second is complete.
    assert_eq!(listings("web"), 3, "listed until one was found complete");
    assert_eq!(listings("busy"), 3, "at most three listings");
    let docs = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "cache-docs-x")
        .unwrap();
    assert_eq!(docs["branch"], "docs/x", "{docs}");
    let (web_after, busy_after) = (contents(&ecr, &web).await, contents(&ecr, &busy).await);
    assert!(!web_after.contains_key(&caches[&(web.clone(), "cache-gone")]));
    for kept in ["cache-main", "cache-feature-a", "cache-docs-x"] {
        assert!(
            web_after.contains_key(&caches[&(web.clone(), kept)]),
            "{kept} removed"
        );
    }
    assert!(busy_after.contains_key(&caches[&(busy.clone(), "cache-gone")]));

    // web: nothing ownerless now, one listing. busy is quiet now: two listings suffice.
    let report = pruner.handle(event("scheduled-event.json")).await.unwrap();
    assert_eq!(
        listings("web"),
        4,
        "a sweep judging nothing gone lists once"
    );
    assert_eq!(listings("busy"), 5);
    assert_eq!(report["tags"][0]["tag"], "cache-gone", "{report}");
    assert_eq!(report["tags"][0]["outcome"], "removed", "{report}");
}

/// GitHub failing (here: the GitHub repository does not exist, a lasting 404) skips only the
/// tag expiry: no tag is judged, the untagged cache manifest (which needs no GitHub) is still
/// pruned, and the invocation succeeds with the reason in the report.
#[tokio::test]
async fn github_failure_skips_only_the_tag_expiry() {
    let ecr = ecr_client();
    let team = unique_name("ghfail");
    let s = seed(&ecr, format!("{team}/web")).await;
    let before = contents(&ecr, &s.name).await;
    // The fake knows no repository: listing branches answers 404.
    let github = support::fake_github::FakeGithub::start(Default::default()).await;
    let pruner = pruner_with_github(
        &[
            ("SWEEP_REPOSITORIES", &format!("{team}/*")),
            ("GITHUB_OWNER", "acme"),
            ("STALE_CACHE_DAYS", "1"),
            ("GONE_BRANCH_MIN_AGE_HOURS", "0"),
        ],
        &github.url,
    )
    .await;
    let report = pruner.handle(event("scheduled-event.json")).await.unwrap();
    let skipped = report["repositories"][0]["tag_expiry_skipped"]
        .as_str()
        .unwrap_or_default();
    assert!(skipped.contains("404"), "{report}");
    assert!(report["tags"].as_array().unwrap().is_empty(), "{report}");
    let mut expected = before.clone();
    expected.remove(&s.stale.digest);
    assert_eq!(
        contents(&ecr, &s.name).await,
        expected,
        "the stale manifest went, every tag stayed"
    );
}

#[tokio::test]
async fn stale_expiry_keeps_an_index_referenced_cache() {
    let ecr = ecr_client();
    let team = unique_name("stalerefd");
    let name = format!("{team}/web");
    create_repository(&ecr, &name).await;
    let cache = cache_manifest(&format!("{name}-old"));
    push(&ecr, &name, &cache, Some("cache-old-branch")).await;
    let bundle = index(&[(&cache, json!({}))]);
    push(&ecr, &name, &bundle, Some("bundle")).await;
    let before = contents(&ecr, &name).await;

    let cfg = config(&[
        ("SWEEP_REPOSITORIES", &format!("{team}/*")),
        ("STALE_CACHE_DAYS", "30"),
    ]);
    let report = sweep_at(&cfg, now() + 40 * 86_400).await;
    let outcome = serde_json::to_value(&report.tags[0]).unwrap();
    assert_eq!(outcome["outcome"], "kept", "{outcome}");
    assert_eq!(outcome["reason"], "referenced_by_index");
    assert_eq!(contents(&ecr, &name).await, before);
}

#[tokio::test]
async fn branch_deletion_keeps_a_tag_that_a_live_branch_also_maps_to() {
    let ecr = ecr_client();
    let repo = unique_name("live");
    create_repository(&ecr, &repo).await;
    let shared = cache_manifest(&format!("{repo}-feature-x"));
    push(&ecr, &repo, &shared, Some("cache-feature-x")).await;
    let alone = cache_manifest(&format!("{repo}-fix-y"));
    push(&ecr, &repo, &alone, Some("cache-fix-y")).await;
    // `feature/x` is deleted while `feature-x` (same cache tag) lives on.
    let github = support::fake_github::FakeGithub::start(
        [(
            format!("acme/{repo}"),
            vec!["main".to_owned(), "feature-x".to_owned()],
        )]
        .into_iter()
        .collect(),
    )
    .await;
    let pruner = pruner_with_github(&[], &github.url).await;
    let deleted = |branch: &str| {
        let mut e = event("github-delete-branch.json");
        e["detail"]["ref"] = json!(branch);
        e["detail"]["repository"]["full_name"] = json!(format!("acme/{repo}"));
        e
    };

    let report = pruner.handle(deleted("feature/x")).await.unwrap();
    let tag = &report["tags"][0];
    assert_eq!(tag["outcome"], "kept", "{report}");
    assert_eq!(tag["reason"], "branch_exists");
    assert_eq!(tag["branch"], "feature-x");
    assert!(contents(&ecr, &repo).await.contains_key(&shared.digest));

    // No live branch maps to cache-fix-y: removed as usual.
    let report = pruner.handle(deleted("fix/y")).await.unwrap();
    assert_eq!(report["tags"][0]["outcome"], "removed", "{report}");
    assert!(!contents(&ecr, &repo).await.contains_key(&alone.digest));
}

/// The branch deletion's look-up for a live branch owning the tag finds none only in a listing
/// the next one finds complete: a listing shifted by a deletion (it misses the colliding branch)
/// does not take its cache, and a repository whose branches keep changing while listed fails the
/// event for a retry, removing nothing.
#[tokio::test]
async fn branch_deletion_keeps_a_tag_whose_live_owner_a_shifted_listing_missed() {
    let ecr = ecr_client();
    let (repo, busy) = (unique_name("missed"), unique_name("busy"));
    let shared = cache_manifest(&format!("{repo}-feature-x"));
    let other = cache_manifest(&format!("{busy}-feature-y"));
    for (name, m, tag) in [
        (&repo, &shared, "cache-feature-x"),
        (&busy, &other, "cache-feature-y"),
    ] {
        create_repository(&ecr, name).await;
        push(&ecr, name, m, Some(tag)).await;
    }
    // `feature-x` lives on, but `old`, deleted while the first listing was read (after it read
    // `old`), shifted it out of that listing. busy: a branch deleted during every listing.
    let github = support::fake_github::FakeGithub::start(
        [
            (
                format!("acme/{repo}"),
                ["main", "old<2", "feature-x@2"].map(String::from).to_vec(),
            ),
            (
                format!("acme/{busy}"),
                ["main", "a<2", "b<3", "c<4"].map(String::from).to_vec(),
            ),
        ]
        .into_iter()
        .collect(),
    )
    .await;
    let pruner = pruner_with_github(&[], &github.url).await;
    let deleted = |repository: &str, branch: &str| {
        let mut e = event("github-delete-branch.json");
        e["detail"]["ref"] = json!(branch);
        e["detail"]["repository"]["full_name"] = json!(format!("acme/{repository}"));
        e
    };
    let report = pruner.handle(deleted(&repo, "feature/x")).await.unwrap();
    let tag = &report["tags"][0];
    assert_eq!(tag["outcome"], "kept", "{report}");
    assert_eq!(tag["reason"], "branch_exists");
    assert_eq!(tag["branch"], "feature-x");
    assert!(contents(&ecr, &repo).await.contains_key(&shared.digest));
    let listings = |name: &str| github.branch_listings(name);
    assert_eq!(listings(&repo), 2, "the owner is in the second listing");

    let err = pruner
        .handle(deleted(&busy, "feature/y"))
        .await
        .expect_err("retried");
    assert!(err.to_string().contains("changed while"), "{err}");
    assert_eq!(listings(&busy), 3, "at most three listings");
    assert!(contents(&ecr, &busy).await.contains_key(&other.digest));
}

/// A fresh SQS queue on moto for the sweep's fan-out: the client and the queue URL.
async fn sweep_queue(prefix: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(&support::moto::sdk_config());
    let url = sqs
        .create_queue()
        .queue_name(unique_name(prefix))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    (sqs, url)
}

/// Everything on the queue, as the SQS event Lambda would hand the pruner.
async fn drain_as_sqs_event(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    want: usize,
) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    for _ in 0..20 {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            records.push(json!({
                "messageId": m.message_id(), "receiptHandle": m.receipt_handle(),
                "body": m.body(), "attributes": {}, "messageAttributes": {},
                "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:prune"}));
        }
        if records.len() >= want {
            break;
        }
    }
    records
}

#[tokio::test]
async fn a_scheduled_sweep_fans_out_one_message_per_repository_each_sweeping_its_own() {
    let ecr = ecr_client();
    let team = unique_name("fan");
    let mut seeded = Vec::new();
    for name in ["a", "b", "c"] {
        seeded.push(seed(&ecr, format!("{team}/{name}")).await);
    }
    let outside = seed(&ecr, unique_name("outside")).await;
    let (sqs, url) = sweep_queue("sweep").await;
    let scope = format!("{team}/*");
    let pruner = Pruner::new(
        config(&[("SWEEP_REPOSITORIES", &scope), ("SWEEP_QUEUE_URL", &url)]),
        registry(),
    )
    .with_sweep_queue(SqsSweepQueue::new(sqs.clone(), &url));

    // The schedule only enqueues: one message per repository in scope, nothing deleted.
    let report = pruner.handle(event("scheduled-event.json")).await.unwrap();
    assert_eq!(report["outcome"], "sweep_enqueued", "{report}");
    let mut enqueued: Vec<String> = serde_json::from_value(report["enqueued"].clone()).unwrap();
    enqueued.sort();
    let names: Vec<String> = seeded.iter().map(|s| s.name.clone()).collect();
    assert_eq!(enqueued, names);
    for s in &seeded {
        assert!(contents(&ecr, &s.name).await.contains_key(&s.stale.digest));
    }

    // Delivered back (plus one record nothing can read): each message sweeps its repository, and
    // only the unreadable record is reported failed.
    let mut records = drain_as_sqs_event(&sqs, &url, 3).await;
    assert_eq!(records.len(), 3);
    for r in &records {
        let body: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["source"], "ecr-cache-pruner");
        assert_eq!(body["detail-type"], "Repository Sweep");
    }
    records.push(json!({"messageId": "unreadable", "body": "{}", "eventSource": "aws:sqs"}));
    let response = pruner.handle(json!({"Records": records})).await.unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "unreadable"}]})
    );
    for s in &seeded {
        let after = contents(&ecr, &s.name).await;
        assert!(!after.contains_key(&s.stale.digest), "{} not swept", s.name);
        assert!(after.contains_key(&s.main.digest));
    }
    assert!(contents(&ecr, &outside.name)
        .await
        .contains_key(&outside.stale.digest));
}

#[tokio::test]
async fn a_repository_that_hits_the_deletion_cap_continues_in_a_new_message() {
    let ecr = ecr_client();
    let team = unique_name("cont");
    let name = format!("{team}/big");
    create_repository(&ecr, &name).await;
    for i in 0..3 {
        push(
            &ecr,
            &name,
            &cache_manifest(&format!("{name}-stale-{i}")),
            None,
        )
        .await;
    }
    let (sqs, url) = sweep_queue("cont").await;
    let scope = format!("{team}/*");
    let pruner = Pruner::new(
        config(&[
            ("SWEEP_REPOSITORIES", &scope),
            ("SWEEP_QUEUE_URL", &url),
            ("MAX_DELETIONS_PER_INVOCATION", "2"),
        ]),
        registry(),
    )
    .with_sweep_queue(SqsSweepQueue::new(sqs.clone(), &url));
    let message = ecr_cache_pruner::core::trigger::repository_sweep_event(&name);
    let report = pruner.handle(message).await.unwrap();
    assert_eq!(report["repositories"][0]["remaining"], 1, "{report}");
    assert_eq!(report["enqueued"], json!([name]));
    let records = drain_as_sqs_event(&sqs, &url, 1).await;
    assert_eq!(records.len(), 1, "one continuation message");
    let response = pruner.handle(json!({"Records": records})).await.unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert_eq!(
        contents(&ecr, &name).await.len(),
        0,
        "the continuation finished it"
    );
}

/// `CACHE_BUDGET` through the scheduled event on moto: the footprint counts the shared base once,
/// the sweep evicts unprotected branch caches until it fits (their images go with their last
/// tag), and never main's cache or an application image.
#[tokio::test]
async fn a_scheduled_sweep_brings_a_repository_within_its_budget() {
    const MIB: u64 = 1 << 20;
    let ecr = ecr_client();
    let team = unique_name("budget");
    let name = format!("{team}/web");
    create_repository(&ecr, &name).await;
    let mut caches = BTreeMap::new();
    for branch in ["main", "a", "b", "c"] {
        let own = format!("{name}-{branch}");
        let manifest = cache_manifest_with_layers(
            &own,
            &[(&format!("{name}-base"), 100 * MIB), (&own, 10 * MIB)],
        );
        push(&ecr, &name, &manifest, Some(&format!("cache-{branch}"))).await;
        caches.insert(branch, manifest.digest.clone());
    }
    let app = app_manifest(&name, "amd64");
    push(&ecr, &name, &app, Some("v1.0")).await;

    let pruner = Pruner::new(
        config(&[
            ("SWEEP_REPOSITORIES", &format!("{team}/*")),
            ("CACHE_BUDGET", &format!("{team}/*=125MiB,*=1TiB")),
            ("CACHE_BUDGET_MIN_AGE_MINUTES", "0"),
        ]),
        registry(),
    );
    let report = pruner.handle(event("scheduled-event.json")).await.unwrap();
    let swept = &report["repositories"][0];
    let budget = &swept["budget"];
    assert_eq!(budget["budget_bytes"], 125 * MIB, "{swept}");
    assert_eq!(budget["footprint_bytes"], 140 * MIB + 4000, "{swept}");
    assert_eq!(budget["footprint_after"], 120 * MIB + 2000, "{swept}");
    assert_eq!(budget["evicted"].as_array().unwrap().len(), 2, "{swept}");
    let reasons: Vec<&Value> = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["removal"]["reason"])
        .collect();
    assert_eq!(
        reasons,
        [&json!("over_budget"), &json!("over_budget")],
        "{report}"
    );

    let after = contents(&ecr, &name).await;
    assert_eq!(after[&caches["main"]], vec!["cache-main"]);
    assert_eq!(after[&app.digest], vec!["v1.0"]);
    let branch_caches_left = ["a", "b", "c"]
        .iter()
        .filter(|b| after.contains_key(&caches[*b]))
        .count();
    assert_eq!(branch_caches_left, 1, "{after:?}");
}
