//! The server-to-client half of a session: the client's bounded command
//! queue, drained by tonic as HTTP/2 flow control allows, plus a
//! termination signal that ends the stream with a status (at once) or
//! cleanly (after the queued commands).

use crate::proto::ServerCommand;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tonic::Status;

/// How the stream ends.
pub(crate) enum Termination {
    /// End now with this status; queued commands are dropped.
    Abort(Status),
    /// Accept nothing more, deliver what is queued, end with OK.
    Drain,
}

/// The response stream of `ConnectClient`: the client's command queue.
pub struct OutboundStream {
    rx: mpsc::Receiver<ServerCommand>,
    term: Option<oneshot::Receiver<Termination>>,
    done: bool,
}

impl OutboundStream {
    /// A queue of `capacity` commands and its termination switch.
    pub(crate) fn new(
        capacity: usize,
    ) -> (
        mpsc::Sender<ServerCommand>,
        oneshot::Sender<Termination>,
        Self,
    ) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (term_tx, term_rx) = oneshot::channel();
        let stream = Self {
            rx,
            term: Some(term_rx),
            done: false,
        };
        (tx, term_tx, stream)
    }
}

impl Stream for OutboundStream {
    type Item = Result<ServerCommand, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(term) = self.term.as_mut() {
            match Pin::new(term).poll(cx) {
                Poll::Ready(Ok(Termination::Abort(status))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(Ok(Termination::Drain) | Err(_)) => {
                    self.term = None;
                    self.rx.close();
                }
                Poll::Pending => {}
            }
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(cmd)) => Poll::Ready(Some(Ok(cmd))),
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future;
