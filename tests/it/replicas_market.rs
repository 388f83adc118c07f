//! Market data across replicas: real `serve` processes against the fake
//! API server; a raw price feed on replica-a, `StreamPrices` subscribers
//! and `GetCoin` on replica-b. Every wait is on a stream, or polls state
//! that has no event to wait on (another process's book), bounded.

use crate::support::http::scraped as metric;
use crate::support::replicas::Replicas;
use crate::support::{RawClient, WAIT, next_tick, url};
use crypto_operator::client::ClientType;
use crypto_operator::proto::crypto_service_client::CryptoServiceClient;
use crypto_operator::proto::{
    GetCoinRequest, PriceTick, PriceUpdate, StreamPricesRequest, client_message::Payload,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

const SYMBOLS: [&str; 3] = ["BTC", "ETH", "SOL"];

fn price(symbol: &str, price: &str) -> Payload {
    Payload::Price(PriceUpdate {
        symbol: symbol.into(),
        price: price.into(),
        quote: "USD".into(),
        source: "test-exchange".into(),
        exchange_time: Some(std::time::SystemTime::now().into()),
    })
}

/// (symbol, price, sequence, source replica, snapshot).
fn key(t: &PriceTick) -> (String, String, u64, String, bool) {
    let u = t.update.as_ref().expect("tick carries its update");
    (
        u.symbol.clone(),
        u.price.clone(),
        t.sequence,
        t.source_replica.clone(),
        t.snapshot,
    )
}

async fn subscribe(channel: Channel) -> Streaming<PriceTick> {
    CryptoServiceClient::new(channel)
        .stream_prices(StreamPricesRequest {
            symbols: SYMBOLS.iter().map(|s| (*s).to_owned()).collect(),
        })
        .await
        .expect("StreamPrices")
        .into_inner()
}

/// Polls `GetCoin(symbol)` on `addr` until its USD price is `want`, with
/// `sequence` `seq` from `source`.
async fn wait_price(addr: SocketAddr, symbol: &str, want: &str, seq: u64, source: &str) {
    let mut m = CryptoServiceClient::connect(url(addr)).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let coin = m
            .get_coin(GetCoinRequest {
                symbol: symbol.into(),
            })
            .await
            .expect("GetCoin")
            .into_inner();
        let usd = coin
            .prices
            .iter()
            .find(|t| t.update.as_ref().is_some_and(|u| u.quote == "USD"));
        if let Some(t) = usd {
            let u = t.update.as_ref().unwrap();
            if u.price == want && t.sequence == seq && t.source_replica == source {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{symbol} on {addr} is {usd:?}, not {want} (#{seq} from {source})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_feed_on_one_replica_reaches_subscribers_on_another_in_order_and_conflated_when_slow()
 {
    const N: u64 = 300;
    let r = Replicas::start(&["replica-a", "replica-b"], 1).await;
    let (a, b) = (r.get("replica-a"), r.get("replica-b"));
    let feed = RawClient::connect_as(a.grpc, "c-000", ClientType::PriceFeed).await;

    // Once replica-b follows replica-a's prices, its book has the first.
    feed.send(price("BTC", "100.00")).await;
    wait_price(b.grpc, "BTC", "100.00", 1, "replica-a").await;
    assert_eq!(metric(b.http, "crypto_price_peer_links").await, 1.0);

    // Two subscribers on replica-b: the fast one reads continuously, the
    // slow one's stream window holds only a few ticks it has not read.
    let fast_channel = Endpoint::from_shared(url(b.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let slow_channel = Endpoint::from_shared(url(b.grpc))
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let mut fast = subscribe(fast_channel).await;
    let mut slow = subscribe(slow_channel).await;
    assert_eq!(
        key(&next_tick(&mut fast).await),
        ("BTC".into(), "100.00".into(), 1, "replica-a".into(), true),
        "the snapshot carries replica-a's price"
    );

    // Each price is published on replica-a once the fast subscriber on
    // replica-b received the previous one: it receives every update, in
    // order, numbered in replica-a's series.
    let mut finals = HashMap::new();
    for i in 1..=N {
        let symbol = SYMBOLS[(i % 3) as usize];
        let p = format!("{}.{:02}", 1000 + i, i % 100);
        feed.send(price(symbol, &p)).await;
        let seq = i.div_ceil(3) + u64::from(symbol == "BTC");
        assert_eq!(
            key(&next_tick(&mut fast).await),
            (symbol.into(), p.clone(), seq, "replica-a".into(), false)
        );
        finals.insert(symbol, (p, seq));
    }

    // The slow subscriber: the snapshot, then per symbol strictly
    // increasing sequences ending at the latest price, in far fewer
    // messages than were published.
    let first = next_tick(&mut slow).await;
    assert!(first.snapshot, "{first:?}");
    let mut last_seq: HashMap<String, u64> = HashMap::from([("BTC".into(), first.sequence)]);
    let mut received = 0u64;
    while SYMBOLS
        .iter()
        .any(|s| last_seq.get(*s) != Some(&finals[s].1))
    {
        let t = next_tick(&mut slow).await;
        received += 1;
        let (symbol, p, seq, source, _) = key(&t);
        assert_eq!(source, "replica-a");
        let prev = last_seq.insert(symbol.clone(), seq).unwrap_or(0);
        assert!(seq > prev, "{symbol}: sequence {seq} after {prev}");
        if seq == finals[symbol.as_str()].1 {
            assert_eq!(p, finals[symbol.as_str()].0);
        }
    }
    assert!(
        received < N / 4,
        "the slow subscriber got {received} of {N} updates"
    );
    assert!(metric(b.http, "crypto_price_updates_conflated_total").await > 0.0);
    // replica-b learnt them from its peer; none came from a feed of its own.
    assert_eq!(metric(b.http, "crypto_price_updates_total").await, 0.0);
    assert_eq!(
        metric(b.http, "crypto_price_peer_updates_total").await,
        metric(a.http, "crypto_price_updates_total").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_peer_never_slows_a_feed_and_catches_up_on_the_latest_price() {
    // Within the per-client message burst (2,000).
    const N: u64 = 1500;
    let r = Replicas::start(&["replica-a", "replica-b"], 1).await;
    let (a, b) = (r.get("replica-a"), r.get("replica-b"));
    let feed = RawClient::connect_as(a.grpc, "c-000", ClientType::PriceFeed).await;
    feed.send(price("ETH", "1.00")).await;
    wait_price(b.grpc, "ETH", "1.00", 1, "replica-a").await;

    // replica-b stops reading (SIGSTOP) while the feed publishes; replica-a
    // takes every price all the same, at once.
    let pid = b.process.child.id().expect("running");
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    for i in 2..=N {
        feed.send(price("ETH", &format!("{i}.00"))).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(a.http, "crypto_price_updates_total").await < N as f64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica-a took every price while its peer was frozen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();

    // Woken, replica-b skips to the latest price rather than replaying.
    wait_price(b.grpc, "ETH", &format!("{N}.00"), N, "replica-a").await;
    wait_price(a.grpc, "ETH", &format!("{N}.00"), N, "replica-a").await;
    assert!(metric(b.http, "crypto_price_peer_updates_total").await <= N as f64);
}
