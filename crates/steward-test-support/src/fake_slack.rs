//! A fake Slack Web API on a loopback port: `auth.test` and `chat.postMessage` in Slack's real
//! shapes (`{"ok": true, …}`, `{"ok": false, "error": "invalid_auth"}` with HTTP 200 for a bad
//! token, HTTP 429 with `Retry-After` when throttled), recording every request with the token
//! of its `Authorization: Bearer` header. It knows one bot ([`TOKEN`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// The one bot token the fake accepts.
pub const TOKEN: &str = "xoxb-1111-2222-steward-test";
/// The bot's user id (`auth.test`'s `user_id`; mentions look like `<@U0BOT>`).
pub const BOT_USER: &str = "U0BOT";
/// The bot's bot id (`auth.test`'s `bot_id`).
pub const BOT_ID: &str = "B0BOT";
/// The workspace (`auth.test`'s `team_id`).
pub const TEAM_ID: &str = "T0TEAM";

/// One request the fake received: the bearer token, the method, the JSON body.
#[derive(Debug, Clone)]
pub struct Call {
    pub token: String,
    pub method: String,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct FakeState {
    calls: Arc<Mutex<Vec<Call>>>,
    /// How many of the next `chat.postMessage` calls answer 429 (`Retry-After: 1`).
    pub throttle: Arc<Mutex<u32>>,
}

/// A fake Slack Web API on a loopback port.
pub struct FakeSlack {
    pub url: String,
    pub state: FakeState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn web_api(State(st): State<FakeState>, Path(method): Path<String>, headers: HeaderMap, body: String) -> axum::response::Response {
    let token =
        headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default().to_owned();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    st.calls.lock().unwrap().push(Call { token: token.clone(), method: method.clone(), body: body.clone() });
    if token != TOKEN {
        return Json(json!({"ok": false, "error": if token.is_empty() { "not_authed" } else { "invalid_auth" }})).into_response();
    }
    match method.as_str() {
        "auth.test" => Json(json!({
            "ok": true, "url": "https://steward-test.slack.com/", "team": "Steward Test", "user": "steward",
            "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": false,
        }))
        .into_response(),
        "chat.postMessage" => {
            {
                let mut t = st.throttle.lock().unwrap();
                if *t > 0 {
                    *t -= 1;
                    return (AxumStatus::TOO_MANY_REQUESTS, [("retry-after", "1")], Json(json!({"ok": false, "error": "ratelimited"})))
                        .into_response();
                }
            }
            if body["channel"].as_str().is_none_or(str::is_empty) {
                return Json(json!({"ok": false, "error": "channel_not_found"})).into_response();
            }
            let n = st.calls.lock().unwrap().len();
            let ts = format!("1767225600.{n:06}");
            let mut message = json!({"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": body["text"], "ts": ts});
            if let Some(t) = body.get("thread_ts") {
                message["thread_ts"] = t.clone();
            }
            Json(json!({"ok": true, "channel": body["channel"], "ts": ts, "message": message})).into_response()
        }
        _ => Json(json!({"ok": false, "error": "unknown_method"})).into_response(),
    }
}

impl FakeSlack {
    pub async fn start() -> Self {
        let state = FakeState::default();
        let app = axum::Router::new().route("/{method}", axum::routing::post(web_api)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state, task }
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.state.calls.lock().unwrap().iter().filter(|c| c.method == method).cloned().collect()
    }

    /// The bodies of every `chat.postMessage` request (throttled ones included), in order.
    pub fn posted(&self) -> Vec<Value> {
        self.calls("chat.postMessage").into_iter().map(|c| c.body).collect()
    }

    /// Waits until `n` `chat.postMessage` requests arrived; returns them.
    pub async fn wait_posted(&self, n: usize) -> Vec<Value> {
        for _ in 0..300 {
            let posted = self.posted();
            if posted.len() >= n {
                return posted;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} chat.postMessage calls, got {:?}", self.posted());
    }
}
