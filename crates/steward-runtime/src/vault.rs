//! Vault encryption (§8): secrets are sealed with XChaCha20-Poly1305 under a key derived from
//! the server master key, so the database only ever holds ciphertext.
//!
//! A sealed value is `base64(nonce || ciphertext)` with a fresh random 24-byte nonce (large
//! enough that random nonces never collide in practice). The associated data binds the value to
//! its row (`steward-vault-v1:{sandbox_id}:{vault_id}`): a ciphertext copied into another vault
//! or sandbox does not decrypt. This module never logs and never formats a plaintext; the
//! [`Secret`] it hands out redacts itself in `Debug` and `Display`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use steward_core::redact::SecretRegistry;

const NONCE_LEN: usize = 24;
/// Versioned so that a future change of scheme can coexist with stored values.
const AAD_PREFIX: &str = "steward-vault-v1";

/// A secret's plaintext. `Debug` and `Display` print `<redacted>`; only [`Secret::expose`]
/// gives the value, so every use of it is greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The plaintext. Call it only where the value is injected (an outgoing request header, an
    /// environment variable), never to log or return it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a stored value could not be opened. Deliberately vague: which check failed is of no use
/// to a user and of some use to an attacker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Not base64, or too short to hold a nonce and a tag.
    #[error("the stored vault value is malformed")]
    Malformed,
    /// Wrong key, wrong row, or tampered with.
    #[error("the stored vault value does not decrypt with this server's master key (was the master key changed?)")]
    Decrypt,
    /// Decrypted, but not UTF-8 (never written by this module).
    #[error("the stored vault value is not text")]
    NotText,
}

/// Seals and opens vault values with one key. Cheap to clone. With a [`SecretRegistry`], every
/// value it seals or opens joins the set the log writer scrubs: whatever the process handles
/// in plaintext can never appear in a log line, whichever crate writes it.
#[derive(Clone)]
pub struct VaultCipher {
    aead: XChaCha20Poly1305,
    log_redaction: Option<SecretRegistry>,
}

impl fmt::Debug for VaultCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultCipher(<redacted>)")
    }
}

fn aad(sandbox_id: &str, vault_id: &str) -> String {
    format!("{AAD_PREFIX}:{sandbox_id}:{vault_id}")
}

impl VaultCipher {
    /// A cipher over a 32-byte key (derive it from the master key for this purpose only).
    pub fn new(key: [u8; 32]) -> Self {
        Self { aead: XChaCha20Poly1305::new(&key.into()), log_redaction: None }
    }

    /// The same cipher, adding every plaintext it handles to `registry`.
    pub fn registering(mut self, registry: SecretRegistry) -> Self {
        self.log_redaction = Some(registry);
        self
    }

    fn register(&self, plaintext: &str) {
        if let Some(r) = &self.log_redaction {
            r.register(plaintext);
        }
    }

    /// Seals `plaintext` for the vault `vault_id` of `sandbox_id`. Two calls never return the
    /// same text (fresh nonce each time).
    pub fn encrypt(&self, sandbox_id: &str, vault_id: &str, plaintext: &str) -> String {
        self.register(plaintext);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad(sandbox_id, vault_id);
        let sealed = self
            .aead
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: aad.as_bytes() })
            .expect("XChaCha20-Poly1305 encryption fails only for messages larger than 256 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        B64.encode(out)
    }

    /// Opens a value sealed by [`VaultCipher::encrypt`] for the same sandbox and vault.
    pub fn decrypt(&self, sandbox_id: &str, vault_id: &str, stored: &str) -> Result<Secret, VaultError> {
        let raw = B64.decode(stored).map_err(|_| VaultError::Malformed)?;
        // 16 bytes of Poly1305 tag follow the nonce, even for an empty plaintext.
        if raw.len() < NONCE_LEN + 16 {
            return Err(VaultError::Malformed);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let aad = aad(sandbox_id, vault_id);
        let plain =
            self.aead.decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: aad.as_bytes() }).map_err(|_| VaultError::Decrypt)?;
        let plain = String::from_utf8(plain).map_err(|_| VaultError::NotText)?;
        self.register(&plain);
        Ok(Secret(plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SBX: &str = "sbx_01kaaaaaaaaaaaaaaaaaaaaaaa";
    const VLT: &str = "vlt_01kbbbbbbbbbbbbbbbbbbbbbbb";

    fn cipher() -> VaultCipher {
        VaultCipher::new([7u8; 32])
    }

    #[test]
    fn every_plaintext_handled_joins_the_log_redaction() {
        let registry = SecretRegistry::new();
        let c = cipher().registering(registry.clone());
        let sealed = c.encrypt(SBX, VLT, "sealed-secret-1");
        assert_eq!(registry.redactor().redact("a sealed-secret-1"), "a [redacted]");
        let other = cipher().encrypt(SBX, VLT, "opened-secret-2");
        assert_eq!(registry.redactor().redact("opened-secret-2"), "opened-secret-2", "sealed by a cipher without the registry");
        c.decrypt(SBX, VLT, &other).unwrap();
        assert_eq!(registry.redactor().redact("opened-secret-2"), "[redacted]");
        assert_eq!(c.decrypt(SBX, VLT, &sealed).unwrap().expose(), "sealed-secret-1");
    }

    #[test]
    fn round_trip() {
        let c = cipher();
        for plain in ["sk-ant-api03-xyz", "ünïcödé 🔑", &"x".repeat(64 * 1024)] {
            let sealed = c.encrypt(SBX, VLT, plain);
            assert!(!sealed.contains(plain));
            assert_eq!(c.decrypt(SBX, VLT, &sealed).unwrap().expose(), plain);
        }
    }

    #[test]
    fn wrong_row_or_key_fails() {
        let c = cipher();
        let sealed = c.encrypt(SBX, VLT, "hunter2");
        assert_eq!(c.decrypt(SBX, "vlt_01kccccccccccccccccccccccc", &sealed), Err(VaultError::Decrypt));
        assert_eq!(c.decrypt("sbx_01kddddddddddddddddddddddd", VLT, &sealed), Err(VaultError::Decrypt));
        assert_eq!(VaultCipher::new([8u8; 32]).decrypt(SBX, VLT, &sealed), Err(VaultError::Decrypt));
    }

    #[test]
    fn tampering_fails() {
        let c = cipher();
        let sealed = c.encrypt(SBX, VLT, "hunter2");
        let mut raw = B64.decode(&sealed).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            raw[i] ^= 0x01;
            assert_eq!(c.decrypt(SBX, VLT, &B64.encode(&raw)), Err(VaultError::Decrypt), "flipped byte {i}");
            raw[i] ^= 0x01;
        }
        raw.truncate(NONCE_LEN + 15);
        assert_eq!(c.decrypt(SBX, VLT, &B64.encode(&raw)), Err(VaultError::Malformed));
        assert_eq!(c.decrypt(SBX, VLT, "not base64!"), Err(VaultError::Malformed));
    }

    #[test]
    fn two_encryptions_differ() {
        let c = cipher();
        let (a, b) = (c.encrypt(SBX, VLT, "same"), c.encrypt(SBX, VLT, "same"));
        assert_ne!(a, b);
        assert_eq!(c.decrypt(SBX, VLT, &a).unwrap(), c.decrypt(SBX, VLT, &b).unwrap());
    }

    #[test]
    fn nothing_prints_the_plaintext() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s}"), "<redacted>");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", cipher()).contains('7'));
    }
}
