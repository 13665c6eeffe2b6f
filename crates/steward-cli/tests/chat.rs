//! `steward chat` as a user meets it. Two kinds of server:
//!
//! - a fake Steward answering `/concierge/chat` with scripted §5 frames (cut into small chunks),
//!   so the client's rendering, sessions, `--json`, errors and Ctrl-C are tested on their own;
//! - the real `steward serve` whose Concierge talks to a fake Anthropic model (the server tests'
//!   `fake_model.rs`, speaking the real SSE wire format).

#[allow(dead_code)]
mod support;

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use steward_test_support::fake_model::{FakeModel, Reply};
use support::{Server, TempDir, finish};

/// The fake Steward's sandbox (the key's home sandbox, from `/v1/me`).
const SANDBOX: &str = "sbx_0000000000000000000000fake";
const FAKE_KEY: &str = "stw_fake";

/// A fake Steward server with a scripted Concierge; it records every chat request.
struct FakeSteward {
    url: String,
    requests: Arc<Mutex<Vec<Value>>>,
    frames_sent: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
    _rt: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct Fake {
    requests: Arc<Mutex<Vec<Value>>>,
    frames_sent: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
}

impl FakeSteward {
    fn start() -> FakeSteward {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let fake = Fake { requests: Default::default(), frames_sent: Default::default(), dropped: Default::default() };
        let (requests, frames_sent, dropped) = (fake.requests.clone(), fake.frames_sent.clone(), fake.dropped.clone());
        let app = axum::Router::new()
            .route("/v1/me", get(|| async { Json(json!({"key": {"sandbox_id": SANDBOX}})) }))
            .route("/v1/sandboxes/{sandbox}/concierge/chat", post(chat))
            .with_state(fake);
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSteward { url, requests, frames_sent, dropped, _rt: rt }
    }

    /// `steward …` against this fake with an API key, hermetic like `support`'s clients.
    fn spawn(&self, home: &TempDir, args: &[&str], stdin: Stdio) -> std::process::Child {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_steward"));
        support::hermetic(&mut cmd, home.path());
        cmd.args(args)
            .current_dir(home.path())
            .env("STEWARD_URL", &self.url)
            .env("STEWARD_API_KEY", FAKE_KEY)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("spawn steward")
    }

    fn run(&self, home: &TempDir, args: &[&str]) -> support::Run {
        finish(self.spawn(home, args, Stdio::null()))
    }

    fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

fn frame(i: usize, event: &str, data: Value) -> String {
    format!("id: evt_{i}\nevent: {event}\ndata: {data}\n\n")
}

async fn chat(State(fake): State<Fake>, Path(sandbox): Path<String>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let n = {
        let mut r = fake.requests.lock().unwrap();
        r.push(json!({"sandbox": sandbox, "authorization": headers["authorization"].to_str().unwrap(), "body": body}));
        r.len()
    };
    let run = format!("run_{n}");
    let session = body["session_id"].as_str().map(str::to_owned).unwrap_or_else(|| format!("ses_{n:026}"));
    let started = frame(0, "run_started", json!({"run_id": run}));
    let frames = match body["message"].as_str().unwrap_or_default() {
        "refuse" => {
            let error = json!({"error": {"type": "invalid_request", "message": "message: must not be empty", "param": "message"}});
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(error)).into_response();
        }
        "fail" => vec![
            started,
            frame(1, "agent_error", json!({"message": "no model provider is configured", "type": "configuration", "run_id": run})),
        ],
        "slow" => return slow(fake, started),
        _ => vec![
            started,
            ": heartbeat\n\n".into(),
            frame(1, "agent_text_delta", json!({"text": "Let me check. "})),
            frame(2, "agent_tool_call", json!({"call_id": "c1", "name": "list_sandboxes", "arguments": {}})),
            frame(
                3,
                "agent_tool_result",
                json!({"call_id": "c1", "name": "list_sandboxes", "result": format!("[{{\"id\":\"{SANDBOX}\",\"name\":\"default\"}}]"), "error": null}),
            ),
            frame(4, "agent_text_delta", json!({"text": "You have one sandbox: "})),
            frame(5, "agent_text_delta", json!({"text": "default."})),
            frame(
                6,
                "agent_finish",
                json!({"stop_reason": "end_turn", "session_id": session, "usage": {"input_tokens": 3, "output_tokens": 4}, "run_id": run}),
            ),
        ],
    };
    // Hostile chunk boundaries: frames arrive in 7-byte pieces.
    let bytes = frames.concat().into_bytes();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(7).map(|c| Ok(c.to_vec())).collect();
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(futures::stream::iter(chunks))).unwrap()
}

/// A reply that never ends: a delta every 50 ms; notes when the client goes away.
fn slow(fake: Fake, started: String) -> Response {
    struct Gone(Arc<AtomicBool>);
    impl Drop for Gone {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let state = (0usize, Gone(fake.dropped.clone()), fake.frames_sent.clone(), Some(started));
    let stream = futures::stream::unfold(state, |(i, gone, sent, first)| async move {
        let chunk = match first {
            Some(f) => f,
            None => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                frame(i, "agent_text_delta", json!({"text": format!("w{i} ")}))
            }
        };
        sent.fetch_add(1, Ordering::SeqCst);
        Some((Ok::<_, std::io::Error>(chunk), (i + 1, gone, sent, None)))
    });
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(stream)).unwrap()
}

/// Waits until `cond` holds, failing the test after 30 s.
#[track_caller]
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_turn_prints_the_reply_and_tool_lines_then_the_session_to_continue_with() {
    let fake = FakeSteward::start();
    let home = TempDir::new("chat");
    let run = fake.run(&home, &["chat", "-m", "list my sandboxes"]).ok();
    assert_eq!(
        run.stdout,
        format!(
            "Let me check. \n  → list_sandboxes {{}}\n  ← list_sandboxes: ok — [{{\"id\":\"{SANDBOX}\",\"name\":\"default\"}}]\nYou have one sandbox: default.\n"
        )
    );
    let session = format!("ses_{:026}", 1);
    assert!(run.stderr.contains(&format!("session: {session} (continue with --session {session})")), "{}", run.stderr);
    let sent = &fake.requests()[0];
    assert_eq!(sent["sandbox"], SANDBOX, "the key's home sandbox, from /v1/me");
    assert_eq!(sent["authorization"], format!("Bearer {FAKE_KEY}"));
    assert_eq!(sent["body"], json!({"message": "list my sandboxes"}));

    fake.run(&home, &["chat", "-m", "and now?", "--session", &session]).ok();
    assert_eq!(fake.requests()[1]["body"], json!({"message": "and now?", "session_id": session}));
    let bad = fake.run(&home, &["chat", "-m", "x", "--session", "yesterday"]).fails();
    assert!(bad.stderr.contains("not an id") && bad.stderr.contains("ses_"), "{}", bad.stderr);
    assert_eq!(fake.requests().len(), 2, "a bad session id is refused before anything is sent");
}

#[test]
fn json_prints_each_frame_as_one_line() {
    let fake = FakeSteward::start();
    let home = TempDir::new("chat");
    let run = fake.run(&home, &["chat", "-m", "hi", "--json"]).ok();
    let lines: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["run_started", "agent_text_delta", "agent_tool_call", "agent_tool_result", "agent_text_delta", "agent_text_delta", "agent_finish"]
    );
    assert_eq!(lines[2]["data"], json!({"call_id": "c1", "name": "list_sandboxes", "arguments": {}}));
    assert_eq!(lines[6]["id"], "evt_6");
    assert_eq!(lines[6]["data"]["session_id"], format!("ses_{:026}", 1));
}

#[test]
fn a_failed_run_or_a_refused_request_exits_non_zero_with_the_message() {
    let fake = FakeSteward::start();
    let home = TempDir::new("chat");
    let failed = fake.run(&home, &["chat", "-m", "fail"]).fails();
    assert_eq!(failed.stderr.trim(), "error: no model provider is configured");
    let refused = fake.run(&home, &["chat", "-m", "refuse"]).fails();
    assert_eq!(refused.stderr.trim(), "error: message: must not be empty (HTTP 422)");
    let down = fake.run(&home, &["chat", "-m", "hi", "--server", "http://127.0.0.1:9"]).fails();
    assert!(down.stderr.contains("cannot reach the Steward server at http://127.0.0.1:9"), "{}", down.stderr);
}

#[test]
fn interactive_turns_keep_the_session_until_new_and_stop_at_exit() {
    let fake = FakeSteward::start();
    let home = TempDir::new("chat");
    let mut child = fake.spawn(&home, &["chat"], Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first\n\nfail\nsecond\n/new\nthird\n/help\n/exit\nnever sent\n").unwrap();
    drop(stdin);
    let run = finish(child).ok();

    let sent: Vec<(Value, Value)> =
        fake.requests().iter().map(|r| (r["body"]["message"].clone(), r["body"]["session_id"].clone())).collect();
    let first = json!(format!("ses_{:026}", 1));
    assert_eq!(
        sent,
        [(json!("first"), Value::Null), (json!("fail"), first.clone()), (json!("second"), first.clone()), (json!("third"), Value::Null)],
        "an error keeps the session; /new drops it"
    );
    assert_eq!(run.stdout.matches("You have one sandbox: default.\n").count(), 3, "{}", run.stdout);
    assert!(run.stderr.contains("error: no model provider is configured"), "{}", run.stderr);
    assert!(run.stderr.contains("(new conversation)") && run.stderr.contains("unknown command /help"), "{}", run.stderr);
    assert!(!run.stderr.contains("you>"), "no prompt when stdin is not a terminal: {}", run.stderr);
}

#[cfg(unix)]
#[test]
fn ctrl_c_drops_a_streaming_reply_and_at_the_prompt_exits() {
    let fake = FakeSteward::start();
    let home = TempDir::new("chat");
    let mut child = fake.spawn(&home, &["chat"], Stdio::piped());
    let interrupt = |pid: u32| assert!(std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap().success());
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "slow").unwrap();
    wait_for("a few streamed frames", || fake.frames_sent.load(Ordering::SeqCst) >= 3);
    interrupt(child.id());
    wait_for("the client to drop the connection", || fake.dropped.load(Ordering::SeqCst));

    // Back at the prompt: the next line is a new turn.
    writeln!(stdin, "after").unwrap();
    wait_for("the second turn", || fake.requests().len() == 2);
    std::thread::sleep(Duration::from_millis(500));
    interrupt(child.id());
    let run = finish(child).ok();
    drop(stdin);
    assert!(run.stdout.contains("w1 ") && run.stdout.contains("You have one sandbox: default."), "{}", run.stdout);
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
    assert_eq!(fake.requests()[1]["body"]["session_id"], Value::Null, "an interrupted first turn has no session to continue");
}

// --- Against the real server -------------------------------------------------------------------

/// A vault holding a key and an `anthropic` provider at `model_url` in the key's sandbox.
async fn add_provider(url: &str, key: &str, model_url: &str) {
    let http = reqwest::Client::new();
    let vault: Value = http
        .post(format!("{url}/v1/vaults"))
        .bearer_auth(key)
        .json(&json!({"name": "anthropic-key", "secret": "sk-ant-test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let provider = json!({"id": "anthropic", "provider": "anthropic", "base_url": model_url, "api_key_vault_id": vault["id"], "models": ["claude-test"]});
    let res = http.post(format!("{url}/v1/providers")).bearer_auth(key).json(&provider).send().await.unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

#[test]
fn the_concierge_calls_a_tool_then_answers_and_a_second_turn_continues_the_session() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = Server::start();
    let key = &server.create_account("alice@example.com").api_key;
    // First turn: call list_sandboxes, then answer; the second turn answers from the history.
    let model = rt.block_on(FakeModel::start(|body, _| {
        let messages = body["messages"].as_array().map_or(0, Vec::len);
        if messages == 1 {
            Reply::Tool { id: "toolu_1".into(), name: "list_sandboxes".into(), input: json!({}) }
        } else if messages <= 3 {
            Reply::Text("You have one sandbox, default.".into())
        } else {
            Reply::Text("You asked about your sandboxes.".into())
        }
    }));
    rt.block_on(add_provider(&server.url, key, &model.url));
    let proj = TempDir::new("proj");
    let cli = server.client(Some(key), proj.path());

    let first = cli.run(&["chat", "-m", "list my sandboxes"]).ok();
    assert!(first.stdout.contains("\n  → list_sandboxes {}\n"), "{}", first.stdout);
    assert!(first.stdout.contains("\n  ← list_sandboxes: ok"), "{}", first.stdout);
    assert!(first.stdout.ends_with("You have one sandbox, default.\n"), "{}", first.stdout);
    let session = first.stderr.split_whitespace().find(|w| w.starts_with("ses_")).expect("a session id on stderr").to_owned();

    let second = cli.run(&["chat", "-m", "what did I ask?", "--session", &session]).ok();
    assert!(second.stdout.contains("You asked about your sandboxes."), "{}", second.stdout);
    assert!(second.stderr.contains(&session), "the same session goes on: {}", second.stderr);
    let requests = model.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert!(requests[0]["tools"].to_string().contains("list_sandboxes"), "{}", requests[0]["tools"]);
    let history = requests[2]["messages"].to_string();
    assert!(history.contains("list my sandboxes") && history.contains("what did I ask?"), "{history}");
}

#[test]
fn without_a_model_provider_chat_fails_and_says_how_to_configure_one() {
    let server = Server::start();
    let key = &server.create_account("alice@example.com").api_key;
    let proj = TempDir::new("proj");
    let run = server.client(Some(key), proj.path()).run(&["chat", "-m", "hello"]).fails();
    assert!(run.stderr.starts_with("error: ") && run.stderr.contains("provider"), "{}", run.stderr);
    assert!(run.stderr.contains("/v1/providers") || run.stderr.contains("--concierge-model"), "says how: {}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}
