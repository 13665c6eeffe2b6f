//! Integrations (§10) at run time: the app catalog, starting and completing OAuth connects,
//! tokens sealed at rest and refreshed before they expire, and revocation.
//!
//! Tokens are sealed with the vault cipher under the connected account's id (so a copied
//! ciphertext does not open under another account) and only [`Integrations::access_token`]
//! opens them, for the request that injects one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steward_core::clock::Clock;
use steward_core::ids::{AccountId, ConnectedAccountId, SandboxId};
use steward_core::integration::{App, Catalog};
use steward_store::{ConnectedAccount, NewConnectedAccount, OAuthAttempt, Store, Take};

use crate::oauth::{self, AuthorizeRequest, OAuthClient, Pkce, StateClaims, TokenEndpoint};
use crate::vault::{Secret, VaultCipher};

/// How long a connect attempt (its `state`) stays valid.
pub const CONNECT_TTL_MS: i64 = 15 * 60 * 1000;
/// Tokens are refreshed when they expire within this margin.
pub const REFRESH_MARGIN_MS: i64 = 5 * 60 * 1000;

/// An app's client credentials and inbound secret, from the operator's configuration.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCredentials {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// The secret the app signs inbound events with when it is one per app (Slack's signing
    /// secret, Discord's public key, Telegram's secret token). Without it, each trigger's own
    /// generated secret is used (GitHub, Linear).
    pub webhook_secret: Option<String>,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// The operator's integration settings.
#[derive(Debug, Clone)]
pub struct IntegrationsConfig {
    /// Shipped apps plus the operator's app files.
    pub catalog: Arc<Catalog>,
    /// Client credentials per app id.
    pub credentials: BTreeMap<String, AppCredentials>,
    /// The server's public base URL; the OAuth callback is `<public_url>/v1/integrations/callback`.
    pub public_url: String,
    /// Signs `state` tokens (derived from the master key).
    pub state_key: Vec<u8>,
}

impl Default for IntegrationsConfig {
    fn default() -> Self {
        Self {
            catalog: Arc::new(Catalog::shipped()),
            credentials: BTreeMap::new(),
            public_url: "http://127.0.0.1:8420".into(),
            state_key: Vec::new(),
        }
    }
}

/// What went wrong, with a message for the user (never a token or client secret).
#[derive(Debug, Clone, thiserror::Error)]
pub enum IntegrationError {
    #[error("{0}")]
    NotFound(String),
    /// The request or the app's configuration is wrong; the message says how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// The provider refused or answered nonsense.
    #[error("{0}")]
    Provider(String),
    #[error("{0}")]
    Internal(String),
}

impl From<steward_store::StoreError> for IntegrationError {
    fn from(e: steward_store::StoreError) -> Self {
        IntegrationError::Internal(e.to_string())
    }
}

/// The token set as sealed at rest.
#[derive(Serialize, Deserialize)]
struct Tokens {
    access_token: String,
    refresh_token: Option<String>,
}

/// A started connect: where to send the user, and the attempt to poll.
#[derive(Debug, Clone)]
pub struct Connect {
    pub authorize_url: String,
    pub connect_id: String,
    pub expires_at: i64,
}

/// Integrations service (cheap to clone).
#[derive(Debug, Clone)]
pub struct Integrations {
    config: Arc<IntegrationsConfig>,
    store: Store,
    vault: VaultCipher,
    clock: Arc<dyn Clock>,
    http: OAuthClient,
}

impl Integrations {
    pub fn new(config: IntegrationsConfig, store: Store, vault: VaultCipher, clock: Arc<dyn Clock>) -> Self {
        Self { config: Arc::new(config), store, vault, clock, http: OAuthClient::new(Duration::from_secs(20)) }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.config.catalog
    }

    pub fn app(&self, id: &str) -> Result<&App, IntegrationError> {
        self.config.catalog.get(id).ok_or_else(|| {
            let known: Vec<&str> = self.config.catalog.iter().map(|a| a.id.as_str()).collect();
            IntegrationError::NotFound(format!(
                "no app `{}` in the catalog; known apps: {}",
                steward_core::ids::shorten(id),
                known.join(", ")
            ))
        })
    }

    /// Whether the operator configured `app`'s client id (so it can be connected).
    pub fn is_configured(&self, app: &str) -> bool {
        self.config.credentials.get(app).is_some_and(|c| c.client_id.is_some())
    }

    /// The inbound signing secret configured for `app`, if it has one per app.
    pub fn webhook_secret(&self, app: &str) -> Option<&str> {
        self.config.credentials.get(app).and_then(|c| c.webhook_secret.as_deref())
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/v1/integrations/callback", self.config.public_url.trim_end_matches('/'))
    }

    fn endpoint(&self, app: &App) -> Result<TokenEndpoint, IntegrationError> {
        let oauth = app.oauth.as_ref().ok_or_else(|| {
            IntegrationError::Invalid(format!(
                "app `{}` has no OAuth connect; its tools use credentials set by the operator (see README.md, Integrations)",
                app.id
            ))
        })?;
        let creds = self.config.credentials.get(&app.id);
        let client_id = creds.and_then(|c| c.client_id.clone()).ok_or_else(|| {
            IntegrationError::Invalid(format!(
                "app `{}` has no client id configured; set [integrations.{}] client_id and client_secret in the server's config file",
                app.id, app.id
            ))
        })?;
        Ok(TokenEndpoint {
            token_url: oauth.token_url.clone(),
            client_id,
            client_secret: creds.and_then(|c| c.client_secret.clone()),
            client_auth: match oauth.client_auth {
                steward_core::integration::ClientAuth::Basic => oauth::ClientAuth::Basic,
                steward_core::integration::ClientAuth::Body => oauth::ClientAuth::Body,
            },
        })
    }

    /// Starts connecting `app` to `sandbox` for `account`: records the attempt and returns the
    /// authorize URL (signed single-use `state`, PKCE when the app supports it).
    pub async fn start_connect(
        &self,
        sandbox: &SandboxId,
        app_id: &str,
        account: &AccountId,
        session_id: Option<String>,
    ) -> Result<Connect, IntegrationError> {
        let app = self.app(app_id)?;
        let endpoint = self.endpoint(app)?;
        let oauth = app.oauth.as_ref().expect("endpoint() checked oauth");
        let now = self.clock.now_ms();
        let nonce = steward_core::ids::fresh("con_");
        let pkce = oauth.pkce.then(Pkce::generate);
        let claims = StateClaims {
            nonce: nonce.clone(),
            sandbox_id: sandbox.to_string(),
            app_id: app.id.clone(),
            account_id: account.to_string(),
            session_id: session_id.clone(),
            expires_at_ms: now + CONNECT_TTL_MS,
        };
        let state = oauth::sign_state(&self.config.state_key, &claims);
        let redirect_uri = self.redirect_uri();
        let url = oauth::authorize_url(&AuthorizeRequest {
            authorize_url: &oauth.authorize_url,
            client_id: &endpoint.client_id,
            redirect_uri: &redirect_uri,
            scopes: &oauth.scopes,
            scope_separator: &oauth.scope_separator,
            state: &state,
            code_challenge: pkce.as_ref().map(|p| p.challenge.as_str()),
            extra_params: &oauth.extra_authorize_params,
        })
        .map_err(|e| IntegrationError::Invalid(format!("app `{}`: {e}", app.id)))?;
        let attempt = OAuthAttempt {
            nonce: nonce.clone(),
            sandbox_id: sandbox.clone(),
            app_id: app.id.clone(),
            account_id: account.clone(),
            session_id,
            verifier: pkce.map(|p| self.vault.encrypt(sandbox.as_str(), &nonce, &p.verifier)),
            redirect_uri,
            created_at: now,
            expires_at: now + CONNECT_TTL_MS,
            used_at: None,
            connected_account_id: None,
            error: None,
        };
        self.store.create_oauth_attempt(&attempt).await?;
        Ok(Connect { authorize_url: url, connect_id: nonce, expires_at: attempt.expires_at })
    }

    /// Completes a connect from the callback's `state` and `code` (or the provider's `error`).
    /// A forged, expired or replayed state changes nothing. Returns the attempt and the account.
    pub async fn complete(
        &self,
        state: &str,
        code: Option<&str>,
        provider_error: Option<&str>,
    ) -> Result<(OAuthAttempt, ConnectedAccount), (Option<OAuthAttempt>, IntegrationError)> {
        let now = self.clock.now_ms();
        let claims = oauth::verify_state(&self.config.state_key, state, now).map_err(|e| {
            (None, IntegrationError::Invalid(format!("the `state` of this callback is not valid: {e}; start the connect again")))
        })?;
        let attempt = match self.store.take_oauth_attempt(&claims.nonce).await.map_err(|e| (None, e.into()))? {
            Take::Taken(a) => *a,
            Take::Unknown => {
                return Err((None, IntegrationError::Invalid("this connect attempt is unknown; start the connect again".into())));
            }
            Take::AlreadyUsed => {
                return Err((
                    None,
                    IntegrationError::Invalid("this callback was already used (a state is good once); start the connect again".into()),
                ));
            }
            Take::Expired => {
                return Err((None, IntegrationError::Invalid("this connect attempt expired; start the connect again".into())));
            }
        };
        let result = self.exchange(&attempt, code, provider_error).await;
        let recorded = match &result {
            Ok(account) => self.store.finish_oauth_attempt(&attempt.nonce, Ok(&account.id)).await,
            Err(e) => self.store.finish_oauth_attempt(&attempt.nonce, Err(&e.to_string())).await,
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "cannot record the outcome of a connect attempt");
        }
        match result {
            Ok(account) => Ok((attempt, account)),
            Err(e) => Err((Some(attempt), e)),
        }
    }

    async fn exchange(
        &self,
        attempt: &OAuthAttempt,
        code: Option<&str>,
        provider_error: Option<&str>,
    ) -> Result<ConnectedAccount, IntegrationError> {
        let app = self.app(&attempt.app_id)?;
        if let Some(e) = provider_error {
            return Err(IntegrationError::Provider(format!(
                "{} did not authorize the connection: {}",
                app.display_name,
                steward_core::ids::shorten(e)
            )));
        }
        let code = code.filter(|c| !c.is_empty()).ok_or_else(|| IntegrationError::Invalid("the callback has no `code`".into()))?;
        let endpoint = self.endpoint(app)?;
        let verifier = match &attempt.verifier {
            Some(sealed) => Some(
                self.vault
                    .decrypt(attempt.sandbox_id.as_str(), &attempt.nonce, sealed)
                    .map_err(|_| IntegrationError::Internal("cannot open the stored PKCE verifier".into()))?,
            ),
            None => None,
        };
        let tokens = self
            .http
            .exchange_code(&endpoint, code, verifier.as_ref().map(|v| v.expose()), &attempt.redirect_uri, self.clock.now_ms())
            .await
            .map_err(|e| IntegrationError::Provider(format!("{}: {e}", app.display_name)))?;
        let oauth = app.oauth.as_ref().expect("endpoint() checked oauth");
        let pick = |pointer: &Option<String>| pointer.as_deref().and_then(|p| tokens.raw.pointer(p)).map(json_text);
        let external_id = pick(&oauth.account_id).unwrap_or_default();
        let label = pick(&oauth.account_label).unwrap_or_else(|| app.display_name.clone());
        let sealed =
            serde_json::to_string(&Tokens { access_token: tokens.access_token.clone(), refresh_token: tokens.refresh_token.clone() })
                .expect("tokens serialize");
        let new = NewConnectedAccount {
            sandbox_id: attempt.sandbox_id.clone(),
            app_id: app.id.clone(),
            external_id,
            label,
            scopes: tokens.scope.clone(),
            expires_at: tokens.expires_at_ms,
            info: tokens.raw.clone(),
            connected_by: attempt.account_id.clone(),
        };
        let vault = self.vault.clone();
        let sandbox = attempt.sandbox_id.clone();
        self.store.upsert_connected_account(new, move |id| vault.encrypt(sandbox.as_str(), id.as_str(), &sealed)).await.map_err(Into::into)
    }

    fn open(&self, account: &ConnectedAccount, sealed: &str) -> Result<Tokens, IntegrationError> {
        let plain = self.vault.decrypt(account.sandbox_id.as_str(), account.id.as_str(), sealed).map_err(|_| {
            IntegrationError::Internal(format!("the tokens of account {} cannot be opened with this server's master key", account.id))
        })?;
        serde_json::from_str(plain.expose()).map_err(|e| IntegrationError::Internal(format!("stored tokens: {e}")))
    }

    /// The account's access token for a request made now, refreshed first when it expires
    /// within [`REFRESH_MARGIN_MS`]. An account that needs re-authorization is an error.
    pub async fn access_token(&self, id: &ConnectedAccountId) -> Result<(ConnectedAccount, Secret), IntegrationError> {
        let not_found = || IntegrationError::NotFound(format!("connected account {id} not found"));
        let mut account = self.store.connected_account(id).await?.ok_or_else(not_found)?;
        if account.status != "active" {
            return Err(IntegrationError::Invalid(format!(
                "connected account {id} ({}) needs to be connected again: {}",
                account.label,
                account.status_reason.clone().unwrap_or_default()
            )));
        }
        if account.expires_at.is_some_and(|t| t - REFRESH_MARGIN_MS <= self.clock.now_ms()) {
            self.refresh(&account).await?;
            // Re-read only after a refresh: it moved `expires_at`.
            account = self.store.connected_account(id).await?.ok_or_else(not_found)?;
        }
        let sealed = self.store.connected_account_tokens(id).await?.unwrap_or_default();
        let tokens = self.open(&account, &sealed)?;
        Ok((account, Secret::new(tokens.access_token)))
    }

    /// Refreshes one account's tokens. A refusal by the provider marks the account
    /// `needs_reauth` with the reason; a transport failure leaves it as it is (retried later).
    pub async fn refresh(&self, account: &ConnectedAccount) -> Result<(), IntegrationError> {
        let app = self.app(&account.app_id)?;
        let sealed = self.store.connected_account_tokens(&account.id).await?.unwrap_or_default();
        let tokens = self.open(account, &sealed)?;
        let Some(refresh_token) = tokens.refresh_token else {
            let reason = "the access token expired and the app gave no refresh token; connect the account again";
            self.store.mark_needs_reauth(&account.id, reason).await?;
            return Err(IntegrationError::Invalid(format!("connected account {}: {reason}", account.id)));
        };
        let endpoint = self.endpoint(app)?;
        match self.http.refresh(&endpoint, &refresh_token, self.clock.now_ms()).await {
            Ok(fresh) => {
                let plain = serde_json::to_string(&Tokens { access_token: fresh.access_token, refresh_token: fresh.refresh_token })
                    .expect("tokens serialize");
                let resealed = self.vault.encrypt(account.sandbox_id.as_str(), account.id.as_str(), &plain);
                // Lost to a concurrent refresh (another replica): theirs is as good.
                self.store.store_refreshed_tokens(&account.id, &sealed, &resealed, fresh.expires_at_ms).await?;
                Ok(())
            }
            Err(e) if e.is_invalid_grant() || matches!(e, oauth::OAuthError::Provider { .. }) => {
                let reason = format!("refreshing the token failed: {e}");
                self.store.mark_needs_reauth(&account.id, &reason).await?;
                Err(IntegrationError::Provider(format!("connected account {} needs to be connected again; {reason}", account.id)))
            }
            Err(e) => Err(IntegrationError::Provider(format!("cannot refresh the token of account {} now: {e}", account.id))),
        }
    }

    /// Refreshes every active account whose token expires soon; returns how many were tried.
    pub async fn refresh_due(&self) -> Result<usize, IntegrationError> {
        let before = self.clock.now_ms() + REFRESH_MARGIN_MS;
        let due = self.store.accounts_to_refresh(before, 50).await?;
        for account in &due {
            if let Err(e) = self.refresh(account).await {
                tracing::warn!(account = %account.id, error = %e, "token refresh failed");
            }
        }
        Ok(due.len())
    }

    /// Revokes the account's tokens at the app (when it has a revoke endpoint), then deletes the
    /// account with its publications. A revoke the app refuses is reported but the account is
    /// deleted anyway: the user asked for it to be gone.
    pub async fn revoke(&self, account: &ConnectedAccount) -> Result<Option<String>, IntegrationError> {
        let mut warning = None;
        if let Ok(app) = self.app(&account.app_id)
            && let Some(url) = app.oauth.as_ref().and_then(|o| o.revoke_url.clone())
            && let Ok(endpoint) = self.endpoint(app)
        {
            let sealed = self.store.connected_account_tokens(&account.id).await?.unwrap_or_default();
            if let Ok(tokens) = self.open(account, &sealed) {
                for token in std::iter::once(tokens.access_token).chain(tokens.refresh_token) {
                    if let Err(e) = self.http.revoke(&url, &endpoint, &token).await {
                        warning = Some(format!("{} did not confirm the revocation: {e}", app.display_name));
                    }
                }
            }
        }
        self.store.delete_connected_account(&account.id).await?;
        Ok(warning)
    }
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
