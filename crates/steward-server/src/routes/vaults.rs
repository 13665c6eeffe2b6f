//! Vaults (§8): named secrets. Create takes the secret, update can rotate it, and no response
//! ever contains it: the plaintext goes straight from the request body into the cipher and is
//! never logged, stored, or formatted (`SecretField`'s `Debug` redacts).
//!
//! Reads need `viewer`, create and update `editor`, delete `owner`: deleting a secret cannot be
//! undone, and whatever used it stops working.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use steward_core::ids::VaultId;
use steward_core::vault::{Vault, check_secret, vault_description, vault_name};
use steward_store::{NewVault, StoreError, VaultUpdate};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::extract::{not_null, present};
use crate::routes::{Deleted, Page, page_request, ts};

/// A vault as the API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub sandbox_id: String,
    pub created_at: String,
    /// Changes on rename, description change and secret rotation.
    pub updated_at: String,
}

fn view(v: Vault) -> VaultView {
    VaultView {
        id: v.id.to_string(),
        name: v.name,
        description: v.description,
        sandbox_id: v.sandbox_id.to_string(),
        created_at: ts(v.created_at),
        updated_at: ts(v.updated_at),
    }
}

/// A secret as it arrives in a request body. Its `Debug` redacts, so no derived `Debug` of a
/// request (or a log line built from one) can print it.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct SecretField(String);

impl std::fmt::Debug for SecretField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Loads a vault by its path id and checks the caller may do `need` with it.
async fn load(state: &AppState, caller: &Caller, raw: &str, need: Need) -> ApiResult<Vault> {
    let id = VaultId::parse(raw, "id")?;
    let vault = state.store.vault(&id).await?.ok_or_else(|| ApiError::not_found("vault", raw))?;
    caller.authorize_resource(state, &vault.sandbox_id, need, "vault", raw).await?;
    Ok(vault)
}

fn name_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Duplicate(_) => ApiError::from(e).with_param("name"),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListVaults {
    pub sandbox_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Vaults of a sandbox, newest first. Secrets are never listed.
#[utoipa::path(get, path = "/v1/vaults", tag = "vaults", params(ListVaults),
    responses((status = 200, body = Page<VaultView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ListVaults>) -> ApiResult<Json<Page<VaultView>>> {
    let sandbox = caller.target_sandbox(&state, q.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Read).await?;
    let page = page_request(q.limit, q.cursor.as_deref())?;
    Ok(Json(Page::from_listing(state.store.vaults(&sandbox, &page).await?, view)))
}

/// Body of `POST /v1/vaults`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVault {
    /// Unique slug within the sandbox: 1–63 lowercase letters, digits, `-`, `_`.
    pub name: String,
    /// The secret: 1 byte to 64 KiB of text, no NUL. Stored encrypted; never returned.
    #[schema(value_type = String)]
    pub secret: SecretField,
    /// At most 500 characters.
    #[serde(default)]
    pub description: String,
    /// The sandbox to create it in (default: `Steward-Sandbox` header, then the key's sandbox).
    pub sandbox_id: Option<String>,
}

/// Stores a secret, encrypted with the server's master key. The response describes the vault
/// and never contains the secret.
#[utoipa::path(post, path = "/v1/vaults", tag = "vaults", request_body = CreateVault,
    responses((status = 201, body = VaultView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateVault>,
) -> ApiResult<(StatusCode, Json<VaultView>)> {
    let sandbox = caller.target_sandbox(&state, body.sandbox_id.as_deref()).await?;
    caller.authorize(&state, &sandbox, Need::Write).await?;
    let name = vault_name(&body.name, "name")?;
    let description = vault_description(&body.description, "description")?;
    check_secret(&body.secret.0, "secret")?;
    // The id is chosen before sealing: the ciphertext is bound to it.
    let id = VaultId::generate();
    let ciphertext = state.vault.encrypt(sandbox.as_str(), id.as_str(), &body.secret.0);
    let vault =
        state.store.create_vault(NewVault { id, sandbox_id: sandbox, name, description, ciphertext }).await.map_err(name_conflict)?;
    Ok((StatusCode::CREATED, Json(view(vault))))
}

/// One vault's description (never its secret).
#[utoipa::path(get, path = "/v1/vaults/{id}", tag = "vaults", params(("id" = String, Path, description = "vault id (`vlt_…`)")),
    responses((status = 200, body = VaultView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<VaultView>> {
    Ok(Json(view(load(&state, &caller, &id, Need::Read).await?)))
}

/// Body of `PATCH /v1/vaults/{id}`: only the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVault {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// A new secret replaces the old one (rotation); the old value is gone for good.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<Option<SecretField>>,
}

/// Renames a vault, changes its description, or rotates its secret. Whatever references the
/// vault uses the new secret from its next use.
#[utoipa::path(patch, path = "/v1/vaults/{id}", tag = "vaults", params(("id" = String, Path, description = "vault id (`vlt_…`)")), request_body = UpdateVault,
    responses((status = 200, body = VaultView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateVault>,
) -> ApiResult<Json<VaultView>> {
    let vault = load(&state, &caller, &id, Need::Write).await?;
    let name = not_null(body.name, "name")?.map(|n| vault_name(&n, "name")).transpose()?;
    let description = not_null(body.description, "description")?.map(|d| vault_description(&d, "description")).transpose()?;
    let secret = not_null(body.secret, "secret")?;
    if let Some(s) = &secret {
        check_secret(&s.0, "secret")?;
    }
    if name.is_none() && description.is_none() && secret.is_none() {
        return Err(ApiError::bad_request("nothing to update: send `name`, `description` or `secret`"));
    }
    let ciphertext = secret.map(|s| state.vault.encrypt(vault.sandbox_id.as_str(), vault.id.as_str(), &s.0));
    let updated = state.store.update_vault(&vault.id, VaultUpdate { name, description, ciphertext }).await.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found("vault", &id),
        other => name_conflict(other),
    })?;
    Ok(Json(view(updated)))
}

/// Deletes a vault and its secret. Irreversible; owner only. Refused (409) while a provider
/// uses it as its API key.
#[utoipa::path(delete, path = "/v1/vaults/{id}", tag = "vaults", params(("id" = String, Path, description = "vault id (`vlt_…`)")),
    responses((status = 200, body = Deleted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Deleted>> {
    let vault = load(&state, &caller, &id, Need::Owner).await?;
    state.store.delete_vault(&vault.id).await.map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found("vault", &id),
        other => other.into(),
    })?;
    Ok(Json(Deleted { id: vault.id.to_string(), deleted: true }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_json;

    #[test]
    fn request_debug_never_shows_the_secret() {
        let create: CreateVault = parse_json(br#"{"name": "k", "secret": "sk-debug-leak"}"#).unwrap();
        let update: UpdateVault = parse_json(br#"{"secret": "sk-debug-leak"}"#).unwrap();
        for printed in [format!("{create:?}"), format!("{update:?}")] {
            assert!(!printed.contains("sk-debug-leak") && printed.contains("<redacted>"), "{printed}");
        }
    }
}
