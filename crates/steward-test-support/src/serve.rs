//! `steward serve` as a child process: started from a `Command` the caller built (so this crate
//! needs neither the binary nor the server crate), waited for until it prints its
//! "steward listening on <url>" line, and killed with SIGKILL — when the test says so, or on
//! drop. Restarting is starting the same command again on the same data dir or database.
//!
//! Every wait is bounded, and the pipes are read to their end on threads of their own, so a
//! server never blocks writing to a pipe nobody reads.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
