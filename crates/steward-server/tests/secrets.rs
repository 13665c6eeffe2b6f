//! Planted secrets that come back: a provider (or a proxy in front of it) that echoes the API key
//! in its error body or in an error event of its stream, and an MCP server that echoes its bearer
//! header in a 401, which the MCP client library logs verbatim. The key must appear in no event,
//! run, trace, list, stored file or log line (the log at `trace`, written through the same
//! redacting writer `steward serve` installs) — while the echo itself must be seen arriving
//! redacted, so the test cannot pass by the echo never happening.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response};
use common::{Backend, TestServer, User};
use reqwest::StatusCode;
use serde_json::{Value, json};
use steward_core::redact::SecretRegistry;
use steward_server::logging::RedactingWriter;
use steward_test_support::log_capture::Captured;

/// The key a request carried, whichever way its provider sends it.
fn key_of(headers: &HeaderMap) -> String {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    h("x-api-key")
        .or_else(|| h("x-goog-api-key"))
        .or_else(|| h("authorization").map(|a| a.trim_start_matches("Bearer ").to_owned()))
        .unwrap_or_default()
}

/// A provider that echoes the key it was sent. The first path segment picks how:
/// `json` (401 with the provider's error JSON), `text` (401 with a plain-text body),
/// `retry` (503, retried, then given up: the retry is logged), `stream` (200, then an error
/// event of the provider's own stream format, chosen by the request path).
async fn echo(State(seen): State<Arc<Mutex<Vec<String>>>>, req: Request<Body>) -> Response {
    let key = key_of(req.headers());
    seen.lock().unwrap().push(key.clone());
    let path = req.uri().path().to_owned();
    let mode = path.trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
    let error = json!({"error": {"type": "authentication_error", "code": 401, "status": "UNAUTHENTICATED",
                                 "message": format!("invalid x-api-key: {key}")}});
    match mode.as_str() {
        "json" => (AxStatus::UNAUTHORIZED, axum::Json(error)).into_response(),
        "text" => (AxStatus::UNAUTHORIZED, format!("Unauthorized. Authorization: Bearer {key}")).into_response(),
        "retry" => (AxStatus::SERVICE_UNAVAILABLE, format!("upstream down; you sent {key}")).into_response(),
        _ => {
            let frame = if path.ends_with("/v1/messages") {
                format!("event: error\ndata: {}\n\n", json!({"type": "error", "error": error["error"]}))
            } else {
                format!("data: {error}\n\n")
            };
            ([("content-type", "text/event-stream")], frame).into_response()
        }
    }
}

async fn start_echo() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new().fallback(echo).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen, task)
}

async fn wait_run(s: &TestServer, key: &str, run: &str) -> Value {
    for _ in 0..400 {
        let (st, v) = s.get(&format!("/v1/runs/{run}"), key).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        if !["queued", "running"].contains(&v["status"].as_str().unwrap_or_default()) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} did not end in time");
}

fn assert_absent(what: &str, haystack: &[u8], secret: &str) {
    assert!(!haystack.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret appears in {what}");
}

/// Every file below `dir` (the database, its WAL, workspaces…).
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for f in std::fs::read_dir(&d).unwrap() {
            let p = f.unwrap().path();
            if p.is_dir() { dirs.push(p) } else { out.push(p) }
        }
    }
    out
}

async fn logged_server() -> (TestServer, Captured, tracing::subscriber::DefaultGuard) {
    let registry = SecretRegistry::new();
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(RedactingWriter::new(registry.clone(), captured.clone()))
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let s = TestServer::start_configured(Backend::Sqlite, |c| c.runtime.log_redaction = registry).await.unwrap();
    (s, captured, guard)
}

async fn vault(s: &TestServer, u: &User, name: &str, secret: &str) -> String {
    let (st, v) = s.post("/v1/vaults", &u.key, json!({"name": name, "secret": secret})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "current_thread")]
async fn a_provider_echoing_its_key_leaks_it_nowhere() {
    let (s, captured, _guard) = logged_server().await;
    let u = s.user("ada@example.com").await;
    let secret = format!("sk-PLANTED-{}-key", ulid::Ulid::new());
    let vault_id = vault(&s, &u, "model-key", &secret).await;
    let (echo_url, seen, _task) = start_echo().await;

    let mut seen_texts: Vec<(String, String)> = Vec::new();
    for kind in ["anthropic", "openai", "openai_compatible", "google"] {
        for mode in ["json", "text", "retry", "stream"] {
            let pid = format!("{}-{mode}", kind.replace('_', "-"));
            let body = json!({"id": pid, "provider": kind, "base_url": format!("{echo_url}/{mode}"),
                              "api_key_vault_id": vault_id, "models": ["m-1"]});
            let (st, v) = s.post("/v1/providers", &u.key, body).await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
            let agent = json!({"name": format!("a-{pid}"), "model": {"provider_id": pid, "name": "m-1"}, "max_turns": 2});
            let (st, a) = s.post("/v1/agents", &u.key, agent).await;
            assert_eq!(st, StatusCode::CREATED, "{a}");
            let agent_id = a["id"].as_str().unwrap().to_owned();
            let (st, ses) =
                s.post("/v1/sessions", &u.key, json!({"agent_id": agent_id, "input": [{"role": "user", "content": "hi"}]})).await;
            assert_eq!(st, StatusCode::CREATED, "{ses}");
            let (session, run) = (ses["id"].as_str().unwrap().to_owned(), ses["run_id"].as_str().unwrap().to_owned());
            let ended = wait_run(&s, &u.key, &run).await;
            assert_eq!(ended["status"], "failed", "{kind}/{mode}: {ended}");
            let message = ended["error"]["message"].as_str().unwrap_or_default().to_owned();
            assert!(message.contains("[redacted]"), "{kind}/{mode}: the echo should arrive, redacted: {ended}");
            for path in [
                format!("/v1/runs/{run}"),
                format!("/v1/runs/{run}/trace"),
                format!("/v1/runs?agent_id={agent_id}"),
                format!("/v1/sessions/{session}"),
                format!("/v1/sessions/{session}/events"),
            ] {
                let (st, v) = s.get(&path, &u.key).await;
                assert_eq!(st, StatusCode::OK, "{path}: {v}");
                seen_texts.push((format!("{kind}/{mode} GET {path}"), v.to_string()));
            }
        }
    }
    // The provider really was sent the key, every time (the retry mode twice).
    let sent = seen.lock().unwrap().clone();
    assert!(sent.len() >= 20 && sent.iter().all(|k| *k == secret), "{} requests", sent.len());
    for (what, text) in &seen_texts {
        assert_absent(what, text.as_bytes(), &secret);
    }
    s.store.close().await;
    for f in files_below(&s.data_dir) {
        assert_absent(&f.display().to_string(), &std::fs::read(&f).unwrap(), &secret);
    }
    let logs = captured.0.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&logs);
    assert!(text.contains("model call failed; retrying") && text.contains("[redacted]"), "the retry was not logged:\n{text}");
    assert_absent("the log", &logs, &secret);
}

/// An MCP server behind streamable HTTP that refuses every request with a 401 quoting the
/// `Authorization` header it got.
async fn start_refusing_mcp() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    async fn refuse(State(seen): State<Arc<Mutex<Vec<String>>>>, headers: HeaderMap) -> Response {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        seen.lock().unwrap().push(auth.clone());
        (AxStatus::UNAUTHORIZED, format!("HTTP 401: {auth} is not a valid token")).into_response()
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new().fallback(refuse).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen, task)
}

#[tokio::test(flavor = "current_thread")]
async fn an_mcp_header_secret_echoed_back_reaches_no_trace_or_log_line() {
    let (s, captured, _guard) = logged_server().await;
    let u = s.user("ada@example.com").await;
    let secret = format!("mcp-PLANTED-{}-token", ulid::Ulid::new());
    let vault_id = vault(&s, &u, "mcp-token", &secret).await;
    let (url, seen, _task) = start_refusing_mcp().await;
    let source = json!({"name": "refusing", "kind": "mcp_http", "url": url,
                        "headers": {"Authorization": {"vault_id": vault_id, "prefix": "Bearer "}}});
    let (st, src) = s.post("/v1/sources", &u.key, source).await;
    assert_eq!(st, StatusCode::CREATED, "{src}");
    // A stdio server that prints its environment secret to stderr and dies: the stderr tail
    // goes into the trace's error, and the child's stderr is read by the server.
    let env_secret = format!("env-PLANTED-{}-value", ulid::Ulid::new());
    let env_vault = vault(&s, &u, "mcp-env", &env_secret).await;
    let stdio = json!({"name": "leaky", "kind": "mcp_stdio", "command": "sh",
                       "args": ["-c", "echo \"starting with MY_TOKEN=$MY_TOKEN\" >&2; exit 3"],
                       "env": {"MY_TOKEN": {"vault_id": env_vault}}, "timeout_seconds": 10});
    let (st, stdio_src) = s.post("/v1/sources", &u.key, stdio).await;
    assert_eq!(st, StatusCode::CREATED, "{stdio_src}");
    let agent = json!({"name": "mcp-user", "model": {"provider_id": "anthropic", "name": "m"},
                       "tool_sources": [src["id"], stdio_src["id"]]});
    let (st, a) = s.post("/v1/agents", &u.key, agent).await;
    assert_eq!(st, StatusCode::CREATED, "{a}");

    // A dry resolution connects the source; the server refuses, quoting the header.
    let (st, tools) = s.get(&format!("/v1/agents/{}/tools", a["id"].as_str().unwrap()), &u.key).await;
    assert_eq!(st, StatusCode::OK, "{tools}");
    assert!(seen.lock().unwrap().iter().any(|h| h == &format!("Bearer {secret}")), "the MCP server was not sent the header");
    assert!(tools.to_string().contains("401"), "the trace should say the source refused: {tools}");
    assert!(tools.to_string().contains("MY_TOKEN=[redacted]"), "the stderr tail should be quoted, redacted: {tools}");
    for s in [&secret, &env_secret] {
        assert_absent("GET /v1/agents/{id}/tools", tools.to_string().as_bytes(), s);
    }

    let logs = captured.0.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&logs);
    assert!(text.contains("rmcp"), "the MCP client logged nothing at trace level; the test proves nothing:\n{text}");
    for s in [&secret, &env_secret] {
        assert_absent("the log", &logs, s);
    }
}
