//! How a replica reaches a peer: the peer's advertised address, in
//! plaintext or, when the gRPC port serves TLS, over TLS verified against
//! the peer CA and the name every replica's certificate carries, with this
//! replica's own certificate as its client certificate (for a port that
//! requires mutual TLS); and the peer token on every request. The files
//! are read for each new connection setup, so rotated certificates are
//! used without a restart.

use std::path::PathBuf;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// TLS towards peers.
#[derive(Debug, Clone)]
pub struct PeerTls {
    /// PEM bundle of the CA that signed the replicas' certificates.
    pub ca: PathBuf,
    /// The DNS name the peers' certificates are checked against (peers
    /// are dialled by IP address, which certificates rarely name).
    pub server_name: String,
    /// This replica's certificate chain and key (the gRPC port's).
    pub cert: PathBuf,
    /// Key of `cert`.
    pub key: PathBuf,
}

/// What a peer call needs: the token, and TLS if the port has it.
#[derive(Debug, Clone)]
pub struct PeerDial {
    token: String,
    tls: Option<PeerTls>,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl PeerDial {
    /// Peer calls presenting `token`, over TLS when `tls` is given.
    /// Reads the TLS files once, so a missing or unreadable one is an
    /// error at start rather than at the first peer call.
    pub fn new(token: String, tls: Option<PeerTls>) -> Result<Self, String> {
        let dial = Self { token, tls };
        dial.endpoint("127.0.0.1:1")?;
        Ok(dial)
    }

    /// Whether peer calls go over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An endpoint for the peer at `addr` (HOST:PORT), with TLS if
    /// configured; timeouts and keep-alives are the caller's.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, String> {
        let Some(tls) = &self.tls else {
            return Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| format!("peer address {addr:?}: {e}"));
        };
        let ca = read(&tls.ca)?;
        let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name(tls.server_name.clone())
            .identity(identity);
        Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| format!("peer address {addr:?}: {e}"))?
            .tls_config(config)
            .map_err(|e| format!("peer TLS: {e}"))
    }

    /// Attaches the peer token (`authorization: Bearer <token>`).
    pub fn authorize<T>(&self, req: &mut tonic::Request<T>) -> Result<(), &'static str> {
        let bearer = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| "the peer token is not a valid header value")?;
        req.metadata_mut().insert("authorization", bearer);
        Ok(())
    }
}
