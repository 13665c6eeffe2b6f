//! The MCP client pool: one live connection per tool source — a child process speaking MCP over
//! stdio, or a streamable-HTTP session — shared by every caller, with the source's tool listing
//! cached until the server says it changed (or the connection is replaced).
//!
//! It turns MCP results into text for the model and MCP failures into errors a person can act on.
//! It must never retry a tool call (calls may have side effects), never hand a child process our
//! environment (it holds `STEWARD_*` settings), never let a child's stderr reach ours, and never
//! print env or header values (decrypted secrets) in `Debug` output or errors.
//!
//! Stdio children are spawned here rather than by rmcp's `TokioChildProcess` so that the pool
//! owns the environment, the stderr capture, the size limit on incoming messages, and the
//! kill-and-reap of the child.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig, ClientRequest, ContentBlock, CustomResult,
    Implementation, ListToolsRequest, PaginatedRequestParams, ProtocolVersion, ResourceContents, ServerResult,
};
use rmcp::service::{ClientInitializeError, NotificationContext, PeerRequestOptions, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceError, serve_client};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, ReadBuf};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Largest single message accepted from a server (rmcp's own default is 16 MiB). A bigger one
/// drops the connection with a clear error instead of being buffered.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;
/// Variables a stdio child inherits from our process; everything else comes from its target.
const INHERITED_VARS: [&str; 3] = ["PATH", "HOME", "LANG"];
/// How long a closing child gets to exit after its stdin closes before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
const MAX_LIST_PAGES: usize = 100;
const STDERR_LINE_MAX: usize = 4096;
const STDERR_TAIL_LINES: usize = 5;
/// Headers the MCP client sets itself; configuring them would break the session.
const RESERVED_HEADERS: [&str; 4] = ["accept", "mcp-session-id", "mcp-protocol-version", "last-event-id"];

/// How to reach one MCP server. `Debug` prints env and header keys only: their values hold
/// decrypted secrets.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum McpTarget {
    /// A child process speaking MCP on stdin/stdout. Its environment is `env` plus PATH, HOME
    /// and LANG from ours (`env` wins); `command` is looked up on that PATH.
    Stdio { command: String, args: Vec<String>, env: BTreeMap<String, String>, cwd: Option<PathBuf> },
    /// A streamable-HTTP endpoint (e.g. `https://host/mcp`); `headers` go with every request.
    Http { url: String, headers: BTreeMap<String, String> },
}

impl fmt::Debug for McpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McpTarget::Stdio { command, args, env, cwd } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env_keys", &env.keys().collect::<Vec<_>>())
                .field("cwd", cwd)
                .finish(),
            McpTarget::Http { url, headers } => {
                f.debug_struct("Http").field("url", url).field("header_names", &headers.keys().collect::<Vec<_>>()).finish()
            }
        }
    }
}

impl McpTarget {
    /// How errors name the server: "`npx`" or the URL.
    fn describe(&self) -> String {
        match self {
            McpTarget::Stdio { command, .. } => format!("`{command}`"),
            McpTarget::Http { url, .. } => format!("at {url}"),
        }
    }
}

/// Limits of the pool.
#[derive(Debug, Clone)]
pub struct McpPoolConfig {
    /// Start (or reach) a server and finish the MCP handshake within this.
    pub connect_timeout: Duration,
    /// List a server's tools (all pages) within this.
    pub list_timeout: Duration,
    /// Tool output handed to the model is cut to this many bytes, truncation note included.
    pub max_output_bytes: usize,
    /// Connections unused for this long are closed (their child killed).
    pub idle_ttl: Duration,
}

impl Default for McpPoolConfig {
    fn default() -> Self {
        McpPoolConfig {
            connect_timeout: Duration::from_secs(30),
            list_timeout: Duration::from_secs(30),
            max_output_bytes: 100_000,
            idle_ttl: Duration::from_secs(600),
        }
    }
}

/// A tool as listed by a server. `input_schema` is the tool's JSON schema object.
#[derive(Debug, Clone, PartialEq)]
pub struct McpTool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// The listing of one server: usable tools, plus tools refused and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct McpListing {
    pub tools: Vec<McpTool>,
    /// `(tool name, reason)`, e.g. `("broken", "input schema is not a JSON object schema")`.
    pub rejected: Vec<(String, String)>,
}

/// Why a server could not be used. Each message names the server and says what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The target cannot work as configured (a malformed URL or header).
    #[error("{0}")]
    Config(String),
    /// The server could not be started or reached, or it quit during the handshake.
    #[error("{0}")]
    Connect(String),
    /// The server needs authorization the request did not carry (HTTP 401 at the handshake):
    /// a missing or refused token.
    #[error("{0}")]
    Unauthorized(String),
    /// The server did not answer in time.
    #[error("{0}")]
    Timeout(String),
    /// The server answered, but with an error or something that is not valid MCP.
    #[error("{0}")]
    Protocol(String),
    /// The connection broke (the server exited or hung up).
    #[error("{0}")]
    Disconnected(String),
    /// `McpPool::shutdown` was called.
    #[error("the MCP client pool has been shut down")]
    ShutDown,
}

/// Live MCP connections, one per key, shared by every clone of the pool.
///
/// HTTP targets use rmcp's own reqwest client per connection (it keeps custom headers, which
/// hold secrets, from following cross-origin redirects). reqwest is built without a TLS crypto
/// provider of its own; `McpPool::new` installs rustls' ring provider process-wide unless one is
/// already installed.
#[derive(Clone)]
pub struct McpPool {
    inner: Arc<Inner>,
}

impl fmt::Debug for McpPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpPool").field("connections", &lock(&self.inner.slots).len()).finish_non_exhaustive()
    }
}

struct Inner {
    config: McpPoolConfig,
    /// PATH/HOME/LANG of our process, captured once.
    inherited_env: Vec<(OsString, OsString)>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    shut_down: AtomicBool,
    sweeper_started: AtomicBool,
    /// Stops the idle sweeper; cancelled by `shutdown` and when the last clone is dropped.
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The connection under one key; its mutex makes connecting single-flight.
struct Slot {
    target: McpTarget,
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
    last_used: Mutex<Instant>,
    in_flight: AtomicUsize,
}

/// Marks a slot busy for the duration of one pool call, so the idle sweep leaves it alone.
struct SlotUse(Arc<Slot>);

impl Drop for SlotUse {
    fn drop(&mut self) {
        *lock(&self.0.last_used) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl McpPool {
    pub fn new(config: McpPoolConfig) -> Self {
        // rmcp's streamable-HTTP client builds its own reqwest client, which (built without a
        // default TLS provider) needs the process-wide rustls provider; install it if nobody has.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let inherited_env = INHERITED_VARS.iter().filter_map(|k| std::env::var_os(k).map(|v| (OsString::from(k), v))).collect();
        McpPool {
            inner: Arc::new(Inner {
                config,
                inherited_env,
                slots: Mutex::new(HashMap::new()),
                shut_down: AtomicBool::new(false),
                sweeper_started: AtomicBool::new(false),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// Connects (or reuses the pooled connection under `key`) and lists its tools. The listing
    /// is cached per connection and refreshed after a reconnect or a `tools/list_changed`
    /// notification. If the target under `key` changed, the old connection is closed first.
    /// A broken connection is replaced and the listing retried once.
    pub async fn list_tools(&self, key: &str, target: &McpTarget) -> Result<Arc<McpListing>, McpError> {
        let slot = self.slot(key, target).await?;
        let mut retried = false;
        loop {
            let conn = self.connection(&slot.0).await?;
            match conn.listing(self.inner.config.list_timeout).await {
                Ok(listing) => return Ok(listing),
                Err(ListError::Failed(e)) => return Err(e),
                Err(ListError::Broken(e)) => {
                    slot.0.discard(&conn).await;
                    if retried {
                        let (status, stderr) = conn.end_notes();
                        return Err(McpError::Disconnected(format!(
                            "the MCP server {} stopped{status} while listing its tools: {e}{stderr}",
                            slot.0.target.describe()
                        )));
                    }
                    retried = true;
                }
            }
        }
    }

    /// Calls `tool` with `arguments`, waiting at most `timeout`. `Ok` is the text for the model;
    /// `Err` is a readable failure for the model (the tool reported an error, the server
    /// crashed, the call timed out, the server could not be reached). Never retried.
    pub async fn call_tool(
        &self,
        key: &str,
        target: &McpTarget,
        tool: &str,
        arguments: serde_json::Map<String, Value>,
        timeout: Duration,
    ) -> Result<String, String> {
        let slot = self.slot(key, target).await.map_err(|e| e.to_string())?;
        let conn = self.connection(&slot.0).await.map_err(|e| e.to_string())?;
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        // Dropping the request on timeout makes rmcp send `notifications/cancelled`.
        let answer = match tokio::time::timeout(timeout, conn.peer.call_tool_once(params)).await {
            Ok(answer) => answer,
            Err(_) => return Err(format!("the tool `{tool}` did not finish within {}; the call was cancelled", human(timeout))),
        };
        let max = self.inner.config.max_output_bytes;
        match answer {
            Ok(CallToolResponse::Complete(result)) if result.is_error == Some(true) => {
                let text = render(&result, max);
                Err(if text.is_empty() { format!("the tool `{tool}` failed without saying why") } else { text })
            }
            Ok(CallToolResponse::Complete(result)) => Ok(render(&result, max)),
            Ok(CallToolResponse::InputRequired(_)) => {
                Err(format!("the tool `{tool}` asked for user input during the call, which Steward does not support"))
            }
            Ok(_) => Err(format!("the tool `{tool}` answered with a long-running task, which Steward does not support")),
            Err(ServiceError::McpError(e)) => Err(format!("the MCP server refused the call to `{tool}`: {}", e.message)),
            Err(e @ (ServiceError::TransportClosed | ServiceError::TransportSend(_))) => {
                slot.0.discard(&conn).await;
                let (status, stderr) = conn.end_notes();
                let server = target.describe();
                Err(if conn.oversized.load(Ordering::Acquire) {
                    format!(
                        "the MCP server {server} sent a message larger than {} MiB in answer to `{tool}`, so Steward dropped \
                         the connection; the server is restarted on next use",
                        MAX_MESSAGE_BYTES >> 20
                    )
                } else if matches!(target, McpTarget::Stdio { .. }) {
                    format!(
                        "the MCP server {server} stopped{status} while running the tool `{tool}`, which may or may not have \
                         finished; the server is restarted on next use{stderr}"
                    )
                } else {
                    format!(
                        "the connection to the MCP server {server} failed during the call to `{tool}` ({}); Steward reconnects on next use",
                        cause(&e)
                    )
                })
            }
            Err(e) => Err(format!("the call to `{tool}` failed: {}", cause(&e))),
        }
    }

    /// Closes every connection (killing stdio children) and refuses further use.
    pub async fn shutdown(&self) {
        self.inner.shut_down.store(true, Ordering::Release);
        self.inner.stop.cancel();
        let slots: Vec<_> = lock(&self.inner.slots).drain().map(|(_, slot)| slot).collect();
        futures::future::join_all(slots.iter().map(|slot| slot.close())).await;
    }

    /// Closes the connections whose key is `key` or starts with `key/` (a deleted source).
    pub async fn forget(&self, key: &str) {
        let prefix = format!("{key}/");
        let gone: Vec<_> = {
            let mut slots = lock(&self.inner.slots);
            let keys: Vec<String> = slots.keys().filter(|k| *k == key || k.starts_with(&prefix)).cloned().collect();
            keys.iter().filter_map(|k| slots.remove(k)).collect()
        };
        futures::future::join_all(gone.iter().map(|slot| slot.close())).await;
    }

    /// The slot for `key`, replacing (and closing) one that holds a different target.
    async fn slot(&self, key: &str, target: &McpTarget) -> Result<SlotUse, McpError> {
        if self.inner.shut_down.load(Ordering::Acquire) {
            return Err(McpError::ShutDown);
        }
        self.start_sweeper();
        let (slot, replaced) = {
            let mut slots = lock(&self.inner.slots);
            let same = slots.get(key).is_some_and(|slot| slot.target == *target);
            let replaced = if same { None } else { slots.insert(key.to_owned(), Arc::new(Slot::new(target.clone()))) };
            let slot = slots[key].clone();
            // Counted under the map lock so the sweep cannot take a slot that is being handed out.
            slot.in_flight.fetch_add(1, Ordering::AcqRel);
            (slot, replaced)
        };
        if let Some(old) = replaced {
            tracing::info!(key, "MCP source target changed; closing the old connection");
            old.close().await;
        }
        Ok(SlotUse(slot))
    }

    /// The slot's live connection, connecting if there is none (once, however many callers race).
    async fn connection(&self, slot: &Slot) -> Result<Arc<Connection>, McpError> {
        let mut conn = slot.conn.lock().await;
        if let Some(live) = conn.as_ref().filter(|c| c.is_alive()) {
            return Ok(live.clone());
        }
        if let Some(dead) = conn.take() {
            dead.close().await;
        }
        let fresh = Arc::new(Connection::open(&slot.target, &self.inner).await?);
        if self.inner.shut_down.load(Ordering::Acquire) {
            fresh.close().await;
            return Err(McpError::ShutDown);
        }
        *conn = Some(fresh.clone());
        Ok(fresh)
    }

    /// Starts the idle sweep on first use (a runtime is certain to exist by then).
    fn start_sweeper(&self) {
        if self.inner.sweeper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool: Weak<Inner> = Arc::downgrade(&self.inner);
        let stop = self.inner.stop.clone();
        let period = (self.inner.config.idle_ttl / 2).clamp(Duration::from_millis(100), Duration::from_secs(60));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(period) => {}
                }
                let Some(inner) = pool.upgrade() else { return };
                let idle: Vec<_> = {
                    let mut slots = lock(&inner.slots);
                    let ttl = inner.config.idle_ttl;
                    let keys: Vec<_> = slots.iter().filter(|(_, s)| s.is_idle(ttl)).map(|(k, _)| k.clone()).collect();
                    keys.into_iter().filter_map(|k| slots.remove(&k).map(|s| (k, s))).collect()
                };
                drop(inner);
                for (key, slot) in idle {
                    tracing::debug!(key, "closing idle MCP connection");
                    slot.close().await;
                }
            }
        });
    }
}

impl Slot {
    fn new(target: McpTarget) -> Self {
        Slot { target, conn: tokio::sync::Mutex::new(None), last_used: Mutex::new(Instant::now()), in_flight: AtomicUsize::new(0) }
    }

    fn is_idle(&self, ttl: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && lock(&self.last_used).elapsed() >= ttl
    }

    /// Drops `conn` from the slot (if it is still the pooled one) and closes it.
    async fn discard(&self, conn: &Arc<Connection>) {
        {
            let mut pooled = self.conn.lock().await;
            if pooled.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                *pooled = None;
            }
        }
        conn.close().await;
    }

    async fn close(&self) {
        let conn = self.conn.lock().await.take();
        if let Some(conn) = conn {
            conn.close().await;
        }
    }
}

/// One initialized MCP session.
struct Connection {
    /// How messages name the server: "`npx`" or "at https://…".
    server: String,
    peer: Peer<RoleClient>,
    service: Mutex<Option<RunningService<RoleClient, Handler>>>,
    child: Option<ChildProcess>,
    /// Bumped by the handler on `tools/list_changed`.
    tools_changed: Arc<AtomicU64>,
    listing: tokio::sync::Mutex<Option<(u64, Arc<McpListing>)>>,
    /// Set when the server sent a message over `MAX_MESSAGE_BYTES` (the reader then ends the stream).
    oversized: Arc<AtomicBool>,
}

enum ListError {
    /// The connection is unusable; a new one may succeed.
    Broken(String),
    Failed(McpError),
}

impl Connection {
    async fn open(target: &McpTarget, pool: &Inner) -> Result<Connection, McpError> {
        let tools_changed = Arc::new(AtomicU64::new(0));
        let handler = Handler { tools_changed: tools_changed.clone() };
        let oversized = Arc::new(AtomicBool::new(false));
        let limit = pool.config.connect_timeout;
        let (service, child) = match target {
            McpTarget::Stdio { command, args, env, cwd } => {
                let (child, stdout, stdin) = ChildProcess::spawn(command, args, env, cwd.as_ref(), &pool.inherited_env)?;
                let stdout = LimitedReader { inner: stdout, since_newline: 0, oversized: oversized.clone() };
                // Our reader enforces the limit; rmcp's cap only backs it up.
                let transport = AsyncRwTransport::new_client(stdout, stdin).with_max_line_length(MAX_MESSAGE_BYTES.saturating_mul(2));
                match tokio::time::timeout(limit, serve_client(handler, transport)).await {
                    Ok(Ok(service)) => (service, Some(child)),
                    Ok(Err(e)) => {
                        child.stop().await;
                        let cause = match child.exit_status() {
                            Some(status) => format!(" ({status}){}", child.stderr_note()),
                            None => format!(": {}{}", cause(&e), child.stderr_note()),
                        };
                        return Err(McpError::Connect(format!("the MCP server `{command}` failed to start{cause}")));
                    }
                    Err(_) => {
                        child.stop().await;
                        return Err(McpError::Timeout(format!(
                            "the MCP server `{command}` did not answer the MCP handshake within {}{}",
                            human(limit),
                            child.stderr_note()
                        )));
                    }
                }
            }
            McpTarget::Http { url, headers } => {
                let config = http_config(url, headers)?;
                let transport = StreamableHttpClientTransport::from_config(config);
                match tokio::time::timeout(limit, serve_client(handler, transport)).await {
                    Ok(Ok(service)) => (service, None),
                    Ok(Err(e)) if e.is_authorization_required() => {
                        return Err(McpError::Unauthorized(format!(
                            "the MCP server at {url} requires authorization; set its Authorization header on the source"
                        )));
                    }
                    Ok(Err(e)) => return Err(McpError::Connect(format!("could not connect to the MCP server at {url}: {}", cause(&e)))),
                    Err(_) => return Err(McpError::Timeout(format!("the MCP server at {url} did not answer within {}", human(limit)))),
                }
            }
        };
        // The pool caches listings itself; rmcp's cache would also serve stale lists on errors.
        service.peer().set_response_cache_config(rmcp::ClientCacheConfig::disabled()).await;
        Ok(Connection {
            server: target.describe(),
            peer: service.peer().clone(),
            service: Mutex::new(Some(service)),
            child,
            tools_changed,
            listing: tokio::sync::Mutex::new(None),
            oversized,
        })
    }

    /// For error messages about a closed stdio connection: " (exit status: 3)" and its stderr note.
    fn end_notes(&self) -> (String, String) {
        let Some(child) = &self.child else { return Default::default() };
        let status = child.exit_status().map(|s| format!(" ({s})")).unwrap_or_default();
        (status, child.stderr_note())
    }

    fn is_alive(&self) -> bool {
        !self.peer.is_transport_closed()
            && lock(&self.service).as_ref().is_some_and(|s| !s.is_closed())
            && self.child.as_ref().is_none_or(|c| c.exit_status().is_none())
    }

    /// The cached listing, fetched again when the server announced a change since.
    async fn listing(&self, timeout: Duration) -> Result<Arc<McpListing>, ListError> {
        let mut cached = self.listing.lock().await;
        let generation = self.tools_changed.load(Ordering::Acquire);
        if let Some((seen, listing)) = cached.as_ref()
            && *seen == generation
        {
            return Ok(listing.clone());
        }
        let listing = match tokio::time::timeout(timeout, fetch_listing(&self.peer, &self.server, timeout)).await {
            Ok(listing) => Arc::new(listing?),
            Err(_) => return Err(ListError::Failed(list_timeout(&self.server, timeout))),
        };
        *cached = Some((generation, listing.clone()));
        Ok(listing)
    }

    /// Ends the session: closes the transport (a stdio child sees EOF), then stops the child.
    async fn close(&self) {
        let service = lock(&self.service).take();
        if let Some(mut service) = service {
            let _ = service.close_with_timeout(CLOSE_GRACE).await;
        }
        if let Some(child) = &self.child {
            child.stop().await;
        }
    }
}

/// All pages of `tools/list`, each tool checked on its own so one bad tool spoils nothing else.
async fn fetch_listing(peer: &Peer<RoleClient>, server: &str, timeout: Duration) -> Result<McpListing, ListError> {
    let mut listing = McpListing::default();
    let mut cursor = None;
    for _ in 0..MAX_LIST_PAGES {
        let params = cursor.take().map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        let request =
            ClientRequest::ListToolsRequest(ListToolsRequest { method: Default::default(), params, extensions: Default::default() });
        let page = peer.send_request_with_option(request, PeerRequestOptions::with_timeout(timeout)).await;
        let page = match page {
            Ok(handle) => handle.await_response().await,
            Err(e) => Err(e),
        };
        let next = match page {
            Ok(ServerResult::ListToolsResult(page)) => {
                for tool in page.tools {
                    let schema = Value::Object(Arc::unwrap_or_clone(tool.input_schema));
                    listing.admit(tool.name.into_owned(), tool.description.map(|d| d.into_owned()), schema);
                }
                page.next_cursor
            }
            // rmcp could not read the page as a tool list: read it leniently, tool by tool.
            Ok(ServerResult::CustomResult(CustomResult(page))) => listing.admit_raw(page, server).map_err(ListError::Failed)?,
            Ok(_) => {
                return Err(ListError::Failed(McpError::Protocol(format!(
                    "the MCP server {server} answered tools/list with something else"
                ))));
            }
            Err(ServiceError::McpError(e)) => {
                return Err(ListError::Failed(McpError::Protocol(format!(
                    "the MCP server {server} refused to list its tools: {}",
                    e.message
                ))));
            }
            Err(ServiceError::Timeout { timeout }) => return Err(ListError::Failed(list_timeout(server, timeout))),
            Err(e) => return Err(ListError::Broken(cause(&e))),
        };
        match next {
            Some(c) if !c.is_empty() => cursor = Some(c),
            _ => return Ok(listing),
        }
    }
    Err(ListError::Failed(McpError::Protocol(format!("the MCP server {server} kept paginating tools/list past {MAX_LIST_PAGES} pages"))))
}

fn list_timeout(server: &str, timeout: Duration) -> McpError {
    McpError::Timeout(format!("the MCP server {server} did not list its tools within {}", human(timeout)))
}

impl McpListing {
    fn admit(&mut self, name: String, description: Option<String>, schema: Value) {
        let verdict = if name.is_empty() {
            Err("the tool has no name".to_owned())
        } else if self.tools.iter().any(|t| t.name == name) {
            Err("the server listed another tool with the same name".to_owned())
        } else {
            check_schema(&schema)
        };
        match verdict {
            Ok(()) => self.tools.push(McpTool { name, description: description.unwrap_or_default(), input_schema: schema }),
            Err(reason) => self.rejected.push((name, reason)),
        }
    }

    /// A page rmcp could not parse; returns its next cursor.
    fn admit_raw(&mut self, mut page: Value, server: &str) -> Result<Option<String>, McpError> {
        let Some(tools) = page.get_mut("tools").and_then(Value::as_array_mut) else {
            return Err(McpError::Protocol(format!("the MCP server {server} answered tools/list without a `tools` list")));
        };
        for (i, tool) in tools.iter_mut().enumerate() {
            let name = tool.get("name").and_then(Value::as_str).map(str::to_owned);
            let Some(name) = name else {
                self.rejected.push((format!("#{}", i + 1), "the tool has no name".into()));
                continue;
            };
            let description = tool.get("description").and_then(Value::as_str).map(str::to_owned);
            let schema = tool.get_mut("inputSchema").map(Value::take).unwrap_or(Value::Null);
            self.admit(name, description, schema);
        }
        Ok(page.get("nextCursor").and_then(Value::as_str).map(str::to_owned))
    }
}

/// Accepts what a model provider accepts as a tool's input schema: a JSON object schema.
fn check_schema(schema: &Value) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return Err("input schema is not a JSON object schema (it is not a JSON object)".into());
    };
    match schema.get("type") {
        Some(Value::String(t)) if t == "object" => {}
        Some(other) => return Err(format!("input schema is not a JSON object schema (its `type` is {other}, not \"object\")")),
        None => return Err("input schema is not a JSON object schema (it has no `type: \"object\"`)".into()),
    }
    match schema.get("properties") {
        None => {}
        Some(Value::Object(properties)) => {
            if let Some((name, _)) = properties.iter().find(|(_, p)| !p.is_object() && !p.is_boolean()) {
                return Err(format!("input schema's property `{name}` is not a schema"));
            }
        }
        Some(_) => return Err("input schema's `properties` is not an object".into()),
    }
    match schema.get("required") {
        None => Ok(()),
        Some(Value::Array(names)) if names.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err("input schema's `required` is not a list of property names".into()),
    }
}

/// The text a model sees for a tool result, at most `max` bytes including the truncation note.
fn render(result: &CallToolResult, max: usize) -> String {
    let mut out = Capped::new(max);
    for block in &result.content {
        match block {
            ContentBlock::Text(text) => out.part(&text.text),
            ContentBlock::Image(image) => out.part(&format!("[image: {}, {} bytes]", image.mime_type, base64_len(&image.data))),
            ContentBlock::Audio(audio) => out.part(&format!("[audio: {}, {} bytes]", audio.mime_type, base64_len(&audio.data))),
            ContentBlock::Resource(embedded) => match &embedded.resource {
                ResourceContents::TextResourceContents { uri, text, .. } => {
                    out.part(&format!("[resource: {uri}]"));
                    out.push("\n");
                    out.push(text);
                }
                ResourceContents::BlobResourceContents { uri, mime_type, blob, .. } => {
                    out.part(&format!("[resource: {uri}, {}, {} bytes]", mime_type.as_deref().unwrap_or("binary"), base64_len(blob)))
                }
                _ => out.part("[resource of a kind Steward does not read]"),
            },
            ContentBlock::ResourceLink(link) => out.part(&format!("[resource link: {} <{}>]", link.name, link.uri)),
            _ => out.part("[content of a kind Steward does not read]"),
        }
    }
    if let Some(structured) = &result.structured_content {
        // Servers usually repeat structured content as a JSON text block; don't show it twice.
        let repeated = result.content.iter().any(|b| {
            matches!(b, ContentBlock::Text(t) if t.text.len() <= 1 << 20 && serde_json::from_str::<Value>(&t.text).ok().as_ref() == Some(structured))
        });
        if !repeated {
            out.part(&structured.to_string());
        }
    }
    out.finish()
}

/// A string that keeps the first `max` bytes pushed and counts the rest.
struct Capped {
    text: String,
    max: usize,
    total: usize,
}

impl Capped {
    fn new(max: usize) -> Self {
        Capped { text: String::new(), max, total: 0 }
    }

    /// A content block: separated from the previous one by a newline.
    fn part(&mut self, s: &str) {
        if self.total > 0 {
            self.push("\n");
        }
        self.push(s);
    }

    fn push(&mut self, s: &str) {
        self.total += s.len();
        let room = self.max.saturating_sub(self.text.len());
        self.text.push_str(&s[..floor_boundary(s, room)]);
    }

    fn finish(mut self) -> String {
        if self.total <= self.max {
            return self.text;
        }
        let note = format!("\n[output truncated: {} bytes in all, cut to fit {} bytes]", self.total, self.max);
        let keep = floor_boundary(&self.text, self.max.saturating_sub(note.len()));
        self.text.truncate(keep);
        if self.text.len() + note.len() <= self.max {
            self.text.push_str(&note);
        }
        self.text
    }
}

fn floor_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Decoded size of base64 text, without decoding it.
fn base64_len(data: &str) -> usize {
    data.trim_end_matches('=').len() * 3 / 4
}

/// Receives what the server tells the client on its own; only tool-list changes matter here.
struct Handler {
    tools_changed: Arc<AtomicU64>,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.fetch_add(1, Ordering::AcqRel);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("steward", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }
}

fn http_config(url: &str, headers: &BTreeMap<String, String>) -> Result<StreamableHttpClientTransportConfig, McpError> {
    use reqwest::header::{HeaderName, HeaderValue};
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
        Ok(_) => return Err(McpError::Config(format!("the MCP server URL `{url}` must start with http:// or https://"))),
        Err(e) => return Err(McpError::Config(format!("the MCP server URL `{url}` is not a valid URL: {e}"))),
    }
    let mut map = HashMap::new();
    for (name, value) in headers {
        if RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(McpError::Config(format!("the header `{name}` is set by the MCP client itself; remove it from the source")));
        }
        let header =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| McpError::Config(format!("`{name}` is not a valid HTTP header name")))?;
        // The value is a secret: the error names the header only.
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| McpError::Config(format!("the value of the header `{name}` is not a valid HTTP header value")))?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(StreamableHttpClientTransportConfig::with_uri(url)
        .custom_headers(map)
        .max_json_response_size(MAX_MESSAGE_BYTES)
        .max_sse_event_size(MAX_MESSAGE_BYTES))
}

/// A stdio server process. A reaper task owns the `Child` and waits on it, so the process is
/// reaped as soon as it exits, however it ends; dropping this kills it.
struct ChildProcess {
    command: String,
    /// Set by the reaper when the child ended on its own (not killed by `stop`).
    exit: Arc<Mutex<Option<ExitStatus>>>,
    /// Tells the reaper to kill the child; dropping it does too.
    kill: Mutex<Option<oneshot::Sender<()>>>,
    reaper: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_pump: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Some(pump) = lock(&self.stderr_pump).take() {
            pump.abort();
        }
    }
}

impl ChildProcess {
    fn spawn(
        command: &str,
        args: &[String],
        env: &BTreeMap<String, String>,
        cwd: Option<&PathBuf>,
        inherited: &[(OsString, OsString)],
    ) -> Result<(ChildProcess, ChildStdout, ChildStdin), McpError> {
        let mut cmd = Command::new(command);
        cmd.args(args)
            .env_clear()
            .envs(inherited.iter().map(|(k, v)| (k, v)))
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A backstop for a runtime that shuts down with the reaper still running.
            .kill_on_drop(true);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd.spawn().map_err(|e| McpError::Connect(format!("could not start `{command}`: {e}")))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take()) else {
            return Err(McpError::Connect(format!("could not start `{command}`: its stdio pipes are missing")));
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let source = format!("{command} (pid {})", child.id().unwrap_or_default());
        let pump = tokio::spawn(pump_stderr(stderr, source, stderr_tail.clone()));
        let exit = Arc::new(Mutex::new(None));
        let (kill, killed) = oneshot::channel();
        let reaper = tokio::spawn(reap(child, killed, exit.clone()));
        let process = ChildProcess {
            command: command.to_owned(),
            exit,
            kill: Mutex::new(Some(kill)),
            reaper: tokio::sync::Mutex::new(Some(reaper)),
            stderr_tail,
            stderr_pump: Mutex::new(Some(pump)),
        };
        Ok((process, stdout, stdin))
    }

    /// Gives the child `CLOSE_GRACE` to exit (it should once its stdin is closed), then kills
    /// it. Idempotent.
    async fn stop(&self) {
        let mut reaper = self.reaper.lock().await;
        if let Some(mut task) = reaper.take()
            && tokio::time::timeout(CLOSE_GRACE, &mut task).await.is_err()
        {
            tracing::debug!(command = %self.command, "MCP server ignored the closed stdin; killing it");
            if let Some(kill) = lock(&self.kill).take() {
                let _ = kill.send(());
            }
            let _ = task.await;
        }
        drop(reaper);
        // Let the last stderr lines arrive; the pipe closes when the child is gone.
        let pump = lock(&self.stderr_pump).take();
        if let Some(mut pump) = pump
            && tokio::time::timeout(Duration::from_millis(500), &mut pump).await.is_err()
        {
            pump.abort();
        }
    }

    /// How the child ended, unless it was Steward that killed it.
    fn exit_status(&self) -> Option<ExitStatus> {
        *lock(&self.exit)
    }

    /// ". It last wrote to stderr: …" (its last few lines), or "".
    fn stderr_note(&self) -> String {
        let tail = lock(&self.stderr_tail);
        if tail.is_empty() { String::new() } else { format!(". It last wrote to stderr: {}", Vec::from(tail.clone()).join(" | ")) }
    }
}

/// Waits for `child` to exit and records how, or kills it when told to (or when the sender is
/// dropped). Either way the child is reaped.
async fn reap(mut child: Child, killed: oneshot::Receiver<()>, exit: Arc<Mutex<Option<ExitStatus>>>) {
    tokio::select! {
        status = child.wait() => {
            if let Ok(status) = status {
                *lock(&exit) = Some(status);
            }
        }
        _ = killed => {
            if let Err(e) = child.kill().await {
                tracing::warn!("could not kill an MCP server: {e}");
            }
        }
    }
}

/// Logs a child's stderr at debug level, line by line (lines cut at `STDERR_LINE_MAX`), and
/// keeps the last few lines for error messages.
async fn pump_stderr(stderr: ChildStderr, source: String, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        let (take, complete) = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => {
                let (take, complete) = buf.iter().position(|b| *b == b'\n').map_or((buf.len(), false), |i| (i + 1, true));
                let room = STDERR_LINE_MAX.saturating_sub(line.len());
                line.extend_from_slice(&buf[..take.min(room)]);
                (take, complete || line.len() >= STDERR_LINE_MAX)
            }
        };
        reader.consume(take);
        if complete {
            emit_stderr(&source, &tail, &line);
            line.clear();
        }
    }
    emit_stderr(&source, &tail, &line);
}

fn emit_stderr(source: &str, tail: &Mutex<VecDeque<String>>, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if text.is_empty() {
        return;
    }
    tracing::debug!(server = source, "stderr: {text}");
    let mut tail = lock(tail);
    if tail.len() == STDERR_TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(text.chars().take(300).collect());
}

/// A child's stdout that ends (EOF) instead of passing on a line longer than
/// `MAX_MESSAGE_BYTES`, flagging why. rmcp would otherwise drop such a message silently and
/// leave its request waiting for its timeout.
struct LimitedReader {
    inner: ChildStdout,
    since_newline: usize,
    oversized: Arc<AtomicBool>,
}

impl AsyncRead for LimitedReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.oversized.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        this.since_newline = match read.iter().rposition(|b| *b == b'\n') {
            Some(i) => read.len() - i - 1,
            None => this.since_newline + read.len(),
        };
        if this.since_newline > MAX_MESSAGE_BYTES {
            tracing::warn!("an MCP server sent a message over {} MiB; dropping its connection", MAX_MESSAGE_BYTES >> 20);
            this.oversized.store(true, Ordering::Release);
            buf.set_filled(before);
        }
        Poll::Ready(Ok(()))
    }
}

/// "10 s", "1.5 s", "250 ms".
fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// What went wrong in an rmcp error, without rmcp's transport type names.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    match (e.downcast_ref(), e.downcast_ref()) {
        (Some(ClientInitializeError::TransportError { error, .. }), _) | (_, Some(ServiceError::TransportSend(error))) => {
            chain(error.error.as_ref())
        }
        _ => chain(e),
    }
}

/// An error and its sources, without repeating a message a wrapper already includes.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = source_of(e);
    while let Some(source) = next {
        let part = source.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        next = source_of(source);
    }
    text
}

/// `e.source()`, except that rmcp's HTTP client error does not expose the reqwest error (which
/// says e.g. "Connection refused") as its source.
fn source_of<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a (dyn std::error::Error + 'static)> {
    match e.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
        Some(StreamableHttpError::Client(inner)) => Some(inner),
        _ => e.source(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_on_a_char_boundary_with_the_note_inside_the_limit() {
        let mut out = Capped::new(80);
        out.part(&"é".repeat(100));
        let text = out.finish();
        assert!(text.len() <= 80, "{}", text.len());
        assert!(text.starts_with("éé") && text.ends_with("[output truncated: 200 bytes in all, cut to fit 80 bytes]"), "{text}");
    }

    #[test]
    fn schemas_must_be_object_schemas() {
        assert!(check_schema(&serde_json::json!({"type": "object"})).is_ok());
        assert!(check_schema(&serde_json::json!({"type": "object", "properties": {"a": true}, "required": ["a"]})).is_ok());
        assert!(check_schema(&serde_json::json!({"type": "object", "required": [1]})).is_err());
        assert!(check_schema(&serde_json::json!({"type": "object", "properties": {"a": 3}})).is_err());
        assert!(check_schema(&serde_json::json!(["type", "object"])).is_err());
    }
}
