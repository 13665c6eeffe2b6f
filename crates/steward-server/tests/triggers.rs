//! Webhook triggers (§11) through the real server: signed deliveries start runs with the
//! rendered input, duplicates start nothing, and every kind of bad delivery is refused with a
//! clear error and runs nothing. Signing schemes, replays and the refusal metric are in
//! `trigger_signatures.rs`.

mod common;

use std::time::Duration;

use common::fake_model::{FakeModel, Reply};
use common::{TestServer, deliver, error_message, error_param};
use reqwest::{Method, StatusCode};
use serde_json::json;
use steward_core::clock::Clock;
use steward_core::signing::steward_signature as sign;
use steward_test_support::signing::legacy_headers as signed;

#[tokio::test]
async fn a_signed_delivery_starts_one_run_with_the_rendered_input_and_duplicates_start_nothing() {
    let fake = FakeModel::start(|_, _| Reply::Text("Triaged.".into())).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "claude-test", "triage").await;
    let (st, t) = s
        .post(
            &format!("/v1/agents/{agent}/triggers"),
            &u.key,
            json!({"name": "github", "input_template": "New issue: {{ payload.issue.title }} by {{ payload.sender }}"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let secret = t["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let url = t["url"].as_str().unwrap().to_owned();
    // The secret is never shown again.
    let (_, listed) = s.get(&format!("/v1/agents/{agent}/triggers"), &u.key).await;
    assert!(!listed.to_string().contains(&secret), "{listed}");
    assert_eq!(listed["data"][0]["fire_count"], 0);

    let body = serde_json::to_vec(&json!({"issue": {"title": "Crash on save"}, "sender": "octocat"})).unwrap();
    let now_s = s.clock.now_ms() / 1000;
    let (st, d) = deliver(&s, &url, body.clone(), &signed(&secret, now_s, &body, "gh-1")).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{d}");
    assert_eq!(d["duplicate"], false);
    // The sender retries the same delivery: same run, nothing new.
    let (st, again) = deliver(&s, &url, body.clone(), &signed(&secret, now_s, &body, "gh-1")).await;
    assert_eq!(st, StatusCode::OK, "{again}");
    assert_eq!((again["duplicate"].as_bool(), &again["run_id"]), (Some(true), &d["run_id"]));

    let session = d["session_id"].as_str().unwrap();
    for i in 0.. {
        let (_, events) = s.get(&format!("/v1/sessions/{session}/events"), &u.key).await;
        if events.as_array().unwrap().iter().any(|e| e["type"] == "agent_finish") {
            break;
        }
        assert!(i < 200, "the triggered run did not finish: {events}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1, "exactly one run for two deliveries of gh-1");
    assert!(reqs[0]["messages"].to_string().contains("New issue: Crash on save by octocat"), "{}", reqs[0]["messages"]);
    // The raw payload is kept on the run; the trigger counts the fire.
    let (_, run) = s.get(&format!("/v1/runs/{}", d["run_id"].as_str().unwrap()), &u.key).await;
    assert!(run.to_string().contains("octocat"), "{run}");
    let (_, t) = s.get(&format!("/v1/agents/{agent}/triggers/{}", t["id"].as_str().unwrap()), &u.key).await;
    assert_eq!(t["fire_count"], 1);
    assert!(t["last_fired_at"].is_string());
    let (_, sessions) = s.get(&format!("/v1/agents/{agent}/conversations"), &u.key).await;
    assert!(sessions.to_string().contains("trigger:github"), "{sessions}");
}

#[tokio::test]
async fn bad_deliveries_are_refused_and_run_nothing() {
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "claude-test", "triage").await;
    let (_, t) = s.post(&format!("/v1/agents/{agent}/triggers"), &u.key, json!({"name": "hook"})).await;
    let (secret, url, tid) =
        (t["secret"].as_str().unwrap().to_owned(), t["url"].as_str().unwrap().to_owned(), t["id"].as_str().unwrap().to_owned());
    let now_s = s.clock.now_ms() / 1000;
    let body = br#"{"ok": true}"#.to_vec();

    // Forged signature, stale timestamp (a replay), no signature, wrong-format signature.
    let forged = vec![("steward-timestamp", now_s.to_string()), ("steward-signature", sign("whsec_guess", now_s, &body))];
    let stale = signed(&secret, now_s - 600, &body, "old");
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (forged, "does not match"),
        (stale, "minutes"),
        (vec![], "unsigned"),
        (vec![("steward-timestamp", now_s.to_string()), ("steward-signature", "sha256=abc".into())], "v1="),
        (vec![("steward-trigger-token", secret.clone())], "does not accept tokens"),
    ];
    for (headers, why) in cases {
        let (st, v) = deliver(&s, &url, body.clone(), &headers).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
        assert!(error_message(&v).contains(why), "{why}: {v}");
    }
    // Unauthenticated: nothing is recorded on the trigger (trigger_signatures.rs has the rest).
    let (_, t) = s.get(&format!("/v1/agents/{agent}/triggers/{tid}"), &u.key).await;
    assert!(t["last_error"].is_null(), "{t}");
    // Signed, but not JSON; and a 20 MiB body.
    let junk = b"not json".to_vec();
    let (st, v) = deliver(&s, &url, junk.clone(), &signed(&secret, now_s, &junk, "j")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let huge = vec![b' '; 20 * 1024 * 1024];
    let (st, _) = deliver(&s, &url, huge.clone(), &signed(&secret, now_s, &huge, "h")).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    // Unknown trigger ids look the same whether malformed or missing.
    for bad in ["/v1/webhooks/triggers/trg_01hzzzzzzzzzzzzzzzzzzzzzzz", "/v1/webhooks/triggers/..%2f..%2fetc"] {
        let (st, _) = deliver(&s, bad, body.clone(), &signed(&secret, now_s, &body, "x")).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{bad}");
    }
    // Paused: 409 with a clear body, nothing run; a resume_at in the past is refused.
    let (st, v) = s.post(&format!("/v1/agents/{agent}/triggers/{tid}/pause"), &u.key, json!({"resume_at": "2020-01-01T00:00:00Z"})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("resume_at")), "{v}");
    let (st, v) = s.call(Method::POST, &format!("/v1/agents/{agent}/triggers/{tid}/pause"), Some(&u.key), None).await;
    assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some("paused")), "{v}");
    let (st, v) = deliver(&s, &url, body.clone(), &signed(&secret, now_s, &body, "p1")).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(error_message(&v).contains("paused"), "{v}");
    // A pause with resume_at ends by itself (time moves, no sleeping).
    let at = chrono::DateTime::from_timestamp_millis(s.clock.now_ms() + 3_600_000).unwrap().to_rfc3339();
    let (st, v) = s.post(&format!("/v1/agents/{agent}/triggers/{tid}/pause"), &u.key, json!({"resume_at": at})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    s.clock.advance_ms(3_600_001);
    let later = s.clock.now_ms() / 1000;
    let (st, v) = deliver(&s, &url, body.clone(), &signed(&secret, later, &body, "p2")).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    // A template that does not parse is refused at create and update, naming the field.
    let (st, v) = s.post(&format!("/v1/agents/{agent}/triggers"), &u.key, json!({"name": "bad", "input_template": "{{ payload.x "})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("input_template")), "{v}");
    let (st, v) = s.patch(&format!("/v1/agents/{agent}/triggers/{tid}"), &u.key, json!({"input_template": "{% for %}"})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("input_template")), "{v}");
    // Only the p2 delivery ran.
    for _ in 0..200 {
        if !fake.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn token_mode_roles_and_deletion() {
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "claude-test", "triage").await;
    let editor = s.member("ed@example.com", &u.sandbox_id, steward_core::tenancy::Role::Editor).await;
    let (st, t) = s.post(&format!("/v1/agents/{agent}/triggers"), &editor.key, json!({"name": "form", "allow_token": true})).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let (secret, url, tid) =
        (t["secret"].as_str().unwrap().to_owned(), t["url"].as_str().unwrap().to_owned(), t["id"].as_str().unwrap().to_owned());
    let (st, v) = deliver(&s, &url, b"{\"name\": \"x\"}".to_vec(), &[("steward-trigger-token", secret.clone())]).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let (st, _) = deliver(&s, &url, b"{}".to_vec(), &[("steward-trigger-token", "whsec_wrong".into())]).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, v) = s.post(&format!("/v1/agents/{agent}/triggers"), &editor.key, json!({"name": "form"})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    // Deleting (disconnecting) is owner-only, and the URL stops working.
    let (st, _) = s.call(Method::DELETE, &format!("/v1/agents/{agent}/triggers/{tid}"), Some(&editor.key), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s.call(Method::DELETE, &format!("/v1/agents/{agent}/triggers/{tid}"), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = deliver(&s, &url, b"{}".to_vec(), &[("steward-trigger-token", secret)]).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Another tenant sees nothing.
    let eve = s.user("eve@example.com").await;
    let (st, _) = s.get(&format!("/v1/agents/{agent}/triggers"), &eve.key).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
