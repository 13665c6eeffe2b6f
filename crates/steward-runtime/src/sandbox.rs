//! The shell sandbox (§7): runs an agent's shell command inside its workspace, walled off from
//! the host with [bubblewrap](https://github.com/containers/bubblewrap) (`bwrap`), the
//! unprivileged namespace sandbox that Flatpak uses. No Docker engine, no daemon, no setuid
//! helper: `bwrap` runs unprivileged in a fresh user namespace, which starts in a few
//! milliseconds. Debian package: `bubblewrap`; [`check`] says whether it works on this host.
//!
//! The walls, each proven by `tests/sandbox.rs`:
//!
//! - **Identity.** Inside, the command runs as uid/gid 1000 (`sandbox` in a generated
//!   `/etc/passwd`) with no capabilities and no way to create further user namespaces
//!   (`--disable-userns`). When the server runs as root it first drops to an unprivileged
//!   host uid derived from the agent ([`sandbox_uid`]: `uid_base + fnv1a(agent_key) % 50_000`,
//!   the same number as gid, supplementary groups cleared) and gives the workspace to that uid,
//!   so even an escape from the namespaces lands as a nobody. When the server is not root,
//!   `bwrap` runs as the server's user, mapped to 1000 inside; an escape would then land as
//!   the server's user, which is the price of not running as root.
//! - **Filesystem.** A fresh root: the workspace bind-mounted read-write at `/workspace` (the
//!   working directory); `/usr` read-only, with `/bin`, `/lib*`, `/sbin` recreated as the host
//!   has them (symlinks into `/usr`, or read-only binds); from `/etc` only a fixed list of
//!   non-secret files that programs need to start, resolve names and verify TLS
//!   ([`ETC_FILES`]) — never `shadow`, never the host's `passwd`; a new `/proc` (this pid
//!   namespace only), a minimal `/dev`, and a private `/tmp` tmpfs sized like the memory
//!   limit. Everything else — `/root`, `/home`, `/work`, `/var`, the server's data directory,
//!   other agents' workspaces — does not exist inside. The root is remounted read-only.
//! - **Network.** [`NetworkPolicy::None`] gives a new network namespace with only a loopback
//!   of its own. [`NetworkPolicy::Open`] shares the host's network (including its loopback
//!   services — only choose it for trusted agents). [`NetworkPolicy::Allowlist`] has no
//!   per-host filter in this version and **fails closed: it is treated as `None`**.
//! - **Limits** ([`SandboxLimits`]), set with `ulimit` by a fixed wrapper script after the
//!   sandbox is built and before the command starts (this crate forbids `unsafe`, which rules
//!   out `pre_exec`): CPU seconds (`RLIMIT_CPU`: `SIGXCPU` at the limit, `SIGKILL` a second
//!   later), memory (`RLIMIT_DATA`, which counts heap and private anonymous mappings;
//!   `RLIMIT_AS` was rejected because Java, Node and Go reserve gigabytes of address space
//!   they never use and would not start under it), processes (`RLIMIT_NPROC`: since Linux
//!   5.14 it counts per user namespace, so it counts this sandbox's processes only — not the
//!   server's, whichever user it runs as; on older kernels a non-root server's own processes
//!   and threads would count too), core dumps off, and the wall clock: on timeout
//!   `bwrap` is killed; its pid-1 inside dies with it (`--die-with-parent`) and the kernel
//!   kills everything else in the pid namespace. No process outlives the command — including
//!   background jobs of a command that exits normally. CPU and memory limits are per process.
//! - **Environment.** The command sees only a fixed `PATH`, `HOME=/workspace`,
//!   `LANG=C.UTF-8`, `USER`/`LOGNAME`, `TMPDIR` and the request's variables (which may
//!   override those). `bwrap` itself gets an empty environment plus one variable carrying the
//!   quoted command, so nothing of the server's environment leaks in, nothing the user
//!   controls (such as `LD_PRELOAD`) affects `bwrap` on the host side, and neither the
//!   command nor its secrets appear in host-visible argv.
//! - **I/O.** stdin is `/dev/null`; stdout and stderr are each capped at
//!   `max_output_bytes` (keeping the first and last halves) while the rest is drained and
//!   discarded, so a flood costs no memory; the outcome says whether it was truncated.
//!
//! The command runs under `bash -c` when the host has bash, else `sh -c`.
//!
//! Not walled (residual risks): the kernel's own attack surface (user namespaces enlarge it;
//! there is no seccomp filter); disk usage of the workspace (no quota); total memory across
//! processes (limits are per process; cgroups would be needed, and `/tmp` is RAM); agents
//! whose keys hash to the same uid share a host uid (their workspaces are still separate
//! mounts); the shell can leave setuid-to-the-sandbox-uid files in the workspace, harmless
//! unless a host user runs them.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout_at;

use crate::workspace::{FsError, Workspace, effective_uid};

/// Read-only `/etc` entries bound into the sandbox when the host has them: the dynamic
/// loader's cache, Debian's alternatives symlinks, name resolution and TLS trust.
pub const ETC_FILES: &[&str] = &[
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/mime.types",
    "/etc/os-release",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/crypto-policies",
];
const PASSWD: &str = "sandbox:x:1000:1000:sandbox:/workspace:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Sets the limits (arguments: CPU soft, CPU hard, data KiB, processes), then runs the quoted
/// command from the environment. dash spells the process limit `-p`, bash `-u`.
const WRAPPER: &str = r#"ulimit -c 0 && ulimit -St "$1" && ulimit -Ht "$2" && ulimit -d "$3" && { ulimit -u "$4" 2>/dev/null || ulimit -p "$4"; } || { echo "steward sandbox: could not apply the resource limits" >&2; exit 125; }
eval "$STEWARD_SANDBOX_EXEC""#;
const EXEC_VAR: &str = "STEWARD_SANDBOX_EXEC";
/// Under the kernel's 128 KiB limit for one environment string.
const MAX_EXEC_BYTES: usize = 120 * 1024;
/// Derived uids are `uid_base + hash % UID_SPAN`.
const UID_SPAN: u32 = 50_000;
/// How long output is still read after the wall clock, and the namespace waited for.
const GRACE: Duration = Duration::from_secs(3);

/// Which network the command gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkPolicy {
    /// A private network namespace with nothing but its own loopback.
    None,
    /// Meant to allow only these hosts. The shell has no per-host filter in this version, so
    /// this **fails closed and behaves exactly like `None`**.
    Allowlist(Vec<String>),
    /// The host's network, loopback included.
    Open,
}

/// Resource limits for one command.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// CPU time per process (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
    /// Heap and anonymous memory per process (`RLIMIT_DATA`); also the size of `/tmp`.
    pub memory_bytes: u64,
    /// Processes and threads in the sandbox (`RLIMIT_NPROC`, counted per user namespace).
    pub max_processes: u64,
    /// After this the whole sandbox is killed.
    pub wall_clock: Duration,
    /// Cap on each of stdout and stderr.
    pub max_output_bytes: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            cpu_seconds: 10,
            memory_bytes: 512 << 20,
            max_processes: 64,
            wall_clock: Duration::from_secs(30),
            max_output_bytes: 64 << 10,
        }
    }
}

/// How to build sandboxes on this host; built once at start.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The `bwrap` executable.
    pub bwrap: PathBuf,
    /// When the server runs as root, commands run as host uid/gid
    /// `uid_base + fnv1a(agent_key) % 50_000`; pick a range no real user or subuid range uses.
    pub uid_base: u32,
}

impl Default for SandboxConfig {
    /// `bwrap` from the server's `PATH` (read here, once), uids from 200 000.
    fn default() -> Self {
        let on_path =
            std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("bwrap")).find(|p| p.is_file()));
        Self { bwrap: on_path.unwrap_or_else(|| PathBuf::from("/usr/bin/bwrap")), uid_base: 200_000 }
    }
}

/// One command to run.
#[derive(Debug, Clone, Copy)]
pub struct ShellRequest<'a> {
    /// Stable identity of the agent; selects the host uid when the server is root.
    pub agent_key: &'a str,
    pub command: &'a str,
    /// Extra environment; names must be shell identifiers.
    pub env: &'a BTreeMap<String, String>,
    pub limits: &'a SandboxLimits,
    pub network: &'a NetworkPolicy,
}

/// What a command did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShellOutcome {
    /// The exit status, when the command exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended the command. Inferred from the shell convention (status 128 + n),
    /// so a command that itself runs `exit 137` also reads as signal 9; 9 after a timeout.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Some output was left out (see [`SandboxLimits::max_output_bytes`]).
    pub truncated: bool,
    pub timed_out: bool,
    pub duration_ms: u64,
    /// The limit that most likely ended or cut the command: `wall_clock`, `cpu_seconds`,
    /// `memory_bytes`, `max_processes` or `max_output_bytes`. A best guess from signals and
    /// error messages, for the model's benefit; `None` when nothing points to one.
    pub limit_hit: Option<String>,
}

/// Why a command could not be run at all (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// `bwrap` is missing or cannot create namespaces on this host.
    #[error("the shell sandbox is unavailable: {0}")]
    Unavailable(String),
    /// The request cannot be run as given.
    #[error("{0}")]
    BadRequest(String),
    /// The sandbox could not be built for this workspace.
    #[error("the shell sandbox could not be set up: {0}")]
    Setup(String),
    #[error(transparent)]
    Workspace(#[from] FsError),
}

/// The host uid (and gid) an agent's commands run as when the server is root.
pub fn sandbox_uid(config: &SandboxConfig, agent_key: &str) -> u32 {
    let hash = agent_key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    config.uid_base.saturating_add((hash % u64::from(UID_SPAN)) as u32)
}

/// Whether sandboxes can be built here: runs `true` in one. The error says how to fix it.
pub fn check(config: &SandboxConfig) -> Result<(), String> {
    let mut cmd = std::process::Command::new(&config.bwrap);
    cmd.args(bwrap_args(None, &NetworkPolicy::None, &SandboxLimits::default())).arg("true");
    cmd.env_clear().stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    if effective_uid() == 0 {
        check_uid_base(config)?;
        use std::os::unix::process::CommandExt;
        cmd.uid(config.uid_base).gid(config.uid_base);
    }
    let output = cmd.output().map_err(|e| unavailable(config, &e))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "bubblewrap at `{}` could not create a sandbox here ({}). It needs unprivileged user namespaces: \
         `sysctl user.max_user_namespaces` must be above 0, older Debian kernels need `kernel.unprivileged_userns_clone=1`, \
         and Ubuntu 24.04+ needs `kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile for bwrap",
        config.bwrap.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// Runs `req.command` in `workspace`'s sandbox. `Err` means it could not be run; a command
/// that fails, times out or hits a limit is an `Ok` outcome saying so.
pub async fn run_shell(config: &SandboxConfig, workspace: &Workspace, req: &ShellRequest<'_>) -> Result<ShellOutcome, SandboxError> {
    let exec = exec_script(req)?;
    let limits = req.limits;
    let run_as = if effective_uid() == 0 { Some(prepare_for_uid(config, workspace, req.agent_key).await?) } else { None };

    let mut cmd = tokio::process::Command::new(&config.bwrap);
    cmd.args(bwrap_args(Some(workspace.root()), req.network, limits));
    cmd.args(wrapper_args(limits));
    cmd.env_clear().env(EXEC_VAR, exec);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // Dropping the future (a cancelled run) kills bwrap, and with it the whole sandbox.
    cmd.kill_on_drop(true).process_group(0);
    if let Some(uid) = run_as {
        cmd.uid(uid).gid(uid);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| SandboxError::Unavailable(unavailable(config, &e)))?;
    if let Some(mut stdin) = child.stdin.take() {
        // bwrap reads this for /etc/passwd (`--ro-bind-data 0`); tiny, so it never blocks.
        let _ = stdin.write_all(PASSWD.as_bytes()).await;
    }
    let deadline = tokio::time::Instant::from_std(started + limits.wall_clock + GRACE);
    let stdout = collect(child.stdout.take(), limits.max_output_bytes, deadline);
    let stderr = collect(child.stderr.take(), limits.max_output_bytes, deadline);
    let waited = async {
        match tokio::time::timeout(limits.wall_clock, child.wait()).await {
            Ok(status) => (status, false),
            Err(_) => {
                let inner = inner_init(child.id());
                let _ = child.start_kill();
                let status = child.wait().await;
                wait_gone(inner).await;
                (status, true)
            }
        }
    };
    let (stdout, stderr, (status, timed_out)) = tokio::join!(stdout, stderr, waited);
    let status = status.map_err(|e| SandboxError::Setup(format!("could not wait for bwrap: {e}")))?;
    outcome(status, timed_out, stdout.finish(), stderr.finish(), started.elapsed())
}

/// Reads bwrap's exit status: a setup failure of bwrap or the wrapper is an error; anything
/// else is the command's outcome.
fn outcome(status: ExitStatus, timed_out: bool, stdout: Captured, stderr: Captured, took: Duration) -> Result<ShellOutcome, SandboxError> {
    let code = status.code();
    let bwrap_failed = code == Some(1) && stderr.text.starts_with("bwrap: ");
    let wrapper_failed = code == Some(125) && stderr.text.starts_with("steward sandbox:");
    if !timed_out && (bwrap_failed || wrapper_failed) {
        return Err(SandboxError::Setup(stderr.text.trim().to_owned()));
    }
    let (exit_code, signal) = match code {
        _ if timed_out => (None, Some(libc::SIGKILL)),
        Some(c) if (129..=128 + 31).contains(&c) => (None, Some(c - 128)),
        Some(c) => (Some(c), None),
        None => (None, status.signal()),
    };
    let truncated = stdout.truncated || stderr.truncated;
    let limit_hit = limit_hit(timed_out, signal, exit_code, &stderr.text, truncated).map(str::to_owned);
    Ok(ShellOutcome {
        exit_code,
        signal,
        stdout: stdout.text,
        stderr: stderr.text,
        truncated,
        timed_out,
        duration_ms: took.as_millis() as u64,
        limit_hit,
    })
}

/// As root: the agent's uid, after making sure it owns the workspace and can reach it.
async fn prepare_for_uid(config: &SandboxConfig, workspace: &Workspace, agent_key: &str) -> Result<u32, SandboxError> {
    check_uid_base(config).map_err(SandboxError::Setup)?;
    let uid = sandbox_uid(config, agent_key);
    for dir in workspace.root().ancestors().skip(1) {
        let mode = std::fs::metadata(dir).map(|m| m.mode()).unwrap_or(0);
        if mode & 0o001 == 0 {
            return Err(SandboxError::Setup(format!(
                "commands run as uid {uid}, which cannot reach the workspace because `{}` is not searchable by other users; \
                 run `chmod o+x {}` or keep workspaces under a directory with mode 0711 or 0755",
                dir.display(),
                dir.display()
            )));
        }
    }
    let ws = workspace.clone();
    tokio::task::spawn_blocking(move || ws.ensure_owner(uid, uid))
        .await
        .map_err(|e| SandboxError::Setup(format!("could not give the workspace to uid {uid}: {e}")))??;
    Ok(uid)
}

fn check_uid_base(config: &SandboxConfig) -> Result<(), String> {
    let max = u32::MAX - 2 * UID_SPAN;
    if (1000..=max).contains(&config.uid_base) {
        return Ok(());
    }
    Err(format!("uid_base {} is out of range; choose a base of unused uids between 1000 and {max}, e.g. 200000", config.uid_base))
}

/// The `bwrap` options: namespaces, mounts and working directory. `None` for the workspace
/// mounts an empty tmpfs there (used by [`check`]).
fn bwrap_args(workspace: Option<&Path>, network: &NetworkPolicy, limits: &SandboxLimits) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"]);
    if *network == NetworkPolicy::Open {
        push(&["--share-net"]);
    }
    push(&["--uid", "1000", "--gid", "1000", "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]);
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::symlink_metadata(top) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(top) {
                    args.extend(["--symlink".into(), target.into_os_string(), top.into()]);
                }
            }
            Ok(m) if m.is_dir() => args.extend(["--ro-bind", top, top].map(OsString::from)),
            _ => {}
        }
    }
    for etc in ETC_FILES {
        args.extend(["--ro-bind-try", etc, etc].map(OsString::from));
    }
    let tmp_size = limits.memory_bytes.max(1 << 20).to_string();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["--ro-bind-data", "0", "/etc/passwd", "--proc", "/proc", "--dev", "/dev", "--size", &tmp_size, "--tmpfs", "/tmp"]);
    match workspace {
        Some(root) => args.extend(["--bind".into(), root.as_os_str().to_owned(), "/workspace".into()]),
        None => args.extend(["--tmpfs", "/workspace"].map(OsString::from)),
    }
    args.extend(["--chdir", "/workspace", "--remount-ro", "/", "--"].map(OsString::from));
    args
}

/// `sh -c WRAPPER` and the wrapper's limit arguments.
fn wrapper_args(limits: &SandboxLimits) -> Vec<String> {
    let cpu = limits.cpu_seconds.max(1);
    let data_kib = (limits.memory_bytes / 1024).max(1);
    let procs = limits.max_processes.max(1);
    ["/bin/sh", "-c", WRAPPER, "steward-sandbox"]
        .into_iter()
        .map(str::to_owned)
        .chain([cpu, cpu + 1, data_kib, procs].map(|n| n.to_string()))
        .collect()
}

/// The shell text the wrapper evals: replace itself with the command under a clean env.
fn exec_script(req: &ShellRequest<'_>) -> Result<String, SandboxError> {
    if req.command.contains('\0') {
        return Err(SandboxError::BadRequest("the command contains a NUL byte; remove it".into()));
    }
    if req.command.trim().is_empty() {
        return Err(SandboxError::BadRequest("the command is empty; pass a shell command such as `ls -la`".into()));
    }
    let mut vars = vec![
        format!("PATH={PATH}"),
        "HOME=/workspace".to_owned(),
        "LANG=C.UTF-8".to_owned(),
        "USER=sandbox".to_owned(),
        "LOGNAME=sandbox".to_owned(),
        "TMPDIR=/tmp".to_owned(),
    ];
    for (name, value) in req.env {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            let shown: String = name.chars().take(64).flat_map(char::escape_default).collect();
            return Err(SandboxError::BadRequest(format!(
                "`{shown}` is not a valid environment variable name; use letters, digits and `_`, not starting with a digit"
            )));
        }
        if value.contains('\0') {
            return Err(SandboxError::BadRequest(format!("the value of `{name}` contains a NUL byte; remove it")));
        }
        vars.push(format!("{name}={value}"));
    }
    let shell = if Path::new("/bin/bash").exists() { "/bin/bash" } else { "/bin/sh" };
    let mut script = String::from("exec /usr/bin/env -i");
    for var in &vars {
        script.push(' ');
        script.push_str(&quote(var));
    }
    script.push_str(&format!(" {shell} -c {} </dev/null", quote(req.command)));
    if script.len() > MAX_EXEC_BYTES {
        return Err(SandboxError::BadRequest(format!(
            "the command and its environment are {} KiB together, over the {} KiB limit; put long scripts in a workspace file and run that",
            script.len() / 1024,
            MAX_EXEC_BYTES / 1024
        )));
    }
    Ok(script)
}

/// Single-quotes `s` for sh: the only character needing care is `'` itself.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'\''"#))
}

/// Output kept from one stream: the first half of the cap, and a ring of the last half.
struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    cap: usize,
    total: usize,
}

struct Captured {
    text: String,
    truncated: bool,
}

/// Reads a stream to its end (or `deadline`), keeping at most `cap` bytes of it.
async fn collect(reader: Option<impl AsyncRead + Unpin>, cap: usize, deadline: tokio::time::Instant) -> Capture {
    let mut capture = Capture { head: Vec::new(), tail: VecDeque::new(), cap, total: 0 };
    let Some(mut reader) = reader else { return capture };
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(Ok(n @ 1..)) = timeout_at(deadline, reader.read(&mut buf)).await {
        capture.push(&buf[..n]);
    }
    capture
}

impl Capture {
    fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len();
        let head_cap = self.cap - self.cap / 2;
        let into_head = bytes.len().min(head_cap - self.head.len());
        self.head.extend_from_slice(&bytes[..into_head]);
        bytes = &bytes[into_head..];
        let tail_cap = self.cap / 2;
        if bytes.len() >= tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - tail_cap..]);
        } else {
            let overflow = (self.tail.len() + bytes.len()).saturating_sub(tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(bytes);
        }
    }

    fn finish(self) -> Captured {
        let kept = self.head.len() + self.tail.len();
        let truncated = self.total > kept;
        let mut bytes = self.head;
        if truncated {
            bytes.extend_from_slice(format!("\n[… {} bytes of output omitted …]\n", self.total - kept).as_bytes());
        }
        bytes.extend(self.tail);
        Captured { text: String::from_utf8_lossy(&bytes).into_owned(), truncated }
    }
}

/// The sandbox's pid 1 (bwrap's child), so that a kill can wait for the namespace to end.
fn inner_init(bwrap: Option<u32>) -> Option<u32> {
    let pid = bwrap?;
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Waits (briefly) until `pid` has left `/proc`: the kernel reaps the pid namespace's other
/// processes before its init is gone.
async fn wait_gone(pid: Option<u32>) {
    let Some(pid) = pid else { return };
    let until = Instant::now() + GRACE;
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn limit_hit(timed_out: bool, signal: Option<i32>, exit_code: Option<i32>, stderr: &str, truncated: bool) -> Option<&'static str> {
    let failed = signal.is_some() || exit_code.is_some_and(|c| c != 0);
    const MEMORY: &[&str] =
        &["MemoryError", "Cannot allocate memory", "memory exhausted", "out of memory", "bad_alloc", "failed to allocate"];
    if timed_out {
        Some("wall_clock")
    } else if signal == Some(libc::SIGXCPU) {
        Some("cpu_seconds")
    } else if failed && MEMORY.iter().any(|m| stderr.contains(m)) {
        Some("memory_bytes")
    } else if ["fork: retry", "Cannot fork", "fork: Resource temporarily"].iter().any(|m| stderr.contains(m)) {
        // Even when bash's retries finally succeed, the limit did bite.
        Some("max_processes")
    } else if truncated {
        Some("max_output_bytes")
    } else {
        None
    }
}

fn unavailable(config: &SandboxConfig, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!(
            "bubblewrap was not found at `{}`; install the Debian package `bubblewrap` (`apt-get install bubblewrap`) or point the sandbox's bwrap path at it",
            config.bwrap.display()
        )
    } else {
        format!("could not start bubblewrap at `{}`: {e}", config.bwrap.display())
    }
}
