//! Steward's agent runtime: running agents (the model ↔ tool loop in `agent_loop.rs`), the
//! tools it offers (`tools.rs`), the durable event log with its live tail (`engine.rs` emits,
//! `bus.rs` wakes streams), provider resolution (`providers.rs`) and vault encryption
//! (`vault.rs`). It knows neither HTTP nor SQL: it talks to the store and to model providers
//! through their crates.

mod agent_loop;
pub mod bus;
pub mod conversation;
pub mod engine;
pub mod providers;
pub mod tools;
pub mod vault;

pub use engine::{Runtime, RuntimeConfig};
pub use providers::Providers;
