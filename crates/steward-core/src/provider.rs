//! Model providers (§8): where a sandbox's agents send model calls. A provider is addressed by
//! a slug chosen by the user (`anthropic`, `local-vllm`), unique per sandbox, which agents name
//! in `model.provider_id`; it says which wire protocol to speak, where, with which API key (a
//! vault reference, never the key itself) and which models it serves.
//!
//! A configuration is validated as a whole after every change, so an impossible combination
//! (an `openai_compatible` provider without a URL) can never be stored. Errors name the field.

use std::fmt;
use std::str::FromStr;

use crate::ValidationError;
use crate::agent::check_slug;
use crate::ids::{self, SandboxId, VaultId};

/// Longest base URL, in bytes.
pub const MAX_BASE_URL_LEN: usize = 2048;
/// Most models one provider may list.
pub const MAX_MODELS: usize = 100;
const MAX_MODEL_NAME_CHARS: usize = 200;

/// A provider's id: a slug unique within its sandbox. Generated ids (`prv_…`) are slugs too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderId(String);

impl ProviderId {
    pub const PREFIX: &'static str = "prv_";

    /// A fresh `prv_…` id, for providers created without one.
    pub fn generate() -> Self {
        Self(ids::fresh(Self::PREFIX))
    }

    /// Parses user input: 1–63 lowercase letters, digits, `-` or `_`, starting with a letter or
    /// digit.
    pub fn parse(raw: &str, param: &str) -> Result<Self, ValidationError> {
        check_slug(raw, param)?;
        Ok(Self(raw.to_owned()))
    }

    /// Wraps a value read back from the store.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which wire protocol the runtime speaks to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Anthropic,
    OpenAi,
    Google,
    /// Any server speaking OpenAI's chat completions protocol (vLLM, Ollama, a gateway).
    OpenAiCompatible,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Google => "google",
            ProviderKind::OpenAiCompatible => "openai_compatible",
        }
    }

    /// The public endpoint used when a create request gives no `base_url`; `None` for
    /// `openai_compatible`, which has no default.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::Google => Some("https://generativelanguage.googleapis.com/v1beta"),
            ProviderKind::OpenAiCompatible => None,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "anthropic" => Ok(ProviderKind::Anthropic),
            "openai" => Ok(ProviderKind::OpenAi),
            "google" => Ok(ProviderKind::Google),
            "openai_compatible" => Ok(ProviderKind::OpenAiCompatible),
            other => Err(ValidationError::new(
                "provider",
                format!("`{}` is not a provider kind; use `anthropic`, `openai`, `google` or `openai_compatible`", ids::shorten(other)),
            )),
        }
    }
}

/// The user-editable configuration of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// An `http(s)` URL without credentials, query or fragment, and without a trailing `/`.
    pub base_url: String,
    /// The vault holding the API key, if the provider needs one.
    pub api_key_vault_id: Option<VaultId>,
    /// The model names agents may use with this provider; 1–100, no duplicates.
    pub models: Vec<String>,
}

/// A provider as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub sandbox_id: SandboxId,
    pub id: ProviderId,
    pub config: ProviderConfig,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A partial update: `None` leaves a field as it is; `api_key_vault_id: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderPatch {
    pub kind: Option<ProviderKind>,
    pub base_url: Option<String>,
    pub api_key_vault_id: Option<Option<VaultId>>,
    pub models: Option<Vec<String>>,
}

impl ProviderPatch {
    pub fn is_empty(&self) -> bool {
        *self == ProviderPatch::default()
    }
}

impl ProviderConfig {
    /// A new configuration; a missing `base_url` takes the kind's public endpoint.
    pub fn new(
        kind: ProviderKind,
        base_url: Option<String>,
        api_key_vault_id: Option<VaultId>,
        models: Vec<String>,
    ) -> Result<Self, ValidationError> {
        let base_url = match base_url {
            Some(u) => u,
            None => default_url(kind)?,
        };
        ProviderConfig { kind, base_url, api_key_vault_id, models }.validated()
    }

    /// Checks every field (normalising the URL); the first problem found names its field.
    pub fn validated(mut self) -> Result<Self, ValidationError> {
        self.base_url = check_base_url(&self.base_url)?;
        check_models(&self.models)?;
        Ok(self)
    }

    /// This config with `patch` applied, validated. Changing the kind without a `base_url`
    /// moves a URL that was the old kind's default to the new kind's default; a custom URL
    /// is kept.
    pub fn patched(&self, patch: ProviderPatch) -> Result<Self, ValidationError> {
        let mut c = self.clone();
        if let Some(kind) = patch.kind
            && kind != c.kind
        {
            if patch.base_url.is_none() && c.kind.default_base_url() == Some(c.base_url.as_str()) {
                c.base_url = default_url(kind)?;
            }
            c.kind = kind;
        }
        if let Some(v) = patch.base_url {
            c.base_url = v;
        }
        if let Some(v) = patch.api_key_vault_id {
            c.api_key_vault_id = v;
        }
        if let Some(v) = patch.models {
            c.models = v;
        }
        c.validated()
    }
}

fn default_url(kind: ProviderKind) -> Result<String, ValidationError> {
    kind.default_base_url().map(str::to_owned).ok_or_else(|| {
        ValidationError::new(
            "base_url",
            format!("a `{kind}` provider has no default endpoint; give its `base_url` (e.g. `http://127.0.0.1:8000/v1`)"),
        )
    })
}

/// Checks a base URL by hand (the domain crate takes no URL parser): `http` or `https`, a host
/// (name, IPv4 or bracketed IPv6) with an optional port, an optional path; no user info, query
/// or fragment, nothing outside printable ASCII. Returns it without trailing slashes.
fn check_base_url(raw: &str) -> Result<String, ValidationError> {
    let bad = |why: &str| {
        ValidationError::new(
            "base_url",
            format!("`{}` is not a usable base URL: {why} (e.g. `https://api.openai.com/v1`)", ids::shorten(raw)),
        )
    };
    if raw.len() > MAX_BASE_URL_LEN {
        return Err(ValidationError::new("base_url", format!("is {} bytes long; the limit is {MAX_BASE_URL_LEN}", raw.len())));
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("it contains spaces, control or non-ASCII characters; percent-encode them"));
    }
    let Some(rest) = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://")) else {
        return Err(bad("use an `http://` or `https://` URL"));
    };
    if raw.contains(['?', '#']) {
        return Err(bad("it has a query or fragment; give only scheme, host, port and path"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(bad("it contains a user name or password; store credentials in a vault and name it in `api_key_vault_id`"));
    }
    let port = match authority.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or_else(|| bad("an IPv6 address needs a closing `]`"))?;
            if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
                return Err(bad("the IPv6 address is malformed"));
            }
            match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("expected `:port` after the IPv6 address"))?),
            }
        }
        None => {
            let (h, p) = match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            if !h.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) {
                return Err(bad("the host name is missing or malformed"));
            }
            p
        }
    };
    if let Some(p) = port
        && !(p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0))
    {
        return Err(bad("the port must be a number from 1 to 65535"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

fn check_models(models: &[String]) -> Result<(), ValidationError> {
    if models.is_empty() {
        return Err(ValidationError::new("models", "list at least one model this provider serves (e.g. `[\"claude-sonnet-4-6\"]`)"));
    }
    if models.len() > MAX_MODELS {
        return Err(ValidationError::new("models", format!("has {} entries; the limit is {MAX_MODELS}", models.len())));
    }
    for (i, m) in models.iter().enumerate() {
        let n = m.chars().count();
        if n == 0 || n > MAX_MODEL_NAME_CHARS || m.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValidationError::new(
                format!("models[{i}]"),
                format!("`{}` is not a model name: use 1–200 characters without spaces (e.g. `gpt-5`)", ids::shorten(m)),
            ));
        }
        if models[..i].contains(m) {
            return Err(ValidationError::new(
                format!("models[{i}]"),
                format!("`{}` is listed twice; list each model once", ids::shorten(m)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_fill_the_base_url_except_for_openai_compatible() {
        let c = ProviderConfig::new(ProviderKind::Anthropic, None, None, models(&["claude-sonnet-4-6"])).unwrap();
        assert_eq!(c.base_url, "https://api.anthropic.com");
        let c = ProviderConfig::new(ProviderKind::Google, None, None, models(&["gemini-2.5-pro"])).unwrap();
        assert_eq!(c.base_url, "https://generativelanguage.googleapis.com/v1beta");
        let err = ProviderConfig::new(ProviderKind::OpenAiCompatible, None, None, models(&["llama"])).unwrap_err();
        assert_eq!(err.param, "base_url");
        let c = ProviderConfig::new(ProviderKind::OpenAiCompatible, Some("http://127.0.0.1:8000/v1/".into()), None, models(&["llama"]))
            .unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:8000/v1", "trailing slashes are dropped");
    }

    #[test]
    fn kinds_parse_and_unknown_ones_name_the_field() {
        for k in [ProviderKind::Anthropic, ProviderKind::OpenAi, ProviderKind::Google, ProviderKind::OpenAiCompatible] {
            assert_eq!(k.as_str().parse::<ProviderKind>().unwrap(), k);
        }
        assert_eq!("mistral".parse::<ProviderKind>().unwrap_err().param, "provider");
    }

    #[test]
    fn base_urls() {
        for ok in [
            "https://api.openai.com/v1",
            "http://localhost:11434",
            "http://10.0.0.7:8000/v1",
            "http://[::1]:8080/v1",
            "https://gateway.example.com/openai/deployments/x",
        ] {
            assert!(check_base_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "api.openai.com",
            "ftp://example.com",
            "https://",
            "https://user:pass@example.com",
            "https://example.com/v1?key=x",
            "https://example.com/#frag",
            "https://exa mple.com",
            "https://example.com:0",
            "https://example.com:99999",
            "https://example..com",
            "https://[::1",
            "https://exämple.com",
        ] {
            assert_eq!(check_base_url(bad).unwrap_err().param, "base_url", "{bad:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_BASE_URL_LEN));
        assert_eq!(check_base_url(&long).unwrap_err().param, "base_url");
    }

    #[test]
    fn models_are_checked_one_by_one() {
        let base = || ProviderConfig::new(ProviderKind::OpenAi, None, None, models(&["gpt-5"])).unwrap();
        let cases: Vec<(Vec<String>, &str)> = vec![
            (vec![], "models"),
            (models(&["gpt-5", "gpt-5"]), "models[1]"),
            (models(&["gpt 5"]), "models[0]"),
            (models(&["ok", ""]), "models[1]"),
            (vec!["x".repeat(201)], "models[0]"),
            ((0..101).map(|i| format!("m{i}")).collect(), "models"),
        ];
        for (m, param) in cases {
            let err = base().patched(ProviderPatch { models: Some(m), ..Default::default() }).unwrap_err();
            assert_eq!(err.param, param);
        }
    }

    #[test]
    fn patch_changes_only_present_fields_and_follows_default_urls() {
        let vault = VaultId::generate();
        let c = ProviderConfig::new(ProviderKind::Anthropic, None, Some(vault.clone()), models(&["claude-sonnet-4-6"])).unwrap();
        let openai = c.patched(ProviderPatch { kind: Some(ProviderKind::OpenAi), ..Default::default() }).unwrap();
        assert_eq!(openai.base_url, "https://api.openai.com/v1");
        assert_eq!((openai.api_key_vault_id.as_ref(), &openai.models), (Some(&vault), &c.models));
        let cleared = c.patched(ProviderPatch { api_key_vault_id: Some(None), ..Default::default() }).unwrap();
        assert_eq!(cleared.api_key_vault_id, None);
        let err = c.patched(ProviderPatch { kind: Some(ProviderKind::OpenAiCompatible), ..Default::default() }).unwrap_err();
        assert_eq!(err.param, "base_url");
        let custom = c.patched(ProviderPatch { base_url: Some("https://proxy.example.com".into()), ..Default::default() }).unwrap();
        let moved = custom.patched(ProviderPatch { kind: Some(ProviderKind::OpenAiCompatible), ..Default::default() }).unwrap();
        assert_eq!(moved.base_url, "https://proxy.example.com", "a custom URL is kept");
    }

    #[test]
    fn ids_are_slugs_and_generated_ones_too() {
        assert!(ProviderId::parse("local-vllm", "id").is_ok());
        assert_eq!(ProviderId::parse("Local VLLM", "id").unwrap_err().param, "id");
        let g = ProviderId::generate();
        assert!(g.as_str().starts_with("prv_"));
        assert!(ProviderId::parse(g.as_str(), "id").is_ok());
    }
}
