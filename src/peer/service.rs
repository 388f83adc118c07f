//! The peer service: answers other replicas of the same deployment. Every
//! call must carry the peer token (`authorization: Bearer <token>`,
//! compared as SHA-256 digests in constant time); without a configured
//! token the service refuses every call.

use crate::controller::Membership;
use crate::proto::peer_service_server;
use crate::proto::{ApiHealthReply, ApiHealthRequest};
use crate::streaming::{Credentials, token_digest};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::warn;

/// The peer service of one replica.
pub struct PeerService {
    membership: Arc<Membership>,
    token: Option<[u8; 32]>,
}

impl PeerService {
    /// A service answering for `membership`, to callers presenting `token`.
    pub fn new(membership: Arc<Membership>, token: Option<&str>) -> Self {
        Self {
            membership,
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
}
