//! Vaults and model providers over HTTP (§8): CRUD flows, bad input, cross-sandbox references,
//! and the planted-secret test: a secret sent to the API appears in no response, no file of the
//! data directory and no log line.

mod common;

use common::{Backend, TestServer, User, error_message, error_param};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_core::ids::VaultId;
use steward_core::tenancy::Role;
use steward_runtime::vault::VaultCipher;
use steward_server::secrets::MasterKey;
use steward_test_support::log_capture::Captured;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

async fn vault(s: &TestServer, key: &str, name: &str, secret: &str) -> Value {
    let (st, v) = s.post("/v1/vaults", key, json!({"name": name, "secret": secret})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

async fn delete(s: &TestServer, path: &str, key: &str) -> (StatusCode, Value) {
    s.call(Method::DELETE, path, Some(key), None).await
}

/// The cipher the server uses, rebuilt from the master key in its data directory.
fn server_cipher(s: &TestServer) -> VaultCipher {
    let (master, _) = MasterKey::load_or_create(&s.data_dir.join("master.key")).unwrap();
    VaultCipher::new(master.derive("steward/vault/v1"))
}

async fn stored_secret(s: &TestServer, sandbox: &str, vault_id: &str) -> String {
    let sealed = s.store.vault_ciphertext(&VaultId::parse(vault_id, "id").unwrap()).await.unwrap().expect("the vault is stored");
    server_cipher(s).decrypt(sandbox, vault_id, &sealed).expect("decrypts").expose().to_owned()
}

async fn vault_crud_never_returns_the_secret_and_rotation_re_encrypts(backend: Backend) {
    let Some(s) = TestServer::start_on(backend).await else { return };
    let u = s.user("ada@example.com").await;
    let sbx = u.sandbox_id.to_string();
    let (st, v) = s.post("/v1/vaults", &u.key, json!({"name": "anthropic-key", "secret": "sk-one", "description": "prod"})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["created_at", "description", "id", "name", "sandbox_id", "updated_at"], "{v}");
    assert!(id(&v).starts_with("vlt_"));
    assert_eq!(
        (v["name"].as_str(), v["description"].as_str(), v["sandbox_id"].as_str()),
        (Some("anthropic-key"), Some("prod"), Some(&*sbx))
    );
    let path = format!("/v1/vaults/{}", id(&v));
    assert_eq!(stored_secret(&s, &sbx, &id(&v)).await, "sk-one");

    let (st, got) = s.get(&path, &u.key).await;
    assert_eq!((st, &got), (StatusCode::OK, &v));
    let second = vault(&s, &u.key, "openai-key", "sk-two").await;
    let (_, list) = s.get("/v1/vaults", &u.key).await;
    let ids: Vec<String> = list["data"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(ids, vec![id(&second), id(&v)], "newest first");

    s.clock.advance_ms(1_000);
    let (st, renamed) = s.patch(&path, &u.key, json!({"name": "claude-key", "description": ""})).await;
    assert_eq!(st, StatusCode::OK, "{renamed}");
    assert_eq!((renamed["name"].as_str(), renamed["description"].as_str()), (Some("claude-key"), Some("")));
    assert_ne!(renamed["updated_at"], v["updated_at"]);
    assert_eq!(stored_secret(&s, &sbx, &id(&v)).await, "sk-one", "a rename keeps the secret");
    let sealed_before = s.store.vault_ciphertext(&VaultId::parse(&id(&v), "id").unwrap()).await.unwrap();
    let (st, rotated) = s.patch(&path, &u.key, json!({"secret": "sk-one-rotated"})).await;
    assert_eq!(st, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["name"], "claude-key");
    assert_eq!(stored_secret(&s, &sbx, &id(&v)).await, "sk-one-rotated");
    assert_ne!(s.store.vault_ciphertext(&VaultId::parse(&id(&v), "id").unwrap()).await.unwrap(), sealed_before);

    // Deleting needs `owner`: an editor may create and rotate but not destroy.
    let editor = s.member("ed@example.com", &u.sandbox_id, Role::Editor).await;
    let (st, v2) = s.patch(&path, &editor.key, json!({"secret": "sk-by-editor"})).await;
    assert_eq!(st, StatusCode::OK, "{v2}");
    let (st, e) = delete(&s, &path, &editor.key).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    assert!(error_message(&e).contains("`owner`"));
    let (st, d) = delete(&s, &path, &u.key).await;
    assert_eq!((st, d), (StatusCode::OK, json!({"id": id(&v), "deleted": true})));
    let (st, e) = s.get(&path, &u.key).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(error_message(&e), format!("vault {} not found", id(&v)));
    assert_eq!(delete(&s, &path, &u.key).await.0, StatusCode::NOT_FOUND);
}

async fn provider_crud_with_defaults_partial_updates_and_slug_ids(backend: Backend) {
    let Some(s) = TestServer::start_on(backend).await else { return };
    let u = s.user("ada@example.com").await;
    let key = vault(&s, &u.key, "anthropic-key", "sk-ant").await;
    let body = json!({"id": "anthropic", "provider": "anthropic", "api_key_vault_id": id(&key), "models": ["claude-sonnet-4-6"]});
    let (st, p) = s.post("/v1/providers", &u.key, body).await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["api_key_vault_id", "base_url", "created_at", "id", "models", "provider", "sandbox_id", "updated_at"]);
    assert_eq!((p["id"].as_str(), p["base_url"].as_str()), (Some("anthropic"), Some("https://api.anthropic.com")));
    assert_eq!(p["api_key_vault_id"].as_str(), Some(id(&key).as_str()));
    assert_eq!(p["sandbox_id"].as_str(), Some(u.sandbox_id.as_str()));

    // No id: one is generated; openai_compatible needs (and keeps) its URL, minus trailing slashes.
    let (st, local) = s
        .post(
            "/v1/providers",
            &u.key,
            json!({"provider": "openai_compatible", "base_url": "http://127.0.0.1:8000/v1/", "models": ["llama-3"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{local}");
    assert!(id(&local).starts_with("prv_"), "{local}");
    assert_eq!(local["base_url"], "http://127.0.0.1:8000/v1");
    assert_eq!(local["api_key_vault_id"], Value::Null);
    let (_, g) = s.post("/v1/providers", &u.key, json!({"id": "gemini", "provider": "google", "models": ["gemini-2.5-pro"]})).await;
    assert_eq!(g["base_url"], "https://generativelanguage.googleapis.com/v1beta");

    // Listed by id, paged with a cursor (ids may hold `-`).
    let (_, page1) = s.get("/v1/providers?limit=2", &u.key).await;
    let first: Vec<String> = page1["data"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(first, vec!["anthropic".to_owned(), "gemini".to_owned()]);
    let cursor = page1["next_cursor"].as_str().expect("a second page");
    let (st, page2) = s.get(&format!("/v1/providers?limit=2&cursor={cursor}"), &u.key).await;
    assert_eq!(st, StatusCode::OK, "{page2}");
    assert_eq!(page2["data"].as_array().unwrap().iter().map(id).collect::<Vec<_>>(), vec![id(&local)]);
    assert_eq!(page2["next_cursor"], Value::Null);

    // Partial update: only present fields change; switching kind moves a default URL along.
    let path = "/v1/providers/anthropic";
    let (st, up) = s.patch(path, &u.key, json!({"models": ["claude-sonnet-4-6", "claude-haiku-4-5"]})).await;
    assert_eq!(st, StatusCode::OK, "{up}");
    assert_eq!(up["models"], json!(["claude-sonnet-4-6", "claude-haiku-4-5"]));
    assert_eq!((&up["base_url"], &up["api_key_vault_id"], &up["created_at"]), (&p["base_url"], &p["api_key_vault_id"], &p["created_at"]));
    let (_, switched) = s.patch(path, &u.key, json!({"provider": "openai", "models": ["gpt-5"]})).await;
    assert_eq!((switched["provider"].as_str(), switched["base_url"].as_str()), (Some("openai"), Some("https://api.openai.com/v1")));
    let (st, cleared) = s.patch(path, &u.key, json!({"api_key_vault_id": null})).await;
    assert_eq!((st, &cleared["api_key_vault_id"]), (StatusCode::OK, &Value::Null));
    assert_eq!(cleared["models"], json!(["gpt-5"]));
    let (_, same) = s.patch(path, &u.key, json!({"models": ["gpt-5"]})).await;
    assert_eq!(same, cleared, "a patch that changes nothing writes nothing");
    let (st, got) = s.get(path, &u.key).await;
    assert_eq!((st, got), (StatusCode::OK, cleared));

    // The id names it within the target sandbox: elsewhere it does not exist.
    let other = s.user("bob@example.com").await;
    let (st, e) = s.get(path, &other.key).await;
    assert_eq!((st, error_message(&e)), (StatusCode::NOT_FOUND, "provider anthropic not found".to_owned()));
    let (st, _) = s.get(&format!("{path}?sandbox_id={}", u.sandbox_id), &other.key).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.get(&format!("{path}?sandbox_id={}", u.sandbox_id), &u.key).await;
    assert_eq!(st, StatusCode::OK);

    // Deleting is an editor's call.
    let editor = s.member("ed@example.com", &u.sandbox_id, Role::Editor).await;
    let (st, d) = delete(&s, path, &editor.key).await;
    assert_eq!((st, d), (StatusCode::OK, json!({"id": "anthropic", "deleted": true})));
    assert_eq!(s.get(path, &u.key).await.0, StatusCode::NOT_FOUND);
    assert_eq!(delete(&s, path, &u.key).await.0, StatusCode::NOT_FOUND);
    assert_eq!(s.patch(path, &u.key, json!({"models": ["x"]})).await.0, StatusCode::NOT_FOUND);
}

async fn a_vault_in_use_cannot_be_deleted_and_the_conflict_names_the_provider(backend: Backend) {
    let Some(s) = TestServer::start_on(backend).await else { return };
    let u = s.user("ada@example.com").await;
    let key = vault(&s, &u.key, "key", "sk-in-use").await;
    let body = json!({"id": "local-vllm", "provider": "openai_compatible", "base_url": "http://10.0.0.7:8000/v1", "api_key_vault_id": id(&key), "models": ["qwen"]});
    assert_eq!(s.post("/v1/providers", &u.key, body).await.0, StatusCode::CREATED);
    let path = format!("/v1/vaults/{}", id(&key));
    let (st, e) = delete(&s, &path, &u.key).await;
    assert_eq!(st, StatusCode::CONFLICT, "{e}");
    assert!(error_message(&e).contains("`local-vllm`"), "{e}");
    assert_eq!(s.get(&path, &u.key).await.0, StatusCode::OK);
    assert_eq!(s.patch("/v1/providers/local-vllm", &u.key, json!({"api_key_vault_id": null})).await.0, StatusCode::OK);
    assert_eq!(delete(&s, &path, &u.key).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_vault_input_is_refused_naming_the_field_and_changes_nothing() {
    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let original = vault(&s, &u.key, "key", "sk-original").await;
    let huge = "s".repeat(64 * 1024 + 1);
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (json!({"name": "big", "secret": huge}), StatusCode::BAD_REQUEST, "secret"),
        (json!({"name": "empty", "secret": ""}), StatusCode::BAD_REQUEST, "secret"),
        (json!({"name": "nul", "secret": "a\u{0}b"}), StatusCode::BAD_REQUEST, "secret"),
        (json!({"name": "Not A Slug", "secret": "x"}), StatusCode::BAD_REQUEST, "name"),
        (json!({"name": "long-desc", "secret": "x", "description": "d".repeat(501)}), StatusCode::BAD_REQUEST, "description"),
        (json!({"name": "key", "secret": "x"}), StatusCode::CONFLICT, "name"),
        (json!({"name": "typo", "secret": "x", "secrte": "y"}), StatusCode::BAD_REQUEST, "secrte"),
        (json!({"name": "no-secret"}), StatusCode::BAD_REQUEST, "secret"),
    ];
    for (body, status, param) in cases {
        let (st, v) = s.post("/v1/vaults", &u.key, body.clone()).await;
        assert_eq!((st, error_param(&v).as_deref()), (status, Some(param)), "{v}");
        assert!(!v.to_string().contains(&huge[..100]), "the error quotes the secret");
    }
    let path = format!("/v1/vaults/{}", id(&original));
    let other = vault(&s, &u.key, "other", "sk-other").await;
    let patches: Vec<(Value, StatusCode, Option<&str>)> = vec![
        (json!({"secret": null}), StatusCode::BAD_REQUEST, Some("secret")),
        (json!({"secret": huge}), StatusCode::BAD_REQUEST, Some("secret")),
        (json!({"name": "other"}), StatusCode::CONFLICT, Some("name")),
        (json!({"name": null}), StatusCode::BAD_REQUEST, Some("name")),
        (json!({}), StatusCode::BAD_REQUEST, None),
    ];
    for (body, status, param) in patches {
        let (st, v) = s.patch(&path, &u.key, body.clone()).await;
        assert_eq!((st, error_param(&v).as_deref()), (status, param), "{body}: {v}");
    }
    let (st, v) = s.get("/v1/vaults/vlt_nope", &u.key).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("id")));
    let (_, list) = s.get("/v1/vaults", &u.key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (_, now) = s.get(&path, &u.key).await;
    assert_eq!(now, original);
    assert_eq!(stored_secret(&s, u.sandbox_id.as_str(), &id(&original)).await, "sk-original");
    assert_eq!(stored_secret(&s, u.sandbox_id.as_str(), &id(&other)).await, "sk-other");
}

async fn bad_provider_input_is_refused_naming_the_field_and_changes_nothing(backend: Backend) {
    let Some(s) = TestServer::start_on(backend).await else { return };
    let u = s.user("ada@example.com").await;
    let mine = vault(&s, &u.key, "key", "sk-mine").await;
    let stranger = s.user("eve@example.com").await;
    let theirs = vault(&s, &stranger.key, "key", "sk-theirs").await;
    let ok = || json!({"id": "main", "provider": "openai", "models": ["gpt-5"]});
    assert_eq!(s.post("/v1/providers", &u.key, ok()).await.0, StatusCode::CREATED);
    let with = |field: &str, value: Value| {
        let mut b = ok();
        b["id"] = json!("second");
        b[field] = value;
        b
    };
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (with("provider", json!("mistral")), StatusCode::BAD_REQUEST, "provider"),
        (with("base_url", json!("api.openai.com/v1")), StatusCode::BAD_REQUEST, "base_url"),
        (with("base_url", json!("https://user:pw@api.openai.com")), StatusCode::BAD_REQUEST, "base_url"),
        (with("base_url", json!("https://api.openai.com/v1?key=sk")), StatusCode::BAD_REQUEST, "base_url"),
        (with("base_url", json!("ftp://files.example.com")), StatusCode::BAD_REQUEST, "base_url"),
        (with("base_url", json!(format!("https://example.com/{}", "a".repeat(2048)))), StatusCode::BAD_REQUEST, "base_url"),
        (json!({"id": "local", "provider": "openai_compatible", "models": ["llama"]}), StatusCode::BAD_REQUEST, "base_url"),
        (with("models", json!(["gpt-5", "gpt-5"])), StatusCode::BAD_REQUEST, "models[1]"),
        (with("models", json!([])), StatusCode::BAD_REQUEST, "models"),
        (with("models", json!(["has space"])), StatusCode::BAD_REQUEST, "models[0]"),
        (with("id", json!("Main Provider")), StatusCode::BAD_REQUEST, "id"),
        (with("api_key_vault_id", json!("agt_01kaaaaaaaaaaaaaaaaaaaaaaa")), StatusCode::BAD_REQUEST, "api_key_vault_id"),
        (with("api_key_vault_id", json!(id(&theirs))), StatusCode::NOT_FOUND, "api_key_vault_id"),
        (with("api_key_vault_id", json!(VaultId::generate().to_string())), StatusCode::NOT_FOUND, "api_key_vault_id"),
        (ok(), StatusCode::CONFLICT, "id"),
    ];
    for (body, status, param) in cases {
        let (st, v) = s.post("/v1/providers", &u.key, body.clone()).await;
        assert_eq!((st, error_param(&v).as_deref()), (status, Some(param)), "{body}: {v}");
    }
    // Another sandbox's vault looks exactly like a missing one.
    let (_, theirs_err) = s.post("/v1/providers", &u.key, with("api_key_vault_id", json!(id(&theirs)))).await;
    let missing = VaultId::generate().to_string();
    let (_, missing_err) = s.post("/v1/providers", &u.key, with("api_key_vault_id", json!(missing))).await;
    assert_eq!(theirs_err.to_string().replace(&id(&theirs), "X"), missing_err.to_string().replace(&missing, "X"));

    let patches: Vec<(Value, StatusCode, Option<&str>)> = vec![
        (json!({"provider": "openai_compatible"}), StatusCode::BAD_REQUEST, Some("base_url")),
        (json!({"provider": null}), StatusCode::BAD_REQUEST, Some("provider")),
        (json!({"models": ["a", "a"]}), StatusCode::BAD_REQUEST, Some("models[1]")),
        (json!({"api_key_vault_id": id(&theirs)}), StatusCode::NOT_FOUND, Some("api_key_vault_id")),
        (json!({"id": "renamed"}), StatusCode::BAD_REQUEST, Some("id")),
        (json!({}), StatusCode::BAD_REQUEST, None),
    ];
    for (body, status, param) in patches {
        let (st, v) = s.patch("/v1/providers/main", &u.key, body.clone()).await;
        assert_eq!((st, error_param(&v).as_deref()), (status, param), "{body}: {v}");
    }
    let (st, v) = s.get("/v1/providers/Not%20A%20Slug", &u.key).await;
    assert_eq!((st, error_param(&v).as_deref()), (StatusCode::BAD_REQUEST, Some("id")));
    let (_, list) = s.get("/v1/providers", &u.key).await;
    assert_eq!(
        list["data"],
        json!([{
            "id": "main", "provider": "openai", "base_url": "https://api.openai.com/v1", "api_key_vault_id": null,
            "models": ["gpt-5"], "sandbox_id": u.sandbox_id.to_string(),
            "created_at": list["data"][0]["created_at"], "updated_at": list["data"][0]["created_at"],
        }])
    );
    assert_eq!(s.patch("/v1/providers/main", &u.key, json!({"api_key_vault_id": id(&mine)})).await.0, StatusCode::OK);
}

#[tokio::test]
async fn vault_crud_never_returns_the_secret_and_rotation_re_encrypts_sqlite() {
    vault_crud_never_returns_the_secret_and_rotation_re_encrypts(Backend::Sqlite).await;
}

#[tokio::test]
async fn vault_crud_never_returns_the_secret_and_rotation_re_encrypts_postgres() {
    vault_crud_never_returns_the_secret_and_rotation_re_encrypts(Backend::Postgres).await;
}

#[tokio::test]
async fn provider_crud_with_defaults_partial_updates_and_slug_ids_sqlite() {
    provider_crud_with_defaults_partial_updates_and_slug_ids(Backend::Sqlite).await;
}

#[tokio::test]
async fn provider_crud_with_defaults_partial_updates_and_slug_ids_postgres() {
    provider_crud_with_defaults_partial_updates_and_slug_ids(Backend::Postgres).await;
}

#[tokio::test]
async fn a_vault_in_use_cannot_be_deleted_and_the_conflict_names_the_provider_sqlite() {
    a_vault_in_use_cannot_be_deleted_and_the_conflict_names_the_provider(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_vault_in_use_cannot_be_deleted_and_the_conflict_names_the_provider_postgres() {
    a_vault_in_use_cannot_be_deleted_and_the_conflict_names_the_provider(Backend::Postgres).await;
}

#[tokio::test]
async fn bad_provider_input_is_refused_naming_the_field_and_changes_nothing_sqlite() {
    bad_provider_input_is_refused_naming_the_field_and_changes_nothing(Backend::Sqlite).await;
}

#[tokio::test]
async fn bad_provider_input_is_refused_naming_the_field_and_changes_nothing_postgres() {
    bad_provider_input_is_refused_naming_the_field_and_changes_nothing(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// The planted secret

/// Fills the path parameters of `template` from the world, or `None` for routes this test has
/// no fixture for (they belong to other resources and are covered by their own tests).
fn fill(template: &str, sandbox: &str, agent: &str, vault: &str, provider: &str) -> Option<String> {
    let mut out = String::new();
    for seg in template.split('/').skip(1) {
        let value = match seg {
            "{id}" if template.starts_with("/v1/sandboxes/") => sandbox,
            "{id}" if template.starts_with("/v1/agents/") || template.starts_with("/v1/agent/") => agent,
            "{id}" if template.starts_with("/v1/vaults/") => vault,
            "{id}" if template.starts_with("/v1/providers/") => provider,
            "{version}" => "1",
            s if s.starts_with('{') => return None,
            s => s,
        };
        out.push('/');
        out.push_str(value);
    }
    Some(out)
}

fn assert_absent(what: &str, haystack: &[u8], secrets: &[&str]) {
    for secret in secrets {
        assert!(!haystack.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret appears in {what}");
    }
}

async fn planted_world(s: &TestServer, u: &User, secrets: &[&str]) -> (Vec<(String, Value)>, String, String) {
    let mut seen = Vec::new();
    let (st, v) = s
        .call_with(
            Method::POST,
            "/v1/vaults",
            Some(&u.key),
            Some(json!({"name": "planted", "secret": secrets[0], "description": "holds the planted secret"})),
            &[("Idempotency-Key", "plant-1")],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let vault_id = id(&v);
    seen.push(("POST /v1/vaults".to_owned(), v));
    // A retry replays the stored response, which must not hold the secret either.
    let (_, replay) = s
        .call_with(
            Method::POST,
            "/v1/vaults",
            Some(&u.key),
            Some(json!({"name": "planted", "secret": secrets[0], "description": "holds the planted secret"})),
            &[("Idempotency-Key", "plant-1")],
        )
        .await;
    seen.push(("POST /v1/vaults (replay)".to_owned(), replay));
    let (st, v) = s.patch(&format!("/v1/vaults/{vault_id}"), &u.key, json!({"secret": secrets[1]})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    seen.push(("PATCH /v1/vaults/{id}".to_owned(), v));
    // Refused requests carrying the secret: their errors must not echo it.
    let (_, v) = s.post("/v1/vaults", &u.key, json!({"name": "planted", "secret": secrets[1]})).await;
    seen.push(("POST /v1/vaults (conflict)".to_owned(), v));
    let (_, v) = s.post("/v1/vaults", &u.key, json!({"name": "Bad Name", "secret": secrets[1]})).await;
    seen.push(("POST /v1/vaults (bad name)".to_owned(), v));
    let (_, v) = s.post("/v1/vaults", &u.key, json!({"name": "nul", "secret": format!("{}\u{0}", secrets[1])})).await;
    seen.push(("POST /v1/vaults (NUL)".to_owned(), v));
    let body = json!({"id": "anthropic", "provider": "anthropic", "api_key_vault_id": vault_id, "models": ["claude-sonnet-4-6"]});
    let (st, v) = s.post("/v1/providers", &u.key, body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    seen.push(("POST /v1/providers".to_owned(), v));
    let (st, v) = s.patch("/v1/providers/anthropic", &u.key, json!({"models": ["claude-sonnet-4-6", "claude-opus-4-1"]})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    seen.push(("PATCH /v1/providers/{id}".to_owned(), v));
    let agent = s.agent(&u.key, "support").await;
    (seen, vault_id, id(&agent))
}

#[tokio::test]
async fn a_planted_secret_appears_in_no_response_file_or_log() {
    let captured = Captured::default();
    let subscriber =
        tracing_subscriber::fmt().with_writer(captured.clone()).with_max_level(tracing::Level::TRACE).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = TestServer::start().await;
    let u = s.user("ada@example.com").await;
    let nonce = ulid::Ulid::new().to_string();
    let (first, rotated) = (format!("sk-PLANTED-{nonce}-first"), format!("sk-PLANTED-{nonce}-rotated"));
    let secrets = [first.as_str(), rotated.as_str()];
    let (mut seen, vault_id, agent_id) = planted_world(&s, &u, &secrets).await;
    assert_eq!(stored_secret(&s, u.sandbox_id.as_str(), &vault_id).await, rotated, "the rotation took effect");

    // Every GET route of the OpenAPI document this test can fill.
    let (st, doc) = s.get("/v1/openapi.json", &u.key).await;
    assert_eq!(st, StatusCode::OK);
    // Routes of other resources may need query parameters this walk does not know; their
    // answers (errors included) are still searched for the secret.
    let must =
        ["/v1/vaults", "/v1/vaults/{id}", "/v1/providers", "/v1/providers/{id}", "/v1/agents", "/v1/api_keys", "/v1/sandboxes", "/metrics"];
    let mut called = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        if item.get("get").is_none() || template.ends_with("/stream") {
            continue;
        }
        let Some(path) = fill(template, u.sandbox_id.as_str(), &agent_id, &vault_id, "anthropic") else { continue };
        let (st, v) = s.get(&path, &u.key).await;
        assert!(st.is_success() || !must.contains(&template.as_str()), "GET {path}: {st} {v}");
        called.push(template.clone());
        seen.push((format!("GET {template}"), v));
    }
    for m in must {
        assert!(called.iter().any(|c| c == m), "GET {m} was not called; called: {called:?}");
    }
    for (what, v) in &seen {
        assert_absent(what, v.to_string().as_bytes(), &secrets);
    }

    // Nothing on disk: the database, its WAL and shared memory, the mail log, the key file.
    s.store.close().await;
    let mut files = 0;
    // Every file below the data dir, agent workspaces included.
    let mut dirs = vec![s.data_dir.clone()];
    while let Some(dir) = dirs.pop() {
        for f in std::fs::read_dir(&dir).unwrap() {
            let path = f.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            assert_absent(&path.display().to_string(), &std::fs::read(&path).unwrap(), &secrets);
            files += 1;
        }
    }
    assert!(files >= 2, "expected the database and the master key in {}", s.data_dir.display());

    let logs = captured.0.lock().unwrap().clone();
    assert!(String::from_utf8_lossy(&logs).contains("/v1/vaults"), "the log capture caught nothing; is the subscriber installed?");
    assert_absent("the log", &logs, &secrets);
}
