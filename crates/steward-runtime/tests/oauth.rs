//! The OAuth 2 client against a fake authorization server speaking the real wire format:
//! authorize → code → PKCE exchange → a token that works, and every way that goes wrong
//! (reused code, wrong verifier, dead refresh token, HTML pages, Slack-style errors, revoked
//! tokens, unreachable endpoints), plus the signed `state`.

use steward_test_support::fake_oauth;

use std::collections::BTreeMap;
use std::time::Duration;

use fake_oauth::{FakeClientAuth, FakeOAuth, FakeOAuthConfig, TokenMode, follow_authorize, query_param};
use steward_runtime::oauth::{
    AuthorizeRequest, ClientAuth, OAuthClient, OAuthError, Pkce, StateClaims, StateError, TokenEndpoint, TokenSet, authorize_url,
    sign_state, verify_state,
};

const REDIRECT: &str = "https://steward.example/v1/oauth/callback";
const NOW: i64 = 1_700_000_000_000;

fn client() -> OAuthClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    OAuthClient::new(Duration::from_secs(20))
}

fn endpoint(fake: &FakeOAuth, auth: ClientAuth) -> TokenEndpoint {
    TokenEndpoint {
        token_url: fake.token_url(),
        client_id: fake.config().client_id.clone(),
        client_secret: Some(fake.config().client_secret.clone()),
        client_auth: auth,
    }
}

/// Runs the consent step and returns (code, the PKCE pair used).
async fn consent(fake: &FakeOAuth) -> (String, Pkce) {
    let pkce = Pkce::generate();
    let scopes = vec!["repo".to_owned(), "read:user".to_owned()];
    let url = authorize_url(&AuthorizeRequest {
        authorize_url: &fake.authorize_url(),
        client_id: &fake.config().client_id,
        redirect_uri: REDIRECT,
        scopes: &scopes,
        scope_separator: " ",
        state: "st.ate/1",
        code_challenge: Some(&pkce.challenge),
        extra_params: &BTreeMap::new(),
    })
    .unwrap();
    let location = follow_authorize(&url).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st.ate/1"), "{location}");
    (query_param(&location, "code").expect("a code in the redirect"), pkce)
}

async fn me_status(fake: &FakeOAuth, token: &str) -> u16 {
    reqwest::Client::new().get(fake.me_url()).bearer_auth(token).send().await.unwrap().status().as_u16()
}

async fn connected(fake: &FakeOAuth, auth: ClientAuth) -> TokenSet {
    let (code, pkce) = consent(fake).await;
    client().exchange_code(&endpoint(fake, auth), &code, Some(&pkce.verifier), REDIRECT, NOW).await.unwrap()
}

fn provider_error(e: &OAuthError) -> &str {
    match e {
        OAuthError::Provider { error, .. } => error,
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[tokio::test]
async fn full_flow_gets_a_token_that_works() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    let set = connected(&fake, ClientAuth::Body).await;
    assert_eq!(me_status(&fake, &set.access_token).await, 200);
    assert!(set.refresh_token.is_some());
    assert_eq!(set.expires_at_ms, Some(NOW + 3_600_000));
    assert_eq!(set.scope.as_deref(), Some("repo read:user"));
    assert_eq!(set.token_type.as_deref(), Some("Bearer"));
    assert!(set.raw.get("access_token").is_none() && set.raw.get("refresh_token").is_none(), "{}", set.raw);
    assert_eq!(set.raw["expires_in"], 3600);
    assert_eq!(fake.last_accept().as_deref(), Some("application/json"));
    let debug = format!("{set:?}");
    assert!(!debug.contains(&set.access_token) && !debug.contains(set.refresh_token.as_deref().unwrap()), "{debug}");
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn wrong_verifier_and_reused_code_are_invalid_grant() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    let ep = endpoint(&fake, ClientAuth::Body);
    let (code, _) = consent(&fake).await;
    let wrong = Pkce::generate();
    let e = client().exchange_code(&ep, &code, Some(&wrong.verifier), REDIRECT, NOW).await.unwrap_err();
    assert_eq!(provider_error(&e), "invalid_grant");
    assert!(e.is_invalid_grant() && e.to_string().contains("PKCE verification failed"), "{e}");
    assert!(!e.to_string().contains(&code) && !e.to_string().contains(&wrong.verifier), "{e}");

    let (code, pkce) = consent(&fake).await;
    client().exchange_code(&ep, &code, Some(&pkce.verifier), REDIRECT, NOW).await.unwrap();
    let e = client().exchange_code(&ep, &code, Some(&pkce.verifier), REDIRECT, NOW).await.unwrap_err();
    assert!(e.is_invalid_grant(), "{e}");
    assert!(e.to_string().contains("code already used") && e.to_string().contains("connect the account again"), "{e}");
}

#[tokio::test]
async fn refresh_after_expiry_rotates_and_the_old_refresh_token_then_fails() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    let ep = endpoint(&fake, ClientAuth::Basic);
    let first = connected(&fake, ClientAuth::Basic).await;
    fake.expire_all_tokens();
    assert_eq!(me_status(&fake, &first.access_token).await, 401);

    let old_rt = first.refresh_token.clone().unwrap();
    let second = client().refresh(&ep, &old_rt, NOW + 5_000_000).await.unwrap();
    assert_eq!(me_status(&fake, &second.access_token).await, 200);
    assert_eq!(second.expires_at_ms, Some(NOW + 5_000_000 + 3_600_000));
    let new_rt = second.refresh_token.clone().unwrap();
    assert_ne!(new_rt, old_rt, "the fake rotates refresh tokens");

    let e = client().refresh(&ep, &old_rt, NOW).await.unwrap_err();
    assert!(e.is_invalid_grant(), "{e}");
    assert!(!e.to_string().contains(&old_rt), "{e}");
    assert!(client().refresh(&ep, &new_rt, NOW).await.is_ok());
    assert_eq!(fake.refreshes(), 3);
}

#[tokio::test]
async fn a_refresh_without_rotation_keeps_the_old_refresh_token() {
    let fake = FakeOAuth::start(FakeOAuthConfig { rotate_refresh_tokens: false, ..FakeOAuthConfig::default() }).await;
    let first = connected(&fake, ClientAuth::Body).await;
    let rt = first.refresh_token.unwrap();
    let second = client().refresh(&endpoint(&fake, ClientAuth::Body), &rt, NOW).await.unwrap();
    assert_eq!(second.refresh_token.as_deref(), Some(rt.as_str()));
    assert_ne!(second.access_token, first.access_token);
}

#[tokio::test]
async fn refresh_failure_mode_is_invalid_grant() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    let set = connected(&fake, ClientAuth::Body).await;
    fake.set_mode(TokenMode::RefreshInvalidGrant);
    let e = client().refresh(&endpoint(&fake, ClientAuth::Body), set.refresh_token.as_deref().unwrap(), NOW).await.unwrap_err();
    assert!(e.is_invalid_grant(), "{e}");
    assert!(matches!(e, OAuthError::Provider { status: 400, .. }), "{e:?}");
}

#[tokio::test]
async fn an_html_page_is_not_a_token_response_and_never_quotes_the_secret() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    let (code, pkce) = consent(&fake).await;
    fake.set_mode(TokenMode::HtmlPage);
    let ep = endpoint(&fake, ClientAuth::Body);
    let e = client().exchange_code(&ep, &code, Some(&pkce.verifier), REDIRECT, NOW).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(&e, OAuthError::NotATokenResponse { status: 200, content_type, .. } if content_type == "text/html"), "{e:?}");
    assert!(msg.contains("text/html") && msg.contains("Sign in") && msg.contains("check token_url"), "{msg}");
    // The page echoes the form (client_secret included, percent-encoded); none of it survives.
    let secret = &fake.config().client_secret;
    assert!(msg.contains("client_secret=[redacted]"), "{msg}");
    for s in [secret.as_str(), &fake_oauth::form_encode(secret), &code, &pkce.verifier] {
        assert!(!msg.contains(s) && !format!("{e:?}").contains(s), "{s} leaked: {msg}");
    }
}

#[tokio::test]
async fn slack_style_ok_false_is_a_provider_error() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    let (code, pkce) = consent(&fake).await;
    fake.set_mode(TokenMode::SlackNotOk("invalid_code".into()));
    let e = client().exchange_code(&endpoint(&fake, ClientAuth::Body), &code, Some(&pkce.verifier), REDIRECT, NOW).await.unwrap_err();
    assert_eq!(provider_error(&e), "invalid_code");
    assert!(matches!(e, OAuthError::Provider { status: 200, .. }));
    assert!(e.is_invalid_grant(), "Slack's invalid_code means the code is dead: {e}");
}

#[tokio::test]
async fn a_form_encoded_success_body_is_accepted() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    fake.set_mode(TokenMode::FormEncoded);
    let set = connected(&fake, ClientAuth::Body).await;
    assert_eq!(me_status(&fake, &set.access_token).await, 200);
    assert_eq!(set.expires_at_ms, Some(NOW + 3_600_000), "expires_in arrives as a string");
    assert_eq!(set.scope.as_deref(), Some("repo read:user"));
}

#[tokio::test]
async fn revoke_ends_the_grant() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    let set = connected(&fake, ClientAuth::Basic).await;
    let ep = endpoint(&fake, ClientAuth::Basic);
    client().revoke(&fake.revoke_url(), &ep, &set.access_token).await.unwrap();
    assert_eq!(me_status(&fake, &set.access_token).await, 401);
    assert_eq!((fake.revocations(), fake.revoked()), (1, vec![set.access_token.clone()]));
    assert!(client().refresh(&ep, set.refresh_token.as_deref().unwrap(), NOW).await.unwrap_err().is_invalid_grant());
    // Revoking a token the server no longer knows is still a success (RFC 7009 §2.2).
    client().revoke(&fake.revoke_url(), &ep, "fake_at_unknown").await.unwrap();

    let bad = TokenEndpoint { client_secret: Some("wrong".into()), ..ep };
    let e = client().revoke(&fake.revoke_url(), &bad, &set.access_token).await.unwrap_err();
    assert_eq!(provider_error(&e), "invalid_client");
}

#[tokio::test]
async fn basic_and_body_client_auth_are_sent_as_configured() {
    for (server, good, bad) in
        [(FakeClientAuth::Basic, ClientAuth::Basic, ClientAuth::Body), (FakeClientAuth::Body, ClientAuth::Body, ClientAuth::Basic)]
    {
        let fake = FakeOAuth::start(FakeOAuthConfig { client_auth: server, ..FakeOAuthConfig::default() }).await;
        let set = connected(&fake, good).await;
        assert_eq!(me_status(&fake, &set.access_token).await, 200);
        let expected = if good == ClientAuth::Basic { "basic" } else { "body" };
        assert_eq!(fake.last_client_auth(), Some(expected));

        let (code, pkce) = consent(&fake).await;
        let e = client().exchange_code(&endpoint(&fake, bad), &code, Some(&pkce.verifier), REDIRECT, NOW).await.unwrap_err();
        assert_eq!(provider_error(&e), "invalid_client", "{server:?} server, {bad:?} client");
        assert!(e.to_string().contains("client id and secret"), "{e}");
        assert!(!e.to_string().contains(&fake.config().client_secret), "{e}");
    }
}

#[tokio::test]
async fn denied_consent_redirects_with_access_denied() {
    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    fake.set_deny_consent(true);
    let url = format!(
        "{}?response_type=code&client_id=fake-client&redirect_uri={REDIRECT}&state=s1&code_challenge=x&code_challenge_method=S256",
        fake.authorize_url()
    );
    let location = follow_authorize(&url).await;
    assert_eq!(query_param(&location, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&location, "state").as_deref(), Some("s1"));
    assert_eq!(query_param(&location, "code"), None);
}

#[tokio::test]
async fn unreachable_or_slow_endpoints_are_transport_errors_naming_the_host() {
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = spare.local_addr().unwrap().port();
    drop(spare);
    let ep = TokenEndpoint {
        token_url: format!("http://127.0.0.1:{port}/token"),
        client_id: "c".into(),
        client_secret: Some("s3cr3t".into()),
        client_auth: ClientAuth::Body,
    };
    let e = client().refresh(&ep, "rt-value", NOW).await.unwrap_err();
    assert!(matches!(e, OAuthError::Transport(_)), "{e:?}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")) && e.to_string().contains("cannot connect"), "{e}");
    assert!(!e.to_string().contains("rt-value") && !e.to_string().contains("s3cr3t"), "{e}");

    let fake = FakeOAuth::start(FakeOAuthConfig::default()).await;
    fake.set_delay(Duration::from_secs(60));
    let impatient = OAuthClient::new(Duration::from_millis(300));
    let e = impatient.refresh(&endpoint(&fake, ClientAuth::Body), "rt", NOW).await.unwrap_err();
    assert!(matches!(e, OAuthError::Transport(_)) && e.to_string().contains("did not answer in time"), "{e}");
    assert!(e.to_string().contains(fake.base_url.trim_start_matches("http://")), "{e}");
}

#[tokio::test]
async fn bad_urls_are_invalid_before_any_request() {
    let ep = TokenEndpoint { token_url: "not a url".into(), client_id: "c".into(), client_secret: None, client_auth: ClientAuth::Basic };
    let e = client().exchange_code(&ep, "code", None, REDIRECT, NOW).await.unwrap_err();
    assert!(matches!(e, OAuthError::Invalid(_)) && e.to_string().contains("token_url"), "{e}");
    let debug = format!("{:?}", TokenEndpoint { client_secret: Some("hunter2".into()), ..ep });
    assert!(debug.contains("<redacted>") && !debug.contains("hunter2"), "{debug}");
}

#[test]
fn authorize_url_keeps_existing_params_and_encodes_scopes() {
    let scopes = vec!["channels:read".to_owned(), "chat:write".to_owned()];
    let extra = BTreeMap::from([("access_type".to_owned(), "offline".to_owned()), ("team".to_owned(), "T 1&2".to_owned())]);
    let url = authorize_url(&AuthorizeRequest {
        authorize_url: "https://slack.example/oauth/v2/authorize?user_scope=identify&team=T0&state=stale",
        client_id: "cid 1",
        redirect_uri: REDIRECT,
        scopes: &scopes,
        scope_separator: ",",
        state: "a.b+c",
        code_challenge: Some("chal"),
        extra_params: &extra,
    })
    .unwrap();
    let p = |k: &str| query_param(&url, k);
    assert!(url.starts_with("https://slack.example/oauth/v2/authorize?user_scope=identify&"), "{url}");
    assert!(url.contains("scope=channels%3Aread%2Cchat%3Awrite"), "{url}");
    assert!(url.contains("client_id=cid+1") && url.contains("team=T+1%262") && url.contains("state=a.b%2Bc"), "{url}");
    assert_eq!(p("response_type").as_deref(), Some("code"));
    assert_eq!(p("redirect_uri").as_deref(), Some(REDIRECT));
    assert_eq!(p("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(p("access_type").as_deref(), Some("offline"));
    assert_eq!(url.matches("state=").count(), 1, "the stale state is replaced: {url}");
    assert_eq!(url.matches("team=").count(), 1, "extra params win: {url}");

    let plain =
        authorize_url(&AuthorizeRequest { scopes: &[], code_challenge: None, extra_params: &BTreeMap::new(), ..req_for(&url) }).unwrap();
    assert!(query_param(&plain, "scope").is_none() && !plain.contains("code_challenge"), "{plain}");
    assert_eq!(query_param(&plain, "user_scope").as_deref(), Some("identify"));

    let bad = BTreeMap::from([("state".to_owned(), "x".to_owned())]);
    let e = authorize_url(&AuthorizeRequest { extra_params: &bad, ..req_for(&url) }).unwrap_err();
    assert!(e.to_string().contains("`state`"), "{e}");
    let e = authorize_url(&AuthorizeRequest { authorize_url: "/relative", ..req_for(&url) }).unwrap_err();
    assert!(e.to_string().contains("authorize_url"), "{e}");
}

fn req_for(url: &str) -> AuthorizeRequest<'_> {
    const NO_EXTRA: &BTreeMap<String, String> = &BTreeMap::new();
    AuthorizeRequest {
        authorize_url: url,
        client_id: "c",
        redirect_uri: REDIRECT,
        scopes: &[],
        scope_separator: " ",
        state: "s",
        code_challenge: None,
        extra_params: NO_EXTRA,
    }
}

fn claims() -> StateClaims {
    StateClaims {
        nonce: "n0nce".into(),
        sandbox_id: "sbx_1".into(),
        app_id: "github".into(),
        account_id: "acc_1".into(),
        session_id: Some("ses_1".into()),
        expires_at_ms: NOW + 600_000,
    }
}

#[test]
fn state_round_trips_and_refuses_tampering_wrong_keys_and_age() {
    let key = b"a state key of enough length....";
    let state = sign_state(key, &claims());
    assert!(state.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "URL-safe: {state}");
    assert_eq!(verify_state(key, &state, NOW), Ok(claims()));

    let (payload, sig) = state.split_once('.').unwrap();
    let other = sign_state(key, &StateClaims { account_id: "acc_2".into(), ..claims() });
    let other_payload = other.split_once('.').unwrap().0;
    assert_eq!(verify_state(key, &format!("{other_payload}.{sig}"), NOW), Err(StateError::BadSignature));
    let mut flipped = sig.to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    assert_eq!(verify_state(key, &format!("{payload}.{}", String::from_utf8(flipped).unwrap()), NOW), Err(StateError::BadSignature));
    assert_eq!(verify_state(b"another key", &state, NOW), Err(StateError::BadSignature));
    assert_eq!(verify_state(key, &state, NOW + 600_000), Err(StateError::Expired));
    let (bad_sig, huge) = (format!("{payload}.!!"), "x".repeat(10_000));
    for junk in ["", "nodot", "a.b.c", bad_sig.as_str(), huge.as_str()] {
        assert_eq!(verify_state(key, junk, NOW), Err(StateError::Malformed), "{junk:.20}");
    }
    assert!(StateError::Expired.to_string().contains("start connecting the account again"));
}
