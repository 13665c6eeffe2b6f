//! The shell sandbox's walls, each proven against the real `bwrap` on this host: filesystem,
//! network, limits, environment and process lifetime. Needs bubblewrap (Debian package
//! `bubblewrap`) and unprivileged user namespaces; `check_passes_on_this_host` says if not.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use steward_runtime::sandbox::{
    NetworkPolicy, SandboxConfig, SandboxError, SandboxLimits, ShellOutcome, ShellRequest, check, run_shell, sandbox_uid,
};
use steward_runtime::workspace::Workspace;

/// A temporary directory holding a workspace, reachable by the sandbox's uid as a real data
/// directory would be.
fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let ws = Workspace::open(&dir.path().join("workspace")).unwrap();
    (dir, ws)
}

async fn run_with(ws: &Workspace, agent: &str, command: &str, limits: &SandboxLimits, network: &NetworkPolicy) -> ShellOutcome {
    let env = BTreeMap::new();
    let req = ShellRequest { agent_key: agent, command, env: &env, limits, network };
    run_shell(&SandboxConfig::default(), ws, &req).await.unwrap()
}

async fn run(ws: &Workspace, command: &str) -> ShellOutcome {
    run_with(ws, "agent-default", command, &SandboxLimits::default(), &NetworkPolicy::None).await
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Processes still alive whose command line contains `marker`, or (when the server is root)
/// that run as `uid`.
fn survivors(marker: &str, uid: Option<u32>) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let by_marker = String::from_utf8_lossy(&cmdline).contains(marker);
        let by_uid = uid.is_some_and(|uid| entry.metadata().is_ok_and(|m| m.uid() == uid));
        let zombie = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| s.contains(") Z "));
        if (by_marker || by_uid) && !zombie {
            found.push(format!("{name}: {}", String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    found
}

/// Polls `survivors` for up to two seconds (the kernel tears a pid namespace down
/// asynchronously after its init is killed).
async fn assert_no_survivors(marker: &str, uid: Option<u32>) {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let left = survivors(marker, uid);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < until, "processes survived the sandbox: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn check_passes_on_this_host() {
    check(&SandboxConfig::default()).unwrap();
}

#[tokio::test]
async fn a_missing_bwrap_is_reported_with_the_fix() {
    let config = SandboxConfig { bwrap: "/nonexistent/bwrap".into(), ..SandboxConfig::default() };
    assert!(check(&config).unwrap_err().contains("bubblewrap"));
    let (_dir, ws) = workspace();
    let env = BTreeMap::new();
    let req = ShellRequest { agent_key: "a", command: "true", env: &env, limits: &SandboxLimits::default(), network: &NetworkPolicy::None };
    let err = run_shell(&config, &ws, &req).await.unwrap_err();
    assert!(matches!(err, SandboxError::Unavailable(_)) && err.to_string().contains("apt-get install bubblewrap"), "{err}");
}

#[tokio::test]
async fn exit_code_stdout_and_stderr_are_reported_and_stdin_is_empty() {
    let (_dir, ws) = workspace();
    let out = run(&ws, "echo out; echo err >&2; cat; readlink /proc/self/fd/0 >&2; exit 3").await;
    assert_eq!((out.exit_code, out.signal, out.timed_out, out.truncated), (Some(3), None, false, false));
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n/dev/null\n");
    assert_eq!(out.limit_hit, None);
    let out = run(&ws, "pwd; id -u; whoami; echo $HOME").await;
    assert_eq!(out.stdout, "/workspace\n1000\nsandbox\n/workspace\n");
}

#[tokio::test]
async fn host_secrets_and_directories_are_not_visible() {
    let (dir, ws) = workspace();
    let secret = dir.path().join("data/secret.txt");
    std::fs::create_dir_all(secret.parent().unwrap()).unwrap();
    std::fs::write(&secret, "host secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let probes = [
        "cat /etc/shadow".to_owned(),
        format!("cat {}", secret.display()),
        format!("ls {}", dir.path().display()),
        "cat ../data/secret.txt".to_owned(),
        "ls /root".to_owned(),
        "ls /home".to_owned(),
        "ls /work".to_owned(),
        "ls /var".to_owned(),
        "grep -q root /etc/passwd".to_owned(),
    ];
    for probe in probes {
        let out = run(&ws, &probe).await;
        assert_ne!(out.exit_code, Some(0), "`{probe}` succeeded inside the sandbox: {out:?}");
        assert!(!out.stdout.contains("host secret"), "`{probe}` leaked: {out:?}");
    }
}

#[tokio::test]
async fn only_the_workspace_and_tmp_are_writable() {
    let (_dir, ws) = workspace();
    for probe in ["touch /usr/x", "touch /tmp/../etc/x", "touch /etc/passwd", "touch /x", "mkdir /opt", "touch /bin/x"] {
        let out = run(&ws, probe).await;
        assert_ne!(out.exit_code, Some(0), "`{probe}` succeeded inside the sandbox");
    }
    assert!(!Path::new("/etc/x").exists() && !Path::new("/usr/x").exists());

    let out = run(&ws, "echo made-inside > /workspace/out.txt && mkdir -p sub && echo x > sub/y && echo t > /tmp/t && cat /tmp/t").await;
    assert_eq!((out.exit_code, out.stdout.as_str()), (Some(0), "t\n"), "{out:?}");
    assert_eq!(std::fs::read_to_string(ws.root().join("out.txt")).unwrap(), "made-inside\n");
    assert_eq!(ws.read("sub/y", 10).await.unwrap(), b"x\n");
    // /tmp is private to each command.
    assert_ne!(run(&ws, "cat /tmp/t").await.exit_code, Some(0));
}

#[tokio::test]
async fn files_written_by_the_api_are_editable_by_the_shell() {
    let (_dir, ws) = workspace();
    ws.write("notes/todo.md", b"one\n").await.unwrap();
    let out = run(&ws, "echo two >> notes/todo.md && touch notes/new").await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(ws.read("notes/todo.md", 100).await.unwrap(), b"one\ntwo\n");
    if is_root() {
        let uid = sandbox_uid(&SandboxConfig::default(), "agent-default");
        assert_eq!(std::fs::metadata(ws.root().join("notes/new")).unwrap().uid(), uid, "not run as the derived uid");
    }
}

#[tokio::test]
async fn network_none_cannot_reach_the_hosts_loopback() {
    let (_dir, ws) = workspace();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let command = format!("echo hi > /dev/tcp/127.0.0.1/{port}");
    for policy in [NetworkPolicy::None, NetworkPolicy::Allowlist(vec!["127.0.0.1".into(), "example.com".into()])] {
        let out = run_with(&ws, "agent-net", &command, &SandboxLimits::default(), &policy).await;
        assert_ne!(out.exit_code, Some(0), "{policy:?} reached the host: {out:?}");
        assert!(out.stderr.contains("Connection refused") || out.stderr.contains("unreachable"), "{out:?}");
    }
}

#[tokio::test]
async fn network_open_reaches_the_hosts_loopback() {
    let (_dir, ws) = workspace();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        got
    });
    let out =
        run_with(&ws, "agent-net", &format!("echo hi > /dev/tcp/127.0.0.1/{port}"), &SandboxLimits::default(), &NetworkPolicy::Open).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(accept.join().unwrap(), "hi\n");
}

#[tokio::test]
async fn the_servers_environment_does_not_leak() {
    // Setting a variable in this process needs `unsafe` (forbidden here), so the real check
    // runs in a copy of this test binary started with the secret in its environment.
    if std::env::var_os("STEWARD_SECRET_TEST").is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "the_servers_environment_does_not_leak", "--quiet"])
            .env("STEWARD_SECRET_TEST", "hunter2-from-the-server")
            .status()
            .unwrap();
        assert!(status.success(), "the check in the child test process failed");
        return;
    }
    let (_dir, ws) = workspace();
    let env = BTreeMap::from([("GIVEN".to_owned(), "it's $(touch pwned) \"quoted\"\nline2".to_owned())]);
    let req = ShellRequest {
        agent_key: "agent-env",
        command: "env",
        env: &env,
        limits: &SandboxLimits::default(),
        network: &NetworkPolicy::None,
    };
    let out = run_shell(&SandboxConfig::default(), &ws, &req).await.unwrap();
    assert!(!out.stdout.contains("hunter2") && !out.stdout.contains("STEWARD"), "{}", out.stdout);
    assert!(out.stdout.contains("GIVEN=it's $(touch pwned) \"quoted\"\nline2\n"), "{}", out.stdout);
    assert!(out.stdout.contains("HOME=/workspace\n") && out.stdout.contains("PATH=/usr/local/sbin:"), "{}", out.stdout);
    assert!(!ws.root().join("pwned").exists());
    let names: Vec<_> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    for name in names {
        let expected = ["PATH", "HOME", "LANG", "USER", "LOGNAME", "TMPDIR", "GIVEN", "PWD", "SHLVL", "_"];
        assert!(expected.contains(&name), "unexpected variable {name} in {}", out.stdout);
    }
    let bad = BTreeMap::from([("NOT-VALID".to_owned(), "x".to_owned())]);
    let req = ShellRequest { env: &bad, ..req };
    assert!(matches!(run_shell(&SandboxConfig::default(), &ws, &req).await, Err(SandboxError::BadRequest(_))));
}

#[tokio::test]
async fn a_fork_bomb_ends_within_the_wall_clock_and_leaves_no_process() {
    let (_dir, ws) = workspace();
    let agent = "agent-fork-bomb";
    let uid = is_root().then(|| sandbox_uid(&SandboxConfig::default(), agent));
    let limits = SandboxLimits { wall_clock: Duration::from_secs(3), ..SandboxLimits::default() };
    // The classic bomb returns at once; its children keep forking until the sandbox dies.
    let out = run_with(&ws, agent, ":(){ :|:& };: # bomb-marker-1", &limits, &NetworkPolicy::None).await;
    assert!(out.duration_ms < 5_000, "{out:?}");
    assert_no_survivors("bomb-marker-1", uid).await;
    // The same bomb with a shell that stays: only the wall clock ends it. Meanwhile the
    // bomb is visible to `survivors`, so an empty answer afterwards means something.
    let running = tokio::spawn({
        let (ws, limits) = (ws.clone(), limits.clone());
        async move { run_with(&ws, agent, ":(){ :|:& };:; sleep 60 # bomb-marker-2", &limits, &NetworkPolicy::None).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!survivors("bomb-marker-2", uid).is_empty(), "the bomb is not visible while it runs");
    let out = running.await.unwrap();
    assert!(out.timed_out && out.limit_hit.as_deref() == Some("wall_clock"), "{out:?}");
    assert!(out.duration_ms < 3_000 + 4_000, "{out:?}");
    assert_no_survivors("bomb-marker-2", uid).await;
}

#[tokio::test]
async fn the_process_limit_caps_forks() {
    let (_dir, ws) = workspace();
    // The forking loop runs in a subshell: under the limit, bash retries a failed fork with
    // growing sleeps and may give up (a child's SIGCHLD interrupts the retry: "fork:
    // Interrupted system call"), which ends that shell. The outer shell then counts what runs,
    // with builtins only (no fork).
    let limits = SandboxLimits { max_processes: 16, wall_clock: Duration::from_secs(90), ..SandboxLimits::default() };
    let command = "(for i in $(seq 24); do sleep 3 & done); procs=(/proc/[0-9]*); echo running=${#procs[@]}";
    let out = run_with(&ws, "agent-nproc", command, &limits, &NetworkPolicy::None).await;
    let running: usize =
        out.stdout.trim().strip_prefix("running=").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no process count: {out:?}"));
    assert!(running <= 16, "{running} processes ran under a limit of 16");
    assert!(out.stderr.contains("fork"), "{out:?}");
    assert_eq!(out.limit_hit.as_deref(), Some("max_processes"), "{out:?}");
}

#[tokio::test]
async fn background_jobs_die_with_the_command() {
    let (_dir, ws) = workspace();
    let uid = is_root().then(|| sandbox_uid(&SandboxConfig::default(), "agent-bg"));
    let out = run_with(&ws, "agent-bg", "sleep 77.0517 & echo left", &SandboxLimits::default(), &NetworkPolicy::None).await;
    assert_eq!((out.exit_code, out.stdout.as_str()), (Some(0), "left\n"), "{out:?}");
    assert_no_survivors("77.0517", uid).await;
}

#[tokio::test]
async fn a_busy_loop_stops_at_the_cpu_limit() {
    let (_dir, ws) = workspace();
    let limits = SandboxLimits { cpu_seconds: 1, wall_clock: Duration::from_secs(20), ..SandboxLimits::default() };
    let out = run_with(&ws, "agent-cpu", "while true; do :; done", &limits, &NetworkPolicy::None).await;
    assert!(!out.timed_out && out.duration_ms < 10_000, "{out:?}");
    assert_eq!((out.signal, out.limit_hit.as_deref()), (Some(libc::SIGXCPU), Some("cpu_seconds")), "{out:?}");
}

#[tokio::test]
async fn the_wall_clock_kills_a_sleeping_command() {
    let (_dir, ws) = workspace();
    let limits = SandboxLimits { wall_clock: Duration::from_millis(500), ..SandboxLimits::default() };
    let uid = is_root().then(|| sandbox_uid(&SandboxConfig::default(), "agent-wall"));
    let out = run_with(&ws, "agent-wall", "echo before; sleep 30.0517 & sleep 30.0518", &limits, &NetworkPolicy::None).await;
    assert!(out.timed_out && out.exit_code.is_none() && out.signal == Some(libc::SIGKILL), "{out:?}");
    assert_eq!((out.stdout.as_str(), out.limit_hit.as_deref()), ("before\n", Some("wall_clock")));
    assert!(out.duration_ms < 500 + 3_500, "{out:?}");
    assert_no_survivors("30.051", uid).await;
}

#[tokio::test]
async fn allocating_more_than_the_memory_limit_fails() {
    let (_dir, ws) = workspace();
    let limits = SandboxLimits { memory_bytes: 256 << 20, ..SandboxLimits::default() };
    let small = run_with(&ws, "agent-mem", "head -c 10M /dev/zero | tail -c 5M | wc -c", &limits, &NetworkPolicy::None).await;
    assert_eq!(small.stdout.trim(), "5242880", "{small:?}");
    let big = run_with(&ws, "agent-mem", "head -c 1G /dev/zero | tail -c 600M > /dev/null", &limits, &NetworkPolicy::None).await;
    assert_ne!(big.exit_code, Some(0), "{big:?}");
    assert_eq!(big.limit_hit.as_deref(), Some("memory_bytes"), "{big:?}");
    if Path::new("/usr/bin/python3").exists() {
        let py = run_with(&ws, "agent-mem", "python3 -c 'b = bytearray(2 << 30)'", &limits, &NetworkPolicy::None).await;
        assert!(py.exit_code == Some(1) && py.stderr.contains("MemoryError"), "{py:?}");
    }
}

#[tokio::test]
async fn an_output_flood_is_capped_and_flagged() {
    let (_dir, ws) = workspace();
    let limits = SandboxLimits { wall_clock: Duration::from_secs(2), max_output_bytes: 64 << 10, ..SandboxLimits::default() };
    let out = run_with(&ws, "agent-flood", "yes", &limits, &NetworkPolicy::None).await;
    assert!(out.truncated && out.timed_out, "{:?}", (out.truncated, out.timed_out, out.stdout.len()));
    assert!(out.stdout.len() <= (64 << 10) + 100 && out.stdout.starts_with("y\ny\n"), "{}", out.stdout.len());
    assert!(out.stdout.contains("bytes of output omitted"));

    let out = run_with(&ws, "agent-flood", "head -c 200000 /dev/zero | tr '\\0' a; echo; echo END", &limits, &NetworkPolicy::None).await;
    assert!(out.truncated && !out.timed_out && out.exit_code == Some(0), "{:?}", (out.truncated, out.timed_out));
    assert!(out.stdout.starts_with("aaaa") && out.stdout.ends_with("a\nEND\n"), "head and tail are both kept");
    assert!(out.stdout.contains(&format!("[… {} bytes of output omitted …]", 200_005 - (64 << 10))), "{}", &out.stdout[32760..32820]);
    assert_eq!(out.limit_hit.as_deref(), Some("max_output_bytes"));
}

/// The server need not be root: as an ordinary user, bwrap runs as that user and the limits
/// still hold (RLIMIT_NPROC counts per user namespace, not the user's other processes).
#[tokio::test]
async fn works_when_the_server_is_not_root() {
    if let Some(dir) = std::env::var_os("STEWARD_TEST_NON_ROOT_DIR") {
        let ws = Workspace::open(&Path::new(&dir).join("workspace")).unwrap();
        ws.write("hello.txt", b"hi").await.unwrap();
        let out = run(&ws, "cat hello.txt; id -u; echo made > made.txt").await;
        assert_eq!((out.exit_code, out.stdout.as_str()), (Some(0), "hi1000\n"), "{out:?}");
        assert_eq!(ws.read("made.txt", 10).await.unwrap(), b"made\n");
        let limits = SandboxLimits { max_processes: 16, wall_clock: Duration::from_secs(3), ..SandboxLimits::default() };
        // The server user's own processes do not count against the sandbox's process limit...
        let mut own: Vec<_> = (0..30).map(|_| std::process::Command::new("sleep").arg("30").spawn().unwrap()).collect();
        let out =
            run_with(&ws, "agent-non-root", "for i in 1 2 3 4 5 6; do sleep 0.2 & done; wait; echo ok", &limits, &NetworkPolicy::None)
                .await;
        own.iter_mut().for_each(|child| child.kill().unwrap());
        own.iter_mut().for_each(|child| drop(child.wait()));
        assert_eq!((out.exit_code, out.stdout.as_str()), (Some(0), "ok\n"), "{out:?}");
        // ...but the sandbox's own are capped.
        let patient = SandboxLimits { wall_clock: Duration::from_secs(20), ..limits.clone() };
        let out =
            run_with(&ws, "agent-non-root", "for i in $(seq 40); do sleep 1 & done; echo started", &patient, &NetworkPolicy::None).await;
        assert_eq!(out.limit_hit.as_deref(), Some("max_processes"), "{out:?}");
        let out = run_with(&ws, "agent-non-root", ":(){ :|:& };:; sleep 60 # bomb-marker-non-root", &limits, &NetworkPolicy::None).await;
        assert!(out.timed_out, "{out:?}");
        assert_no_survivors("bomb-marker-non-root", None).await;
        // A failure to build the sandbox is an error, with bwrap's reason.
        std::fs::rename(ws.root(), Path::new(&dir).join("moved")).unwrap();
        let env = BTreeMap::new();
        let req = ShellRequest { agent_key: "a", command: "true", env: &env, limits: &limits, network: &NetworkPolicy::None };
        match run_shell(&SandboxConfig::default(), &ws, &req).await {
            Err(SandboxError::Setup(msg)) => assert!(msg.contains("bwrap: Can't find source path"), "{msg}"),
            other => panic!("expected a setup error, got {other:?}"),
        }
        return;
    }
    if !is_root() {
        eprintln!("skipped: already not root (the other tests cover this mode)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let user = 54_321;
    std::os::unix::fs::chown(dir.path(), Some(user), Some(user)).unwrap();
    use std::os::unix::process::CommandExt;
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "works_when_the_server_is_not_root", "--quiet"])
        .env("STEWARD_TEST_NON_ROOT_DIR", dir.path())
        .uid(user)
        .gid(user)
        .status()
        .unwrap();
    assert!(status.success(), "the sandbox failed when run by an unprivileged user");
}

#[tokio::test]
async fn a_vanished_workspace_is_an_error_not_an_outcome() {
    let (_dir, ws) = workspace();
    std::fs::remove_dir(ws.root()).unwrap();
    let env = BTreeMap::new();
    let req = ShellRequest {
        agent_key: "agent-gone",
        command: "true",
        env: &env,
        limits: &SandboxLimits::default(),
        network: &NetworkPolicy::None,
    };
    let err = run_shell(&SandboxConfig::default(), &ws, &req).await.unwrap_err();
    assert!(matches!(err, SandboxError::Setup(_) | SandboxError::Workspace(_)), "{err:?}");
    eprintln!("{err}");
}
