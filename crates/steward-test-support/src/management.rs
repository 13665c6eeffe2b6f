//! The management tools of §5 by name, as the tests expect them: written out here, not taken
//! from `steward-manage`'s own lists, so that a tool added, dropped or renamed there fails the
//! tests (the Concierge's catalog, the CLI's MCP server) until this list says so too.

/// The 13 read-only tools, which a viewer is offered.
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

/// The 15 mutating (all reversible) tools.
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
