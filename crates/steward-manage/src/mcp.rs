//! The management tools as an MCP server (§5, last bullet): `ManagementServer` is an rmcp
//! `ServerHandler` over a [`Toolkit`], so any MCP client gets the same tools, with the same role
//! filter, as the Concierge.
//!
//! Two ways to serve it:
//! - **stdio** (`steward mcp`): one process, one caller, one sandbox — [`ManagementServer::new`]
//!   with a fixed toolkit, then [`ManagementServer::serve_stdio`].
//! - **streamable HTTP** (`/v1/sandboxes/{id}/mcp`): [`streamable_http_service`], stateless. The
//!   server's route authenticates every HTTP request itself and puts that caller's `Toolkit` into
//!   the request's extensions; each MCP request is then answered by a
//!   [`ManagementServer::from_request`] that reads the toolkit back from the request. No session
//!   state is kept between POSTs, so a revoked key or a changed role holds on the next request.
//!
//! This module never decides who the caller is, and never trusts the client's view of the
//! catalog: a tool outside the caller's role is refused here and again by `Toolkit::call` (and
//! then by the REST API, which checks the role on every call).

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, DiscoverResult, ErrorData, Implementation,
    InitializeRequestParams, InitializeResult, JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use steward_core::tenancy::Role;

use crate::tools::{MUTATING_TOOLS, READ_TOOLS, ToolDef, Toolkit};

/// The rmcp service the HTTP route mounts (see [`streamable_http_service`]).
pub type ManagementHttpService = StreamableHttpService<ManagementServer, NeverSessionManager>;

/// An MCP server handler serving the management tools of one caller in one sandbox.
#[derive(Debug, Clone)]
pub struct ManagementServer {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    /// The toolkit given at construction (stdio: one process, one caller).
    Fixed(Toolkit),
    /// The toolkit the HTTP route put into the request's extensions, looked up per request.
    FromRequest,
}

impl ManagementServer {
    /// A server for one caller and sandbox, fixed for its whole life (stdio).
    pub fn new(toolkit: Toolkit) -> Self {
        Self { source: Source::Fixed(toolkit) }
    }

    /// A server that serves, for each MCP request, the [`Toolkit`] found in the extensions of the
    /// HTTP request that carried it (`http::request::Parts::extensions`, which rmcp's
    /// streamable HTTP service passes to the handler). A request without one is refused with an
    /// internal error: the route must authenticate before handing the request to rmcp, and a
    /// route that forgot fails closed.
    pub fn from_request() -> Self {
        Self { source: Source::FromRequest }
    }

    /// Serves MCP over this process's stdin and stdout until the client closes stdin. Nothing
    /// else may write to stdout meanwhile.
    pub async fn serve_stdio(self) -> Result<(), StdioError> {
        let running = self.serve(rmcp::transport::io::stdio_pipes()).await.map_err(|e| StdioError(e.to_string()))?;
        running.waiting().await.map_err(|e| StdioError(format!("the MCP server task failed: {e}")))?;
        Ok(())
    }

    fn toolkit<'a>(&'a self, extensions: &'a rmcp::model::Extensions) -> Result<&'a Toolkit, ErrorData> {
        match &self.source {
            Source::Fixed(t) => Ok(t),
            Source::FromRequest => {
                extensions.get::<http::request::Parts>().and_then(|parts| parts.extensions.get::<Toolkit>()).ok_or_else(|| {
                    tracing::error!("an MCP request reached the management server without an authenticated Toolkit");
                    ErrorData::internal_error("this request was not authenticated by the server's MCP route", None)
                })
            }
        }
    }

    /// Server info and instructions; with a toolkit they name the sandbox and the caller's role.
    fn config(toolkit: Option<&Toolkit>) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("steward", env!("CARGO_PKG_VERSION")).with_title("Steward management tools"))
            .with_instructions(instructions(toolkit))
    }
}

/// Why `steward mcp` could not serve.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve MCP over stdio: {0}")]
pub struct StdioError(String);

fn instructions(toolkit: Option<&Toolkit>) -> String {
    let mut text = String::from(
        "These tools manage one Steward sandbox (agents, tool sources, triggers, runs, integrations, API keys) \
         through the Steward REST API, with the caller's own credential and role. Every change they make is reversible. \
         Destructive operations (archiving or destroying a sandbox, deleting an agent or a source, disconnecting a \
         trigger, revoking a key) are not tools: they are CLI-only, e.g. `steward agent delete <agent>`; tell the user \
         the exact command instead. Partial updates change only the fields given; ask for missing names or ids \
         rather than guessing.",
    );
    if let Some(t) = toolkit {
        text.push_str(&format!(" You act in sandbox {} as {}.", t.sandbox(), t.role()));
        if t.role() == Role::Viewer {
            text.push_str(" A viewer gets the read tools only.");
        }
    }
    text
}

/// A tool definition as MCP lists it: read tools are marked read-only, the others as
/// non-destructive (every mutating management tool is reversible).
fn mcp_tool(def: ToolDef) -> Tool {
    let schema: JsonObject = match def.input_schema {
        Value::Object(o) => o,
        _ => {
            let mut o = JsonObject::new();
            o.insert("type".into(), Value::String("object".into()));
            o
        }
    };
    let annotations =
        if def.mutating { ToolAnnotations::new().read_only(false).destructive(false) } else { ToolAnnotations::new().read_only(true) };
    Tool::new(def.name, def.description, Arc::new(schema)).with_annotations(annotations)
}

impl ServerHandler for ManagementServer {
    fn get_info(&self) -> ServerConfig {
        match &self.source {
            Source::Fixed(t) => Self::config(Some(t)),
            Source::FromRequest => Self::config(None),
        }
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        let toolkit = self.toolkit(&context.extensions)?;
        context.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        result.instructions = Some(instructions(Some(toolkit)));
        Ok(result)
    }

    async fn discover(&self, context: RequestContext<RoleServer>) -> Result<DiscoverResult, ErrorData> {
        let toolkit = self.toolkit(&context.extensions)?;
        Ok(DiscoverResult::from_server_info(self.supported_protocol_versions().into_owned(), Self::config(Some(toolkit))))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let toolkit = self.toolkit(&context.extensions)?;
        Ok(ListToolsResult::with_all_items(toolkit.tools().into_iter().map(mcp_tool).collect()))
    }

    async fn call_tool(&self, request: CallToolRequestParams, context: RequestContext<RoleServer>) -> Result<CallToolResponse, ErrorData> {
        let toolkit = self.toolkit(&context.extensions)?;
        let name = request.name.as_ref();
        if !toolkit.tools().iter().any(|t| t.name == name) {
            if READ_TOOLS.contains(&name) || MUTATING_TOOLS.contains(&name) {
                // Known, but outside this caller's catalog: a viewer naming a mutating tool.
                return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "`{name}` changes the sandbox and needs the editor or owner role; you are a {} in {}. Nothing was changed.",
                    toolkit.role(),
                    toolkit.sandbox()
                ))])
                .into());
            }
            return Err(ErrorData::invalid_params(format!("unknown tool `{name}`; tools/list shows the tools you can call"), None));
        }
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let outcome = tokio::select! {
            outcome = toolkit.call(name, arguments) => outcome,
            () = context.ct.cancelled() => return Err(ErrorData::internal_error("the client cancelled the call", None)),
        };
        Ok(match outcome {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(text) => CallToolResult::error(vec![ContentBlock::text(text)]),
        }
        .into())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        // Used by rmcp only to check `Mcp-Param-*` headers against a tool's input schema. The
        // schemas do not depend on the role, so the full catalog answers for both modes; which
        // tools a caller may call is decided in `call_tool`.
        crate::tools::catalog(Role::Owner).into_iter().find(|t| t.name == name).map(mcp_tool)
    }
}

/// The streamable HTTP MCP endpoint, stateless: every POST is one JSON-RPC message answered on
/// its own (as `application/json` when the answer is a single response), no `Mcp-Session-Id` is
/// issued and nothing is kept between requests, so each POST is authenticated by the route on its
/// own. GET (a standalone SSE stream) and DELETE answer 405.
///
/// Host/Origin checks against DNS rebinding are off: they protect servers that trust whoever
/// can reach them, while every request here must carry a bearer credential that the route checks,
/// and the server may be reached under any host name its operator chose.
///
/// # Mounting it (for the server's route)
///
/// The route authenticates the request (the `Caller` extractor), resolves the sandbox from the
/// path, builds the caller's `Toolkit` (`HttpApi` over the server's own loopback address with the
/// caller's bearer, and the caller's role in that sandbox), inserts it into the request's
/// extensions and hands the whole request to the service. `handle` never fails: protocol errors
/// are HTTP responses already.
///
/// ```text
/// use axum::{body::Body, extract::Request, response::{IntoResponse, Response}};
///
/// // Built once, e.g. in AppState (it is cheap to clone).
/// let mcp: ManagementHttpService = steward_manage::mcp::streamable_http_service();
///
/// async fn sandbox_mcp(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, mut request: Request<Body>) -> Result<Response, ApiError> {
///     let role = caller.authorize(&state, &id, Need::Read).await?;
///     let toolkit = Toolkit::new(Arc::new(HttpApi::new(state.http.clone(), state.self_url.clone(), id.clone(), bearer)), id, role);
///     request.extensions_mut().insert(toolkit);
///     Ok(state.mcp.handle(request).await.into_response())
/// }
/// ```
///
/// `ManagementHttpService` is also a `tower::Service<http::Request<B>>` (any `B: http_body::Body`,
/// e.g. `axum::body::Body`) with `Error = Infallible`, so `tower::ServiceExt::oneshot(service,
/// request)` works as well; mount it on a route that accepts POST, GET and DELETE (GET and DELETE
/// are answered 405 by rmcp) — or POST only.
pub fn streamable_http_service() -> ManagementHttpService {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .disable_allowed_hosts();
    StreamableHttpService::new(|| Ok(ManagementServer::from_request()), Arc::new(NeverSessionManager::default()), config)
}

#[cfg(test)]
mod tests {
    //! The HTTP mode as the server's route uses it: a route that authenticates (here: the bearer
    //! names the role), inserts the caller's `Toolkit` and hands the request to the service,
    //! driven by rmcp's own client. The stdio mode and a third-party client are tested end to
    //! end in `crates/steward-cli/tests/mcp.rs`.

    use std::sync::Mutex;

    use axum::response::IntoResponse;
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use serde_json::json;

    use super::*;
    use crate::api::{Api, ApiFailure};

    /// An API that answers every call with an empty page and records what was asked.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl Api for Recorder {
        async fn call(&self, method: reqwest::Method, path: &str, _body: Option<Value>) -> Result<Value, ApiFailure> {
            self.0.lock().unwrap().push(format!("{method} {path}"));
            Ok(json!({"data": [], "next_cursor": null}))
        }
    }

    /// A server whose route takes the role from the bearer (`owner`, `viewer`; anything else
    /// gets no toolkit, like a route that forgot to authenticate).
    async fn serve(api: Arc<Recorder>) -> String {
        let service = streamable_http_service();
        let route = move |mut request: axum::extract::Request| {
            let (service, api) = (service.clone(), api.clone());
            async move {
                let bearer = request.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let role = match bearer.as_str() {
                    "Bearer owner" => Some(Role::Owner),
                    "Bearer viewer" => Some(Role::Viewer),
                    _ => None,
                };
                if let Some(role) = role {
                    request.extensions_mut().insert(Toolkit::new(api, "sbx_test", role));
                }
                service.handle(request).await.into_response()
            }
        };
        let app = axum::Router::new().route("/mcp", axum::routing::any(route));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    async fn client(url: &str, bearer: &str) -> Result<rmcp::service::RunningService<rmcp::RoleClient, ()>, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let transport = StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(url).auth_header(bearer));
        ().serve(transport).await.map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn each_request_is_served_with_the_toolkit_its_route_inserted() {
        let api = Arc::new(Recorder::default());
        let url = serve(api.clone()).await;

        let owner = client(&url, "owner").await.unwrap();
        let info = owner.peer_info().unwrap();
        assert_eq!(info.server_info.as_ref().unwrap().name, "steward");
        assert!(info.instructions.as_deref().unwrap().contains("sbx_test as owner"), "{info:?}");
        let tools = owner.list_all_tools().await.unwrap();
        assert_eq!(tools.len(), READ_TOOLS.len() + MUTATING_TOOLS.len());
        let create = tools.iter().find(|t| t.name == "create_agent").unwrap();
        assert_eq!(create.annotations.as_ref().unwrap().destructive_hint, Some(false));
        let listed = owner.call_tool(CallToolRequestParams::new("list_agents")).await.unwrap();
        assert_ne!(listed.is_error, Some(true), "{listed:?}");

        let viewer = client(&url, "viewer").await.unwrap();
        let tools = viewer.list_all_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, READ_TOOLS);
        assert!(tools.iter().all(|t| t.annotations.as_ref().unwrap().read_only_hint == Some(true)));
        let before = api.0.lock().unwrap().len();
        let args = json!({"name": "x", "provider_id": "openai", "model": "gpt-5"}).as_object().unwrap().clone();
        let refused = viewer.call_tool(CallToolRequestParams::new("create_agent").with_arguments(args)).await.unwrap();
        assert_eq!(refused.is_error, Some(true));
        assert_eq!(api.0.lock().unwrap().len(), before, "a refused call reaches no API");
        let unknown = viewer.call_tool(CallToolRequestParams::new("delete_agent")).await;
        assert!(unknown.is_err(), "{unknown:?}");
    }

    #[tokio::test]
    async fn a_request_the_route_did_not_authenticate_is_refused() {
        let url = serve(Arc::new(Recorder::default())).await;
        let Err(e) = client(&url, "nobody").await else { panic!("no toolkit, no MCP") };
        assert!(e.contains("not authenticated"), "{e}");
    }

    #[tokio::test]
    async fn no_session_is_kept_between_requests() {
        let url = serve(Arc::new(Recorder::default())).await;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let res = reqwest::Client::new()
            .post(&url)
            .bearer_auth("owner")
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("mcp-session-id").is_none(), "stateless: no session id");
        assert_eq!(res.headers()["content-type"], "application/json");
        // Straight to tools/list, no handshake on this connection: each POST stands alone.
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let res = reqwest::Client::new()
            .post(&url)
            .bearer_auth("viewer")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&list)
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["result"]["tools"].as_array().unwrap().len(), READ_TOOLS.len(), "{body}");
    }
}
