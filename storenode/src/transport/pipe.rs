//! One long-lived `RaftTransport.Stream` to a peer store: the sender's
//! small raft RPCs travel on it as envelopes, and the replies, matched by
//! id, come back in whatever order the receiver finishes them.
//!
//! A unary RPC opens an HTTP/2 stream per message (headers, data, trailers
//! each way, and a task per stream on both sides); on the stream a message
//! is one data frame each way. A replicated write waits for one append
//! round trip, so this is on every write's path.
//!
//! A pipe dies with its stream (the peer restarted, the connection broke):
//! every message in flight then fails at once, as an unreachable peer, and
//! the transport opens a new pipe for the next message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::raftpb::{self, raft_transport_client::RaftTransportClient};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

use super::SendError;
use crate::metrics;

type Reply = oneshot::Sender<Result<Vec<u8>, SendError>>;

pub struct Pipe {
    /// The outgoing half of the stream.
    out: mpsc::UnboundedSender<raftpb::RaftEnvelope>,
    inflight: Arc<Mutex<Inflight>>,
    next_id: AtomicU64,
}

/// Messages sent and not yet answered; once the stream has ended, none
/// may be added (they would wait for a reply that cannot come).
#[derive(Default)]
struct Inflight {
    ended: Option<SendError>,
    waiting: HashMap<u64, Reply>,
}

impl Pipe {
    /// Opens a stream on `client`'s channel. The connection is made (or
    /// found broken) in the background; messages sent meanwhile wait in
    /// the stream's queue.
    pub fn open(mut client: RaftTransportClient<Channel>, store_id: u64) -> Arc<Self> {
        let (out, rx) = mpsc::unbounded_channel();
        let inflight = Arc::new(Mutex::new(Inflight::default()));
        let pipe = Arc::new(Pipe { out, inflight: inflight.clone(), next_id: AtomicU64::new(1) });
        metrics::RAFT_STREAMS_OPENED.inc();
        tokio::spawn(async move {
            let why = match client.stream(UnboundedReceiverStream::new(rx)).await {
                Ok(resp) => read_replies(resp.into_inner(), &inflight).await,
                Err(s) => s.message().to_string(),
            };
            tracing::debug!(store_id, reason = %why, "raft stream to store ended");
            end(&inflight, format!("raft stream to store {store_id} ended: {why}"));
        });
        pipe
    }

    /// Whether the stream has ended: the transport replaces the pipe.
    pub fn is_ended(&self) -> bool {
        self.out.is_closed() || self.inflight.lock().unwrap().ended.is_some()
    }

    /// Sends `request` and waits up to `timeout` for its reply's payload.
    ///
    /// # Errors
    ///
    /// The stream ended before the reply came, the receiver refused the
    /// message, or `timeout` elapsed.
    pub async fn call(&self, request: raftpb::RaftRequest, timeout: Duration) -> Result<Vec<u8>, SendError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, wait) = oneshot::channel();
        {
            let mut inflight = self.inflight.lock().unwrap();
            if let Some(why) = &inflight.ended {
                return Err(why.clone());
            }
            inflight.waiting.insert(id, reply);
        }
        if self.out.send(raftpb::RaftEnvelope { id, request: Some(request) }).is_err() {
            self.inflight.lock().unwrap().waiting.remove(&id);
            return Err("raft stream closed".to_string());
        }
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => Err("raft stream dropped the reply".to_string()),
            Err(_) => {
                self.inflight.lock().unwrap().waiting.remove(&id);
                metrics::RAFT_MESSAGES_DROPPED.with_label_values(&["unreachable"]).inc();
                Err(format!("raft message not answered in {timeout:?}"))
            }
        }
    }
}

/// Hands each reply to its waiting sender until the stream ends; returns
/// why it ended.
async fn read_replies(mut replies: tonic::Streaming<raftpb::RaftReply>, inflight: &Mutex<Inflight>) -> SendError {
    loop {
        let reply = match replies.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return "closed by the receiver".to_string(),
            Err(s) => return s.message().to_string(),
        };
        // A reply nobody waits for timed out here: dropped.
        let Some(waiting) = inflight.lock().unwrap().waiting.remove(&reply.id) else { continue };
        let resp = reply.response.unwrap_or_default();
        let res = if resp.error.is_empty() {
            Ok(resp.payload)
        } else {
            metrics::RAFT_MESSAGES_DROPPED.with_label_values(&["refused"]).inc();
            Err(resp.error)
        };
        let _ = waiting.send(res);
    }
}

/// Fails every message in flight with `why`, and every later one.
fn end(inflight: &Mutex<Inflight>, why: SendError) {
    let waiting = {
        let mut inflight = inflight.lock().unwrap();
        inflight.ended = Some(why.clone());
        std::mem::take(&mut inflight.waiting)
    };
    if !waiting.is_empty() {
        metrics::RAFT_MESSAGES_DROPPED.with_label_values(&["unreachable"]).inc_by(waiting.len() as u64);
    }
    for (_, reply) in waiting {
        let _ = reply.send(Err(why.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proto::raftpb::raft_transport_server::{RaftTransport, RaftTransportServer};
    use tokio::sync::mpsc;
    use tokio_stream::StreamExt;
    use tokio_stream::wrappers::UnboundedReceiverStream;
    use tonic::{Request, Response, Status, Streaming};

    use super::*;

    /// A receiver that answers each pair of envelopes in reverse order,
    /// echoing the request's payload, and ends its stream when it takes a
    /// request whose payload is `b"end"`.
    struct Reverser;

    type Replies = futures::stream::BoxStream<'static, Result<raftpb::RaftReply, Status>>;

    #[tonic::async_trait]
    impl RaftTransport for Reverser {
        type StreamStream = Replies;

        async fn stream(&self, req: Request<Streaming<raftpb::RaftEnvelope>>) -> Result<Response<Replies>, Status> {
            let mut inbound = req.into_inner();
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                let mut held: Option<raftpb::RaftEnvelope> = None;
                while let Some(Ok(envelope)) = inbound.next().await {
                    let payload = envelope.request.as_ref().map(|r| r.payload.clone()).unwrap_or_default();
                    if payload == b"end" {
                        let _ = tx.send(Err(Status::unavailable("receiver going away")));
                        return;
                    }
                    let Some(first) = held.take() else {
                        held = Some(envelope);
                        continue;
                    };
                    for e in [envelope, first] {
                        let payload = e.request.map(|r| r.payload).unwrap_or_default();
                        let response = raftpb::RaftResponse { payload, error: String::new() };
                        let _ = tx.send(Ok(raftpb::RaftReply { id: e.id, response: Some(response) }));
                    }
                }
            });
            Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
        }

        async fn call(&self, _: Request<raftpb::RaftRequest>) -> Result<Response<raftpb::RaftResponse>, Status> {
            Err(Status::unimplemented("stream only"))
        }

        async fn install_snapshot(
            &self,
            _: Request<Streaming<raftpb::SnapshotChunk>>,
        ) -> Result<Response<raftpb::RaftResponse>, Status> {
            Err(Status::unimplemented("stream only"))
        }

        async fn batch_call(
            &self,
            _: Request<raftpb::RaftBatch>,
        ) -> Result<Response<raftpb::RaftBatchResponse>, Status> {
            Err(Status::unimplemented("stream only"))
        }
    }

    async fn reverser() -> RaftTransportClient<Channel> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tonic::transport::Server::builder().add_service(RaftTransportServer::new(Reverser));
        tokio::spawn(server.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)));
        RaftTransportClient::new(pd::client::channel(&addr.to_string()).unwrap())
    }

    fn request(payload: &[u8]) -> raftpb::RaftRequest {
        raftpb::RaftRequest { payload: payload.to_vec(), ..Default::default() }
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn replies_find_their_senders_in_any_order() {
        let pipe = Pipe::open(reverser().await, 7);
        let (a, b) = tokio::join!(pipe.call(request(b"a"), WAIT), pipe.call(request(b"b"), WAIT));
        assert_eq!(a.unwrap(), b"a");
        assert_eq!(b.unwrap(), b"b");
        assert!(!pipe.is_ended());
    }

    #[tokio::test]
    async fn an_ended_stream_fails_what_is_in_flight_and_every_later_message() {
        let pipe = Pipe::open(reverser().await, 7);
        // Held by the receiver, waiting for a second envelope that ends
        // the stream instead.
        let held = pipe.call(request(b"held"), WAIT);
        let end = pipe.call(request(b"end"), WAIT);
        let (held, end) = tokio::join!(held, end);
        for res in [held, end] {
            let e = res.unwrap_err();
            assert!(e.contains("raft stream to store 7 ended"), "{e}");
        }
        assert!(pipe.is_ended());
        let later = pipe.call(request(b"later"), WAIT).await.unwrap_err();
        assert!(later.contains("ended"), "{later}");
    }

    #[tokio::test]
    async fn an_unanswered_message_times_out_and_its_late_reply_is_dropped() {
        let pipe = Pipe::open(reverser().await, 7);
        // Alone, it is held until a second envelope arrives.
        let e = pipe.call(request(b"lonely"), Duration::from_millis(200)).await.unwrap_err();
        assert!(e.contains("not answered"), "{e}");
        // The next one releases both; the first's reply finds nobody
        // waiting, and the pipe goes on.
        assert_eq!(pipe.call(request(b"next"), WAIT).await.unwrap(), b"next");
        assert!(!pipe.is_ended());
    }
}
