//! Sessions and runs end to end (§4): a real server, the real Anthropic client, and a fake
//! provider on loopback speaking the Anthropic wire format.

mod common;

use std::time::Duration;

use common::fake_model::{FakeModel, Reply};
use common::{TestServer, User, error_message, error_param};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "sk-ant-PLANTED-SECRET-6f1c2a";

/// A vault with the provider key, a provider pointing at the fake, and an agent using it.
async fn setup(s: &TestServer, fake: &FakeModel, agent_extra: Value) -> (User, String) {
    let u = s.user("ada@example.com").await;
    let (st, vault) = s.post("/v1/vaults", &u.key, json!({"name": "anthropic-key", "secret": SECRET})).await;
    assert_eq!(st, StatusCode::CREATED, "{vault}");
    let (st, p) = s
        .post("/v1/providers", &u.key, json!({"id": "anthropic", "provider": "anthropic", "base_url": fake.url, "api_key_vault_id": vault["id"], "models": ["claude-test"]}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let mut body = json!({"name": "support", "model": {"provider_id": "anthropic", "name": "claude-test"}, "system_prompt": "Be brief.", "max_turns": 4});
    for (k, v) in agent_extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (st, a) = s.post("/v1/agents", &u.key, body).await;
    assert_eq!(st, StatusCode::CREATED, "{a}");
    (u, a["id"].as_str().unwrap().to_owned())
}

async fn start_session(s: &TestServer, key: &str, agent: &str, text: &str) -> Value {
    let (st, v) = s.post("/v1/sessions", key, json!({"agent_id": agent, "input": [{"role": "user", "content": text}]})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

/// Polls the event log until `n` runs have a terminal event (bounded).
async fn wait_terminal(s: &TestServer, key: &str, session: &str, n: usize) -> Vec<Value> {
    for _ in 0..400 {
        let (st, events) = s.get(&format!("/v1/sessions/{session}/events"), key).await;
        assert_eq!(st, StatusCode::OK, "{events}");
        let events = events.as_array().unwrap().clone();
        let terminal =
            events.iter().filter(|e| ["agent_finish", "agent_error", "run_cancelled"].contains(&e["type"].as_str().unwrap())).count();
        if terminal >= n {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("session {session} did not reach {n} terminal events in time");
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_run_calls_a_tool_and_finishes_with_every_step_in_the_log() {
    let fake = FakeModel::start(|req, i| {
        if i == 0 {
            assert!(req["tools"].as_array().unwrap().iter().any(|t| t["name"] == "current_time"), "{req}");
            Reply::Tool { id: "toolu_1".into(), name: "current_time".into(), input: json!({"utc_offset": "+02:00"}) }
        } else {
            Reply::Text("It is late. Good night.".into())
        }
    })
    .await;
    let s = TestServer::start().await;
    let (u, agent) = setup(&s, &fake, json!({})).await;
    let session = start_session(&s, &u.key, &agent, "What time is it?").await;
    assert_eq!(session["agent_version"], 1);
    let sid = session["id"].as_str().unwrap();
    let events = wait_terminal(&s, &u.key, sid, 1).await;
    let t = types(&events);
    assert_eq!(t[0], "run_started");
    assert_eq!(*t.last().unwrap(), "agent_finish", "{t:?}");
    assert!(t.contains(&"agent_tool_call") && t.contains(&"agent_tool_result") && t.contains(&"usage"), "{t:?}");
    let call = events.iter().find(|e| e["type"] == "agent_tool_call").unwrap();
    assert_eq!(call["data"]["name"], "current_time");
    assert_eq!(call["data"]["arguments"], json!({"utc_offset": "+02:00"}));
    let result = events.iter().find(|e| e["type"] == "agent_tool_result").unwrap();
    assert!(result["data"]["result"].as_str().unwrap().ends_with("+02:00"), "{result}");
    let text: String = events.iter().filter(|e| e["type"] == "agent_text_delta").map(|e| e["data"]["text"].as_str().unwrap()).collect();
    assert_eq!(text, "Let me check. It is late. Good night.");
    let finish = &events.last().unwrap()["data"];
    assert_eq!(finish["stop_reason"], "end_turn");
    assert_eq!(finish["session_id"], sid);
    assert_eq!(finish["usage"], json!({"input_tokens": 24, "output_tokens": 16}));
    // Event ids sort in emission order.
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    // The model saw the tool result on its second call, and the key went only to the provider.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1]["system"], "Be brief.");
    let second = reqs[1]["messages"].to_string();
    assert!(second.contains("tool_result") && second.contains("toolu_1"), "{second}");
    assert_eq!(fake.headers()[0]["x-api-key"], SECRET);
    // The run's record and trace.
    let run_id = finish["run_id"].as_str().unwrap();
    let (st, trace) = s.get(&format!("/v1/runs/{run_id}/trace"), &u.key).await;
    assert_eq!(st, StatusCode::OK, "{trace}");
    assert_eq!(trace["run"]["status"], "completed");
    assert_eq!(trace["run"]["usage"]["output_tokens"], 16);
    assert_eq!(trace["trace"]["model_calls"].as_array().unwrap().len(), 2);
    assert_eq!(trace["trace"]["tool_calls"][0]["name"], "current_time");
    assert_eq!(
        trace["trace"]["tool_resolution"]["catalog"],
        json!([{"name": "current_time", "source": "platform", "tool": "current_time"}])
    );
    let (_, runs) = s.get(&format!("/v1/runs?agent_id={agent}"), &u.key).await;
    assert_eq!(runs["data"][0]["id"], run_id);
    // The planted secret is nowhere in what the API shows.
    for path in [
        format!("/v1/sessions/{sid}/events"),
        format!("/v1/runs/{run_id}/trace"),
        format!("/v1/sessions/{sid}"),
        "/v1/runs".into(),
        "/v1/vaults".into(),
        "/v1/providers".into(),
    ] {
        let (_, v) = s.get(&path, &u.key).await;
        assert!(!v.to_string().contains(SECRET), "{path} leaks the secret");
    }
    // Another turn continues the conversation.
    let (st, run2) =
        s.post(&format!("/v1/sessions/{sid}/messages"), &u.key, json!({"input": [{"role": "user", "content": "Thanks"}]})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{run2}");
    wait_terminal(&s, &u.key, sid, 2).await;
    let third = fake.requests()[2]["messages"].to_string();
    assert!(third.contains("What time is it?") && third.contains("Thanks"), "{third}");
}

#[tokio::test]
async fn on_busy_reject_enqueue_and_interrupt() {
    let fake =
        FakeModel::start(|_, i| if i == 0 { Reply::Slow { n: 200, delay: Duration::from_millis(20) } } else { Reply::Text("ok".into()) })
            .await;
    let s = TestServer::start().await;
    let (u, agent) = setup(&s, &fake, json!({})).await;
    let session = start_session(&s, &u.key, &agent, "long").await;
    let sid = session["id"].as_str().unwrap();
    let turn = |on_busy: Option<&str>| {
        let mut b = json!({"input": [{"role": "user", "content": "next"}]});
        if let Some(o) = on_busy {
            b["on_busy"] = json!(o);
        }
        b
    };
    // Wait until the first run is streaming, so its model request is in flight.
    for _ in 0..400 {
        let (_, ev) = s.get(&format!("/v1/sessions/{sid}/events"), &u.key).await;
        if ev.as_array().unwrap().iter().any(|e| e["type"] == "agent_text_delta") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (st, v) = s.post(&format!("/v1/sessions/{sid}/messages"), &u.key, turn(None)).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(error_message(&v).contains("enqueue"));
    let (st, queued) = s.post(&format!("/v1/sessions/{sid}/messages"), &u.key, turn(Some("enqueue"))).await;
    assert_eq!((st, queued["status"].as_str()), (StatusCode::ACCEPTED, Some("queued")), "{queued}");
    let (st, v) = s.post(&format!("/v1/sessions/{sid}/messages"), &u.key, turn(Some("interrupt"))).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let (st, v) = s.post(&format!("/v1/sessions/{sid}/messages"), &u.key, turn(Some("later"))).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("on_busy")));
    let events = wait_terminal(&s, &u.key, sid, 3).await;
    let t = types(&events);
    assert_eq!(t.iter().filter(|x| **x == "run_cancelled").count(), 2, "the running and the queued run were interrupted: {t:?}");
    assert_eq!(*t.last().unwrap(), "agent_finish");
    // The slow model call was abandoned, not left streaming.
    for _ in 0..100 {
        if fake.dropped() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.dropped() >= 1, "the provider request was not dropped on interrupt");
}

#[tokio::test]
async fn cancel_stops_the_run_and_drops_the_model_request() {
    let fake = FakeModel::start(|_, _| Reply::Slow { n: 500, delay: Duration::from_millis(20) }).await;
    let s = TestServer::start().await;
    let (u, agent) = setup(&s, &fake, json!({})).await;
    let sid = start_session(&s, &u.key, &agent, "go").await["id"].as_str().unwrap().to_owned();
    // Wait until text flows.
    for _ in 0..200 {
        let (_, ev) = s.get(&format!("/v1/sessions/{sid}/events"), &u.key).await;
        if ev.as_array().unwrap().iter().any(|e| e["type"] == "agent_text_delta") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (st, v) = s.post(&format!("/v1/sessions/{sid}/cancel"), &u.key, json!({})).await;
    assert_eq!((st, v["cancelled_runs"].as_u64()), (StatusCode::OK, Some(1)), "{v}");
    let events = wait_terminal(&s, &u.key, &sid, 1).await;
    assert_eq!(*types(&events).last().unwrap(), "run_cancelled");
    for _ in 0..100 {
        if fake.dropped() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fake.dropped(), 1, "the model request must be dropped at once");
    let (_, session) = s.get(&format!("/v1/sessions/{sid}"), &u.key).await;
    assert_eq!(session["status"], "idle");
}

#[tokio::test]
async fn agent_states_take_effect() {
    let fake = FakeModel::start(|_, _| Reply::Slow { n: 500, delay: Duration::from_millis(20) }).await;
    let s = TestServer::start().await;
    let (u, agent) = setup(&s, &fake, json!({})).await;
    let sid = start_session(&s, &u.key, &agent, "go").await["id"].as_str().unwrap().to_owned();
    let (st, _) = s.post(&format!("/v1/agents/{agent}/pause"), &u.key, json!({})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s.post("/v1/sessions", &u.key, json!({"agent_id": agent, "input": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert!(error_message(&v).contains("paused"), "{v}");
    // Stopping cancels what is in flight.
    let (st, _) = s.post(&format!("/v1/agents/{agent}/stop"), &u.key, json!({})).await;
    assert_eq!(st, StatusCode::OK);
    let events = wait_terminal(&s, &u.key, &sid, 1).await;
    assert_eq!(*types(&events).last().unwrap(), "run_cancelled");
}

#[tokio::test]
async fn bad_input_is_refused_and_starts_nothing() {
    let fake = FakeModel::start(|_, _| Reply::Text("hi".into())).await;
    let s = TestServer::start().await;
    let (u, agent) = setup(&s, &fake, json!({})).await;
    let bad_roles = s.post("/v1/sessions", &u.key, json!({"agent_id": agent, "input": [{"role": "system", "content": "x"}]})).await;
    assert_eq!((bad_roles.0, error_param(&bad_roles.1).as_deref()), (StatusCode::BAD_REQUEST, Some("input[0].role")));
    let empty = s.post("/v1/sessions", &u.key, json!({"agent_id": agent, "input": []})).await;
    assert_eq!(empty.0, StatusCode::BAD_REQUEST);
    // A model the provider does not offer, a provider that does not exist.
    let (_, other) =
        s.post("/v1/agents", &u.key, json!({"name": "other", "model": {"provider_id": "anthropic", "name": "claude-nope"}})).await;
    let (st, v) = s.post("/v1/sessions", &u.key, json!({"agent_id": other["id"], "input": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(error_message(&v).contains("claude-test"), "{v}");
    let (_, ghost) = s.post("/v1/agents", &u.key, json!({"name": "ghost", "model": {"provider_id": "nobody", "name": "m"}})).await;
    let (st, v) = s.post("/v1/sessions", &u.key, json!({"agent_id": ghost["id"], "input": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(error_message(&v).contains("POST /v1/providers"), "{v}");
    // An `after` id from another session.
    let a = start_session(&s, &u.key, &agent, "one").await;
    let b = start_session(&s, &u.key, &agent, "two").await;
    let events_a = wait_terminal(&s, &u.key, a["id"].as_str().unwrap(), 1).await;
    let foreign = events_a[0]["id"].as_str().unwrap();
    let (st, v) = s.get(&format!("/v1/sessions/{}/events?after={foreign}", b["id"].as_str().unwrap()), &u.key).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("after")));
    // A 50 MiB message.
    let huge = json!({"agent_id": agent, "input": [{"role": "user", "content": "x".repeat(50 * 1024 * 1024)}]});
    let res = s.http.post(format!("{}/v1/sessions", s.url)).bearer_auth(&u.key).json(&huge).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (_, list) = s.get(&format!("/v1/sessions?agent_id={agent}"), &u.key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "only the two valid sessions exist");
}

#[tokio::test]
async fn provider_failures_end_the_run_with_a_readable_error() {
    let fake = FakeModel::start(|_, i| match i {
        0 => Reply::Error { status: 400, message: "model is not allowed".into() },
        1 => Reply::Drop,
        _ => Reply::Garbage,
    })
    .await;
    let s = TestServer::start().await;
    let (u, agent) = setup(&s, &fake, json!({})).await;
    let sid = start_session(&s, &u.key, &agent, "x").await["id"].as_str().unwrap().to_owned();
    let events = wait_terminal(&s, &u.key, &sid, 1).await;
    let err = events.last().unwrap();
    assert_eq!(err["type"], "agent_error");
    assert!(err["data"]["message"].as_str().unwrap().contains("model is not allowed"), "{err}");
    assert_eq!(err["data"]["type"], "provider_error");
    let (st, _) = s.post(&format!("/v1/sessions/{sid}/messages"), &u.key, json!({"input": [{"role": "user", "content": "again"}]})).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let events = wait_terminal(&s, &u.key, &sid, 2).await;
    let err = events.last().unwrap();
    assert_eq!((err["type"].as_str(), err["data"]["type"].as_str()), (Some("agent_error"), Some("provider_interrupted")), "{err}");
    let (_, run) = s.get(&format!("/v1/runs/{}", err["data"]["run_id"].as_str().unwrap()), &u.key).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["type"], "provider_interrupted");
    // Garbage instead of an event stream.
    s.post(&format!("/v1/sessions/{sid}/messages"), &u.key, json!({"input": [{"role": "user", "content": "third"}]})).await;
    let events = wait_terminal(&s, &u.key, &sid, 3).await;
    let err = events.last().unwrap();
    assert_eq!((err["type"].as_str(), err["data"]["type"].as_str()), (Some("agent_error"), Some("provider_protocol")), "{err}");
}

#[tokio::test]
async fn max_turns_and_budget_stop_runs() {
    let fake =
        FakeModel::start(|_, _| Reply::Tool { id: format!("t{}", ulid::Ulid::new()), name: "current_time".into(), input: json!({}) }).await;
    let s = TestServer::start().await;
    let (u, agent) = setup(&s, &fake, json!({"max_turns": 2})).await;
    let sid = start_session(&s, &u.key, &agent, "loop").await["id"].as_str().unwrap().to_owned();
    let events = wait_terminal(&s, &u.key, &sid, 1).await;
    assert_eq!(events.last().unwrap()["data"]["stop_reason"], "max_turns");
    assert_eq!(fake.requests().len(), 2);
    // A budget of 30 tokens runs out during the second model call (20 tokens each).
    let (st, v) = s.post(&format!("/v1/agents/{agent}/balance"), &u.key, json!({"set": 30})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let sid = start_session(&s, &u.key, &agent, "loop again").await["id"].as_str().unwrap().to_owned();
    let events = wait_terminal(&s, &u.key, &sid, 1).await;
    assert_eq!(events.last().unwrap()["data"]["stop_reason"], "budget_exhausted", "{:?}", types(&events));
    let (_, a) = s.get(&format!("/v1/agents/{agent}"), &u.key).await;
    assert_eq!(a["state"], "error");
    assert!(a["token_balance"].as_i64().unwrap() <= 0);
    let (st, v) = s.post("/v1/sessions", &u.key, json!({"agent_id": agent, "input": [{"role": "user", "content": "more"}]})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
}

#[tokio::test]
async fn invoke_and_delegate_keys_are_confined() {
    let fake = FakeModel::start(|_, _| Reply::Text("hello".into())).await;
    let s = TestServer::start().await;
    let (u, agent) = setup(&s, &fake, json!({})).await;
    let (_, other) =
        s.post("/v1/agents", &u.key, json!({"name": "other", "model": {"provider_id": "anthropic", "name": "claude-test"}})).await;
    let mint = |kind: &str| json!({"name": kind, "kind": kind, "agent_id": agent});
    let invoke = s.post("/v1/api_keys", &u.key, mint("agent_invoke")).await.1["secret"].as_str().unwrap().to_owned();
    let delegate = s.post("/v1/api_keys", &u.key, mint("agent_delegate")).await.1["secret"].as_str().unwrap().to_owned();
    // Invoke: its agent only.
    let mine = start_session(&s, &invoke, &agent, "hi").await;
    let (st, _) = s.post("/v1/sessions", &invoke, json!({"agent_id": other["id"], "input": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let theirs = start_session(&s, &u.key, other["id"].as_str().unwrap(), "hi").await;
    assert_eq!(s.get(&format!("/v1/sessions/{}", theirs["id"].as_str().unwrap()), &invoke).await.0, StatusCode::NOT_FOUND);
    assert_eq!(s.get(&format!("/v1/sessions/{}", mine["id"].as_str().unwrap()), &invoke).await.0, StatusCode::OK);
    // Delegate: an end user is required, and end users never see each other's sessions.
    let (st, v) = s.post("/v1/sessions", &delegate, json!({"agent_id": agent, "input": [{"role": "user", "content": "x"}]})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("end_user")));
    let (st, a) = s
        .post("/v1/sessions", &delegate, json!({"agent_id": agent, "end_user": "alice", "input": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{a}");
    let aid = a["id"].as_str().unwrap();
    let as_user = |user: &str, path: String| {
        let (s, d, p) = (&s, delegate.clone(), path);
        let user = user.to_owned();
        async move { s.call_with(Method::GET, &p, Some(&d), None, &[("Steward-End-User", user.as_str())]).await }
    };
    assert_eq!(as_user("alice", format!("/v1/sessions/{aid}")).await.0, StatusCode::OK);
    assert_eq!(as_user("bob", format!("/v1/sessions/{aid}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(as_user("bob", format!("/v1/sessions/{aid}/events")).await.0, StatusCode::NOT_FOUND);
    let (_, bobs) = as_user("bob", "/v1/sessions".into()).await;
    assert_eq!(bobs["data"].as_array().unwrap().len(), 0, "{bobs}");
    let (_, alices) = as_user("alice", "/v1/sessions".into()).await;
    assert_eq!(alices["data"].as_array().unwrap().len(), 1);
    // Neither key manages anything.
    assert_eq!(s.get("/v1/agents", &delegate).await.0, StatusCode::FORBIDDEN);
    assert_eq!(s.get("/v1/runs", &invoke).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn messaging_surface_waits_for_replies_and_groups_conversations() {
    let fake = FakeModel::start(|req, _| {
        let n = req["messages"].as_array().unwrap().len();
        Reply::Text(format!("reply to {n} messages"))
    })
    .await;
    let s = TestServer::start().await;
    let (u, agent) = setup(&s, &fake, json!({})).await;
    let (st, r1) = s.post(&format!("/v1/agents/{agent}/messages"), &u.key, json!({"content": "hello", "counterparty": "slack:U1"})).await;
    assert_eq!(st, StatusCode::OK, "{r1}");
    assert_eq!((r1["status"].as_str(), r1["reply"].as_str()), (Some("completed"), Some("reply to 1 messages")));
    // Same counterparty: the same conversation continues.
    let (_, r2) = s.post(&format!("/v1/agents/{agent}/messages"), &u.key, json!({"content": "again", "counterparty": "slack:U1"})).await;
    assert_eq!(r2["conversation_id"], r1["conversation_id"]);
    assert_eq!(r2["reply"], "reply to 3 messages");
    let (_, r3) = s.post(&format!("/v1/agents/{agent}/messages"), &u.key, json!({"content": "hi", "counterparty": "slack:U2"})).await;
    assert_ne!(r3["conversation_id"], r1["conversation_id"]);
    let (_, msgs) = s.get(&format!("/v1/agents/{agent}/messages?counterparty=slack:U1"), &u.key).await;
    let roles: Vec<&str> = msgs["data"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"], "{msgs}");
    let (_, convs) = s.get(&format!("/v1/agents/{agent}/conversations"), &u.key).await;
    let cps: Vec<&str> = convs["data"].as_array().unwrap().iter().map(|c| c["counterparty"].as_str().unwrap()).collect();
    assert_eq!(cps, ["slack:U2", "slack:U1"], "{convs}");
    // The compatibility paths reach the same handlers; not waiting answers 202 at once.
    let (st, r4) = s.post(&format!("/v1/agent/{agent}/messages"), &u.key, json!({"content": "later", "wait": false})).await;
    // (A new conversation's run starts at once when this server has a free slot: `running`.)
    assert_eq!(st, StatusCode::ACCEPTED, "{r4}");
    assert!(matches!(r4["status"].as_str(), Some("queued" | "running")), "{r4}");
    let (st, _) = s.get(&format!("/v1/agent/{agent}/conversations"), &u.key).await;
    assert_eq!(st, StatusCode::OK);
    // Summary and readiness report real figures.
    wait_terminal(&s, &u.key, r4["conversation_id"].as_str().unwrap(), 1).await;
    let (_, sum) = s.get(&format!("/v1/agents/{agent}/summary"), &u.key).await;
    assert_eq!(sum["runs"]["completed"], 4, "{sum}");
    assert_eq!(sum["usage"], json!({"input_tokens": 48, "output_tokens": 32}));
    assert_eq!(sum["sessions"], 3);
    let (_, ready) = s.get(&format!("/v1/agents/{agent}/ready"), &u.key).await;
    assert_eq!(ready, json!({"ready": true, "reasons": []}));
    s.post(&format!("/v1/agents/{agent}/pause"), &u.key, json!({})).await;
    let (_, ready) = s.get(&format!("/v1/agent/{agent}/ready"), &u.key).await;
    assert_eq!(ready["ready"], false);
    assert!(ready["reasons"][0].as_str().unwrap().contains("paused"), "{ready}");
}

#[tokio::test]
async fn an_agent_switches_provider_by_configuration_alone() {
    let fake = FakeModel::start(|req, _| Reply::Text(format!("model {} here", req["model"].as_str().unwrap_or("?")))).await;
    let s = TestServer::start().await;
    let (u, agent) = setup(&s, &fake, json!({})).await;
    let (_, r) = s.post(&format!("/v1/agents/{agent}/messages"), &u.key, json!({"content": "who are you?"})).await;
    assert_eq!(r["reply"], "model claude-test here", "{r}");
    // A local OpenAI-compatible server (vLLM, llama.cpp, Ollama…) without a key.
    let (st, p) = s
        .post(
            "/v1/providers",
            &u.key,
            json!({"id": "local", "provider": "openai_compatible", "base_url": format!("{}/v1", fake.url), "models": ["llama-3"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let (st, _) = s.patch(&format!("/v1/agents/{agent}"), &u.key, json!({"model": {"provider_id": "local", "name": "llama-3"}})).await;
    assert_eq!(st, StatusCode::OK);
    let (_, r) = s.post(&format!("/v1/agents/{agent}/messages"), &u.key, json!({"content": "and now?"})).await;
    assert_eq!(r["reply"], "model llama-3 here", "{r}");
    let last = fake.requests().pop().unwrap();
    assert_eq!(last["messages"][0], json!({"role": "system", "content": "Be brief."}), "{last}");
    assert!(fake.headers().last().unwrap().get("authorization").is_none(), "no key configured, none sent");
    assert_eq!(r["usage"], json!({"input_tokens": 12, "output_tokens": 8}));
}

/// A burst of 1,000 concurrent `POST /v1/sessions` at a paused agent: every one is refused with
/// the same 409 as a single request, and the store holds no session and no run for the agent.
async fn paused_burst_creates_nothing(backend: common::Backend) {
    let fake = FakeModel::start(|_, _| Reply::Text("never".into())).await;
    let Some(s) = TestServer::start_on(backend).await else { return };
    let (u, agent) = setup(&s, &fake, json!({})).await;
    let (st, v) = s.post(&format!("/v1/agents/{agent}/pause"), &u.key, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let expected = json!({"error": {
        "type": "conflict",
        "message": format!("agent {agent} is paused; resume it (POST /v1/agents/{agent}/resume) to send it work"),
    }});
    let body = json!({"agent_id": agent, "input": [{"role": "user", "content": "hi"}]});
    let answers: Vec<(StatusCode, Value)> = futures::stream::iter(0..1000)
        .map(|_| {
            let (http, url, key, body) = (s.http.clone(), format!("{}/v1/sessions", s.url), u.key.clone(), body.clone());
            async move {
                let res = http.post(url).bearer_auth(key).json(&body).send().await.unwrap();
                (res.status(), res.json::<Value>().await.unwrap())
            }
        })
        .buffer_unordered(200)
        .collect()
        .await;
    assert_eq!(answers.len(), 1000);
    for (st, v) in &answers {
        assert_eq!((*st, v), (StatusCode::CONFLICT, &expected));
    }
    let agent_id = steward_core::ids::AgentId::from_trusted(agent.clone());
    let page = steward_store::PageRequest { limit: 100, before: None };
    let sessions = steward_store::SessionFilter { agent_id: Some(agent_id.clone()), ..Default::default() };
    assert!(s.store.sessions(&u.sandbox_id, &sessions, &page).await.unwrap().items.is_empty(), "no session was created");
    let runs = steward_store::RunFilter { agent_id: Some(agent_id), session_id: None, status: None, since: None, viewer: None };
    assert!(s.store.runs(&u.sandbox_id, &runs, &page).await.unwrap().items.is_empty(), "no run was created");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_burst_of_admissions_into_a_paused_agent_creates_nothing_sqlite() {
    paused_burst_creates_nothing(common::Backend::Sqlite).await;
}

#[tokio::test]
async fn a_burst_of_admissions_into_a_paused_agent_creates_nothing_postgres() {
    paused_burst_creates_nothing(common::Backend::Postgres).await;
}
