//! Forwarding: an operator's call for a client that another replica holds
//! goes exactly one hop, to that replica's peer service. The holder is
//! `status.holder` in the resource index; its address is the one it
//! advertises in its Lease. A holder that answers "not held here" (the
//! client moved meanwhile) makes this replica read the resource once more
//! from the API and try the holder named there; after that the call is
//! UNAVAILABLE with a retry hint. The forwarded request carries the
//! caller's remaining time as its deadline, so a forwarded
//! `ExecuteCommandSync` ends when a local one would.

use crate::controller::{Membership, ResourceIndex};
use crate::crd::CryptoClient;
use crate::proto::peer_service_client::PeerServiceClient;
use crate::proto::{
    ClientInfo, ForwardCommandRequest, GetClientRequest, ListClientsRequest, ServerCommand,
};
use crate::streaming::{Forwarded, Remote, RemoteCall, RemotePages};
use kube::Api;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::Status;
use tonic::transport::Channel;
use tracing::debug;

/// What a hop may add to the caller's own timeout (connecting, the
/// holder's queueing), and the bound on a forwarded `GetClient`.
const HOP: Duration = Duration::from_secs(2);
/// How long a client that moved mid-call is told to wait.
const MOVED_RETRY: Duration = Duration::from_secs(1);
/// How long a fleet-wide listing waits for each replica's page; one that
/// misses it is named in the answer.
const LIST_DEADLINE: Duration = Duration::from_secs(2);

/// Forwards operator calls to the replica holding the client.
pub struct Forwarder {
    index: Arc<ResourceIndex>,
    membership: Arc<Membership>,
    client: kube::Client,
    dial: Arc<super::PeerDial>,
    metrics: super::PeerMetrics,
    /// One lazily connected channel per peer address (pruned to the live
    /// peers whenever one is added).
    channels: Mutex<HashMap<String, Channel>>,
}

impl Forwarder {
    /// A forwarder dialling the peers `membership` knows with `dial`.
    pub fn new(
        index: Arc<ResourceIndex>,
        membership: Arc<Membership>,
        client: kube::Client,
        dial: Arc<super::PeerDial>,
        metrics: super::PeerMetrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            index,
            membership,
            client,
            dial,
            metrics,
            channels: Mutex::new(HashMap::new()),
        })
    }

    /// The live peer holding `client_id` and its address, as recorded in
    /// `holder` (`None` from the index: read it there).
    fn target(&self, client_id: &str, holder: Option<&str>) -> Result<(String, String), Status> {
        let not_connected = || Status::not_found(format!("client {client_id} is not connected"));
        let replica = match holder {
            Some(r) => r.to_owned(),
            None => self
                .index
                .lookup(client_id)
                .and_then(|r| r.holder)
                .map(|h| h.replica)
                .ok_or_else(not_connected)?,
        };
        if replica == self.membership.me() {
            // Recorded here, but its session is gone: not connected.
            return Err(not_connected());
        }
        self.membership
            .peers()
            .into_iter()
            .find(|p| p.id == replica)
            .map(|p| (p.id, p.advertise))
            .ok_or_else(|| {
                Status::not_found(format!(
                    "client {client_id} is not connected (its last holder, replica {replica}, is gone)"
                ))
            })
    }

    /// The holder `status.holder` names now, read from the API.
    async fn reread(&self, client_id: &str) -> Result<Option<String>, Status> {
        let Some(r) = self.index.lookup(client_id) else {
            return Ok(None);
        };
        let api: Api<CryptoClient> = Api::namespaced(self.client.clone(), &r.namespace);
        match tokio::time::timeout(HOP, api.get_opt(&r.name)).await {
            Ok(Ok(obj)) => Ok(obj
                .and_then(|o| o.status)
                .and_then(|s| s.holder)
                .map(|h| h.replica)),
            Ok(Err(e)) => Err(Status::unavailable(format!(
                "could not read the holder of {client_id}: {e}"
            ))),
            Err(_) => Err(Status::unavailable(format!(
                "could not read the holder of {client_id} within {HOP:?}"
            ))),
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, Status> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let live: Vec<String> = self
            .membership
            .peers()
            .into_iter()
            .map(|p| p.advertise)
            .collect();
        channels.retain(|a, _| live.contains(a));
        let channel = self
            .dial
            .endpoint(addr)
            .map_err(Status::unavailable)?
            .connect_timeout(HOP)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// A request to a peer: the peer token, the loop guard, the deadline.
    fn request<T>(&self, body: T, deadline: Duration) -> Result<tonic::Request<T>, Status> {
        let mut req = tonic::Request::new(body);
        req.set_timeout(deadline);
        self.dial.authorize(&mut req).map_err(Status::internal)?;
        let me = self
            .membership
            .me()
            .parse()
            .map_err(|_| Status::internal("the replica id is not a valid header value"))?;
        req.metadata_mut()
            .insert(crate::proto::hops::FORWARDED_BY, me);
        Ok(req)
    }

    /// Runs `call` against the holder, re-reading it once if the one in
    /// the index no longer holds the client; counted as `what`.
    async fn with_holder<T, F, Fut>(
        self: Arc<Self>,
        what: &'static str,
        client_id: String,
        call: F,
    ) -> Result<T, Status>
    where
        F: Fn(PeerServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let result = self.reach_holder(&client_id, call).await;
        self.metrics.forwarded(what, &result);
        result
    }

    async fn reach_holder<T, Fut>(
        &self,
        client_id: &str,
        call: impl Fn(PeerServiceClient<Channel>) -> Fut,
    ) -> Result<T, Status>
    where
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let mut holder: Option<String> = None;
        for attempt in 0..2 {
            let (replica, addr) = self.target(client_id, holder.as_deref())?;
            debug!(%client_id, %replica, %addr, attempt, "forwarding to the client's replica");
            match call(PeerServiceClient::new(self.channel(&addr)?)).await {
                Err(s) if crate::proto::hops::is_not_holder(&s) && attempt == 0 => {
                    match self.reread(client_id).await? {
                        Some(now) if now != replica => holder = Some(now),
                        _ => break,
                    }
                }
                Err(s) if crate::proto::hops::is_not_holder(&s) => break,
                // The hop's own deadline (tonic reports it as CANCELLED).
                Err(s) if s.code() == tonic::Code::Cancelled => {
                    return Err(Status::deadline_exceeded(format!(
                        "no answer from replica {replica} in time: {}",
                        s.message()
                    )));
                }
                other => return other,
            }
        }
        Err(crate::proto::retry::with_retry_hint(
            Status::unavailable(format!(
                "client {client_id} moved while the call was forwarded; retry"
            )),
            MOVED_RETRY,
        ))
    }
}

impl Remote for Forwarder {
    fn command(
        self: Arc<Self>,
        client_id: String,
        command: ServerCommand,
        wait: bool,
        timeout: Duration,
    ) -> RemoteCall<Forwarded> {
        let this = self;
        Box::pin(async move {
            let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
            let reply = this
                .clone()
                .with_holder("command", client_id.clone(), |mut peer| {
                    let req = this.request(
                        ForwardCommandRequest {
                            client_id: client_id.clone(),
                            command: Some(command.clone()),
                            wait,
                            timeout_ms,
                        },
                        timeout + HOP,
                    );
                    async move { Ok(peer.forward_command(req?).await?.into_inner()) }
                })
                .await?;
            Ok(Forwarded {
                command_id: reply.command_id,
                ack: reply.ack,
            })
        })
    }

    fn snapshot(self: Arc<Self>, client_id: String) -> RemoteCall<ClientInfo> {
        let this = self;
        Box::pin(async move {
            this.clone()
                .with_holder("get_client", client_id.clone(), |mut peer| {
                    let req = this.request(
                        GetClientRequest {
                            client_id: client_id.clone(),
                        },
                        HOP,
                    );
                    async move { Ok(peer.forward_get_client(req?).await?.into_inner()) }
                })
                .await
        })
    }

    fn list(self: Arc<Self>, request: ListClientsRequest) -> RemoteCall<RemotePages> {
        Box::pin(async move {
            let calls = self.membership.peers().into_iter().map(|p| {
                let this = self.clone();
                let request = request.clone();
                async move {
                    let call = async {
                        let mut peer = PeerServiceClient::new(this.channel(&p.advertise)?);
                        let req = this.request(request, LIST_DEADLINE)?;
                        Ok::<_, Status>(peer.forward_list_clients(req).await?.into_inner())
                    };
                    let answer = match tokio::time::timeout(LIST_DEADLINE, call).await {
                        Ok(Ok(page)) => Ok(page),
                        Ok(Err(s)) => Err(s.message().to_owned()),
                        Err(_) => Err(format!("no answer within {LIST_DEADLINE:?}")),
                    };
                    (p.id, answer)
                }
            });
            let mut out = RemotePages::default();
            for (replica, answer) in futures::future::join_all(calls).await {
                self.metrics.listed(answer.is_ok());
                match answer {
                    Ok(page) => out
                        .pages
                        .push((page.clients, !page.next_page_token.is_empty())),
                    Err(why) => {
                        debug!(%replica, %why, "a replica's page is missing from the listing");
                        out.missing.push(replica);
                    }
                }
            }
            out.missing.sort();
            Ok(out)
        })
    }
}
