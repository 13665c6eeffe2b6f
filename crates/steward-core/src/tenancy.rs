//! Tenancy (§1): accounts, sandboxes, roles and grants, API keys and their kinds.

use std::fmt;
use std::str::FromStr;

use crate::ValidationError;
use crate::ids::{AccountId, AgentId, ApiKeyId, SandboxId};

/// What a caller may do in a sandbox. Ordered: `Viewer < Editor < Owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// May only read.
    Viewer,
    /// May read and make reversible changes.
    Editor,
    /// May do everything, including destructive operations (§9).
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }

    /// Whether this role includes the capabilities of `required`.
    pub fn satisfies(self, required: Role) -> bool {
        self >= required
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "owner" => Ok(Role::Owner),
            other => Err(ValidationError::new(
                "role",
                format!("`{}` is not a role; use `owner`, `editor` or `viewer`", crate::ids::shorten(other)),
            )),
        }
    }
}

/// A person, identified by email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub email: Email,
    pub created_at: i64,
}

/// A normalised (trimmed, lowercased) email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address; deliberately lenient (one `@`, a dot in the domain, no spaces),
    /// because the code sent to it is the real check.
    pub fn parse(raw: &str, param: &str) -> Result<Self, ValidationError> {
        let e = raw.trim().to_ascii_lowercase();
        let bad = || ValidationError::new(param, format!("`{}` is not an email address like `ada@example.com`", crate::ids::shorten(raw)));
        if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = e.split_once('@').ok_or_else(bad)?;
        if local.is_empty() || domain.contains('@') || !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(bad());
        }
        Ok(Email(e))
    }

    pub fn from_trusted(raw: String) -> Self {
        Email(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A sandbox: every other resource belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub id: SandboxId,
    pub name: String,
    pub owner_id: AccountId,
    pub created_at: i64,
    pub archived_at: Option<i64>,
    /// IANA zone of local times given without one (default `UTC`).
    pub time_zone: String,
}

/// Validates a sandbox display name: 1–100 printable characters.
pub fn sandbox_name(raw: &str, param: &str) -> Result<String, ValidationError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ValidationError::new(param, "a sandbox name must be 1–100 printable characters"));
    }
    crate::text::check_display_text(name, param)?;
    Ok(name.to_owned())
}

/// An account's role in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub sandbox_id: SandboxId,
    pub account_id: AccountId,
    pub email: Email,
    pub role: Role,
    pub created_at: i64,
}

/// What an API key may do (§1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Acts as its account, with the account's role in each sandbox.
    Account,
    /// May only start sessions with, message, and read the sessions of one agent.
    AgentInvoke,
    /// Like invoke, with every session partitioned by a caller-supplied `end_user`.
    AgentDelegate,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Account => "account",
            KeyKind::AgentInvoke => "agent_invoke",
            KeyKind::AgentDelegate => "agent_delegate",
        }
    }

    pub fn is_agent_scoped(self) -> bool {
        !matches!(self, KeyKind::Account)
    }
}

impl FromStr for KeyKind {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "account" => Ok(KeyKind::Account),
            "agent_invoke" => Ok(KeyKind::AgentInvoke),
            "agent_delegate" => Ok(KeyKind::AgentDelegate),
            other => Err(ValidationError::new(
                "kind",
                format!("`{}` is not a key kind; use `account`, `agent_invoke` or `agent_delegate`", crate::ids::shorten(other)),
            )),
        }
    }
}

/// A stored API key (never its plaintext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    /// The sandbox it was minted in (its home sandbox).
    pub sandbox_id: SandboxId,
    /// The account it acts as (account keys) or that minted it (agent keys).
    pub account_id: AccountId,
    pub kind: KeyKind,
    pub agent_id: Option<AgentId>,
    pub name: String,
    pub display_prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Validates a key label: 1–100 printable characters.
pub fn key_name(raw: &str) -> Result<String, ValidationError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ValidationError::new("name", "a key name must be 1–100 printable characters"));
    }
    crate::text::check_display_text(name, "name")?;
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order() {
        assert!(Role::Owner.satisfies(Role::Editor));
        assert!(Role::Editor.satisfies(Role::Viewer));
        assert!(!Role::Viewer.satisfies(Role::Editor));
        assert!(!Role::Editor.satisfies(Role::Owner));
        assert_eq!("editor".parse::<Role>().unwrap(), Role::Editor);
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn emails_normalise_and_reject_junk() {
        assert_eq!(Email::parse(" Ada@Example.COM ", "email").unwrap().as_str(), "ada@example.com");
        for bad in ["", "ada", "ada@", "@x.io", "a b@x.io", "a@b@c.io", "a@localhost", "a@x\u{7}.io"] {
            assert!(Email::parse(bad, "email").is_err(), "{bad:?}");
        }
    }
}
