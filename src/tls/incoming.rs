//! The TLS listener: accepts TCP connections, handshakes each in its own
//! owned task (bounded by a timeout, so a slow or silent peer never blocks
//! the accept loop), and hands finished connections to tonic with the peer
//! address and client certificate as connection info.

use super::TlsFiles;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// Connection info of a TLS connection (a request extension).
#[derive(Clone, Debug)]
pub struct TlsConnInfo {
    /// The peer's address.
    pub remote_addr: Option<SocketAddr>,
    /// The peer's verified certificate (DER), with mutual TLS.
    pub peer_cert: Option<Arc<Vec<u8>>>,
}

/// One accepted TLS connection.
pub struct TlsStream {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: TlsConnInfo,
}

impl tonic::transport::server::Connected for TlsStream {
    type ConnectInfo = TlsConnInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The stream of handshaken connections tonic serves.
pub struct TlsIncoming {
    rx: mpsc::Receiver<io::Result<TlsStream>>,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsIncoming {
    /// Accepts on `listener` until `stop`; handshakes run in `tasks`.
    pub fn new(
        listener: TcpListener,
        files: Arc<TlsFiles>,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(256);
        let accept_tasks = tasks.clone();
        tasks.spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = listener.accept() => match r {
                        Ok(c) => c,
                        Err(e) => {
                            debug!(error = %e, "accept failed");
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = tokio_rustls::TlsAcceptor::from(files.config());
                let tx = tx.clone();
                accept_tasks.spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let peer_cert = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| Arc::new(c.as_ref().to_vec()));
                            let stream = TlsStream {
                                inner: tls,
                                info: TlsConnInfo {
                                    remote_addr: Some(peer),
                                    peer_cert,
                                },
                            };
                            let _ = tx.send(Ok(stream)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Self { rx }
    }
}

impl Stream for TlsIncoming {
    type Item = io::Result<TlsStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
