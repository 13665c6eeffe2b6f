//! The catalog of management tools (§5) and `Toolkit`, which runs them.
//!
//! Every tool is one or a few calls to the platform's REST API through `Api`, with the caller's
//! credential, so the API's own checks (role, sandbox confinement, validation) hold whatever a
//! model asks for. Before any call, `Toolkit::call` refuses unknown tools, mutating tools for a
//! viewer, and arguments that do not match the tool's JSON Schema; ids are checked for their
//! kind and only ever reach a URL as validated path segments.
//!
//! This module must never offer a destructive operation (§9): deleting agents, sources or
//! triggers, archiving or destroying sandboxes, revoking keys or connected accounts. The
//! descriptions point at the `steward …` CLI commands for those instead.
//!
//! - `tools/schema.rs`: schema builders and argument validation (jsonschema).
//! - `tools/rest.rs`: API calls, path segments, paging, agent-name and trigger-id lookups,
//!   result shaping.
//! - one module per resource with its tools' descriptions, schemas and bodies: `access`
//!   (sandboxes, API keys), `sources`, `agents`, `runs` (runs, traces, tool resolution),
//!   `triggers` (webhook and integration triggers, schedules), `integrations`.

use std::sync::Arc;

use serde_json::Value;
use steward_core::tenancy::Role;

use crate::api::Api;

mod access;
mod agents;
mod integrations;
mod rest;
mod runs;
mod schema;
mod sources;
mod triggers;

use rest::Rest;
use schema::Args;

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

/// The description and input schema of tool `name`, from the module that owns it.
fn definition(name: &str) -> Option<(&'static str, Value)> {
    access::definition(name)
        .or_else(|| sources::definition(name))
        .or_else(|| agents::definition(name))
        .or_else(|| runs::definition(name))
        .or_else(|| triggers::definition(name))
        .or_else(|| integrations::definition(name))
}

fn tool_def(name: &'static str, mutating: bool) -> ToolDef {
    let (description, input_schema) = definition(name).unwrap_or_else(|| panic!("management tool `{name}` has no definition"));
    ToolDef { name, description: description.to_owned(), input_schema, mutating }
}

/// The tools `role` may use: all 28 for owners and editors, the 13 read tools for viewers.
pub fn catalog(role: Role) -> Vec<ToolDef> {
    let mut tools: Vec<ToolDef> = READ_TOOLS.iter().map(|n| tool_def(n, false)).collect();
    if role.satisfies(Role::Editor) {
        tools.extend(MUTATING_TOOLS.iter().map(|n| tool_def(n, true)));
    }
    tools
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
        let mutating = MUTATING_TOOLS.contains(&name);
        if !mutating && !READ_TOOLS.contains(&name) {
            let names: Vec<&str> = self.tools().iter().map(|t| t.name).collect();
            return Err(format!(
                "there is no tool `{}`; the tools available to you are: {}",
                steward_core::ids::shorten(name),
                names.join(", ")
            ));
        }
        if mutating && !self.role.satisfies(Role::Editor) {
            return Err(format!(
                "`{name}` changes the platform and needs the editor role; your role in this sandbox is {}. \
                 Only the read tools are available to you; an owner of the sandbox can grant you editor \
                 (`steward grant add --email <your email> --role editor`).",
                self.role
            ));
        }
        let (_, input_schema) = definition(name).expect("every listed tool has a definition");
        let args = schema::validate(name, &input_schema, arguments)?;
        let rest = Rest::new(self.api.as_ref());
        self.run(name, &rest, &args).await
    }

    async fn run(&self, name: &str, rest: &Rest<'_>, args: &Args) -> Result<String, String> {
        match name {
            "list_sandboxes" => access::list_sandboxes(rest, args, &self.sandbox).await,
            "list_sources" => sources::list_sources(rest).await,
            "get_source" => sources::get_source(rest, args).await,
            "list_agents" => agents::list_agents(rest, args).await,
            "get_agent" => agents::get_agent(rest, args).await,
            "list_triggers" => triggers::list_triggers(rest, args).await,
            "list_runs" => runs::list_runs(rest, args).await,
            "get_run_trace" => runs::get_run_trace(rest, args).await,
            "list_apps" => integrations::list_apps(rest).await,
            "list_trigger_components" => integrations::list_trigger_components(rest, args).await,
            "list_connected_accounts" => integrations::list_connected_accounts(rest, args).await,
            "list_api_keys" => access::list_api_keys(rest).await,
            "list_agent_tools" => runs::list_agent_tools(rest, args).await,
            "provision_source" => sources::provision_source(rest, args).await,
            "update_source" => sources::update_source(rest, args).await,
            "create_agent" => agents::create_agent(rest, args).await,
            "update_agent_prompt" => agents::update_agent_prompt(rest, args).await,
            "update_agent_tools" => agents::update_agent_list(rest, args, agents::AgentList::Tools).await,
            "update_agent_model_settings" => agents::update_agent_model_settings(rest, args).await,
            "update_agent_tool_sources" => agents::update_agent_list(rest, args, agents::AgentList::ToolSources).await,
            "test_agent" => agents::test_agent(rest, args).await,
            "create_trigger" => triggers::create_trigger(rest, args).await,
            "update_trigger" => triggers::update_trigger(rest, args).await,
            "pause_trigger" => triggers::pause_trigger(rest, args).await,
            "resume_trigger" => triggers::resume_trigger(rest, args).await,
            "start_integration_connect" => integrations::start_integration_connect(rest, args).await,
            "mint_agent_invoke_key" => access::mint_agent_key(rest, args, access::AgentKey::Invoke).await,
            "mint_agent_delegate_key" => access::mint_agent_key(rest, args, access::AgentKey::Delegate).await,
            other => Err(format!("tool `{other}` has no implementation")),
        }
    }
}
