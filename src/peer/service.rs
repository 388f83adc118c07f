//! The peer service: answers other replicas of the same deployment —
//! whether this replica reaches the API, and the operator calls forwarded
//! to it for the clients it holds (run here only, never forwarded again).
//! Every call must carry the peer token (`authorization: Bearer <token>`,
//! compared as SHA-256 digests in constant time); without a configured
//! token the service refuses every call.

use crate::controller::Membership;
use crate::market::{FleetPrices, PriceStream};
use crate::proto::peer_service_server;
use crate::proto::{
    ApiHealthReply, ApiHealthRequest, ClientInfo, ForwardCommandReply, ForwardCommandRequest,
    GetClientRequest, ListClientsRequest, ListClientsResponse, StreamOwnPricesRequest,
};
use crate::streaming::{Credentials, StreamingHandle, token_digest};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use tracing::warn;

/// The peer service of one replica.
pub struct PeerService {
    membership: Arc<Membership>,
    handle: StreamingHandle,
    prices: FleetPrices,
    token: Option<[u8; 32]>,
}

impl PeerService {
    /// A service answering for `membership`, the sessions of `handle` and
    /// the own prices of `prices`, to callers presenting `token`.
    pub fn new(
        membership: Arc<Membership>,
        handle: StreamingHandle,
        prices: FleetPrices,
        token: Option<&str>,
    ) -> Self {
        Self {
            membership,
            handle,
            prices,
            token: token.map(|t| token_digest(t.as_bytes())),
        }
    }

    /// The tonic service.
    pub fn server(self) -> peer_service_server::PeerServiceServer<Self> {
        peer_service_server::PeerServiceServer::new(self)
    }

    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let Some(expected) = &self.token else {
            return Err(Status::unauthenticated(
                "this replica has no peer token (--peer-token-file): peer calls are refused",
            ));
        };
        match Credentials::from_metadata(req.metadata()).bearer {
            Some(t)
                if crate::streaming::constant_time_eq(&token_digest(t.as_bytes()), expected) =>
            {
                Ok(())
            }
            Some(_) => {
                warn!("peer call with a wrong token refused");
                Err(Status::unauthenticated("invalid peer token"))
            }
            None => Err(Status::unauthenticated(
                "a peer token is required (authorization: Bearer <token>)",
            )),
        }
    }
}

#[tonic::async_trait]
impl peer_service_server::PeerService for PeerService {
    type StreamOwnPricesStream = PriceStream;

    async fn stream_own_prices(
        &self,
        request: Request<StreamOwnPricesRequest>,
    ) -> Result<Response<PriceStream>, Status> {
        self.authorize(&request)?;
        tracing::debug!(peer = %request.get_ref().replica, "peer subscribed to this replica's prices");
        Ok(Response::new(self.prices.own_prices()))
    }

    async fn api_health(
        &self,
        request: Request<ApiHealthRequest>,
    ) -> Result<Response<ApiHealthReply>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(ApiHealthReply {
            replica: self.membership.me().to_owned(),
            api_reachable: self.membership.api_ok(),
            reachable_for_ms: self
                .membership
                .reachable_for()
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }))
    }

    async fn forward_command(
        &self,
        request: Request<ForwardCommandRequest>,
    ) -> Result<Response<ForwardCommandReply>, Status> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let command = req
            .command
            .ok_or_else(|| Status::invalid_argument("command is required"))?;
        let timeout =
            (req.timeout_ms > 0).then(|| Duration::from_millis(u64::from(req.timeout_ms)));
        let done = self
            .handle
            .command_anywhere(&req.client_id, command, req.wait, timeout, true)
            .await
            .map_err(|s| self.not_holder_named(&req.client_id, s))?;
        Ok(Response::new(ForwardCommandReply {
            command_id: done.command_id,
            ack: done.ack,
        }))
    }

    async fn forward_get_client(
        &self,
        request: Request<GetClientRequest>,
    ) -> Result<Response<ClientInfo>, Status> {
        self.authorize(&request)?;
        let id = request.into_inner().client_id;
        let info = self
            .handle
            .snapshot_anywhere(&id, true)
            .await
            .map_err(|s| self.not_holder_named(&id, s))?;
        Ok(Response::new(info))
    }

    async fn forward_list_clients(
        &self,
        request: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        self.authorize(&request)?;
        // This replica's own sessions only: the asking replica merges.
        let page = self
            .handle
            .list_anywhere(request.into_inner(), true)
            .await?;
        Ok(Response::new(ListClientsResponse {
            clients: page.clients,
            next_page_token: page.next_token.unwrap_or_default(),
            partial: false,
            missing_replicas: Vec::new(),
        }))
    }
}

impl PeerService {
    /// The handle's "not held here", with this replica's id in it.
    fn not_holder_named(&self, client_id: &str, s: Status) -> Status {
        if crate::proto::hops::is_not_holder(&s) {
            crate::proto::hops::not_holder(client_id, self.membership.me())
        } else {
            s
        }
    }
}
