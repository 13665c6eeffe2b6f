//! The bot token, the webhook secret and link codes appear in no log line, at `trace`, across a
//! Telegram flow: configuring the bot, a refused webhook call, a link, a turn with a throttled
//! reply, and a reply Telegram refuses for good (recorded, logged, not retried). Its own test
//! binary: the capturing subscriber is this process's only one.

mod common;

use std::time::Duration;

use common::fake_model::{FakeModel, Reply};
use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_test_support::fake_telegram::{FakeTelegram, TOKEN};
use steward_test_support::log_capture::Captured;

const SECRET: &str = "wh_secret_for_log_test-9";

fn private(update_id: i64, message_id: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {"message_id": message_id, "date": 1_767_225_600, "text": text,
        "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "is_bot": false, "first_name": "Ada"}}})
}

#[tokio::test]
async fn the_bot_token_webhook_secret_and_link_codes_appear_in_no_log_line() {
    let captured = Captured::default();
    let subscriber =
        tracing_subscriber::fmt().with_writer(captured.clone()).with_max_level(tracing::Level::TRACE).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let tg = FakeTelegram::start().await;
    let model = FakeModel::start(|_, _| Reply::Text("hello from the agent".into())).await;
    let url = tg.url.clone();
    let s = TestServer::start_configured(Backend::Sqlite, move |c| c.channels.telegram_api_url = url).await.unwrap();
    let (user, agent) = s.user_with_agent(&model.url, "claude-test", "helper").await;
    let (st, v) = s
        .call(Method::PUT, "/v1/channels/telegram/bot", Some(&user.key), Some(json!({"bot_token": TOKEN, "webhook_secret": SECRET})))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let hook = format!("{}/v1/channels/telegram/{}/webhook", s.url, user.sandbox_id);
    let send = |secret: &'static str, update: Value| {
        let req = s.http.post(&hook).header("X-Telegram-Bot-Api-Secret-Token", secret).json(&update);
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(send("wrong", private(1, 10, "hi")).await, StatusCode::UNAUTHORIZED);
    let (_, made) = s.post(&format!("/v1/agents/{agent}/telegram/link"), &user.key, json!({})).await;
    let code = made["code"].as_str().unwrap().to_owned();
    assert_eq!(send(SECRET, private(2, 11, &format!("/link {code}"))).await, StatusCode::OK);
    tg.wait_sent(1).await;
    *tg.state.throttle.lock().unwrap() = 1;
    assert_eq!(send(SECRET, private(3, 12, "hello")).await, StatusCode::OK);
    tg.wait_sent(3).await;
    *tg.state.blocked.lock().unwrap() = true;
    assert_eq!(send(SECRET, private(4, 13, "still there?")).await, StatusCode::OK);
    tg.wait_sent(4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tg.sent().len(), 4, "a 403 is not retried");

    let logs = captured.text();
    assert!(logs.contains("/webhook"), "the capture works: {} bytes", logs.len());
    assert!(logs.contains("bot was blocked by the user"), "the refused reply is logged");
    for secret in [TOKEN, SECRET, code.as_str()] {
        assert!(!logs.contains(secret), "`{secret}` is in the log");
    }
    let (_, status) = s.get(&format!("/v1/agents/{agent}/telegram/status"), &user.key).await;
    let failure = &status["last_delivery_failure"];
    assert_eq!(
        (failure["status_code"].clone(), failure["error"].clone()),
        (json!(403), json!("Forbidden: bot was blocked by the user")),
        "{status}"
    );
}
