//! Steward's domain model: typed ids, roles, API-key material, agent configuration and its
//! validation, agent states and their legal transitions, why an agent refuses work
//! (`admission`), vault metadata and model-provider configuration.
//!
//! This crate does no I/O. Everything that crosses a process boundary (HTTP, SQL) converts to
//! and from these types at the edge, so inner code never re-checks a string.

pub mod admission;
pub mod agent;
pub mod channel;
pub mod clock;
pub mod environment;
pub mod error;
pub mod ids;
pub mod integration;
pub mod keys;
pub mod provider;
pub mod redact;
pub mod schedule;
pub mod session;
pub mod signing;
pub mod source;
pub mod tenancy;
pub mod text;
pub mod trigger;
pub mod vault;
pub mod webhook;

pub use error::ValidationError;
