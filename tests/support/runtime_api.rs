//! A minimal Lambda Runtime API on loopback, so the real `pruner` binary can be run the way the
//! Lambda service runs it: it polls `/invocation/next`, we hand it events and collect answers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::http::read_request;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the function posted back.
#[derive(Debug, Clone)]
pub struct Answer {
    pub request_id: String,
    /// `response`, `error` or `init-error`.
    pub kind: String,
    pub body: Value,
}

pub struct FakeRuntimeApi {
    pub address: String,
    pub answers: mpsc::UnboundedReceiver<Answer>,
}

impl FakeRuntimeApi {
    /// Serves `events` in order (request ids `req-0`, `req-1`, ...), then holds the next poll open.
    pub async fn start(events: Vec<Value>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let queue = Arc::new(Mutex::new(
            events.into_iter().enumerate().collect::<VecDeque<_>>(),
        ));
        let (tx, answers) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(connection(stream, queue.clone(), tx.clone()));
            }
        });
        FakeRuntimeApi { address, answers }
    }
}

async fn connection(
    mut stream: TcpStream,
    queue: Arc<Mutex<VecDeque<(usize, Value)>>>,
    tx: mpsc::UnboundedSender<Answer>,
) {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buffer).await {
        let (method, path, body) = (request.method, request.path, request.body);
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let next = queue.lock().unwrap().pop_front();
            let Some((n, event)) = next else {
                // No more events: keep the poll open, like an idle Lambda sandbox.
                std::future::pending::<()>().await;
                return;
            };
            let payload = event.to_string();
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 60_000;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-{n}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:pruner\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0\r\n\
                 Content-Length: {}\r\n\r\n{payload}",
                payload.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        } else {
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let (request_id, kind) = match segments.as_slice() {
                [_, "runtime", "invocation", id, kind] => (id.to_string(), kind.to_string()),
                [_, "runtime", "init", "error"] => (String::new(), "init-error".to_owned()),
                _ => (String::new(), format!("unexpected {method} {path}")),
            };
            let body = serde_json::from_slice(&body)
                .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()));
            let _ = tx.send(Answer {
                request_id,
                kind,
                body,
            });
            let ok = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}";
            if stream.write_all(ok.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// Environment the Lambda service gives a function, pointed at `runtime_api` and `endpoint`.
pub fn lambda_env(runtime_api: &str, endpoint: &str, function: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_LAMBDA_FUNCTION_NAME", function),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test"),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/11/27/[$LATEST]0123456789abcdef",
        ),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
