//! Input templates of webhook triggers (§11): minijinja over the delivery's `payload` (parsed
//! JSON), `headers` (lower-case names) and `received_at` (RFC 3339). Templates are written by
//! editors, payloads by strangers, so rendering is bounded: fuel limits the work a template may
//! do, strict undefined is off (a missing payload field renders empty), and the result is capped.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Work a template may do per rendering (minijinja fuel units).
const FUEL: u64 = 200_000;
/// Longest rendered input, in bytes.
pub const MAX_RENDERED: usize = 256 * 1024;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env
}

/// Checks that `template` parses; the error names the line.
pub fn check(template: &str) -> Result<(), String> {
    environment().template_from_str(template).map(|_| ()).map_err(|e| format!("the template does not parse: {e}"))
}

/// Renders `template` for one delivery.
pub fn render(template: &str, payload: &Value, headers: &BTreeMap<String, String>, received_at: &str) -> Result<String, String> {
    render_with(template, minijinja::context! { payload => payload, headers => headers, received_at => received_at })
}

/// Renders `template` with any context (schedules pass `scheduled_at`, `fired_at`, `schedule`).
pub fn render_with(template: &str, ctx: minijinja::Value) -> Result<String, String> {
    let env = environment();
    let t = env.template_from_str(template).map_err(|e| format!("the template does not parse: {e}"))?;
    let out = t.render(ctx).map_err(|e| format!("the template failed: {e}"))?;
    if out.len() > MAX_RENDERED {
        return Err(format!("the rendered input is {} bytes; the limit is {MAX_RENDERED}", out.len()));
    }
    if out.trim().is_empty() {
        return Err("the template rendered an empty input for this payload".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_payload_fields_and_bounds_the_work() {
        let h = BTreeMap::new();
        let p = json!({"issue": {"title": "Crash on save", "labels": ["bug", "p1"]}});
        let out = render("New issue: {{ payload.issue.title }} ({{ payload.issue.labels | join(', ') }})", &p, &h, "t").unwrap();
        assert_eq!(out, "New issue: Crash on save (bug, p1)");
        assert!(render(steward_core::trigger::DEFAULT_TEMPLATE, &p, &h, "t").unwrap().contains("\"title\": \"Crash on save\""));
        assert!(check("{{ payload.x ").unwrap_err().contains("does not parse"));
        assert!(render("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", &p, &h, "t").is_err());
        assert!(render("{{ payload.missing }}", &p, &h, "t").unwrap_err().contains("empty"));
        // Payload text is data, not template code.
        let sneaky = json!({"title": "{{ 7 * 7 }}"});
        assert_eq!(render("{{ payload.title }}", &sneaky, &h, "t").unwrap(), "{{ 7 * 7 }}");
    }
}
