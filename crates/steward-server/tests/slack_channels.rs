//! Slack over the Events API end to end: a local fake of the Web API (`auth.test`,
//! `chat.postMessage` in Slack's real `{"ok": …}` shapes, recording every request) and the fake
//! model. Requests are signed here with the `hmac` crate directly (signing v0, as Slack
//! documents it), never with the server's own verifier. `url_verification`; forged, unsigned
//! and stale signatures refused with nothing written; a DM links and its messages become turns
//! answered in the message's thread; retries of an `event_id` run once; bots' messages and
//! subtypes ignored; channels answered only when mentioned, in the thread.

mod common;

use std::time::Duration;

use common::fake_model::{FakeModel, Reply};
use common::{Backend, TestServer, User};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use steward_core::clock::Clock;
use steward_test_support::fake_slack::{BOT_ID, BOT_USER, FakeSlack, TOKEN};

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

struct World {
    s: TestServer,
    slack: FakeSlack,
    model: FakeModel,
    user: User,
    agent: String,
}

/// `None` when PostgreSQL is not configured (and not required).
async fn world_on(backend: Backend) -> Option<World> {
    let slack = FakeSlack::start().await;
    let model = FakeModel::start(|_, _| Reply::Text("hello from the agent".into())).await;
    let url = slack.url.clone();
    let s = TestServer::start_configured(backend, move |c| c.channels.slack_api_url = url).await?;
    let (user, agent) = s.user_with_agent(&model.url, "claude-test", "helper").await;
    let body = json!({"bot_token": TOKEN, "signing_secret": SIGNING_SECRET});
    let (st, bot) = s.call(reqwest::Method::PUT, "/v1/channels/slack/bot", Some(&user.key), Some(body)).await;
    assert_eq!(st, StatusCode::OK, "{bot}");
    Some(World { s, slack, model, user, agent })
}

async fn world() -> World {
    world_on(Backend::Sqlite).await.expect("SQLite always starts")
}

/// `v0=` + hex HMAC-SHA256 of `v0:{ts}:{body}`, computed here independently of the server.
fn signature(secret: &str, ts: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

impl World {
    fn now_secs(&self) -> i64 {
        self.s.clock.now_ms() / 1000
    }

    /// Posts `payload` to the events endpoint with the given timestamp and signature (`None`:
    /// the header is left out).
    async fn post_raw(&self, payload: &Value, ts: Option<i64>, sig: Option<String>, retry: Option<u32>) -> (StatusCode, Value) {
        let body = serde_json::to_vec(payload).unwrap();
        let mut req = self
            .s
            .http
            .post(format!("{}/v1/channels/slack/{}/events", self.s.url, self.user.sandbox_id))
            .header("content-type", "application/json")
            .body(body);
        if let Some(ts) = ts {
            req = req.header("X-Slack-Request-Timestamp", ts.to_string());
        }
        if let Some(sig) = sig {
            req = req.header("X-Slack-Signature", sig);
        }
        if let Some(n) = retry {
            req = req.header("X-Slack-Retry-Num", n.to_string()).header("X-Slack-Retry-Reason", "http_timeout");
        }
        let res = req.send().await.unwrap();
        let st = res.status();
        (st, res.json().await.unwrap_or(Value::Null))
    }

    /// Posts `payload` signed correctly, now.
    async fn post(&self, payload: &Value) -> (StatusCode, Value) {
        let ts = self.now_secs();
        let sig = signature(SIGNING_SECRET, ts, &serde_json::to_vec(payload).unwrap());
        self.post_raw(payload, Some(ts), Some(sig), None).await
    }

    /// Sends a signed event and checks it was accepted.
    async fn send(&self, payload: &Value) {
        let (st, v) = self.post(payload).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }

    async fn link_code(&self) -> String {
        let (st, v) = self.s.post(&format!("/v1/agents/{}/slack/link", self.agent), &self.user.key, json!({})).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["code"].as_str().unwrap().to_owned()
    }

    async fn status(&self) -> Value {
        let (st, v) = self.s.get(&format!("/v1/agents/{}/slack/status", self.agent), &self.user.key).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }

    /// Gives background tasks time to act (before checking that nothing happened).
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// An `event_callback` around `event`.
fn callback(event_id: &str, event: Value) -> Value {
    json!({
        "token": "deprecated-verification-token", "team_id": "T0TEAM", "api_app_id": "A0APP",
        "event": event, "type": "event_callback", "event_id": event_id, "event_time": 1_767_225_600,
        "authorizations": [{"team_id": "T0TEAM", "user_id": BOT_USER, "is_bot": true}],
    })
}

/// A direct message from user U0ADA in the DM channel D0ADA.
fn dm(event_id: &str, ts: &str, text: &str) -> Value {
    callback(
        event_id,
        json!({"type": "message", "channel": "D0ADA", "channel_type": "im", "user": "U0ADA", "text": text, "ts": ts, "event_ts": ts}),
    )
}

/// A message in the channel C0TEAM (`app_mention` when `mention`), optionally in a thread.
fn in_channel(event_id: &str, kind: &str, ts: &str, thread_ts: Option<&str>, text: &str) -> Value {
    let mut e = json!({"type": kind, "channel": "C0TEAM", "user": "U0ADA", "text": text, "ts": ts, "event_ts": ts});
    if kind == "message" {
        e["channel_type"] = json!("channel");
    }
    if let Some(t) = thread_ts {
        e["thread_ts"] = json!(t);
    }
    callback(event_id, e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_verification_is_answered_and_bad_signatures_are_refused_writing_nothing() {
    let w = world().await;
    let (st, bot) = w.s.get("/v1/channels/slack/bot", &w.user.key).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(bot["settings"]["bot_user_id"], BOT_USER, "auth.test was called: {bot}");
    assert_eq!(bot["webhook_path"], format!("/v1/channels/slack/{}/events", w.user.sandbox_id));
    assert!(!bot.to_string().contains(TOKEN) && !bot.to_string().contains(SIGNING_SECRET), "{bot}");
    assert_eq!(w.slack.calls("auth.test")[0].token, TOKEN);

    let challenge = json!({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"});
    let (st, v) = w.post(&challenge).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})));

    let code = w.link_code().await;
    let event = dm("Ev01", "1767225600.000100", &format!("link {code}"));
    let bytes = serde_json::to_vec(&event).unwrap();
    let now = w.now_secs();
    // Forged (another secret), unsigned, tampered and stale: 401, and nothing is written —
    // the event id is not claimed, so the genuine request afterwards is handled.
    let (st, _) = w.post_raw(&event, Some(now), Some(signature("another-secret", now, &bytes)), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = w.post_raw(&event, Some(now), None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = w.post_raw(&event, None, Some(signature(SIGNING_SECRET, now, &bytes)), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = w.post_raw(&event, Some(now + 1), Some(signature(SIGNING_SECRET, now, &bytes)), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the timestamp is part of what is signed");
    let stale = now - 6 * 60;
    let (st, v) = w.post_raw(&event, Some(stale), Some(signature(SIGNING_SECRET, stale, &bytes)), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    let (st, _) = w.post_raw(&challenge, Some(now), Some("v0=00".into()), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "url_verification is signed too");
    w.settle().await;
    assert!(w.slack.posted().is_empty());
    assert_eq!(w.status().await["status"], "pending", "no code was redeemed");

    w.send(&event).await;
    let posted = w.slack.wait_posted(1).await;
    assert_eq!((posted[0]["channel"].clone(), posted[0]["thread_ts"].clone()), (json!("D0ADA"), json!("1767225600.000100")));
    assert!(posted[0]["text"].as_str().unwrap().starts_with("Linked"), "{}", posted[0]);
    assert_eq!(w.status().await["status"], "linked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_links_and_its_messages_become_turns_answered_in_the_thread_sqlite() {
    dm_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_links_and_its_messages_become_turns_answered_in_the_thread_postgres() {
    dm_flow(Backend::Postgres).await;
}

async fn dm_flow(backend: Backend) {
    let Some(w) = world_on(backend).await else { return };
    // Before linking: one line, no run.
    w.send(&dm("Ev00", "1767225600.000050", "hello?")).await;
    let posted = w.slack.wait_posted(1).await;
    assert!(posted[0]["text"].as_str().unwrap().contains("not linked"), "{}", posted[0]);

    let code = w.link_code().await;
    w.send(&dm("Ev01", "1767225600.000100", &format!("link {code}"))).await;
    let posted = w.slack.wait_posted(2).await;
    assert!(posted[1]["text"].as_str().unwrap().starts_with("Linked"), "{}", posted[1]);
    let status = w.status().await;
    let b = &status["bindings"][0];
    assert_eq!(
        (status["status"].clone(), b["chat_id"].clone(), b["chat_kind"].clone(), b["user_id"].clone()),
        (json!("linked"), json!("D0ADA"), json!("dm"), json!("U0ADA")),
        "{status}"
    );
    // The same code again: one line, nothing bound anew.
    w.send(&dm("Ev02", "1767225600.000150", &format!("link {code}"))).await;
    let posted = w.slack.wait_posted(3).await;
    assert_eq!(posted[2]["text"], "That link code was already used; ask the agent's owner for a new one.");

    // A message: one run, the model's text posted in the message's thread with the bot token.
    w.send(&dm("Ev03", "1767225600.000200", "hi there")).await;
    let posted = w.slack.wait_posted(4).await;
    assert_eq!(posted[3], json!({"channel": "D0ADA", "text": "hello from the agent", "thread_ts": "1767225600.000200"}));
    assert!(w.slack.calls("chat.postMessage").iter().all(|c| c.token == TOKEN));
    // Slack's retry of the same event: acknowledged, nothing more.
    let again = dm("Ev03", "1767225600.000200", "hi there");
    let ts = w.now_secs();
    let sig = signature(SIGNING_SECRET, ts, &serde_json::to_vec(&again).unwrap());
    let (st, v) = w.post_raw(&again, Some(ts), Some(sig), Some(1)).await;
    assert_eq!((st, v["duplicate"].clone()), (StatusCode::OK, json!(true)), "{v}");
    w.settle().await;
    assert_eq!(w.slack.posted().len(), 4);
    assert_eq!(w.model.requests().len(), 1, "one run");
    // A reply inside a thread stays in that thread; the conversation is the chat's.
    w.send(&dm("Ev04", "1767225600.000300", "and again").to_owned()).await;
    let mut threaded = dm("Ev05", "1767225600.000400", "in a thread");
    threaded["event"]["thread_ts"] = json!("1767225600.000200");
    w.send(&threaded).await;
    let posted = w.slack.wait_posted(6).await;
    let threads: Vec<&Value> = posted[4..].iter().map(|p| &p["thread_ts"]).collect();
    assert!(threads.contains(&&json!("1767225600.000200")) && threads.contains(&&json!("1767225600.000300")), "{posted:?}");
    let (_, convs) = w.s.get(&format!("/v1/agents/{}/conversations", w.agent), &w.user.key).await;
    assert_eq!(convs["data"][0]["counterparty"], "slack:D0ADA", "{convs}");
    assert_eq!(convs["data"][0]["sessions"], 1, "{convs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_messages_subtypes_and_the_bot_itself_start_nothing() {
    let w = world().await;
    let code = w.link_code().await;
    w.send(&dm("Ev01", "1767225600.000100", &format!("link {code}"))).await;
    w.slack.wait_posted(1).await;
    let mut from_bot = dm("Ev02", "1767225600.000200", "I am a bot");
    from_bot["event"]["bot_id"] = json!("B0OTHER");
    let mut edited = dm("Ev03", "1767225600.000300", "edited");
    edited["event"]["subtype"] = json!("message_changed");
    let mut joined = in_channel("Ev04", "message", "1767225600.000400", None, "<@U0ADA> has joined the channel");
    joined["event"]["subtype"] = json!("channel_join");
    let mut itself = dm("Ev05", "1767225600.000500", "hello from the agent");
    itself["event"]["user"] = json!(BOT_USER);
    itself["event"]["bot_id"] = Value::Null;
    let mut own = dm("Ev06", "1767225600.000600", "my own post");
    own["event"]["bot_id"] = json!(BOT_ID);
    for payload in [from_bot, edited, joined, itself, own] {
        w.send(&payload).await;
    }
    w.settle().await;
    assert_eq!(w.slack.posted().len(), 1, "{:?}", w.slack.posted());
    assert!(w.model.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_is_answered_in_the_thread_only_when_the_bot_is_mentioned() {
    let w = world().await;
    let code = w.link_code().await;
    w.send(&in_channel("Ev01", "app_mention", "1767225600.000100", None, &format!("<@{BOT_USER}> link {code}"))).await;
    let posted = w.slack.wait_posted(1).await;
    assert_eq!(posted[0]["channel"], "C0TEAM");
    assert!(posted[0]["text"].as_str().unwrap().contains("this channel"), "{}", posted[0]);
    let status = w.status().await;
    assert_eq!(
        (status["bindings"][0]["chat_id"].clone(), status["bindings"][0]["chat_kind"].clone()),
        (json!("C0TEAM"), json!("channel")),
        "{status}"
    );
    // Without a mention: nothing.
    w.send(&in_channel("Ev02", "message", "1767225600.000200", None, "just chatting")).await;
    // A mention arrives twice (`message` and `app_mention`): answered once, in its thread.
    let text = format!("<@{BOT_USER}> what is up?");
    w.send(&in_channel("Ev03", "message", "1767225600.000300", Some("1767225600.000250"), &text)).await;
    w.send(&in_channel("Ev04", "app_mention", "1767225600.000300", Some("1767225600.000250"), &text)).await;
    let posted = w.slack.wait_posted(2).await;
    assert_eq!(posted[1], json!({"channel": "C0TEAM", "text": "hello from the agent", "thread_ts": "1767225600.000250"}));
    w.settle().await;
    assert_eq!(w.slack.posted().len(), 2, "{:?}", w.slack.posted());
    assert_eq!(w.model.requests().len(), 1, "one run");
    let requests = w.model.requests().iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n");
    assert!(requests.contains("what is up?") && !requests.contains("<@U0BOT>"), "the mention is stripped: {requests}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_a_400_naming_bot_token_and_a_429_is_retried() {
    let w = world().await;
    let body = json!({"bot_token": "xoxb-revoked", "signing_secret": SIGNING_SECRET});
    let (st, v) = w.s.call(reqwest::Method::PUT, "/v1/channels/slack/bot", Some(&w.user.key), Some(body)).await;
    assert_eq!((st, common::error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("bot_token")), "{v}");
    assert!(common::error_message(&v).contains("invalid_auth") && !v.to_string().contains("xoxb-revoked"), "{v}");

    let code = w.link_code().await;
    w.send(&dm("Ev01", "1767225600.000100", &format!("link {code}"))).await;
    w.slack.wait_posted(1).await;
    *w.slack.state.throttle.lock().unwrap() = 1;
    w.send(&dm("Ev02", "1767225600.000200", "hi")).await;
    let posted = w.slack.wait_posted(3).await;
    assert_eq!(posted[1], posted[2], "the throttled message is sent again");
    assert_eq!(posted[2]["text"], "hello from the agent");
    let failure = &w.status().await["last_delivery_failure"];
    assert_eq!(failure["status_code"], 429, "{failure}");
}
