//! Email one-time-code login, session tokens, health, metrics and the OpenAPI document.

mod common;

use common::{TestServer, error_message};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn codes_in_mail_log(s: &TestServer, email: &str) -> Vec<String> {
    let log = std::fs::read_to_string(s.data_dir.join("mail.log")).unwrap_or_default();
    log.lines().filter(|l| l.contains(&format!("to={email} "))).filter_map(|l| l.split("code=").nth(1)).map(str::to_owned).collect()
}

async fn start(s: &TestServer, email: &str) -> StatusCode {
    s.call(Method::POST, "/v1/auth/email/start", None, Some(json!({"email": email}))).await.0
}

async fn verify(s: &TestServer, email: &str, code: &str) -> (StatusCode, Value) {
    s.call(Method::POST, "/v1/auth/email/verify", None, Some(json!({"email": email, "code": code}))).await
}

#[tokio::test]
async fn code_login_yields_a_short_lived_session_token() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    assert_eq!(start(&s, "Ada@Example.com").await, StatusCode::ACCEPTED);
    let codes = codes_in_mail_log(&s, "ada@example.com");
    assert_eq!(codes.len(), 1, "{:?}", std::fs::read_to_string(s.data_dir.join("mail.log")));
    let code = &codes[0];
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (st, v) = verify(&s, "ada@example.com", wrong).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(error_message(&v).contains("4 attempts left"), "{v}");
    let (st, v) = verify(&s, "ada@example.com", code).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    assert_eq!(v["account_id"], u.account_id.as_str());
    // Single use.
    assert_eq!(verify(&s, "ada@example.com", code).await.0, StatusCode::UNAUTHORIZED);
    // The token works as Bearer, and without a Steward-Sandbox header uses the owned sandbox.
    let (st, me) = s.get("/v1/me", &token).await;
    assert_eq!((st, me["credential"].as_str()), (StatusCode::OK, Some("session")));
    let (st, _) = s.post("/v1/agents", &token, common::agent_body("support")).await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, agents) = s.get("/v1/agents", &u.key).await;
    assert_eq!(agents["data"].as_array().unwrap().len(), 1);
    // …until it expires.
    s.clock.advance_ms(3601 * 1000);
    let (st, v) = s.get("/v1/me", &token).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(error_message(&v).contains("expired"));
}

#[tokio::test]
async fn codes_lock_expire_and_do_not_reveal_accounts() {
    let s = TestServer::start().await;
    s.user("ada@example.com").await;
    // Unknown address: the same answer, no code sent, a note for the operator.
    assert_eq!(start(&s, "nobody@example.com").await, StatusCode::ACCEPTED);
    assert!(codes_in_mail_log(&s, "nobody@example.com").is_empty());
    let (st, _) = verify(&s, "nobody@example.com", "123456").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Five wrong guesses lock the code.
    assert_eq!(start(&s, "ada@example.com").await, StatusCode::ACCEPTED);
    let code = codes_in_mail_log(&s, "ada@example.com").pop().unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_eq!(verify(&s, "ada@example.com", wrong).await.0, StatusCode::UNAUTHORIZED);
    }
    let (st, v) = verify(&s, "ada@example.com", &code).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a locked code must not work: {v}");
    // Expiry.
    assert_eq!(start(&s, "ada@example.com").await, StatusCode::ACCEPTED);
    let code = codes_in_mail_log(&s, "ada@example.com").pop().unwrap();
    s.clock.advance_ms(11 * 60 * 1000);
    assert_eq!(verify(&s, "ada@example.com", &code).await.0, StatusCode::UNAUTHORIZED);
    // Rate limit: 5 codes per 15 minutes.
    for _ in 0..5 {
        start(&s, "ada@example.com").await;
    }
    let res = s.http.post(format!("{}/v1/auth/email/start", s.url)).json(&json!({"email": "ada@example.com"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    // Bad input.
    let (st, v) = s.call(Method::POST, "/v1/auth/email/start", None, Some(json!({"email": "not-an-email"}))).await;
    assert_eq!((st, v["error"]["param"].as_str()), (StatusCode::BAD_REQUEST, Some("email")));
    let (st, v) = verify(&s, "ada@example.com", "12ab").await;
    assert_eq!((st, v["error"]["param"].as_str()), (StatusCode::BAD_REQUEST, Some("code")));
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let (st, v) = s.call(Method::GET, "/health", None, None).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"ok": true})));
    assert_eq!(s.call(Method::GET, "/metrics", None, None).await.0, StatusCode::UNAUTHORIZED);
    s.get("/v1/agents", &u.key).await;
    let (st, text) = s.get("/metrics", &u.key).await;
    assert_eq!(st, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(text.contains("steward_http_requests_total{method=\"GET\",route=\"/v1/agents\",status=\"200\"} 1"), "{text}");
    let (st, doc) = s.get("/v1/openapi.json", &u.key).await;
    assert_eq!(st, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    // No credential needed (it holds no tenant data), and none is demanded in the document.
    assert_eq!(s.call(Method::GET, "/v1/openapi.json", None, None).await, (StatusCode::OK, doc.clone()));
    assert_eq!(doc["paths"]["/v1/openapi.json"]["get"]["security"], json!([{}]), "{}", doc["paths"]["/v1/openapi.json"]);
    assert!(doc["paths"]["/v1/openapi.json"]["get"]["responses"].get("401").is_none());
    assert_eq!(doc, serde_json::to_value(steward_server::openapi()).unwrap(), "served document = generated document");
    // Every operation documents its error shape — except the document itself, which is public,
    // takes no input and is served from memory, so it has no error to document.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if path == "/v1/openapi.json" {
                assert_eq!(op["responses"].as_object().unwrap().keys().collect::<Vec<_>>(), ["200"], "{op}");
                continue;
            }
            assert!(op["responses"].as_object().unwrap().len() >= 2, "{method} {path} documents only one response");
        }
    }
}
