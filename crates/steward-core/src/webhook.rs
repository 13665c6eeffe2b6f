//! Authenticating a delivery to a Steward webhook trigger (§11), before anything else is looked
//! at. Three ways, tried in this order by the headers present:
//!
//! 1. **Standard Webhooks**: `webhook-id`, `webhook-timestamp` (unix seconds) and
//!    `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` under the key
//!    [`signing::standard_key`] derives from the trigger's secret. The id is signed, so it is the
//!    delivery id: a re-sent delivery is a duplicate, a changed id breaks the signature.
//! 2. **Legacy** `Steward-Timestamp` + `Steward-Signature: v1=<hex of "<ts>.<body>">` under the
//!    whole secret. It does not cover the delivery id, so a captured delivery could be re-sent
//!    with new ids; the caller must accept each such signature once ([`Verified::once_key`]).
//! 3. `Steward-Trigger-Token: <secret>` when the trigger allows it (the secret itself; no replay
//!    protection beyond the delivery id, for senders that cannot sign).
//!
//! The timestamp must be within [`REPLAY_WINDOW_SECS`] of the server's clock. A refusal carries a
//! [`Refusal`] reason from a small fixed set, for metrics, and a message for the sender.

use sha2::{Digest, Sha256};

use crate::signing;

/// How far a delivery's timestamp may be from the server's clock, either way.
pub const REPLAY_WINDOW_SECS: i64 = 300;

/// How a delivery was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Standard Webhooks; `id` is the signed `webhook-id`, the delivery id.
    Standard { id: String },
    /// The legacy signature: its MAC and timestamp, to accept it once.
    Legacy { mac: Vec<u8>, ts: i64 },
    /// The trigger's secret as a token.
    Token,
    /// The app's own scheme (`integration::verify_inbound`), for integration triggers.
    Vendor,
}

impl Verified {
    /// For a legacy signature: the key it is recorded under (hex SHA-256 of the trigger id and
    /// the MAC bytes, so hex case variants are one signature) and until when (unix ms) it must be
    /// remembered — past the end of its window, with the same margin again for clock skew
    /// between replicas.
    pub fn once_key(&self, trigger_id: &str) -> Option<(String, i64)> {
        let Self::Legacy { mac, ts } = self else { return None };
        let mut h = Sha256::new();
        h.update(trigger_id.as_bytes());
        h.update([0u8]);
        h.update(mac);
        let until = ts.saturating_add(2 * REPLAY_WINDOW_SECS).saturating_mul(1000);
        Some((hex::encode(h.finalize()), until))
    }
}

/// Why a delivery was refused, as a metrics label (a fixed set, so no label explosion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No signature or token at all.
    Unsigned,
    /// Signature headers present but malformed (missing companion header, not a number…).
    Malformed,
    /// The timestamp is outside the window.
    StaleTimestamp,
    /// A well-formed signature that does not match.
    BadSignature,
    /// A token sent to a trigger that does not accept tokens.
    TokenNotAllowed,
    /// A token that is not the secret.
    BadToken,
    /// A legacy signature that was already used for another delivery.
    Replayed,
    /// An integration trigger's delivery failed its app's verification.
    AppSignature,
    /// An integration trigger whose component is no longer in the catalog (cannot verify).
    UnknownComponent,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::Malformed => "malformed",
            Self::StaleTimestamp => "stale_timestamp",
            Self::BadSignature => "bad_signature",
            Self::TokenNotAllowed => "token_not_allowed",
            Self::BadToken => "bad_token",
            Self::Replayed => "replayed",
            Self::AppSignature => "app_signature",
            Self::UnknownComponent => "unknown_component",
        }
    }
}

/// A refused delivery: the reason and what to tell the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: Refusal,
    pub message: String,
}

fn refused(reason: Refusal, message: impl Into<String>) -> Refused {
    Refused { reason, message: message.into() }
}

/// Checks a delivery to a Steward trigger with `secret`. `header` looks a request header up by
/// its lower-case name; `body` is the exact raw body.
pub fn verify(
    secret: &str,
    allow_token: bool,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    now_ms: i64,
) -> Result<Verified, Refused> {
    if let Some(sig) = header("webhook-signature") {
        return verify_standard(secret, header, body, now_ms, &sig);
    }
    if let Some(sig) = header("steward-signature") {
        return verify_legacy(secret, header, body, now_ms, &sig);
    }
    if let Some(token) = header("steward-trigger-token") {
        if !allow_token {
            return Err(refused(
                Refusal::TokenNotAllowed,
                "this trigger does not accept tokens; sign the delivery (Standard Webhooks `webhook-signature`)",
            ));
        }
        if crate::keys::hashes_equal(token.trim(), secret) {
            return Ok(Verified::Token);
        }
        return Err(refused(Refusal::BadToken, "the token does not match the trigger's secret"));
    }
    Err(refused(
        Refusal::Unsigned,
        "unsigned delivery: sign it with Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 \
         HMAC-SHA256 of \"<id>.<timestamp>.<body>\">` keyed with the base64-decoded part of the secret after `whsec_`; any \
         Standard Webhooks library does this), or with the legacy `Steward-Timestamp` + `Steward-Signature`",
    ))
}

fn timestamp(header: &str, raw: &str, now_ms: i64) -> Result<i64, Refused> {
    let ts: i64 =
        raw.trim().parse().map_err(|_| refused(Refusal::Malformed, format!("`{header}` must be unix seconds, e.g. 1764000000")))?;
    if !signing::within_window(now_ms.div_euclid(1000), ts, REPLAY_WINDOW_SECS) {
        return Err(refused(
            Refusal::StaleTimestamp,
            format!(
                "the delivery's timestamp is more than {} minutes from the server's clock (stale or replayed); sign with the current time",
                REPLAY_WINDOW_SECS / 60
            ),
        ));
    }
    Ok(ts)
}

fn verify_standard(
    secret: &str,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    now_ms: i64,
    sig: &str,
) -> Result<Verified, Refused> {
    let (Some(id), Some(ts)) = (header("webhook-id"), header("webhook-timestamp")) else {
        return Err(refused(Refusal::Malformed, "`webhook-signature` needs `webhook-id` and `webhook-timestamp` (unix seconds) too"));
    };
    let ts = timestamp("webhook-timestamp", &ts, now_ms)?;
    let key = signing::standard_key(secret);
    match signing::standard_signature_matches(&key, &id, ts, body, sig) {
        Ok(true) => Ok(Verified::Standard { id }),
        Ok(false) => Err(refused(
            Refusal::BadSignature,
            "the signature does not match: sign `<webhook-id>.<webhook-timestamp>.<raw body>` with HMAC-SHA256, keyed with the \
             base64-decoded part of the trigger's secret after `whsec_` (a secret containing `-` or `_` predates Standard Webhooks: \
             strict libraries need them replaced by `+` and `/`)",
        )),
        Err(m) => Err(refused(Refusal::Malformed, m)),
    }
}

fn verify_legacy(secret: &str, header: &dyn Fn(&str) -> Option<String>, body: &[u8], now_ms: i64, sig: &str) -> Result<Verified, Refused> {
    let ts = header("steward-timestamp")
        .ok_or_else(|| refused(Refusal::Malformed, "`Steward-Signature` needs `Steward-Timestamp` (unix seconds) too"))?;
    let ts = timestamp("Steward-Timestamp", &ts, now_ms)?;
    match signing::steward_signature_mac(secret, ts, body, sig) {
        Ok(Some(mac)) => Ok(Verified::Legacy { mac, ts }),
        Ok(None) => Err(refused(
            Refusal::BadSignature,
            "the signature does not match: sign `<timestamp>.<raw body>` with HMAC-SHA256 under the trigger's secret",
        )),
        Err(m) => Err(refused(Refusal::Malformed, m)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW_MS: i64 = 1_764_000_000_000;

    fn check(headers: &[(&str, String)], allow_token: bool) -> Result<Verified, Refused> {
        let map: BTreeMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        verify(SECRET, allow_token, &|name| map.get(name).cloned(), b"{}", NOW_MS)
    }

    fn standard(id: &str, ts: i64) -> Vec<(&'static str, String)> {
        let sig = signing::standard_signature(&signing::standard_key(SECRET), id, ts, b"{}");
        vec![("webhook-id", id.to_owned()), ("webhook-timestamp", ts.to_string()), ("webhook-signature", sig)]
    }

    fn reason(r: Result<Verified, Refused>) -> Refusal {
        r.expect_err("refused").reason
    }

    #[test]
    fn each_scheme_verifies_and_names_its_refusals() {
        let now = NOW_MS / 1000;
        assert_eq!(check(&standard("msg_1", now), false), Ok(Verified::Standard { id: "msg_1".into() }));
        // The id is signed: the same signature under another id fails.
        let mut moved = standard("msg_1", now);
        moved[0].1 = "msg_2".into();
        assert_eq!(reason(check(&moved, false)), Refusal::BadSignature);
        assert_eq!(reason(check(&standard("msg_1", now - 301), false)), Refusal::StaleTimestamp);
        assert_eq!(reason(check(&standard("msg_1", now + 301), false)), Refusal::StaleTimestamp);
        assert!(check(&standard("msg_1", now + 300), false).is_ok());
        assert_eq!(reason(check(&standard("msg_1", now)[1..], false)), Refusal::Malformed);

        let legacy =
            |ts: i64| vec![("steward-timestamp", ts.to_string()), ("steward-signature", signing::steward_signature(SECRET, ts, b"{}"))];
        assert!(matches!(check(&legacy(now), false), Ok(Verified::Legacy { ts, .. }) if ts == now));
        assert_eq!(reason(check(&legacy(now)[1..], false)), Refusal::Malformed);
        assert_eq!(reason(check(&[("steward-trigger-token", SECRET.into())], false)), Refusal::TokenNotAllowed);
        assert_eq!(check(&[("steward-trigger-token", SECRET.into())], true), Ok(Verified::Token));
        assert_eq!(reason(check(&[("steward-trigger-token", "whsec_x".into())], true)), Refusal::BadToken);
        assert_eq!(reason(check(&[], true)), Refusal::Unsigned);
    }

    #[test]
    fn overflowing_timestamps_are_stale_not_accepted() {
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX] {
            // The signature is valid for that timestamp; only the window can refuse it.
            assert_eq!(reason(check(&standard("msg_1", ts), false)), Refusal::StaleTimestamp, "{ts}");
            let legacy = vec![("steward-timestamp", ts.to_string()), ("steward-signature", signing::steward_signature(SECRET, ts, b"{}"))];
            assert_eq!(reason(check(&legacy, false)), Refusal::StaleTimestamp, "{ts}");
        }
        assert_eq!(
            reason(check(
                &[("webhook-id", "m".into()), ("webhook-timestamp", "1e9".into()), ("webhook-signature", "v1,AAAA".into())],
                false
            )),
            Refusal::Malformed
        );
    }

    #[test]
    fn a_legacy_signature_has_one_key_whatever_its_hex_case() {
        let now = NOW_MS / 1000;
        let sig = signing::steward_signature(SECRET, now, b"{}");
        let upper = format!("v1={}", sig[3..].to_uppercase());
        let key = |s: &str| {
            check(&[("steward-timestamp", now.to_string()), ("steward-signature", s.to_owned())], false).unwrap().once_key("trg_1")
        };
        let (k, until) = key(&sig).unwrap();
        assert_eq!(key(&upper).unwrap().0, k);
        assert_eq!(until, (now + 600) * 1000);
        // Another trigger, another key; other schemes have none.
        let other = Verified::Legacy { mac: hex::decode(&sig[3..]).unwrap(), ts: now }.once_key("trg_2").unwrap().0;
        assert_ne!(other, k);
        assert_eq!(Verified::Token.once_key("trg_1"), None);
        assert_eq!(Verified::Standard { id: "x".into() }.once_key("trg_1"), None);
    }
}
