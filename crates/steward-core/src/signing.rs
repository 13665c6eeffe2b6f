//! HMAC-SHA256, the one implementation of it, and the webhook signature schemes built on it:
//!
//! - **Standard Webhooks** (<https://www.standardwebhooks.com>), the scheme new senders and
//!   receivers use: `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`
//!   (several space-separated entries allowed; one matching `v1` entry suffices). The HMAC key
//!   is the base64-decoded part of the secret after `whsec_` ([`standard_key`]).
//! - **Steward's legacy scheme** (`Steward-Signature: v1=<hex HMAC-SHA256 of "<ts>.<body>">`),
//!   kept for existing senders and receivers; its key is the whole secret string, prefix included.
//! - the vendors' schemes in `integration::verify`, and OAuth `state`.
//!
//! Verification is constant time (`hmac`'s `verify_slice`); every decoder is bounded so a
//! hostile header cannot make us decode megabytes; the timestamp window cannot overflow.

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Longest hex signature accepted (a SHA-512 HMAC is 128 hex digits), so a hostile header
/// cannot make us decode megabytes.
const MAX_HEX: usize = 128;
/// Longest base64 signature entry accepted (a SHA-512 HMAC is 88 base64 characters).
const MAX_B64: usize = 128;
/// Most entries read from one `webhook-signature` header (senders rotating keys send two or three).
const MAX_ENTRIES: usize = 16;
/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Base64 that accepts missing or present padding (the Python and JS libraries both do).
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

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

/// Whether a sender's timestamp `ts` (unix seconds) is within `window_secs` of `now_secs`, in
/// either direction. Never overflows: a difference that does not fit an `i64` is outside.
pub fn within_window(now_secs: i64, ts: i64, window_secs: i64) -> bool {
    now_secs.checked_sub(ts).and_then(i64::checked_abs).is_some_and(|d| d <= window_secs)
}

/// A fresh signing secret in the Standard Webhooks format: `whsec_` and the standard base64
/// (with padding) of 32 random bytes, so any Standard Webhooks library can use it as is.
pub fn new_secret() -> String {
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(raw))
}

/// The HMAC key the Standard Webhooks scheme uses for `secret`: the base64 after `whsec_`,
/// decoded. Secrets minted before Standard Webhooks were adopted are base64url without padding
/// (`-` and `_` instead of `+` and `/`); they decode to the 32 bytes they were minted from, the
/// key lenient libraries (Node's `Buffer`) derive too. A secret that decodes in neither alphabet
/// uses its whole text as the key, as the legacy scheme does.
pub fn standard_key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD_LENIENT
        .decode(encoded)
        .or_else(|_| URL_SAFE_LENIENT.decode(encoded))
        .ok()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn standard_parts<'a>(id: &'a str, ts: &'a str, body: &'a [u8]) -> [&'a [u8]; 5] {
    [id.as_bytes(), b".", ts.as_bytes(), b".", body]
}

/// The Standard Webhooks signature of message `id` with `body` sent at `ts`: `v1,<base64>`.
pub fn standard_signature(key: &[u8], id: &str, ts: i64, body: &[u8]) -> String {
    let ts = ts.to_string();
    format!("v1,{}", STANDARD.encode(hmac_sha256(key, &standard_parts(id, &ts, body))))
}

/// Whether one `v1` entry of a `webhook-signature` header (space-separated `v<n>,<base64>`)
/// signs message `id` with `body` at `ts` under `key`. Entries of other versions are skipped.
/// `Err` says what is malformed (no well-formed `v1` entry at all); `Ok(false)` means well-formed
/// entries that do not match.
pub fn standard_signature_matches(key: &[u8], id: &str, ts: i64, body: &[u8], header: &str) -> Result<bool, &'static str> {
    let ts = ts.to_string();
    let parts = standard_parts(id, &ts, body);
    let mut well_formed = false;
    for entry in header.split_ascii_whitespace().take(MAX_ENTRIES) {
        let Some(encoded) = entry.strip_prefix("v1,") else { continue };
        let Some(given) = (encoded.len() <= MAX_B64).then(|| STANDARD_LENIENT.decode(encoded).ok()).flatten().filter(|g| !g.is_empty())
        else {
            continue;
        };
        well_formed = true;
        if hmac_sha256_matches(key, &parts, &given) {
            return Ok(true);
        }
    }
    if well_formed { Ok(false) } else { Err("`webhook-signature` must hold `v1,<base64 HMAC-SHA256>` entries, separated by spaces") }
}

/// Steward's legacy webhook signature of `body` sent at `ts` (unix seconds): `v1=<hex>`.
pub fn steward_signature(secret: &str, ts: i64, body: &[u8]) -> String {
    format!("v1={}", hex::encode(hmac_sha256(secret.as_bytes(), &[ts.to_string().as_bytes(), b".", body])))
}

/// The MAC in a legacy `Steward-Signature` header (`v1=<hex>`) if it signs `body` at `ts`.
/// `Err` says what is malformed; `Ok(None)` is a well-formed signature that does not match.
/// The bytes, not the text, identify the signature (hex is case-insensitive).
pub fn steward_signature_mac(secret: &str, ts: i64, body: &[u8], header: &str) -> Result<Option<Vec<u8>>, &'static str> {
    let hex = header.trim().strip_prefix("v1=").ok_or("`Steward-Signature` must look like `v1=<hex HMAC-SHA256>`")?;
    let given = decode_hex(hex).ok_or("`Steward-Signature` is not hex")?;
    Ok(hmac_sha256_matches(secret.as_bytes(), &[ts.to_string().as_bytes(), b".", body], &given).then_some(given))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_case_2_and_legacy_signatures() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(hmac_sha256_matches(b"Jefe", &[b"what do ya want for nothing?"], &mac));
        assert!(!hmac_sha256_matches(b"Jefe", &[b"what do ya want for nothing!"], &mac));

        let sig = steward_signature("whsec_k", 1_764_000_000, b"{}");
        let mac = steward_signature_mac("whsec_k", 1_764_000_000, b"{}", &sig).unwrap().expect("matches");
        assert_eq!(format!("v1={}", hex::encode(&mac)), sig);
        // Upper-case hex is the same signature, hence the same MAC bytes.
        assert_eq!(steward_signature_mac("whsec_k", 1_764_000_000, b"{}", &sig.to_uppercase().replace("V1=", "v1=")), Ok(Some(mac)));
        assert_eq!(steward_signature_mac("whsec_k", 1_764_000_001, b"{}", &sig), Ok(None));
        assert_eq!(steward_signature_mac("other", 1_764_000_000, b"{}", &sig), Ok(None));
        assert!(steward_signature_mac("whsec_k", 1, b"{}", "sha256=00").is_err());
        assert!(steward_signature_mac("whsec_k", 1, b"{}", "v1=zz").is_err());
        assert!(steward_signature_mac("whsec_k", 1, b"{}", &format!("v1={}", "0".repeat(130))).is_err());
    }

    // The published test vector of the Standard Webhooks libraries (`test_sign_function` in
    // standard-webhooks/libraries/python/tests/test_webhooks.py, the same in the other languages).
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn standard_webhooks_test_vector_signs_and_verifies() {
        let key = standard_key(VECTOR_SECRET);
        assert_eq!(key, STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap());
        assert_eq!(standard_signature(&key, VECTOR_ID, VECTOR_TS, VECTOR_BODY), VECTOR_SIG);
        assert_eq!(standard_signature_matches(&key, VECTOR_ID, VECTOR_TS, VECTOR_BODY, VECTOR_SIG), Ok(true));
        // The id, the timestamp, the body and the key are all covered.
        assert_eq!(standard_signature_matches(&key, "msg_other", VECTOR_TS, VECTOR_BODY, VECTOR_SIG), Ok(false));
        assert_eq!(standard_signature_matches(&key, VECTOR_ID, VECTOR_TS + 1, VECTOR_BODY, VECTOR_SIG), Ok(false));
        assert_eq!(standard_signature_matches(&key, VECTOR_ID, VECTOR_TS, b"{}", VECTOR_SIG), Ok(false));
        assert_eq!(standard_signature_matches(b"other key", VECTOR_ID, VECTOR_TS, VECTOR_BODY, VECTOR_SIG), Ok(false));
        // The library's tampered signature (last character changed) does not match.
        let tampered = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert_eq!(standard_signature_matches(&key, VECTOR_ID, VECTOR_TS, VECTOR_BODY, tampered), Ok(false));
    }

    #[test]
    fn one_matching_v1_entry_among_several_suffices() {
        let key = standard_key(VECTOR_SECRET);
        let wrong = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let other_version = format!("v2,{}", &VECTOR_SIG[3..]);
        let header = format!("{wrong} {other_version} {VECTOR_SIG} {wrong}");
        assert_eq!(standard_signature_matches(&key, VECTOR_ID, VECTOR_TS, VECTOR_BODY, &header), Ok(true));
        // Only wrong entries: well-formed, no match.
        assert_eq!(standard_signature_matches(&key, VECTOR_ID, VECTOR_TS, VECTOR_BODY, &format!("{wrong} {wrong}")), Ok(false));
        // A matching signature under another version label does not count.
        assert!(standard_signature_matches(&key, VECTOR_ID, VECTOR_TS, VECTOR_BODY, &other_version).is_err());
        // Unpadded base64 is accepted, as the libraries accept it.
        assert_eq!(standard_signature_matches(&key, VECTOR_ID, VECTOR_TS, VECTOR_BODY, VECTOR_SIG.trim_end_matches('=')), Ok(true));
    }

    #[test]
    fn malformed_standard_headers_are_errors_not_matches() {
        let key = standard_key(VECTOR_SECRET);
        let check = |h: &str| standard_signature_matches(&key, VECTOR_ID, VECTOR_TS, VECTOR_BODY, h);
        for bad in ["", "   ", "v1", "v1,", "v1=abc", "v1,not base64!", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="] {
            assert!(check(bad).is_err(), "{bad:?} should be malformed");
        }
        assert!(check(&format!("v1,{}", "A".repeat(200))).is_err(), "an oversized entry is not decoded");
        // Entries past the bound are not read, even a matching one.
        let many = format!("{} {VECTOR_SIG}", vec!["v1,AAAA"; MAX_ENTRIES].join(" "));
        assert_eq!(check(&many), Ok(false));
    }

    #[test]
    fn secrets_are_minted_for_standard_webhooks_and_old_ones_keep_their_bytes() {
        let s = new_secret();
        let encoded = s.strip_prefix("whsec_").expect("prefixed");
        let raw = STANDARD.decode(encoded).expect("standard base64 with padding");
        assert_eq!(raw.len(), 32);
        assert_eq!(standard_key(&s), raw);
        assert_ne!(new_secret(), s);
        // A secret minted before (base64url, no padding) decodes to the bytes it was minted from.
        let old_raw: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(250)).collect();
        let old = format!("whsec_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&old_raw));
        assert!(old.contains('-') || old.contains('_'), "the sample must exercise the URL-safe alphabet: {old}");
        assert_eq!(standard_key(&old), old_raw);
        // Not base64 in either alphabet (mixed `+` and `_`): the whole text is the key.
        assert_eq!(standard_key("whsec_a+b_c"), b"whsec_a+b_c".to_vec());
        assert_eq!(standard_key("whsec_"), b"whsec_".to_vec());
    }

    #[test]
    fn the_window_never_overflows() {
        let now = 1_764_000_000;
        assert!(within_window(now, now, 300));
        assert!(within_window(now, now - 300, 300));
        assert!(within_window(now, now + 300, 300));
        assert!(!within_window(now, now - 301, 300));
        assert!(!within_window(now, now + 301, 300));
        assert!(!within_window(now, i64::MIN, 300));
        assert!(!within_window(now, i64::MIN + 1, 300));
        assert!(!within_window(now, i64::MAX, 300));
        assert!(!within_window(-now, i64::MAX, 300));
        assert!(within_window(i64::MIN, i64::MIN, 300));
    }
}
