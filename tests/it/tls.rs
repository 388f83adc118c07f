//! TLS and mutual TLS on the gRPC port with real certificates (made with
//! rcgen): encrypted sessions, a client certificate's DNS SAN standing for
//! its client id, a wrong CA refused, and certificate rotation without a
//! restart.

use crate::support;

use crypto_operator::client::ClientType;
use crypto_operator::proto::crypto_streaming_service_client::CryptoStreamingServiceClient;
use crypto_operator::proto::{ServerCommand, server_command::Command};
use crypto_operator::server::{self, Running, SecurityConfig, ServerConfig};
use std::path::Path;
use std::time::Duration;
use support::certs::{CLIENT, Files, SERVER, ca, leaf, tls_channel};
use support::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

async fn start_tls(cert: &Path, key: &Path, client_ca: Option<&Path>, require: bool) -> Running {
    server::start(ServerConfig {
        streaming: calm_config(),
        drain_grace: Duration::from_secs(2),
        security: SecurityConfig {
            require_client_auth: require,
            tls: Some((
                cert.to_owned(),
                key.to_owned(),
                client_ca.map(Path::to_owned),
            )),
            ..Default::default()
        },
        ..ServerConfig::default()
    })
    .await
    .expect("server starts")
}

/// Registers `id` over `channel`; the first reply or the refusal.
async fn register_over(channel: Channel, id: &str) -> Result<ServerCommand, tonic::Status> {
    let mut client = CryptoStreamingServiceClient::new(channel);
    let (tx, rx) = mpsc::channel(4);
    tx.send(msg(id, register(ClientType::WalletSync)))
        .await
        .unwrap();
    let mut inbound = client
        .connect_client(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let first = tokio::time::timeout(WAIT, inbound.message())
        .await
        .expect("answer in time")?;
    std::mem::forget(tx); // keep the stream open for the caller's checks
    first.ok_or_else(|| tonic::Status::unknown("stream closed"))
}

#[tokio::test]
async fn tls_serves_sessions_and_plaintext_is_refused() {
    let files = Files::new("plain");
    let ca1 = ca("ca-1");
    let (cert, key) = leaf(&ca1, &["localhost"], SERVER);
    let server = start_tls(
        &files.put("tls.crt", &cert),
        &files.put("tls.key", &key),
        None,
        false,
    )
    .await;
    let channel = tls_channel(server.grpc_addr, &ca1.pem(), None)
        .await
        .expect("TLS connects");
    let first = register_over(channel, "tls-1")
        .await
        .expect("registered over TLS");
    assert!(matches!(first.command, Some(Command::Registered(_))));
    // A plaintext HTTP/2 client cannot speak to the TLS port.
    let plain = async {
        let mut c = CryptoStreamingServiceClient::connect(url(server.grpc_addr)).await?;
        c.list_clients(crypto_operator::proto::ListClientsRequest::default())
            .await
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    assert!(
        tokio::time::timeout(WAIT, plain)
            .await
            .expect("answers in time")
            .is_err()
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn mutual_tls_binds_the_certificate_to_its_client_id_and_refuses_a_wrong_ca() {
    let files = Files::new("mtls");
    let server_ca = ca("server-ca");
    let client_ca = ca("client-ca");
    let rogue_ca = ca("rogue-ca");
    let (cert, key) = leaf(&server_ca, &["localhost"], SERVER);
    let server = start_tls(
        &files.put("tls.crt", &cert),
        &files.put("tls.key", &key),
        Some(&files.put("ca.crt", &client_ca.pem())),
        true,
    )
    .await;
    let wallet1 = leaf(&client_ca, &["wallet-1"], CLIENT);

    // The certificate names wallet-1: it registers as wallet-1 without a token.
    let ch = tls_channel(server.grpc_addr, &server_ca.pem(), Some(&wallet1))
        .await
        .expect("mTLS connects");
    assert!(matches!(
        register_over(ch.clone(), "wallet-1")
            .await
            .expect("registered")
            .command,
        Some(Command::Registered(_))
    ));
    // ... and only as wallet-1.
    let err = register_over(ch, "wallet-2")
        .await
        .expect_err("another id is refused");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // A certificate from another CA, or none, never completes the handshake.
    let rogue = leaf(&rogue_ca, &["wallet-1"], CLIENT);
    let refused = async {
        let ch = tls_channel(server.grpc_addr, &server_ca.pem(), Some(&rogue)).await?;
        register_over(ch, "wallet-1")
            .await
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)
    };
    assert!(
        tokio::time::timeout(WAIT, refused)
            .await
            .expect("answers in time")
            .is_err(),
        "wrong CA refused"
    );
    let anonymous = async {
        let ch = tls_channel(server.grpc_addr, &server_ca.pem(), None).await?;
        register_over(ch, "wallet-1")
            .await
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)
    };
    assert!(
        tokio::time::timeout(WAIT, anonymous)
            .await
            .expect("answers in time")
            .is_err(),
        "no certificate refused"
    );
    assert_eq!(
        server.handle.connected(),
        1,
        "only the rightful session exists"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn rotated_certificates_are_served_without_a_restart() {
    let files = Files::new("rotate");
    let old_ca = ca("old-ca");
    let new_ca = ca("new-ca");
    let (cert, key) = leaf(&old_ca, &["localhost"], SERVER);
    let (cert_path, key_path) = (files.put("tls.crt", &cert), files.put("tls.key", &key));
    let server = start_tls(&cert_path, &key_path, None, false).await;
    let ok = |ca_pem: String| {
        let addr = server.grpc_addr;
        async move {
            match tls_channel(addr, &ca_pem, None).await {
                Ok(ch) => register_over(ch, "rot-1").await.is_ok(),
                Err(_) => false,
            }
        }
    };
    assert!(ok(old_ca.pem()).await, "old certificate served");
    assert!(!ok(new_ca.pem()).await, "not yet the new one");
    // Rotate: the key first, then the certificate (each an atomic rename).
    let (cert2, key2) = leaf(&new_ca, &["localhost"], SERVER);
    files.put("tls.key", &key2);
    files.put("tls.crt", &cert2);
    let what = "the new certificate is served";
    poll_until(what, WAIT, Duration::from_millis(200), async || {
        ok(new_ca.pem()).await.then_some(())
    })
    .await;
    assert!(
        !ok(old_ca.pem()).await,
        "the old certificate is gone for new connections"
    );
    server.stop().await.unwrap();
}
