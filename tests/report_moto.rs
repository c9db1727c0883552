//! `ecr-cache-pruner report` against moto: the real binary, the real SDK, read-only.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::deny_proxy::DenyProxy;
use support::moto::{ecr_client, endpoint, unique_name};
use support::registry::*;

fn report(endpoint_url: &str, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecr-cache-pruner"))
        .arg("report")
        .args(args)
        .env_clear()
        .envs([
            ("AWS_ENDPOINT_URL", endpoint_url),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ])
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

/// What DescribeImages says each digest weighs.
async fn sizes(repository: &str) -> BTreeMap<String, i64> {
    let page = ecr_client()
        .describe_images()
        .repository_name(repository)
        .send()
        .await
        .unwrap();
    page.image_details()
        .iter()
        .map(|d| {
            (
                d.image_digest().unwrap().to_owned(),
                d.image_size_in_bytes().unwrap_or(0),
            )
        })
        .collect()
}

struct Seeded {
    prefix: String,
    /// repository → its stale (untagged, unreferenced) cache digests.
    stale: BTreeMap<String, Vec<String>>,
    /// repository → digests under cache tags.
    cached: BTreeMap<String, Vec<String>>,
    outside: String,
}

/// Three repositories under one prefix (one with a multi-arch image whose untagged children must
/// not count as stale, one with two branch caches, one empty) and one outside it.
async fn seed() -> Seeded {
    let ecr = ecr_client();
    let prefix = unique_name("report");
    let (app, web, empty) = (
        format!("{prefix}-app"),
        format!("{prefix}-web"),
        format!("{prefix}-empty"),
    );
    let outside = format!("other-{prefix}");
    for name in [&app, &web, &empty, &outside] {
        create_repository(&ecr, name).await;
    }
    let mut stale = BTreeMap::new();
    let mut cached = BTreeMap::new();

    let old = [
        cache_manifest(&format!("{app}-1")),
        cache_manifest(&format!("{app}-2")),
    ];
    for m in &old {
        push(&ecr, &app, m, None).await;
    }
    let main = cache_manifest(&format!("{app}-main"));
    push(&ecr, &app, &main, Some("cache-main")).await;
    let (amd, arm) = (app_manifest(&app, "amd64"), app_manifest(&app, "arm64"));
    push(&ecr, &app, &amd, None).await;
    push(&ecr, &app, &arm, None).await;
    let multi = index(&[(&amd, platform("amd64")), (&arm, platform("arm64"))]);
    push(&ecr, &app, &multi, Some("v1.0")).await;
    stale.insert(app.clone(), old.iter().map(|m| m.digest.clone()).collect());
    cached.insert(app.clone(), vec![main.digest.clone()]);

    let old = cache_manifest(&format!("{web}-old"));
    push(&ecr, &web, &old, None).await;
    let (main, feature) = (
        cache_manifest(&format!("{web}-main")),
        cache_manifest(&format!("{web}-feature")),
    );
    push(&ecr, &web, &main, Some("cache-main")).await;
    push(&ecr, &web, &feature, Some("cache-feature-x")).await;
    stale.insert(web.clone(), vec![old.digest.clone()]);
    cached.insert(
        web.clone(),
        vec![main.digest.clone(), feature.digest.clone()],
    );

    let lost = cache_manifest(&format!("{outside}-old"));
    push(&ecr, &outside, &lost, None).await;
    push(
        &ecr,
        &outside,
        &cache_manifest(&format!("{outside}-main")),
        Some("cache-main"),
    )
    .await;
    Seeded {
        prefix,
        stale,
        cached,
        outside,
    }
}

#[tokio::test]
async fn totals_are_unique_bytes_beside_describe_images_sizes_and_nothing_is_deleted() {
    let s = seed().await;
    let mut before = BTreeMap::new();
    for name in s.stale.keys().chain([&s.outside]) {
        before.insert(name.clone(), contents(&ecr_client(), name).await);
    }
    let glob = format!("{}-*", s.prefix);
    // The deployment's own setting says delete; the report still only reads.
    let out = report(
        endpoint(),
        &[
            "--repositories",
            &glob,
            "--json",
            "--price-per-gb-month",
            "0.5",
        ],
        &[("DRY_RUN", "false")],
    );
    let json = json_of(&out);

    // Every cache_manifest has blobs of its own: a config and three layers.
    let one_manifest: u64 = 1832 + 3 * 52_428_800 + 1 + 2;
    let mut expected_stale = 0;
    let mut expected_cache = 0;
    for (name, digests) in &s.stale {
        let sizes = sizes(name).await;
        let stale: i64 = digests.iter().map(|d| sizes[d]).sum();
        let cache: i64 = stale + s.cached[name].iter().map(|d| sizes[d]).sum::<i64>();
        let row = json["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["repository"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing: {json}"));
        assert_eq!(row["stale_manifests"], digests.len(), "{row}");
        assert_eq!(row["stale_bytes"], stale, "{row}");
        assert_eq!(row["cache_bytes"], cache, "{row}");
        assert_eq!(row["cache_tags"], s.cached[name].len(), "{row}");
        // Unique bytes from the manifests' blobs: moto's imageSizeInBytes knows no layers.
        let manifests = (digests.len() + s.cached[name].len()) as u64;
        assert_eq!(
            row["stale_unique_bytes"],
            digests.len() as u64 * one_manifest,
            "{row}"
        );
        assert_eq!(row["cache_unique_bytes"], manifests * one_manifest, "{row}");
        assert!(row.get("error").is_none(), "{row}");
        expected_stale += stale;
        expected_cache += cache;
    }
    let totals = &json["totals"];
    assert_eq!(totals["repositories"], 3, "{json}");
    assert_eq!(totals["stale_manifests"], 3, "{json}");
    assert_eq!(totals["stale_bytes"], expected_stale, "{json}");
    assert_eq!(totals["cache_bytes"], expected_cache, "{json}");
    assert_eq!(totals["cache_tags"], 3, "{json}");
    assert_eq!(totals["stale_unique_bytes"], 3 * one_manifest, "{json}");
    // Priced by the storage a sweep frees (unique bytes), not by the summed image sizes.
    let savings = ((3 * one_manifest) as f64 / (1u64 << 30) as f64 * 0.5 * 100.0).round() / 100.0;
    assert_eq!(totals["monthly_savings_usd"].as_f64(), Some(savings));
    assert_eq!(totals["price_per_gb_month"].as_f64(), Some(0.5));
    // Largest stale first; the repository outside the glob is not in the report.
    assert_eq!(
        json["repositories"][0]["repository"],
        format!("{}-app", s.prefix)
    );
    assert!(!json.to_string().contains(&s.outside));

    for (name, was) in before {
        assert_eq!(contents(&ecr_client(), &name).await, was, "{name} changed");
    }
}

#[tokio::test]
async fn the_default_scope_is_sweep_repositories() {
    let s = seed().await;
    let only = format!("{}-w*", s.prefix);
    let json = json_of(&report(
        endpoint(),
        &["--json", "--concurrency", "1"],
        &[("SWEEP_REPOSITORIES", &only)],
    ));
    let names: Vec<&str> = json["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repository"].as_str().unwrap())
        .collect();
    assert_eq!(names, [format!("{}-web", s.prefix)]);
}

#[tokio::test]
async fn a_repository_that_cannot_be_read_is_reported_and_the_others_still_are() {
    let s = seed().await;
    let locked = format!("{}-web", s.prefix);
    let proxy = DenyProxy::start(endpoint(), &locked).await;
    let glob = format!("{}-*", s.prefix);
    let url = proxy.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        report(&url, &["--repositories", &glob, "--json"], &[])
    })
    .await
    .unwrap();
    let json = json_of(&out);
    let rows = json["repositories"].as_array().unwrap();
    let failed = rows
        .iter()
        .find(|r| r["repository"] == locked.as_str())
        .unwrap();
    assert!(
        failed["error"].as_str().unwrap().contains("not authorized")
            || failed["error"].as_str().unwrap().contains("AccessDenied"),
        "{failed}"
    );
    assert_eq!(failed["stale_bytes"], 0);
    assert_eq!(json["totals"]["repositories_failed"], 1);
    assert_eq!(json["totals"]["stale_manifests"], 2, "{json}");
    let app = rows
        .iter()
        .find(|r| r["repository"] == format!("{}-app", s.prefix).as_str())
        .unwrap();
    assert_eq!(app["stale_manifests"], 2);
}

#[tokio::test]
async fn the_table_and_the_page_name_every_repository() {
    let s = seed().await;
    let dir = std::env::temp_dir().join(unique_name("report-html"));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    let glob = format!("{}-*", s.prefix);
    let out = report(
        endpoint(),
        &["--repositories", &glob, "--html", page.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("total: 3 repositories (0 not read)"),
        "{table}"
    );
    assert!(table.contains("3 stale manifest(s)"), "{table}");
    assert!(table.contains("ARCHIVED"), "{table}");
    let said = String::from_utf8_lossy(&out.stderr);
    // Where the page went, and the reads (pulls) said before and counted after.
    let written = std::fs::canonicalize(&page).unwrap();
    assert!(
        said.contains(&format!("report page written to {}", written.display())),
        "{said}"
    );
    assert!(said.contains("each read is a pull"), "{said}");
    assert!(said.contains("manifest(s) read"), "{said}");
    let html = std::fs::read_to_string(&page).unwrap();
    for name in s.stale.keys() {
        assert!(table.contains(name.as_str()), "{table}");
        assert!(html.contains(name.as_str()));
    }
    assert!(html.contains("<svg"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_price_or_concurrency_is_a_usage_error() {
    for args in [
        ["--price-per-gb-month", "-1"],
        ["--price-per-gb-month", "NaN"],
        ["--concurrency", "0"],
    ] {
        let out = report("http://127.0.0.1:9", &args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// `report --budget`: the footprint in unique bytes (a layer shared by every branch cache counted
/// once), what that budget evicts least recently used first, and nothing deleted.
#[tokio::test]
async fn a_budget_is_planned_per_repository_in_unique_bytes() {
    let ecr = ecr_client();
    let name = unique_name("report-budget");
    create_repository(&ecr, &name).await;
    const MIB: u64 = 1 << 20;
    // main and three branches, each 10 MiB of its own over a 100 MiB base they share.
    for branch in ["main", "a", "b", "c"] {
        let own = format!("{name}-{branch}");
        let manifest = cache_manifest_with_layers(
            &own,
            &[(&format!("{name}-base"), 100 * MIB), (&own, 10 * MIB)],
        );
        push(&ecr, &name, &manifest, Some(&format!("cache-{branch}"))).await;
    }
    let before = contents(&ecr, &name).await;
    let out = report(
        endpoint(),
        &["--repositories", &name, "--json", "--budget", "125MiB"],
        // The grace period is measured from the pushes a moment ago.
        &[("CACHE_BUDGET_MIN_AGE_MINUTES", "0")],
    );
    let json = json_of(&out);
    let row = &json["repositories"][0];
    let budget = &row["budget"];
    // 100 + 4 × 10 MiB and four 1000-byte configs, where ECR's sizes would sum four bases.
    assert_eq!(row["cache_unique_bytes"], 140 * MIB + 4000, "{row}");
    assert_eq!(budget["budget_bytes"], 125 * MIB, "{row}");
    assert_eq!(budget["footprint_bytes"], 140 * MIB + 4000, "{row}");
    // Two of the three branch caches go, never main (protected). (Which two: moto's push times
    // are whole seconds, so the order is tested over the in-memory registry.)
    let evicted = budget["would_evict"].as_array().unwrap();
    assert_eq!(evicted.len(), 2, "{row}");
    assert!(!evicted.contains(&serde_json::json!("cache-main")), "{row}");
    assert_eq!(
        row["expiring_tag_bytes"], 0,
        "budget evictions are in their own columns"
    );
    assert_eq!(budget["evict_frees_bytes"], 20 * MIB + 2000, "{row}");
    assert_eq!(json["totals"]["repositories_over_budget"], 1, "{json}");
    assert_eq!(
        contents(&ecr, &name).await,
        before,
        "the report changed the repository"
    );

    // A malformed budget is a usage error before any call.
    let bad = report(endpoint(), &["--budget", "20GB"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("binary units"));
}
