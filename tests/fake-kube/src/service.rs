//! TEST DOUBLE: a loopback TCP proxy standing in for a Kubernetes Service: each new
//! connection goes to the next backend in turn that accepts it (a dead or
//! removed backend is skipped, as kube-proxy skips endpoints that are not
//! ready). Bytes are copied both ways until either side closes. Dropping
//! the proxy ends its listener and every connection it carries.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A running proxy.
pub struct Service {
    pub addr: SocketAddr,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    _accept: tokio::task::JoinHandle<()>,
    abort: tokio::task::AbortHandle,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

impl Service {
    /// Starts a proxy on 127.0.0.1:0 in front of `backends`.
    pub async fn start(backends: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backends = Arc::new(Mutex::new(backends));
        let list = backends.clone();
        let accept = tokio::spawn(async move {
            // Owns every connection: they end when this task is aborted.
            let mut conns = JoinSet::new();
            let mut next = 0usize;
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((inbound, _)) = accepted else { continue };
                        let candidates = list.lock().unwrap().clone();
                        let start = next;
                        next = next.wrapping_add(1);
                        conns.spawn(relay(inbound, candidates, start));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        let abort = accept.abort_handle();
        Self {
            addr,
            backends,
            _accept: accept,
            abort,
        }
    }

    /// Replaces the backends (for connections from now on).
    pub fn set_backends(&self, backends: Vec<SocketAddr>) {
        *self.backends.lock().unwrap() = backends;
    }

    /// The endpoint URL clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Connects `inbound` to the first backend from `start` on that accepts,
/// then copies until either side closes.
async fn relay(mut inbound: TcpStream, backends: Vec<SocketAddr>, start: usize) {
    let n = backends.len();
    for i in 0..n {
        let backend = backends[(start + i) % n];
        if let Ok(mut outbound) = TcpStream::connect(backend).await {
            let _ = outbound.set_nodelay(true);
            let _ = inbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            return;
        }
    }
}
