//! How a replica reaches a peer: the peer's advertised address, in
//! plaintext or, when the gRPC port serves TLS, over TLS verified against
//! the peer CA and the name every replica's certificate carries, with this
//! replica's own certificate as its client certificate (for a port that
//! requires mutual TLS); and the peer token on every request. The files
//! are read each time an endpoint is made, so a caller that makes one per
//! connection (price links, partition checks) uses rotated certificates
//! without a restart.

use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// How a replica checks a peer's certificate.
#[derive(Debug, Clone)]
pub struct PeerTrust {
    /// PEM bundle of the CA that signed the replicas' certificates.
    pub ca: PathBuf,
    /// The DNS name every replica's certificate carries (peers are
    /// dialled by IP address, which certificates rarely name).
    pub server_name: String,
}

/// TLS towards peers.
#[derive(Debug, Clone)]
pub struct PeerTls {
    /// How the peer's certificate is checked.
    pub trust: PeerTrust,
    /// This replica's certificate chain and key (the gRPC port's).
    pub cert: PathBuf,
    /// Key of `cert`.
    pub key: PathBuf,
}

impl PeerTls {
    /// The client configuration, from the files as they are now.
    fn client_config(&self) -> Result<ClientTlsConfig, String> {
        let identity = Identity::from_pem(read(&self.cert)?, read(&self.key)?);
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.trust.ca)?))
            .domain_name(self.trust.server_name.clone())
            .identity(identity))
    }
}

/// What a peer call needs: the token, and TLS if the port has it.
#[derive(Debug, Clone)]
pub struct PeerDial {
    token: String,
    tls: Option<PeerTls>,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl PeerDial {
    /// Peer calls presenting `token`, over TLS when `tls` is given.
    /// Reads the TLS files once, so a missing or unreadable one is an
    /// error at start rather than at the first peer call.
    pub fn new(token: String, tls: Option<PeerTls>) -> Result<Self, String> {
        if let Some(t) = &tls {
            t.client_config()?;
        }
        Ok(Self { token, tls })
    }

    /// An endpoint for the peer at `addr` (HOST:PORT), with TLS if
    /// configured; timeouts and keep-alives are the caller's.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, String> {
        let Some(tls) = &self.tls else {
            return Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| format!("peer address {addr:?}: {e}"));
        };
        Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| format!("peer address {addr:?}: {e}"))?
            .tls_config(tls.client_config()?)
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
