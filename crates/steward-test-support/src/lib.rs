//! Test support shared by Steward's crates, used only as a `[dev-dependency]`: what more than
//! one crate's tests (or benches) need, once. What one test binary alone uses stays next to it
//! (`steward-server/tests/common/` — the in-process `TestServer`; `steward-cli/tests/support/` —
//! the hermetic `steward` client commands; `steward-store/tests/common/` — the conformance
//! macro; `steward-llm/tests/*_fake/` — each client's hostile-chunking fake).
//!
//! It depends on `steward-core` alone, so any crate can use it without a dependency cycle;
//! what needs the server or the binary takes it as an argument (a `Command`, a URL).
//!
//! - [`fake_model`]: fake model providers speaking the real SSE wire formats.
//! - [`fake_oauth`]: a fake OAuth 2 authorization server.
//! - [`fake_telegram`], [`fake_slack`]: fake chat platform APIs (Telegram's Bot API, Slack's
//!   Web API) in their real JSON shapes, recording every request.
//! - [`postgres`]: a fresh PostgreSQL schema per test, dropped when the test ends.
//! - [`serve`]: `steward serve` as a child process: start, wait for its URL, SIGKILL; an account
//!   bootstrapped with `steward admin create-account`, a session created over HTTP.
//! - [`sse`]: the frames of an event stream, from a whole body or chunk by chunk.
//! - [`retry`]: retrying an idempotent request while it answers 409.
//! - [`log_capture`]: a `tracing` writer that keeps what it is given.
//! - [`management`]: the names of §5's management tools, read-only and mutating.
//! - [`measure`]: the benchmarks' resident memory and percentiles.
//! - [`peers`]: the third-party test peers `scripts/test` installs.
//! - [`signing`]: the headers of a signed delivery to a trigger.
//! - [`agent_config`]: an agent configuration for tests that build one without the API.

pub mod fake_model;
pub mod fake_oauth;
pub mod fake_slack;
pub mod fake_telegram;
pub mod log_capture;
pub mod management;
pub mod measure;
pub mod peers;
pub mod postgres;
pub mod retry;
pub mod serve;
pub mod signing;
pub mod sse;

use steward_core::agent::{AgentConfig, ModelRef};

/// A minimal agent configuration: `name` on `provider`'s `model`, no prompt, tools or sources,
/// small limits (5 turns, 100 output tokens), the model's default temperature. A test that needs
/// more says so with struct update syntax: `AgentConfig { max_turns: 2, ..agent_config(…) }`.
/// Not validated (call `validated()` where that matters).
pub fn agent_config(name: &str, provider: &str, model: &str) -> AgentConfig {
    AgentConfig {
        name: name.to_owned(),
        description: String::new(),
        model: ModelRef { provider_id: provider.to_owned(), name: model.to_owned() },
        system_prompt: String::new(),
        tool_sources: vec![],
        tools: vec![],
        max_turns: 5,
        max_output_tokens: 100,
        temperature: None,
        environment_id: None,
        skills: vec![],
        memory_store_ids: vec![],
        metadata: Default::default(),
    }
}
