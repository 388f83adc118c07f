//! Market data over real tonic clients and servers on 127.0.0.1: GetCoin,
//! ListCoins paging, StreamPrices snapshot + ordered updates, conflation
//! for a slow subscriber, validation of prices and requests, the coin
//! catalog file, metrics and shutdown. Prices are published by raw
//! price-feed clients on ConnectClient; every wait is on a stream or an
//! event, bounded by `WAIT`.

use crate::support;

use crypto_operator::client::ClientType;
use crypto_operator::commands;
use crypto_operator::market::{Catalog, MAX_PAGE_SIZE};
use crypto_operator::proto::crypto_service_client::CryptoServiceClient;
use crypto_operator::proto::{
    GetCoinRequest, ListCoinsRequest, PriceTick, PriceUpdate, StreamPricesRequest,
    client_message::Payload,
};
use crypto_operator::server::{self, Running, ServerConfig};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use support::*;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

async fn market(addr: std::net::SocketAddr) -> CryptoServiceClient<Channel> {
    CryptoServiceClient::connect(url(addr))
        .await
        .expect("market client connects")
}

fn price(symbol: &str, price: &str, quote: &str) -> Payload {
    Payload::Price(PriceUpdate {
        symbol: symbol.into(),
        price: price.into(),
        quote: quote.into(),
        source: "test-exchange".into(),
        exchange_time: Some(std::time::SystemTime::now().into()),
    })
}

async fn feed(server: &Running, id: &str) -> RawClient {
    RawClient::connect_as(server.grpc_addr, id, ClientType::PriceFeed).await
}

async fn subscribe(
    client: &mut CryptoServiceClient<Channel>,
    symbols: &[&str],
) -> Result<Streaming<PriceTick>, Status> {
    client
        .stream_prices(StreamPricesRequest {
            symbols: symbols
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// (symbol, price, quote, sequence, snapshot) of a tick.
fn key(t: &PriceTick) -> (String, String, String, u64, bool) {
    let u = t.update.as_ref().expect("tick carries its update");
    (
        u.symbol.clone(),
        u.price.clone(),
        u.quote.clone(),
        t.sequence,
        t.snapshot,
    )
}

fn tick(
    symbol: &str,
    price: &str,
    seq: u64,
    snapshot: bool,
) -> (String, String, String, u64, bool) {
    (symbol.into(), price.into(), "USD".into(), seq, snapshot)
}

/// Waits (bounded by `WAIT`) until `cond` holds; for state that has no
/// event to wait on (a server noticing that a client went away).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} in time"));
}

#[tokio::test]
async fn get_coin_returns_the_catalog_entry_with_its_latest_prices() {
    let server = start(calm_config()).await;
    let mut m = market(server.grpc_addr).await;
    let btc = m
        .get_coin(GetCoinRequest {
            symbol: "btc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            btc.symbol.as_str(),
            btc.name.as_str(),
            btc.decimals,
            btc.enabled
        ),
        ("BTC", "Bitcoin", 8, true)
    );
    assert!(btc.prices.is_empty(), "no price before the first one");

    let f = feed(&server, "feed-1").await;
    let mut sub = subscribe(&mut m, &["BTC"]).await.unwrap();
    f.send(price("BTC", "67012.55", "usd")).await;
    f.send(price("BTC", "0.5", "EUR")).await;
    next_tick(&mut sub).await;
    next_tick(&mut sub).await;
    let btc = m
        .get_coin(GetCoinRequest {
            symbol: "BTC".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let prices: Vec<_> = btc.prices.iter().map(key).collect();
    assert_eq!(
        prices,
        [
            ("BTC".into(), "0.5".into(), "EUR".into(), 1, false),
            ("BTC".into(), "67012.55".into(), "USD".into(), 1, false),
        ]
    );
    assert_eq!(btc.prices[0].feed_client_id, "feed-1");
    assert!(btc.prices[0].received_at.is_some());
    assert_eq!(
        btc.prices[0].update.as_ref().unwrap().source,
        "test-exchange"
    );
    assert_eq!(metric_or_zero(&server, "crypto_price_updates_total"), 2.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn list_coins_pages_through_the_catalog_with_opaque_tokens() {
    let server = start(calm_config()).await;
    let mut m = market(server.grpc_addr).await;
    let builtin = Catalog::builtin().unwrap();
    let expected: Vec<&str> = builtin.coins().iter().map(|c| c.symbol.as_str()).collect();

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = m
            .list_coins(ListCoinsRequest {
                page_size: 4,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.coins.len() <= 4);
        assert_eq!(page.total_size as usize, expected.len());
        seen.extend(page.coins.into_iter().map(|c| c.symbol));
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(
            !page.next_page_token.contains(seen.last().unwrap().as_str()),
            "tokens are opaque"
        );
        token = page.next_page_token;
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, expected.len().div_ceil(4));

    // page_size 0 is the default (50): the whole built-in catalog, no token.
    let all = m
        .list_coins(ListCoinsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.coins.len(), expected.len());
    assert!(all.next_page_token.is_empty());

    // The filter: case-insensitive substring of symbol or name.
    let coins = m
        .list_coins(ListCoinsRequest {
            filter: "COIN".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let symbols: Vec<_> = coins.coins.iter().map(|c| c.symbol.as_str()).collect();
    assert_eq!(symbols, ["BTC", "DOGE", "LTC", "USDC"]);
    assert_eq!(coins.total_size, 4);

    // A filtered listing pages with its own token.
    let first = m
        .list_coins(ListCoinsRequest {
            filter: "coin".into(),
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rest = m
        .list_coins(ListCoinsRequest {
            filter: "coin".into(),
            page_size: 3,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.coins.len(), 1);
    assert_eq!(rest.coins[0].symbol, "USDC");
    assert!(rest.next_page_token.is_empty());

    // enabled_only hides disabled coins.
    let enabled = m
        .list_coins(ListCoinsRequest {
            enabled_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enabled.coins.len(), expected.len() - 1);
    assert!(
        enabled
            .coins
            .iter()
            .all(|c| c.enabled && c.symbol != "LUNA")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_precise_statuses() {
    let server = start(calm_config()).await;
    let mut m = market(server.grpc_addr).await;
    let get = |symbol: &str| GetCoinRequest {
        symbol: symbol.into(),
    };
    let code = m.get_coin(get("NOPE")).await.unwrap_err().code();
    assert_eq!(code, Code::NotFound);
    let code = m.get_coin(get("")).await.unwrap_err().code();
    assert_eq!(code, Code::InvalidArgument);

    let list = |page_size: u32, page_token: &str, filter: &str| ListCoinsRequest {
        page_size,
        page_token: page_token.into(),
        filter: filter.into(),
        enabled_only: false,
    };
    let err = m
        .list_coins(list(MAX_PAGE_SIZE as u32 + 1, "", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_size"), "{}", err.message());
    for token in ["not-a-token", "4254430a", "zz"] {
        let err = m.list_coins(list(2, token, "")).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{token}");
    }
    let issued = m
        .list_coins(list(2, "", ""))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let err = m.list_coins(list(2, &issued, "btc")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("different filter"));

    let err = subscribe(&mut m, &["BTC", "NOPE"]).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("NOPE"));
    let err = subscribe(&mut m, &["LUNA"]).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let many: Vec<&str> = std::iter::repeat_n("BTC", 1001).collect();
    let err = subscribe(&mut m, &many).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(metric_or_zero(&server, "crypto_price_subscribers"), 0.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_subscriber_sees_the_snapshot_then_every_update_in_order() {
    let server = start(calm_config()).await;
    let mut m = market(server.grpc_addr).await;
    let f = feed(&server, "feed-snap").await;

    // Seed BTC and ETH; a first subscriber tells us they are in the book.
    let mut seed = subscribe(&mut m, &["BTC", "ETH"]).await.unwrap();
    f.send(price("BTC", "100.5", "USD")).await;
    f.send(price("ETH", "2000", "USD")).await;
    f.send(price("BTC", "100.75", "USD")).await;
    let mut last = HashMap::new();
    while last.get("BTC") != Some(&2) || last.get("ETH") != Some(&1) {
        let t = next_tick(&mut seed).await;
        last.insert(t.update.unwrap().symbol, t.sequence);
    }

    // A new subscriber gets the latest price of each symbol first (catalog
    // order, duplicates and case ignored), flagged as the snapshot...
    let mut sub = subscribe(&mut m, &["eth", "BTC", "btc"]).await.unwrap();
    assert_eq!(
        key(&next_tick(&mut sub).await),
        tick("BTC", "100.75", 2, true)
    );
    assert_eq!(
        key(&next_tick(&mut sub).await),
        tick("ETH", "2000", 1, true)
    );

    // ...then every update of its symbols, in order; SOL is not its symbol.
    // Each update is published once the previous one arrived, so none is
    // conflated.
    let steps = [
        ("BTC", "101", 3),
        ("ETH", "2001.5", 2),
        ("ETH", "2002", 3),
        ("BTC", "102.25", 4),
    ];
    for (i, (symbol, p, seq)) in steps.into_iter().enumerate() {
        if i == 1 {
            f.send(price("SOL", "150", "USD")).await;
        }
        f.send(price(symbol, p, "USD")).await;
        assert_eq!(key(&next_tick(&mut sub).await), tick(symbol, p, seq, false));
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_slow_subscriber_gets_conflated_prices_while_a_fast_one_gets_every_update() {
    const N: u64 = 600;
    const SYMBOLS: [&str; 3] = ["BTC", "ETH", "SOL"];
    let server = start(calm_config()).await;
    let mut fast_client = market(server.grpc_addr).await;
    // The slow subscriber's HTTP/2 stream window is small, so the transport
    // cannot buffer more than a few ticks it has not read.
    let slow_channel = Endpoint::from_shared(url(server.grpc_addr))
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let mut slow_client = CryptoServiceClient::new(slow_channel);
    let mut fast = subscribe(&mut fast_client, &SYMBOLS).await.unwrap();
    let mut slow = subscribe(&mut slow_client, &SYMBOLS).await.unwrap();
    assert_eq!(metric_or_zero(&server, "crypto_price_subscribers"), 2.0);
    let f = feed(&server, "feed-fast").await;

    // The fast subscriber reads continuously: it receives every update in
    // order (each is published once it received the previous one). The
    // slow one reads nothing meanwhile.
    let mut finals = HashMap::new();
    for i in 1..=N {
        let symbol = SYMBOLS[(i % 3) as usize];
        let p = format!("{}.{:02}", 1000 + i, i % 100);
        f.send(price(symbol, &p, "USD")).await;
        let seq = i.div_ceil(3);
        assert_eq!(
            key(&next_tick(&mut fast).await),
            tick(symbol, &p, seq, false)
        );
        finals.insert(symbol, (p, seq));
    }

    // Now the slow subscriber reads: per symbol, strictly increasing
    // sequences ending at the latest price, in far fewer messages.
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    let mut received = 0u64;
    while SYMBOLS
        .iter()
        .any(|s| last_seq.get(*s) != Some(&finals[s].1))
    {
        let t = next_tick(&mut slow).await;
        received += 1;
        assert!(!t.snapshot);
        let (symbol, p, _, seq, _) = key(&t);
        let prev = last_seq.insert(symbol.clone(), seq).unwrap_or(0);
        assert!(seq > prev, "{symbol}: sequence {seq} after {prev}");
        if seq == finals[symbol.as_str()].1 {
            assert_eq!(p, finals[symbol.as_str()].0);
        }
    }
    eprintln!("slow subscriber: {received} ticks for {N} updates");
    assert!(
        received < N / 4,
        "the slow subscriber got {received} of {N} updates"
    );
    // Every update the slow subscriber skipped is counted (the fast one
    // skipped none).
    let conflated = metric_or_zero(&server, "crypto_price_updates_conflated_total");
    assert_eq!(conflated, (N - received) as f64);
    assert!(conflated > 0.0);
    assert_eq!(
        metric_or_zero(&server, "crypto_price_updates_total"),
        N as f64
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_prices_are_dropped_and_counted_without_ending_the_feed() {
    let server = start(calm_config()).await;
    let mut m = market(server.grpc_addr).await;
    let mut sub = subscribe(&mut m, &["BTC", "USDC"]).await.unwrap();
    let f = feed(&server, "feed-bad").await;
    // The core drops what is not a plain decimal before the market sees
    // it; the market drops what its catalog refuses.
    let core = |reason: &str| {
        format!("crypto_client_messages_rejected_total{{reason=\"{reason}\",type=\"price\"}}")
    };
    let market =
        |reason: &str| format!("crypto_price_updates_invalid_total{{reason=\"{reason}\"}}");
    let bad = [
        (price("NOPE", "1", "USD"), market("unknown_symbol")),
        (price("LUNA", "1", "USD"), market("disabled_symbol")),
        (price("BTC", "-1", "USD"), core("bad_decimal")),
        (price("BTC", "1e5", "USD"), core("bad_decimal")),
        (price("BTC", "", "USD"), core("missing_field")),
        (
            price("USDC", "1.0000001", "USD"),
            market("too_many_decimals"),
        ),
        (price("BTC", "1", ""), market("bad_quote")),
        (price("BTC", "1", "U$D"), market("bad_quote")),
    ];
    for (p, _) in &bad {
        f.send(p.clone()).await;
    }
    // The ingest task handles one feed's prices in order: once this valid
    // price arrives, every invalid one before it has been handled.
    f.send(price("USDC", "0.999999", "USD")).await;
    assert_eq!(
        key(&next_tick(&mut sub).await),
        tick("USDC", "0.999999", 1, false)
    );
    for (_, series) in &bad {
        let want = bad.iter().filter(|(_, s)| s == series).count() as f64;
        assert_eq!(metric_or_zero(&server, series), want, "{series}");
    }
    assert_eq!(metric_or_zero(&server, "crypto_price_updates_total"), 1.0);

    // Quotes per coin are bounded (8 by default): the ninth is dropped.
    f.send(price("BTC", "1", "USD")).await;
    assert_eq!(key(&next_tick(&mut sub).await), tick("BTC", "1", 1, false));
    for q in ["G", "F", "E", "D", "C", "B", "A", "H"] {
        f.send(price("BTC", "1", q)).await;
    }
    f.send(price("BTC", "2", "USD")).await;
    let mut quotes = Vec::new();
    loop {
        let (_, _, q, seq, _) = key(&next_tick(&mut sub).await);
        if q == "USD" {
            assert_eq!(seq, 2);
            break;
        }
        quotes.push(q);
    }
    // In arrival order, whether or not the stream saw them one by one.
    assert_eq!(quotes, ["G", "F", "E", "D", "C", "B", "A"]);
    assert_eq!(
        metric(
            &server,
            "crypto_price_updates_invalid_total{reason=\"quote_limit\"}"
        ),
        1.0
    );

    // The feed's session is untouched.
    assert!(server.handle.session("feed-bad").is_some());
    f.send(price("BTC", "3", "USD")).await;
    assert_eq!(key(&next_tick(&mut sub).await), tick("BTC", "3", 3, false));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_price_from_a_client_that_is_not_a_price_feed_is_dropped_and_never_published() {
    let server = start(calm_config()).await;
    let mut m = market(server.grpc_addr).await;
    let mut sub = subscribe(&mut m, &["BTC"]).await.unwrap();
    let mut wallet = RawClient::connect(server.grpc_addr, "wallet-not-feed").await;
    wallet.send(price("BTC", "1", "USD")).await;
    // Dropped and counted; the wallet's session goes on (it still answers
    // a command).
    let ack = execute_acked(server.grpc_addr, &mut wallet, commands::ping()).await;
    assert!(ack.success);
    assert_eq!(
        metric_or_zero(
            &server,
            "crypto_client_messages_rejected_total{reason=\"not_price_feed\",type=\"price\"}"
        ),
        1.0
    );
    let info = server
        .handle
        .session("wallet-not-feed")
        .expect("still connected");
    assert_eq!(info.state_counters().messages_rejected, 1);
    assert_eq!(info.state_counters().prices, 0);

    // The refused price never reached the market: the first tick the
    // subscriber sees is the real feed's, with sequence 1.
    let f = feed(&server, "feed-real").await;
    f.send(price("BTC", "2", "USD")).await;
    let t = next_tick(&mut sub).await;
    assert_eq!(key(&t), tick("BTC", "2", 1, false));
    assert_eq!(t.feed_client_id, "feed-real");
    assert_eq!(metric_or_zero(&server, "crypto_price_updates_total"), 1.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn subscribers_are_counted_and_streams_end_unavailable_on_shutdown() {
    let server = start(calm_config()).await;
    let mut m = market(server.grpc_addr).await;
    let gone = subscribe(&mut m, &["BTC"]).await.unwrap();
    let mut stays = subscribe(&mut m, &[]).await.unwrap();
    assert_eq!(metric_or_zero(&server, "crypto_price_subscribers"), 2.0);
    drop(gone);
    eventually("the server drops a cancelled stream", || {
        metric_or_zero(&server, "crypto_price_subscribers") == 1.0
    })
    .await;

    let metrics = server.metrics.clone();
    let stop = tokio::spawn(server.stop());
    let end = tokio::time::timeout(WAIT, stays.message())
        .await
        .expect("the stream ends in time");
    let status = end.expect_err("the stream ends with a status");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("shutting down"));
    tokio::time::timeout(WAIT, stop)
        .await
        .expect("the server stops in time")
        .unwrap()
        .unwrap();
    assert!(metrics.render().contains("crypto_price_subscribers 0"));
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("crypto-market-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

async fn start_with_coins(path: PathBuf) -> Result<Running, server::ServerError> {
    server::start(ServerConfig {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        streaming: calm_config(),
        drain_grace: Duration::from_secs(2),
        coins: Some(path),
        ..ServerConfig::default()
    })
    .await
}

#[tokio::test]
async fn a_coins_file_replaces_the_catalog_and_a_bad_one_fails_startup() {
    let good = temp_file(
        "good.yaml",
        "coins:\n  - symbol: ABC\n    name: Alphabet Coin\n    decimals: 2\n  - symbol: OFF\n    name: Off\n    decimals: 0\n    enabled: false\n",
    );
    let server = start_with_coins(good.clone()).await.unwrap();
    let mut m = market(server.grpc_addr).await;
    let abc = m
        .get_coin(GetCoinRequest {
            symbol: "abc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((abc.name.as_str(), abc.decimals), ("Alphabet Coin", 2));
    let code = m
        .get_coin(GetCoinRequest {
            symbol: "BTC".into(),
        })
        .await
        .unwrap_err()
        .code();
    assert_eq!(
        code,
        Code::NotFound,
        "the file replaces the built-in catalog"
    );
    let mut sub = subscribe(&mut m, &["ABC"]).await.unwrap();
    let f = feed(&server, "feed-abc").await;
    f.send(price("ABC", "1.234", "USD")).await;
    f.send(price("ABC", "1.23", "USD")).await;
    assert_eq!(
        key(&next_tick(&mut sub).await),
        tick("ABC", "1.23", 1, false)
    );
    server.stop().await.unwrap();
    let _ = std::fs::remove_file(good);

    let dup = temp_file(
        "dup.yaml",
        "coins:\n  - symbol: ABC\n    name: A\n    decimals: 2\n  - symbol: ABC\n    name: B\n    decimals: 2\n",
    );
    let err = start_with_coins(dup.clone()).await.err().expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains(&dup.display().to_string()) && msg.contains("line 5"),
        "{msg}"
    );
    let _ = std::fs::remove_file(dup);

    let missing = std::env::temp_dir().join("crypto-market-no-such-file.yaml");
    let msg = start_with_coins(missing.clone())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
}

#[tokio::test]
async fn serve_with_a_bad_coins_file_exits_with_the_file_and_line() {
    let bad = temp_file(
        "bad.yaml",
        "coins:\n  - symbol: BTC\n    name: Bitcoin\n    decimals: [8\n",
    );
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_crypto-operator"))
            .args([
                "serve",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .env("CRYPTO_COINS", &bad)
            .env("CRYPTO_LOG", "warn")
            .output(),
    )
    .await
    .expect("serve exits in time")
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&bad.display().to_string()) && stderr.contains(" line "),
        "{stderr}"
    );
    let _ = std::fs::remove_file(bad);
}
