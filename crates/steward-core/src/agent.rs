//! Agents (§3): configuration, its validation, partial updates, and the state machine.
//!
//! A config is validated as a whole after every change, so an invalid combination can never be
//! stored. Every error names the field as the user wrote it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::ids::{self, AgentId, SandboxId};

/// Which provider and model an agent talks to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub provider_id: String,
    pub name: String,
}

/// The user-editable configuration of an agent. Stored as JSON per version; this is the storage
/// form, the API has its own wire types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub name: String,
    pub description: String,
    pub model: ModelRef,
    pub system_prompt: String,
    pub tool_sources: Vec<String>,
    pub tools: Vec<String>,
    pub max_turns: u32,
    pub max_output_tokens: u32,
    pub temperature: Option<f64>,
    pub environment_id: Option<String>,
    pub skills: Vec<String>,
    pub memory_store_ids: Vec<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Defaults used when a create request leaves a field out.
pub const DEFAULT_MAX_TURNS: u32 = 20;
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 4096;

const MAX_TURNS: u32 = 1000;
const MAX_OUTPUT_TOKENS: u32 = 1_000_000;
const MAX_PROMPT_CHARS: usize = 200_000;
const MAX_DESCRIPTION_CHARS: usize = 2_000;
const MAX_LIST: usize = 100;
const MAX_METADATA: usize = 50;

/// A partial update: `None` leaves a field as it is. Nullable fields use a nested option:
/// `Some(None)` clears them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub model: Option<ModelRef>,
    pub system_prompt: Option<String>,
    pub tool_sources: Option<Vec<String>>,
    pub tools: Option<Vec<String>>,
    pub max_turns: Option<u32>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<Option<f64>>,
    pub environment_id: Option<Option<String>>,
    pub skills: Option<Vec<String>>,
    pub memory_store_ids: Option<Vec<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
}

impl AgentPatch {
    pub fn is_empty(&self) -> bool {
        *self == AgentPatch::default()
    }
}

impl AgentConfig {
    /// Checks every field; the first problem found is returned, naming its field.
    pub fn validated(self) -> Result<Self, ValidationError> {
        check_slug(&self.name, "name")?;
        crate::text::check_description(&self.description, "description", MAX_DESCRIPTION_CHARS)?;
        check_slug(&self.model.provider_id, "model.provider_id")?;
        check_model_name(&self.model.name)?;
        check_len(&self.system_prompt, "system_prompt", MAX_PROMPT_CHARS)?;
        check_ids(&self.tool_sources, "tool_sources", "src_")?;
        check_list(&self.tools, "tools", check_tool_name)?;
        check_range(self.max_turns, "max_turns", MAX_TURNS)?;
        check_range(self.max_output_tokens, "max_output_tokens", MAX_OUTPUT_TOKENS)?;
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ValidationError::new(
                "temperature",
                format!("{t} is out of range; use a number from 0 to 2, or null for the model's default"),
            ));
        }
        if let Some(env) = &self.environment_id {
            ids::check(env, "env_", "environment_id")?;
        }
        check_list(&self.skills, "skills", check_skill_name)?;
        check_ids(&self.memory_store_ids, "memory_store_ids", "mem_")?;
        check_metadata(&self.metadata)?;
        Ok(self)
    }

    /// This config with `patch` applied, validated.
    pub fn patched(&self, patch: AgentPatch) -> Result<Self, ValidationError> {
        let mut c = self.clone();
        if let Some(v) = patch.name {
            c.name = v;
        }
        if let Some(v) = patch.description {
            c.description = v;
        }
        if let Some(v) = patch.model {
            c.model = v;
        }
        if let Some(v) = patch.system_prompt {
            c.system_prompt = v;
        }
        if let Some(v) = patch.tool_sources {
            c.tool_sources = v;
        }
        if let Some(v) = patch.tools {
            c.tools = v;
        }
        if let Some(v) = patch.max_turns {
            c.max_turns = v;
        }
        if let Some(v) = patch.max_output_tokens {
            c.max_output_tokens = v;
        }
        if let Some(v) = patch.temperature {
            c.temperature = v;
        }
        if let Some(v) = patch.environment_id {
            c.environment_id = v;
        }
        if let Some(v) = patch.skills {
            c.skills = v;
        }
        if let Some(v) = patch.memory_store_ids {
            c.memory_store_ids = v;
        }
        if let Some(v) = patch.metadata {
            c.metadata = v;
        }
        c.validated()
    }
}

pub(crate) fn check_slug(v: &str, param: &str) -> Result<(), ValidationError> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        return Ok(());
    }
    Err(ValidationError::new(
        param,
        format!(
            "`{}` is not a valid slug: use 1–63 lowercase letters, digits, `-` or `_`, starting with a letter or digit (e.g. `support-bot`)",
            ids::shorten(v)
        ),
    ))
}

fn check_model_name(v: &str) -> Result<(), ValidationError> {
    let ok = !v.is_empty() && v.len() <= 200 && v.chars().all(|c| !c.is_whitespace() && !c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new("model.name", "a model name must be 1–200 characters without spaces (e.g. `claude-sonnet-4-6`)"))
    }
}

pub(crate) fn check_len(v: &str, param: &str, max: usize) -> Result<(), ValidationError> {
    if v.chars().count() > max {
        return Err(ValidationError::new(param, format!("is {} characters long; the limit is {max}", v.chars().count())));
    }
    if v.contains('\0') {
        return Err(ValidationError::new(param, "contains a NUL character; remove it"));
    }
    Ok(())
}

fn check_range(v: u32, param: &str, max: u32) -> Result<(), ValidationError> {
    if v == 0 || v > max {
        return Err(ValidationError::new(param, format!("{v} is out of range; use a whole number from 1 to {max}")));
    }
    Ok(())
}

fn check_list(v: &[String], param: &str, each: fn(&str) -> bool) -> Result<(), ValidationError> {
    if v.len() > MAX_LIST {
        return Err(ValidationError::new(param, format!("has {} entries; the limit is {MAX_LIST}", v.len())));
    }
    for (i, item) in v.iter().enumerate() {
        if !each(item) {
            return Err(ValidationError::new(
                format!("{param}[{i}]"),
                format!("`{}` is not a valid name: use 1–128 letters, digits, `_`, `-`, `.` or `/`", ids::shorten(item)),
            ));
        }
    }
    dedup_check(v, param)
}

fn check_ids(v: &[String], param: &str, prefix: &str) -> Result<(), ValidationError> {
    if v.len() > MAX_LIST {
        return Err(ValidationError::new(param, format!("has {} entries; the limit is {MAX_LIST}", v.len())));
    }
    for (i, id) in v.iter().enumerate() {
        ids::check(id, prefix, &format!("{param}[{i}]"))?;
    }
    dedup_check(v, param)
}

fn dedup_check(v: &[String], param: &str) -> Result<(), ValidationError> {
    for (i, item) in v.iter().enumerate() {
        if v[..i].contains(item) {
            return Err(ValidationError::new(
                format!("{param}[{i}]"),
                format!("`{}` is listed twice; list each entry once", ids::shorten(item)),
            ));
        }
    }
    Ok(())
}

fn check_tool_name(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

fn check_skill_name(v: &str) -> bool {
    check_tool_name(v)
}

fn check_metadata(m: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if m.len() > MAX_METADATA {
        return Err(ValidationError::new("metadata", format!("has {} keys; the limit is {MAX_METADATA}", m.len())));
    }
    for (k, v) in m {
        if k.is_empty() || k.len() > 64 || k.chars().any(char::is_control) {
            return Err(ValidationError::new("metadata", format!("key `{}` must be 1–64 printable characters", ids::shorten(k))));
        }
        if v.chars().count() > 512 || v.contains('\0') {
            return Err(ValidationError::new(format!("metadata.{k}"), "values must be at most 512 characters without NUL"));
        }
    }
    Ok(())
}

/// Where an agent is in its lifecycle (§3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentState {
    Active,
    Paused,
    Stopped,
    Error,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Active => "active",
            AgentState::Paused => "paused",
            AgentState::Stopped => "stopped",
            AgentState::Error => "error",
        }
    }

    /// Whether `self → to` is allowed. Staying in the same state is allowed (a no-op), so
    /// retried requests are harmless.
    ///
    /// ```text
    /// active  → paused | stopped | error
    /// paused  → active | stopped | error
    /// stopped → active
    /// error   → active | stopped
    /// ```
    pub fn can_become(self, to: AgentState) -> bool {
        use AgentState::*;
        self == to
            || matches!(
                (self, to),
                (Active, Paused | Stopped | Error) | (Paused, Active | Stopped | Error) | (Stopped, Active) | (Error, Active | Stopped)
            )
    }

    /// A message explaining why `self → to` is refused and what to do instead.
    pub fn refusal(self, to: AgentState) -> String {
        let hint = match self {
            AgentState::Stopped => "a stopped agent can only be resumed (POST /v1/agents/{id}/resume)",
            AgentState::Error => "an agent in error can only be resumed or stopped; fix the reason and resume it",
            _ => "see the state table in the docs",
        };
        format!("cannot change the agent from `{self}` to `{to}`: {hint}")
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentState {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(AgentState::Active),
            "paused" => Ok(AgentState::Paused),
            "stopped" => Ok(AgentState::Stopped),
            "error" => Ok(AgentState::Error),
            other => Err(ValidationError::new(
                "state",
                format!("`{}` is not an agent state; use `active`, `paused`, `stopped` or `error`", ids::shorten(other)),
            )),
        }
    }
}

/// An agent at its current version.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: AgentId,
    pub sandbox_id: SandboxId,
    pub version: i64,
    pub config: AgentConfig,
    pub state: AgentState,
    pub state_reason: Option<String>,
    pub token_balance: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived_at: Option<i64>,
    /// Set on a Concierge (§5): the account it belongs to. The platform manages these agents.
    pub concierge_of: Option<crate::ids::AccountId>,
}

/// One immutable version of an agent's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentVersion {
    pub agent_id: AgentId,
    pub version: i64,
    pub config: AgentConfig,
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> AgentConfig {
        AgentConfig {
            name: "support".into(),
            description: String::new(),
            model: ModelRef { provider_id: "anthropic".into(), name: "claude-sonnet-4-6".into() },
            system_prompt: "You help.".into(),
            tool_sources: vec![],
            tools: vec!["search_issues".into()],
            max_turns: 15,
            max_output_tokens: 4096,
            temperature: Some(0.2),
            environment_id: None,
            skills: vec![],
            memory_store_ids: vec![],
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn valid_config_passes() {
        assert!(sample().validated().is_ok());
    }

    #[test]
    fn each_invalid_field_is_named() {
        type Mutation = Box<dyn Fn(&mut AgentConfig)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("name", Box::new(|c| c.name = "Robert'); DROP TABLE agents;--".into())),
            ("model.provider_id", Box::new(|c| c.model.provider_id = String::new())),
            ("model.name", Box::new(|c| c.model.name = "has space".into())),
            ("max_turns", Box::new(|c| c.max_turns = 0)),
            ("max_output_tokens", Box::new(|c| c.max_output_tokens = 2_000_000)),
            ("temperature", Box::new(|c| c.temperature = Some(3.0))),
            ("environment_id", Box::new(|c| c.environment_id = Some("agt_01h".into()))),
            ("tool_sources[0]", Box::new(|c| c.tool_sources = vec!["nope".into()])),
            ("tools[1]", Box::new(|c| c.tools = vec!["a".into(), "a".into()])),
            ("system_prompt", Box::new(|c| c.system_prompt = "x\0".into())),
        ];
        for (param, mutate) in cases {
            let mut c = sample();
            mutate(&mut c);
            let err = c.validated().unwrap_err();
            assert_eq!(err.param, param, "{err}");
        }
    }

    #[test]
    fn patch_changes_only_present_fields() {
        let base = sample();
        let p = AgentPatch { max_turns: Some(30), temperature: Some(None), ..Default::default() };
        let next = base.patched(p).unwrap();
        assert_eq!(next.max_turns, 30);
        assert_eq!(next.temperature, None);
        assert_eq!(next.system_prompt, base.system_prompt);
        assert_eq!(next.tools, base.tools);
    }

    #[test]
    fn state_machine() {
        use AgentState::*;
        assert!(Active.can_become(Paused));
        assert!(Paused.can_become(Active));
        assert!(Paused.can_become(Paused));
        assert!(!Stopped.can_become(Paused));
        assert!(!Error.can_become(Paused));
        assert!(Stopped.can_become(Active));
    }
}
