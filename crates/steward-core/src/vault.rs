//! Vaults (§8): named secrets of a sandbox. This module owns their metadata and the rules for
//! names, descriptions and secret values; encryption lives in `steward-runtime` and the
//! plaintext never appears in any type here.
//!
//! Validation messages never quote a secret value, only its size.

use crate::ValidationError;
use crate::agent::check_slug;
use crate::ids::{SandboxId, VaultId};

/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Largest secret, in bytes (UTF-8). Enough for a PEM key or a service-account JSON.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// A vault's metadata. Its sealed value is stored beside it and is read only by code that
/// injects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vault {
    pub id: VaultId,
    pub sandbox_id: SandboxId,
    /// Unique within the sandbox; a slug (`anthropic-key`).
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Checks a vault name: 1–63 lowercase letters, digits, `-` or `_`, starting with a letter or
/// digit (the same rule as agent names).
pub fn vault_name(raw: &str, param: &str) -> Result<String, ValidationError> {
    check_slug(raw, param)?;
    Ok(raw.to_owned())
}

/// Checks a description: at most 500 characters, no NUL.
pub fn vault_description(raw: &str, param: &str) -> Result<String, ValidationError> {
    crate::text::check_description(raw, param, MAX_DESCRIPTION_CHARS)?;
    Ok(raw.to_owned())
}

/// Checks a secret value: 1 byte to 64 KiB, no NUL. The message never contains the value.
pub fn check_secret(raw: &str, param: &str) -> Result<(), ValidationError> {
    if raw.is_empty() {
        return Err(ValidationError::new(param, "the secret is empty; send the value to store"));
    }
    if raw.len() > MAX_SECRET_BYTES {
        return Err(ValidationError::new(
            param,
            format!("the secret is {} bytes; the limit is {MAX_SECRET_BYTES} bytes (64 KiB)", raw.len()),
        ));
    }
    if raw.contains('\0') {
        return Err(ValidationError::new(
            param,
            "the secret contains a NUL character; remove it (binary secrets must be encoded, e.g. base64)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_slugs() {
        assert_eq!(vault_name("anthropic-key", "name").unwrap(), "anthropic-key");
        assert!(vault_name("a", "name").is_ok());
        assert!(vault_name(&"a".repeat(63), "name").is_ok());
        for bad in ["", "Upper", "-lead", "has space", "x'; --", &"a".repeat(64)] {
            assert_eq!(vault_name(bad, "name").unwrap_err().param, "name", "{bad:?}");
        }
    }

    #[test]
    fn descriptions_are_bounded() {
        assert!(vault_description(&"é".repeat(500), "description").is_ok());
        assert!(vault_description(&"é".repeat(501), "description").is_err());
        assert!(vault_description("a\0b", "description").is_err());
    }

    #[test]
    fn secrets_are_bounded_and_never_quoted() {
        assert!(check_secret("x", "secret").is_ok());
        assert!(check_secret(&"x".repeat(MAX_SECRET_BYTES), "secret").is_ok());
        for bad in [String::new(), "x".repeat(MAX_SECRET_BYTES + 1), "sk-hidden\0value".to_owned()] {
            let err = check_secret(&bad, "secret").unwrap_err();
            assert_eq!(err.param, "secret");
            assert!(!err.message.contains("sk-hidden") && !err.message.contains("xxxx"), "{}", err.message);
        }
    }
}
