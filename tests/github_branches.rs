//! The GitHub branch lister against a local fake of the GitHub REST API (real HTTP): pages, a
//! `next` link that loops, a server that never answers.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ecr_cache_pruner::adapters::github::GithubBranches;
use ecr_cache_pruner::app::ports::{BranchListError, BranchLister};
use support::fake_github::{FakeGithub, TOKEN};

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("branch-{i}")).collect()
}

#[tokio::test]
async fn every_page_is_followed() {
    let github = FakeGithub::start(HashMap::from([("acme/app".to_owned(), names(5))])).await;
    let client = GithubBranches::new(&github.url, TOKEN).unwrap();
    assert_eq!(client.branches("acme/app").await.unwrap(), names(5));
    assert_eq!(github.requests.lock().unwrap().len(), 3, "pages of 2");
}

#[tokio::test]
async fn a_next_link_that_loops_is_an_error_not_an_endless_listing() {
    let github = FakeGithub::start(HashMap::from([("acme/looping".to_owned(), names(2))])).await;
    let client = GithubBranches::new(&github.url, TOKEN).unwrap();
    let err = client.branches("acme/looping").await.unwrap_err();
    assert!(
        matches!(&err, BranchListError::Unavailable { message, .. } if message.contains("repeats")),
        "{err}"
    );
    assert!(github.requests.lock().unwrap().len() <= 3);
}

#[tokio::test]
async fn a_github_that_never_answers_times_out() {
    let github = FakeGithub::start(HashMap::from([("acme/stalled".to_owned(), names(1))])).await;
    let client = GithubBranches::with_timeouts(
        &github.url,
        TOKEN,
        Duration::from_millis(500),
        Duration::from_millis(300),
    )
    .unwrap();
    let started = Instant::now();
    let err = client.branches("acme/stalled").await.unwrap_err();
    assert!(matches!(err, BranchListError::Unavailable { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the read timeout applies"
    );
}

#[tokio::test]
async fn refusals_name_the_status() {
    let github = FakeGithub::start(HashMap::new()).await;
    let client = GithubBranches::new(&github.url, TOKEN).unwrap();
    let err = client.branches("acme/unknown").await.unwrap_err();
    assert!(
        matches!(err, BranchListError::Refused { status: 404, .. }),
        "{err}"
    );
}
