//! The server side of `Kv.BatchCommands`: many requests over one stream.
//!
//! Each command of an incoming message runs in a task of its own, exactly
//! as its unary call would ([`Node::put`] and the rest, forwarding
//! included), so a write waiting for raft never holds back a read behind
//! it. Answers are gathered as they finish: one reply message carries
//! every answer ready when the stream is next polled, up to
//! [`MAX_REPLY_BYTES`], so under load one HTTP/2 frame answers many
//! requests.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use prost::Message;
use proto::kvpb::{self, command, command_reply};
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use crate::metrics;
use crate::node::Node;

/// A reply message grows past this only by a single large answer.
pub const MAX_REPLY_BYTES: usize = 1 << 20;

/// Starts serving one batch stream: returns the stream of reply messages.
/// It ends when the client closes its side (after the answers in flight),
/// on a broken stream, or when the store shuts down.
pub fn serve(
    node: Arc<Node>,
    mut inbound: Streaming<kvpb::BatchCommandsRequest>,
    mut shutdown: watch::Receiver<bool>,
) -> Replies {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                next = inbound.message() => match next {
                    Ok(Some(m)) => m,
                    Ok(None) | Err(_) => break,
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            metrics::KV_BATCH_MESSAGES.inc();
            metrics::KV_BATCH_COMMANDS.inc_by(message.commands.len() as u64);
            for command in message.commands {
                let (node, tx) = (node.clone(), tx.clone());
                tokio::spawn(async move {
                    let reply = run(&node, command).await;
                    let _ = tx.send(reply);
                });
            }
        }
    });
    Replies { rx, pending: None }
}

/// Runs one command as its unary call would.
async fn run(node: &Node, command: kvpb::Command) -> kvpb::CommandReply {
    use command_reply::Response;
    let response = match command.request {
        Some(command::Request::Get(r)) => Response::Get(node.get(r).await),
        Some(command::Request::Put(r)) => Response::Put(node.put(r).await),
        Some(command::Request::Delete(r)) => Response::Delete(node.delete(r).await),
        Some(command::Request::CompareAndSwap(r)) => Response::CompareAndSwap(node.compare_and_swap(r).await),
        None => Response::Error(kvpb::Error {
            kind: kvpb::ErrorKind::InvalidArgument as i32,
            message: format!("command {} names no request", command.id),
        }),
    };
    kvpb::CommandReply { id: command.id, response: Some(response) }
}

/// Answers as they finish, gathered into reply messages.
pub struct Replies {
    rx: mpsc::UnboundedReceiver<kvpb::CommandReply>,
    /// An answer taken that did not fit the last message: it starts the
    /// next.
    pending: Option<kvpb::CommandReply>,
}

impl Stream for Replies {
    type Item = Result<kvpb::BatchCommandsResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let first = match self.pending.take() {
            Some(r) => r,
            None => match self.rx.poll_recv(cx) {
                Poll::Ready(Some(r)) => r,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            },
        };
        let mut bytes = first.encoded_len();
        let mut replies = vec![first];
        while bytes < MAX_REPLY_BYTES {
            match self.rx.try_recv() {
                Ok(r) => {
                    let len = r.encoded_len();
                    if bytes + len > MAX_REPLY_BYTES {
                        self.pending = Some(r);
                        break;
                    }
                    bytes += len;
                    replies.push(r);
                }
                Err(_) => break,
            }
        }
        Poll::Ready(Some(Ok(kvpb::BatchCommandsResponse { replies })))
    }
}
