//! How webhook deliveries are signed, through the real server: the Standard Webhooks reference
//! library (`standardwebhooks` from PyPI) signs inbound deliveries and verifies outbound
//! notifications; legacy signatures cannot be replayed under new delivery ids; and deliveries
//! that are not authenticated change nothing in the store, only the refusal metric.

mod common;

use std::time::Duration;

use base64::Engine;
use common::fake_model::{FakeModel, Reply};
use common::{Backend, TestServer, User, deliver, error_message};
use reqwest::StatusCode;
use serde_json::{Value, json};
use steward_core::clock::Clock;
use steward_core::signing;
use steward_test_support::peers;
use steward_test_support::signing::{Headers, legacy_headers as legacy, standard_headers as standard};

/// Runs `script` with `args` under the peers' Python; `Ok(stdout)` or `Err(stderr)`.
fn run_python(py: &str, script: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(py).arg("-c").arg(script).args(args).output().expect("run the peers' Python");
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
    if out.status.success() { Ok(text(&out.stdout)) } else { Err(text(&out.stderr)) }
}

const SIGN: &str = r#"
import sys, datetime
from standardwebhooks import Webhook
secret, msg_id, ts, body = sys.argv[1:5]
print(Webhook(secret).sign(msg_id, datetime.datetime.fromtimestamp(int(ts), tz=datetime.timezone.utc), body))
"#;

const VERIFY: &str = r#"
import sys, json
from standardwebhooks import Webhook
secret, headers, body = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
Webhook(secret).verify(body, headers)
print("verified")
"#;

/// A new trigger: (secret, inbound url, id).
async fn trigger(s: &TestServer, u: &User, agent: &str, body: Value) -> (String, String, String) {
    let (st, t) = s.post(&format!("/v1/agents/{agent}/triggers"), &u.key, body).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let field = |k: &str| t[k].as_str().unwrap().to_owned();
    (field("secret"), field("url"), field("id"))
}

/// `steward_webhook_refusals_total{reason="<reason>"}`, 0 when absent.
async fn refusals(s: &TestServer, u: &User, reason: &str) -> u64 {
    let (st, text) = s.get("/metrics", &u.key).await;
    assert_eq!(st, StatusCode::OK);
    let prefix = format!("steward_webhook_refusals_total{{reason=\"{reason}\"}} ");
    text.as_str().unwrap().lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |n| n.trim().parse().unwrap())
}

async fn trigger_row(s: &TestServer, u: &User, agent: &str, tid: &str) -> Value {
    let (st, t) = s.get(&format!("/v1/agents/{agent}/triggers/{tid}"), &u.key).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    t
}

#[tokio::test]
async fn the_standardwebhooks_library_signs_a_delivery_the_server_accepts_once() {
    let Some(py) = peers::python() else { return };
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "claude-test", "triage").await;
    let (secret, url, tid) = trigger(&s, &u, &agent, json!({"name": "hook"})).await;
    // The secret is in the Standard Webhooks format: whsec_ + standard base64 of 32 bytes.
    let raw = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    assert_eq!(raw.len(), 32);

    let body = r#"{"event": "invoice.paid", "amount": 42}"#;
    let now_s = s.clock.now_ms() / 1000;
    let sig = run_python(&py, SIGN, &[&secret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", &now_s.to_string(), body]).unwrap();
    assert!(sig.starts_with("v1,"), "{sig}");
    let headers = vec![
        ("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W".to_owned()),
        ("webhook-timestamp", now_s.to_string()),
        ("webhook-signature", sig.clone()),
    ];
    let (st, d) = deliver(&s, &url, body.as_bytes(), &headers).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{d}");
    assert_eq!(d["delivery_id"], "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "the signed webhook-id is the delivery id");
    // Re-sent as is, even with an unsigned Steward-Delivery added: the same delivery.
    let mut again = headers.clone();
    again.push(("steward-delivery", "something-else".into()));
    let (st, dup) = deliver(&s, &url, body.as_bytes(), &again).await;
    assert_eq!((st, &dup["duplicate"], &dup["run_id"]), (StatusCode::OK, &json!(true), &d["run_id"]), "{dup}");
    // The same signature under another id is not a signature of that delivery.
    let mut moved = headers.clone();
    moved[0].1 = "msg_other".into();
    let (st, v) = deliver(&s, &url, body.as_bytes(), &moved).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert!(error_message(&v).contains("does not match"), "{v}");
    // The library's own multi-signature header (a rotated-out key first) is accepted too.
    let later = now_s + 1;
    let sig2 = run_python(&py, SIGN, &[&secret, "msg_second", &later.to_string(), body]).unwrap();
    let rotated = format!("v1,{} {sig2}", base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
    let headers2 = vec![("webhook-id", "msg_second".to_owned()), ("webhook-timestamp", later.to_string()), ("webhook-signature", rotated)];
    let (st, v) = deliver(&s, &url, body.as_bytes(), &headers2).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(trigger_row(&s, &u, &agent, &tid).await["fire_count"], 2);
}

/// Captures one request: its headers (lower-case names) and raw body.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<(Value, String)>>>);

async fn capture(axum::extract::State(c): axum::extract::State<Capture>, headers: axum::http::HeaderMap, body: String) -> &'static str {
    let h: serde_json::Map<String, Value> =
        headers.iter().map(|(k, v)| (k.as_str().to_owned(), Value::String(v.to_str().unwrap_or("").to_owned()))).collect();
    c.0.lock().unwrap().push((Value::Object(h), body));
    "ok"
}

#[tokio::test]
async fn an_outbound_notification_verifies_with_the_standardwebhooks_library() {
    let Some(py) = peers::python() else { return };
    let received = Capture::default();
    let app = axum::Router::new().route("/hook", axum::routing::post(capture)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let fake = FakeModel::start(|_, _| Reply::Text("done".into())).await;
    let s = TestServer::start_configured(Backend::Sqlite, |c| c.runtime.notify_poll = Duration::from_millis(100)).await.unwrap();
    let (u, agent) = s.user_with_agent(&fake.url, "claude-test", "triage").await;
    let (st, sub) = s.post("/v1/subscriptions", &u.key, json!({"url": hook, "events": ["run.completed"]})).await;
    assert_eq!(st, StatusCode::CREATED, "{sub}");
    let secret = sub["secret"].as_str().unwrap().to_owned();
    let (st, v) = s.post("/v1/sessions", &u.key, json!({"agent_id": agent, "input": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    for i in 0.. {
        if !received.0.lock().unwrap().is_empty() {
            break;
        }
        assert!(i < 400, "no notification arrived");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (headers, body) = received.0.lock().unwrap()[0].clone();
    let delivery: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(headers["webhook-id"], delivery["id"], "webhook-id is the stable delivery id");
    assert_eq!(headers["steward-delivery"], delivery["id"], "the legacy headers are still sent");
    assert_eq!(
        headers["steward-signature"].as_str().unwrap(),
        signing::steward_signature(&secret, headers["steward-timestamp"].as_str().unwrap().parse().unwrap(), body.as_bytes())
    );
    let h = headers.to_string();
    assert_eq!(run_python(&py, VERIFY, &[&secret, &h, &body]).as_deref(), Ok("verified"));
    // The library is not a rubber stamp: a changed body or another secret fails.
    let tampered = body.replace("run.completed", "run.failed");
    assert!(run_python(&py, VERIFY, &[&secret, &h, &tampered]).unwrap_err().contains("No matching signature"));
    assert!(run_python(&py, VERIFY, &[&signing::new_secret(), &h, &body]).is_err());
}

/// A legacy signature re-sent under 20 new delivery ids starts one run; a Standard Webhooks
/// delivery re-sent starts one run and cannot be moved to another id.
async fn replays_start_one_run(backend: Backend) {
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    let Some(s) = TestServer::start_on(backend).await else { return };
    let (u, agent) = s.user_with_agent(&fake.url, "claude-test", "triage").await;
    let (secret, url, tid) = trigger(&s, &u, &agent, json!({"name": "hook"})).await;
    let now_s = s.clock.now_ms() / 1000;
    let body = br#"{"captured": true}"#;

    // The sender's delivery and 20 replays with new ids, all at once: several land in one
    // batch, others race the early check (two replicas racing are a store conformance test).
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..21 {
        let (client, url, headers) = (s.http.clone(), format!("{}{url}", s.url), legacy(&secret, now_s, body, &format!("gh-{n}")));
        tasks.spawn(async move {
            let mut req = client.post(url).header("content-type", "application/json").body(body.to_vec());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let res = req.send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        });
    }
    let (mut accepted, mut replayed) = (Vec::new(), 0);
    while let Some(r) = tasks.join_next().await {
        let (st, v) = r.unwrap();
        match st {
            StatusCode::ACCEPTED => accepted.push(v),
            StatusCode::CONFLICT => {
                assert_eq!(v["error"]["type"], "replayed_delivery", "{v}");
                assert!(error_message(&v).contains("already used") && error_message(&v).contains("Standard Webhooks"), "{v}");
                replayed += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!((accepted.len(), replayed), (1, 20), "one captured signature, one run");
    // The sender's own retry of the delivery that won is a duplicate, not a replay.
    let first = accepted[0]["delivery_id"].as_str().unwrap();
    let (st, v) = deliver(&s, &url, body, &legacy(&secret, now_s, body, first)).await;
    assert_eq!((st, &v["run_id"]), (StatusCode::OK, &accepted[0]["run_id"]), "{v}");
    // Signed anew (another timestamp), the next delivery is fine.
    let (st, v) = deliver(&s, &url, body, &legacy(&secret, now_s + 1, body, "gh-next")).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");

    // Standard Webhooks: the same id five times is one run; another id breaks the signature.
    let headers = standard(&secret, "msg_1", now_s, body);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(deliver(&s, &url, body, &headers).await.0);
    }
    assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::OK, StatusCode::OK, StatusCode::OK, StatusCode::OK]);
    let mut moved = headers.clone();
    moved[0].1 = "msg_2".into();
    assert_eq!(deliver(&s, &url, body, &moved).await.0, StatusCode::UNAUTHORIZED);

    let t = trigger_row(&s, &u, &agent, &tid).await;
    assert_eq!(t["fire_count"], 3, "{t}");
    assert!(t["last_error"].is_null(), "replays and forgeries are not recorded: {t}");
    assert_eq!(refusals(&s, &u, "replayed").await, 20);
    assert_eq!(refusals(&s, &u, "bad_signature").await, 1);
}

#[tokio::test]
async fn replays_start_one_run_sqlite() {
    replays_start_one_run(Backend::Sqlite).await;
}

#[tokio::test]
async fn replays_start_one_run_postgres() {
    replays_start_one_run(Backend::Postgres).await;
}

#[tokio::test]
async fn unauthenticated_deliveries_change_nothing_and_are_counted() {
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "claude-test", "triage").await;
    let (secret, url, tid) = trigger(&s, &u, &agent, json!({"name": "hook"})).await;
    let now = s.clock.now_ms() / 1000;
    let body = br#"{"ok": true}"#;
    let before = trigger_row(&s, &u, &agent, &tid).await;

    let at = |ts: i64| legacy(&secret, ts, body, "d");
    let std_at = |ts: i64| standard(&secret, "msg_x", ts, body);
    // (headers, the metric's reason, a phrase of the message)
    let cases: Vec<(Headers, &str, &str)> = vec![
        (vec![], "unsigned", "unsigned"),
        (legacy("whsec_guess", now, body, "d"), "bad_signature", "does not match"),
        (standard("whsec_Z3Vlc3M=", "msg_x", now, body), "bad_signature", "does not match"),
        (vec![("steward-trigger-token", secret.clone())], "token_not_allowed", "does not accept tokens"),
        (vec![("webhook-signature", "v1,AAAA".into())], "malformed", "webhook-id"),
        (vec![("steward-timestamp", now.to_string()), ("steward-signature", "sha256=ab".into())], "malformed", "v1="),
        // The window, either way, without overflow at the extremes.
        (at(now - 301), "stale_timestamp", "minutes"),
        (at(now + 301), "stale_timestamp", "minutes"),
        (at(i64::MIN), "stale_timestamp", "minutes"),
        (at(i64::MAX), "stale_timestamp", "minutes"),
        (std_at(i64::MIN), "stale_timestamp", "minutes"),
        (std_at(now - 301), "stale_timestamp", "minutes"),
    ];
    for (headers, reason, why) in &cases {
        let (st, v) = deliver(&s, &url, body, headers).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{reason}: {v}");
        assert!(error_message(&v).contains(why), "{reason}: {v}");
    }
    let after = trigger_row(&s, &u, &agent, &tid).await;
    for field in ["last_error", "last_error_at", "fire_count", "updated_at", "last_fired_at"] {
        assert_eq!(after[field], before[field], "{field} changed: {before} → {after}");
    }
    let expected = [("unsigned", 1), ("bad_signature", 2), ("token_not_allowed", 1), ("malformed", 2), ("stale_timestamp", 6)];
    for (reason, n) in expected {
        assert_eq!(refusals(&s, &u, reason).await, n, "{reason}");
    }
    // ±300 s is inside the window; an authenticated refusal (not JSON) is still recorded.
    assert_eq!(deliver(&s, &url, body, &at(now - 300)).await.0, StatusCode::ACCEPTED);
    let junk = b"not json";
    let (st, _) = deliver(&s, &url, junk, &standard(&secret, "msg_junk", now + 300, junk)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let t = trigger_row(&s, &u, &agent, &tid).await;
    assert!(t["last_error"].as_str().unwrap().contains("not JSON"), "{t}");
    assert_eq!(t["fire_count"], 1);
}
