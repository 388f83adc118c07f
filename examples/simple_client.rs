//! A wallet syncer built on the SDK: sends wallet updates and transactions
//! every second and obeys every command (pause really stops its updates
//! until resume; sync_wallets re-sends every balance; update_config is
//! applied and its hash reported in status).
//!
//! Run: `cargo run --example simple_client -- wallet-1 [http://127.0.0.1:50051]
//! [--token TOKEN | --token-file FILE]` (the token also from
//! `CRYPTO_CLIENT_TOKEN` / `CRYPTO_CLIENT_TOKEN_FILE`).

mod common;

use crypto_operator::client::ClientType;
use crypto_operator::client::{
    self, ClientConfig, ClientSender, Command, CommandHandler, CommandResult,
};
use crypto_operator::proto::{
    ClientRunState, ClientStatus, Transaction, TransactionDirection, WalletUpdate,
    client_message::Payload,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WALLETS: [(&str, &str, &str); 2] =
    [("0xabc1", "ethereum", "ETH"), ("bc1qxyz", "bitcoin", "BTC")];

struct Syncer {
    paused: Arc<AtomicBool>,
    sender: ClientSender,
    config_hash: String,
    balances: Arc<std::sync::Mutex<HashMap<&'static str, u64>>>,
}

impl Syncer {
    async fn report(&self, state: ClientRunState) {
        let _ = self
            .sender
            .send(Payload::Status(ClientStatus {
                state: state as i32,
                detail: String::new(),
                config_hash: self.config_hash.clone(),
            }))
            .await;
    }
}

impl CommandHandler for Syncer {
    async fn handle(&mut self, command: Command) -> CommandResult {
        match command {
            Command::Pause { reason } => {
                println!("pausing: {reason}");
                self.paused.store(true, Ordering::SeqCst);
                self.report(ClientRunState::Paused).await;
            }
            Command::Resume => {
                println!("resuming");
                self.paused.store(false, Ordering::SeqCst);
                self.report(ClientRunState::Running).await;
            }
            Command::SyncWallets { .. } => {
                let balances: Vec<(&str, u64)> = {
                    let b = self
                        .balances
                        .lock()
                        .map_err(|_| "balances poisoned".to_string())?;
                    b.iter().map(|(k, v)| (*k, *v)).collect()
                };
                for (wallet, units) in &balances {
                    let _ = self.sender.send(wallet_update(wallet, *units)).await;
                }
                return Ok(HashMap::from([(
                    "wallets_synced".to_string(),
                    balances.len().to_string(),
                )]));
            }
            Command::UpdateConfig {
                config,
                config_hash,
            } => {
                println!("config {config_hash}: {config:?}");
                self.config_hash = config_hash;
                let state = if self.paused.load(Ordering::SeqCst) {
                    ClientRunState::Paused
                } else {
                    ClientRunState::Running
                };
                self.report(state).await;
            }
        }
        Ok(HashMap::new())
    }
}

fn wallet_update(wallet: &str, units: u64) -> Payload {
    let (_, chain, asset) = WALLETS
        .iter()
        .find(|w| w.0 == wallet)
        .copied()
        .unwrap_or((wallet, "unknown", "?"));
    Payload::WalletUpdate(WalletUpdate {
        wallet_id: wallet.to_string(),
        chain: chain.to_string(),
        asset: asset.to_string(),
        balance: format!("{}.{:06}", units / 1_000_000, units % 1_000_000),
        block_height: 0,
    })
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let args = common::Args::parse(
        "simple_client [CLIENT_ID] [ENDPOINT] [--token TOKEN | --token-file FILE]",
    );
    let client_id = args.get(0, "wallet-1");
    let endpoint = args.get(1, "http://127.0.0.1:50051");
    let mut config = ClientConfig::new(endpoint, client_id)
        .client_type(ClientType::WalletSync)
        .capabilities(["sync_wallets", "update_config"]);
    if let Some(token) = args.token {
        config = config.token(token);
    }
    let (client, sender) = client::new(config);
    let paused = Arc::new(AtomicBool::new(false));
    let balances = Arc::new(std::sync::Mutex::new(HashMap::from([
        (WALLETS[0].0, 1_500_000u64),
        (WALLETS[1].0, 250_000u64),
    ])));
    let handler = Syncer {
        paused: paused.clone(),
        sender: sender.clone(),
        config_hash: String::new(),
        balances: balances.clone(),
    };
    let stop = CancellationToken::new();
    let run = tokio::spawn(client.run(handler, stop.clone()));

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {}
        }
        if paused.load(Ordering::SeqCst) {
            continue;
        }
        n += 1;
        let wallet = WALLETS[(n % 2) as usize].0;
        let units = {
            let Ok(mut b) = balances.lock() else { break };
            let v = b.entry(wallet).or_insert(0);
            *v += 1_000 * (n % 7 + 1);
            *v
        };
        let _ = sender.try_send(wallet_update(wallet, units));
        if n.is_multiple_of(5) {
            let _ = sender.try_send(Payload::Transaction(Transaction {
                tx_id: format!("tx-{n}"),
                wallet_id: wallet.to_string(),
                chain: "ethereum".into(),
                asset: "ETH".into(),
                amount: "0.001000".into(),
                direction: TransactionDirection::Inbound as i32,
                state: "confirmed".into(),
            }));
        }
    }
    stop.cancel();
    let _ = run.await;
}
