//! GitHub repository → ECR repositories: which repositories hold a GitHub repository's branch
//! caches (for branch deletions) and which GitHub repositories own an ECR repository's caches
//! (for the gone-branch sweep).

use std::collections::BTreeMap;

use thiserror::Error;

use super::names::is_valid_repository_name;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RepositoryMapError {
    #[error("entry {0:?} is not owner/name=ecr-repository")]
    NotAnEntry(String),
    #[error("{0:?} is not a GitHub owner/name")]
    BadGithubName(String),
    #[error("{0:?} is not a valid ECR repository name")]
    BadRepositoryName(String),
}

/// GitHub repository (`owner/name`) → ECR repositories. Written as comma-separated
/// `owner/name=ecr-repo` entries; repeat a key to map one GitHub repository to several ECR
/// repositories. GitHub names compare case-insensitively. Unmapped repositories map to their
/// lowercased `name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryMap(BTreeMap<String, Vec<String>>);

impl RepositoryMap {
    pub fn parse(raw: &str) -> Result<Self, RepositoryMapError> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (github, ecr) = entry
                .split_once('=')
                .ok_or_else(|| RepositoryMapError::NotAnEntry(entry.to_owned()))?;
            let (github, ecr) = (github.trim(), ecr.trim());
            let valid_github = matches!(github.split_once('/'), Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/'));
            if !valid_github {
                return Err(RepositoryMapError::BadGithubName(github.to_owned()));
            }
            if !is_valid_repository_name(ecr) {
                return Err(RepositoryMapError::BadRepositoryName(ecr.to_owned()));
            }
            let repos = map.entry(github.to_ascii_lowercase()).or_default();
            if !repos.iter().any(|r| r == ecr) {
                repos.push(ecr.to_owned());
            }
        }
        Ok(RepositoryMap(map))
    }

    /// GitHub repositories whose branches own caches in `ecr_repository`: the mapped ones, else
    /// `default_owner/<last path component>` when a default owner is known.
    pub fn github_repositories_for(
        &self,
        ecr_repository: &str,
        default_owner: Option<&str>,
    ) -> Vec<String> {
        let mapped: Vec<String> = self
            .0
            .iter()
            .filter(|(_, repos)| repos.iter().any(|r| r == ecr_repository))
            .map(|(github, _)| github.clone())
            .collect();
        if !mapped.is_empty() {
            return mapped;
        }
        match default_owner {
            Some(owner) => {
                let name = ecr_repository.rsplit('/').next().unwrap_or(ecr_repository);
                vec![format!("{owner}/{name}")]
            }
            None => vec![],
        }
    }

    /// ECR repositories for a GitHub `owner/name`.
    pub fn ecr_repositories(&self, github_full_name: &str) -> Vec<String> {
        if let Some(mapped) = self.0.get(&github_full_name.to_ascii_lowercase()) {
            return mapped.clone();
        }
        let name = github_full_name
            .rsplit('/')
            .next()
            .unwrap_or(github_full_name)
            .to_ascii_lowercase();
        vec![name]
    }
}
