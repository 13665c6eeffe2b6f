//! A fake Telegram Bot API on a loopback port: `getMe`, `setWebhook`, `deleteWebhook`,
//! `getUpdates` and `sendMessage` in Telegram's real shapes (`{"ok": true, "result": …}`, and
//! `{"ok": false, "error_code", "description", "parameters": {"retry_after"}}` for a 429),
//! recording every request. It knows one bot ([`TOKEN`]); any other token gets a 401.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode as AxumStatus;
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// The one bot token the fake accepts.
pub const TOKEN: &str = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcd";
/// The bot's user id (`getMe`).
pub const BOT_ID: i64 = 999;
/// The bot's username (`getMe`).
pub const BOT_NAME: &str = "steward_test_bot";

/// One request the fake Bot API received: the token from the path, the method, the body.
#[derive(Debug, Clone)]
pub struct Call {
    pub token: String,
    pub method: String,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct FakeState {
    calls: Arc<Mutex<Vec<Call>>>,
    /// How many of the next `sendMessage` calls answer 429.
    pub throttle: Arc<Mutex<u32>>,
    /// `sendMessage` answers 403 (the user blocked the bot) while set.
    pub blocked: Arc<Mutex<bool>>,
    /// Updates `getUpdates` hands out (those at or after the request's `offset`).
    pub pending: Arc<Mutex<Vec<Value>>>,
}

/// A fake Telegram Bot API on a loopback port.
pub struct FakeTelegram {
    pub url: String,
    pub state: FakeState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn bot_api(State(st): State<FakeState>, Path((bot, method)): Path<(String, String)>, body: String) -> axum::response::Response {
    let token = bot.strip_prefix("bot").unwrap_or_default().to_owned();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    st.calls.lock().unwrap().push(Call { token: token.clone(), method: method.clone(), body: body.clone() });
    if token != TOKEN {
        return (AxumStatus::UNAUTHORIZED, Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"}))).into_response();
    }
    match method.as_str() {
        "getMe" => Json(json!({"ok": true, "result": {"id": BOT_ID, "is_bot": true, "first_name": "Steward", "username": BOT_NAME}}))
            .into_response(),
        "setWebhook" => Json(json!({"ok": true, "result": true, "description": "Webhook was set"})).into_response(),
        "deleteWebhook" => Json(json!({"ok": true, "result": true, "description": "Webhook was deleted"})).into_response(),
        "getUpdates" => {
            let offset = body["offset"].as_i64().unwrap_or(0);
            let ready: Vec<Value> =
                st.pending.lock().unwrap().iter().filter(|u| u["update_id"].as_i64() >= Some(offset)).cloned().collect();
            if ready.is_empty() {
                // A long poll that ends without updates (shortened: the test's timeout is 1 s).
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Json(json!({"ok": true, "result": ready})).into_response()
        }
        "sendMessage" if *st.blocked.lock().unwrap() => {
            (AxumStatus::FORBIDDEN, Json(json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})))
                .into_response()
        }
        "sendMessage" => {
            {
                let mut t = st.throttle.lock().unwrap();
                if *t > 0 {
                    *t -= 1;
                    return (
                        AxumStatus::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        Json(json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}})),
                    )
                        .into_response();
                }
            }
            let n = st.calls.lock().unwrap().len();
            Json(json!({"ok": true, "result": {
                "message_id": 10_000 + n, "date": 1_767_225_600,
                "chat": {"id": body["chat_id"], "type": "private"},
                "from": {"id": BOT_ID, "is_bot": true, "first_name": "Steward", "username": BOT_NAME},
                "text": body["text"],
            }}))
            .into_response()
        }
        _ => (AxumStatus::NOT_FOUND, Json(json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"})))
            .into_response(),
    }
}

impl FakeTelegram {
    pub async fn start() -> Self {
        let state = FakeState::default();
        let app = axum::Router::new().route("/{bot}/{method}", axum::routing::post(bot_api)).with_state(state.clone());
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

    /// The `sendMessage` calls that were answered `ok` (not throttled), in order.
    pub fn sent(&self) -> Vec<Value> {
        // Throttled calls are recorded too; the fake answers in order, so count them out.
        self.calls("sendMessage").into_iter().map(|c| c.body).collect()
    }

    /// Waits until `n` `sendMessage` requests arrived; returns them.
    pub async fn wait_sent(&self, n: usize) -> Vec<Value> {
        for _ in 0..300 {
            let sent = self.sent();
            if sent.len() >= n {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} sendMessage calls, got {:?}", self.sent());
    }
}
