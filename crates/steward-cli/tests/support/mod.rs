//! Helpers for driving the real `steward` binary: a server on a free port with its own data
//! dir (killed on drop), `steward …` processes with a hermetic environment (no inherited
//! `STEWARD_*`, home and config dirs in a temp dir), and a timeout on every wait.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use steward_test_support::serve::{self, Account, Served, bootstrap_account, wait_within};

const BIN: &str = env!("CARGO_BIN_EXE_steward");
const STARTUP: Duration = Duration::from_secs(30);
const COMMAND: Duration = Duration::from_secs(60);

/// A directory removed when the test ends.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("steward-cli-{label}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// No inherited `STEWARD_*` variable, and a home and config dir of the test's own.
pub fn hermetic(cmd: &mut Command, home: &Path) {
    for (k, _) in std::env::vars() {
        if k.starts_with("STEWARD_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("xdg-config"))
        .env("XDG_DATA_HOME", home.join("xdg-data"))
        .env("STEWARD_CONFIG_DIR", home.join("steward-config"))
        .env("STEWARD_LOG", "warn");
}

/// A running `steward serve`, killed on drop.
pub struct Server {
    _process: Served,
    pub url: String,
    pub data: TempDir,
    pub home: TempDir,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(|_| {})
    }

    /// A server started with the extra flags `extra` adds.
    pub fn start_with(extra: impl FnOnce(&mut Command)) -> Server {
        let data = TempDir::new("data");
        let home = TempDir::new("home");
        let process = serve_in(data.path(), home.path(), STARTUP, extra);
        Server { url: process.url.clone(), _process: process, data, home }
    }

    /// `steward admin create-account` on this server's data dir.
    pub fn create_account(&self, email: &str) -> Account {
        let mut cmd = Command::new(BIN);
        hermetic(&mut cmd, self.home.path());
        bootstrap_account(cmd, email, Some(self.data.path()), None)
    }

    /// A client acting with `key` (or the stored login when `None`) in directory `cwd`.
    pub fn client(&self, key: Option<&str>, cwd: &Path) -> Client {
        let mut vars = vec![("STEWARD_URL".to_owned(), self.url.clone())];
        if let Some(k) = key {
            vars.push(("STEWARD_API_KEY".to_owned(), k.to_owned()));
        }
        Client { home: self.home.path().to_owned(), cwd: cwd.to_owned(), vars }
    }

    pub fn mail_log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("mail.log")).unwrap_or_default()
    }
}

/// Starts `steward serve` on the data dir `data`, hermetic in `home`, with the flags `extra` adds;
/// its log goes to `home/server.log`, shown when it does not start within `timeout`.
pub fn serve_in(data: &Path, home: &Path, timeout: Duration, extra: impl FnOnce(&mut Command)) -> Served {
    let log = std::fs::File::create(home.join("server.log")).unwrap();
    let mut cmd = Command::new(BIN);
    hermetic(&mut cmd, home);
    cmd.arg("serve").arg("--data-dir").arg(data).args(["--listen", "127.0.0.1:0"]);
    extra(&mut cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    serve::start(cmd, timeout).unwrap_or_else(|e| {
        panic!("steward serve did not start ({e}); its log:\n{}", std::fs::read_to_string(home.join("server.log")).unwrap_or_default())
    })
}

/// How to run `steward …` commands.
pub struct Client {
    home: PathBuf,
    cwd: PathBuf,
    vars: Vec<(String, String)>,
}

impl Client {
    pub fn without_url(mut self) -> Client {
        self.vars.retain(|(k, _)| k != "STEWARD_URL");
        self
    }

    /// The same client with one more environment variable.
    pub fn with_var(mut self, key: &str, value: &str) -> Client {
        self.vars.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn spawn(&self, args: &[&str], stdin: Stdio) -> Child {
        let mut cmd = Command::new(BIN);
        hermetic(&mut cmd, &self.home);
        cmd.args(args)
            .current_dir(&self.cwd)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("spawn steward")
    }

    /// Runs with stdin closed (not a terminal, immediately at end of input).
    pub fn run(&self, args: &[&str]) -> Run {
        finish(self.spawn(args, Stdio::null()))
    }
}

/// A finished command.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert!(self.status.success(), "command failed: {self:#?}");
        self
    }

    #[track_caller]
    pub fn fails(self) -> Run {
        assert!(!self.status.success(), "command should have failed: {self:#?}");
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Waits for a child with piped output, killing it if it takes too long.
pub fn finish(child: Child) -> Run {
    let out = wait_within(child, COMMAND).unwrap_or_else(|| panic!("a steward command ran longer than {COMMAND:?}"));
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    Run { status: out.status, stdout: text(out.stdout), stderr: text(out.stderr) }
}
