//! The third-party test peers `scripts/test` installs (a Python venv with schemathesis, the MCP
//! SDK, aiosmtpd, standardwebhooks…; the npm MCP servers) and tells the tests about through the
//! environment. Without them a test is skipped loudly, unless `STEWARD_REQUIRE_PEERS=1` (which
//! `scripts/test` sets): then a missing peer fails it.

use std::path::Path;

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
