//! The `Runtime`: owns every run this process executes. It claims queued runs, drives each
//! through the agent loop on its own task (cancellable), appends events through the one
//! event-append path (`emit`), heartbeats its runs, and recovers runs whose process died.
//!
//! Every spawned task is tracked and stops on `shutdown`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steward_core::clock::Clock;
use steward_core::ids::{AgentId, RunId, SessionId};
use steward_core::session::{Event, Run, RunEvent};
use steward_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ending::{Ending, RunUsage};
use crate::event_log::EventLog;
use crate::mcp::{McpPool, McpPoolConfig};
use crate::providers::Providers;

/// Tunables of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// This process's identity in `runs.owner`; stable across restarts of the same node so a
    /// restarted node recovers its own runs at once.
    pub node_id: String,
    /// How often running runs are heartbeated.
    pub heartbeat: Duration,
    /// A run whose heartbeat is older than this is considered orphaned (and ended as
    /// `interrupted`); also the lease of an in-flight idempotency record. Shorter recovers a
    /// dead replica's work sooner; a replica stalled longer than this (a frozen VM, a database
    /// that stopped answering) loses its runs to the reaper. Its own live runs are never reaped.
    pub stale_after: Duration,
    /// How often to look for queued work and cancelled runs (covers other replicas).
    pub poll: Duration,
    /// Limit on one tool call.
    pub tool_timeout: Duration,
    /// How often the scheduler looks for due schedules (and the longest a due time waits).
    pub schedule_poll: Duration,
    /// Outbound webhooks: how often to look for due deliveries, and the limit on one attempt.
    pub notify_poll: Duration,
    pub notify_timeout: Duration,
    /// Tool sources, workspaces and the shell sandbox.
    pub tools: ToolsConfig,
    /// Most runs executing at once in this process; more stay `queued` (durably) until a slot
    /// frees. Keeps a burst of webhook deliveries from starving the writer that accepts them.
    pub max_concurrent_runs: usize,
    /// The app catalog, client credentials and callback URL of integrations (§10).
    pub integrations: crate::integrations::IntegrationsConfig,
    /// The secrets the process's log writer scrubs from every line. The vault cipher adds every
    /// value it seals or opens (provider keys, MCP headers and environment values, integration
    /// tokens, trigger secrets); share it with the log writer (`steward_server::logging`).
    pub log_redaction: steward_core::redact::SecretRegistry,
}

/// Where workspaces live and how tool sources may run.
#[derive(Debug, Clone)]
pub struct ToolsConfig {
    /// Agent workspaces live in `<workspaces>/<sandbox id>/<agent id>`.
    pub workspaces: std::path::PathBuf,
    /// Whether `mcp_stdio` sources (programs started on the server host) may be used.
    pub allow_stdio_sources: bool,
    /// The shell sandbox.
    pub sandbox: crate::sandbox::SandboxConfig,
    /// Pooled MCP connections.
    pub mcp: McpPoolConfig,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            workspaces: std::env::temp_dir().join("steward-workspaces"),
            allow_stdio_sources: true,
            sandbox: crate::sandbox::SandboxConfig::default(),
            mcp: McpPoolConfig {
                connect_timeout: Duration::from_secs(10),
                list_timeout: Duration::from_secs(10),
                max_output_bytes: crate::tools::MAX_TOOL_OUTPUT,
                idle_ttl: Duration::from_secs(600),
            },
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            node_id: format!("node-{}", steward_core::ids::RunId::generate().as_str().trim_start_matches("run_")),
            heartbeat: Duration::from_secs(2),
            stale_after: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            tool_timeout: Duration::from_secs(60),
            schedule_poll: Duration::from_millis(250),
            notify_poll: Duration::from_millis(500),
            notify_timeout: Duration::from_secs(10),
            tools: ToolsConfig::default(),
            max_concurrent_runs: 64,
            integrations: Default::default(),
            log_redaction: Default::default(),
        }
    }
}

/// What the admission of a run that starts at once already read, so the run does not read it
/// again: its new session (no earlier conversation) and its agent as admitted.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub session: steward_core::session::Session,
    pub agent: steward_core::agent::Agent,
}

/// Handle to the runtime. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub store: Store,
    pub events: EventLog,
    pub providers: Providers,
    pub clock: Arc<dyn Clock>,
    pub config: RuntimeConfig,
    pub mcp: McpPool,
    pub integrations: crate::integrations::Integrations,
    active: Mutex<HashMap<RunId, CancellationToken>>,
    workers: Mutex<HashSet<SessionId>>,
    /// One permit per executing run (`RuntimeConfig::max_concurrent_runs`).
    slots: Arc<tokio::sync::Semaphore>,
    pub(crate) tracker: TaskTracker,
    pub(crate) notify_http: std::sync::OnceLock<reqwest::Client>,
    /// The Concierge's tools, set once by the server.
    pub(crate) management: std::sync::OnceLock<Arc<dyn crate::tools::ManagementTools>>,
    shutdown: CancellationToken,
}

impl Runtime {
    pub fn new(store: Store, providers: Providers, clock: Arc<dyn Clock>, config: RuntimeConfig) -> Self {
        let slots = Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_runs.max(1)));
        let integrations =
            crate::integrations::Integrations::new(config.integrations.clone(), store.clone(), providers.vault().clone(), clock.clone());
        Self {
            inner: Arc::new(Inner {
                integrations,
                events: EventLog::new(store.clone()),
                store,
                providers,
                clock,
                mcp: McpPool::new(config.tools.mcp.clone()),
                config,
                active: Mutex::new(HashMap::new()),
                workers: Mutex::new(HashSet::new()),
                slots,
                tracker: TaskTracker::new(),
                notify_http: std::sync::OnceLock::new(),
                management: std::sync::OnceLock::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The sessions' event log: append, follow, wait.
    pub fn events(&self) -> &EventLog {
        &self.inner.events
    }

    pub fn providers(&self) -> &Providers {
        &self.inner.providers
    }

    /// Installs the management tools Concierge runs get (once; later calls are ignored).
    pub fn set_management_tools(&self, tools: Arc<dyn crate::tools::ManagementTools>) {
        let _ = self.inner.management.set(tools);
    }

    /// Integrations: catalog, connects, tokens.
    pub fn integrations(&self) -> &crate::integrations::Integrations {
        &self.inner.integrations
    }

    /// Recovers runs this node left behind, then starts the background workers.
    pub async fn start(&self) -> Result<(), StoreError> {
        self.recover(&self.inner.config.node_id.clone()).await?;
        let c = &self.inner.config;
        self.every("heartbeat", c.heartbeat, |rt| async move { rt.heartbeat().await });
        self.every("poller", c.poll, |rt| async move { rt.poll_once().await });
        self.every("reaper", c.stale_after / 3, |rt| async move {
            // Runs of any process whose heartbeat went stale.
            if let Err(e) = rt.recover("").await {
                tracing::warn!(error = %e, "cannot recover orphaned runs");
            }
        });
        self.every("notifier", c.notify_poll, |rt| async move { rt.deliver_notifications().await });
        self.every("token refresher", Duration::from_secs(60), |rt| async move {
            // Integration tokens that expire soon are refreshed ahead of use.
            if let Err(e) = rt.inner.integrations.refresh_due().await {
                tracing::warn!(error = %e, "cannot refresh integration tokens");
            }
        });
        let rt = self.clone();
        self.inner.tracker.spawn(async move { rt.scheduler().await });
        Ok(())
    }

    /// Stops taking work, cancels nothing (runs reach their next persisted step), and waits
    /// up to `grace` for running tasks; what is still running then is recovered on restart.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        let _ = tokio::time::timeout(grace, self.inner.tracker.wait()).await;
        self.inner.mcp.shutdown().await;
    }

    /// A background worker of its own: `work` every `period` (a pass that overruns delays the
    /// next; passes never overlap), until shutdown.
    fn every<F, Fut>(&self, name: &'static str, period: Duration, work: F)
    where
        F: Fn(Runtime) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let rt = self.clone();
        self.inner.tracker.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = rt.inner.shutdown.cancelled() => break,
                    _ = tick.tick() => work(rt.clone()).await,
                }
            }
            tracing::debug!(worker = name, "stopped");
        });
    }

    async fn heartbeat(&self) {
        if let Err(e) = self.inner.store.heartbeat_runs(&self.inner.config.node_id).await {
            tracing::warn!(error = %e, "cannot heartbeat runs");
        }
        self.inner.events.prune();
    }

    /// The scheduler sleeps until the earliest due time (at most `schedule_poll`, which also
    /// covers schedules created on other replicas), so lateness is a query, not a poll.
    async fn scheduler(&self) {
        let poll_ms = self.inner.config.schedule_poll.as_millis() as i64;
        loop {
            if let Err(e) = self.schedule_tick().await {
                tracing::warn!(error = %e, "cannot fire due schedules");
            }
            let wait_ms = match self.inner.store.next_due().await {
                // Still due after a tick: more than one batch, or a failing row; don't spin.
                Ok(Some(due)) if due <= self.inner.clock.now_ms() => 10.min(poll_ms),
                Ok(Some(due)) => (due - self.inner.clock.now_ms()).min(poll_ms),
                _ => poll_ms,
            };
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(wait_ms.max(0) as u64)) => {}
            }
        }
    }

    /// Picks up queued work, and stops local runs that were cancelled elsewhere.
    async fn poll_once(&self) {
        match self.inner.store.sessions_with_queued_runs(100).await {
            Ok(sessions) => {
                for s in sessions {
                    self.kick(&s);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for queued runs"),
        }
        let local: Vec<RunId> = self.inner.active.lock().expect("active runs lock").keys().cloned().collect();
        for id in local {
            if let Ok(Some(run)) = self.inner.store.run(&id).await
                && run.status.is_terminal()
                && let Some(token) = self.inner.active.lock().expect("active runs lock").get(&id)
            {
                token.cancel();
            }
        }
    }

    /// Marks orphaned runs failed with `interrupted` and ends their streams. `dead_owner` is
    /// an owner known to be dead (this node at start-up) or "" for staleness only.
    async fn recover(&self, dead_owner: &str) -> Result<(), StoreError> {
        let stale_before = self.inner.clock.now_ms() - self.inner.config.stale_after.as_millis() as i64;
        for run in self.inner.store.orphaned_runs(dead_owner, stale_before).await? {
            if self.inner.active.lock().expect("active runs lock").contains_key(&run.id) {
                continue;
            }
            let usage = RunUsage { input_tokens: run.input_tokens, output_tokens: run.output_tokens };
            if self.end_run(&run, &Ending::Interrupted, run.trace.clone(), usage).await? {
                tracing::warn!(run = %run.id, "recovered an interrupted run");
                self.kick(&run.session_id);
            }
        }
        Ok(())
    }

    /// Makes sure a worker drains the queued runs of `session` in this process.
    pub fn kick(&self, session: &SessionId) {
        self.spawn_worker(session, None);
    }

    /// A slot to execute a run in now, if one is free (and the runtime takes work): the
    /// admission of a new session then creates its run already claimed by this process.
    pub(crate) fn free_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if self.inner.shutdown.is_cancelled() {
            return None;
        }
        self.inner.slots.clone().try_acquire_owned().ok()
    }

    /// Executes `run` — created `running` for this process in a new session, in `slot` — at
    /// once, then drains the session's queued runs as [`Self::kick`] does.
    pub(crate) fn start_claimed(&self, run: Run, slot: tokio::sync::OwnedSemaphorePermit, prepared: Prepared) {
        let session = run.session_id.clone();
        self.spawn_worker(&session, Some((run, slot, prepared)));
    }

    /// The node id this process claims runs as.
    pub(crate) fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    fn spawn_worker(&self, session: &SessionId, first: Option<(Run, tokio::sync::OwnedSemaphorePermit, Prepared)>) {
        if first.is_none() && self.inner.shutdown.is_cancelled() {
            return;
        }
        let exists = !self.inner.workers.lock().expect("workers lock").insert(session.clone());
        if exists {
            // A claimed run's session is new: no worker can exist for it yet.
            debug_assert!(first.is_none(), "a claimed run's session has no worker");
            if first.is_none() {
                return;
            }
        }
        let rt = self.clone();
        let session = session.clone();
        self.inner.tracker.spawn(async move {
            if let Some((run, _slot, prepared)) = first {
                rt.execute(run, Some(prepared)).await;
            }
            loop {
                // Wait for a slot before claiming, so a run that waits stays `queued`.
                let Ok(_slot) = rt.inner.slots.clone().acquire_owned().await else { break };
                if rt.inner.shutdown.is_cancelled() {
                    break;
                }
                let claimed = rt.inner.store.claim_next_run(&session, &rt.inner.config.node_id).await;
                match claimed {
                    Ok(Some(run)) => rt.execute(run, None).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, session = %session, "cannot claim a run");
                        break;
                    }
                }
                if rt.inner.shutdown.is_cancelled() {
                    break;
                }
            }
            rt.inner.workers.lock().expect("workers lock").remove(&session);
        });
    }

    async fn execute(&self, run: Run, prepared: Option<Prepared>) {
        let token = self.inner.shutdown.child_token();
        self.inner.active.lock().expect("active runs lock").insert(run.id.clone(), token.clone());
        let id = run.id.clone();
        let deps = crate::agent_loop::Deps {
            store: &self.inner.store,
            events: &self.inner.events,
            providers: &self.inner.providers,
            tools: self,
            clock: self.inner.clock.clone(),
            tool_timeout: self.inner.config.tool_timeout,
        };
        crate::agent_loop::run(&deps, run, prepared, token).await;
        self.inner.active.lock().expect("active runs lock").remove(&id);
    }

    /// Appends one event to a session's log (announced once it is stored).
    pub async fn emit(&self, session: &SessionId, run: &RunId, event: RunEvent) -> Result<Event, StoreError> {
        let mut events = self.inner.events.append_events(session, run, std::slice::from_ref(&event)).await?;
        Ok(events.pop().expect("one event appended"))
    }

    /// Cancels a run wherever it is: a local running run stops at once (its model request is
    /// dropped); a queued run, or one running elsewhere, is ended in the store and its owner
    /// notices at its next poll. Returns whether the run was still active.
    pub async fn cancel(&self, run: &Run, reason: &str) -> Result<bool, StoreError> {
        if let Some(token) = self.inner.active.lock().expect("active runs lock").get(&run.id) {
            token.cancel();
            return Ok(true);
        }
        let usage = RunUsage { input_tokens: run.input_tokens, output_tokens: run.output_tokens };
        if self.end_run(run, &Ending::Cancelled { reason: reason.into() }, run.trace.clone(), usage).await? {
            self.kick(&run.session_id);
            return Ok(true);
        }
        Ok(false)
    }

    /// Cancels every active run of a session.
    pub async fn cancel_session(&self, session: &SessionId, reason: &str) -> Result<usize, StoreError> {
        let mut n = 0;
        for run in self.inner.store.active_runs(session).await? {
            if self.cancel(&run, reason).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Cancels every active run of an agent (the agent was stopped).
    pub async fn cancel_agent(&self, agent: &AgentId, reason: &str) -> Result<usize, StoreError> {
        let mut n = 0;
        for run in self.inner.store.active_runs_of_agent(agent).await? {
            if self.cancel(&run, reason).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Waits until `run` has ended (polling the store; woken by its session's events).
    pub async fn wait_for(&self, run: &RunId, session: &SessionId, limit: Duration) -> Result<Option<Run>, StoreError> {
        self.inner.events.wait_for_end(run, session, limit).await
    }
}
