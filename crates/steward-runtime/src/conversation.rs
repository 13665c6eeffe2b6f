//! The stored form of conversation messages (provider-neutral JSON in the store) and its
//! conversion to the model API's messages.

use serde_json::{Value, json};
use steward_core::session::ConversationMessage;
use steward_llm::{Message, Part, Role};

/// The JSON stored for a message's parts.
pub fn parts_to_json(parts: &[Part]) -> Value {
    let parts: Vec<Value> = parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => json!({"type": "text", "text": t}),
            Part::ToolCall { id, name, arguments } => json!({"type": "tool_call", "id": id, "name": name, "arguments": arguments}),
            Part::ToolResult { call_id, name, content, is_error } => {
                json!({"type": "tool_result", "call_id": call_id, "name": name, "content": content, "is_error": is_error})
            }
        })
        .collect();
    json!({ "parts": parts })
}

fn part_from_json(v: &Value) -> Option<Part> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(match v.get("type")?.as_str()? {
        "text" => Part::Text(s("text")?),
        "tool_call" => Part::ToolCall { id: s("id")?, name: s("name")?, arguments: v.get("arguments").cloned().unwrap_or(Value::Null) },
        "tool_result" => Part::ToolResult {
            call_id: s("call_id")?,
            name: s("name")?,
            content: s("content")?,
            is_error: v.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        },
        _ => return None,
    })
}

/// The model messages of a stored conversation.
pub fn to_model_messages(stored: &[ConversationMessage]) -> Vec<Message> {
    stored
        .iter()
        .map(|m| Message {
            role: if m.role == "assistant" { Role::Assistant } else { Role::User },
            parts: m
                .content
                .get("parts")
                .and_then(Value::as_array)
                .map(|ps| ps.iter().filter_map(part_from_json).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// A run's input items as conversation messages: `(stored role, message)` — the stored role is
/// the input's own (`user`, or what the caller sent), the model's is assistant or user.
pub(crate) fn input_messages(input: &Value) -> Vec<(String, Message)> {
    input
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    let role = if item.get("role").and_then(Value::as_str) == Some("assistant") { Role::Assistant } else { Role::User };
                    let text = item.get("content").and_then(Value::as_str).unwrap_or_default();
                    let stored = item.get("role").and_then(Value::as_str).unwrap_or("user").to_owned();
                    (stored, Message { role, parts: vec![Part::Text(text.into())] })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let parts = vec![
            Part::Text("hi".into()),
            Part::ToolCall { id: "c1".into(), name: "current_time".into(), arguments: json!({}) },
            Part::ToolResult { call_id: "c1".into(), name: "current_time".into(), content: "now".into(), is_error: false },
        ];
        let stored = ConversationMessage {
            seq: 1,
            run_id: steward_core::ids::RunId::generate(),
            role: "assistant".into(),
            content: parts_to_json(&parts),
            created_at: 0,
        };
        let back = to_model_messages(&[stored]);
        assert_eq!(back[0].parts, parts);
        assert_eq!(back[0].role, Role::Assistant);
    }
}
