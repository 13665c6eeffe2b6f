//! Chat channels (§10, second half): the platforms an agent can be linked to, link codes, the
//! bindings they create, the bot credentials a sandbox configures per platform, and how a long
//! reply is split for a platform's message limit. No I/O: the store keeps these, the server
//! speaks each platform's wire format.
//!
//! **Link codes** are 10 characters from an alphabet without look-alikes (≈49 bits), shown
//! once and stored only as their SHA-256 hash ([`crate::keys::hash`] of the normalised code).
//! They live [`LINK_CODE_TTL_MS`] and are redeemed once; an agent has at most
//! [`MAX_OUTSTANDING_CODES`] unexpired, unused codes per platform, which bounds guessing to a
//! few codes per agent at a time.

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::Value;

use crate::ValidationError;
use crate::ids::{AgentId, ChannelBindingId, SandboxId};

/// How long a link code can be redeemed: 10 minutes.
pub const LINK_CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// Unexpired, unused link codes an agent may hold per platform.
pub const MAX_OUTSTANDING_CODES: i64 = 5;
/// The code alphabet: digits and capitals without 0/O, 1/I/L, U.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTVWXYZ23456789";
const CODE_LEN: usize = 10;

/// A chat platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    Slack,
    Discord,
    Telegram,
    Whatsapp,
}

impl Platform {
    pub const ALL: [Platform; 4] = [Platform::Slack, Platform::Discord, Platform::Telegram, Platform::Whatsapp];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Slack => "slack",
            Platform::Discord => "discord",
            Platform::Telegram => "telegram",
            Platform::Whatsapp => "whatsapp",
        }
    }

    /// Parses a path segment; `param` names it in the error.
    pub fn parse(raw: &str, param: &str) -> Result<Self, ValidationError> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw).ok_or_else(|| {
            ValidationError::new(
                param,
                format!("`{}` is not a chat platform; use `slack`, `discord`, `telegram` or `whatsapp`", crate::ids::shorten(raw)),
            )
        })
    }

    /// The longest message the platform takes, in characters.
    pub fn message_limit(self) -> usize {
        match self {
            Platform::Telegram => 4096,
            Platform::Discord => 2000,
            Platform::Slack => 4000,
            Platform::Whatsapp => 4096,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of chat a binding is: a direct message binds one user, a group or channel binds
/// everyone in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    Dm,
    Group,
    Channel,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Dm => "dm",
            ChatKind::Group => "group",
            ChatKind::Channel => "channel",
        }
    }

    /// Reads back a stored value (`dm` for anything unknown: the most restrictive reading).
    pub fn from_stored(raw: &str) -> Self {
        match raw {
            "group" => ChatKind::Group,
            "channel" => ChatKind::Channel,
            _ => ChatKind::Dm,
        }
    }
}

/// When the agent answers in a group or channel (direct messages are always answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Respond {
    /// Only when the bot is mentioned or replied to (the default).
    Mentions,
    /// Every message.
    All,
}

impl Respond {
    pub fn as_str(self) -> &'static str {
        match self {
            Respond::Mentions => "mentions",
            Respond::All => "all",
        }
    }

    pub fn parse(raw: &str, param: &str) -> Result<Self, ValidationError> {
        match raw {
            "mentions" => Ok(Respond::Mentions),
            "all" => Ok(Respond::All),
            _ => Err(ValidationError::new(param, "use `mentions` (answer when mentioned or replied to) or `all`")),
        }
    }

    pub fn from_stored(raw: &str) -> Self {
        if raw == "all" { Respond::All } else { Respond::Mentions }
    }
}

/// One chat bound to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    pub id: ChannelBindingId,
    pub sandbox_id: SandboxId,
    pub agent_id: AgentId,
    pub platform: Platform,
    /// The platform's chat id (a Telegram chat id, a Slack channel id…).
    pub chat_id: String,
    pub chat_kind: ChatKind,
    /// The chat's title (groups, channels).
    pub chat_title: Option<String>,
    /// The user who redeemed the code.
    pub user_id: String,
    pub user_name: Option<String>,
    pub respond: Respond,
    pub linked_at: i64,
}

/// What is known about the chat a code was redeemed from.
#[derive(Debug, Clone)]
pub struct ChatRef {
    pub chat_id: String,
    pub chat_kind: ChatKind,
    pub chat_title: Option<String>,
    pub user_id: String,
    pub user_name: Option<String>,
}

/// A fresh link code (the plaintext; store only [`code_hash`] of it).
pub fn mint_link_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LEN).map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char).collect()
}

/// The stored form of a code as a user typed it: trimmed and upper-cased, then hashed.
/// `None` when it cannot be a code (wrong length or characters), so nothing is looked up.
pub fn code_hash(typed: &str) -> Option<String> {
    let code = typed.trim().to_ascii_uppercase();
    (code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then(|| crate::keys::hash(&code))
}

/// A bot's configuration for one platform: the fields that may be shown, and the secrets
/// (sealed by the caller before they are stored; never shown).
#[derive(Clone, PartialEq, Eq)]
pub struct BotCredentials {
    pub public: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for BotCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotCredentials").field("public", &self.public).field("secrets", &self.secrets.keys()).finish()
    }
}

/// One credential field: its name, whether it is secret, whether it is required, and its check.
struct Field {
    name: &'static str,
    secret: bool,
    required: bool,
    check: fn(&str) -> Result<(), &'static str>,
}

fn any_token(v: &str) -> Result<(), &'static str> {
    if v.len() > 512 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be 1–512 characters without spaces; copy it whole from the platform's developer console");
    }
    Ok(())
}

fn telegram_token(v: &str) -> Result<(), &'static str> {
    match v.split_once(':') {
        Some((id, rest)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && rest.len() >= 20 && any_token(v).is_ok() => Ok(()),
        _ => Err("is not a Telegram bot token (`123456789:AA…`, as @BotFather gives it)"),
    }
}

fn telegram_secret(v: &str) -> Result<(), &'static str> {
    if v.len() > 256 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err("must be 1–256 characters of A–Z, a–z, 0–9, `_` and `-` (Telegram's rule for `secret_token`)");
    }
    Ok(())
}

fn digits(v: &str) -> Result<(), &'static str> {
    if v.len() > 32 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be the numeric id shown in the platform's developer console");
    }
    Ok(())
}

fn hex64(v: &str) -> Result<(), &'static str> {
    if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("must be the 64 hex characters of the application's public key");
    }
    Ok(())
}

fn fields(platform: Platform) -> &'static [Field] {
    const fn f(name: &'static str, secret: bool, required: bool, check: fn(&str) -> Result<(), &'static str>) -> Field {
        Field { name, secret, required, check }
    }
    match platform {
        Platform::Telegram => {
            const F: &[Field] = &[f("bot_token", true, true, telegram_token), f("webhook_secret", true, false, telegram_secret)];
            F
        }
        Platform::Slack => {
            const F: &[Field] = &[
                f("bot_token", true, true, any_token),
                f("signing_secret", true, true, any_token),
                f("app_token", true, false, any_token),
            ];
            F
        }
        Platform::Discord => {
            const F: &[Field] =
                &[f("application_id", false, true, digits), f("public_key", false, true, hex64), f("bot_token", true, true, any_token)];
            F
        }
        Platform::Whatsapp => {
            const F: &[Field] = &[
                f("phone_number_id", false, true, digits),
                f("access_token", true, true, any_token),
                f("app_secret", true, true, any_token),
            ];
            F
        }
    }
}

impl BotCredentials {
    /// Parses a `PUT /v1/channels/{platform}/bot` body: exactly the platform's fields, each a
    /// non-empty string that passes its check. Errors name the field and never quote a value.
    /// Keys in `extra` (non-credential options the caller handles) are skipped.
    pub fn from_json(platform: Platform, body: &Value, extra: &[&str]) -> Result<Self, ValidationError> {
        let Some(obj) = body.as_object() else {
            return Err(ValidationError::new("body", "send a JSON object with the bot's credentials"));
        };
        let known = fields(platform);
        if let Some(k) = obj.keys().find(|k| !extra.contains(&k.as_str()) && !known.iter().any(|f| f.name == k.as_str())) {
            let names: Vec<&str> = known.iter().map(|f| f.name).collect();
            return Err(ValidationError::new(
                crate::ids::shorten(k),
                format!("is not a {platform} bot field; the fields are {}", names.join(", ")),
            ));
        }
        let mut out = BotCredentials { public: BTreeMap::new(), secrets: BTreeMap::new() };
        for field in known {
            let value = match obj.get(field.name) {
                None | Some(Value::Null) if field.required => {
                    return Err(ValidationError::new(field.name, format!("is required for a {platform} bot")));
                }
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) if !s.is_empty() => s,
                Some(_) => return Err(ValidationError::new(field.name, "must be a non-empty string")),
            };
            (field.check)(value).map_err(|m| ValidationError::new(field.name, format!("`{}` {m}", field.name)))?;
            let into = if field.secret { &mut out.secrets } else { &mut out.public };
            into.insert(field.name.to_owned(), value.clone());
        }
        Ok(out)
    }
}

/// Splits `text` into messages of at most `limit` characters: at paragraph breaks (a blank
/// line) when possible, else at line breaks, else at spaces, else anywhere. Pieces are trimmed;
/// empty text gives no message.
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.chars().count() <= limit {
            out.push(rest.to_owned());
            break;
        }
        // The byte offset just past `limit` characters.
        let window_end = rest.char_indices().nth(limit).map(|(i, _)| i).unwrap_or(rest.len());
        let window = &rest[..window_end];
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&i| i > 0).map(|i| (i, i + sep.len())))
            .unwrap_or((window_end, window_end));
        out.push(rest[..cut.0].trim_end().to_owned());
        rest = rest[cut.1..].trim_start();
    }
    out.retain(|m| !m.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_hash_whatever_the_case_and_refuse_junk() {
        let code = mint_link_code();
        assert_eq!(code.len(), CODE_LEN);
        assert_eq!(code_hash(&code.to_ascii_lowercase()), code_hash(&format!(" {code} ")));
        assert_eq!(code_hash(&code).unwrap(), crate::keys::hash(&code));
        assert_eq!(code_hash("short"), None);
        assert_eq!(code_hash("OOOOOOOOOO"), None, "O is not in the alphabet");
    }

    #[test]
    fn split_prefers_paragraphs_then_lines_then_anything() {
        let a = "a".repeat(3000);
        let b = "b".repeat(2000);
        let text = format!("{a}\n\n{b}");
        assert_eq!(split_message(&text, 4096), vec![a.clone(), b.clone()]);
        assert_eq!(split_message("short", 4096), vec!["short"]);
        assert!(split_message("  \n ", 10).is_empty());
        let long = "x".repeat(25);
        assert_eq!(split_message(&long, 10), vec!["x".repeat(10), "x".repeat(10), "x".repeat(5)]);
        assert_eq!(split_message("one two\nthree", 9), vec!["one two", "three"]);
        let multi = "é".repeat(12);
        assert_eq!(split_message(&multi, 5).iter().map(|m| m.chars().count()).collect::<Vec<_>>(), vec![5, 5, 2]);
    }

    #[test]
    fn credentials_are_checked_per_platform() {
        let ok = serde_json::json!({"bot_token": "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ", "webhook_secret": "s3cr3t_-"});
        let c = BotCredentials::from_json(Platform::Telegram, &ok, &[]).unwrap();
        assert!(c.public.is_empty());
        assert_eq!(c.secrets.len(), 2);
        let bad = serde_json::json!({"bot_token": "nope"});
        assert_eq!(BotCredentials::from_json(Platform::Telegram, &bad, &[]).unwrap_err().param, "bot_token");
        let e =
            BotCredentials::from_json(Platform::Discord, &serde_json::json!({"application_id": "1", "bot_token": "t"}), &[]).unwrap_err();
        assert_eq!(e.param, "public_key");
        let e = BotCredentials::from_json(Platform::Slack, &serde_json::json!({"bot_token": "t", "signing_secret": "s", "x": 1}), &[])
            .unwrap_err();
        assert_eq!(e.param, "x");
        let wa = serde_json::json!({"phone_number_id": "123", "access_token": "EAAG", "app_secret": "abc"});
        let c = BotCredentials::from_json(Platform::Whatsapp, &wa, &[]).unwrap();
        assert_eq!(c.public["phone_number_id"], "123");
        assert!(!format!("{c:?}").contains("EAAG"));
    }
}
