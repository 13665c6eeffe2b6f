//! The catalog of management tools (§5) and `Toolkit`, which runs them.
//! (Skeleton: the interface is fixed; the bodies are being written.)

use std::sync::Arc;

use serde_json::Value;
use steward_core::tenancy::Role;

use crate::api::Api;

/// The 13 read tools, in catalog order.
pub const READ_TOOLS: [&str; 13] = [
    "list_sandboxes",
    "list_sources",
    "get_source",
    "list_agents",
    "get_agent",
    "list_triggers",
    "list_runs",
    "get_run_trace",
    "list_apps",
    "list_trigger_components",
    "list_connected_accounts",
    "list_api_keys",
    "list_agent_tools",
];

/// The 15 mutating (all reversible) tools, in catalog order.
pub const MUTATING_TOOLS: [&str; 15] = [
    "provision_source",
    "update_source",
    "create_agent",
    "update_agent_prompt",
    "update_agent_tools",
    "update_agent_model_settings",
    "update_agent_tool_sources",
    "test_agent",
    "create_trigger",
    "update_trigger",
    "pause_trigger",
    "resume_trigger",
    "start_integration_connect",
    "mint_agent_invoke_key",
    "mint_agent_delegate_key",
];

/// One management tool as offered to a model or an MCP client.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: &'static str,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: Value,
    pub mutating: bool,
}

/// The tools `role` may use: all 28 for owners and editors, the 13 read tools for viewers.
pub fn catalog(role: Role) -> Vec<ToolDef> {
    let _ = role;
    Vec::new()
}

/// The management tools bound to one sandbox, one caller (through `api`) and that caller's role.
#[derive(Debug, Clone)]
pub struct Toolkit {
    api: Arc<dyn Api>,
    sandbox: String,
    role: Role,
}

impl Toolkit {
    pub fn new(api: Arc<dyn Api>, sandbox: impl Into<String>, role: Role) -> Self {
        Self { api, sandbox: sandbox.into(), role }
    }

    pub fn sandbox(&self) -> &str {
        &self.sandbox
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// `catalog(self.role())`.
    pub fn tools(&self) -> Vec<ToolDef> {
        catalog(self.role)
    }

    /// Runs tool `name`. `Ok` is the result text for the model (compact JSON or a sentence);
    /// `Err` a tool error saying what was wrong and how to fix it. Unknown names, mutating tools
    /// for a viewer and arguments that do not match the schema are refused before any call.
    pub async fn call(&self, name: &str, arguments: Value) -> Result<String, String> {
        let _ = (&self.api, arguments);
        Err(format!("`{name}` is not built yet"))
    }
}
