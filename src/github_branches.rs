//! Which branches exist on GitHub, for the sweep: a cache tag whose branch is gone can go, and the
//! cache of a branch that still exists is never removed. Uses octocrab against the GitHub REST API
//! (or a GitHub Enterprise / test base URL).

use octocrab::Octocrab;

pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";

pub struct GithubBranches {
    client: Octocrab,
}

impl GithubBranches {
    pub fn new(api_url: &str, token: &str) -> Result<Self, String> {
        let client = Octocrab::builder()
            .base_uri(api_url)
            .map_err(|e| format!("invalid GitHub API URL {api_url:?}: {e}"))?
            .personal_token(token.to_owned())
            .build()
            .map_err(|e| format!("GitHub client: {e}"))?;
        Ok(GithubBranches { client })
    }

    /// Every branch name of `owner/name`, all pages.
    pub async fn branches(&self, full_name: &str) -> Result<Vec<String>, String> {
        let (owner, name) = full_name
            .split_once('/')
            .ok_or_else(|| format!("{full_name:?} is not owner/name"))?;
        let first = self
            .client
            .repos(owner, name)
            .list_branches()
            .per_page(100u8)
            .send()
            .await
            .map_err(|e| format!("listing branches of {full_name}: {}", describe(&e)))?;
        let all = self
            .client
            .all_pages(first)
            .await
            .map_err(|e| format!("listing branches of {full_name}: {}", describe(&e)))?;
        Ok(all.into_iter().map(|branch| branch.name).collect())
    }
}

fn describe(err: &octocrab::Error) -> String {
    match err {
        octocrab::Error::GitHub { source, .. } => {
            format!("GitHub answered {}: {}", source.status_code, source.message)
        }
        other => other.to_string(),
    }
}
