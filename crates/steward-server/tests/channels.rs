//! Chat channels over HTTP, with Telegram end to end: a local fake of the Bot API (its real
//! `{"ok": true, "result": …}` shapes and 429 answers, recording every request) and the fake
//! model. Link code → `/link CODE` through the webhook → linked → a message → a run → the reply
//! posted to the right chat as a reply; plus the refusals: wrong secret, bots, duplicates,
//! expired/used/foreign codes, a paused agent, a 429, a long reply, groups.

mod common;

use std::time::Duration;

use common::fake_model::{FakeModel, Reply};
use common::{Backend, TestServer, User, error_message};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_core::tenancy::Role;
use steward_test_support::fake_slack::{FakeSlack, TOKEN as SLACK_TOKEN};
use steward_test_support::fake_telegram::{BOT_ID, BOT_NAME, FakeTelegram, TOKEN};

const SECRET: &str = "wh_secret_for_tests-1";

struct World {
    s: TestServer,
    tg: FakeTelegram,
    /// Configuring a Slack bot checks its token with `auth.test`.
    _slack: FakeSlack,
    model: FakeModel,
    user: User,
    agent: String,
}

async fn world() -> World {
    world_with(json!({"bot_token": TOKEN, "webhook_secret": SECRET})).await
}

async fn world_with(bot_body: Value) -> World {
    world_on(Backend::Sqlite, bot_body).await.expect("SQLite always starts")
}

/// `None` when PostgreSQL is not configured (and not required).
async fn world_on(backend: Backend, bot_body: Value) -> Option<World> {
    let tg = FakeTelegram::start().await;
    let slack = FakeSlack::start().await;
    let model = FakeModel::start(|req, _| {
        if req.to_string().contains("a long answer please") {
            Reply::Text(format!("{}\n\n{}", "a".repeat(3000), "b".repeat(2000)))
        } else {
            Reply::Text("hello from the agent".into())
        }
    })
    .await;
    let (url, slack_url) = (tg.url.clone(), slack.url.clone());
    let s = TestServer::start_configured(backend, move |c| {
        c.channels.telegram_api_url = url;
        c.channels.slack_api_url = slack_url;
        c.channels.poll_tick = Duration::from_millis(100);
        c.channels.poll_timeout = Duration::from_secs(1);
    })
    .await?;
    let (user, agent) = s.user_with_agent(&model.url, "claude-test", "helper").await;
    let (st, bot) = s.call(Method::PUT, "/v1/channels/telegram/bot", Some(&user.key), Some(bot_body)).await;
    assert_eq!(st, StatusCode::OK, "{bot}");
    Some(World { s, tg, _slack: slack, model, user, agent })
}

impl World {
    async fn link_code(&self) -> String {
        let (st, v) = self.s.post(&format!("/v1/agents/{}/telegram/link", self.agent), &self.user.key, json!({})).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["code"].as_str().unwrap().to_owned()
    }

    async fn update(&self, secret: Option<&str>, update: Value) -> (StatusCode, Value) {
        let mut req = self.s.http.post(format!("{}/v1/channels/telegram/{}/webhook", self.s.url, self.user.sandbox_id)).json(&update);
        if let Some(sec) = secret {
            req = req.header("X-Telegram-Bot-Api-Secret-Token", sec);
        }
        let res = req.send().await.unwrap();
        let st = res.status();
        (st, res.json().await.unwrap_or(Value::Null))
    }

    /// Sends a text from a private chat (chat id = user id) and checks it was accepted.
    async fn say(&self, update_id: i64, message_id: i64, chat: i64, text: &str) {
        let (st, v) = self.update(Some(SECRET), private(update_id, message_id, chat, text)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }

    async fn status(&self) -> Value {
        let (st, v) = self.s.get(&format!("/v1/agents/{}/telegram/status", self.agent), &self.user.key).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }

    /// Gives background tasks time to act (before checking that nothing happened).
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn private(update_id: i64, message_id: i64, chat: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {
        "message_id": message_id, "date": 1_767_225_600, "text": text,
        "chat": {"id": chat, "type": "private", "first_name": "Ada", "username": "ada"},
        "from": {"id": chat, "is_bot": false, "first_name": "Ada", "username": "ada", "language_code": "en"},
    }})
}

fn group(update_id: i64, message_id: i64, text: &str, reply_to_bot: bool) -> Value {
    let mut u = json!({"update_id": update_id, "message": {
        "message_id": message_id, "date": 1_767_225_600, "text": text,
        "chat": {"id": -100_123, "type": "supergroup", "title": "Team room"},
        "from": {"id": 7, "is_bot": false, "first_name": "Ada"},
    }});
    if reply_to_bot {
        u["message"]["reply_to_message"] = json!({"message_id": 1, "date": 1_767_225_600, "chat": {"id": -100_123, "type": "supergroup"},
            "from": {"id": BOT_ID, "is_bot": true, "first_name": "Steward", "username": BOT_NAME}, "text": "earlier"});
    }
    u
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_chat_links_and_its_messages_become_turns_answered_in_the_chat_sqlite() {
    private_chat_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_chat_links_and_its_messages_become_turns_answered_in_the_chat_postgres() {
    private_chat_flow(Backend::Postgres).await;
}

async fn private_chat_flow(backend: Backend) {
    let Some(w) = world_on(backend, json!({"bot_token": TOKEN, "webhook_secret": SECRET})).await else { return };
    // The bot: token checked with getMe, webhook registered with the secret, nothing secret shown.
    assert_eq!(w.tg.calls("getMe").len(), 1);
    let hook = &w.tg.calls("setWebhook")[0].body;
    assert_eq!(hook["secret_token"], SECRET);
    assert!(hook["url"].as_str().unwrap().ends_with(&format!("/v1/channels/telegram/{}/webhook", w.user.sandbox_id)), "{hook}");
    let (st, bot) = w.s.get("/v1/channels/telegram/bot", &w.user.key).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!((bot["configured"].clone(), bot["settings"]["username"].clone()), (json!(true), json!(BOT_NAME)));
    assert_eq!(bot["secret_fields"], json!(["bot_token", "webhook_secret"]));
    assert!(!bot.to_string().contains(TOKEN) && !bot.to_string().contains(SECRET), "{bot}");

    assert_eq!(w.status().await["status"], "unlinked");
    let (st, made) = w.s.post(&format!("/v1/agents/{}/telegram/link", w.agent), &w.user.key, json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    let code = made["code"].as_str().unwrap().to_owned();
    assert_eq!(made["deep_link"], format!("https://t.me/{BOT_NAME}?start={code}"));
    assert!(made["instruction"].as_str().unwrap().contains(&format!("/link {code}")), "{made}");
    assert_eq!(w.status().await["status"], "pending");

    w.say(1, 10, 42, &format!("/link {code}")).await;
    let sent = w.tg.wait_sent(1).await;
    assert_eq!((sent[0]["chat_id"].clone(), sent[0]["reply_to_message_id"].clone()), (json!(42), json!(10)));
    assert!(sent[0]["text"].as_str().unwrap().starts_with("Linked"), "{}", sent[0]);
    assert_eq!(w.tg.calls("sendMessage")[0].token, TOKEN);
    let status = w.status().await;
    assert_eq!(status["status"], "linked", "{status}");
    let b = &status["bindings"][0];
    assert_eq!(
        (b["chat_id"].clone(), b["chat_kind"].clone(), b["user_id"].clone(), b["user_name"].clone()),
        (json!("42"), json!("dm"), json!("42"), json!("Ada"))
    );

    // A message: one run, the model's text posted back as a reply to it.
    w.say(2, 11, 42, "hi there").await;
    let sent = w.tg.wait_sent(2).await;
    assert_eq!(sent[1], json!({"chat_id": 42, "text": "hello from the agent", "reply_to_message_id": 11}));
    // The same update again: acknowledged, nothing more.
    let (st, v) = w.update(Some(SECRET), private(2, 11, 42, "hi there")).await;
    assert_eq!((st, v["duplicate"].clone()), (StatusCode::OK, json!(true)));
    w.settle().await;
    assert_eq!(w.tg.sent().len(), 2);
    assert_eq!(w.model.requests().len(), 1, "one run");
    // A second message continues the same conversation, which the messaging API shows.
    w.say(3, 12, 42, "and again").await;
    w.tg.wait_sent(3).await;
    let (_, convs) = w.s.get(&format!("/v1/agents/{}/conversations", w.agent), &w.user.key).await;
    assert_eq!(convs["data"][0]["counterparty"], "telegram:42", "{convs}");
    assert_eq!(convs["data"][0]["sessions"], 1, "{convs}");
    let (_, msgs) = w.s.get(&format!("/v1/agents/{}/messages?counterparty=telegram:42", w.agent), &w.user.key).await;
    assert_eq!(msgs["data"].as_array().unwrap().len(), 4, "{msgs}");

    // Listing, the compat paths, viewers, other tenants.
    let (_, list) = w.s.get(&format!("/v1/agents/{}/channels", w.agent), &w.user.key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, compat) = w.s.get(&format!("/v1/agent/{}/channels", w.agent), &w.user.key).await;
    assert_eq!(compat, list);
    let (_, compat) = w.s.get(&format!("/v1/agent/{}/telegram/status", w.agent), &w.user.key).await;
    assert_eq!(compat["status"], "linked");
    let viewer = w.s.member("vic@example.com", &w.user.sandbox_id, Role::Viewer).await;
    let (st, _) = w.s.call(Method::DELETE, &format!("/v1/agents/{}/telegram/unlink", w.agent), Some(&viewer.key), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = w.s.get(&format!("/v1/agents/{}/telegram/status", w.agent), &viewer.key).await;
    assert_eq!(st, StatusCode::OK, "viewers read");
    let stranger = w.s.user("eve@example.com").await;
    let (st, _) = w.s.post(&format!("/v1/agents/{}/telegram/link", w.agent), &stranger.key, json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = w.s.post(&format!("/v1/agents/{}/signal/link", w.agent), &w.user.key, json!({})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_message(&v).contains("telegram"), "{v}");

    // Neither the code, the token nor the webhook secret is stored in plaintext (SQLite: the
    // database file itself).
    let mut stored = Vec::new();
    for f in ["steward.db", "steward.db-wal"] {
        stored.extend(std::fs::read(w.s.data_dir.join(f)).unwrap_or_default());
    }
    let stored = String::from_utf8_lossy(&stored);
    for secret in [code.as_str(), TOKEN, SECRET] {
        assert!(!stored.contains(secret), "`{secret}` is in the database file");
    }

    // Unlinking: the chat is no longer bound; a message there is told so.
    let (st, v) = w.s.call(Method::DELETE, &format!("/v1/agent/{}/telegram/unlink", w.agent), Some(&w.user.key), None).await;
    assert_eq!((st, v["removed"].clone()), (StatusCode::OK, json!(1)));
    assert_eq!(w.status().await["status"], "expired");
    w.say(4, 13, 42, "still there?").await;
    let sent = w.tg.wait_sent(4).await;
    assert!(sent[3]["text"].as_str().unwrap().contains("not linked"), "{}", sent[3]);
    let (st, _) = w.s.call(Method::DELETE, &format!("/v1/agents/{}/telegram/unlink", w.agent), Some(&w.user.key), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_updates_and_bots_messages_change_nothing() {
    let w = world().await;
    let code = w.link_code().await;
    let link = private(1, 10, 42, &format!("/link {code}"));
    for secret in [None, Some("wrong"), Some("")] {
        let (st, v) = w.update(secret, link.clone()).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{secret:?}: {v}");
        error_message(&v);
    }
    let (st, _) =
        w.s.http
            .post(format!("{}/v1/channels/telegram/sbx_01kaaaaaaaaaaaaaaaaaaaaaaa/webhook", w.s.url))
            .json(&link)
            .send()
            .await
            .map(|r| (r.status(), ()))
            .unwrap();
    assert_eq!(st, StatusCode::NOT_FOUND, "a sandbox without a bot");
    w.settle().await;
    assert!(w.tg.sent().is_empty());
    assert_eq!(w.status().await["status"], "pending", "nothing was redeemed");
    // The refused update id was not remembered: the real delivery of it is accepted.
    w.say(1, 10, 42, &format!("/link {code}")).await;
    w.tg.wait_sent(1).await;
    assert_eq!(w.status().await["status"], "linked");
    // Messages from the bot itself and from other bots: nothing at all.
    let mut own = private(2, 11, 42, "echo");
    own["message"]["from"] = json!({"id": BOT_ID, "is_bot": true, "first_name": "Steward", "username": BOT_NAME});
    let mut other = private(3, 12, 42, "beep");
    other["message"]["from"] = json!({"id": 555, "is_bot": true, "first_name": "Other"});
    for u in [own, other] {
        let (st, _) = w.update(Some(SECRET), u).await;
        assert_eq!(st, StatusCode::OK);
    }
    // Malformed payloads are refused without crashing anything.
    let (st, _) = w.update(Some(SECRET), json!({"message": "nope"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    w.settle().await;
    assert_eq!(w.tg.sent().len(), 1);
    assert!(w.model.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_used_and_foreign_codes_answer_one_line_and_bind_nothing() {
    let w = world().await;
    // Expired.
    let old = w.link_code().await;
    w.s.clock.advance_ms(10 * 60 * 1000 + 1);
    w.say(1, 10, 42, &format!("/link {old}")).await;
    let sent = w.tg.wait_sent(1).await;
    assert_eq!(sent[0]["text"], "That link code has expired; ask the agent's owner for a new one.");
    assert_eq!(w.status().await["status"], "expired");
    // Used: the deep link's /start CODE works once; the same code from another chat does not.
    let code = w.link_code().await;
    w.say(2, 11, 42, &format!("/start {code}")).await;
    w.tg.wait_sent(2).await;
    w.say(3, 12, 43, &format!("/link {}", code.to_lowercase())).await;
    let sent = w.tg.wait_sent(3).await;
    assert_eq!(sent[2]["text"], "That link code was already used; ask the agent's owner for a new one.");
    assert_eq!(sent[2]["chat_id"], 43);
    // Another sandbox's code, and junk.
    let bob = w.s.user("bob@example.com").await;
    w.s.fake_provider(&bob.key, &w.model.url, "claude-test").await;
    let (_, bob_agent) =
        w.s.post("/v1/agents", &bob.key, json!({"name": "b", "model": {"provider_id": "anthropic", "name": "claude-test"}})).await;
    let (_, bob_code) = w.s.post(&format!("/v1/agents/{}/telegram/link", bob_agent["id"].as_str().unwrap()), &bob.key, json!({})).await;
    w.say(4, 13, 43, &format!("/link {}", bob_code["code"].as_str().unwrap())).await;
    w.say(5, 14, 43, "/link 12").await;
    let sent = w.tg.wait_sent(5).await;
    let lines: Vec<&str> = sent[3..].iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert!(lines.contains(&"That link code is not valid for this bot; ask the agent's owner for a new one."), "{lines:?}");
    assert!(lines.contains(&"That is not a valid link code; ask the agent's owner for a new one."), "{lines:?}");
    let status = w.status().await;
    assert_eq!(status["bindings"].as_array().unwrap().len(), 1, "only chat 42: {status}");
    let (_, bob_status) = w.s.get(&format!("/v1/agents/{}/telegram/status", bob_agent["id"].as_str().unwrap()), &bob.key).await;
    assert_eq!(bob_status["status"], "pending", "the foreign code is still unused");
    // The outstanding limit: five unused codes, then 429 with Retry-After.
    for _ in 0..5 {
        w.link_code().await;
    }
    let res = w.s.http.post(format!("{}/v1/agents/{}/telegram/link", w.s.url, w.agent)).bearer_auth(&w.user.key).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    assert!(w.model.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_agent_answers_one_line_and_starts_no_run() {
    let w = world().await;
    let code = w.link_code().await;
    w.say(1, 10, 42, &format!("/link {code}")).await;
    w.tg.wait_sent(1).await;
    let (st, v) = w.s.post(&format!("/v1/agents/{}/pause", w.agent), &w.user.key, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    w.say(2, 11, 42, "are you there?").await;
    let sent = w.tg.wait_sent(2).await;
    assert_eq!(sent[1]["text"], "This agent is paused and is not answering right now.");
    assert_eq!(sent[1]["reply_to_message_id"], 11);
    let (_, runs) = w.s.get(&format!("/v1/runs?agent_id={}", w.agent), &w.user.key).await;
    assert_eq!(runs["data"].as_array().map(Vec::len), Some(0), "{runs}");
    assert!(w.model.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_retry_after_and_long_replies_are_split_at_paragraphs() {
    let w = world().await;
    let code = w.link_code().await;
    w.say(1, 10, 42, &format!("/link {code}")).await;
    w.tg.wait_sent(1).await;
    *w.tg.state.throttle.lock().unwrap() = 1;
    w.say(2, 11, 42, "a long answer please").await;
    // One throttled attempt, then the two parts.
    let sent = w.tg.wait_sent(4).await;
    assert_eq!(sent[1], sent[2], "the throttled message was sent again as it was");
    assert_eq!(sent[2]["text"], "a".repeat(3000));
    assert_eq!(sent[2]["reply_to_message_id"], 11);
    assert_eq!(sent[3]["text"], "b".repeat(2000));
    assert_eq!(sent[3]["chat_id"], 42);
    w.settle().await;
    assert_eq!(w.tg.sent().len(), 4, "each part delivered once");
    let failure = &w.status().await["last_delivery_failure"];
    assert_eq!((failure["status_code"].clone(), failure["attempt"].clone()), (json!(429), json!(1)), "{failure}");
    assert!(failure["error"].as_str().unwrap().contains("Too Many Requests"));
    let (_, summary) = w.s.get(&format!("/v1/agents/{}/summary", w.agent), &w.user.key).await;
    assert_eq!(summary["last_channel_failure"]["platform"], "telegram", "{summary}");
    assert_eq!(summary["last_channel_failure"]["status_code"], 429, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_answered_when_the_bot_is_mentioned_or_replied_to() {
    let w = world().await;
    let code = w.link_code().await;
    let (st, _) = w.update(Some(SECRET), group(1, 10, &format!("/link@{BOT_NAME} {code}"), false)).await;
    assert_eq!(st, StatusCode::OK);
    let sent = w.tg.wait_sent(1).await;
    assert!(sent[0]["text"].as_str().unwrap().contains("this group"), "{}", sent[0]);
    let status = w.status().await;
    let b = &status["bindings"][0];
    assert_eq!(
        (b["chat_id"].clone(), b["chat_kind"].clone(), b["chat_title"].clone(), b["respond"].clone()),
        (json!("-100123"), json!("group"), json!("Team room"), json!("mentions"))
    );
    w.update(Some(SECRET), group(2, 11, "just chatting", false)).await;
    w.settle().await;
    assert_eq!(w.tg.sent().len(), 1, "not addressed: no answer");
    w.update(Some(SECRET), group(3, 12, &format!("@{BOT_NAME} what's up?"), false)).await;
    let sent = w.tg.wait_sent(2).await;
    assert_eq!((sent[1]["chat_id"].clone(), sent[1]["reply_to_message_id"].clone()), (json!(-100_123), json!(12)));
    w.update(Some(SECRET), group(4, 13, "and you?", true)).await;
    w.tg.wait_sent(3).await;
    // `respond: all` answers everything.
    let path = format!("/v1/agents/{}/channels/{}", w.agent, b["id"].as_str().unwrap());
    let (st, v) = w.s.patch(&path, &w.user.key, json!({"respond": "all"})).await;
    assert_eq!((st, v["respond"].clone()), (StatusCode::OK, json!("all")), "{v}");
    w.update(Some(SECRET), group(5, 14, "anyone?", false)).await;
    w.tg.wait_sent(4).await;
    let (st, v) = w.s.patch(&path, &w.user.key, json!({"respond": "sometimes"})).await;
    assert_eq!((st, common::error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("respond")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_credentials_are_validated_and_never_returned() {
    let w = world().await;
    let put = |body: Value, platform: &'static str| {
        let (s, key) = (&w.s, w.user.key.clone());
        async move { s.call(Method::PUT, &format!("/v1/channels/{platform}/bot"), Some(&key), Some(body)).await }
    };
    let (st, v) = put(json!({"bot_token": "not-a-token"}), "telegram").await;
    assert_eq!((st, common::error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("bot_token")), "{v}");
    let (st, v) = put(json!({"bot_token": "123456:ZZZZZZZZZZZZZZZZZZZZZZZZZZ", "register_webhook": false}), "telegram").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "Telegram refused the token: {v}");
    assert!(error_message(&v).contains("Telegram refused"), "{v}");
    let (st, v) = put(json!({"application_id": "123", "public_key": "zz", "bot_token": "x"}), "discord").await;
    assert_eq!((st, common::error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("public_key")));
    let discord = json!({"application_id": "123", "public_key": "a".repeat(64), "bot_token": "discord-secret-token"});
    let (st, v) = put(discord, "discord").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["settings"]["application_id"], "123");
    assert!(!v.to_string().contains("discord-secret-token"));
    let (st, v) = put(json!({"bot_token": SLACK_TOKEN, "signing_secret": "slack-signing-secret"}), "slack").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(!v.to_string().contains("slack-signing-secret") && !v.to_string().contains(SLACK_TOKEN));
    let (st, v) = put(json!({"phone_number_id": "555", "access_token": "EAAG-wa-secret", "app_secret": "wa-app-secret"}), "whatsapp").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(!v.to_string().contains("wa-app-secret") && !v.to_string().contains("EAAG-wa-secret"));
    let (st, v) = put(json!({"phone_number_id": "555", "access_token": "a", "app_secret": "b", "extra": 1}), "whatsapp").await;
    assert_eq!((st, common::error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("extra")));
    let viewer = w.s.member("vic@example.com", &w.user.sandbox_id, Role::Viewer).await;
    let (st, _) = w.s.call(Method::DELETE, "/v1/channels/slack/bot", Some(&viewer.key), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = w.s.call(Method::DELETE, "/v1/channels/slack/bot", Some(&w.user.key), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = w.s.get("/v1/channels/slack/bot", &w.user.key).await;
    assert_eq!((st, v["configured"].clone()), (StatusCode::OK, json!(false)));
    let (st, _) = w.s.call(Method::DELETE, "/v1/channels/slack/bot", Some(&w.user.key), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_url_the_bot_is_polled_with_get_updates() {
    let w = world_with(json!({"bot_token": TOKEN, "receive": "polling"})).await;
    assert_eq!(w.tg.calls("deleteWebhook").len(), 1);
    assert!(w.tg.calls("setWebhook").is_empty());
    let (_, bot) = w.s.get("/v1/channels/telegram/bot", &w.user.key).await;
    assert_eq!(bot["settings"]["receive"], "polling", "{bot}");
    let code = w.link_code().await;
    w.tg.state.pending.lock().unwrap().push(private(500, 10, 42, &format!("/link {code}")));
    let sent = w.tg.wait_sent(1).await;
    assert!(sent[0]["text"].as_str().unwrap().starts_with("Linked"), "{}", sent[0]);
    w.tg.state.pending.lock().unwrap().push(private(501, 11, 42, "hi over polling"));
    let sent = w.tg.wait_sent(2).await;
    assert_eq!(sent[1], json!({"chat_id": 42, "text": "hello from the agent", "reply_to_message_id": 11}));
    // The offset moved past what was handled: later polls ask from 502, and nothing is redone.
    w.settle().await;
    let last = w.tg.calls("getUpdates").last().unwrap().body.clone();
    assert_eq!(last["offset"], 502, "{last}");
    assert_eq!(w.tg.sent().len(), 2);
    assert_eq!(w.model.requests().len(), 1);
    // The webhook of a polled bot still refuses strangers (it has a minted secret).
    let (st, _) = w.update(Some("guess"), private(502, 12, 42, "x")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}
