//! The third-party test peers `scripts/test` installs (a Python venv with schemathesis, the MCP
//! SDK, aiosmtpd, standardwebhooks…; the npm MCP servers) and tells the tests about through the
//! environment. Without them a test is skipped loudly, unless `STEWARD_REQUIRE_PEERS=1` (which
//! `scripts/test` sets): then a missing peer fails it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python of the peers' venv.
pub const PYTHON_VAR: &str = "STEWARD_TEST_PYTHON";
/// `node_modules/.bin` of the npm peers.
pub const NPM_BIN_VAR: &str = "STEWARD_TEST_NPM_BIN";
/// Set to `1` to make a missing peer a failure instead of a skip.
pub const REQUIRE_PEERS_VAR: &str = "STEWARD_REQUIRE_PEERS";

/// The value of `var`, or `None` after a note on stderr that the test is skipped (`why` says
/// what it needs). Panics when `var` is missing under `STEWARD_REQUIRE_PEERS=1`.
pub fn env(var: &str, why: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(v),
        Err(_) => {
            assert!(std::env::var(REQUIRE_PEERS_VAR).as_deref() != Ok("1"), "{REQUIRE_PEERS_VAR}=1 but {var} is not set");
            eprintln!("SKIPPED: {var} is not set: this test needs {why}; run the suite with scripts/test, which installs it");
            None
        }
    }
}

/// The Python of the peers' venv, which has every package of `scripts/test-peers.txt` (see [`env`]).
pub fn python() -> Option<String> {
    env(PYTHON_VAR, "a Python with the packages of scripts/test-peers.txt")
}

/// The npm peers' `node_modules/.bin` (see [`env`]).
pub fn npm_bin_dir() -> Option<String> {
    env(NPM_BIN_VAR, "the npm MCP servers")
}

/// The npm peer program `name`; a missing program under a set `STEWARD_TEST_NPM_BIN` fails.
pub fn npm_bin(name: &str) -> Option<String> {
    let dir = npm_bin_dir()?;
    let bin = Path::new(&dir).join(name);
    assert!(bin.exists(), "{} is missing; rerun scripts/test to reinstall the npm peers", bin.display());
    Some(bin.to_string_lossy().into_owned())
}

/// The reference MCP server `mcp-server-everything` (an npm peer) in streamable-HTTP mode,
/// listening on `http://127.0.0.1:<port>/mcp`; killed when dropped.
pub struct EverythingHttp {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
}

impl Drop for EverythingHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts [`EverythingHttp`] on a free port and waits (30 s at most) until it listens; `None`
/// when the npm peers are not installed (see [`npm_bin`]).
pub async fn everything_over_http() -> Option<EverythingHttp> {
    let bin = npm_bin("mcp-server-everything")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&bin)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mcp-server-everything streamableHttp");
    let server = EverythingHttp { child, port };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the HTTP MCP server did not listen on {port} within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(server)
}
