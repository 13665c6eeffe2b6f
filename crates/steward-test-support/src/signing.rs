//! Signing a delivery to a Steward trigger as a sender would, on `steward_core::signing`: the
//! headers of a Standard Webhooks delivery and of a legacy (`Steward-Signature`) one.

use steward_core::signing;

/// Request headers, name and value.
pub type Headers = Vec<(&'static str, String)>;

/// `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,<base64>`) for `body`, signed
/// with the trigger secret `secret` (`whsec_…`) at `ts` (unix seconds).
pub fn standard_headers(secret: &str, id: &str, ts: i64, body: &[u8]) -> Headers {
    let sig = signing::standard_signature(&signing::standard_key(secret), id, ts, body);
    vec![("webhook-id", id.to_owned()), ("webhook-timestamp", ts.to_string()), ("webhook-signature", sig)]
}

/// `Steward-Timestamp`, `Steward-Signature` (`v1=<hex>` of `"<ts>.<body>"`, the whole secret as
/// key) and `Steward-Delivery` for `body`.
pub fn legacy_headers(secret: &str, ts: i64, body: &[u8], delivery: &str) -> Headers {
    vec![
        ("steward-timestamp", ts.to_string()),
        ("steward-signature", signing::steward_signature(secret, ts, body)),
        ("steward-delivery", delivery.to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the legacy wire format independently of `steward_core::signing`, which both signs
    /// here and verifies in the server: HMAC-SHA256 keyed with the whole secret over
    /// `"<ts>.<body>"`, computed with Python's `hmac` module.
    #[test]
    fn legacy_headers_carry_the_known_signature() {
        let h = legacy_headers("whsec_k", 1_764_000_000, b"{}", "d-1");
        assert_eq!(
            h,
            vec![
                ("steward-timestamp", "1764000000".to_owned()),
                ("steward-signature", "v1=41c5f45e2fc1eafe815b384a423283faf8b71098085d7f47bfca651aa873dd22".to_owned()),
                ("steward-delivery", "d-1".to_owned()),
            ]
        );
    }

    #[test]
    fn standard_headers_name_the_id_and_timestamp_they_sign() {
        let h = standard_headers(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        // The Standard Webhooks specification's own test vector.
        assert_eq!(h[2], ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_owned()));
        assert_eq!((h[0].1.as_str(), h[1].1.as_str()), ("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330"));
    }
}
