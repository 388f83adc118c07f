//! The `crypto-operator` command line: `serve`, `command`, `clients`. Every
//! flag can also be set through the environment variable named in its help.

mod command;
mod duration;
mod logging;
mod serve;

pub use duration::parse_duration;
pub use logging::LogFormat;

use clap::{Parser, Subcommand};

/// Control plane for fleets of external crypto clients.
#[derive(Debug, Parser)]
#[command(name = "crypto-operator", version, about)]
pub struct Cli {
    /// Log format: `text` for people, `json` for machines.
    #[arg(long, env = "CRYPTO_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or
    /// `crypto_operator=debug`.
    #[arg(long, env = "CRYPTO_LOG", default_value = "info", global = true)]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the operator: gRPC server and HTTP port (metrics, health).
    Serve(Box<serve::ServeArgs>),
    /// Send a command to a connected client.
    Command(command::CommandArgs),
    /// List connected clients.
    Clients(command::ClientsArgs),
    /// Print the CryptoClient CustomResourceDefinition as YAML.
    Crd,
    /// Read a client token on stdin and print its argon2id hash for the
    /// standalone tokens file (`client-id: <hash>`).
    HashToken,
}

/// Runs the parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    logging::init(cli.log_format, &cli.log);
    let result = match cli.command {
        Cmd::Serve(args) => serve::run(*args).await,
        Cmd::Command(args) => command::run_command(args).await,
        Cmd::Clients(args) => command::run_clients(args).await,
        Cmd::HashToken => hash_token(),
        Cmd::Crd => crate::crd::crd_yaml()
            .map(|y| print!("{y}"))
            .map_err(Into::into),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn hash_token() -> Result<(), Box<dyn std::error::Error>> {
    let mut token = String::new();
    std::io::stdin().read_line(&mut token)?;
    let token = token.trim();
    if token.len() < 16 {
        return Err("the token must be at least 16 characters (use a random one, e.g. `openssl rand -hex 32`)".into());
    }
    println!("{}", crate::auth::hash_token(token)?);
    Ok(())
}
