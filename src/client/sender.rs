//! The application's side of the client stream: queue data messages
//! (wallet updates, transactions, status, errors, logs, prices) for the
//! server. Bounded; messages queued while disconnected go out after the
//! reconnect.

use crate::proto::client_message::Payload;
use tokio::sync::mpsc;

/// Why a message was not queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// The outbox is full.
    #[error("client outbox is full")]
    Full,
    /// The client has stopped.
    #[error("client has stopped")]
    Closed,
}

/// Queues messages for the server. Cheap to clone.
#[derive(Clone)]
pub struct ClientSender {
    pub(crate) tx: mpsc::Sender<Payload>,
}

impl ClientSender {
    /// Queues `payload`, waiting for room.
    pub async fn send(&self, payload: Payload) -> Result<(), SendError> {
        self.tx.send(payload).await.map_err(|_| SendError::Closed)
    }

    /// Queues `payload` if there is room now.
    pub fn try_send(&self, payload: Payload) -> Result<(), SendError> {
        self.tx.try_send(payload).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }
}
