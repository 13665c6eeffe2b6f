//! HMAC-SHA256, the one implementation of it: Steward's own webhook signature (inbound
//! triggers and outbound notifications: `v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`) and
//! the vendors' schemes in `integration::verify`. Verification is constant time (`hmac`'s
//! `verify_slice`).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Longest hex signature accepted (a SHA-512 HMAC is 128 hex digits), so a hostile header
/// cannot make us decode megabytes.
const MAX_HEX: usize = 128;

fn mac(secret: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// HMAC-SHA256 of the concatenated `parts` under `secret`.
pub fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    mac(secret, parts).finalize().into_bytes().into()
}

/// Whether `given` is the HMAC-SHA256 of `parts` under `secret` (constant time).
pub fn hmac_sha256_matches(secret: &[u8], parts: &[&[u8]], given: &[u8]) -> bool {
    mac(secret, parts).verify_slice(given).is_ok()
}

/// Bytes of a hex string of at most 128 digits, or `None`.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() > MAX_HEX {
        return None;
    }
    hex::decode(s).ok()
}

/// Steward's webhook signature of `body` sent at `ts` (unix seconds): `v1=<hex>`.
pub fn steward_signature(secret: &str, ts: i64, body: &[u8]) -> String {
    format!("v1={}", hex::encode(hmac_sha256(secret.as_bytes(), &[ts.to_string().as_bytes(), b".", body])))
}

/// Whether `header` (`v1=<hex>`) is Steward's signature of `body` at `ts`. `Err` says what is
/// malformed; `Ok(false)` is a well-formed signature that does not match.
pub fn steward_signature_matches(secret: &str, ts: i64, body: &[u8], header: &str) -> Result<bool, &'static str> {
    let hex = header.trim().strip_prefix("v1=").ok_or("`Steward-Signature` must look like `v1=<hex HMAC-SHA256>`")?;
    let given = decode_hex(hex).ok_or("`Steward-Signature` is not hex")?;
    Ok(hmac_sha256_matches(secret.as_bytes(), &[ts.to_string().as_bytes(), b".", body], &given))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_case_2_and_steward_signatures() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(hmac_sha256_matches(b"Jefe", &[b"what do ya want for nothing?"], &mac));
        assert!(!hmac_sha256_matches(b"Jefe", &[b"what do ya want for nothing!"], &mac));

        let sig = steward_signature("whsec_k", 1_764_000_000, b"{}");
        assert_eq!(steward_signature_matches("whsec_k", 1_764_000_000, b"{}", &sig), Ok(true));
        assert_eq!(steward_signature_matches("whsec_k", 1_764_000_001, b"{}", &sig), Ok(false));
        assert_eq!(steward_signature_matches("other", 1_764_000_000, b"{}", &sig), Ok(false));
        assert!(steward_signature_matches("whsec_k", 1, b"{}", "sha256=00").is_err());
        assert!(steward_signature_matches("whsec_k", 1, b"{}", "v1=zz").is_err());
        assert!(steward_signature_matches("whsec_k", 1, b"{}", &format!("v1={}", "0".repeat(130))).is_err());
    }
}
