//! Steward's agent runtime: admitting work (`admission.rs`: the one check every way a run
//! starts goes through), running agents (the model ↔ tool loop in `agent_loop.rs`), the
//! tools it offers (`tools.rs`; sources resolved per run in `resolve.rs`: MCP servers through the
//! pool in `mcp.rs`, the built-in toolsets in `builtin.rs` on the agent's `workspace.rs` and the
//! bubblewrap `sandbox.rs`), the durable event log with its live tail (`engine.rs` emits,
//! `bus.rs` wakes streams), provider resolution (`providers.rs`) and vault encryption
//! (`vault.rs`). It knows neither HTTP nor SQL: it talks to the store and to model providers
//! through their crates.

pub mod admission;
mod agent_loop;
mod app_tools;
pub mod builtin;
pub mod bus;
pub mod conversation;
pub mod ending;
pub mod engine;
pub mod event_log;
pub mod integrations;
pub mod mcp;
pub mod notify;
pub mod oauth;
pub mod preamble;
pub mod providers;
pub mod resolve;
pub mod sandbox;
pub mod scheduler;
pub mod template;
pub mod tools;
pub mod vault;
pub mod workspace;

pub use engine::{Runtime, RuntimeConfig, ToolsConfig};
pub use event_log::EventLog;
pub use providers::Providers;
