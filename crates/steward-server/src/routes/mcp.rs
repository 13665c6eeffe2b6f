//! The management tools (§5) over MCP, streamable HTTP: `POST /v1/sandboxes/{sandbox_id}/mcp`.
//!
//! Stateless: every POST is authenticated here like any API call (account credentials only;
//! 404 for a sandbox the caller cannot reach), and carries a `Toolkit` filtered for the caller's
//! role in that sandbox to rmcp's service (`steward_manage::mcp`), which reads it from the
//! request. No MCP session is kept between requests. The tools call the API over loopback with a
//! token confined to the sandbox, as the Concierge's do.

use std::sync::OnceLock;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use steward_core::ids::SandboxId;
use steward_manage::mcp::{ManagementHttpService, streamable_http_service};

use crate::AppState;
use crate::auth::{Caller, Need};
use crate::error::{ApiResult, ErrorBody};

fn service() -> &'static ManagementHttpService {
    static SERVICE: OnceLock<ManagementHttpService> = OnceLock::new();
    SERVICE.get_or_init(streamable_http_service)
}

/// MCP (streamable HTTP, JSON-RPC 2.0 in the body): `initialize`, `tools/list`, `tools/call`
/// over the management tools, filtered by the caller's role (viewers get the 13 read tools).
#[utoipa::path(post, path = "/v1/sandboxes/{sandbox_id}/mcp", tag = "concierge", params(("sandbox_id" = String, Path)),
    request_body(content = Object, description = "A JSON-RPC 2.0 MCP message", content_type = "application/json"),
    responses((status = 200, description = "the JSON-RPC answer"), (status = 202, description = "a notification was accepted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn mcp(State(state): State<AppState>, caller: Caller, Path(sandbox): Path<String>, mut request: Request) -> ApiResult<Response> {
    caller.require_account_credential()?;
    let sandbox = SandboxId::parse(&sandbox, "sandbox_id")?;
    let role = caller.authorize(&state, &sandbox, Need::Read).await?;
    let toolkit = state.management.toolkit_with_role(&sandbox, &caller.account_id, role);
    request.extensions_mut().insert(toolkit);
    // Streamable HTTP wants both media types accepted; a client that says nothing gets them.
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if accept.is_empty() || accept == "*/*" {
        request.headers_mut().insert(header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
    }
    Ok(service().handle(request).await.into_response())
}
