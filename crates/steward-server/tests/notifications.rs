//! Outbound webhooks (§12) through the real server: a local receiver verifies every signature
//! and answers 500, then nothing (a timeout), then 200; the platform retries with backoff (the
//! test moves the server's clock), records every attempt, and never holds up the run.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use common::fake_model::{FakeModel, Reply};
use common::{Backend, TestServer, error_param};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// One request the receiver saw: (event, delivery id, signature valid, body).
type Seen = (String, String, bool, Value);

#[derive(Clone, Default)]
struct Receiver {
    secret: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Both signatures are valid: the legacy `Steward-Signature` and Standard Webhooks' (whose
/// `webhook-id` is the delivery id). `trigger_signatures.rs` checks the latter with the
/// reference library.
fn verify(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ts: i64 = get("steward-timestamp").parse().unwrap_or(0);
    let legacy = steward_runtime::notify::signature(secret, ts, body.as_bytes()) == get("steward-signature");
    let wts: i64 = get("webhook-timestamp").parse().unwrap_or(0);
    let standard = steward_runtime::notify::standard_signature(secret, get("webhook-id"), wts, body.as_bytes()) == get("webhook-signature");
    legacy && standard && get("webhook-id") == get("steward-delivery")
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> AxumStatus {
    let secret = r.secret.lock().unwrap().clone();
    let ok = verify(&secret, &headers, &body);
    let event = headers.get("steward-event").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let delivery = headers.get("steward-delivery").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let n = {
        let mut seen = r.seen.lock().unwrap();
        seen.push((event.clone(), delivery, ok, serde_json::from_str(&body).unwrap_or(Value::Null)));
        seen.iter().filter(|s| s.0 == event).count()
    };
    // run.completed: 500, then no answer within the timeout, then 200. Others: 200.
    match (event.as_str(), n) {
        ("run.completed", 1) => AxumStatus::INTERNAL_SERVER_ERROR,
        ("run.completed", 2) => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            AxumStatus::OK
        }
        _ => AxumStatus::OK,
    }
}

async fn wait_for(mut check: impl FnMut() -> bool, what: &str) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn deliveries_are_signed_retried_after_errors_and_timeouts_and_recorded() {
    let receiver = Receiver::default();
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let fake = FakeModel::start(|req, _| {
        if req.to_string().contains("please fail") {
            Reply::Error { status: 400, message: "bad request".into() }
        } else {
            Reply::Text("done".into())
        }
    })
    .await;
    let s = TestServer::start_configured(Backend::Sqlite, |c| {
        c.runtime.notify_timeout = Duration::from_secs(1);
        c.runtime.notify_poll = Duration::from_millis(100);
    })
    .await
    .unwrap();
    let u = s.user("ada@example.com").await;
    s.fake_provider(&u.key, &fake.url, "claude-test").await;
    let (_, agent) =
        s.post("/v1/agents", &u.key, json!({"name": "worker", "model": {"provider_id": "anthropic", "name": "claude-test"}})).await;
    let agent = agent["id"].as_str().unwrap().to_owned();

    // Bad subscriptions are refused, naming the field.
    let stranger = s.user("eve@example.com").await;
    let (_, theirs) = s.post("/v1/agents", &stranger.key, json!({"name": "x", "model": {"provider_id": "p", "name": "m"}})).await;
    for (body, param) in [
        (json!({"url": "ftp://h/x", "events": ["run.completed"]}), "url"),
        (json!({"url": "http://u:p@h/x", "events": ["run.completed"]}), "url"),
        (json!({"url": hook, "events": ["run.started"]}), "events[0]"),
        (json!({"url": hook, "events": []}), "events"),
        (json!({"url": hook, "events": ["run.failed"], "agent_id": theirs["id"]}), "agent_id"),
    ] {
        let (st, v) = s.post("/v1/subscriptions", &u.key, body.clone()).await;
        assert!(st == StatusCode::BAD_REQUEST || st == StatusCode::NOT_FOUND, "{body} → {st} {v}");
        assert_eq!(error_param(&v).as_deref(), Some(param), "{body} → {v}");
    }
    let (st, sub) =
        s.post("/v1/subscriptions", &u.key, json!({"url": hook, "events": ["run.completed", "run.failed"], "agent_id": agent})).await;
    assert_eq!(st, StatusCode::CREATED, "{sub}");
    *receiver.secret.lock().unwrap() = sub["secret"].as_str().unwrap().to_owned();
    let sub_id = sub["id"].as_str().unwrap().to_owned();

    // A run completes; its notification does not hold it up.
    let (_, session) = s.post("/v1/sessions", &u.key, json!({"agent_id": agent, "input": [{"role": "user", "content": "hi"}]})).await;
    let sid = session["id"].as_str().unwrap().to_owned();
    for i in 0.. {
        let (_, ev) = s.get(&format!("/v1/sessions/{sid}/events"), &u.key).await;
        if ev.as_array().unwrap().iter().any(|e| e["type"] == "agent_finish") {
            break;
        }
        assert!(i < 200, "the run did not finish");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Attempt 1: 500. The retry waits for its backoff (≤ 1 s): move the clock.
    wait_for(|| receiver.seen.lock().unwrap().len() == 1, "attempt 1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.seen.lock().unwrap().len(), 1, "no retry before the backoff has passed");
    s.clock.advance_ms(1_100);
    // Attempt 2: the receiver does not answer within the 1 s timeout.
    wait_for(|| receiver.seen.lock().unwrap().len() == 2, "attempt 2").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    s.clock.advance_ms(2_100);
    // Attempt 3: 200.
    wait_for(|| receiver.seen.lock().unwrap().len() == 3, "attempt 3").await;
    let seen = receiver.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|s| s.2), "every request carried a valid signature: {seen:?}");
    assert!(seen.iter().all(|s| s.1 == seen[0].1 && s.0 == "run.completed"), "one delivery, retried: {seen:?}");
    assert_eq!(seen[0].3["data"]["session_id"], sid.as_str());
    assert_eq!(seen[0].3["type"], "run.completed");

    let mut attempts = Vec::new();
    for _ in 0..200 {
        let (_, v) = s.get(&format!("/v1/subscriptions/{sub_id}/deliveries"), &u.key).await;
        attempts = v["data"].as_array().unwrap().clone();
        if attempts.len() == 3 && attempts[0]["delivery_status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let codes: Vec<Value> = attempts.iter().rev().map(|a| a["status_code"].clone()).collect();
    assert_eq!(codes, vec![json!(500), Value::Null, json!(200)], "{attempts:?}");
    assert!(attempts[1]["error"].as_str().unwrap().contains("no answer"), "{attempts:?}");
    assert_eq!(attempts[0]["delivery_status"], "delivered");

    // A failed run is announced too.
    let (_, session) =
        s.post("/v1/sessions", &u.key, json!({"agent_id": agent, "input": [{"role": "user", "content": "please fail"}]})).await;
    assert!(session["id"].is_string());
    wait_for(|| receiver.seen.lock().unwrap().iter().any(|s| s.0 == "run.failed"), "run.failed").await;
    let seen = receiver.seen.lock().unwrap().clone();
    let failed = seen.iter().find(|s| s.0 == "run.failed").unwrap();
    assert!(failed.2, "signed");
    assert_eq!(failed.3["data"]["status"], "failed");
}
