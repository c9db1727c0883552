//! The GitHub adapter: which branches exist, for the sweep (a cache tag whose branch is gone can
//! go; the cache of a branch that still exists never). octocrab against the GitHub REST API, or a
//! GitHub Enterprise / test base URL.

use std::collections::HashSet;
use std::time::Duration;

use octocrab::models::repos::Branch;
use octocrab::Octocrab;
use thiserror::Error;

use crate::app::ports::{BranchListError, BranchLister};

pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";
/// A hung GitHub must not hold a sweep until the Lambda times out.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// 100 branches a page: a repository with more than 100,000 branches is refused, not listed
/// forever.
const MAX_PAGES: usize = 1000;

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
        Self::with_timeouts(api_url, token, CONNECT_TIMEOUT, READ_TIMEOUT)
    }

    pub fn with_timeouts(
        api_url: &str,
        token: &str,
        connect: Duration,
        read: Duration,
    ) -> Result<Self, GithubClientError> {
        let client = Octocrab::builder()
            .set_connect_timeout(Some(connect))
            .set_read_timeout(Some(read))
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
        let (owner, name) = split(full_name)?;
        let first = self
            .client
            .repos(owner, name)
            .list_branches()
            .per_page(100u8)
            .send()
            .await
            .map_err(|e| list_error(full_name, e))?;
        let branches: Vec<Branch> = self.all_pages(full_name, first, "branches").await?;
        Ok(branches.into_iter().map(|branch| branch.name).collect())
    }

    async fn open_pull_requests(&self, full_name: &str) -> Result<Vec<u64>, BranchListError> {
        let (owner, name) = split(full_name)?;
        let first = self
            .client
            .pulls(owner, name)
            .list()
            .state(octocrab::params::State::Open)
            .per_page(100u8)
            .send()
            .await
            .map_err(|e| list_error(full_name, e))?;
        let pulls: Vec<octocrab::models::pulls::PullRequest> = self
            .all_pages(full_name, first, "open pull requests")
            .await?;
        Ok(pulls.into_iter().map(|pull| pull.number).collect())
    }

    async fn pull_request_open(
        &self,
        full_name: &str,
        number: u64,
    ) -> Result<bool, BranchListError> {
        let (owner, name) = split(full_name)?;
        let pull = self
            .client
            .pulls(owner, name)
            .get(number)
            .await
            .map_err(|e| list_error(full_name, e))?;
        Ok(matches!(
            pull.state,
            Some(octocrab::models::IssueState::Open)
        ))
    }
}

fn split(full_name: &str) -> Result<(&str, &str), BranchListError> {
    full_name
        .split_once('/')
        .ok_or_else(|| BranchListError::BadRepositoryName(full_name.to_owned()))
}

impl GithubBranches {
    /// Every item of a listing, its pages followed by hand, not with `all_pages`: a `next` link
    /// seen before would loop forever.
    async fn all_pages<I: serde::de::DeserializeOwned>(
        &self,
        full_name: &str,
        first: octocrab::Page<I>,
        what: &str,
    ) -> Result<Vec<I>, BranchListError> {
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        let mut page = first;
        for _ in 0..MAX_PAGES {
            items.extend(page.items);
            let Some(next) = page.next else {
                return Ok(items);
            };
            if !seen.insert(next.to_string()) {
                return Err(BranchListError::Unavailable {
                    repository: full_name.to_owned(),
                    message: format!("the next-page link {next} repeats; the listing would loop"),
                });
            }
            page = match self
                .client
                .get_page::<I>(&Some(next))
                .await
                .map_err(|e| list_error(full_name, e))?
            {
                Some(page) => page,
                None => return Ok(items),
            };
        }
        Err(BranchListError::Unavailable {
            repository: full_name.to_owned(),
            message: format!("more than {MAX_PAGES} pages of {what}"),
        })
    }
}

/// Reads a token, on first use and again when GitHub refuses the one in use (a rotation).
pub trait TokenSource: Send + Sync {
    fn token(&self) -> impl std::future::Future<Output = Result<String, String>> + Send;
    /// Reads the token again, bypassing any cache.
    fn reread(&self) -> impl std::future::Future<Output = Result<String, String>> + Send;
}

impl TokenSource for crate::adapters::secrets::CachedSecret {
    async fn token(&self) -> Result<String, String> {
        self.get()
            .await
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }
    async fn reread(&self) -> Result<String, String> {
        crate::adapters::secrets::CachedSecret::reread(self)
            .await
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }
}

/// [`BranchLister`] whose token comes from a [`TokenSource`] (Secrets Manager in production):
/// built on first use, and rebuilt with a freshly read token when GitHub answers 401 or 403, so
/// a rotated token is picked up at once instead of failing every sweep until a cold start.
pub struct GithubWithToken<T: TokenSource> {
    api_url: String,
    source: T,
    /// The token in use and its client.
    client: tokio::sync::Mutex<Option<(String, std::sync::Arc<GithubBranches>)>>,
}

impl<T: TokenSource> GithubWithToken<T> {
    pub fn new(api_url: impl Into<String>, source: T) -> Self {
        GithubWithToken {
            api_url: api_url.into(),
            source,
            client: tokio::sync::Mutex::new(None),
        }
    }

    async fn client(
        &self,
        repository: &str,
        fresh: bool,
    ) -> Result<(String, std::sync::Arc<GithubBranches>), BranchListError> {
        let unavailable = |message: String| BranchListError::Unavailable {
            repository: repository.to_owned(),
            message,
        };
        let mut slot = self.client.lock().await;
        if let (false, Some(current)) = (fresh, slot.as_ref()) {
            return Ok(current.clone());
        }
        let token = if fresh {
            self.source.reread().await
        } else {
            self.source.token().await
        }
        .map_err(|e| unavailable(format!("the GitHub token: {e}")))?;
        if let Some(current) = slot.as_ref().filter(|(t, _)| *t == token) {
            return Ok(current.clone());
        }
        let client =
            GithubBranches::new(&self.api_url, &token).map_err(|e| unavailable(e.to_string()))?;
        let made = (token, std::sync::Arc::new(client));
        *slot = Some(made.clone());
        Ok(made)
    }
}

impl<T: TokenSource> GithubWithToken<T> {
    /// Calls `call` with the client of the token in use; when GitHub refuses it (401, 403) the
    /// token may have been rotated: it is read again, and the call retried only with a new one.
    async fn with_rotation<O, F, Fut>(&self, full_name: &str, call: F) -> Result<O, BranchListError>
    where
        F: Fn(std::sync::Arc<GithubBranches>) -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<O, BranchListError>> + Send,
    {
        let (token, client) = self.client(full_name, false).await?;
        match call(client).await {
            Err(refused @ BranchListError::Refused { status, .. })
                if status == 401 || status == 403 =>
            {
                let (fresh, client) = self.client(full_name, true).await?;
                if fresh == token {
                    return Err(refused);
                }
                call(client).await
            }
            other => other,
        }
    }
}

impl<T: TokenSource> BranchLister for GithubWithToken<T> {
    async fn branches(&self, full_name: &str) -> Result<Vec<String>, BranchListError> {
        let name = full_name.to_owned();
        self.with_rotation(full_name, |client| {
            let name = name.clone();
            async move { client.branches(&name).await }
        })
        .await
    }

    async fn open_pull_requests(&self, full_name: &str) -> Result<Vec<u64>, BranchListError> {
        let name = full_name.to_owned();
        self.with_rotation(full_name, |client| {
            let name = name.clone();
            async move { client.open_pull_requests(&name).await }
        })
        .await
    }

    async fn pull_request_open(
        &self,
        full_name: &str,
        number: u64,
    ) -> Result<bool, BranchListError> {
        let name = full_name.to_owned();
        self.with_rotation(full_name, |client| {
            let name = name.clone();
            async move { client.pull_request_open(&name, number).await }
        })
        .await
    }
}
