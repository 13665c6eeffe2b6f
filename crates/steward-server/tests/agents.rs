//! Agents over HTTP (§3, §14): versions, partial updates, pagination, states, archive, delete,
//! and the compatibility paths reaching the same handlers.

mod common;

use std::collections::BTreeSet;

use common::{TestServer, agent_body, error_message, error_param};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn partial_update_changes_only_present_fields_and_versions_are_immutable() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let a = s.agent(&u.key, "support").await;
    assert_eq!(a["version"], 1);
    assert_eq!(a["state"], "active");
    let path = format!("/v1/agents/{}", id(&a));

    let (st, b) = s.patch(&path, &u.key, json!({"max_turns": 30, "temperature": null})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["version"], 2);
    assert_eq!(b["max_turns"], 30);
    assert_eq!(b["temperature"], Value::Null);
    for unchanged in ["name", "description", "model", "system_prompt", "tools", "max_output_tokens", "metadata"] {
        assert_eq!(a[unchanged], b[unchanged], "{unchanged} changed");
    }
    // Version 1 is untouched.
    let (st, v1) = s.get(&format!("{path}/versions/1"), &u.key).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v1["max_turns"], 15);
    assert_eq!(v1["temperature"], 0.2);
    let (_, versions) = s.get(&format!("{path}/versions"), &u.key).await;
    let nums: Vec<i64> = versions["data"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(nums, vec![2, 1]);
    let (st, v) = s.get(&format!("{path}/versions/9"), &u.key).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(error_message(&v).contains("version 2"));
    let (st, _) = s.get(&format!("{path}/versions/abc"), &u.key).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Identical values: no new version.
    let (_, same) = s.patch(&path, &u.key, json!({"max_turns": 30})).await;
    assert_eq!(same["version"], 2);
    // Null for a non-nullable field, an empty patch, an invalid value: 400, nothing changes.
    let (st, v) = s.patch(&path, &u.key, json!({"name": null})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("name")));
    let (st, _) = s.patch(&path, &u.key, json!({})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, v) = s.patch(&path, &u.key, json!({"max_turns": 5, "model": {"provider_id": "openai", "name": ""}})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("model.name")));
    let (_, now) = s.get(&path, &u.key).await;
    assert_eq!((now["version"].as_i64(), now["max_turns"].as_i64()), (Some(2), Some(30)));
}

#[tokio::test]
async fn names_are_unique_among_live_agents() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let a = s.agent(&u.key, "support").await;
    let (st, v) = s.post("/v1/agents", &u.key, agent_body("support")).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::CONFLICT, Some("name")));
    let b = s.agent(&u.key, "billing").await;
    let (st, v) = s.patch(&format!("/v1/agents/{}", id(&b)), &u.key, json!({"name": "support"})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    // Archiving frees the name; the archived agent is listed only with archived=true.
    let (st, archived) = s.post(&format!("/v1/agents/{}/archive", id(&a)), &u.key, json!({})).await;
    assert_eq!(st, StatusCode::OK);
    assert!(archived["archived_at"].is_string());
    s.agent(&u.key, "support").await;
    let (_, live) = s.get("/v1/agents", &u.key).await;
    assert_eq!(live["data"].as_array().unwrap().len(), 2);
    let (_, old) = s.get("/v1/agents?archived=true", &u.key).await;
    assert_eq!(old["data"][0]["id"], a["id"]);
    // An archived agent cannot change.
    let (st, _) = s.patch(&format!("/v1/agents/{}", id(&a)), &u.key, json!({"max_turns": 3})).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = s.post(&format!("/v1/agents/{}/pause", id(&a)), &u.key, json!({})).await;
    assert_eq!(st, StatusCode::CONFLICT);
}

#[tokio::test]
async fn cursor_pagination_returns_everything_once() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let mut made = BTreeSet::new();
    for i in 0..7 {
        made.insert(id(&s.agent(&u.key, &format!("agent-{i}")).await));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("/v1/agents?limit=3&cursor={c}"),
            None => "/v1/agents?limit=3".to_owned(),
        };
        let (st, page) = s.get(&q, &u.key).await;
        assert_eq!(st, StatusCode::OK);
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 3);
        seen.extend(data.iter().map(id));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), made);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
}

#[tokio::test]
async fn state_transitions_are_enforced() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let a = s.agent(&u.key, "support").await;
    let p = format!("/v1/agents/{}", id(&a));
    let step = |action: &'static str| {
        let (s, p, k) = (&s, p.clone(), u.key.clone());
        async move { s.post(&format!("{p}/{action}"), &k, json!({})).await }
    };
    let (st, v) = step("pause").await;
    assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some("paused")));
    let (st, v) = step("pause").await;
    assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some("paused")), "pausing twice is a no-op");
    let (st, v) = step("stop").await;
    assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some("stopped")));
    let (st, v) = step("pause").await;
    assert_eq!(st, StatusCode::CONFLICT, "stopped → paused is illegal: {v}");
    assert!(error_message(&v).contains("resume"));
    let (st, v) = step("resume").await;
    assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some("active")));
    let (st, v) = s.post(&format!("{p}/status"), &u.key, json!({"state": "error"})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("reason")));
    let (st, v) = s.post(&format!("{p}/status"), &u.key, json!({"state": "error", "reason": "provider key rejected"})).await;
    assert_eq!((st, v["state"].as_str(), v["state_reason"].as_str()), (StatusCode::OK, Some("error"), Some("provider key rejected")));
    let (st, _) = step("pause").await;
    assert_eq!(st, StatusCode::CONFLICT, "error → paused is illegal");
    let (st, v) = s.post(&format!("{p}/status"), &u.key, json!({"state": "sleeping"})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("state")));
    let (st, v) = step("resume").await;
    assert_eq!((st, v["state"].as_str(), &v["state_reason"]), (StatusCode::OK, Some("active"), &Value::Null));
    // State changes do not create versions.
    assert_eq!(v["version"], 1);
}

#[tokio::test]
async fn hard_delete_needs_owner_and_removes_versions() {
    let s = TestServer::start().await;
    let owner = s.user("ada@example.com").await;
    let editor = s.member("ed@example.com", &owner.sandbox_id, steward_core::tenancy::Role::Editor).await;
    let a = s.agent(&editor.key, "support").await;
    let p = format!("/v1/agents/{}", id(&a));
    let (st, v) = s.call(Method::DELETE, &p, Some(&editor.key), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(error_message(&v).contains("owner"));
    let (st, v) = s.call(Method::DELETE, &p, Some(&owner.key), None).await;
    assert_eq!((st, &v["deleted"]), (StatusCode::OK, &json!(true)));
    assert_eq!(s.get(&p, &owner.key).await.0, StatusCode::NOT_FOUND);
    assert_eq!(s.get(&format!("{p}/versions/1"), &owner.key).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn compatibility_paths_reach_the_same_handlers() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let (st, a) = s.post("/v1/agent/create", &u.key, agent_body("support")).await;
    assert_eq!(st, StatusCode::CREATED, "{a}");
    let aid = id(&a);
    let (_, listed) = s.get("/v1/agent/list", &u.key).await;
    assert_eq!(listed["data"][0]["id"], a["id"]);
    let (_, got) = s.get(&format!("/v1/agent/{aid}"), &u.key).await;
    let (_, native) = s.get(&format!("/v1/agents/{aid}"), &u.key).await;
    assert_eq!(got, native);
    let (st, up) = s.post(&format!("/v1/agent/update/{aid}"), &u.key, json!({"system_prompt": "New."})).await;
    assert_eq!((st, up["version"].as_i64(), up["system_prompt"].as_str()), (StatusCode::OK, Some(2), Some("New.")));
    for (action, state) in [("pause", "paused"), ("resume", "active"), ("stop", "stopped"), ("resume", "active")] {
        let (st, v) = s.post(&format!("/v1/agent/{aid}/{action}"), &u.key, json!({})).await;
        assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some(state)), "{action}");
    }
    let (st, v) = s.post(&format!("/v1/agent/{aid}/status"), &u.key, json!({"state": "paused"})).await;
    assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some("paused")));
    let (st, _) = s.post(&format!("/v1/agent/delete/{aid}"), &u.key, json!({})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s.get(&format!("/v1/agents/{aid}"), &u.key).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sandboxes_grants_and_archive() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let (st, sb) = s.post("/v1/sandboxes", &u.key, json!({"name": "team"})).await;
    assert_eq!((st, sb["role"].as_str()), (StatusCode::CREATED, Some("owner")));
    let sid = id(&sb);
    // Share with a new address: the account is created so they can log in.
    let (st, g) =
        s.post(&format!("/v1/sandboxes/{sid}/grants"), &u.key, json!({"email": "New.Person@Example.com", "role": "viewer"})).await;
    assert_eq!((st, g["email"].as_str()), (StatusCode::CREATED, Some("new.person@example.com")));
    let (st, v) = s.post(&format!("/v1/sandboxes/{sid}/grants"), &u.key, json!({"email": "x@example.com", "role": "owner"})).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("role")));
    let (_, grants) = s.get(&format!("/v1/sandboxes/{sid}/grants"), &u.key).await;
    assert_eq!(grants["data"].as_array().unwrap().len(), 2);
    let (st, v) = s.call(Method::DELETE, &format!("/v1/sandboxes/{sid}/grants/{}", u.account_id), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::CONFLICT, "the owner cannot be removed: {v}");
    let (st, _) =
        s.call(Method::DELETE, &format!("/v1/sandboxes/{sid}/grants/{}", g["account_id"].as_str().unwrap()), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::OK);
    // Archived sandboxes are read-only.
    let h = [("Steward-Sandbox", sid.as_str())];
    let (st, _) = s.call_with(Method::POST, "/v1/agents", Some(&u.key), Some(agent_body("a")), &h).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = s.post(&format!("/v1/sandboxes/{sid}/archive"), &u.key, json!({})).await;
    assert_eq!((st, v["archived_at"].is_string()), (StatusCode::OK, true));
    let (st, v) = s.call_with(Method::POST, "/v1/agents", Some(&u.key), Some(agent_body("b")), &h).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(s.call_with(Method::GET, "/v1/agents", Some(&u.key), None, &h).await.0, StatusCode::OK);
    let (_, archived) = s.get("/v1/sandboxes?archived=true", &u.key).await;
    assert_eq!(archived["data"][0]["id"], sid.as_str());
    let (st, _) = s.call(Method::DELETE, &format!("/v1/sandboxes/{sid}"), Some(&u.key), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s.get(&format!("/v1/sandboxes/{sid}"), &u.key).await.0, StatusCode::NOT_FOUND);
}

/// Concurrent PATCHes of one agent each re-read and re-apply after losing the compare-and-set
/// (`routes::update_with_retry`): all answer 200 and none undoes another's field.
#[tokio::test]
async fn concurrent_patches_all_land() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let a = s.agent(&u.key, "support").await;
    let path = format!("/v1/agents/{}", id(&a));
    let patches = [
        json!({"max_turns": 7}),
        json!({"description": "raced"}),
        json!({"system_prompt": "Answer in haiku."}),
        json!({"max_output_tokens": 1234}),
    ];
    let answers = futures::future::join_all(patches.iter().map(|p| s.patch(&path, &u.key, p.clone()))).await;
    for (st, v) in &answers {
        assert_eq!(*st, StatusCode::OK, "{v}");
    }
    let (_, now) = s.get(&path, &u.key).await;
    assert_eq!(now["version"], 5, "{now}");
    assert_eq!(
        (&now["max_turns"], &now["description"], &now["system_prompt"], &now["max_output_tokens"]),
        (&json!(7), &json!("raced"), &json!("Answer in haiku."), &json!(1234)),
        "{now}"
    );
}

/// A request that reaches a closed store (the server is shutting down) answers 503 with a
/// message saying so — never 409 (a conflict the caller would try to resolve) or 500.
#[tokio::test]
async fn a_request_while_the_store_is_closed_answers_503() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let a = s.agent(&u.key, "support").await;
    let (st, t) = s.post(&format!("/v1/agents/{}/triggers", id(&a)), &u.key, json!({"name": "gh"})).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let trigger = t["id"].as_str().unwrap().to_owned();
    s.store.close().await;
    let requests = [
        (Method::GET, "/v1/agents".to_owned(), Some(u.key.as_str()), None),
        (Method::PATCH, format!("/v1/agents/{}", id(&a)), Some(u.key.as_str()), Some(json!({"max_turns": 3}))),
        (Method::POST, format!("/v1/webhooks/triggers/{trigger}"), None, Some(json!({"action": "opened"}))),
    ];
    for (method, path, key, body) in requests {
        let (st, v) = s.call(method.clone(), &path, key, body).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{method} {path}: {v}");
        assert_eq!(v["error"]["type"], "unavailable", "{v}");
        assert!(error_message(&v).contains("shutting down"), "{method} {path}: {v}");
    }
}
