//! The tool-execution interface tool sources plug into, and the built-in tools. Every call has
//! a timeout and an output cap; failures go back to the model as tool errors, never as run
//! failures.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use steward_core::clock::Clock;
use steward_core::redact::Redactor;
use steward_llm::ToolSpec;

/// Largest tool output handed to the model; longer output is cut with a note.
pub const MAX_TOOL_OUTPUT: usize = 64 * 1024;

/// What a tool gets to work with.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub clock: Arc<dyn Clock>,
    /// The limit on one call (tools that talk to other processes pass it on).
    pub tool_timeout: Duration,
}

/// A tool the model can call.
#[async_trait::async_trait]
pub trait Tool: Send + Sync + std::fmt::Debug {
    fn spec(&self) -> ToolSpec;
    /// Runs the tool. `Err` is a tool error reported to the model.
    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<String, String>;
}

/// The tools given to the model in one run: each under the name the model sees (which may be
/// namespaced when two sources offer the same name), plus the secret values injected into this
/// run's sources, which are redacted from every tool output and error.
#[derive(Clone, Default)]
pub struct Catalog {
    entries: Vec<(ToolSpec, Arc<dyn Tool>)>,
    secrets: Vec<String>,
    redactor: Redactor,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The redacted values are secrets: count them, never print them.
        f.debug_struct("Catalog")
            .field("tools", &self.entries.iter().map(|(spec, _)| spec.name.as_str()).collect::<Vec<_>>())
            .field("redacted_values", &self.secrets.len())
            .finish()
    }
}

impl Catalog {
    /// The platform's own tools (`current_time`).
    pub fn builtin() -> Self {
        let mut c = Self::default();
        c.push(None, Arc::new(CurrentTime));
        c
    }

    /// Adds `tool`, exposed as `name` (default: its own name).
    pub fn push(&mut self, name: Option<String>, tool: Arc<dyn Tool>) {
        let mut spec = tool.spec();
        if let Some(n) = name {
            spec.name = n;
        }
        self.entries.push((spec, tool));
    }

    /// Values that must never reach the model, events or traces verbatim.
    pub fn redact_values(&mut self, secrets: impl IntoIterator<Item = String>) {
        self.secrets.extend(secrets);
        self.redactor = Redactor::new(&self.secrets);
    }

    /// The redactor of this run's secrets.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.entries.iter().map(|(s, _)| s.clone()).collect()
    }

    /// Calls `name` with a timeout and the output cap. `Ok` is the tool's output, `Err` a
    /// tool error for the model.
    pub async fn call(&self, name: &str, arguments: Value, ctx: &ToolContext, timeout: Duration) -> Result<String, String> {
        let Some((_, tool)) = self.entries.iter().find(|(s, _)| s.name == name) else {
            return Err(format!("there is no tool named `{name}` in this run; the available tools are: {}", self.names().join(", ")));
        };
        if !arguments.is_object() {
            return Err("the tool arguments must be a JSON object matching the tool's input schema".into());
        }
        let out = match tokio::time::timeout(timeout, tool.call(arguments, ctx)).await {
            Err(_) => Err(format!("the tool `{name}` did not finish within {} s", timeout.as_secs())),
            Ok(Ok(out)) => Ok(cap(out)),
            Ok(Err(e)) => Err(cap(e)),
        };
        out.map(|s| self.redacted(s)).map_err(|s| self.redacted(s))
    }

    /// `text` with every secret of this run replaced by `[redacted]`.
    pub fn redacted(&self, text: String) -> String {
        self.redactor.redact_string(text)
    }

    fn names(&self) -> Vec<String> {
        self.entries.iter().map(|(s, _)| s.name.clone()).collect()
    }
}

fn cap(mut s: String) -> String {
    if s.len() > MAX_TOOL_OUTPUT {
        let mut cut = MAX_TOOL_OUTPUT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let total = s.len();
        s.truncate(cut);
        s.push_str(&format!("\n[output truncated: {total} bytes, showing the first {cut}]"));
    }
    s
}

/// `current_time`: the current date and time in UTC, or at a fixed UTC offset.
#[derive(Debug)]
pub struct CurrentTime;

#[async_trait::async_trait]
impl Tool for CurrentTime {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "current_time".into(),
            description: "Returns the current date and time (RFC 3339). Optionally at a UTC offset such as \"+02:00\".".into(),
            input_schema: json!({
                "type": "object",
                "properties": {"utc_offset": {"type": "string", "description": "An offset like +02:00 or -05:30; default UTC"}},
                "additionalProperties": false
            }),
        }
    }

    async fn call(&self, arguments: Value, ctx: &ToolContext) -> Result<String, String> {
        let now = chrono::DateTime::from_timestamp_millis(ctx.clock.now_ms()).ok_or("the clock is out of range")?;
        match arguments.get("utc_offset").and_then(Value::as_str) {
            None => Ok(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            Some(raw) => {
                let offset: chrono::FixedOffset = raw.parse().map_err(|_| format!("`{raw}` is not a UTC offset like +02:00"))?;
                Ok(now.with_timezone(&offset).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }
        }
    }
}

/// The platform's management tools (§5), offered to Concierge agents. The server provides
/// them (they call its API as the Concierge's account); the runtime asks at the start of every
/// Concierge run, so the catalog follows the account's role at that moment.
#[async_trait::async_trait]
pub trait ManagementTools: Send + Sync + std::fmt::Debug {
    /// The tools `account` may use in `sandbox` now, and the role they were filtered for.
    /// `Err` when the account no longer has access (the run then gets no management tools).
    async fn tools_for(
        &self,
        sandbox: &steward_core::ids::SandboxId,
        account: &steward_core::ids::AccountId,
    ) -> Result<(steward_core::tenancy::Role, Vec<Arc<dyn Tool>>), String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_core::clock::ManualClock;

    #[tokio::test]
    async fn current_time_and_catalog_rules() {
        let ctx = ToolContext { clock: Arc::new(ManualClock::new(1_700_000_000_000)), tool_timeout: Duration::from_secs(5) };
        let c = Catalog::builtin();
        let t = Duration::from_secs(5);
        assert_eq!(c.call("current_time", json!({}), &ctx, t).await.unwrap(), "2023-11-14T22:13:20Z");
        assert_eq!(c.call("current_time", json!({"utc_offset": "+02:00"}), &ctx, t).await.unwrap(), "2023-11-15T00:13:20+02:00");
        assert!(c.call("current_time", json!({"utc_offset": "Mars"}), &ctx, t).await.is_err());
        assert!(c.call("current_time", json!("not an object"), &ctx, t).await.is_err());
        assert!(c.call("nope", json!({}), &ctx, t).await.unwrap_err().contains("current_time"));
        let mut r = Catalog::builtin();
        r.redact_values(["s3cr3t-value".to_string()]);
        assert_eq!(r.redacted("key=s3cr3t-value;".into()), "key=[redacted];");
        assert_eq!(
            cap("x".repeat(MAX_TOOL_OUTPUT + 10)).len(),
            MAX_TOOL_OUTPUT + "\n[output truncated: 65546 bytes, showing the first 65536]".len()
        );
    }
}
