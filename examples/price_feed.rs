//! A price feed built on the SDK: registers as client type `price-feed`,
//! asks the market (`GetCoin`) how many decimals each symbol allows, then
//! publishes a random walk of prices (decimal strings from integer units,
//! never floats) for those symbols. Pause stops publishing until resume.
//!
//! Run: `cargo run --example price_feed -- [feed-1] [http://127.0.0.1:50051] [BTC,ETH,SOL] [250ms interval]
//! [--token TOKEN | --token-file FILE]` (the token also from
//! `CRYPTO_CLIENT_TOKEN` / `CRYPTO_CLIENT_TOKEN_FILE`)
//! and watch the prices with, for example:
//! `grpcurl -plaintext -d '{"symbols":["BTC"]}' localhost:50051 crypto.v1.CryptoService/StreamPrices`

mod common;

use crypto_operator::client::ClientType;
use crypto_operator::client::{self, ClientConfig, Command, CommandHandler, CommandResult};
use crypto_operator::proto::crypto_service_client::CryptoServiceClient;
use crypto_operator::proto::{GetCoinRequest, PriceUpdate, client_message::Payload};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// Follows pause / resume; everything else is acked as done.
struct Feed {
    paused: Arc<AtomicBool>,
}

impl CommandHandler for Feed {
    async fn handle(&mut self, command: Command) -> CommandResult {
        match command {
            Command::Pause { reason } => {
                println!("pausing: {reason}");
                self.paused.store(true, Ordering::SeqCst);
            }
            Command::Resume => {
                println!("resuming");
                self.paused.store(false, Ordering::SeqCst);
            }
            Command::SyncWallets { .. } | Command::UpdateConfig { .. } => {}
        }
        Ok(HashMap::new())
    }
}

/// One symbol's walk: the price in units of 10^-`scale`.
struct Walk {
    symbol: String,
    units: u64,
    scale: u32,
}

impl Walk {
    fn new(symbol: &str, decimals: u32) -> Self {
        let start = match symbol {
            "BTC" => 67_000,
            "ETH" => 3_500,
            "SOL" => 150,
            _ => 1,
        };
        let scale = decimals.min(4);
        Self {
            symbol: symbol.to_owned(),
            units: start * 10u64.pow(scale),
            scale,
        }
    }

    /// Moves the price by up to ±0.1% and returns it as a decimal string.
    fn step(&mut self) -> String {
        let max = (self.units / 1000).max(1);
        let delta = fastrand::u64(0..=max);
        self.units = if fastrand::bool() {
            self.units.saturating_add(delta)
        } else {
            self.units.saturating_sub(delta).max(1)
        };
        let unit = 10u64.pow(self.scale);
        if self.scale == 0 {
            return self.units.to_string();
        }
        format!(
            "{}.{:0width$}",
            self.units / unit,
            self.units % unit,
            width = self.scale as usize
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let args = common::Args::parse(
        "price_feed [CLIENT_ID] [ENDPOINT] [SYMBOLS] [INTERVAL_MS] [--token TOKEN | --token-file FILE]",
    );
    let client_id = args.get(0, "feed-1");
    let endpoint = args.get(1, "http://127.0.0.1:50051");
    let symbols = args.get(2, "BTC,ETH,SOL");
    let every = Duration::from_millis(args.get(3, "250").parse().unwrap_or(250));

    // The catalog says how many decimals each symbol's prices may have.
    let mut market = CryptoServiceClient::connect(endpoint.clone()).await?;
    let mut walks = Vec::new();
    for symbol in symbols.split(',').filter(|s| !s.is_empty()) {
        let coin = market
            .get_coin(GetCoinRequest {
                symbol: symbol.to_owned(),
            })
            .await?
            .into_inner();
        walks.push(Walk::new(&coin.symbol, coin.decimals));
    }

    let mut config = ClientConfig::new(endpoint, client_id)
        .client_type(ClientType::PriceFeed)
        .capabilities(["price"]);
    if let Some(token) = args.token {
        config = config.token(token);
    }
    let (client, sender) = client::new(config);
    let paused = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let run = tokio::spawn(client.run(
        Feed {
            paused: paused.clone(),
        },
        stop.clone(),
    ));

    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {}
        }
        if paused.load(Ordering::SeqCst) {
            continue;
        }
        for w in &mut walks {
            let price = w.step();
            let update = PriceUpdate {
                symbol: w.symbol.clone(),
                price: price.clone(),
                quote: "USD".into(),
                source: "random-walk".into(),
                exchange_time: Some(SystemTime::now().into()),
            };
            // A full outbox (server away) drops this tick; the next one is
            // newer anyway.
            if sender.try_send(Payload::Price(update)).is_ok() {
                println!("{} {price} USD", w.symbol);
            }
        }
    }
    stop.cancel();
    let _ = run.await;
    Ok(())
}
