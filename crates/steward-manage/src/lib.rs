//! The management tools of §5: the 28 tools the Concierge uses, each a call (or a few) to the
//! platform's own REST API, so every check the API makes (authentication, role, sandbox
//! confinement, validation) holds whatever a model asks for. The same tools are served over MCP
//! (`mcp`): `steward mcp` (stdio) and `/v1/sandboxes/{id}/mcp` (streamable HTTP).
//!
//! - `api`: how a tool reaches the API (`Api`; `HttpApi` over reqwest).
//! - `tools`: the catalog (names, descriptions, JSON schemas) and `Toolkit`, which validates
//!   arguments, applies the role filter and runs a tool.
//! - `mcp`: the rmcp server handler over a `Toolkit`.

pub mod api;
pub mod mcp;
pub mod tools;

pub use api::{Api, ApiFailure, HttpApi};
pub use tools::{MUTATING_TOOLS, READ_TOOLS, ToolDef, Toolkit, catalog};
