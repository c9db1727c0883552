//! A proxy in front of moto that answers ECR's `AccessDeniedException` to every call naming one
//! repository, as ECR does when a repository policy or an SCP denies the caller; every other
//! call goes to moto unchanged. moto enforces no IAM, so this is how a test meets a repository
//! it may list but not read.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::http::read_request;

pub struct DenyProxy {
    pub url: String,
    /// The `X-Amz-Target` (or path) of every call that passed, in order: what a test counts.
    pub calls: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl DenyProxy {
    /// Forwards to `upstream` (`http://host:port`), denying calls whose body names `denied`.
    pub async fn start(upstream: &str, denied: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let needle = format!("\"repositoryName\":\"{denied}\"");
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = calls.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (upstream, needle, record) = (upstream.clone(), needle.clone(), record.clone());
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    while let Some(request) = read_request(&mut stream, &mut buffer).await {
                        let target = request
                            .header("x-amz-target")
                            .unwrap_or(&request.path)
                            .to_owned();
                        record.lock().unwrap().push(target);
                        let compact: String = String::from_utf8_lossy(&request.body)
                            .chars()
                            .filter(|c| !c.is_whitespace())
                            .collect();
                        let response = if compact.contains(&needle) {
                            let body = r#"{"__type":"AccessDeniedException","message":"User is not authorized to perform: ecr:DescribeImages on resource because no resource-based policy allows it"}"#;
                            format!(
                                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: AccessDeniedException\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .into_bytes()
                        } else {
                            forward(&upstream, &request).await
                        };
                        if stream.write_all(&response).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        DenyProxy { url, calls }
    }
}

/// One request to moto over a fresh connection (closed after the answer), answered back with
/// its length, so the client's connection can stay open.
async fn forward(upstream: &str, request: &super::http::Request) -> Vec<u8> {
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("content-length")
        {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n",
        request.body.len()
    ));
    let mut moto = TcpStream::connect(upstream).await.unwrap();
    moto.write_all(head.as_bytes()).await.unwrap();
    moto.write_all(&request.body).await.unwrap();
    let mut answer = Vec::new();
    moto.read_to_end(&mut answer).await.unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("moto answers with headers")
        + 4;
    let (headers, body) = answer.split_at(split);
    let mut out = String::new();
    for line in String::from_utf8_lossy(headers).split("\r\n") {
        let name = line.split(':').next().unwrap_or("").trim();
        if line.is_empty()
            || name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
