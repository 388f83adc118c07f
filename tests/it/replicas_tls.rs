//! Replicas calling each other over TLS: real `serve` processes with
//! mutual TLS on their gRPC ports forward an operator's call and share a
//! feed's prices through the peer service, each checking the other's
//! certificate against the peer CA and the name every replica's
//! certificate carries, and presenting its own as the client certificate
//! the port demands. A replica told to expect another name refuses its
//! peers' certificate and forwards nothing.

use crate::support::certs::{BOTH, CLIENT, Files, ca, leaf, tls_channel};
use crate::support::cluster::expect_command;
use crate::support::http::{http_request, scraped as metric};
use crate::support::replicas::{MIN_HOLD, Replicas};
use crate::support::{RawClient, WAIT, poll_until};
use crypto_operator::client::ClientType;
use crypto_operator::proto::crypto_service_client::CryptoServiceClient;
use crypto_operator::proto::crypto_streaming_service_client::CryptoStreamingServiceClient;
use crypto_operator::proto::{GetCoinRequest, PriceUpdate, client_message::Payload};
use std::time::Duration;

/// The name in the replicas' certificate (the Service's, in a cluster).
const NAME: &str = "crypto-operator.test.svc";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_mutual_tls_forward_calls_and_share_prices_verifying_each_other() {
    let files = Files::new("replicas");
    let authority = ca("replicas-ca");
    let (cert, key) = leaf(&authority, &[NAME, "localhost"], BOTH);
    let cert = files.put("tls.crt", &cert);
    let key = files.put("tls.key", &key);
    let ca_file = files.put("ca.crt", &authority.pem());
    let (cert, key, ca_file) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        ca_file.to_str().unwrap(),
    );
    let flags = |name: &'static str| {
        [
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-client-ca",
            ca_file,
            "--peer-ca",
            ca_file,
            "--peer-tls-name",
            name,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let tls = flags(NAME);
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let mut r = Replicas::start_with(&["replica-a", "replica-b"], 2, MIN_HOLD, &tls).await;
    let (a, b) = (r.get("replica-a"), r.get("replica-b"));

    // c-000 on replica-a, over TLS with a client certificate.
    let connect = async |id: &str, kind| {
        let identity = leaf(&authority, &[id], CLIENT);
        let channel = tls_channel(a.grpc, &authority.pem(), Some(&identity))
            .await
            .expect("TLS to replica-a");
        RawClient::connect_on(CryptoStreamingServiceClient::new(channel), id, kind, None).await
    };
    let mut wallet = connect("c-000", ClientType::WalletSync).await;

    // Once replica-b has seen replica-a claim c-000, replica-b's admin
    // API shows c-000's session: replica-b asked replica-a over TLS.
    let path = "/api/v1/clients/c-000";
    let session = poll_until(
        "replica-b shows c-000",
        WAIT,
        Duration::from_millis(50),
        async || {
            let reply = http_request(b.http, "GET", path, &[], None).await;
            (reply.status == 200).then(|| reply.json()["sessionId"].clone())
        },
    )
    .await;
    assert_eq!(session, wallet.session_id.as_str());

    // A ping through replica-b's admin API comes back with c-000's ack.
    let http = b.http;
    let call = tokio::spawn(async move {
        http_request(
            http,
            "POST",
            "/api/v1/clients/c-000/commands",
            &[("Content-Type", "application/json")],
            Some(r#"{"type":"ping","wait":true}"#),
        )
        .await
    });
    let ping = expect_command(&mut wallet, "ping").await;
    wallet.ack(&ping.command_id, true).await;
    let reply = tokio::time::timeout(WAIT, call)
        .await
        .expect("the call ends")
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["ack"]["success"], true, "{}", reply.body);
    let forwarded = r#"crypto_forwarded_calls_total{call="command",result="Ok"}"#;
    assert_eq!(metric(b.http, forwarded).await, 1.0);

    // A price from a feed on replica-a is in replica-b's book, numbered by
    // replica-a: replica-b follows replica-a's prices over TLS.
    let feed = connect("c-001", ClientType::PriceFeed).await;
    feed.send(Payload::Price(PriceUpdate {
        symbol: "BTC".into(),
        price: "100.00".into(),
        quote: "USD".into(),
        source: "test-exchange".into(),
        exchange_time: Some(std::time::SystemTime::now().into()),
    }))
    .await;
    let operator = leaf(&authority, &["operator"], CLIENT);
    let channel = tls_channel(b.grpc, &authority.pem(), Some(&operator))
        .await
        .expect("TLS to replica-b");
    let mut market = CryptoServiceClient::new(channel);
    poll_until(
        "replica-b has replica-a's BTC price",
        WAIT,
        Duration::from_millis(20),
        async || {
            let coin = market
                .get_coin(GetCoinRequest {
                    symbol: "BTC".into(),
                })
                .await
                .ok()?
                .into_inner();
            coin.prices.into_iter().find(|t| {
                t.source_replica == "replica-a"
                    && t.update.as_ref().is_some_and(|u| u.price == "100.00")
            })
        },
    )
    .await;
    assert_eq!(metric(b.http, "crypto_price_peer_links").await, 1.0);

    // replica-c expects another name in its peers' certificates: it
    // refuses replica-a's, so a call for c-000 through it fails, and
    // sends nothing to replica-a.
    r.extra = flags("wrong.test.svc");
    r.spawn("replica-c").await;
    let c = r.get("replica-c");
    let pings_before = metric(
        r.get("replica-a").http,
        r#"crypto_commands_sent_total{type="ping"}"#,
    )
    .await;
    let reply = http_request(
        c.http,
        "POST",
        "/api/v1/clients/c-000/commands",
        &[("Content-Type", "application/json")],
        Some(r#"{"type":"ping","wait":true}"#),
    )
    .await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.contains("certificate"), "{}", reply.body);
    let refused = r#"crypto_forwarded_calls_total{call="command",result="Unavailable"}"#;
    assert_eq!(metric(c.http, refused).await, 1.0);
    assert_eq!(
        metric(
            r.get("replica-a").http,
            r#"crypto_commands_sent_total{type="ping"}"#
        )
        .await,
        pings_before
    );
}
