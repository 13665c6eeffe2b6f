//! The `steward` binary: `steward serve` runs the HTTP API, `steward admin …` works on the
//! store directly, every other subcommand is an API client (see `client/`).

mod admin;
mod client;
mod settings;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: glibc's `malloc`/`free` were about a sixth of the
/// server's time in the runtime benchmark's profile (many small, short-lived allocations on
/// several threads).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Steward: a self-hostable platform for running LLM agents.
///
/// Start a server with `steward serve`, get a key with `steward admin create-account --email you@example.com`,
/// then use the client commands (or `steward login` with an emailed code).
#[derive(Debug, Parser)]
#[command(name = "steward", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: client::GlobalOpts,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API server.
    Serve(settings::ServeArgs),
    /// Administrative commands that work on the store directly (the server may be running).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    #[command(flatten)]
    Client(client::Command),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // One TLS stack (rustls with ring) for every client in the process: HTTPS, SMTP, PostgreSQL.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => settings::serve(args).await,
            Command::Admin(cmd) => admin::run(cmd).await,
            Command::Client(cmd) => client::run(cli.client, cmd).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
