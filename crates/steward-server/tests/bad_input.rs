//! Bad input, one test per class (§2): each gets a clear error in the §2 shape, names the field
//! where there is one, and changes nothing.

mod common;

use common::{TestServer, agent_body, error_message, error_param};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn agent_count(s: &TestServer, key: &str) -> usize {
    let (st, v) = s.get("/v1/agents?limit=100", key).await;
    assert_eq!(st, StatusCode::OK);
    v["data"].as_array().unwrap().len()
}

async fn raw(s: &TestServer, method: Method, path: &str, key: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let res = s
        .http
        .request(method, format!("{}{}", s.url, path))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let st = res.status();
    (st, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_json_is_refused_with_its_position() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    for body in [&b"{\"name\": \"x\","[..], b"not json", b"{\"name\": 'single'}", b"", b"[1,2"] {
        let (st, v) = raw(&s, Method::POST, "/v1/agents", &u.key, "application/json", body.to_vec()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        let msg = error_message(&v);
        assert!(msg.contains("JSON") || msg.contains("empty"), "{msg}");
    }
    assert_eq!(agent_count(&s, &u.key).await, 0);
}

#[tokio::test]
async fn unknown_fields_are_named() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let mut body = agent_body("support");
    body["max_turn"] = json!(3);
    let (st, v) = s.post("/v1/agents", &u.key, body).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&v).as_deref(), Some("max_turn"), "{v}");
    let mut body = agent_body("support");
    body["model"]["temperature"] = json!(1);
    let (st, v) = s.post("/v1/agents", &u.key, body).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&v).as_deref(), Some("model.temperature"), "{v}");
    let (st, v) = s.call(Method::GET, "/v1/agents?limt=5", Some(&u.key), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_message(&v).contains("limt"), "{v}");
    assert_eq!(agent_count(&s, &u.key).await, 0);
}

#[tokio::test]
async fn wrong_types_and_out_of_range_values_name_the_field() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("max_turns", json!("fifteen"), "max_turns"),
        ("max_turns", json!(-1), "max_turns"),
        ("max_turns", json!(0), "max_turns"),
        ("temperature", json!(7.5), "temperature"),
        ("tools", json!("search"), "tools"),
        ("metadata", json!({"team": 3}), "metadata.team"),
        ("model", json!({"provider_id": "anthropic"}), "model"),
        ("name", json!("Has Spaces"), "name"),
        ("tool_sources", json!(["agt_01m842thprsqmz8yahe4zdkgq7"]), "tool_sources[0]"),
    ];
    for (field, value, param) in cases {
        let mut body = agent_body("support");
        body[field] = value.clone();
        let (st, v) = s.post("/v1/agents", &u.key, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{field}={value}: {v}");
        assert_eq!(error_param(&v).as_deref(), Some(param), "{field}={value}: {v}");
    }
    let (st, v) = s.call(Method::GET, "/v1/agents?limit=abc", Some(&u.key), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_param(&v).as_deref(), Some("limit"), "{v}");
    let (st, v) = s.call(Method::GET, "/v1/agents?limit=1000", Some(&u.key), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_param(&v).as_deref(), Some("limit"));
    let (st, v) = s.call(Method::GET, "/v1/agents?cursor=bm9wZQ", Some(&u.key), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_param(&v).as_deref(), Some("cursor"));
    assert_eq!(agent_count(&s, &u.key).await, 0);
}

#[tokio::test]
async fn oversized_bodies_get_413_and_wrong_media_types_415() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let mut body = agent_body("support");
    body["system_prompt"] = json!("x".repeat(2 * 1024 * 1024));
    let (st, v) = raw(&s, Method::POST, "/v1/agents", &u.key, "application/json", serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(error_message(&v).contains("KiB"));
    // Under the body cap but over the field's own limit: 400 naming the field.
    body["system_prompt"] = json!("x".repeat(300_000));
    let (st, v) = s.post("/v1/agents", &u.key, body).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&v).as_deref(), Some("system_prompt"));
    let (st, v) = raw(&s, Method::POST, "/v1/agents", &u.key, "text/plain", serde_json::to_vec(&agent_body("support")).unwrap()).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    error_message(&v);
    assert_eq!(agent_count(&s, &u.key).await, 0);
}

#[tokio::test]
async fn ids_of_the_wrong_kind_say_which_kind_was_expected() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let (st, v) = s.get(&format!("/v1/agents/{}", u.sandbox_id), &u.key).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let msg = error_message(&v);
    assert!(msg.contains("sandbox id") && msg.contains("agent id"), "{msg}");
    let (st, v) = s.get("/v1/sandboxes/agt_01m842thprsqmz8yahe4zdkgq7", &u.key).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) = s.get("/v1/agents/..%2F..%2Fetc%2Fpasswd", &u.key).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) = s.call_with(Method::GET, "/v1/agents", Some(&u.key), None, &[("Steward-Sandbox", "nope")]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_param(&v).as_deref(), Some("Steward-Sandbox"));
    let (st, v) = s.post("/v1/api_keys", &u.key, json!({"name": "k", "kind": "agent_invoke", "agent_id": u.sandbox_id})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_param(&v).as_deref(), Some("agent_id"));
}

#[tokio::test]
async fn other_tenants_ids_in_bodies_are_not_found() {
    let s = TestServer::start().await;
    let victim = s.user("victim@example.com").await;
    let agent = s.agent(&victim.key, "secret-agent").await;
    let attacker = s.user("mallory@example.com").await;
    // Mint a key bound to someone else's agent.
    let (st, v) = s.post("/v1/api_keys", &attacker.key, json!({"name": "k", "kind": "agent_invoke", "agent_id": agent["id"]})).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    // Create an agent in someone else's sandbox by naming it in the body.
    let mut body = agent_body("intruder");
    body["sandbox_id"] = json!(victim.sandbox_id);
    let (st, v) = s.post("/v1/agents", &attacker.key, body).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    // The same answer as for an id that never existed.
    let (st2, v2) = s.get("/v1/agents/agt_01m842thprsqmz8yahe4zdkgq7", &attacker.key).await;
    let (st1, v1) = s.get(&format!("/v1/agents/{}", agent["id"].as_str().unwrap()), &attacker.key).await;
    assert_eq!((st1, st2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(v1["error"]["type"], v2["error"]["type"]);
    assert_eq!(agent_count(&s, &victim.key).await, 1);
}

#[tokio::test]
async fn bad_credentials_are_401_with_a_way_forward() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let cases: Vec<(Option<&str>, &str)> = vec![
        (None, "needs an API key"),
        (Some("stw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "not recognised"),
        (Some("garbage"), "neither"),
        (Some("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"), "signature"),
    ];
    for (key, expect) in cases {
        let (st, v) = s.call(Method::GET, "/v1/agents", key, None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{key:?}: {v}");
        let msg = error_message(&v);
        assert!(msg.contains(expect), "{key:?}: {msg}");
    }
    let res = s.http.get(format!("{}/v1/agents", s.url)).header("authorization", format!("Basic {}", u.key)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers().get("www-authenticate").unwrap(), "Bearer");
}

#[tokio::test]
async fn revocation_is_immediate() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let (st, created) = s.post("/v1/api_keys", &u.key, json!({"name": "temp"})).await;
    assert_eq!(st, StatusCode::CREATED);
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("stw_"));
    assert_eq!(s.get("/v1/agents", &secret).await.0, StatusCode::OK);
    // Listed without its value.
    let (_, list) = s.get("/v1/api_keys", &u.key).await;
    assert!(!list.to_string().contains(&secret));
    assert!(list.to_string().contains(created["prefix"].as_str().unwrap()));
    let (st, v) = s.post(&format!("/v1/api_keys/{}/revoke", created["id"].as_str().unwrap()), &u.key, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["revoked_at"].is_string());
    let (st, v) = s.get("/v1/agents", &secret).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(error_message(&v).contains("revoked"));
    // Stored only as a hash: the plaintext appears nowhere in the database file.
    s.store.close().await;
    for f in std::fs::read_dir(&s.data_dir).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "plaintext key stored on disk");
    }
}

#[tokio::test]
async fn sql_ish_strings_are_data_not_code() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let evil = "x'); DROP TABLE agents; --";
    let (st, v) = s.post("/v1/sandboxes", &u.key, json!({"name": evil})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["name"], evil);
    let (st, v) = s.post("/v1/api_keys", &u.key, json!({"name": evil})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["name"], evil);
    let mut body = agent_body("ok");
    body["metadata"] = json!({"note": evil});
    body["description"] = json!(evil);
    let (st, v) = s.post("/v1/agents", &u.key, body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["description"], evil);
    let mut body = agent_body("ok");
    body["name"] = json!(evil);
    let (st, v) = s.post("/v1/agents", &u.key, body).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&v).as_deref(), Some("name"));
    let (st, v) = s.call(Method::GET, "/v1/agents?sandbox_id=sbx_%27%20OR%201%3D1%20--", Some(&u.key), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(agent_count(&s, &u.key).await, 1);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let (st, v) = s.get("/v1/nope", &u.key).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    error_message(&v);
    let (st, v) = s.call(Method::PUT, "/v1/agents", Some(&u.key), None).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    error_message(&v);
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_response() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let h = [("Idempotency-Key", "create-support-1")];
    let (st1, v1) = s.call_with(Method::POST, "/v1/agents", Some(&u.key), Some(agent_body("support")), &h).await;
    let (st2, v2) = s.call_with(Method::POST, "/v1/agents", Some(&u.key), Some(agent_body("support")), &h).await;
    assert_eq!(st1, StatusCode::CREATED);
    assert_eq!((st2, &v2), (st1, &v1), "a retry must get the first response");
    assert_eq!(agent_count(&s, &u.key).await, 1);
    // Same key, different request.
    let (st, v) = s.call_with(Method::POST, "/v1/agents", Some(&u.key), Some(agent_body("other")), &h).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Another credential's keys are its own.
    let other = s.user("bob@example.com").await;
    let (st, _) = s.call_with(Method::POST, "/v1/agents", Some(&other.key), Some(agent_body("support")), &h).await;
    assert_eq!(st, StatusCode::CREATED);
    // A key's secret is never stored for replay.
    let hk = [("Idempotency-Key", "key-1")];
    let (st, created) = s.call_with(Method::POST, "/v1/api_keys", Some(&u.key), Some(json!({"name": "once"})), &hk).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = s.call_with(Method::POST, "/v1/api_keys", Some(&u.key), Some(json!({"name": "once"})), &hk).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(error_message(&v).contains(created["id"].as_str().unwrap()));
    assert!(!v.to_string().contains(created["secret"].as_str().unwrap()));
    let (st, v) = s.call_with(Method::POST, "/v1/agents", Some(&u.key), Some(agent_body("x")), &[("Idempotency-Key", "")]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn invisible_and_direction_changing_characters_are_refused_in_names() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let rlo = "prod\u{202E}lanretni";
    let (st, v) = s.post("/v1/sandboxes", &u.key, json!({"name": rlo})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_param(&v).as_deref(), Some("name"));
    let msg = error_message(&v);
    assert!(msg.contains("U+202E RIGHT-TO-LEFT OVERRIDE") && msg.contains("remove it"), "{msg}");
    let (st, v) =
        s.call(Method::PATCH, &format!("/v1/sandboxes/{}", u.sandbox_id), Some(&u.key), Some(json!({"name": "a\u{200B}b"}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_message(&v).contains("U+200B ZERO WIDTH SPACE"), "{v}");
    let mut body = agent_body("support");
    body["description"] = json!("helps \u{2066}customers\u{2069}");
    let (st, v) = s.post("/v1/agents", &u.key, body).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_param(&v).as_deref(), Some("description"));
    let (st, v) = s.post("/v1/api_keys", &u.key, json!({"name": "\u{FEFF}ci"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_message(&v).contains("U+FEFF"), "{v}");
    let (st, v) = s.post("/v1/vaults", &u.key, json!({"name": "k", "description": "x\u{200F}", "secret": "s"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_message(&v).contains("U+200F RIGHT-TO-LEFT MARK"), "{v}");
    // Plain text in any script is fine, and nothing was created by the refusals.
    let (st, v) = s.post("/v1/sandboxes", &u.key, json!({"name": "فريق الدعم"})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(agent_count(&s, &u.key).await, 0);
}
