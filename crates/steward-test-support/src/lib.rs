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
//! - [`postgres`]: a fresh PostgreSQL schema per test, dropped when the test ends.
//! - [`serve`]: `steward serve` as a child process: start, wait for its URL, SIGKILL; an account
//!   bootstrapped with `steward admin create-account`, a session created over HTTP.
//! - [`sse`]: the frames of an event stream, from a whole body or chunk by chunk.
//! - [`retry`]: retrying an idempotent request while it answers 409.
//! - [`log_capture`]: a `tracing` writer that keeps what it is given.
//! - [`peers`]: the third-party test peers `scripts/test` installs.
//! - [`signing`]: the headers of a signed delivery to a trigger.

pub mod fake_model;
pub mod fake_oauth;
pub mod log_capture;
pub mod peers;
pub mod postgres;
pub mod retry;
pub mod serve;
pub mod signing;
pub mod sse;
