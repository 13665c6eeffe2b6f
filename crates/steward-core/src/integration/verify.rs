//! Verification of an app's inbound requests, each scheme exactly as its vendor documents it.
//! Comparisons are constant time: HMACs through `hmac`'s `verify_slice`, tokens by comparing
//! SHA-256 digests with `subtle` (which also hides the expected token's length). Errors are
//! written for the person setting the webhook up: they name the header and what was wrong.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::InboundVerification;

const MISMATCH: &str =
    "the signature does not match: check that the secret is the app's current one and that the raw body reaches Steward unmodified";

/// Checks an inbound request of an app. `secret` is what the scheme needs (see
/// [`InboundVerification::secret_name`]); `header` looks a header up by name, case-insensitively;
/// `body` is the exact raw body; `now_ms` the server's clock. The error is a user-facing reason.
pub fn verify_inbound(
    v: &InboundVerification,
    secret: &str,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    now_ms: i64,
) -> Result<(), String> {
    if secret.is_empty() {
        return Err(format!("no secret is configured; set {}", v.secret_name()));
    }
    match v {
        InboundVerification::SlackV0 { tolerance_secs } => {
            let sig = required(header, "X-Slack-Signature")?;
            let ts = required(header, "X-Slack-Request-Timestamp")?;
            let secs: i64 = ts.parse().map_err(|_| "X-Slack-Request-Timestamp is not a unix time in seconds".to_string())?;
            check_window(
                "the X-Slack-Request-Timestamp",
                now_ms.div_euclid(1000).saturating_sub(secs).saturating_mul(1000),
                *tolerance_secs,
            )?;
            let given = decode_hex(sig.strip_prefix("v0="), "X-Slack-Signature must look like `v0=<hex HMAC-SHA256>`")?;
            hmac_verify(secret, &[b"v0:", ts.as_bytes(), b":", body], &given)
        }
        InboundVerification::GithubSha256 => {
            let sig = required(header, "X-Hub-Signature-256")?;
            let given = decode_hex(sig.strip_prefix("sha256="), "X-Hub-Signature-256 must look like `sha256=<hex HMAC-SHA256>`")?;
            hmac_verify(secret, &[body], &given)
        }
        InboundVerification::LinearSha256 { tolerance_secs } => {
            let sig = required(header, "Linear-Signature")?;
            let given = decode_hex(Some(&sig), "Linear-Signature must be a hex HMAC-SHA256")?;
            hmac_verify(secret, &[body], &given)?;
            // The timestamp is inside the signed body, so it is read only once the body is authentic.
            let sent = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|b| b.get("webhookTimestamp")?.as_i64())
                .ok_or("the body has no numeric `webhookTimestamp` (milliseconds)")?;
            check_window("the body's webhookTimestamp", now_ms.saturating_sub(sent), *tolerance_secs)
        }
        InboundVerification::DiscordEd25519 => {
            let sig = required(header, "X-Signature-Ed25519")?;
            let ts = required(header, "X-Signature-Timestamp")?;
            let key: [u8; 32] = hex::decode(secret.trim())
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or("the configured public key is not 64 hex characters; copy the application's Public Key from Discord")?;
            let key = VerifyingKey::from_bytes(&key).map_err(|_| "the configured public key is not a valid Ed25519 key".to_string())?;
            let sig: [u8; 64] = hex::decode(&sig)
                .ok()
                .and_then(|s| s.try_into().ok())
                .ok_or("X-Signature-Ed25519 must be 128 hex characters (an Ed25519 signature)")?;
            let mut message = Vec::with_capacity(ts.len() + body.len());
            message.extend_from_slice(ts.as_bytes());
            message.extend_from_slice(body);
            key.verify_strict(&message, &Signature::from_bytes(&sig)).map_err(|_| MISMATCH.to_string())
        }
        InboundVerification::TelegramSecretToken => token_equals(header, "X-Telegram-Bot-Api-Secret-Token", secret),
        InboundVerification::HeaderToken { header: name } => token_equals(header, name, secret),
    }
}

/// A header's trimmed value, or the error naming it.
fn required(header: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<String, String> {
    match header(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(format!("{name} is missing")),
    }
}

fn decode_hex(v: Option<&str>, format_error: &str) -> Result<Vec<u8>, String> {
    v.and_then(crate::signing::decode_hex).ok_or_else(|| format_error.to_string())
}

fn hmac_verify(secret: &str, parts: &[&[u8]], given: &[u8]) -> Result<(), String> {
    if crate::signing::hmac_sha256_matches(secret.as_bytes(), parts, given) { Ok(()) } else { Err(MISMATCH.to_string()) }
}

/// `age_ms` is the server's clock minus the sender's; either direction beyond the window fails.
fn check_window(what: &str, age_ms: i64, tolerance_secs: u64) -> Result<(), String> {
    if age_ms.unsigned_abs() <= tolerance_secs.saturating_mul(1000) {
        return Ok(());
    }
    let secs = age_ms.unsigned_abs() as f64 / 1000.0;
    let direction = if age_ms > 0 { "old" } else { "in the future" };
    let amount = if secs.fract() == 0.0 { format!("{secs}") } else { format!("{secs:.1}") };
    Err(format!("{what} is {amount} s {direction}; the window is {tolerance_secs} s (a replay, or a clock that is off)"))
}

fn token_equals(header: &dyn Fn(&str) -> Option<String>, name: &str, secret: &str) -> Result<(), String> {
    let given = required(header, name)?;
    let same: bool = Sha256::digest(given.as_bytes()).as_slice().ct_eq(Sha256::digest(secret.as_bytes()).as_slice()).into();
    if same { Ok(()) } else { Err(format!("{name} does not match the configured secret token")) }
}
