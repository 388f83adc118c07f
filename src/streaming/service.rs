//! The `CryptoStreamingService` gRPC service: sessions on `ConnectClient`
//! and the operator calls, all through the core's handle.

use super::handle::StreamingHandle;
use super::outbound::OutboundStream;
use super::session_task;
use super::{Credentials, tokens_match};
use crate::proto::crypto_streaming_service_server::CryptoStreamingService;
use crate::proto::{
    ClientInfo, ClientMessage, CommandAck, ExecuteCommandRequest, GetClientRequest,
    ListClientsRequest, ListClientsResponse, SendCommandRequest, SendCommandResponse,
};
use std::time::Duration;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug_span, warn};

/// The gRPC service over a streaming core.
pub struct StreamingService {
    handle: StreamingHandle,
    operator_token: Option<String>,
}

impl StreamingService {
    /// A service over `handle`'s core; operator calls are open.
    pub fn new(handle: StreamingHandle) -> Self {
        Self {
            handle,
            operator_token: None,
        }
    }

    /// Requires `token` (as `authorization: Bearer <token>`) on the
    /// operator calls: SendCommandToClient, ExecuteCommandSync,
    /// ListClients, GetClient. Client sessions use their own tokens.
    pub fn with_operator_token(mut self, token: Option<String>) -> Self {
        self.operator_token = token.filter(|t| !t.is_empty());
        self
    }

    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let Some(expected) = &self.operator_token else {
            return Ok(());
        };
        match Credentials::from_metadata(req.metadata()).bearer {
            Some(t) if tokens_match(t.as_bytes(), expected.as_bytes()) => Ok(()),
            Some(_) => {
                warn!("operator call with a wrong token refused");
                Err(Status::unauthenticated("invalid operator token"))
            }
            None => Err(Status::unauthenticated(
                "an operator token is required (authorization: Bearer <token>)",
            )),
        }
    }
}

/// The deadline a caller put on its call (`grpc-timeout`), if any.
fn call_deadline<T>(req: &Request<T>) -> Option<Duration> {
    let v = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl CryptoStreamingService for StreamingService {
    type ConnectClientStream = OutboundStream;

    async fn connect_client(
        &self,
        request: Request<Streaming<ClientMessage>>,
    ) -> Result<Response<Self::ConnectClientStream>, Status> {
        let tls = request
            .extensions()
            .get::<crate::tls::TlsConnInfo>()
            .cloned();
        let peer = request
            .remote_addr()
            .or_else(|| tls.as_ref().and_then(|t| t.remote_addr))
            .map_or_else(|| "unknown".into(), |a| a.to_string());
        let core = self.handle.core.clone();
        let (tx, term, stream) = OutboundStream::new(core.config.command_queue);
        let mut creds = Credentials::from_metadata(request.metadata());
        creds.peer_cert = tls.and_then(|t| t.peer_cert);
        let inbound = request.into_inner();
        core.tasks
            .clone()
            .spawn(session_task::run(core, inbound, tx, term, peer, creds));
        Ok(Response::new(stream))
    }

    async fn send_command_to_client(
        &self,
        request: Request<SendCommandRequest>,
    ) -> Result<Response<SendCommandResponse>, Status> {
        self.authorize(&request)?;
        let forwarded = crate::proto::hops::is_forwarded(request.metadata());
        let req = request.into_inner();
        let span = debug_span!("send_command", client_id = %req.client_id, command_id = tracing::field::Empty);
        async {
            let command = req
                .command
                .ok_or_else(|| Status::invalid_argument("command is required"))?;
            // Fire and forget: the holder's session task tracks the ack
            // and its timeout.
            let sent = self
                .handle
                .command_anywhere(&req.client_id, command, false, None, forwarded)
                .await
                .inspect_err(
                    |e| warn!(client_id = %req.client_id, error = %e.message(), "command refused"),
                )?;
            tracing::Span::current().record("command_id", sent.command_id.as_str());
            tracing::debug!("command queued");
            Ok(Response::new(SendCommandResponse {
                command_id: sent.command_id,
            }))
        }
        .instrument(span)
        .await
    }

    async fn execute_command_sync(
        &self,
        request: Request<ExecuteCommandRequest>,
    ) -> Result<Response<CommandAck>, Status> {
        self.authorize(&request)?;
        let call_deadline = call_deadline(&request);
        let forwarded = crate::proto::hops::is_forwarded(request.metadata());
        let req = request.into_inner();
        let span = debug_span!("execute_command", client_id = %req.client_id, command_id = tracing::field::Empty);
        async {
            let mut command = req
                .command
                .ok_or_else(|| Status::invalid_argument("command is required"))?;
            if command.command_id.is_empty() {
                command.command_id = crate::commands::new_command_id();
            }
            tracing::Span::current().record("command_id", command.command_id.as_str());
            let ack_timeout = self.handle.config().ack_timeout;
            let mut timeout = match req.timeout_ms {
                0 => ack_timeout,
                ms => Duration::from_millis(u64::from(ms)),
            };
            if let Some(d) = call_deadline {
                timeout = timeout.min(d);
            }
            let done = self
                .handle
                .command_anywhere(&req.client_id, command, true, Some(timeout), forwarded)
                .await
                .inspect_err(
                    |e| warn!(client_id = %req.client_id, error = %e.message(), "command failed"),
                )?;
            let ack = done
                .ack
                .ok_or_else(|| Status::internal("the holder answered without the ack"))?;
            Ok(Response::new(ack))
        }
        .instrument(span)
        .await
    }

    async fn list_clients(
        &self,
        request: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        self.authorize(&request)?;
        let forwarded = crate::proto::hops::is_forwarded(request.metadata());
        let page = self
            .handle
            .list_anywhere(request.into_inner(), forwarded)
            .await?;
        Ok(Response::new(ListClientsResponse {
            clients: page.clients,
            next_page_token: page.next_token.unwrap_or_default(),
            partial: !page.missing.is_empty(),
            missing_replicas: page.missing,
        }))
    }

    async fn get_client(
        &self,
        request: Request<GetClientRequest>,
    ) -> Result<Response<ClientInfo>, Status> {
        self.authorize(&request)?;
        let forwarded = crate::proto::hops::is_forwarded(request.metadata());
        let id = request.into_inner().client_id;
        let info = self.handle.snapshot_anywhere(&id, forwarded).await?;
        Ok(Response::new(info))
    }
}
