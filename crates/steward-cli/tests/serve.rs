//! `steward serve` as a process: configuration precedence (flags > env > file), the master key
//! created on first start, and two replicas on one PostgreSQL database with the admin bootstrap.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_steward");

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("steward-serve-test-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// A `steward` command with a clean environment (nothing inherited from the developer's shell).
fn steward(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("HOME", home).env("XDG_CONFIG_HOME", home.join("config"));
    c.env("XDG_DATA_HOME", home.join("data")).env("STEWARD_LOG", "warn");
    c
}

struct Server {
    child: Child,
    first_line: String,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` and waits (bounded) for its "listening on" line.
fn start(mut cmd: Command) -> Result<Server, String> {
    cmd.arg("--listen").arg("127.0.0.1:0").stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(Ok(l));
        }
    });
    std::thread::spawn(move || {
        let text: Vec<String> = BufReader::new(stderr).lines().map_while(Result::ok).collect();
        let _ = tx2.send(Err(text.join("\n")));
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(line)) if line.starts_with("steward listening on ") => {
                let url = line["steward listening on ".len()..].split_whitespace().next().unwrap().to_owned();
                return Ok(Server { child, first_line: line, url });
            }
            Ok(Ok(_)) => continue,
            Ok(Err(stderr)) => {
                let _ = child.kill();
                return Err(stderr);
            }
            Err(_) => {
                let _ = child.kill();
                return Err("timed out waiting for the server".into());
            }
        }
    }
}

#[test]
fn flags_beat_environment_beat_config_file() {
    let home = temp_dir();
    let (from_file, from_env, from_flag) = (home.join("file-dir"), home.join("env-dir"), home.join("flag-dir"));
    let config = home.join("steward.toml");
    std::fs::write(&config, format!("data_dir = {:?}\nsession_ttl_secs = 600\n", from_file.display().to_string())).unwrap();

    let mut c = steward(&home);
    c.args(["serve", "--config"]).arg(&config);
    let s = start(c).unwrap();
    assert!(s.first_line.contains(&from_file.display().to_string()), "{}", s.first_line);
    drop(s);
    // The master key was created on first start, readable only by its owner.
    let key = from_file.join("master.key");
    assert!(key.exists());
    #[cfg(unix)]
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions()) & 0o777, 0o600);

    let mut c = steward(&home);
    c.args(["serve", "--config"]).arg(&config).env("STEWARD_DATA_DIR", &from_env);
    let s = start(c).unwrap();
    assert!(s.first_line.contains(&from_env.display().to_string()), "{}", s.first_line);
    drop(s);

    let mut c = steward(&home);
    c.args(["serve", "--config"]).arg(&config).env("STEWARD_DATA_DIR", &from_env).arg("--data-dir").arg(&from_flag);
    let s = start(c).unwrap();
    assert!(s.first_line.contains(&from_flag.display().to_string()), "{}", s.first_line);
    drop(s);

    // A typo in the config file is an error that names the key, not a silent default.
    std::fs::write(&config, "data_dri = \"/tmp/x\"\n").unwrap();
    let mut c = steward(&home);
    c.args(["serve", "--config"]).arg(&config);
    let err = start(c).err().expect("a bad config must not start");
    assert!(err.contains("data_dri"), "{err}");
    let _ = std::fs::remove_dir_all(&home);
}

async fn pg_schema_url() -> Option<String> {
    let Ok(base) = std::env::var("STEWARD_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("STEWARD_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "STEWARD_REQUIRE_POSTGRES=1 but STEWARD_TEST_DATABASE_URL is not set"
        );
        eprintln!("SKIPPED: PostgreSQL replicas test (set STEWARD_TEST_DATABASE_URL)");
        return None;
    };
    sqlx::any::install_default_drivers();
    let schema = format!("steward_cli_{}", rand_suffix());
    let pool = sqlx::AnyPool::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&pool).await.unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

#[tokio::test]
async fn two_replicas_share_one_postgres_database() {
    let Some(url) = pg_schema_url().await else { return };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let home = temp_dir();
    let master = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let replica = |dir: &str| {
        let mut c = steward(&home);
        c.args(["serve", "--database-url", &url, "--data-dir"]).arg(home.join(dir)).env("STEWARD_MASTER_KEY", master);
        start(c).unwrap()
    };
    let a = replica("a");
    let b = replica("b");
    assert!(a.first_line.contains("PostgreSQL"), "{}", a.first_line);

    let out =
        steward(&home).args(["admin", "create-account", "--email", "ops@example.com", "--database-url", &url, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["api_key"].as_str().unwrap();
    assert!(key.starts_with("stw_"));

    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let body = serde_json::json!({"name": "support", "model": {"provider_id": "anthropic", "name": "claude-sonnet-4-6"}});
    let res = http.post(format!("{}/v1/agents", a.url)).bearer_auth(key).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let agent: serde_json::Value = res.json().await.unwrap();
    assert_eq!(agent["sandbox_id"], created["sandbox_id"]);
    // Replica B sees what A wrote.
    let res = http.get(format!("{}/v1/agents/{}", b.url, agent["id"].as_str().unwrap())).bearer_auth(key).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // Revoking on B is immediate on A.
    let res = http.post(format!("{}/v1/api_keys", b.url)).bearer_auth(key).json(&serde_json::json!({"name": "temp"})).send().await.unwrap();
    let temp: serde_json::Value = res.json().await.unwrap();
    let secret = temp["secret"].as_str().unwrap();
    assert_eq!(http.get(format!("{}/v1/agents", a.url)).bearer_auth(secret).send().await.unwrap().status(), 200);
    let res = http.post(format!("{}/v1/api_keys/{}/revoke", b.url, temp["id"].as_str().unwrap())).bearer_auth(key).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(http.get(format!("{}/v1/agents", a.url)).bearer_auth(secret).send().await.unwrap().status(), 401);
    drop((a, b));
    let _ = std::fs::remove_dir_all(&home);
}
