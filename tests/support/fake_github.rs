//! A fake of the GitHub REST API's branch and open pull request listings on loopback: real HTTP, real pagination
//! (`Link: <…>; rel="next"`), token check, 404 for unknown repositories. Two misbehaving
//! repositories: any `owner/looping` answers a `next` link back to its first page forever, and any
//! `owner/stalled` never answers. Branches can change between listings: one written
//! `name@N` appears from the repository's Nth branch listing on (earlier ones miss it, as when a
//! branch deleted between two pages shifts it onto a page already read), one written `name<N`
//! only in listings before the Nth (deleted after listing N-1).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::http::read_request;

pub const TOKEN: &str = "ghp_exampletoken0123456789";
const PAGE_SIZE: usize = 2;

pub struct FakeGithub {
    pub url: String,
    /// Paths requested, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeGithub {
    /// Serves `repositories` (`owner/name` → branch names).
    pub async fn start(repositories: HashMap<String, Vec<String>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (log, base, repos) = (requests.clone(), url.clone(), Arc::new(repositories));
        let listings: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (log, base, repos) = (log.clone(), base.clone(), repos.clone());
                let listings = listings.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    while let Some(request) = read_request(&mut stream, &mut buffer).await {
                        log.lock().unwrap().push(request.path.clone());
                        if request.path.contains("/stalled/") {
                            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                        }
                        let (status, body, link) = answer(&request, &base, &repos, &listings);
                        let link = link.map(|l| format!("Link: {l}\r\n")).unwrap_or_default();
                        let response = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{link}Content-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeGithub { url, requests }
    }

    /// How many times the branches of repository `name` (its name without the owner) were
    /// listed: first-page requests (the client asks for the first page with no `page` parameter,
    /// for the next ones through the `Link` header's `&page=N`).
    pub fn branch_listings(&self, name: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.contains(&format!("/{name}/branches")) && !p.contains("&page="))
            .count()
    }
}

fn answer(
    request: &super::http::Request,
    base: &str,
    repos: &HashMap<String, Vec<String>>,
    listings: &Mutex<HashMap<String, usize>>,
) -> (&'static str, String, Option<String>) {
    if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return (
            "401 Unauthorized",
            json!({"message": "Bad credentials"}).to_string(),
            None,
        );
    }
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // A pull request: open when the repository's list holds `#<number>`, else closed.
    if let ["repos", owner, name, "pulls", number] = parts.as_slice() {
        let Some(entries) = repos.get(&format!("{owner}/{name}")) else {
            return (
                "404 Not Found",
                json!({"message": "Not Found"}).to_string(),
                None,
            );
        };
        // `404:<number>`: no such pull request in this repository (it lives in another).
        if entries
            .iter()
            .any(|e| e.strip_prefix("404:") == Some(number))
        {
            return (
                "404 Not Found",
                json!({"message": "Not Found"}).to_string(),
                None,
            );
        }
        let open = entries
            .iter()
            .any(|e| e.strip_prefix('#').map(|e| e.trim_end_matches('?')) == Some(number));
        let sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
        let pull = json!({"id": 1, "number": number.parse::<u64>().unwrap_or(0),
            "url": format!("{base}/repos/{owner}/{name}/pulls/{number}"),
            "state": if open { "open" } else { "closed" },
            "head": {"ref": "feature", "sha": sha}, "base": {"ref": "main", "sha": sha}});
        return ("200 OK", pull.to_string(), None);
    }
    // Open pull requests: the repository's `#<number>` entries, paged like branches; a
    // `#<number>?` entry is open but missing from the listing (as when another pull request
    // closing between two pages shifts it to a page already read).
    if let ["repos", owner, name, "pulls"] = parts.as_slice() {
        let Some(entries) = repos.get(&format!("{owner}/{name}")) else {
            return (
                "404 Not Found",
                json!({"message": "Not Found"}).to_string(),
                None,
            );
        };
        assert!(
            query.contains("state=open"),
            "only open pull requests are listed: {query}"
        );
        let page = page_of(query);
        let open: Vec<u64> = entries
            .iter()
            .filter_map(|e| e.strip_prefix('#')?.parse().ok())
            .collect();
        let sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
        let items: Vec<_> = open
            .iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .map(|number| {
                json!({"id": number, "number": number,
                "url": format!("{base}/repos/{owner}/{name}/pulls/{number}"), "state": "open",
                "head": {"ref": "feature", "sha": sha}, "base": {"ref": "main", "sha": sha}})
            })
            .collect();
        let link = (page * PAGE_SIZE < open.len()).then(|| {
            format!(
                "<{base}/repos/{owner}/{name}/pulls?state=open&per_page=100&page={}>; rel=\"next\"",
                page + 1
            )
        });
        return ("200 OK", serde_json::Value::Array(items).to_string(), link);
    }
    let ["repos", owner, name, "branches"] = parts.as_slice() else {
        return (
            "404 Not Found",
            json!({"message": "Not Found"}).to_string(),
            None,
        );
    };
    let Some(branches) = repos.get(&format!("{owner}/{name}")) else {
        return (
            "404 Not Found",
            json!({"message": "Not Found"}).to_string(),
            None,
        );
    };
    let page = page_of(query);
    // Which listing of this repository's branches this page belongs to (1 = the first).
    let listing = {
        let mut listings = listings.lock().unwrap();
        let count = listings.entry(format!("{owner}/{name}")).or_default();
        if page == 1 {
            *count += 1;
        }
        *count
    };
    let branches: Vec<&str> = branches
        .iter()
        .filter(|b| !b.starts_with('#') && !b.starts_with("404:"))
        .filter_map(|b| match b.split_once(['@', '<']) {
            None => Some(b.as_str()),
            Some((name, n)) => {
                let n: usize = n.parse().unwrap();
                let listed = if b.contains('@') {
                    listing >= n
                } else {
                    listing < n
                };
                listed.then_some(name)
            }
        })
        .collect();
    let items: Vec<_> = branches
        .iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|b| json!({"name": b, "commit": {"sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
                         "url": format!("{base}/repos/{owner}/{name}/commits/6113728f")}, "protected": false}))
        .collect();
    if *name == "looping" {
        let link =
            format!("<{base}/repos/{owner}/{name}/branches?per_page=100&page=1>; rel=\"next\"");
        return (
            "200 OK",
            serde_json::Value::Array(items).to_string(),
            Some(link),
        );
    }
    let link = (page * PAGE_SIZE < branches.len()).then(|| {
        format!(
            "<{base}/repos/{owner}/{name}/branches?per_page=100&page={}>; rel=\"next\"",
            page + 1
        )
    });
    ("200 OK", serde_json::Value::Array(items).to_string(), link)
}

fn page_of(query: &str) -> usize {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
}
