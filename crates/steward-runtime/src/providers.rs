//! Turning an agent's `model.provider_id` into a model client: the sandbox's provider
//! configuration, its API key decrypted from the vault at the moment of use, and one shared
//! HTTP connection pool. Every client is wrapped so that nothing the provider answers (an error
//! body, an error event in the stream) carries the key back: a provider or a proxy that answers
//! `401 invalid x-api-key: <the key>` has the key replaced before the error becomes an event, a
//! stored run error or a trace entry.
//!
//! The provider row and the vault's ciphertext come through the store's cache (an update is
//! seen by the next run). The decrypted key is not cached: opening it is cheap and does no I/O,
//! a long-lived cache of plaintext keys would keep every tenant's key in memory between runs,
//! and each opening re-adds the key to the log redactor's bounded registry.

use std::sync::Arc;

use futures::StreamExt;
use steward_core::admission::Refusal;
use steward_core::ids::SandboxId;
use steward_core::provider::{ProviderConfig, ProviderId, ProviderKind};
use steward_core::redact::Redactor;
use steward_llm::{ApiKey, ClientConfig, EventStream, LlmError, ModelClient, ModelRequest, RetryPolicy, StreamEvent, Timeouts};
use steward_store::{Store, StoreError};

use crate::vault::VaultCipher;

/// Why a provider could not be used; `kind` becomes the `agent_error` type.
#[derive(Debug, Clone)]
pub struct ResolveError {
    pub kind: &'static str,
    pub message: String,
}

fn config_error(message: String) -> ResolveError {
    ResolveError { kind: "provider_config", message }
}

/// Resolves provider ids to clients.
#[derive(Debug, Clone)]
pub struct Providers {
    store: Store,
    vault: VaultCipher,
    http: reqwest::Client,
    timeouts: Timeouts,
    retry: RetryPolicy,
}

impl Providers {
    /// The cipher sealing vault secrets (shared with integrations' tokens).
    pub(crate) fn vault(&self) -> &VaultCipher {
        &self.vault
    }

    pub fn new(store: Store, vault: VaultCipher, timeouts: Timeouts, retry: RetryPolicy) -> Self {
        Self { store, http: steward_llm::http_client(&timeouts), vault, timeouts, retry }
    }

    /// The cipher of vault secrets (also seals other server-held secrets, keyed by their id).
    pub fn cipher(&self) -> &VaultCipher {
        &self.vault
    }

    /// The decrypted secret of vault `vault_id` of `sandbox`, or a readable reason.
    pub(crate) async fn secret(&self, sandbox: &SandboxId, vault_id: &steward_core::ids::VaultId) -> Result<crate::vault::Secret, String> {
        let sealed = self
            .store
            .vault_ciphertext(vault_id)
            .await
            .map_err(|e| format!("cannot read vault {vault_id}: {e}"))?
            .ok_or_else(|| format!("vault {vault_id} no longer exists"))?;
        self.vault
            .decrypt(sandbox.as_str(), vault_id.as_str(), &sealed)
            .map_err(|_| format!("vault {vault_id} is not a vault of this sandbox or cannot be decrypted with this server's master key"))
    }

    /// Checks that the agent's provider exists in `sandbox` and offers `model`, without
    /// touching its key: the cheap pre-flight of work accepted now and run later.
    pub async fn check(&self, sandbox: &SandboxId, provider_id: &str, model: &str) -> Result<(), ResolveError> {
        self.config_for(sandbox, provider_id, model).await.map(|_| ())
    }

    async fn config_for(&self, sandbox: &SandboxId, provider_id: &str, model: &str) -> Result<ProviderConfig, ResolveError> {
        match self.offering(sandbox, provider_id, model).await {
            Ok(Ok(config)) => Ok(config),
            Ok(Err(refusal)) => Err(config_error(refusal.to_string())),
            Err(e) => Err(ResolveError { kind: "internal_error", message: format!("cannot read the provider: {e}") }),
        }
    }

    /// The configuration of provider `provider_id` of `sandbox` if it exists and offers
    /// `model`, else the admission refusal saying which (`crate::admission` and the run's own
    /// resolution share it). A store failure is an error, not a refusal.
    pub async fn offering(
        &self,
        sandbox: &SandboxId,
        provider_id: &str,
        model: &str,
    ) -> Result<Result<ProviderConfig, Refusal>, StoreError> {
        let missing = || Refusal::ProviderNotConfigured { provider: provider_id.to_owned() };
        // A provider id that does not parse names no provider (agent validation keeps them slugs).
        let Ok(id) = ProviderId::parse(provider_id, "model.provider_id") else { return Ok(Err(missing())) };
        let Some(provider) = self.store.cached_provider(sandbox, &id).await? else { return Ok(Err(missing())) };
        let config = provider.config;
        Ok(steward_core::admission::check_model(provider_id, model, &config.models).map(|()| config))
    }

    /// Checks that `provider_id` exists in the sandbox and offers `model`; returns a client.
    pub async fn client_for(&self, sandbox: &SandboxId, provider_id: &str, model: &str) -> Result<Arc<dyn ModelClient>, ResolveError> {
        let config = self.config_for(sandbox, provider_id, model).await?;
        let api_key = match &config.api_key_vault_id {
            None => None,
            Some(vault_id) => {
                let sealed = self
                    .store
                    .vault_ciphertext(vault_id)
                    .await
                    .map_err(|e| ResolveError { kind: "internal_error", message: format!("cannot read the vault: {e}") })?
                    .ok_or_else(|| config_error(format!("provider `{provider_id}` names vault {vault_id}, which no longer exists")))?;
                let secret = self.vault.decrypt(sandbox.as_str(), vault_id.as_str(), &sealed).map_err(|_| ResolveError {
                    kind: "vault_error",
                    message: format!("vault {vault_id} cannot be decrypted with this server's master key"),
                })?;
                Some(ApiKey::new(secret.expose().to_owned()))
            }
        };
        let kind = match config.kind {
            ProviderKind::Anthropic => steward_llm::ProviderKind::Anthropic,
            ProviderKind::OpenAi => steward_llm::ProviderKind::OpenAi,
            ProviderKind::Google => steward_llm::ProviderKind::Google,
            ProviderKind::OpenAiCompatible => steward_llm::ProviderKind::OpenAiCompatible,
        };
        let redactor = Redactor::new(api_key.as_ref().map(ApiKey::expose));
        let client_config = ClientConfig {
            kind,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            api_key,
            timeouts: self.timeouts,
            retry: self.retry,
        };
        let client = steward_llm::client(client_config, self.http.clone());
        Ok(if redactor.is_empty() { client } else { Arc::new(Redacting { client, redactor }) })
    }
}

/// A model client whose errors never carry the secrets it was given (see the module doc).
#[derive(Debug)]
struct Redacting {
    client: Arc<dyn ModelClient>,
    redactor: Redactor,
}

#[async_trait::async_trait]
impl ModelClient for Redacting {
    async fn stream(&self, request: &ModelRequest) -> Result<EventStream, LlmError> {
        let redact = |e: LlmError, r: &Redactor| e.map_text(|m| r.redact_string(m));
        let stream = self.client.stream(request).await.map_err(|e| redact(e, &self.redactor))?;
        let redactor = self.redactor.clone();
        Ok(Box::pin(stream.map(move |item| match item {
            Err(e) => Err(redact(e, &redactor)),
            // Generated text never holds the key unless something between us and the model put
            // it there; it is checked anyway (per delta: a key split across two is not caught).
            Ok(StreamEvent::TextDelta(t)) => Ok(StreamEvent::TextDelta(redactor.redact_string(t))),
            Ok(StreamEvent::ToolCall { id, name, mut arguments }) => {
                redactor.redact_json(&mut arguments);
                Ok(StreamEvent::ToolCall { id, name, arguments })
            }
            Ok(other) => Ok(other),
        })))
    }
}
