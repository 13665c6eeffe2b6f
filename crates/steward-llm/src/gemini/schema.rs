//! Turning a tool's JSON Schema into what Gemini's `functionDeclarations[].parameters` accepts:
//! a subset of OpenAPI 3.0's Schema object. Gemini answers 400 to the whole request for one
//! keyword it does not know (`$schema`, `additionalProperties`, `$ref`, …), so this keeps only the
//! keywords it documents and rewrites the common JSON Schema idioms it lacks (`$ref` into
//! `$defs`, `["string", "null"]` types, `oneOf`, `const`). Losing a constraint here only makes
//! the model's hint vaguer; the tool itself still validates its arguments.

use serde_json::{Map, Value, json};

/// Keywords Gemini's Schema object has, kept as they are (after cleaning their sub-schemas).
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "items",
    "properties",
    "required",
    "anyOf",
    "propertyOrdering",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
];

/// How deep `$ref`s are inlined; a recursive type is cut off (as "any value") below this.
const MAX_REF_DEPTH: usize = 8;

/// The `parameters` of a function declaration, or `None` for a tool without arguments (Gemini
/// rejects an object schema with empty `properties`).
pub(super) fn parameters(schema: &Value) -> Option<Value> {
    let cleaned = clean(schema, schema, 0);
    match cleaned.get("properties") {
        Some(Value::Object(properties)) if !properties.is_empty() => Some(cleaned),
        _ => None,
    }
}

/// One schema, cleaned; `root` is where `$ref`s are resolved.
fn clean(schema: &Value, root: &Value, depth: usize) -> Value {
    let Some(object) = schema.as_object() else {
        // `true` (anything) and malformed schemas: no constraint.
        return json!({});
    };
    if let Some(target) = object.get("$ref").and_then(Value::as_str) {
        return match resolve(root, target) {
            Some(resolved) if depth < MAX_REF_DEPTH => {
                let mut inlined = clean(resolved, root, depth + 1);
                // Keywords next to `$ref` (usually a description) refine the referenced schema.
                let siblings = clean(
                    &Value::Object(object.iter().filter(|(k, _)| *k != "$ref").map(|(k, v)| (k.clone(), v.clone())).collect()),
                    root,
                    depth,
                );
                if let (Some(inlined), Value::Object(siblings)) = (inlined.as_object_mut(), siblings) {
                    inlined.extend(siblings);
                }
                inlined
            }
            _ => json!({}),
        };
    }

    let mut out = Map::new();
    for (key, value) in object {
        let value = match key.as_str() {
            "properties" => match value.as_object() {
                Some(properties) => Value::Object(properties.iter().map(|(name, s)| (name.clone(), clean(s, root, depth))).collect()),
                None => continue,
            },
            // A tuple (`items: [..]`) has no Gemini form; its first element is the best hint.
            "items" => match value {
                Value::Array(tuple) => tuple.first().map(|s| clean(s, root, depth)).unwrap_or_else(|| json!({})),
                _ => clean(value, root, depth),
            },
            "anyOf" | "oneOf" => match value.as_array() {
                Some(variants) => Value::Array(variants.iter().map(|s| clean(s, root, depth)).collect()),
                None => continue,
            },
            "const" if !object.contains_key("enum") => json!([value]),
            k if KEPT.contains(&k) => value.clone(),
            _ => continue,
        };
        let key = match key.as_str() {
            "oneOf" if object.contains_key("anyOf") => continue,
            "oneOf" => "anyOf",
            "const" => "enum",
            k => k,
        };
        out.insert(key.to_owned(), value);
    }
    normalize_type(&mut out);
    fold_null_variant(&mut out);
    keep_valid_enum_and_format(&mut out);
    keep_known_required(&mut out);
    if matches!(out.get("properties"), Some(Value::Object(p)) if p.is_empty()) {
        out.remove("properties");
    }
    Value::Object(out)
}

/// `#/$defs/Name` or `#/definitions/Name` (any JSON pointer into the root, in fact).
fn resolve<'a>(root: &'a Value, target: &str) -> Option<&'a Value> {
    root.pointer(target.strip_prefix('#')?)
}

/// `type: ["string", "null"]` → `type: "string", nullable: true`; several non-null types become
/// `anyOf`, since Gemini's `type` is a single name.
fn normalize_type(out: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = out.get("type") else { return };
    let nullable = types.iter().any(|t| t == "null");
    let types: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
    out.remove("type");
    match types.as_slice() {
        [] => {}
        [single] => {
            out.insert("type".into(), single.clone());
        }
        several => {
            out.entry("anyOf").or_insert_with(|| Value::Array(several.iter().map(|t| json!({"type": t})).collect()));
        }
    }
    if nullable {
        out.insert("nullable".into(), Value::Bool(true));
    }
}

/// `anyOf: [X, {type: null}]` (how `Optional[X]` is usually written) → X with `nullable: true`.
fn fold_null_variant(out: &mut Map<String, Value>) {
    let Some(Value::Array(variants)) = out.get_mut("anyOf") else { return };
    let before = variants.len();
    variants.retain(|v| v.get("type").is_none_or(|t| t != "null"));
    if variants.len() < before {
        out.insert("nullable".into(), Value::Bool(true));
    }
    let Some(Value::Array(variants)) = out.get("anyOf") else { return };
    match variants.as_slice() {
        [] => {
            out.remove("anyOf");
        }
        [single] => {
            let single = single.as_object().cloned().unwrap_or_default();
            out.remove("anyOf");
            for (key, value) in single {
                // The outer keywords (a description, say) win over the variant's.
                out.entry(key).or_insert(value);
            }
        }
        _ => {}
    }
}

/// Gemini takes `enum` only as a list of strings, and `format` only from a short list per type
/// (a string's `uri` or `email` is a 400).
fn keep_valid_enum_and_format(out: &mut Map<String, Value>) {
    if let Some(Value::Array(values)) = out.get("enum")
        && !values.iter().all(Value::is_string)
    {
        out.remove("enum");
    }
    if let Some(format) = out.get("format").and_then(Value::as_str) {
        let valid = match out.get("type").and_then(Value::as_str) {
            Some("string") => matches!(format, "enum" | "date-time"),
            Some("integer") => matches!(format, "int32" | "int64"),
            Some("number") => matches!(format, "float" | "double"),
            _ => false,
        };
        if !valid {
            out.remove("format");
        }
    }
}

/// `required` may only name properties the schema declares.
fn keep_known_required(out: &mut Map<String, Value>) {
    let Some(Value::Array(required)) = out.get("required") else {
        out.remove("required");
        return;
    };
    let declared = out.get("properties").and_then(Value::as_object);
    let kept: Vec<Value> =
        required.iter().filter(|name| name.as_str().is_some_and(|n| declared.is_some_and(|d| d.contains_key(n)))).cloned().collect();
    if kept.is_empty() {
        out.remove("required");
    } else {
        out.insert("required".into(), Value::Array(kept));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_unknown_keywords_at_every_depth_but_keeps_property_names() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "$schema": {"type": "string"},
                "filter": {"type": "object", "additionalProperties": {"type": "string"}, "properties": {"q": {"type": "string", "examples": ["x"]}}},
                "tags": {"type": "array", "items": {"type": "string", "format": "uri"}, "uniqueItems": true}
            },
            "required": ["filter", "missing"]
        });
        assert_eq!(
            parameters(&schema).unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "$schema": {"type": "string"},
                    "filter": {"type": "object", "properties": {"q": {"type": "string"}}},
                    "tags": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["filter"]
            })
        );
    }

    #[test]
    fn rewrites_refs_nullable_types_one_of_and_const() {
        let schema = json!({
            "type": "object",
            "$defs": {"Mode": {"type": "string", "enum": ["fast", "slow"]}, "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
            "properties": {
                "mode": {"$ref": "#/$defs/Mode", "description": "how"},
                "limit": {"type": ["integer", "null"], "format": "int32"},
                "after": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}], "description": "cursor"},
                "kind": {"oneOf": [{"const": "a"}, {"const": 1}]},
                "tree": {"$ref": "#/$defs/Node"}
            }
        });
        let out = parameters(&schema).unwrap();
        assert_eq!(out["properties"]["mode"], json!({"type": "string", "enum": ["fast", "slow"], "description": "how"}));
        assert_eq!(out["properties"]["limit"], json!({"type": "integer", "format": "int32", "nullable": true}));
        assert_eq!(out["properties"]["after"], json!({"type": "string", "format": "date-time", "nullable": true, "description": "cursor"}));
        assert_eq!(out["properties"]["kind"], json!({"anyOf": [{"enum": ["a"]}, {}]}));
        // A recursive type is cut off at a bounded depth instead of looping.
        let mut node = &out["properties"]["tree"];
        let mut depth = 0;
        while let Some(next) = node.pointer("/properties/next") {
            node = next;
            depth += 1;
        }
        assert!(depth <= MAX_REF_DEPTH, "{depth}");
        assert!(out.get("$defs").is_none());
    }

    #[test]
    fn a_tool_without_arguments_has_no_parameters() {
        assert_eq!(parameters(&json!({"type": "object", "properties": {}})), None);
        assert_eq!(parameters(&json!({"type": "object"})), None);
        assert_eq!(parameters(&json!(true)), None);
    }
}
