//! Whole-app validation. Everything the runtime and server rely on is checked once, when an app
//! is loaded, so they never re-check a URL or a placeholder. Errors name the field
//! (`oauth.token_url`, `trigger_components[1].id`) and the app.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{App, AppTools, HttpAuth, HttpTool, InboundVerification, OAuthSettings, TriggerComponent, ValueSource, placeholders};
use crate::ValidationError;
use crate::agent::check_len;
use crate::ids;

const MAX_ID_LEN: usize = 40;
const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 2_000;
const MAX_URL_LEN: usize = 2_048;
const MAX_TOLERANCE_SECS: u64 = 3_600;
/// Authorize parameters the connect flow sets itself; an app may not override them.
const RESERVED_PARAMS: &[&str] =
    &["client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge", "code_challenge_method"];

impl App {
    /// Checks the app as a whole. The error names the field and, in its message, the app.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.check().map_err(|e| ValidationError::new(e.param, format!("app `{}`: {}", ids::shorten(&self.id), e.message)))
    }

    fn check(&self) -> Result<(), ValidationError> {
        check_app_id(&self.id)?;
        check_name(&self.display_name, "display_name")?;
        crate::text::check_description(&self.description, "description", MAX_DESCRIPTION_CHARS)?;
        if let Some(oauth) = &self.oauth {
            check_oauth(oauth)?;
        }
        check_tools(&self.tools)?;
        match &self.webhook {
            Some(InboundVerification::SlackV0 { tolerance_secs } | InboundVerification::LinearSha256 { tolerance_secs })
                if *tolerance_secs == 0 || *tolerance_secs > MAX_TOLERANCE_SECS =>
            {
                return Err(ValidationError::new(
                    "webhook.tolerance_secs",
                    format!("{tolerance_secs} is out of range; use 1 to {MAX_TOLERANCE_SECS} seconds"),
                ));
            }
            Some(InboundVerification::HeaderToken { header }) => {
                ValueSource::parse(&format!("header:{header}")).map_err(|e| ValidationError::new("webhook.header", e))?;
            }
            Some(_) => {}
            None if !self.trigger_components.is_empty() => {
                return Err(ValidationError::new(
                    "webhook",
                    "the app has trigger components but no `webhook` verification; inbound events must be authenticated",
                ));
            }
            None => {}
        }
        let mut seen = BTreeSet::new();
        for (i, c) in self.trigger_components.iter().enumerate() {
            let param = format!("trigger_components[{i}]");
            self.check_component(c, &param)?;
            if !seen.insert(c.id.as_str()) {
                return Err(ValidationError::new(format!("{param}.id"), format!("`{}` is defined twice", c.id)));
            }
        }
        Ok(())
    }

    fn check_component(&self, c: &TriggerComponent, param: &str) -> Result<(), ValidationError> {
        let prefix = format!("{}.", self.id);
        let name = c.id.strip_prefix(&prefix).ok_or_else(|| {
            ValidationError::new(format!("{param}.id"), format!("`{}` must start with the app's id, `{prefix}`", ids::shorten(&c.id)))
        })?;
        let name_ok = name.len() <= 64
            && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(ValidationError::new(
                format!("{param}.id"),
                format!("`{}`: after `{prefix}` use 1–64 lowercase letters, digits or `_`, starting with a letter", ids::shorten(&c.id)),
            ));
        }
        check_name(&c.display_name, &format!("{param}.display_name"))?;
        crate::text::check_description(&c.description, &format!("{param}.description"), MAX_DESCRIPTION_CHARS)?;
        if c.matches.is_empty() {
            return Err(ValidationError::new(
                format!("{param}.matches"),
                "needs at least one condition, or the component would fire on every event of the app",
            ));
        }
        if !c.payload_schema.is_object() {
            return Err(ValidationError::new(
                format!("{param}.payload_schema"),
                "must be a JSON Schema object, e.g. {\"type\": \"object\"}",
            ));
        }
        if !c.example_matches() {
            return Err(ValidationError::new(
                format!("{param}.example"),
                "does not meet the component's `matches` (with `example_headers`); fix the example or the conditions",
            ));
        }
        Ok(())
    }
}

fn check_app_id(id: &str) -> Result<(), ValidationError> {
    let ok = id.len() <= MAX_ID_LEN
        && id.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        return Ok(());
    }
    Err(ValidationError::new(
        "id",
        format!(
            "`{}` is not a valid app id: use a lowercase letter, then up to 39 lowercase letters, digits, `-` or `_`",
            ids::shorten(id)
        ),
    ))
}

fn check_name(v: &str, param: &str) -> Result<(), ValidationError> {
    if v.trim().is_empty() {
        return Err(ValidationError::new(param, "is empty; give a name people will recognise"));
    }
    check_len(v, param, MAX_NAME_CHARS)?;
    crate::text::check_display_text(v, param)
}

fn check_oauth(o: &OAuthSettings) -> Result<(), ValidationError> {
    check_url(&o.authorize_url, "oauth.authorize_url")?;
    check_url(&o.token_url, "oauth.token_url")?;
    if let Some(url) = &o.revoke_url {
        check_url(url, "oauth.revoke_url")?;
    }
    if o.scope_separator.is_empty() || o.scope_separator.len() > 3 {
        return Err(ValidationError::new("oauth.scope_separator", "must be 1–3 characters, usually \" \" or \",\""));
    }
    for (i, s) in o.scopes.iter().enumerate() {
        if s.is_empty() || s.len() > 500 || s.chars().any(|c| c.is_whitespace() || c.is_control()) || s.contains(&o.scope_separator) {
            return Err(ValidationError::new(
                format!("oauth.scopes[{i}]"),
                format!("`{}` is not a scope: 1–500 characters without spaces or the separator", ids::shorten(s)),
            ));
        }
    }
    for (k, v) in &o.extra_authorize_params {
        let param = format!("oauth.extra_authorize_params.{}", ids::shorten(k));
        if RESERVED_PARAMS.contains(&k.as_str()) {
            return Err(ValidationError::new(param, format!("`{k}` is set by the connect flow itself; remove it")));
        }
        if k.is_empty() || k.len() > 100 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
            return Err(ValidationError::new(param, "is not a valid parameter name"));
        }
        if v.len() > 1_000 || v.chars().any(char::is_control) {
            return Err(ValidationError::new(param, "must be at most 1,000 characters without control characters"));
        }
    }
    for (param, pointer) in
        [("oauth.token_path", &o.token_path), ("oauth.account_id", &o.account_id), ("oauth.account_label", &o.account_label)]
    {
        if let Some(p) = pointer {
            match ValueSource::parse(p) {
                Ok(ValueSource::Pointer(_)) => {}
                _ => {
                    return Err(ValidationError::new(
                        param,
                        format!("`{}` is not a JSON pointer into the token response (e.g. `/team/id`)", ids::shorten(p)),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_tools(tools: &AppTools) -> Result<(), ValidationError> {
    match tools {
        AppTools::None => Ok(()),
        AppTools::Mcp { url } => check_url(url, "tools.url"),
        AppTools::Http { base_url, auth, tools } => {
            let has_token = base_url.contains("{token}");
            match (auth, has_token) {
                (HttpAuth::Url, false) => {
                    return Err(ValidationError::new(
                        "tools.base_url",
                        "`auth: url` needs `{token}` in the base URL, e.g. https://api.telegram.org/bot{token}",
                    ));
                }
                (HttpAuth::Bearer | HttpAuth::Bot, true) => {
                    return Err(ValidationError::new(
                        "tools.base_url",
                        "holds `{token}`, which only `auth: url` fills; remove it or set `auth: url`",
                    ));
                }
                _ => {}
            }
            check_url(&base_url.replace("{token}", "token"), "tools.base_url")?;
            if base_url.replace("{token}", "").contains(['{', '}', '?']) {
                return Err(ValidationError::new("tools.base_url", "may hold no placeholder but `{token}` and no query"));
            }
            if tools.is_empty() {
                return Err(ValidationError::new("tools.tools", "is empty; describe at least one call, or use {\"kind\": \"none\"}"));
            }
            let mut names = BTreeSet::new();
            for (i, t) in tools.iter().enumerate() {
                let param = format!("tools.tools[{i}]");
                check_http_tool(t, &param)?;
                if !names.insert(t.name.as_str()) {
                    return Err(ValidationError::new(format!("{param}.name"), format!("`{}` is used twice", t.name)));
                }
            }
            Ok(())
        }
    }
}

fn check_http_tool(t: &HttpTool, param: &str) -> Result<(), ValidationError> {
    let name_ok = !t.name.is_empty() && t.name.len() <= 64 && t.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(ValidationError::new(
            format!("{param}.name"),
            format!("`{}`: use 1–64 letters, digits, `_` or `-`", ids::shorten(&t.name)),
        ));
    }
    if t.description.trim().is_empty() {
        return Err(ValidationError::new(format!("{param}.description"), "is empty; the model chooses tools by their description"));
    }
    check_len(&t.description, &format!("{param}.description"), MAX_DESCRIPTION_CHARS)?;
    let path = format!("{param}.path");
    if !t.path.starts_with('/') || t.path.len() > 500 || t.path.chars().any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return Err(ValidationError::new(path, "must start with `/` and hold no spaces, query or fragment"));
    }
    let params = placeholders(&t.path);
    let well_formed = t.path.matches('{').count() == params.len()
        && t.path.matches('}').count() == params.len()
        && params.iter().all(|p| {
            p.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    if !well_formed {
        return Err(ValidationError::new(
            path,
            "placeholders look like `{channel_id}`: lowercase letters, digits and `_`, braces balanced",
        ));
    }
    let schema = format!("{param}.input_schema");
    if t.input_schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(ValidationError::new(schema, "must be a JSON Schema with \"type\": \"object\""));
    }
    let required: Vec<&str> =
        t.input_schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    for p in params {
        if t.input_schema.pointer(&format!("/properties/{p}")).is_none() || !required.contains(&p) {
            return Err(ValidationError::new(schema, format!("the path's `{{{p}}}` must be a property listed in `required`")));
        }
    }
    Ok(())
}

/// An absolute http(s) URL with a host and no credentials.
fn check_url(url: &str, param: &str) -> Result<(), ValidationError> {
    let bad = |why: &str| Err(ValidationError::new(param, format!("`{}` {why}", ids::shorten(url))));
    if url.is_empty() {
        return Err(ValidationError::new(param, "is empty; give an absolute https:// URL"));
    }
    if url.len() > MAX_URL_LEN {
        return bad(&format!("is longer than {MAX_URL_LEN} bytes"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return bad("is not an absolute URL; use https://host/path");
    };
    if scheme != "http" && scheme != "https" {
        return bad("must be an http(s) URL");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return bad("has no host");
    }
    if authority.contains('@') {
        return bad("must not carry credentials");
    }
    if url.contains('#') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain a fragment, spaces or control characters");
    }
    Ok(())
}
