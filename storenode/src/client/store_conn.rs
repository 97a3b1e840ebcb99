//! The client's connection to one store: point requests (get, put, delete,
//! compare-and-swap) ride the store's `BatchCommands` stream, the rest are
//! unary calls on the same HTTP/2 connection.
//!
//! Every request queued while the stream's sender is busy goes out in one
//! message, and the store answers whatever has finished in one message, so
//! many concurrent requests share frames, system calls and task wake-ups
//! instead of paying for each; a lone request is sent at once. Answers are
//! matched to requests by an id the stream assigns.
//!
//! A broken stream (the store died, the connection dropped) fails every
//! request on it with `Unavailable`, which the caller retries like a failed
//! unary call (a write with its request id, so at most once); the next
//! request opens a new stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use proto::kvpb::{self, command, command_reply, kv_client::KvClient};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;
use tonic::{Response, Status};

/// A request message grows past this only by a single large request.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

type Answer = Result<command_reply::Response, Status>;

struct Queued {
    request: command::Request,
    answer: oneshot::Sender<Answer>,
}

/// A point request's method: sent on the batch stream, its answer checked
/// to be of the request's kind.
macro_rules! point_calls {
    ($($name:ident($req:ident) -> $resp:ident = $kind:ident, $what:literal;)*) => {$(
        pub async fn $name(&mut self, req: kvpb::$req) -> Result<Response<kvpb::$resp>, Status> {
            match self.call(command::Request::$kind(req)).await? {
                command_reply::Response::$kind(r) => Ok(Response::new(r)),
                other => Err(mismatch($what, &other)),
            }
        }
    )*};
}

#[derive(Clone)]
pub struct StoreConn {
    unary: KvClient<Channel>,
    stream: Arc<Mutex<Option<mpsc::UnboundedSender<Queued>>>>,
}

impl StoreConn {
    pub fn new(unary: KvClient<Channel>) -> StoreConn {
        StoreConn { unary, stream: Arc::new(Mutex::new(None)) }
    }

    /// Sends `request` on the batch stream (opening one if none is live)
    /// and waits for its answer.
    async fn call(&self, request: command::Request) -> Answer {
        let (answer, rx) = oneshot::channel();
        let mut queued = Queued { request, answer };
        // A stream that ended since it was opened refuses the request back:
        // open another once.
        for _ in 0..2 {
            let sender = {
                let mut live = self.stream.lock().unwrap();
                match live.as_ref() {
                    Some(s) if !s.is_closed() => s.clone(),
                    _ => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        tokio::spawn(drive(self.unary.clone(), rx));
                        *live = Some(tx.clone());
                        tx
                    }
                }
            };
            match sender.send(queued) {
                Ok(()) => break,
                Err(mpsc::error::SendError(back)) => queued = back,
            }
        }
        rx.await.unwrap_or_else(|_| Err(Status::unavailable("batch stream closed before answering")))
    }

    point_calls! {
        get(GetRequest) -> GetResponse = Get, "get";
        put(PutRequest) -> PutResponse = Put, "put";
        delete(DeleteRequest) -> DeleteResponse = Delete, "delete";
        compare_and_swap(CasRequest) -> CasResponse = CompareAndSwap, "compare-and-swap";
    }

    pub async fn scan(&mut self, req: kvpb::ScanRequest) -> Result<Response<kvpb::ScanResponse>, Status> {
        self.unary.scan(req).await
    }

    pub async fn batch_get(&mut self, req: kvpb::BatchGetRequest) -> Result<Response<kvpb::BatchGetResponse>, Status> {
        self.unary.batch_get(req).await
    }

    pub async fn batch_put(&mut self, req: kvpb::BatchPutRequest) -> Result<Response<kvpb::BatchPutResponse>, Status> {
        self.unary.batch_put(req).await
    }
}

/// The answer is not for the request it was matched to: the store is
/// broken or speaks another protocol. An internal error, not retried.
fn mismatch(op: &str, got: &command_reply::Response) -> Status {
    match got {
        command_reply::Response::Error(e) => Status::invalid_argument(format!("{op}: {}", e.message)),
        other => Status::internal(format!("{op} answered with {other:?}")),
    }
}

/// Runs one batch stream: sends what is queued, hands answers back, and
/// fails whatever is left when the stream ends.
async fn drive(mut client: KvClient<Channel>, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let (out, out_rx) = mpsc::unbounded_channel();
    let mut waiting: HashMap<u64, oneshot::Sender<Answer>> = HashMap::new();
    let mut next_id = 0u64;
    let opened = client.batch_commands(tokio_stream::wrappers::UnboundedReceiverStream::new(out_rx)).await;
    let reason = match opened {
        Err(status) => status,
        Ok(resp) => {
            let mut inbound = resp.into_inner();
            loop {
                tokio::select! {
                    first = queue.recv() => {
                        // Every sender dropped: the client is gone.
                        let Some(first) = first else { return };
                        let mut commands = Vec::new();
                        let mut bytes = 0;
                        let mut next = Some(first);
                        while let Some(q) = next.take() {
                            next_id += 1;
                            let c = kvpb::Command { id: next_id, request: Some(q.request) };
                            bytes += prost::Message::encoded_len(&c);
                            commands.push(c);
                            waiting.insert(next_id, q.answer);
                            if bytes < MAX_MESSAGE_BYTES {
                                next = queue.try_recv().ok();
                            }
                        }
                        if out.send(kvpb::BatchCommandsRequest { commands }).is_err() {
                            break Status::unavailable("batch stream closed");
                        }
                    }
                    message = inbound.message() => match message {
                        Ok(Some(m)) => {
                            for reply in m.replies {
                                let answer = reply.response.ok_or_else(|| Status::internal("reply without a response"));
                                if let Some(w) = waiting.remove(&reply.id) {
                                    let _ = w.send(answer);
                                }
                            }
                        }
                        Ok(None) => break Status::unavailable("store closed the batch stream"),
                        Err(status) => break status,
                    },
                }
            }
        }
    };
    queue.close();
    for (_, w) in waiting.drain() {
        let _ = w.send(Err(reason.clone()));
    }
    while let Ok(q) = queue.try_recv() {
        let _ = q.answer.send(Err(reason.clone()));
    }
}
