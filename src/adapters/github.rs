//! The GitHub adapter: which branches exist, for the sweep (a cache tag whose branch is gone can
//! go; the cache of a branch that still exists never). octocrab against the GitHub REST API, or a
//! GitHub Enterprise / test base URL.

use octocrab::Octocrab;
use thiserror::Error;

use crate::app::ports::{BranchListError, BranchLister};

pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";

#[derive(Debug, Error)]
pub enum GithubClientError {
    #[error("invalid GitHub API URL {url:?}: {message}")]
    BadUrl { url: String, message: String },
    #[error("GitHub client: {0}")]
    Build(String),
}

/// [`BranchLister`] on the GitHub REST API.
pub struct GithubBranches {
    client: Octocrab,
}

impl GithubBranches {
    pub fn new(api_url: &str, token: &str) -> Result<Self, GithubClientError> {
        let client = Octocrab::builder()
            .base_uri(api_url)
            .map_err(|e| GithubClientError::BadUrl {
                url: api_url.to_owned(),
                message: e.to_string(),
            })?
            .personal_token(token.to_owned())
            .build()
            .map_err(|e| GithubClientError::Build(e.to_string()))?;
        Ok(GithubBranches { client })
    }
}

fn list_error(repository: &str, err: octocrab::Error) -> BranchListError {
    match err {
        octocrab::Error::GitHub { source, .. } => BranchListError::Refused {
            repository: repository.to_owned(),
            status: source.status_code.as_u16(),
            message: source.message,
        },
        other => BranchListError::Unavailable {
            repository: repository.to_owned(),
            message: other.to_string(),
        },
    }
}

impl BranchLister for GithubBranches {
    async fn branches(&self, full_name: &str) -> Result<Vec<String>, BranchListError> {
        let (owner, name) = full_name
            .split_once('/')
            .ok_or_else(|| BranchListError::BadRepositoryName(full_name.to_owned()))?;
        let first = self
            .client
            .repos(owner, name)
            .list_branches()
            .per_page(100u8)
            .send()
            .await
            .map_err(|e| list_error(full_name, e))?;
        let all = self
            .client
            .all_pages(first)
            .await
            .map_err(|e| list_error(full_name, e))?;
        Ok(all.into_iter().map(|branch| branch.name).collect())
    }
}
