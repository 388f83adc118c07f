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

/// The sending end of a client's command queue. Commands are boxed: the
/// queue's channel allocates its slots 32 at a time when it is made, and
/// 32 pointers cost 256 bytes per session where 32 commands cost 4.9 KiB.
pub(crate) type CommandSender = mpsc::Sender<Box<ServerCommand>>;

/// The response stream of `ConnectClient`: the client's command queue.
pub struct OutboundStream {
    rx: mpsc::Receiver<Box<ServerCommand>>,
    term: Option<oneshot::Receiver<Termination>>,
    done: bool,
}

impl OutboundStream {
    /// A queue of `capacity` commands and its termination switch.
    pub(crate) fn new(capacity: usize) -> (CommandSender, oneshot::Sender<Termination>, Self) {
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
            Poll::Ready(Some(cmd)) => Poll::Ready(Some(Ok(*cmd))),
            // Every sender gone but no termination yet: the session task
            // is about to say how the stream ends (a refusal's status must
            // not turn into a clean end); the termination's waker is
            // registered above.
            Poll::Ready(None) if self.term.is_some() => Poll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future;

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use futures::future::FutureExt;
    use tonic::Code;

    #[tokio::test]
    async fn a_refusal_signalled_after_the_queue_closed_still_ends_with_its_status() {
        let (tx, term, mut stream) = OutboundStream::new(4);
        drop(tx);
        assert!(
            stream.next().now_or_never().is_none(),
            "waits for the termination instead of ending cleanly"
        );
        let _ = term.send(Termination::Abort(Status::unauthenticated("no token")));
        let end = stream.next().await.expect("an item").expect_err("a status");
        assert_eq!(end.code(), Code::Unauthenticated);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn drain_delivers_what_is_queued_then_ends_cleanly() {
        let (tx, term, mut stream) = OutboundStream::new(4);
        tx.try_send(Box::default()).expect("room");
        let _ = term.send(Termination::Drain);
        assert!(stream.next().await.expect("queued").is_ok());
        assert!(stream.next().await.is_none(), "clean end after the queue");
        assert!(tx.try_send(Box::default()).is_err(), "closed");
    }

    #[tokio::test]
    async fn a_dropped_termination_ends_cleanly_once_the_queue_is_empty() {
        let (tx, term, mut stream) = OutboundStream::new(4);
        drop(term);
        drop(tx);
        assert!(stream.next().await.is_none());
    }
}
