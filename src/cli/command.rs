//! `crypto-operator command` and `crypto-operator clients`: operator calls
//! against a running server over gRPC.

use super::parse_duration;
use crate::commands;
use crate::proto::crypto_streaming_service_client::CryptoStreamingServiceClient;
use crate::proto::{
    ExecuteCommandRequest, ListClientsRequest, SendCommandRequest, SessionState,
    server_command::Command,
};
use std::collections::HashMap;
use std::time::Duration;
use tonic::transport::Channel;

/// The command to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Verb {
    /// Round-trip probe.
    Ping,
    /// Stop work.
    Pause,
    /// Resume work.
    Resume,
    /// Re-read wallet balances.
    SyncWallets,
    /// Replace the configuration with the given key=value pairs.
    UpdateConfig,
}

/// Flags of `command`.
#[derive(Debug, clap::Args)]
pub struct CommandArgs {
    /// The connected client's id.
    pub client_id: String,
    /// What to send.
    pub verb: Verb,
    /// `key=value` pairs for update-config; wallet ids for sync-wallets.
    pub args: Vec<String>,
    /// Wait for the client's ack and print it.
    #[arg(long)]
    pub wait: bool,
    /// How long to wait for the ack (with --wait).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The operator's gRPC address.
    #[arg(long, env = "CRYPTO_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// The operator token, when the server requires one.
    #[arg(long, env = "CRYPTO_OPERATOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// How `clients` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table, one line per client.
    Table,
    /// `{"clients": [...]}`, each client in protobuf's JSON mapping (as
    /// the admin API and grpcurl print it).
    Json,
}

/// Which sessions `clients` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateFilter {
    /// Heartbeating on time.
    Connected,
    /// Missed heartbeats for stale_after.
    Stale,
}

/// Flags of `clients`.
#[derive(Debug, clap::Args)]
pub struct ClientsArgs {
    /// The operator's gRPC address.
    #[arg(long, env = "CRYPTO_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
    /// Only sessions in this state.
    #[arg(long, value_enum)]
    pub state: Option<StateFilter>,
    /// Only clients of this type (wallet-sync, trading-bot, price-feed, or
    /// a custom one).
    #[arg(long = "type")]
    pub client_type: Option<String>,
    /// Clients fetched per call (1-1000); every page is printed as it
    /// arrives.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
    /// The operator token, when the server requires one.
    #[arg(long, env = "CRYPTO_OPERATOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

fn body(verb: Verb, args: &[String]) -> Result<Command, String> {
    let no_args = |name: &str| {
        if args.is_empty() {
            Ok(())
        } else {
            Err(format!("{name} takes no arguments, got {args:?}"))
        }
    };
    Ok(match verb {
        Verb::Ping => {
            no_args("ping")?;
            commands::ping()
        }
        Verb::Pause => {
            no_args("pause")?;
            commands::pause("requested from the command line")
        }
        Verb::Resume => {
            no_args("resume")?;
            commands::resume()
        }
        Verb::SyncWallets => commands::sync_wallets(args.to_vec()),
        Verb::UpdateConfig => {
            let mut config = HashMap::new();
            for a in args {
                let (k, v) = a
                    .split_once('=')
                    .ok_or_else(|| format!("update-config arguments are key=value, got {a:?}"))?;
                if k.is_empty() {
                    return Err(format!("empty key in {a:?}"));
                }
                config.insert(k.to_owned(), v.to_owned());
            }
            commands::update_config(config)
        }
    })
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

type Client =
    CryptoStreamingServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

async fn connect(server: &str, token: Option<&str>) -> Result<Client, String> {
    let bearer = token
        .map(|t| {
            format!("Bearer {t}")
                .parse()
                .map_err(|_| "the token is not valid ASCII".to_string())
        })
        .transpose()?;
    let endpoint = Channel::from_shared(server.to_owned())
        .map_err(|e| format!("bad server address {server:?}: {e}"))?
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {server}: {e}"))?;
    Ok(CryptoStreamingServiceClient::with_interceptor(
        channel,
        Bearer(bearer),
    ))
}

fn status_error(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// Runs `command`.
pub async fn run_command(args: CommandArgs) -> Result<(), Box<dyn std::error::Error>> {
    let command = commands::new(body(args.verb, &args.args)?);
    let mut client = connect(&args.server, args.token.as_deref()).await?;
    if args.wait {
        let mut req = tonic::Request::new(ExecuteCommandRequest {
            client_id: args.client_id,
            command: Some(command),
            timeout_ms: u32::try_from(args.timeout.as_millis()).unwrap_or(u32::MAX),
        });
        req.set_timeout(args.timeout + Duration::from_secs(1));
        let ack = client
            .execute_command_sync(req)
            .await
            .map_err(status_error)?
            .into_inner();
        let mut result: Vec<_> = ack.result.iter().collect();
        result.sort();
        println!(
            "command {} {}{}",
            ack.command_id,
            if ack.success { "succeeded" } else { "failed" },
            if ack.message.is_empty() {
                String::new()
            } else {
                format!(": {}", ack.message)
            }
        );
        for (k, v) in result {
            println!("  {k}={v}");
        }
        if !ack.success {
            return Err("the client reported failure".into());
        }
    } else {
        let resp = client
            .send_command_to_client(SendCommandRequest {
                client_id: args.client_id,
                command: Some(command),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        println!("command {} queued", resp.command_id);
    }
    Ok(())
}

/// Runs `clients`: pages through every matching client, printing each
/// page as it arrives (so a fleet of any size lists in bounded memory).
pub async fn run_clients(args: ClientsArgs) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let mut client = connect(&args.server, args.token.as_deref()).await?;
    let state = match args.state {
        None => SessionState::Unspecified,
        Some(StateFilter::Connected) => SessionState::Connected,
        Some(StateFilter::Stale) => SessionState::Stale,
    };
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Table => writeln!(
            out,
            "{:<32} {:<10} {:<14} {:<16} {:<10} {:>8} {:>8}",
            "CLIENT", "STATE", "TYPE", "NAME", "VERSION", "MSGS", "PENDING"
        )?,
        Output::Json => write!(out, "{{\"clients\": [")?,
    }
    let mut token = String::new();
    let mut first = true;
    loop {
        let page = client
            .list_clients(ListClientsRequest {
                page_size: args.page_size,
                page_token: std::mem::take(&mut token),
                state: state as i32,
                client_type: args.client_type.clone().unwrap_or_default(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        for c in &page.clients {
            match args.output {
                Output::Table => {
                    let reg = c.registration.clone().unwrap_or_default();
                    writeln!(
                        out,
                        "{:<32} {:<10} {:<14} {:<16} {:<10} {:>8} {:>8}",
                        c.client_id,
                        state_name(c.state),
                        reg.client_type,
                        reg.client_name,
                        reg.version,
                        c.counters.map_or(0, |k| k.messages_received),
                        c.pending_commands
                    )?;
                }
                Output::Json => {
                    let sep = if first { "\n" } else { ",\n" };
                    let row = serde_json::to_string(&crate::proto::json::ClientSummary::from(c))?;
                    write!(out, "{sep}  {row}")?;
                }
            }
            first = false;
        }
        out.flush()?;
        if page.partial {
            // Some replicas did not answer: say so, never silently.
            eprintln!(
                "warning: partial list: no answer from replica(s) {}",
                page.missing_replicas.join(", ")
            );
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    if args.output == Output::Json {
        writeln!(out, "{}]}}", if first { "" } else { "\n" })?;
    }
    Ok(())
}

fn state_name(state: i32) -> &'static str {
    match SessionState::try_from(state).unwrap_or(SessionState::Unspecified) {
        SessionState::Stale => "Stale",
        SessionState::Connected => "Connected",
        SessionState::Unspecified => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_bodies_and_rejects_bad_arguments() {
        assert!(matches!(body(Verb::Ping, &[]), Ok(Command::Ping(_))));
        assert!(body(Verb::Ping, &["x".into()]).is_err());
        let Ok(Command::UpdateConfig(u)) =
            body(Verb::UpdateConfig, &["a=1".into(), "b=x=y".into()])
        else {
            panic!("not update_config")
        };
        assert_eq!(u.config.get("b").map(String::as_str), Some("x=y"));
        assert_eq!(u.config_hash, commands::config_hash(&u.config));
        assert!(body(Verb::UpdateConfig, &["novalue".into()]).is_err());
        assert!(body(Verb::UpdateConfig, &["=v".into()]).is_err());
    }
}
