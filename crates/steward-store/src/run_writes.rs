//! Group commit of run writes: the events, conversation messages, token usage, trace and end of
//! many concurrent runs, committed together by one writer task per process, many per
//! transaction.
//!
//! A run hands its writes over as a [`RunWrite`] and waits for the commit; meanwhile other runs'
//! writes queue up, and the writer takes every write waiting (up to [`MAX_BATCH`]) into its next
//! transaction. Within a batch the statements are aggregated: one `UPDATE sessions` per session
//! (event and message numbers, usage, status), one `UPDATE runs` per run, one `UPDATE agents`
//! per agent (usage and balance), one multi-row `INSERT` for all events and one for all messages.
//! Rows are locked in id order (runs, then sessions, then agents), so two replicas' batches
//! cannot deadlock on them.
//!
//! What the caller gets back is durable: the reply is sent after the commit. If a batch fails,
//! it is rolled back and each of its writes is retried in a transaction of its own, so one bad
//! write (a deleted session) cannot fail the writes of other runs.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::{AssertSqlSafe, Row};
use steward_core::ids::{AgentId, RunId, SessionId};
use steward_core::session::{Event, Run, Session};

use crate::sessions::{NewSession, RunOutcome};
use crate::{IdempotencyClaim, Notification, Store, StoreError};

/// Most writes in one transaction.
pub const MAX_BATCH: usize = 256;

/// Rows per multi-row `INSERT`, largest first: a batch's rows go in statements of these sizes,
/// so only a few distinct statements exist and they stay in the prepared-statement cache.
const INSERT_SIZES: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

/// Splits `rows` into chunks of the [`INSERT_SIZES`].
fn insert_chunks<T>(mut rows: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    for size in INSERT_SIZES {
        while rows.len() >= size {
            let (chunk, rest) = rows.split_at(size);
            out.push(chunk);
            rows = rest;
        }
    }
    out
}

/// Writes of one run, committed together (and with other runs' writes).
#[derive(Debug, Clone)]
pub struct RunWrite {
    pub session: SessionId,
    pub run: RunId,
    /// Events appended to the session's log, in order.
    pub events: Vec<(String, Value)>,
    /// Conversation messages `(role, content)` appended, in order.
    pub messages: Vec<(String, Value)>,
    /// Token usage to charge to the run, its session and its agent (and the agent's balance).
    pub charge: Option<UsageCharge>,
    /// The run's trace so far, stored on the run.
    pub trace: Option<Value>,
    /// Ends the run (if it is still active), after everything above.
    pub end: Option<RunEnd>,
}

impl RunWrite {
    /// An empty write for `run` of `session`.
    pub fn new(session: SessionId, run: RunId) -> Self {
        Self { session, run, events: Vec::new(), messages: Vec::new(), charge: None, trace: None, end: None }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.messages.is_empty() && self.charge.is_none() && self.trace.is_none() && self.end.is_none()
    }

    fn tokens(&self) -> (i64, i64) {
        self.charge.as_ref().map(|c| (c.input_tokens, c.output_tokens)).unwrap_or_default()
    }
}

/// Tokens a run used, charged to it, its session and its agent.
#[derive(Debug, Clone)]
pub struct UsageCharge {
    pub agent: AgentId,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// How a run ends: its stored outcome, its one terminal event and the notification it causes,
/// committed together (a transactional outbox).
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub outcome: RunOutcome,
    pub terminal: (String, Value),
    pub notification: Option<Notification>,
}

/// A run to admit, committed by the run writer together with other runs' writes (see
/// [`Store::admit_run`]).
#[derive(Debug, Clone)]
pub struct NewRun {
    pub target: RunTarget,
    /// The run's input items.
    pub input: Value,
    /// `POST /v1/sessions`' `Idempotency-Key` claim: the record names the new session and run
    /// (`ses_…/run_…`) in the transaction that creates them.
    pub claim: Option<IdempotencyClaim>,
}

/// Where an admitted run goes.
#[derive(Debug, Clone)]
pub enum RunTarget {
    /// A new session with this run as its first. With `start` the run is born `running`,
    /// owned by its owner, who executes it at once (no claim transaction).
    New { session: NewSession, start: Option<Start> },
    /// Another run of `session`, queued. Unless `when_busy_too`, refused (`Busy`) when the
    /// session has a queued or running run.
    Turn { session: Session, when_busy_too: bool },
}

/// A run born running: who executes it, and the conversation messages it starts with (its input,
/// as the runtime stores it), written with it together with its `agent_start` event — so the run
/// needs no write of its own before its first model call.
#[derive(Debug, Clone)]
pub struct Start {
    pub owner: String,
    pub messages: Vec<(String, Value)>,
}

/// What a committed [`RunWrite`] stored.
#[derive(Debug, Clone, Default)]
pub struct RunWritten {
    /// The stored events, numbered; the terminal event last when this write ended the run.
    pub events: Vec<Event>,
    /// The agent's token balance after the charge (`None`: no budget, or nothing charged).
    pub balance: Option<i64>,
    /// Whether this write ended the run. `false` with an `end` means someone else (a cancel
    /// from another replica, the reaper) ended it first and wrote its terminal event: this
    /// write's terminal event and notification were not stored.
    pub ended: bool,
}

/// What the writer calls after each commit (see [`Store::on_committed_events`]).
type CommitFn = dyn Fn(&[Event]) + Send + Sync;

#[derive(Clone)]
pub(crate) struct CommitHook(std::sync::Arc<CommitFn>);

impl std::fmt::Debug for CommitHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitHook")
    }
}

/// A submitted [`RunWrite`]: await it (or poll [`RunWriteReceipt::try_result`]) for what was stored.
#[derive(Debug)]
pub struct RunWriteReceipt(tokio::sync::oneshot::Receiver<Result<RunWritten, StoreError>>);

impl RunWriteReceipt {
    /// The result if the write has been committed (or failed) already.
    pub fn try_result(&mut self) -> Option<Result<RunWritten, StoreError>> {
        match self.0.try_recv() {
            Ok(r) => Some(r),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Some(Err(StoreError::ShuttingDown)),
        }
    }
}

impl std::future::Future for RunWriteReceipt {
    type Output = Result<RunWritten, StoreError>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| r.unwrap_or(Err(StoreError::ShuttingDown)))
    }
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, StoreError>>;

/// What the run writer is handed: a run's writes, or an admission.
pub(crate) enum PendingRunWrite {
    Write { write: RunWrite, reply: Reply<RunWritten> },
    Admit { new: NewRun, reply: Reply<(Session, Run)> },
}

/// What one committed member of a batch answers.
enum Answer {
    Write(Result<RunWritten, StoreError>),
    /// The session and run, and the events the admission stored (a born-running run's start).
    Admit(Result<Box<(Session, Run, Vec<Event>)>, StoreError>),
}

impl Store {
    /// Commits `write` together with whatever other runs' writes are waiting, and returns what
    /// was stored once it is durable.
    pub async fn write_run(&self, write: RunWrite) -> Result<RunWritten, StoreError> {
        self.submit_run_write(write).await
    }

    /// Hands `write` to the writer at once (writes of one process commit in the order they are
    /// submitted) and returns a receipt to await what was stored; a caller may go on meanwhile.
    pub fn submit_run_write(&self, write: RunWrite) -> RunWriteReceipt {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // A writer that is gone drops the reply: the receipt then says ShuttingDown.
        let _ = self.run_writer().send(PendingRunWrite::Write { write, reply });
        RunWriteReceipt(answer)
    }

    /// Admits a run: inserts it (and, for a new session, the session; with a claim, the
    /// idempotency record's reference), committed by the run writer together with other runs'
    /// writes and admissions. Returns the session and the run once durable. A turn into a busy
    /// session (unless `when_busy_too`) is refused with [`StoreError::Busy`] and writes nothing.
    pub async fn admit_run(&self, new: NewRun) -> Result<(Session, Run), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let _ = self.run_writer().send(PendingRunWrite::Admit { new, reply });
        answer.await.unwrap_or(Err(StoreError::ShuttingDown))
    }

    /// Installs the function called with the events of every committed batch of run writes,
    /// in commit order, before the writers are answered (once; later calls are ignored).
    pub fn on_committed_events(&self, hook: impl Fn(&[Event]) + Send + Sync + 'static) {
        let _ = self.committed.set(CommitHook(std::sync::Arc::new(hook)));
    }

    fn announce(&self, answers: &[Answer]) {
        if let Some(hook) = self.committed.get() {
            for a in answers {
                let events = match a {
                    Answer::Write(Ok(r)) => &r.events,
                    Answer::Admit(Ok(b)) => &b.2,
                    _ => continue,
                };
                if !events.is_empty() {
                    (hook.0)(events);
                }
            }
        }
    }

    fn run_writer(&self) -> &tokio::sync::mpsc::UnboundedSender<PendingRunWrite> {
        self.run_writes.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            // The task's handle has its own (empty) writer cell: no cycle, so the task ends
            // when the last user handle (and with it the sender) is dropped.
            let store = Store { run_writes: Default::default(), deliveries: Default::default(), ..self.clone() };
            // (It shares `committed` with this handle: the hook may be installed after the start.)
            tokio::spawn(store.run_run_writer(rx));
            tx
        })
    }

    async fn run_run_writer(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<PendingRunWrite>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let members = std::mem::take(&mut batch);
            match self.commit_run_writes(&members).await {
                Ok(answers) => {
                    self.announce(&answers);
                    for (member, answer) in members.into_iter().zip(answers) {
                        reply(member, answer);
                    }
                }
                Err(StoreError::ShuttingDown) => {
                    for member in members {
                        fail(member, StoreError::ShuttingDown);
                    }
                }
                Err(e) if members.len() > 1 => {
                    // One member may be at fault: give each its own transaction, in order.
                    tracing::debug!(error = %e, n = members.len(), "a batch of run writes failed; retrying them one by one");
                    for member in members {
                        match self.commit_run_writes(std::slice::from_ref(&member)).await {
                            Ok(answers) => {
                                self.announce(&answers);
                                reply(member, answers.into_iter().next().expect("one answer per member"));
                            }
                            Err(e) => fail(member, e),
                        }
                    }
                }
                Err(e) => {
                    if let Some(member) = members.into_iter().next() {
                        fail(member, e);
                    }
                }
            }
        }
    }

    /// One transaction for `members`: the admissions first (in order), then the runs' writes.
    /// The outer error fails the whole batch (rolled back); the inner ones are per member (a
    /// busy session, a session that no longer exists), and those members stored nothing.
    async fn commit_run_writes(&self, members: &[PendingRunWrite]) -> Result<Vec<Answer>, StoreError> {
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let mut admitted = Vec::new();
        let mut writes = Vec::with_capacity(members.len());
        for m in members {
            match m {
                PendingRunWrite::Admit { new, .. } => admitted.push(self.admit_in(&mut tx, new, now).await?),
                PendingRunWrite::Write { write, .. } => writes.push(write),
            }
        }
        let mut written = self.write_runs_in(&mut tx, &writes, now).await?.into_iter();
        tx.commit().await?;
        let mut admitted = admitted.into_iter();
        Ok(members
            .iter()
            .map(|m| match m {
                PendingRunWrite::Admit { .. } => Answer::Admit(admitted.next().expect("one result per admission").map(Box::new)),
                PendingRunWrite::Write { .. } => Answer::Write(written.next().expect("one result per write")),
            })
            .collect())
    }

    /// One admission inside the batch's transaction. The outer error fails the batch; the inner
    /// one refuses this admission, which then wrote nothing.
    async fn admit_in(
        &self,
        tx: &mut crate::WriteTx,
        new: &NewRun,
        now: i64,
    ) -> Result<Result<(Session, Run, Vec<Event>), StoreError>, StoreError> {
        let mut events = Vec::new();
        let (session, run) = match &new.target {
            RunTarget::New { session, start } => {
                let ids = (SessionId::generate(), RunId::generate());
                let owner = start.as_ref().map(|s| s.owner.as_str());
                let (session, run) = Self::create_session_with_ids(tx, session.clone(), ids.0, ids.1, Some(&new.input), owner, now).await?;
                let run = run.expect("a session created with input has its first run");
                if let Some(start) = start {
                    events = self.write_start_in(tx, &session, &run, &start.messages, now).await?;
                }
                (session, run)
            }
            RunTarget::Turn { session, when_busy_too } => {
                // Marking the session running first also locks its row (PostgreSQL), so another
                // replica's admission or claim for it waits for this transaction.
                let marked = sqlx::query("UPDATE sessions SET status = 'running', updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(session.id.as_str())
                    .execute(&mut **tx)
                    .await?;
                if marked.rows_affected() == 0 {
                    return Ok(Err(StoreError::NotFound("session")));
                }
                if !when_busy_too {
                    let busy = sqlx::query("SELECT id FROM runs WHERE session_id = $1 AND status IN ('queued', 'running') LIMIT 1")
                        .bind(session.id.as_str())
                        .fetch_optional(&mut **tx)
                        .await?;
                    if let Some(r) = busy {
                        let id: String = r.try_get("id")?;
                        return Ok(Err(StoreError::Busy(format!(
                            "session {} is busy with run {id}; wait for it, or send `\"on_busy\": \"enqueue\"` or `\"interrupt\"`",
                            session.id
                        ))));
                    }
                }
                let run = crate::sessions::insert_run_row(tx, session, RunId::generate(), &new.input, None, now).await?;
                (Session { status: "running".into(), updated_at: now, ..session.clone() }, run)
            }
        };
        if let Some(claim) = &new.claim {
            Self::idempotency_created_in(tx, claim, &format!("{}/{}", session.id, run.id)).await?;
        }
        Ok(Ok((session, run, events)))
    }

    /// A born-running run's first writes in its new session: the `agent_start` event (number 1)
    /// and its input messages (numbered from 1).
    async fn write_start_in(
        &self,
        tx: &mut crate::WriteTx,
        session: &Session,
        run: &Run,
        messages: &[(String, Value)],
        now: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let (kind, data) = steward_core::session::RunEvent::Started { run_id: run.id.clone() }.to_stored();
        sqlx::query("INSERT INTO events (session_id, seq, run_id, type, data, created_at) VALUES ($1, 1, $2, $3, $4, $5)")
            .bind(session.id.as_str())
            .bind(run.id.as_str())
            .bind(kind.as_str())
            .bind(data.to_string())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        for (seq, (role, content)) in messages.iter().enumerate() {
            sqlx::query(
                "INSERT INTO session_messages (session_id, seq, run_id, role, content, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(session.id.as_str())
            .bind(seq as i64 + 1)
            .bind(run.id.as_str())
            .bind(role.as_str())
            .bind(content.to_string())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query("UPDATE sessions SET last_seq = 1, message_seq = $1 WHERE id = $2")
            .bind(messages.len() as i64)
            .bind(session.id.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(vec![Event { session_id: session.id.clone(), seq: 1, run_id: run.id.clone(), kind, data, created_at: now }])
    }

    /// The runs' writes of a batch, inside its transaction.
    async fn write_runs_in(
        &self,
        tx: &mut crate::WriteTx,
        writes: &[&RunWrite],
        now: i64,
    ) -> Result<Vec<Result<RunWritten, StoreError>>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }

        // Runs, in id order: usage and trace (in FIFO order, so the last trace wins) and ends (the
        // first end of a run wins), one statement per run — the end's, which carries the usage,
        // or an update when the run does not end here.
        #[derive(Default)]
        struct RunAgg<'w> {
            input: i64,
            output: i64,
            trace: Option<&'w Value>,
            ends: Vec<usize>,
        }
        let mut runs: BTreeMap<&RunId, RunAgg> = BTreeMap::new();
        for (i, w) in writes.iter().enumerate() {
            if w.charge.is_none() && w.trace.is_none() && w.end.is_none() {
                continue;
            }
            let r = runs.entry(&w.run).or_default();
            let (input, output) = w.tokens();
            r.input += input;
            r.output += output;
            if w.trace.is_some() {
                r.trace = w.trace.as_ref();
            }
            if w.end.is_some() {
                r.ends.push(i);
            }
        }
        let mut ended = vec![false; writes.len()];
        for (run, r) in &runs {
            let mut update = r.input != 0 || r.output != 0 || r.trace.is_some();
            for &i in &r.ends {
                let end = writes[i].end.as_ref().expect("collected on end");
                let usage = if update { (r.input, r.output) } else { (0, 0) };
                ended[i] = Self::finish_row_in(tx, run, &end.outcome, usage, now).await?;
                // (The end's outcome carries the whole trace.)
                update &= !ended[i];
            }
            if !update {
                continue;
            }
            let q = match r.trace {
                Some(t) => sqlx::query(
                    "UPDATE runs SET input_tokens = input_tokens + $1, output_tokens = output_tokens + $2, trace = $3 WHERE id = $4",
                )
                .bind(r.input)
                .bind(r.output)
                .bind(t.to_string()),
                None => sqlx::query("UPDATE runs SET input_tokens = input_tokens + $1, output_tokens = output_tokens + $2 WHERE id = $3")
                    .bind(r.input)
                    .bind(r.output),
            };
            q.bind(run.as_str()).execute(&mut **tx).await?;
        }

        // Sessions: numbers for the events and messages, usage, and the status after an end.
        #[derive(Default)]
        struct SessionAgg {
            events: i64,
            messages: i64,
            input: i64,
            output: i64,
            ended: bool,
            next_event: i64,
            next_message: i64,
            missing: bool,
        }
        let stored_events = |i: usize| writes[i].events.len() as i64 + i64::from(ended[i]);
        let mut sessions: BTreeMap<&SessionId, SessionAgg> = BTreeMap::new();
        for (i, w) in writes.iter().enumerate() {
            let s = sessions.entry(&w.session).or_default();
            s.events += stored_events(i);
            s.messages += w.messages.len() as i64;
            let (input, output) = w.tokens();
            s.input += input;
            s.output += output;
            s.ended |= ended[i];
        }
        for (id, s) in sessions.iter_mut() {
            if s.events == 0 && s.messages == 0 && s.input == 0 && s.output == 0 && !s.ended {
                continue;
            }
            let (status, id_param) = if s.ended {
                (
                    ", updated_at = $5, status = CASE WHEN EXISTS (SELECT 1 FROM runs WHERE runs.session_id = sessions.id AND runs.status IN ('queued', 'running')) THEN 'running' ELSE 'idle' END",
                    6,
                )
            } else {
                ("", 5)
            };
            let sql = format!(
                "UPDATE sessions SET last_seq = last_seq + $1, message_seq = message_seq + $2, input_tokens = input_tokens + $3,
                     output_tokens = output_tokens + $4{status} WHERE id = ${id_param} RETURNING last_seq, message_seq"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(s.events).bind(s.messages).bind(s.input).bind(s.output);
            if s.ended {
                q = q.bind(now);
            }
            match q.bind(id.as_str()).fetch_optional(&mut **tx).await? {
                Some(row) => {
                    s.next_event = row.try_get::<i64, _>("last_seq")? - s.events + 1;
                    s.next_message = row.try_get::<i64, _>("message_seq")? - s.messages + 1;
                }
                None => s.missing = true,
            }
        }

        // Agents: usage totals and the balance, one statement per agent.
        let mut agents: BTreeMap<&AgentId, (i64, i64, Option<i64>)> = BTreeMap::new();
        for c in writes.iter().filter_map(|w| w.charge.as_ref()) {
            let a = agents.entry(&c.agent).or_default();
            a.0 += c.input_tokens;
            a.1 += c.output_tokens;
        }
        for (id, (input, output, balance)) in agents.iter_mut() {
            let row = sqlx::query(
                "UPDATE agents SET input_tokens_total = input_tokens_total + $1, output_tokens_total = output_tokens_total + $2,
                     token_balance = CASE WHEN token_balance IS NULL THEN NULL ELSE token_balance - $3 END
                 WHERE id = $4 RETURNING token_balance",
            )
            .bind(*input)
            .bind(*output)
            .bind(*input + *output)
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
            *balance = row.map(|r| r.try_get("token_balance")).transpose()?.flatten();
        }

        // Number the rows in FIFO order and insert them.
        let mut results = Vec::with_capacity(writes.len());
        let mut event_rows: Vec<Event> = Vec::new();
        let mut message_rows: Vec<(&SessionId, i64, &RunId, &str, String)> = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let s = sessions.get_mut(&w.session).expect("every write's session is aggregated");
            if s.missing {
                results.push(Err(StoreError::NotFound("session")));
                continue;
            }
            let terminal = w.end.as_ref().filter(|_| ended[i]).map(|e| &e.terminal);
            let mut events = Vec::with_capacity(w.events.len() + 1);
            for (kind, data) in w.events.iter().chain(terminal) {
                events.push(Event {
                    session_id: w.session.clone(),
                    seq: s.next_event,
                    run_id: w.run.clone(),
                    kind: kind.clone(),
                    data: data.clone(),
                    created_at: now,
                });
                s.next_event += 1;
            }
            for (role, content) in &w.messages {
                message_rows.push((&w.session, s.next_message, &w.run, role, content.to_string()));
                s.next_message += 1;
            }
            event_rows.extend(events.iter().cloned());
            let balance = w.charge.as_ref().and_then(|c| agents.get(&c.agent)).and_then(|a| a.2);
            results.push(Ok(RunWritten { events, balance, ended: ended[i] }));
        }
        let sqlite = self.backend == crate::Backend::Sqlite;
        for chunk in insert_chunks(&event_rows) {
            let sql = values_sql("INSERT INTO events (session_id, seq, run_id, type, data, created_at) VALUES ", chunk.len(), 6, sqlite);
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for e in chunk {
                q = q
                    .bind(e.session_id.as_str())
                    .bind(e.seq)
                    .bind(e.run_id.as_str())
                    .bind(e.kind.as_str())
                    .bind(e.data.to_string())
                    .bind(now);
            }
            q.execute(&mut **tx).await?;
        }
        for chunk in insert_chunks(&message_rows) {
            let sql = values_sql(
                "INSERT INTO session_messages (session_id, seq, run_id, role, content, created_at) VALUES ",
                chunk.len(),
                6,
                sqlite,
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (session, seq, run, role, content) in chunk {
                q = q.bind(session.as_str()).bind(*seq).bind(run.as_str()).bind(*role).bind(content.as_str()).bind(now);
            }
            q.execute(&mut **tx).await?;
        }

        // The outbox: notifications of the runs this batch ended (subscriptions read once per
        // sandbox).
        let mut subscriptions: BTreeMap<&steward_core::ids::SandboxId, Vec<crate::Subscription>> = BTreeMap::new();
        for (i, w) in writes.iter().enumerate() {
            if let (true, Some(n)) = (ended[i], w.end.as_ref().and_then(|e| e.notification.as_ref()))
                && results[i].is_ok()
            {
                if !subscriptions.contains_key(&n.sandbox_id) {
                    let subs = Self::subscriptions_in(tx, &n.sandbox_id).await?;
                    subscriptions.insert(&n.sandbox_id, subs);
                }
                Self::enqueue_to(tx, &subscriptions[&n.sandbox_id], n, now).await?;
            }
        }
        Ok(results)
    }
}

/// `prefix` followed by `rows` groups of `cols` numbered placeholders: `$n`, or on SQLite `?n`
/// (the same positional numbering; SQLite treats `$n` as a *name*, and looking names up while
/// preparing a statement with hundreds of them took an eighth of the server's time).
fn values_sql(prefix: &str, rows: usize, cols: usize, sqlite: bool) -> String {
    let mut sql = String::with_capacity(prefix.len() + rows * cols * 5);
    sql.push_str(prefix);
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            sql.push(if sqlite { '?' } else { '$' });
            sql.push_str(&(r * cols + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

fn reply(member: PendingRunWrite, answer: Answer) {
    match (member, answer) {
        (PendingRunWrite::Write { reply, .. }, Answer::Write(r)) => {
            let _ = reply.send(r);
        }
        (PendingRunWrite::Admit { reply, .. }, Answer::Admit(r)) => {
            let _ = reply.send(r.map(|b| (b.0, b.1)));
        }
        (member, _) => fail(member, StoreError::Corrupt("the run writer answered a member with another's answer".into())),
    }
}

fn fail(member: PendingRunWrite, e: StoreError) {
    match member {
        PendingRunWrite::Write { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        PendingRunWrite::Admit { reply, .. } => {
            let _ = reply.send(Err(e));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_numbered_row_by_row() {
        assert_eq!(super::values_sql("V ", 2, 3, false), "V ($1,$2,$3),($4,$5,$6)");
        assert_eq!(super::values_sql("V ", 1, 2, true), "V (?1,?2)");
    }

    #[test]
    fn rows_go_in_few_statement_sizes() {
        let rows: Vec<u32> = (0..87).collect();
        let sizes: Vec<usize> = super::insert_chunks(&rows).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![64, 16, 4, 2, 1]);
        assert_eq!(sizes.iter().sum::<usize>(), 87);
    }
}
