//! Environments (§7): how an agent's `shell` and `http_fetch` tools may behave — network policy,
//! resource limits, environment variables (secrets by vault reference) and the packages it
//! expects. Each agent runs in its own workspace; the environment is the policy around it.
//! An agent without `environment_id` gets [`EnvironmentConfig::default_policy`]: no network,
//! default limits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::agent::check_slug;
use crate::ids::{EnvironmentId, SandboxId};
use crate::source::{ValueRef, check_env_name, check_map, check_text, from_value};

const MAX_PACKAGES: usize = 100;
const MAX_HOSTS: usize = 100;

/// Network access of the shell and of `http_fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// No network at all (the default).
    #[default]
    None,
    /// `http_fetch` may reach these hosts (`example.com`, `*.example.com`, `127.0.0.1:8080`);
    /// the shell gets no network (there is no per-host filter for raw sockets, so it fails closed).
    Allowlist(Vec<String>),
    /// Any public address. Loopback, private and link-local addresses stay blocked for
    /// `http_fetch` unless listed in an allowlist.
    Open,
}

/// Resource limits of one shell command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// CPU time, seconds (1–600).
    pub cpu_seconds: u64,
    /// Address-space limit, MiB (16–16384).
    pub memory_mb: u64,
    /// Processes and threads (1–4096).
    pub max_processes: u64,
    /// Wall-clock limit of one command, seconds (1–3600).
    pub timeout_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { cpu_seconds: 10, memory_mb: 512, max_processes: 64, timeout_seconds: 30 }
    }
}

/// The user-editable configuration of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// A slug unique in the sandbox.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Informational in this version: the programs the agent expects (they must exist on the
    /// host's read-only `/usr`); nothing is installed.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Variables set for shell commands; values may come from vaults.
    #[serde(default)]
    pub env: BTreeMap<String, ValueRef>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub limits: Limits,
}

impl EnvironmentConfig {
    /// The policy of an agent without an environment.
    pub fn default_policy() -> Self {
        Self {
            name: "default".into(),
            description: "No network, default limits".into(),
            packages: vec![],
            env: BTreeMap::new(),
            network: Network::None,
            limits: Limits::default(),
        }
    }

    pub fn from_json(value: serde_json::Value) -> Result<Self, ValidationError> {
        let config: EnvironmentConfig = from_value(value)?;
        config.validate()?;
        Ok(config)
    }

    /// Applies a partial update (top-level keys replace; `null` resets to the default).
    pub fn patched(&self, patch: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ValidationError> {
        let mut current = serde_json::to_value(self).expect("an environment config serializes");
        let obj = current.as_object_mut().expect("an environment config is an object");
        for (k, v) in patch {
            if v.is_null() {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
        Self::from_json(current)
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        check_slug(&self.name, "name")?;
        crate::text::check_description(&self.description, "description", 2_000)?;
        if self.packages.len() > MAX_PACKAGES {
            return Err(ValidationError::new("packages", format!("has {} items; the limit is {MAX_PACKAGES}", self.packages.len())));
        }
        for (i, p) in self.packages.iter().enumerate() {
            check_text(p, &format!("packages[{i}]"), 200)?;
        }
        check_map(&self.env, "env", check_env_name)?;
        if let Network::Allowlist(hosts) = &self.network {
            if hosts.is_empty() || hosts.len() > MAX_HOSTS {
                return Err(ValidationError::new("network.allowlist", format!("list 1 to {MAX_HOSTS} hosts, or use \"none\"")));
            }
            for (i, h) in hosts.iter().enumerate() {
                check_host_pattern(h, &format!("network.allowlist[{i}]"))?;
            }
        }
        let l = &self.limits;
        range(l.cpu_seconds, 1, 600, "limits.cpu_seconds")?;
        range(l.memory_mb, 16, 16_384, "limits.memory_mb")?;
        range(l.max_processes, 1, 4_096, "limits.max_processes")?;
        range(l.timeout_seconds, 1, 3_600, "limits.timeout_seconds")?;
        Ok(())
    }
}

fn range(v: u64, min: u64, max: u64, param: &str) -> Result<(), ValidationError> {
    if v < min || v > max {
        return Err(ValidationError::new(param, format!("{v} is out of range; use {min} to {max}")));
    }
    Ok(())
}

/// `host`, `*.host`, or either with `:port`. Lowercase letters, digits, `-`, `.`; IPv4 literals.
fn check_host_pattern(h: &str, param: &str) -> Result<(), ValidationError> {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (h, None),
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && !host.ends_with('.')
        && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            param,
            format!("`{}` is not a host pattern: use `example.com`, `*.example.com` or `host:port` (lowercase)", crate::ids::shorten(h)),
        ))
    }
}

/// A stored environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub id: EnvironmentId,
    pub sandbox_id: SandboxId,
    pub config: EnvironmentConfig,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A starting point for `POST /v1/environments {"template": …}`.
#[derive(Debug, Clone, Serialize)]
pub struct Template {
    pub id: &'static str,
    pub description: &'static str,
    pub config: EnvironmentConfig,
}

/// The shipped templates.
pub fn templates() -> Vec<Template> {
    let base = |name: &str, description: &str| EnvironmentConfig {
        name: name.into(),
        description: description.into(),
        ..EnvironmentConfig::default_policy()
    };
    vec![
        Template {
            id: "minimal",
            description: "POSIX shell and coreutils, no network, default limits",
            config: base("minimal", "No network, default limits"),
        },
        Template {
            id: "python",
            description: "Python 3 from the host's /usr, no network, 1 GiB memory, 60 s per command",
            config: EnvironmentConfig {
                packages: vec!["python3".into()],
                limits: Limits { memory_mb: 1024, timeout_seconds: 60, cpu_seconds: 60, ..Limits::default() },
                ..base("python", "Python 3, no network")
            },
        },
        Template {
            id: "open-network",
            description: "Network open to public addresses (not loopback or private ranges), default limits",
            config: EnvironmentConfig { network: Network::Open, ..base("open-network", "Public network access") },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_defaults_and_errors() {
        let c = EnvironmentConfig::from_json(json!({"name": "py"})).unwrap();
        assert_eq!(c.network, Network::None);
        assert_eq!(c.limits, Limits::default());
        let c = EnvironmentConfig::from_json(
            json!({"name": "web", "network": {"allowlist": ["api.github.com", "*.example.com", "127.0.0.1:8080"]}}),
        )
        .unwrap();
        assert_eq!(serde_json::to_value(&c.network).unwrap(), json!({"allowlist": ["api.github.com", "*.example.com", "127.0.0.1:8080"]}));
        assert_eq!(serde_json::to_value(Network::Open).unwrap(), json!("open"));
        let e = |v| EnvironmentConfig::from_json(v).unwrap_err().param;
        assert_eq!(e(json!({"name": "x", "network": {"allowlist": []}})), "network.allowlist");
        assert_eq!(e(json!({"name": "x", "network": {"allowlist": ["http://x"]}})), "network.allowlist[0]");
        assert_eq!(e(json!({"name": "x", "limits": {"memory_mb": 1}})), "limits.memory_mb");
        assert_eq!(e(json!({"name": "x", "limits": {"cpu_seconds": 0}})), "limits.cpu_seconds");
        assert_eq!(e(json!({"name": "x", "network": "sometimes"})), "network");
        assert_eq!(e(json!({"name": "x", "env": {"A-B": "v"}})), "env.A-B");
        let p = c.patched(json!({"network": null, "limits": {"timeout_seconds": 5}}).as_object().unwrap()).unwrap();
        assert_eq!(p.network, Network::None);
        assert_eq!(p.limits, Limits { timeout_seconds: 5, ..Limits::default() });
        for t in templates() {
            t.config.validate().unwrap();
        }
    }
}
