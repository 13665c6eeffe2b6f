//! Short-lived signed session tokens (JWT, HS256) issued after email login and accepted as
//! `Bearer` alongside API keys.
//!
//! Only HS256 with our own key is ever produced or accepted, so a small implementation of
//! RFC 7519's compact form is used instead of a general JWT library (which would pull RSA and
//! elliptic-curve stacks we never use). The `alg` header is checked, not trusted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use steward_core::ids::{AccountId, SandboxId};

use crate::secrets::MasterKey;

const ISSUER: &str = "steward";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    iat: i64,
    exp: i64,
    /// Confines the token to one sandbox (tokens the Concierge's tools use): every other
    /// sandbox answers 404 to it, whatever the account's grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sbx: Option<String>,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub account: AccountId,
    pub confined_to: Option<SandboxId>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

/// Signs and verifies session tokens.
#[derive(Clone)]
pub struct SessionTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionTokens(<redacted>)")
    }
}

impl SessionTokens {
    pub fn new(master: &MasterKey) -> Self {
        Self { key: master.derive("steward/session-token/v1") }
    }

    fn mac(&self) -> hmac::Hmac<Sha256> {
        <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// A token for `account`, valid from `now_secs` for `ttl_secs`.
    pub fn issue(&self, account: &AccountId, now_secs: i64, ttl_secs: i64) -> String {
        self.sign(Claims { iss: ISSUER.into(), sub: account.to_string(), iat: now_secs, exp: now_secs + ttl_secs, sbx: None })
    }

    /// A token for `account` that acts only in `sandbox` (the Concierge's tools).
    pub fn issue_confined(&self, account: &AccountId, sandbox: &SandboxId, now_secs: i64, ttl_secs: i64) -> String {
        self.sign(Claims {
            iss: ISSUER.into(),
            sub: account.to_string(),
            iat: now_secs,
            exp: now_secs + ttl_secs,
            sbx: Some(sandbox.to_string()),
        })
    }

    fn sign(&self, claims: Claims) -> String {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = B64.encode(serde_json::to_vec(&claims).expect("claims serialise"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// The account a valid token names.
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<AccountId, TokenError> {
        self.verify_full(token, now_secs).map(|v| v.account)
    }

    /// The account a valid token names, and the sandbox it is confined to.
    pub fn verify_full(&self, token: &str, now_secs: i64) -> Result<Verified, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(h).map_err(|_| TokenError::Malformed)?).map_err(|_| TokenError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Malformed);
        }
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
        let claims: Claims =
            serde_json::from_slice(&B64.decode(p).map_err(|_| TokenError::Malformed)?).map_err(|_| TokenError::Malformed)?;
        if claims.iss != ISSUER {
            return Err(TokenError::Malformed);
        }
        if claims.exp <= now_secs {
            return Err(TokenError::Expired);
        }
        let account = AccountId::parse(&claims.sub, "sub").map_err(|_| TokenError::Malformed)?;
        let confined_to = claims.sbx.map(|s| SandboxId::parse(&s, "sbx")).transpose().map_err(|_| TokenError::Malformed)?;
        Ok(Verified { account, confined_to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> SessionTokens {
        SessionTokens::new(&MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap())
    }

    #[test]
    fn round_trip_expiry_and_tampering() {
        let t = tokens();
        let acc = AccountId::generate();
        let tok = t.issue(&acc, 1000, 60);
        assert_eq!(t.verify(&tok, 1001).unwrap(), acc);
        assert_eq!(t.verify(&tok, 1060), Err(TokenError::Expired));
        let other = SessionTokens::new(&MasterKey::from_base64("HwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap());
        assert_eq!(other.verify(&tok, 1001), Err(TokenError::BadSignature));
        // Swap in a payload naming someone else: the signature no longer matches.
        let forged_payload = B64.encode(format!(r#"{{"iss":"steward","sub":"{}","iat":1000,"exp":99999}}"#, AccountId::generate()));
        let parts: Vec<&str> = tok.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(t.verify(&forged, 1001), Err(TokenError::BadSignature));
        // alg=none is refused.
        let none = format!("{}.{}.", B64.encode(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(t.verify(&none, 1001), Err(TokenError::Malformed));
        assert_eq!(t.verify("garbage", 1001), Err(TokenError::Malformed));
    }
}
