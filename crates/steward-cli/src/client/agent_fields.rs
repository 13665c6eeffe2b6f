//! The agent configuration flags shared by `steward agent create` and `update` (§3), and how
//! they become a request body: only the flags given appear, so an update changes nothing else.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Map, Value, json};

/// Agent configuration flags. On `update`, a list flag (`--tool`, `--tool-source`, `--meta`)
/// replaces the whole list or map.
#[derive(Debug, Args)]
pub struct AgentFields {
    /// Unique slug in the sandbox: lowercase letters, digits, `-` and `_`.
    #[arg(long)]
    pub name: Option<String>,
    /// Provider and model, e.g. anthropic/claude-sonnet-4-6.
    #[arg(long, value_name = "PROVIDER/MODEL")]
    pub model: Option<String>,
    /// What the agent is for.
    #[arg(long)]
    pub description: Option<String>,
    /// The system prompt.
    #[arg(long, value_name = "TEXT", conflicts_with = "system_prompt_file")]
    pub system_prompt: Option<String>,
    /// Read the system prompt from a file (`-` for stdin).
    #[arg(long, value_name = "PATH")]
    pub system_prompt_file: Option<PathBuf>,
    /// A tool source id (src_…); repeat for several.
    #[arg(long = "tool-source", value_name = "SRC")]
    pub tool_sources: Vec<String>,
    /// Allow only this tool; repeat for several (none given: every tool of the sources).
    #[arg(long = "tool", value_name = "NAME")]
    pub tools: Vec<String>,
    /// Model↔tool round trips per run (1–1000; default 20).
    #[arg(long, value_name = "N")]
    pub max_turns: Option<u32>,
    /// Output token limit per model call (default 4096).
    #[arg(long, value_name = "N")]
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature, 0–2 [default: the model's own].
    #[arg(long, value_name = "F")]
    pub temperature: Option<f64>,
    /// A metadata entry; repeat for several.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    pub metadata: Vec<(String, String)>,
}

fn parse_meta(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, e.g. team=support (got `{raw}`)")),
    }
}

fn parse_model(raw: &str) -> anyhow::Result<Value> {
    match raw.split_once('/') {
        Some((p, m)) if !p.trim().is_empty() && !m.trim().is_empty() => Ok(json!({ "provider_id": p.trim(), "name": m.trim() })),
        _ => bail!("--model must be PROVIDER/MODEL, e.g. anthropic/claude-sonnet-4-6 (got `{raw}`)"),
    }
}

impl AgentFields {
    /// The flags given, as agent fields.
    pub fn to_body(&self) -> anyhow::Result<Map<String, Value>> {
        let mut body = Map::new();
        if let Some(n) = &self.name {
            body.insert("name".into(), json!(n));
        }
        if let Some(m) = &self.model {
            body.insert("model".into(), parse_model(m)?);
        }
        if let Some(d) = &self.description {
            body.insert("description".into(), json!(d));
        }
        if let Some(p) = &self.system_prompt {
            body.insert("system_prompt".into(), json!(p));
        }
        if let Some(path) = &self.system_prompt_file {
            body.insert("system_prompt".into(), json!(read_input(path)?));
        }
        if !self.tool_sources.is_empty() {
            body.insert("tool_sources".into(), json!(self.tool_sources));
        }
        if !self.tools.is_empty() {
            body.insert("tools".into(), json!(self.tools));
        }
        if let Some(n) = self.max_turns {
            body.insert("max_turns".into(), json!(n));
        }
        if let Some(n) = self.max_output_tokens {
            body.insert("max_output_tokens".into(), json!(n));
        }
        if let Some(t) = self.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if !self.metadata.is_empty() {
            let map: Map<String, Value> = self.metadata.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            body.insert("metadata".into(), Value::Object(map));
        }
        Ok(body)
    }
}

/// A JSON object from `--file` (`-` for stdin), to send as is.
pub fn body_file(path: &Path) -> anyhow::Result<Value> {
    let text = read_input(path)?;
    let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
    if !v.is_object() {
        bail!("{} must hold a JSON object of agent fields", path.display());
    }
    Ok(v)
}

/// The contents of a file, or of stdin for `-`.
fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> AgentFields {
        AgentFields {
            name: None,
            model: None,
            description: None,
            system_prompt: None,
            system_prompt_file: None,
            tool_sources: vec![],
            tools: vec![],
            max_turns: None,
            max_output_tokens: None,
            temperature: None,
            metadata: vec![],
        }
    }

    #[test]
    fn only_given_flags_become_fields() {
        assert!(empty().to_body().unwrap().is_empty());
        let f = AgentFields {
            model: Some("anthropic/claude-sonnet-4-6".into()),
            max_turns: Some(3),
            metadata: vec![("team".into(), "ops".into())],
            ..empty()
        };
        assert_eq!(
            Value::Object(f.to_body().unwrap()),
            json!({"model": {"provider_id": "anthropic", "name": "claude-sonnet-4-6"},
                   "max_turns": 3, "metadata": {"team": "ops"}})
        );
    }

    #[test]
    fn bad_model_and_meta_are_explained() {
        let f = AgentFields { model: Some("claude".into()), ..empty() };
        assert!(f.to_body().unwrap_err().to_string().contains("PROVIDER/MODEL"));
        assert!(parse_meta("novalue").is_err());
        assert_eq!(parse_meta("a=b=c").unwrap(), ("a".into(), "b=c".into()));
    }
}
