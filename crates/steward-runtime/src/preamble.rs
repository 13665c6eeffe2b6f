//! The dynamic preamble of a Concierge run's system prompt: the current time (RFC 3339, UTC)
//! and the sandbox's time zone with its local time, written when the run starts.
//!
//! It is added at run time, never stored: the Concierge's stored prompt is versioned (every
//! change is a new agent version), so baking the time into it would make a version per call.
//! The Concierge's catalog stays exactly the management tools (§5); this replaces the
//! `current_time` tool it used to get.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// `prompt` followed by the time preamble for `now_ms` in the sandbox's `time_zone` (an IANA
/// name; one that does not parse — it was validated when set — is reported as UTC).
pub fn with_time(prompt: &str, now_ms: i64, time_zone: &str) -> String {
    let preamble = time_preamble(now_ms, time_zone);
    if prompt.is_empty() { preamble } else { format!("{prompt}\n\n{preamble}") }
}

fn time_preamble(now_ms: i64, time_zone: &str) -> String {
    let now: DateTime<Utc> = DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let utc = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let (zone, local) = match steward_core::schedule::check_timezone(time_zone) {
        Ok(tz) => (time_zone, tz.from_utc_datetime(&now.naive_utc()).to_rfc3339_opts(SecondsFormat::Secs, true)),
        Err(_) => ("UTC", utc.clone()),
    };
    let weekday = DateTime::parse_from_rfc3339(&local).map(|t| t.format("%A").to_string()).unwrap_or_default();
    format!(
        "Current time: {utc} (UTC). This sandbox's time zone is {zone}; the local time there is {local} ({weekday}). \
         Read times the person gives without a zone (\"at 9\", \"tomorrow morning\") in {zone}, and say which zone you used."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preamble_states_utc_and_the_local_time_of_the_zone() {
        // 2023-11-14T22:13:20Z is a Tuesday in UTC and already Wednesday in Tokyo.
        let p = with_time("Be helpful.", 1_700_000_000_000, "Asia/Tokyo");
        assert!(p.starts_with("Be helpful.\n\nCurrent time: 2023-11-14T22:13:20Z (UTC)."), "{p}");
        assert!(p.contains("time zone is Asia/Tokyo; the local time there is 2023-11-15T07:13:20+09:00 (Wednesday)"), "{p}");
        let berlin = with_time("", 1_700_000_000_000, "Europe/Berlin");
        assert!(
            berlin.starts_with("Current time: 2023-11-14T22:13:20Z") && berlin.contains("2023-11-14T23:13:20+01:00 (Tuesday)"),
            "{berlin}"
        );
        let odd = with_time("x", 1_700_000_000_000, "Mars/Olympus");
        assert!(odd.contains("time zone is UTC; the local time there is 2023-11-14T22:13:20Z"), "{odd}");
    }
}
