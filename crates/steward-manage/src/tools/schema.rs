//! The JSON Schemas of the tools' arguments (small builders, so every schema has the same
//! shape: `type: object`, typed and described `properties`, `required`,
//! `additionalProperties: false`), and checking arguments against them with `jsonschema`
//! before any API call. Errors name the argument and the type it must have.

use serde_json::{Map, Value, json};
use steward_core::ids::shorten;

/// An agent id or an agent name (names are slugs, §3).
const AGENT_PATTERN: &str = "^(agt_[0-9a-z]{26}|[a-z0-9][a-z0-9_-]{0,62})$";
/// A slug: agent, source and trigger names, app ids of the integration catalog.
const SLUG_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";

/// The arguments object: `properties` (name → schema), of which `required` must be present.
pub(super) fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

pub(super) fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// A string of 1 to `max` characters.
pub(super) fn text(description: &str, max: u64) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "description": description})
}

/// An id of one kind: `prefix` and 26 lowercase letters or digits.
pub(super) fn id(prefix: &str, description: &str) -> Value {
    json!({"type": "string", "pattern": format!("^{prefix}[0-9a-z]{{26}}$"), "description": description})
}

/// A list of ids of one kind.
pub(super) fn ids(prefix: &str, description: &str) -> Value {
    json!({"type": "array", "maxItems": 100, "items": {"type": "string", "pattern": format!("^{prefix}[0-9a-z]{{26}}$")}, "description": description})
}

/// The `agent` argument of every tool that targets an agent.
pub(super) fn agent(description: &str) -> Value {
    json!({"type": "string", "pattern": AGENT_PATTERN, "description": description})
}

/// A trigger (`trg_…`) or schedule (`sch_…`) id.
pub(super) fn trigger_id(description: &str) -> Value {
    json!({"type": "string", "pattern": "^(trg|sch)_[0-9a-z]{26}$", "description": description})
}

/// A name (agents, sources, triggers) or an app id: lowercase letters, digits, `-`, `_`.
pub(super) fn slug(description: &str) -> Value {
    json!({"type": "string", "pattern": SLUG_PATTERN, "description": description})
}

pub(super) fn integer(description: &str, min: u64, max: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max, "description": description})
}

pub(super) fn number(description: &str, min: f64, max: f64) -> Value {
    json!({"type": "number", "minimum": min, "maximum": max, "description": description})
}

pub(super) fn boolean(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

pub(super) fn one_of(values: &[&str], description: &str) -> Value {
    json!({"type": "string", "enum": values, "description": description})
}

/// A list of names (tool names, arguments).
pub(super) fn strings(description: &str) -> Value {
    json!({"type": "array", "maxItems": 100, "items": {"type": "string", "minLength": 1}, "description": description})
}

/// A map of names to plain strings or vault references (`env`, `headers` of a source).
pub(super) fn value_refs(description: &str) -> Value {
    json!({
        "type": "object",
        "description": description,
        "additionalProperties": {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {
                        "vault_id": {"type": "string", "pattern": "^vlt_[0-9a-z]{26}$"},
                        "prefix": {"type": "string"}
                    },
                    "required": ["vault_id"],
                    "additionalProperties": false
                }
            ]
        }
    })
}

/// Arguments that passed their tool's schema.
#[derive(Debug, Clone, Default)]
pub(super) struct Args(Map<String, Value>);

impl Args {
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub(super) fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    pub(super) fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    pub(super) fn strings(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
    }

    /// The present ones of `keys`, as an object: the body of a partial update.
    pub(super) fn only(&self, keys: &[&str]) -> Map<String, Value> {
        keys.iter().filter_map(|k| self.get(k).map(|v| ((*k).to_owned(), v.clone()))).collect()
    }
}

/// Checks `arguments` against the schema of `tool`. `null` counts as no arguments (some MCP
/// clients send nothing for a tool without parameters).
pub(super) fn validate(tool: &str, schema: &Value, arguments: Value) -> Result<Args, String> {
    let arguments = if arguments.is_null() { Value::Object(Map::new()) } else { arguments };
    let validator =
        jsonschema::validator_for(schema).map_err(|e| format!("the schema of `{tool}` does not compile ({e}); this is a bug"))?;
    let problems: Vec<String> = validator.iter_errors(&arguments).take(5).map(|e| explain(schema, &e)).collect();
    if !problems.is_empty() {
        return Err(format!("invalid arguments for `{tool}`: {}. Fix them and call `{tool}` again.", problems.join("; ")));
    }
    match arguments {
        Value::Object(map) => Ok(Args(map)),
        _ => Err(format!("the arguments of `{tool}` must be a JSON object")),
    }
}

/// One validation error in words: which argument, what was wrong, what it must be.
fn explain(schema: &Value, e: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    let segments: Vec<String> = e.instance_path().as_str().split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    let Some(top) = segments.first() else {
        return match e.kind() {
            Kind::AdditionalProperties { unexpected } => {
                let known: Vec<&String> = schema["properties"].as_object().map(|p| p.keys().collect()).unwrap_or_default();
                let names: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                let unexpected: Vec<String> = unexpected.iter().map(|u| format!("`{}`", shorten(u))).collect();
                let accepted = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
                format!("unknown argument {} (the arguments are: {accepted})", unexpected.join(", "))
            }
            Kind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                format!("missing required argument `{name}`, {}", expected(&schema["properties"][name]))
            }
            Kind::Type { .. } => "the arguments must be a JSON object".to_owned(),
            _ => e.to_string(),
        };
    };
    let mut path = top.clone();
    for s in &segments[1..] {
        if s.parse::<usize>().is_ok() {
            path.push_str(&format!("[{s}]"));
        } else {
            path.push_str(&format!(".{s}"));
        }
    }
    let detail = match e.kind() {
        Kind::Pattern { .. } => format!("{} is not in the accepted form", shorten(&e.instance().to_string())),
        _ => e.to_string(),
    };
    format!("argument `{path}`: {detail}; expected {}", expected(&schema["properties"][top.as_str()]))
}

/// What a property schema accepts, in words, with its description.
fn expected(property: &Value) -> String {
    let kind = match property["type"].as_str() {
        Some("array") => format!("an array of {}s", property["items"]["type"].as_str().unwrap_or("value")),
        Some("integer") => match (property["minimum"].as_u64(), property["maximum"].as_u64()) {
            (Some(lo), Some(hi)) => format!("an integer from {lo} to {hi}"),
            _ => "an integer".to_owned(),
        },
        Some("number") => match (property["minimum"].as_f64(), property["maximum"].as_f64()) {
            (Some(lo), Some(hi)) => format!("a number from {lo} to {hi}"),
            _ => "a number".to_owned(),
        },
        Some("string") => match property["enum"].as_array() {
            Some(values) => {
                let v: Vec<String> = values.iter().filter_map(Value::as_str).map(|s| format!("`{s}`")).collect();
                format!("one of {}", v.join(", "))
            }
            None => "a string".to_owned(),
        },
        Some("boolean") => "true or false".to_owned(),
        Some("object") => "an object".to_owned(),
        Some(other) => format!("a {other}"),
        None => "a value".to_owned(),
    };
    match property["description"].as_str() {
        Some(d) => format!("{kind} ({d})"),
        None => kind,
    }
}
