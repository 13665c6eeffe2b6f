//! The management tools as an MCP server (rmcp). (Skeleton.)
