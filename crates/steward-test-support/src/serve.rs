//! The `steward` binary as a child process. `steward serve`: started from a `Command` the caller
//! built (so this crate needs neither the binary nor the server crate), waited for until it
//! prints its "steward listening on <url>" line, and killed with SIGKILL — when the test says
//! so, or on drop. Restarting is starting the same command again on the same data dir or
//! database. Then what a test does first with a server, as an operator and a client would:
//! bootstrap an account with `steward admin create-account` ([`bootstrap_account`]) and open a
//! session over HTTP ([`create_session`]).
//!
//! Every wait is bounded, and the pipes are read to their end on threads of their own, so a
//! child never blocks writing to a pipe nobody reads.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The line `steward serve` prints first on stdout, followed by its URL.
pub const LISTENING: &str = "steward listening on ";

/// A running `steward serve`, killed (SIGKILL) and reaped on drop.
pub struct Served {
    /// The process.
    pub child: Child,
    /// Its first line of stdout: "steward listening on http://127.0.0.1:<port> …".
    pub first_line: String,
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    output: Arc<Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Kills the process with SIGKILL (no shutdown hook runs) and waits for it to end.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// Everything the process printed so far: stdout, and stderr when it was piped.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Kills the process, then returns everything it printed.
    pub fn drain(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.output()
    }
}

/// Spawns `cmd` (a `steward serve …` command with all its arguments, `--listen 127.0.0.1:0`
/// among them) with stdout piped, and waits up to `timeout` for the listening line, which must
/// be the first line of stdout. Stderr is what the caller made it: when piped, it is kept in
/// [`Served::output`] too (and in the error); otherwise left alone (a log file, inherited).
///
/// `Err` holds what the process printed when it exited, printed something else first, or did
/// not start in time (it is killed then).
pub fn start(mut cmd: Command, timeout: Duration) -> Result<Served, String> {
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot spawn steward serve: {e}"))?;
    let output = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout is piped");
    let out = output.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            out.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
    let stderr = child.stderr.take().map(|pipe| {
        let out = output.clone();
        std::thread::spawn(move || keep(pipe, &out))
    });
    let printed = |child: &mut Child, stderr: Option<std::thread::JoinHandle<()>>| {
        let _ = child.wait();
        if let Some(t) = stderr {
            let _ = t.join();
        }
        output.lock().unwrap().clone()
    };
    match rx.recv_timeout(timeout) {
        Ok(line) if line.starts_with(LISTENING) => {
            let url = line[LISTENING.len()..].split_whitespace().next().unwrap_or_default().to_owned();
            Ok(Served { child, first_line: line, url, output })
        }
        Ok(line) => {
            let _ = child.kill();
            Err(format!("unexpected first line from steward serve: {line}\nit printed: {}", printed(&mut child, stderr)))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(printed(&mut child, stderr)),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            Err(format!("timed out after {timeout:?} waiting for the server; it printed: {}", printed(&mut child, stderr)))
        }
    }
}

fn keep(pipe: impl Read, out: &Mutex<String>) {
    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
        out.lock().unwrap().push_str(&format!("{line}\n"));
    }
}

/// How long `steward admin create-account` may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What `steward admin create-account --json` printed: the account, the sandbox it owns, and
/// an account API key homed there.
#[derive(Debug, Clone)]
pub struct Account {
    pub account_id: String,
    pub sandbox_id: String,
    pub api_key: String,
}

/// Bootstraps an account as an operator does: `steward admin create-account --email <email>
/// --json` on the store the server uses — its data dir, its PostgreSQL URL, or both, as
/// `steward serve` was given them. `steward` is a `Command` of the binary with the environment
/// the test wants and no arguments yet. Panics, with what the command printed, when it fails,
/// prints no account, or runs longer than a minute.
pub fn bootstrap_account(mut steward: Command, email: &str, data_dir: Option<&Path>, database_url: Option<&str>) -> Account {
    steward.args(["admin", "create-account", "--email", email, "--json"]);
    if let Some(dir) = data_dir {
        steward.arg("--data-dir").arg(dir);
    }
    if let Some(url) = database_url {
        steward.args(["--database-url", url]);
    }
    steward.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = wait_within(steward.spawn().expect("spawn steward admin create-account"), ADMIN_TIMEOUT)
        .unwrap_or_else(|| panic!("steward admin create-account ran longer than {ADMIN_TIMEOUT:?}"));
    let printed = || format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "steward admin create-account failed ({}); {}", out.status, printed());
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("steward admin create-account printed no JSON ({e}); {}", printed()));
    let field = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("no {k} in what steward admin create-account printed: {v}")).to_owned();
    Account { account_id: field("account_id"), sandbox_id: field("sandbox_id"), api_key: field("api_key") }
}

/// Waits for `child` to exit and returns what it printed on the pipes it has (stdout, stderr;
/// an output not piped is empty). `None` when it ran longer than `timeout`: it is killed then,
/// and the caller says what that means.
pub fn wait_within(mut child: Child, timeout: Duration) -> Option<Output> {
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the command") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Some(Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() })
}

/// `POST {url}/v1/sessions` with `key`: a session of `agent` whose input is the user message
/// `content`. Returns the new session's id, or what went wrong (the transport error, or a status
/// other than 201 with the body).
pub async fn create_session(http: &reqwest::Client, url: &str, key: &str, agent: &str, content: &str) -> Result<String, String> {
    let body = json!({"agent_id": agent, "input": [{"role": "user", "content": content}]});
    let res =
        http.post(format!("{url}/v1/sessions")).bearer_auth(key).json(&body).send().await.map_err(|e| format!("POST /v1/sessions: {e}"))?;
    let status = res.status();
    let text = res.text().await.map_err(|e| format!("POST /v1/sessions → {status}, body unread: {e}"))?;
    if status != reqwest::StatusCode::CREATED {
        return Err(format!("POST /v1/sessions → {status}: {text}"));
    }
    let session: Value = serde_json::from_str(&text).map_err(|e| format!("POST /v1/sessions → {status}, not JSON ({e}): {text}"))?;
    session["id"].as_str().map(str::to_owned).ok_or_else(|| format!("POST /v1/sessions → {status}, no id: {session}"))
}
