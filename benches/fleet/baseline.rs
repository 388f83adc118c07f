//! The ceiling: a bare tonic server for the same service with no logic. It
//! answers `registered`, keeps client id -> command queue, stamps commands
//! like the real server (so messages have the same sizes) and routes acks
//! back to `ExecuteCommandSync` callers. No validation, no metrics, no
//! heartbeat tracking, no logs.
//!
//! Run as `fleet --role baseline-server`; prints the same "serving
//! grpc_addr=…" line as `crypto-operator serve` on stderr and stops on
//! SIGTERM.

use crypto_operator::proto::crypto_streaming_service_server::{
    CryptoStreamingService, CryptoStreamingServiceServer,
};
use crypto_operator::proto::{
    ClientInfo, ClientMessage, CommandAck, ExecuteCommandRequest, GetClientRequest,
    ListClientsRequest, ListClientsResponse, RegistrationAccepted, SendCommandRequest,
    SendCommandResponse, ServerCommand, client_message::Payload, server_command::Command,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

/// The same per-client queue and ack deadline as the real server's defaults.
const QUEUE: usize = 64;
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

type Queue = mpsc::Sender<Result<ServerCommand, Status>>;

#[derive(Default)]
struct Inner {
    clients: Mutex<HashMap<String, Queue>>,
    pending: Mutex<HashMap<String, oneshot::Sender<CommandAck>>>,
}

#[derive(Clone, Default)]
struct Bare(Arc<Inner>);

/// Fills the id and the times as the real server does.
fn stamp(cmd: &mut ServerCommand) {
    if cmd.command_id.is_empty() {
        cmd.command_id = uuid::Uuid::new_v4().to_string();
    }
    let now = SystemTime::now();
    cmd.issued_at = Some(now.into());
    cmd.expires_at = Some((now + ACK_TIMEOUT).into());
}

impl Bare {
    /// Queues `cmd` for `client_id`.
    fn route(&self, client_id: &str, cmd: ServerCommand) -> Result<(), Status> {
        let clients = self
            .0
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match clients.get(client_id) {
            Some(q) => q
                .try_send(Ok(cmd))
                .map_err(|_| Status::resource_exhausted("queue full")),
            None => Err(Status::not_found("not connected")),
        }
    }

    fn forget(&self, command_id: &str) {
        self.0
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(command_id);
    }
}

#[tonic::async_trait]
impl CryptoStreamingService for Bare {
    type ConnectClientStream = ReceiverStream<Result<ServerCommand, Status>>;

    async fn connect_client(
        &self,
        request: Request<Streaming<ClientMessage>>,
    ) -> Result<Response<Self::ConnectClientStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(QUEUE);
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(Some(first)) = inbound.message().await else {
                return;
            };
            let id = first.client_id;
            let mut registered = ServerCommand {
                command: Some(Command::Registered(RegistrationAccepted {
                    session_id: uuid::Uuid::new_v4().to_string(),
                    heartbeat_interval: Some(prost_types::Duration {
                        seconds: 300,
                        nanos: 0,
                    }),
                    server_time: Some(SystemTime::now().into()),
                })),
                ..Default::default()
            };
            stamp(&mut registered);
            let _ = tx.try_send(Ok(registered));
            this.0
                .clients
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id.clone(), tx);
            while let Ok(Some(m)) = inbound.message().await {
                if let Some(Payload::CommandAck(ack)) = m.payload {
                    let waiter = this
                        .0
                        .pending
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&ack.command_id);
                    if let Some(w) = waiter {
                        let _ = w.send(ack);
                    }
                }
            }
            // Dropping the queue ends the response stream.
            this.0
                .clients
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn send_command_to_client(
        &self,
        request: Request<SendCommandRequest>,
    ) -> Result<Response<SendCommandResponse>, Status> {
        let req = request.into_inner();
        let mut cmd = req.command.unwrap_or_default();
        stamp(&mut cmd);
        let command_id = cmd.command_id.clone();
        self.route(&req.client_id, cmd)?;
        Ok(Response::new(SendCommandResponse { command_id }))
    }

    async fn execute_command_sync(
        &self,
        request: Request<ExecuteCommandRequest>,
    ) -> Result<Response<CommandAck>, Status> {
        let req = request.into_inner();
        let mut cmd = req.command.unwrap_or_default();
        stamp(&mut cmd);
        let id = cmd.command_id.clone();
        let (tx, rx) = oneshot::channel();
        self.0
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.clone(), tx);
        if let Err(e) = self.route(&req.client_id, cmd) {
            self.forget(&id);
            return Err(e);
        }
        let wait = match req.timeout_ms {
            0 => ACK_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)),
        };
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(ack)) => Ok(Response::new(ack)),
            _ => {
                self.forget(&id);
                Err(Status::deadline_exceeded("no ack"))
            }
        }
    }

    async fn list_clients(
        &self,
        _: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn get_client(
        &self,
        _: Request<GetClientRequest>,
    ) -> Result<Response<ClientInfo>, Status> {
        Err(Status::unimplemented("baseline"))
    }
}

/// `--role baseline-server`.
pub fn main() -> ! {
    if let Err(e) = super::sys::raise_nofile(0) {
        eprintln!("baseline: {e}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let code = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        let stop = tokio_util::sync::CancellationToken::new();
        // `Server::tcp_nodelay` is ignored for an incoming stream; set it on
        // the incoming itself, as `Server::serve` (tonic's default) does.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(CryptoStreamingServiceServer::new(Bare::default()))
                .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned()),
        );
        eprintln!("baseline serving grpc_addr={addr}");
        term.recv().await;
        stop.cancel();
        match tokio::time::timeout(Duration::from_secs(10), server).await {
            Ok(Ok(Ok(()))) => 0,
            Ok(Ok(Err(e))) => {
                eprintln!("baseline: {e}");
                1
            }
            Ok(Err(e)) => {
                eprintln!("baseline: {e}");
                1
            }
            Err(_) => {
                eprintln!("baseline: connections still open 10 s after SIGTERM");
                1
            }
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}
