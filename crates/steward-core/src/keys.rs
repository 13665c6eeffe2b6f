//! API-key material (§1): `stw_` prefixed, ≥256 bits of randomness, stored only as a SHA-256
//! hash. One hash and a constant-time compare per request is enough for keys this long; a slow
//! password hash would buy nothing.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The prefix every Steward API key carries, so secret scanners and humans recognise one.
pub const KEY_PREFIX: &str = "stw_";

/// A freshly minted key: the plaintext (shown once) and what is stored.
#[derive(Clone)]
pub struct MintedKey {
    pub plaintext: String,
    pub hash: String,
    /// The first characters, safe to list so a user can tell keys apart.
    pub display_prefix: String,
}

impl std::fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedKey").field("display_prefix", &self.display_prefix).finish_non_exhaustive()
    }
}

/// Mints a new random key.
pub fn mint() -> MintedKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let plaintext = format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let display_prefix = plaintext[..KEY_PREFIX.len() + 6].to_owned();
    MintedKey { hash: hash(&plaintext), plaintext, display_prefix }
}

/// The stored form of a key: lowercase hex SHA-256 of the whole plaintext.
pub fn hash(plaintext: &str) -> String {
    let digest = Sha256::digest(plaintext.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `candidate` looks like a Steward key at all (cheap pre-check before a lookup).
pub fn looks_like_key(candidate: &str) -> bool {
    candidate.len() == KEY_PREFIX.len() + 43
        && candidate.starts_with(KEY_PREFIX)
        && candidate[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Constant-time equality of two hashes.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A short numeric one-time code for email login, and helpers to store it hashed.
pub fn login_code() -> String {
    let n = rand::rng().next_u32() % 1_000_000;
    format!("{n:06}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_prefixed_unique_and_hash_stably() {
        let a = mint();
        let b = mint();
        assert!(a.plaintext.starts_with("stw_"));
        assert!(looks_like_key(&a.plaintext));
        assert_ne!(a.plaintext, b.plaintext);
        assert_eq!(hash(&a.plaintext), a.hash);
        assert!(hashes_equal(&a.hash, &hash(&a.plaintext)));
        assert!(!hashes_equal(&a.hash, &b.hash));
        assert!(!format!("{a:?}").contains(&a.plaintext));
    }

    #[test]
    fn login_codes_are_six_digits() {
        for _ in 0..100 {
            let c = login_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
