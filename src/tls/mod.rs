//! TLS and mutual TLS for the gRPC port, from PEM files that are re-read
//! when they change (certificate rotation without a restart). Each new
//! connection is handshaken with the configuration current at accept time;
//! with a client CA, clients must present a certificate it signed, and the
//! certificate's DNS SAN can stand for the client id
//! ([`crate::streaming::Credentials::peer_cert`]).

mod files;
mod incoming;

pub use files::{TlsError, TlsFiles};
pub use incoming::{TlsConnInfo, TlsIncoming, TlsStream};

/// Whether a DER certificate (already verified against the client CA
/// during the handshake) names `client_id` as a DNS subject alternative
/// name.
pub fn cert_names(cert_der: &[u8], client_id: &str) -> bool {
    let der = rustls_pki_types::CertificateDer::from(cert_der);
    let Ok(cert) = webpki::EndEntityCert::try_from(&der) else {
        return false;
    };
    let Ok(name) = rustls_pki_types::ServerName::try_from(client_id) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}
