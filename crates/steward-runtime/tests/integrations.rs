//! The integrations service against a local fake OAuth 2 server: a connect completes once,
//! tokens are sealed and refreshed when they near expiry, and a refresh the provider refuses
//! marks the account `needs_reauth` with the reason.

use steward_test_support::fake_oauth;

use std::sync::Arc;

use fake_oauth::{FakeOAuth, FakeOAuthConfig, TokenMode};
use serde_json::json;
use steward_core::clock::{Clock, ManualClock, SystemClock};
use steward_core::ids::AccountId;
use steward_core::integration::Catalog;
use steward_runtime::integrations::{IntegrationError, Integrations, IntegrationsConfig};
use steward_runtime::vault::VaultCipher;
use steward_store::Store;

async fn setup(fake: &FakeOAuth, dir: &std::path::Path) -> (Integrations, Store, ManualClock, steward_core::ids::SandboxId, AccountId) {
    let clock = ManualClock::new(SystemClock.now_ms());
    let store = Store::open_sqlite(&dir.join("steward.db"), Arc::new(clock.clone())).await.unwrap();
    let owner = store.ensure_account(&steward_core::tenancy::Email::parse("ada@example.com", "email").unwrap()).await.unwrap();
    let sandbox = store.create_sandbox(&owner.id, "s").await.unwrap().id;
    let apps = dir.join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let mut linear: serde_json::Value = serde_json::from_str(include_str!("../../steward-core/catalog/linear.json")).unwrap();
    linear["oauth"]["authorize_url"] = json!(fake.authorize_url());
    linear["oauth"]["token_url"] = json!(fake.token_url());
    linear["oauth"]["revoke_url"] = json!(fake.revoke_url());
    std::fs::write(apps.join("linear.json"), linear.to_string()).unwrap();
    let config = IntegrationsConfig {
        catalog: Arc::new(Catalog::shipped().with_dir(&apps).unwrap()),
        credentials: [(
            "linear".to_owned(),
            serde_json::from_value(json!({"client_id": fake.config().client_id, "client_secret": fake.config().client_secret})).unwrap(),
        )]
        .into(),
        public_url: "http://127.0.0.1:9".into(),
        state_key: vec![7; 32],
    };
    let integrations = Integrations::new(config, store.clone(), VaultCipher::new([3; 32]), Arc::new(clock.clone()));
    (integrations, store, clock, sandbox, owner.id)
}

#[tokio::test]
async fn tokens_are_refreshed_before_expiry_and_a_refused_refresh_asks_for_reauth() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (integrations, store, clock, sandbox, owner) = setup(&fake, dir.path()).await;

    let c = integrations.start_connect(&sandbox, "linear", &owner, None).await.unwrap();
    let callback = fake_oauth::follow_authorize(&c.authorize_url).await;
    let state = fake_oauth::query_param(&callback, "state").unwrap();
    let code = fake_oauth::query_param(&callback, "code").unwrap();
    let (_, account) = integrations.complete(&state, Some(&code), None).await.map_err(|e| e.1).unwrap();
    assert_eq!(account.status, "active");
    // The same callback again changes nothing.
    let replay = integrations.complete(&state, Some(&code), None).await;
    assert!(matches!(replay, Err((None, IntegrationError::Invalid(ref m))) if m.contains("already used")), "{replay:?}");

    let (_, token) = integrations.access_token(&account.id).await.unwrap();
    assert!(fake.is_live(token.expose()), "the stored token works at the app");
    assert_eq!(fake.refreshes(), 0);
    // The sealed row does not hold the token in clear.
    let sealed = store.connected_account_tokens(&account.id).await.unwrap().unwrap();
    assert!(!sealed.contains(token.expose()));

    // Near expiry (the fake issues one-hour tokens): refreshed before use.
    clock.advance_ms(3_600_000 - 60_000);
    let (_, fresh) = integrations.access_token(&account.id).await.unwrap();
    assert_eq!(fake.refreshes(), 1, "one refresh");
    assert_ne!(fresh.expose(), token.expose());
    assert!(fake.is_live(fresh.expose()));
    // The background pass finds nothing more to do.
    assert_eq!(integrations.refresh_due().await.unwrap(), 0);

    // The provider refuses the next refresh: the account needs re-authorization, with why.
    fake.set_mode(TokenMode::RefreshInvalidGrant);
    clock.advance_ms(3_600_000);
    assert_eq!(integrations.refresh_due().await.unwrap(), 1);
    let account = store.connected_account(&account.id).await.unwrap().unwrap();
    assert_eq!(account.status, "needs_reauth");
    assert!(account.status_reason.as_deref().unwrap_or("").contains("invalid_grant"), "{:?}", account.status_reason);
    let err = integrations.access_token(&account.id).await.unwrap_err();
    assert!(err.to_string().contains("connected again"), "{err}");

    // Revoking revokes at the app and deletes the account.
    let before = fake.revocations();
    integrations.revoke(&account).await.unwrap();
    assert!(fake.revocations() > before);
    assert!(store.connected_account(&account.id).await.unwrap().is_none());
}

#[tokio::test]
async fn an_expired_connect_and_a_forged_state_store_nothing() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (integrations, store, clock, sandbox, owner) = setup(&fake, dir.path()).await;
    let c = integrations.start_connect(&sandbox, "linear", &owner, None).await.unwrap();
    let callback = fake_oauth::follow_authorize(&c.authorize_url).await;
    let state = fake_oauth::query_param(&callback, "state").unwrap();
    let code = fake_oauth::query_param(&callback, "code").unwrap();
    // Another final character (one that is already `A` would leave the state as it was: a 1-in-16
    // chance for the last base64 character of a 32-byte signature).
    let other = if state.ends_with('A') { 'Q' } else { 'A' };
    let forged = format!("{}{other}", &state[..state.len() - 1]);
    assert!(integrations.complete(&forged, Some(&code), None).await.is_err());
    clock.advance_ms(steward_runtime::integrations::CONNECT_TTL_MS + 1);
    let late = integrations.complete(&state, Some(&code), None).await;
    assert!(matches!(late, Err((None, IntegrationError::Invalid(ref m))) if m.contains("expired")), "{late:?}");
    assert_eq!(store.connected_accounts(&sandbox, None).await.unwrap(), vec![]);
    assert_eq!(fake.token_requests(), 0, "no code was exchanged");
}
