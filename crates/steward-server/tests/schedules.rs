//! Cron schedules (§11) through the real server, with the test moving the server's clock
//! instead of sleeping: due times fire runs, missed times follow the schedule's policy, pauses
//! hold, bad input is refused naming the field.

mod common;

use std::time::Duration;

use common::fake_model::{FakeModel, Reply};
use common::{TestServer, error_param};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_core::clock::Clock;

fn ms(rfc3339: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().unwrap()).unwrap().timestamp_millis()
}

/// Waits (bounded) until the schedule has `n` executions; returns them, newest first.
async fn executions(s: &TestServer, key: &str, agent: &str, sid: &str, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let (_, v) = s.get(&format!("/v1/agents/{agent}/schedules/{sid}/executions"), key).await;
        let items = v["data"].as_array().unwrap().clone();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("schedule {sid} did not reach {n} executions");
}

#[tokio::test]
async fn a_due_time_fires_one_run_with_the_rendered_input() {
    let fake = FakeModel::start(|_, _| Reply::Text("Report sent.".into())).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "claude-test", "reporter").await;
    let (st, sch) = s
        .post(&format!("/v1/agents/{agent}/schedules"), &u.key, json!({"name": "daily", "cron": "*/5 * * * *", "input_template": "Write the report for {{ scheduled_at }} ({{ schedule.name }})."}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sch}");
    let sid = sch["id"].as_str().unwrap().to_owned();
    let due = ms(&sch["next_fire_at"]);
    assert!(due > s.clock.now_ms() && due - s.clock.now_ms() <= 300_000, "{sch}");
    // Nothing fires before the due time...
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(fake.requests().is_empty());
    // ...and exactly one run once it has come.
    s.clock.advance_ms(due - s.clock.now_ms() + 10);
    let ex = executions(&s, &u.key, &agent, &sid, 1).await;
    assert_eq!(ex[0]["outcome"], "started", "{ex:?}");
    assert_eq!(ms(&ex[0]["scheduled_at"]), due);
    for _ in 0..200 {
        if !fake.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let asked = fake.requests()[0]["messages"].to_string();
    assert!(asked.contains("Write the report for") && asked.contains("(daily)"), "{asked}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(executions(&s, &u.key, &agent, &sid, 1).await.len(), 1, "a due time fires once");
    let (_, sch) = s.get(&format!("/v1/agents/{agent}/schedules/{sid}"), &u.key).await;
    assert_eq!(sch["fire_count"], 1);
    assert_eq!(ms(&sch["next_fire_at"]), due + 300_000);
}

#[tokio::test]
async fn missed_times_follow_the_policy_and_pauses_hold() {
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "claude-test", "reporter").await;
    let (_, skip) = s.post(&format!("/v1/agents/{agent}/schedules"), &u.key, json!({"name": "skipper", "cron": "*/5 * * * *"})).await;
    let (_, once) = s
        .post(&format!("/v1/agents/{agent}/schedules"), &u.key, json!({"name": "catcher", "cron": "*/5 * * * *", "missed": "fire_once"}))
        .await;
    let (_, paused) = s.post(&format!("/v1/agents/{agent}/schedules"), &u.key, json!({"name": "sleeper", "cron": "*/5 * * * *"})).await;
    let (skip, once, paused) = (skip["id"].as_str().unwrap(), once["id"].as_str().unwrap(), paused["id"].as_str().unwrap());
    let (st, v) = s.call(Method::POST, &format!("/v1/agents/{agent}/schedules/{paused}/pause"), Some(&u.key), None).await;
    assert_eq!((st, v["state"].as_str(), &v["next_fire_at"]), (StatusCode::OK, Some("paused"), &Value::Null), "{v}");
    // The server "was down" for an hour: twelve due times passed.
    s.clock.advance_ms(3_600_000);
    let ex = executions(&s, &u.key, &agent, skip, 1).await;
    assert_eq!(ex[0]["outcome"], "skipped", "{ex:?}");
    let ex = executions(&s, &u.key, &agent, once, 1).await;
    assert_eq!(ex[0]["outcome"], "started", "{ex:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(executions(&s, &u.key, &agent, skip, 1).await.len(), 1, "skip records the gap once");
    assert_eq!(executions(&s, &u.key, &agent, once, 1).await.len(), 1, "fire_once fires once, not twelve times");
    let (_, v) = s.get(&format!("/v1/agents/{agent}/schedules/{skip}"), &u.key).await;
    assert!(ms(&v["next_fire_at"]) > s.clock.now_ms(), "{v}");
    let (_, v) = s.get(&format!("/v1/agents/{agent}/schedules/{paused}/executions"), &u.key).await;
    assert_eq!(v["data"], json!([]), "a paused schedule does not fire");
    // Resume: from now on, no catch-up of the paused hour.
    let (st, v) = s.call(Method::POST, &format!("/v1/agents/{agent}/schedules/{paused}/resume"), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(ms(&v["next_fire_at"]) > s.clock.now_ms(), "{v}");
    // Toggle flips it back.
    let (_, v) = s.call(Method::POST, &format!("/v1/agents/{agent}/schedules/{paused}/toggle"), Some(&u.key), None).await;
    assert_eq!(v["state"], "paused");
}

#[tokio::test]
async fn bad_schedules_are_refused_naming_the_field() {
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "claude-test", "reporter").await;
    for (body, param, needle) in [
        (json!({"name": "a", "cron": "61 * * * *"}), "cron", "minute"),
        (json!({"name": "a", "cron": "* 25 * * *"}), "cron", "hour"),
        (json!({"name": "a", "cron": "* * *"}), "cron", "5"),
        (json!({"name": "a", "cron": "0 9 * * MON-FRI", "timezone": "Mars/Olympus"}), "timezone", "Mars/Olympus"),
        (json!({"name": "a", "cron": "0 9 * * *", "input_template": "{{ oops "}), "input_template", "parse"),
        (json!({"name": "a", "cron": "0 9 * * *", "missed": "sometimes"}), "missed", "skip"),
    ] {
        let (st, v) = s.post(&format!("/v1/agents/{agent}/schedules"), &u.key, body.clone()).await;
        assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some(param)), "{body} → {v}");
        assert!(v["error"]["message"].as_str().unwrap().to_lowercase().contains(&needle.to_lowercase()), "{body} → {v}");
    }
    let (_, sch) = s
        .post(
            &format!("/v1/agents/{agent}/schedules"),
            &u.key,
            json!({"name": "ok", "cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin"}),
        )
        .await;
    let sid = sch["id"].as_str().unwrap();
    let (st, v) = s.post(&format!("/v1/agents/{agent}/schedules/{sid}/pause"), &u.key, json!({"resume_at": "2020-01-01T00:00:00Z"})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("resume_at")), "{v}");
    let (st, _) = s.post(&format!("/v1/agents/{agent}/schedules"), &u.key, json!({"name": "ok", "cron": "0 10 * * *"})).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (_, v) = s.get(&format!("/v1/agents/{agent}/schedules"), &u.key).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "nothing half-created: {v}");
}

#[tokio::test]
async fn the_per_agent_compat_paths_reach_the_same_schedules_and_triggers() {
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    let s = TestServer::start().await;
    let (u, agent) = s.user_with_agent(&fake.url, "claude-test", "reporter").await;
    let (st, sch) = s.post(&format!("/v1/agent/{agent}/schedules"), &u.key, json!({"name": "nightly", "cron": "0 3 * * *"})).await;
    assert_eq!(st, StatusCode::CREATED, "{sch}");
    let sid = sch["id"].as_str().unwrap();
    let (_, same) = s.get(&format!("/v1/agents/{agent}/schedules/{sid}"), &u.key).await;
    assert_eq!(same["cron"], "0 3 * * *");
    let (st, v) = s.call(Method::POST, &format!("/v1/agent/{agent}/schedules/{sid}/toggle"), Some(&u.key), None).await;
    assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some("paused")), "{v}");
    let (st, t) = s.post(&format!("/v1/agent/{agent}/triggers"), &u.key, json!({"name": "hook"})).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    assert!(t["secret"].as_str().unwrap().starts_with("whsec_"));
    let (_, listed) = s.get(&format!("/v1/agents/{agent}/triggers"), &u.key).await;
    assert_eq!(listed["data"][0]["id"], t["id"]);
}

/// The scheduler admits work like every other way a run starts: an agent out of tokens, or one
/// whose provider is not configured, gets no run; the due time is a `refused` execution with
/// the refusal's message, which is also the schedule's `last_error`.
#[tokio::test]
async fn a_refused_due_time_starts_nothing_and_says_why() {
    let fake = FakeModel::start(|_, _| Reply::Text("ok".into())).await;
    let s = TestServer::start().await;
    let (u, broke) = s.user_with_agent(&fake.url, "claude-test", "reporter").await;
    let (st, v) = s.post(&format!("/v1/agents/{broke}/balance"), &u.key, json!({"set": 0})).await;
    assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some("active")), "{v}");
    let (st, ghost) = s.post("/v1/agents", &u.key, json!({"name": "ghost", "model": {"provider_id": "nobody", "name": "m"}})).await;
    assert_eq!(st, StatusCode::CREATED, "{ghost}");
    let ghost = ghost["id"].as_str().unwrap().to_owned();
    let mut due = 0;
    let mut ids = vec![];
    for agent in [&broke, &ghost] {
        let (st, sch) = s.post(&format!("/v1/agents/{agent}/schedules"), &u.key, json!({"name": "tick", "cron": "*/5 * * * *"})).await;
        assert_eq!(st, StatusCode::CREATED, "{sch}");
        due = due.max(ms(&sch["next_fire_at"]));
        ids.push(sch["id"].as_str().unwrap().to_owned());
    }
    s.clock.advance_ms(due - s.clock.now_ms() + 10);
    let cases = [
        (&broke, &ids[0], format!("agent {broke}'s token balance is exhausted; add tokens with POST /v1/agents/{broke}/balance")),
        (
            &ghost,
            &ids[1],
            "the agent uses provider `nobody`, which is not configured in this sandbox; add it with POST /v1/providers".to_owned(),
        ),
    ];
    for (agent, sid, why) in &cases {
        let ex = executions(&s, &u.key, agent, sid, 1).await;
        assert_eq!((ex[0]["outcome"].as_str(), ex[0]["error"].as_str()), (Some("refused"), Some(why.as_str())), "{ex:?}");
        assert!(ex[0]["run_id"].is_null() && ex[0]["session_id"].is_null(), "{ex:?}");
        let (_, sch) = s.get(&format!("/v1/agents/{agent}/schedules/{sid}"), &u.key).await;
        assert_eq!((sch["last_error"].as_str(), sch["fire_count"].as_i64()), (Some(why.as_str()), Some(0)), "{sch}");
        let (_, sessions) = s.get(&format!("/v1/sessions?agent_id={agent}"), &u.key).await;
        assert_eq!(sessions["data"], json!([]), "a refused due time creates no session");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.requests().is_empty(), "no model was called");
}
