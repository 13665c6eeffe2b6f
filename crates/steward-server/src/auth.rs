//! Who is calling, and what they may do where: the one auth extractor (`Caller`) and the one
//! authorization check (`Caller::authorize`).
//!
//! Rules (§1): a sandbox the caller has no grant on is indistinguishable from one that does
//! not exist (404); a role too weak for the operation is 403 naming the role needed;
//! destructive operations need `owner`; an archived sandbox is read-only.
//!
//! The key, the grant and the sandbox come through the store's cache: a revocation, a grant
//! change or an archive is seen at once on the replica that made it, and on the others when its
//! notification arrives (see the store's `cache.rs`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use steward_core::ids::{AccountId, SandboxId};
use steward_core::keys;
use steward_core::tenancy::{ApiKey, Role};

use crate::AppState;
use crate::error::ApiError;
use crate::tokens::TokenError;

/// The header naming the sandbox a request acts in, when the route has no `sandbox_id`.
pub const SANDBOX_HEADER: &str = "steward-sandbox";

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    ApiKey(ApiKey),
    Session,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: AccountId,
    pub credential: Credential,
    /// The raw `Steward-Sandbox` header, if sent.
    sandbox_header: Option<String>,
    /// A confined session token (the Concierge's tools) acts only in this sandbox.
    confined_to: Option<SandboxId>,
}

/// What an operation needs (§1, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reading: any role.
    Read,
    /// A reversible change: `editor` or `owner`.
    Write,
    /// Destructive operations and sharing: `owner`.
    Owner,
}

impl Need {
    fn role(self) -> Role {
        match self {
            Need::Read => Role::Viewer,
            Need::Write => Role::Editor,
            Need::Owner => Role::Owner,
        }
    }
}

const HOW_TO_GET_A_KEY: &str = "send `Authorization: Bearer <key>`; get a key with `steward login` or `steward admin create-account`";

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let sandbox_header = parts.headers.get(SANDBOX_HEADER).map(|v| v.to_str().unwrap_or("<not UTF-8>").to_owned());
        let Some(raw) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(ApiError::unauthenticated(format!("this endpoint needs an API key: {HOW_TO_GET_A_KEY}")));
        };
        let raw = raw.to_str().map_err(|_| ApiError::unauthenticated("the Authorization header is not valid text"))?;
        let Some(token) = raw.strip_prefix("Bearer ").or_else(|| raw.strip_prefix("bearer ")).map(str::trim) else {
            return Err(ApiError::unauthenticated(format!("the Authorization header must use the Bearer scheme: {HOW_TO_GET_A_KEY}")));
        };
        if keys::looks_like_key(token) {
            let Some(key) = state.store.api_key_by_hash(&keys::hash(token)).await? else {
                return Err(ApiError::unauthenticated(
                    "this API key is not recognised (mistyped, or its sandbox was destroyed); check it was copied whole, or create a new one",
                ));
            };
            if key.revoked_at.is_some() {
                return Err(ApiError::unauthenticated(format!(
                    "API key {} was revoked; create a new one with `steward apikey create`",
                    key.id
                )));
            }
            return Ok(Caller {
                account_id: key.account_id.clone(),
                credential: Credential::ApiKey(key),
                sandbox_header,
                confined_to: None,
            });
        }
        let now = state.clock.now_ms() / 1000;
        match state.tokens.verify_full(token, now) {
            Ok(v) => Ok(Caller { account_id: v.account, credential: Credential::Session, sandbox_header, confined_to: v.confined_to }),
            Err(TokenError::Expired) => Err(ApiError::unauthenticated("the session token has expired; run `steward login` again")),
            Err(TokenError::BadSignature) => {
                Err(ApiError::unauthenticated("the session token's signature is not valid for this server; run `steward login` again"))
            }
            Err(TokenError::Malformed) => Err(ApiError::unauthenticated(format!(
                "the bearer token is neither a Steward API key (`stw_…`) nor a session token: {HOW_TO_GET_A_KEY}"
            ))),
        }
    }
}

impl Caller {
    /// The agent-scoped key this caller uses, if any.
    pub fn agent_key(&self) -> Option<&ApiKey> {
        match &self.credential {
            Credential::ApiKey(k) if k.kind.is_agent_scoped() => Some(k),
            _ => None,
        }
    }

    /// Refuses agent-scoped keys on routes that manage the platform.
    pub fn require_account_credential(&self) -> Result<(), ApiError> {
        match self.agent_key() {
            Some(k) => Err(agent_key_refusal(k)),
            None => Ok(()),
        }
    }

    /// The sandbox a request without a `sandbox_id` in its path acts in (§1): an explicit
    /// `sandbox_id` (body or query), else the `Steward-Sandbox` header, else the key's home
    /// sandbox, else (session tokens) the oldest sandbox the account owns.
    pub async fn target_sandbox(&self, state: &AppState, explicit: Option<&str>) -> Result<SandboxId, ApiError> {
        if let Some(c) = &self.confined_to {
            // Whatever else was asked for, a confined token acts in its sandbox (and asking
            // for another one is refused as not found by `authorize`).
            return Ok(match explicit {
                Some(raw) => SandboxId::parse(raw, "sandbox_id")?,
                None => c.clone(),
            });
        }
        if let Some(raw) = explicit {
            return Ok(SandboxId::parse(raw, "sandbox_id")?);
        }
        if let Some(raw) = &self.sandbox_header {
            return Ok(SandboxId::parse(raw, "Steward-Sandbox")?);
        }
        if let Credential::ApiKey(k) = &self.credential {
            return Ok(k.sandbox_id.clone());
        }
        state.store.first_owned_sandbox(&self.account_id).await?.ok_or_else(|| {
            ApiError::bad_request(
                "say which sandbox to act in: send a `Steward-Sandbox: sbx_…` header or a `sandbox_id` (create one with `steward setup`)",
            )
            .with_param("sandbox_id")
        })
    }

    /// Checks the caller may do `need` in `sandbox` and returns their role. No grant (or no
    /// such sandbox) is 404; too weak a role is 403; writes to an archived sandbox are 409.
    pub async fn authorize(&self, state: &AppState, sandbox: &SandboxId, need: Need) -> Result<Role, ApiError> {
        if let Some(k) = self.agent_key() {
            return Err(if &k.sandbox_id == sandbox { agent_key_refusal(k) } else { ApiError::not_found("sandbox", sandbox.as_str()) });
        }
        if self.confined_to.as_ref().is_some_and(|c| c != sandbox) {
            return Err(ApiError::not_found("sandbox", sandbox.as_str()));
        }
        let Some(role) = state.store.role_of(&self.account_id, sandbox).await? else {
            return Err(ApiError::not_found("sandbox", sandbox.as_str()));
        };
        if !role.satisfies(need.role()) {
            let (what, ask) = match need {
                Need::Owner => ("this operation (destructive or sharing)", "ask the owner to do it"),
                _ => ("this change", "ask the sandbox owner for the `editor` role"),
            };
            return Err(ApiError::forbidden(format!(
                "{what} needs the `{}` role in sandbox {sandbox}; you are `{role}`: {ask}",
                need.role()
            )));
        }
        if need == Need::Write {
            let archived = state.store.cached_sandbox(sandbox).await?.is_some_and(|s| s.archived_at.is_some());
            if archived {
                return Err(ApiError::conflict(format!("sandbox {sandbox} is archived and read-only; work in another sandbox")));
            }
        }
        Ok(role)
    }
}

impl Caller {
    /// `authorize` for a resource addressed by its own id: a 404 names the resource, never
    /// its sandbox, so a stranger learns nothing about where it lives.
    pub async fn authorize_resource(
        &self,
        state: &AppState,
        sandbox: &SandboxId,
        need: Need,
        what: &str,
        id: &str,
    ) -> Result<Role, ApiError> {
        self.authorize(state, sandbox, need)
            .await
            .map_err(|e| if e.status == axum::http::StatusCode::NOT_FOUND { ApiError::not_found(what, id) } else { e })
    }
}

fn agent_key_refusal(k: &ApiKey) -> ApiError {
    ApiError::forbidden(format!(
        "this is an `{}` key for agent {}; it may only start, message and read that agent's sessions. Use an account key for this",
        k.kind.as_str(),
        k.agent_id.as_ref().map(|a| a.as_str()).unwrap_or("?")
    ))
}
